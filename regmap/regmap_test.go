package regmap

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestShippedMaps(t *testing.T) {
	if diff := cmp.Diff([]string{"dds238-2", "ddsu666", "dtsu666", "sdm120", "sdm630"}, Names()); diff != "" {
		t.Errorf("Names() (-want +got):\n%s", diff)
	}
	// Spot checks against domain.md §3.2, several per map.
	tests := []struct {
		m, q  string
		fc    uint8
		addr  Address
		typ   Type
		scale float64
	}{
		{"sdm120", "voltage", 4, 0x0000, Float32, 1},
		{"sdm120", "import_kwh", 4, 0x0048, Float32, 1},
		{"sdm120", "total_kvarh", 4, 0x0158, Float32, 1},
		{"sdm630", "power", 4, 0x0034, Float32, 1},
		{"sdm630", "thd_voltage_l1", 4, 0x00EA, Float32, 1},
		{"sdm630", "total_kwh_l3", 4, 0x016A, Float32, 1},
		{"sdm630", "import_kwh", 4, 0x0048, Float32, 1},
		{"ddsu666", "voltage", 4, 0x2000, Float32, 1},
		{"ddsu666", "power", 4, 0x2004, Float32, 1000},
		{"ddsu666", "import_kwh", 4, 0x4000, Float32, 1},
		{"ddsu666", "export_kwh", 4, 0x400A, Float32, 1},
		{"dtsu666", "voltage_l1", 3, 0x2006, Float32, 0.1},
		{"dtsu666", "current_l3", 3, 0x2010, Float32, 0.001},
		{"dtsu666", "power", 3, 0x2012, Float32, 0.1},
		{"dtsu666", "frequency", 3, 0x2044, Float32, 0.01},
		{"dtsu666", "import_kwh", 3, 0x101E, Float32, 1},
		{"dtsu666", "export_kwh_l3", 3, 0x102E, Float32, 1},
		{"dds238-2", "total_kwh", 3, 0x0000, Uint32, 0.01},
		{"dds238-2", "import_kwh", 3, 0x000A, Uint32, 0.01},
		{"dds238-2", "power", 3, 0x000E, Int16, 1},
		{"dds238-2", "frequency", 3, 0x0011, Uint16, 0.01},
		{"dds238-2", "line_config", 3, 0x0015, Uint16, 1},
	}
	for _, tt := range tests {
		m, err := Lookup(tt.m)
		if err != nil {
			t.Fatalf("Lookup(%q): %v", tt.m, err)
		}
		if m.Function != tt.fc {
			t.Errorf("%s: function %d, want %d", tt.m, m.Function, tt.fc)
		}
		r, ok := m.Register(tt.q)
		if !ok {
			t.Errorf("%s: no %s register", tt.m, tt.q)
			continue
		}
		if r.Address != tt.addr || r.Type != tt.typ || r.Scale != tt.scale || r.WordOrder != ABCD {
			t.Errorf("%s %s = %#04x %s ×%v %s, want %#04x %s ×%v ABCD", tt.m, tt.q, r.Address, r.Type, r.Scale, r.WordOrder, tt.addr, tt.typ, tt.scale)
		}
	}
}

func TestLookupUnknown(t *testing.T) {
	if _, err := Lookup("sdm72"); !errors.Is(err, ErrUnknownMap) {
		t.Errorf("Lookup(sdm72) error = %v, want ErrUnknownMap", err)
	}
}

func TestLookupReturnsCopy(t *testing.T) {
	m, _ := Lookup("sdm120")
	m.Registers[0].Address = 0x9999
	m2, _ := Lookup("sdm120")
	if m2.Registers[0].Address == 0x9999 {
		t.Error("changing a looked-up map changed the shipped one")
	}
}

