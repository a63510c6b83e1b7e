package metersim

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/meterlink/meterlink/regmap"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func TestCRC16(t *testing.T) {
	// domain.md §3.1: 01 04 00 00 00 02 → CRC 0xCB71, sent 71 CB.
	req := unhex(t, "01 04 00 00 00 02")
	if got := crc16(req); got != 0xCB71 {
		t.Errorf("crc16(% x) = %#04x, want 0xcb71", req, got)
	}
	if got := appendCRC(req); !bytes.Equal(got, unhex(t, "01 04 00 00 00 02 71 CB")) {
		t.Errorf("appendCRC = % x, want ... 71 cb", got)
	}
	// Every frame of domain.md §3.3 carries a correct CRC.
	for _, v := range []string{
		"01 04 00 00 00 02 71 CB", "01 04 04 43 66 33 33 5A FA", "01 04 04 43 66 33 34 1B 38",
		"01 04 00 48 00 02 F1 DD", "01 04 04 43 EF 3E FA 4F D6", "01 04 01 56 00 02 90 27",
		"01 04 20 00 00 02 7A 0B", "01 04 40 00 00 02 64 0B", "01 03 20 06 00 02 2F CA",
		"01 03 04 45 0F 00 00 DF 3C", "01 03 10 1E 00 02 A0 CD", "01 03 00 00 00 12 C5 C7",
		"01 84 02 C2 C1", "01 83 02 C0 F1", "01 03 00 00 00 08 44 0C",
		"01 03 08 01 02 03 04 21 22 23 24 35 35", "01 06 00 02 00 96 A8 64",
	} {
		if !crcOK(unhex(t, v)) {
			t.Errorf("CRC of %s does not check", v)
		}
	}
}

