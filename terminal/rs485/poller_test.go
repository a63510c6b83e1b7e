package rs485

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/meterlink/meterlink/regmap"
)

// approx compares float fields to 1e-3, enough for float32 registers.
var approx = cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) <= 1e-3*math.Max(1, math.Abs(b)) })

var ignoreTime = cmpopts.IgnoreFields(Result{}, "Time")

// TestPollModbusTCP polls a simulated meter of every shipped map over
// Modbus TCP on loopback, all on one bus, plus a silent one.
func TestPollModbusTCP(t *testing.T) {
	// Energy values a float32 carries to the Wh; the DDS238 counts 10 Wh.
	energy := map[string]int64{"sdm120": 478492, "sdm630": 1234567, "ddsu666": 8000125, "dtsu666": 16777, "dds238-2": 4321230}
	var cfg Config
	var want []Result
	var bus []any
	names := regmap.Names()
	for i, name := range names {
		unit := uint8(i + 1)
		m := newSimMeter(t, name, unit)
		m.SetEnergyWh(energy[name])
		m.SetExportWh(1250)
		m.SetVoltage(230.2)
		m.SetCurrent(4.25)
		m.SetPower(978)
		bus = append(bus, m)
		cfg.Meters = append(cfg.Meters, MeterConfig{ID: "m-" + name, Address: itoa(unit), Map: name})
		want = append(want, Result{
			Meter: "m-" + name, EnergyWh: energy[name], ExportWh: ptr(int64(1250)),
			PowerW: ptr(978.0), VoltageV: ptr(230.2), CurrentA: ptr(4.25),
		})
	}
	silent := newSimMeter(t, "sdm120", 40)
	silent.SetSilent(true)
	b := newBus(t, silent)
	for _, m := range bus {
		if err := b.Add(m.(interface{ Unit() uint8 }).(simMeter)); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := b.ListenTCP("127.0.0.1:0", testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })

	cfg.Protocol, cfg.URL = Modbus, srv.URL()
	cfg.Meters = append(cfg.Meters, MeterConfig{ID: "silent", Address: "40", Map: "sdm120"})
	cfg.Now = func() time.Time { return time.Unix(1700000000, 0) }
	p := newPoller(t, cfg)
	got := p.Poll(context.Background())

	if len(got) != len(want)+1 {
		t.Fatalf("Poll returned %d results, want %d", len(got), len(want)+1)
	}
	if !errors.Is(got[len(want)].Err, ErrMeterSilent) {
		t.Errorf("silent meter: error %v, want ErrMeterSilent", got[len(want)].Err)
	}
	if diff := cmp.Diff(want, got[:len(want)], approx, cmpopts.EquateErrors()); diff != "" {
		t.Errorf("Poll (-want +got):\n%s", diff)
	}
	for _, r := range got[:len(want)] {
		if !r.Time.Equal(time.Unix(1700000000, 0)) {
			t.Errorf("%s: Time = %v, want the injected clock", r.Meter, r.Time)
		}
	}

	// The meters keep counting between polls.
	b.Meter(1).AddEnergyWh(1000)
	if got := p.Poll(context.Background()); got[0].Err != nil || got[0].EnergyWh != energy[names[0]]+1000 {
		t.Errorf("second poll: %s = %d Wh, %v, want %d", got[0].Meter, got[0].EnergyWh, got[0].Err, energy[names[0]]+1000)
	}
}
