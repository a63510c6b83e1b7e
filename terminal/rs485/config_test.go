package rs485

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/meterlink/meterlink/regmap"
)

func TestConfigValid(t *testing.T) {
	custom, err := regmap.Parse([]byte(`{"name":"my-meter","function":3,"registers":[
		{"quantity":"import_kwh","address":"0x0100","words":2,"type":"uint32","scale":0.1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []Config{
		{Protocol: Modbus, URL: "rtu:///dev/ttyUSB0", Meters: []MeterConfig{{ID: "m1", Address: "1", Map: "sdm120"}}},
		{Protocol: Modbus, URL: "tcp://10.0.0.5:502", Meters: []MeterConfig{{ID: "m1", Address: "247", Map: "dtsu666"}}},
		{Protocol: Modbus, URL: "rtuovertcp://gw:4001", Speed: 2400, Parity: "E", DataBits: 8, StopBits: 2,
			Timeout: 500 * time.Millisecond, Retries: -1, Maps: []regmap.Map{custom},
			Meters: []MeterConfig{{ID: "m1", Address: "1", Map: "my-meter"}, {ID: "m2", Address: "2", Map: "dds238-2"}}},
		{Protocol: DLT645, URL: "/dev/ttyS1", Meters: []MeterConfig{{ID: "m1", Address: "000000000161"}, {ID: "m2", Address: "AAAAAAAAA123"}}},
		{Protocol: DLT645v97, URL: "/dev/ttyS1", Meters: []MeterConfig{{ID: "m1", Address: "000000000161"}}},
	} {
		if err := cfg.Validate(); err != nil {
			t.Errorf("Validate(%s %s) = %v, want nil", cfg.Protocol, cfg.URL, err)
		}
	}
}

// TestConfigValidateNamesEveryField checks that all problems are reported
// at once, each naming its field.
func TestConfigValidateNamesEveryField(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"empty", Config{}, []string{`protocol ""`, "meters: none"}},
		{"modbus", Config{
			Protocol: Modbus, URL: "rtu://dev/ttyUSB0", Speed: 9601, Parity: "X", DataBits: 9, StopBits: 3,
			Timeout: time.Minute, Retries: 11,
			Meters: []MeterConfig{
				{ID: "ok", Address: "1", Map: "sdm120"},
				{ID: "ok", Address: "1", Map: "sdm72"},
				{ID: "bad id!", Address: "248"},
				{ID: "m4", Address: "4", Map: "sdm120"},
			},
		}, []string{
			`url "rtu://dev/ttyUSB0": want rtu:///dev/ttyUSB0`, "speed 9601", `parity "X"`, "data bits 9", "stop bits 3",
			"timeout 1m0s", "retries 11",
			`meters[1] (ok): id "ok" is also meters[0]`, `meters[1] (ok): address "1" is also meters[0]`,
			`meters[1] (ok): map: unknown register map "sdm72"`,
			`meters[2] (bad id!): id "bad id!"`, `meters[2] (bad id!): address "248": want a Modbus unit id 1..247`,
			"meters[2] (bad id!): map: required for Modbus",
		}},
		{"modbus tcp without port", Config{Protocol: Modbus, URL: "tcp://gw", Meters: []MeterConfig{{ID: "m", Address: "1", Map: "sdm120"}}},
			[]string{`url "tcp://gw": want tcp://host:port`}},
		{"dlt645", Config{
			Protocol: DLT645, URL: "rtu:///dev/ttyS1",
			Meters: []MeterConfig{
				{ID: "m1", Address: "161"},
				{ID: "m2", Address: "999999999999"},
				{ID: "m3", Address: "000000000161", Map: "sdm120"},
				{ID: "m4", Address: "000000000161"},
			},
		}, []string{
			`url "rtu:///dev/ttyS1": want a serial device path`,
			`meters[0] (m1): address "161": want the meter's 12-digit DL/T 645 address`,
			`meters[1] (m2): address "999999999999"`,
			`meters[2] (m3): map "sdm120": DL/T 645 meters take no register map`,
			`meters[3] (m4): address "000000000161" is also meters[2]`,
		}},
		{"bad extra map", Config{Protocol: Modbus, URL: "tcp://gw:502", Maps: []regmap.Map{{Name: "x"}},
			Meters: []MeterConfig{{ID: "m", Address: "1", Map: "x"}}}, []string{"maps[0]: invalid register map"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if err == nil {
				t.Fatal("Validate = nil, want errors")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate does not report %q; got:\n%v", w, err)
				}
			}
			if _, nerr := New(tt.cfg, nil); nerr == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	tests := []struct {
		in   Config
		want Config
	}{
		{Config{Protocol: Modbus}, Config{Protocol: Modbus, Speed: 9600, Parity: "N", DataBits: 8, StopBits: 1, Timeout: time.Second, Retries: 2}},
		{Config{Protocol: DLT645}, Config{Protocol: DLT645, Speed: 2400, Parity: "E", DataBits: 8, StopBits: 1, Timeout: time.Second, Retries: 2}},
		{Config{Protocol: DLT645v97}, Config{Protocol: DLT645v97, Speed: 1200, Parity: "E", DataBits: 8, StopBits: 1, Timeout: time.Second, Retries: 2}},
		{Config{Protocol: Modbus, Speed: 2400, Parity: "E", Retries: -1}, Config{Protocol: Modbus, Speed: 2400, Parity: "E", DataBits: 8, StopBits: 1, Timeout: time.Second, Retries: 0}},
	}
	for _, tt := range tests {
		got := tt.in.withDefaults()
		if got.Now == nil {
			t.Errorf("%s: Now not defaulted", tt.in.Protocol)
		}
		if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(Config{}, "Now")); diff != "" {
			t.Errorf("withDefaults(%s) (-want +got):\n%s", tt.in.Protocol, diff)
		}
	}
}