// TestVectors decodes the reply words of the domain.md §3.3 vectors with
// the shipped maps.
func TestVectors(t *testing.T) {
	tests := []struct {
		name, m, q string
		words      []uint16
		want, tol  float64
	}{
		{"SDM voltage 01 04 04 43 66 33 33", "sdm120", "voltage", []uint16{0x4366, 0x3333}, 230.2, 1e-4},
		{"SDM630 voltage L1", "sdm630", "voltage_l1", []uint16{0x4366, 0x3333}, 230.2, 1e-4},
		{"SDM import 43 EF 3E FA", "sdm120", "import_kwh", []uint16{0x43EF, 0x3EFA}, 478.492, 1e-4},
		{"SDM630 import 43 EF 3E FA", "sdm630", "import_kwh", []uint16{0x43EF, 0x3EFA}, 478.492, 1e-4},
		{"DDSU666 published 43 66 33 34", "ddsu666", "voltage", []uint16{0x4366, 0x3334}, 230.2, 1e-4},
		{"DTSU666 Ua 45 0F 00 00 ÷10", "dtsu666", "voltage_l1", []uint16{0x450F, 0x0000}, 228.8, 1e-9},
		{"DDS238 import u32 ×0.01", "dds238-2", "import_kwh", []uint16{0x0000, 0xBAE4}, 478.44, 1e-9},
		{"DDS238 power s16 negative", "dds238-2", "power", []uint16{0xFF38}, -200, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Lookup(tt.m)
			if err != nil {
				t.Fatal(err)
			}
			r, _ := m.Register(tt.q)
			got, err := r.Decode(tt.words)
			if err != nil || math.Abs(got-tt.want) > tt.tol {
				t.Errorf("Decode(%04x) = %v, %v, want %v", tt.words, got, err, tt.want)
			}
		})
	}
}

// TestDDS238Block decodes the reply to the [C] vector 01 03 00 00 00 12
// (0x0000..0x0011 in one read).
func TestDDS238Block(t *testing.T) {
	m, _ := Lookup("dds238-2")
	w := make([]uint16, 0x12)
	w[0x00], w[0x01] = 0x0001, 0x0002 // total 65538 × 0.01
	w[0x0A], w[0x0B] = 0x0000, 0x3039 // import 12345 × 0.01
	w[0x0C] = 2302                    // 230.2 V
	w[0x0D] = 512                     // 5.12 A
	w[0x0E] = 1178                    // W
	w[0x10] = 998                     // PF
	w[0x11] = 5001                    // Hz
	got, err := m.DecodeBlock(0, w)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"total_kwh": 655.38, "export_kwh": 0, "import_kwh": 123.45, "voltage": 230.2, "current": 5.12,
		"power": 1178, "reactive": 0, "pf": 0.998, "frequency": 50.01,
	}
	approx := cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 1e-9 })
	if diff := cmp.Diff(want, got, approx); diff != "" {
		t.Errorf("DecodeBlock (-want +got):\n%s", diff)
	}
}

// TestWordOrder uses libmodbus's fixtures for 123456.0f.
func TestWordOrder(t *testing.T) {
	tests := []struct {
		order WordOrder
		words []uint16
	}{
		{ABCD, []uint16{0x47F1, 0x2000}},
		{CDAB, []uint16{0x2000, 0x47F1}},
		{BADC, []uint16{0xF147, 0x0020}},
		{DCBA, []uint16{0x0020, 0xF147}},
	}
	for _, tt := range tests {
		r := Register{Quantity: "power", Words: 2, Type: Float32, WordOrder: tt.order, Scale: 1}
		got, err := r.Encode(123456)
		if err != nil || !cmp.Equal(tt.words, got) {
			t.Errorf("%s: Encode(123456) = %04x, %v, want %04x", tt.order, got, err, tt.words)
		}
		if v, err := r.Decode(tt.words); err != nil || v != 123456 {
			t.Errorf("%s: Decode(%04x) = %v, %v, want 123456", tt.order, tt.words, v, err)
		}
	}
	r := Register{Quantity: "voltage", Words: 1, Type: Uint16, WordOrder: BADC, Scale: 1}
	if v, _ := r.Decode([]uint16{0x3412}); v != 0x1234 {
		t.Errorf("uint16 BADC Decode(3412) = %#x, want 0x1234", int(v))
	}
}