func TestScanRequest(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int
	}{
		{"empty", "", 0},
		{"one byte", "01", 0},
		{"partial FC04", "01 04 00 00 00", 0},
		{"FC04", "01 04 00 00 00 02 71 CB", 8},
		{"FC04 and more", "01 04 00 00 00 02 71 CB 01 04", 8},
		{"FC04 bad CRC", "01 04 00 00 00 02 71 CC", -1},
		{"FC16 partial header", "01 10 00 00 00 02", 0},
		{"FC16 needs data", "01 10 00 00 00 02 04 00 00", 0},
		{"FC16 byte count too long", "01 10 00 00 00 02 FF", -1},
		{"FC06", "01 06 00 02 00 96 A8 64", 8},
		{"unknown FC, no CRC yet", "01 41 02 03", 0},
		{"noise before a frame", "FF 00 01 04 00 00 00 02 71 CB", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := scanRequest(unhex(t, tt.in)); got != tt.want {
				t.Errorf("scanRequest(%s) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
	unknown := appendCRC([]byte{0x01, 0x41, 0x02, 0x03})
	if got := scanRequest(append(unknown, 0x01)); got != len(unknown) {
		t.Errorf("scanRequest(unknown FC with CRC) = %d, want %d", got, len(unknown))
	}
}

func newBus(t testing.TB, meters ...*ModbusMeter) *ModbusBus {
	t.Helper()
	b, err := NewModbusBus(meters...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newMeter(t testing.TB, mapName string, unit uint8) *ModbusMeter {
	t.Helper()
	m, err := NewModbusMeter(mapName, unit)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRTUVectors feeds the request vectors of domain.md §3.3 to the
// simulated meters and checks the reply bytes.
func TestRTUVectors(t *testing.T) {
	sdm120 := newMeter(t, "sdm120", 1)
	sdm120.SetVoltage(230.2)
	sdm120.SetEnergyWh(478492)
	sdm630 := newMeter(t, "sdm630", 1)
	sdm630.SetVoltage(230.2)
	sdm630.SetEnergyWh(478492)
	ddsu := newMeter(t, "ddsu666", 1)
	ddsu.SetVoltage(230.2)
	dtsu := newMeter(t, "dtsu666", 1)
	dtsu.SetVoltage(228.8)

	tests := []struct {
		name  string
		meter *ModbusMeter
		req   string
		want  string
	}{
		{"SDM120 voltage 230.2", sdm120, "01 04 00 00 00 02 71 CB", "01 04 04 43 66 33 33 5A FA"},
		{"SDM630 voltage 230.2", sdm630, "01 04 00 00 00 02 71 CB", "01 04 04 43 66 33 33 5A FA"},
		{"SDM120 import 478.492", sdm120, "01 04 00 48 00 02 F1 DD", "01 04 04 43 EF 3E FA 4F D6"},
		{"SDM630 import 478.492", sdm630, "01 04 00 48 00 02 F1 DD", "01 04 04 43 EF 3E FA 4F D6"},
		{"DDSU666 U", ddsu, "01 04 20 00 00 02 7A 0B", "01 04 04 43 66 33 33 5A FA"},
		{"DTSU666 Ua 228.8", dtsu, "01 03 20 06 00 02 2F CA", "01 03 04 45 0F 00 00 DF 3C"},
		{"exception 02 to FC04", sdm120, "01 04 00 02 00 02 D0 0B", "01 84 02 C2 C1"},
		{"exception 02 to FC03", sdm120, "01 03 00 00 00 02 C4 0B", "01 83 02 C0 F1"},
		{"wrong unit: silence", sdm120, "02 04 00 00 00 02 71 F8", ""},
		{"broadcast: silence", sdm120, "00 04 00 00 00 02 70 1A", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := newBus(t, tt.meter).handleFrame(unhex(t, tt.req))
			if want := unhex(t, tt.want); !bytes.Equal(got, want) {
				t.Errorf("reply to %s = % X, want % X", tt.req, got, want)
			}
		})
	}
}

// TestRTUDDS238 reads the [C] block vector 01 03 00 00 00 12 and checks
// FC16 writes and the FC06 rejection.
func TestRTUDDS238(t *testing.T) {
	m := newMeter(t, "dds238-2", 1)
	m.SetEnergyWh(123450)
	m.SetExportWh(10)
	m.SetVoltage(230.2)
	m.SetCurrent(5.12)
	m.SetPower(-200)
	b := newBus(t, m)

	reply := b.handleFrame(unhex(t, "01 03 00 00 00 12 C5 C7"))
	if len(reply) != 3+36+2 || !crcOK(reply) || reply[2] != 36 {
		t.Fatalf("reply = % X, want 36 data bytes and a good CRC", reply)
	}
	words := make([]uint16, 18)
	for i := range words {
		words[i] = uint16(reply[3+2*i])<<8 | uint16(reply[4+2*i])
	}
	got, err := m.Map().DecodeBlock(0, words)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"total_kwh": 123.46, "export_kwh": 0.01, "import_kwh": 123.45, "voltage": 230.2, "current": 5.12,
		"power": -200, "reactive": 0, "pf": 1, "frequency": 50,
	}
	approx := cmp.Comparer(func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 })
	if diff := cmp.Diff(want, got, approx); diff != "" {
		t.Errorf("block read (-want +got):\n%s", diff)
	}

	if got := b.handleFrame(appendCRC(unhex(t, "01 06 00 00 00 00"))); !bytes.Equal(got, appendCRC(unhex(t, "01 86 01"))) {
		t.Errorf("FC06 reply = % X, want exception 01", got)
	}
	clear := appendCRC(unhex(t, "01 10 00 00 00 02 04 00 00 00 00"))
	if got := b.handleFrame(clear); !bytes.Equal(got, appendCRC(unhex(t, "01 10 00 00 00 02"))) {
		t.Errorf("FC16 reply = % X, want echo of address and quantity", got)
	}
	if m.EnergyWh() != 0 || m.Value(regmap.ExportEnergy) != 0 {
		t.Errorf("after writing total 0: import %d Wh, export %v kWh, want both 0", m.EnergyWh(), m.Value(regmap.ExportEnergy))
	}
	readOnly := appendCRC(unhex(t, "01 10 00 0A 00 02 04 00 00 00 01"))
	if got := b.handleFrame(readOnly); !bytes.Equal(got, appendCRC(unhex(t, "01 90 02"))) {
		t.Errorf("FC16 to import energy = % X, want exception 02", got)
	}
	badCount := appendCRC(unhex(t, "01 10 00 00 00 02 02 00 00"))
	if got := b.handleFrame(badCount); !bytes.Equal(got, appendCRC(unhex(t, "01 90 03"))) {
		t.Errorf("FC16 with a short byte count = % X, want exception 03", got)
	}
}

func TestServeRTUOverPipe(t *testing.T) {
	m := newMeter(t, "sdm120", 1)
	m.SetVoltage(230.2)
	b := newBus(t, m)
	client, server := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- b.ServeRTU(ctx, server) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("ServeRTU: %v", err)
		}
		client.Close()
	})
	_ = client.SetDeadline(time.Now().Add(5 * time.Second))

	// Line noise, then a request split in two writes, then a request for
	// another unit (no reply), then the request again.
	for _, chunk := range []string{"FF 00", "01 04 00", "00 00 02 71 CB", "02 04 00 00 00 02 71 F8", "01 04 00 00 00 02 71 CB"} {
		if _, err := client.Write(unhex(t, chunk)); err != nil {
			t.Fatalf("write: %v", err)
		}
		if strings.HasSuffix(chunk, "71 CB") {
			got := make([]byte, 9)
			if _, err := io.ReadFull(client, got); err != nil {
				t.Fatalf("read reply: %v", err)
			}
			if want := unhex(t, "01 04 04 43 66 33 33 5A FA"); !bytes.Equal(got, want) {
				t.Errorf("reply = % X, want % X", got, want)
			}
		}
	}
}

func TestServeRTUDropsIdlePartialFrame(t *testing.T) {
	m := newMeter(t, "sdm120", 1)
	b := newBus(t, m)
	client, server := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- b.ServeRTU(ctx, server) }()
	t.Cleanup(func() {
		cancel()
		<-errc
		client.Close()
	})
	_ = client.SetDeadline(time.Now().Add(5 * time.Second))
	// A frame start that never completes: "01 10 ..." announces 122 data
	// bytes. Only the idle timeout can clear it.
	if _, err := client.Write(unhex(t, "01 10 00 00 00 02 7A 00")); err != nil {
		t.Fatal(err)
	}
	// The fallback is a timeout by nature; waiting past it is the test.
	time.Sleep(2 * rtuGap)
	if _, err := client.Write(unhex(t, "01 04 00 00 00 02 71 CB")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 9)
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatalf("read reply after the broken frame: %v", err)
	}
}