func TestEncodeRange(t *testing.T) {
	tests := []struct {
		r    Register
		v    float64
		want []uint16
		err  error
	}{
		{Register{Quantity: "import_kwh", Words: 2, Type: Uint32, Scale: 0.01}, 478.44, []uint16{0, 0xBAE4}, nil},
		{Register{Quantity: "import_kwh", Words: 2, Type: Uint32, Scale: 0.01}, -1, nil, ErrRange},
		{Register{Quantity: "power", Words: 1, Type: Int16, Scale: 1}, -200, []uint16{0xFF38}, nil},
		{Register{Quantity: "power", Words: 1, Type: Int16, Scale: 1}, 40000, nil, ErrRange},
		{Register{Quantity: "voltage", Words: 1, Type: Uint16, Scale: 0.1}, 230.2, []uint16{2302}, nil},
		{Register{Quantity: "voltage", Words: 1, Type: Uint16, Scale: 0.1}, math.NaN(), nil, ErrRange},
		{Register{Quantity: "power", Words: 2, Type: Float32, Scale: 1e-30}, 1e10, nil, ErrRange},
	}
	for _, tt := range tests {
		got, err := tt.r.Encode(tt.v)
		if !errors.Is(err, tt.err) || !cmp.Equal(tt.want, got) {
			t.Errorf("%s %s Encode(%v) = %04x, %v, want %04x, %v", tt.r.Quantity, tt.r.Type, tt.v, got, err, tt.want, tt.err)
		}
	}
	r := Register{Quantity: "power", Words: 2, Type: Float32, Scale: 1}
	if _, err := r.Decode([]uint16{1}); !errors.Is(err, ErrWords) {
		t.Errorf("Decode(1 word) error = %v, want ErrWords", err)
	}
}

func TestParse(t *testing.T) {
	m, err := Parse([]byte(`{"name":"x1","function":4,"registers":[
		{"quantity":"import_kwh","address":72,"words":2,"type":"float32"},
		{"quantity":"voltage","address":"0x0000","words":2,"type":"float32","word_order":"CDAB","scale":0.1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Map{Name: "x1", Function: 4, WordOrder: ABCD, Registers: []Register{
		{Quantity: "import_kwh", Address: 0x48, Words: 2, Type: Float32, WordOrder: ABCD, Scale: 1},
		{Quantity: "voltage", Address: 0, Words: 2, Type: Float32, WordOrder: CDAB, Scale: 0.1},
	}}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	b, _ := json.Marshal(m.Registers[0])
	if !strings.Contains(string(b), `"address":"0x0048"`) {
		t.Errorf("Marshal = %s, want address \"0x0048\"", b)
	}
}

// TestParseErrors checks that validation names every bad field at once.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		json string
		want []string
	}{
		{"unknown field", `{"name":"x","function":4,"registers":[],"colour":1}`, []string{"colour"}},
		{"bad address", `{"name":"x","function":4,"registers":[{"quantity":"import_kwh","address":"0x1FFFF","words":2,"type":"float32"}]}`,
			[]string{"address"}},
		{"everything", `{"name":"X Y","function":6,"word_order":"ACBD","reserved":[{"from":9,"to":1}],"registers":[
			{"quantity":"improt_kwh","address":0,"words":2,"type":"float32"},
			{"quantity":"power","address":1,"words":1,"type":"float32","scale":0},
			{"quantity":"voltage","address":10,"words":2,"type":"float33"},
			{"quantity":"voltage","address":65535,"words":2,"type":"uint32","word_order":"XY"}]}`,
			[]string{
				`name "X Y"`, "function 6", `word_order "ACBD"`, "reserved[0]",
				`registers[0] (improt_kwh): quantity "improt_kwh" is not known`,
				"registers[1] (power): words 1: type float32 takes 2",
				"registers[1] (power): address 0x0001 overlaps registers[0]",
				`registers[2] (voltage): type "float33"`,
				`registers[3] (voltage): quantity "voltage" is also registers[2]`,
				"registers[3] (voltage): address 0xFFFF: 2 words run past 0xFFFF",
				`registers[3] (voltage): word_order "XY"`,
				"no import_kwh register",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.json))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse error = %v, want ErrInvalid", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse error does not name %q:\n%v", w, err)
				}
			}
		})
	}
}

func BenchmarkDecodeFloat32(b *testing.B) {
	m, _ := Lookup("sdm630")
	r, _ := m.Register(ImportEnergy)
	w := []uint16{0x43EF, 0x3EFA}
	for b.Loop() {
		if _, err := r.Decode(w); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeBlock(b *testing.B) {
	m, _ := Lookup("dds238-2")
	w := make([]uint16, 0x12)
	for b.Loop() {
		if _, err := m.DecodeBlock(0, w); err != nil {
			b.Fatal(err)
		}
	}
}
