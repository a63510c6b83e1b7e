//go:build linux

package rs485

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/meterlink/meterlink/dlt645"
)

// TestPollModbusRTUOverPTY runs the production RTU client (rtu://, the
// library's serial transport) against metersim's RTU slave over a socat
// null modem: two meters on the line and a third address nobody answers.
// The line settings differ on purpose (8N1 client, any slave): a pty
// ignores them.
func TestPollModbusRTUOverPTY(t *testing.T) {
	a, b := ptyPair(t)
	sdm := newSimMeter(t, "sdm120", 1)
	sdm.SetEnergyWh(478492)
	sdm.SetVoltage(230.2)
	sdm.SetPower(1500)
	sdm.SetCurrent(6.5)
	dds := newSimMeter(t, "dds238-2", 2)
	dds.SetEnergyWh(12340)
	dds.SetPower(-200)
	bus := newBus(t, sdm, dds)
	slave := openEnd(t, b)
	serve(t, "ServeRTU", func(ctx context.Context) error { return bus.ServeRTU(ctx, slave) })

	p := newPoller(t, Config{
		Protocol: Modbus, URL: "rtu://" + a, Timeout: 150 * time.Millisecond,
		Meters: []MeterConfig{
			{ID: "sdm", Address: "1", Map: "sdm120"},
			{ID: "dds", Address: "2", Map: "dds238-2"},
			{ID: "gone", Address: "7", Map: "sdm120"},
		},
	})
	start := time.Now()
	got := p.Poll(context.Background())
	elapsed := time.Since(start)
	want := []Result{
		{Meter: "sdm", EnergyWh: 478492, ExportWh: ptr(int64(0)), PowerW: ptr(1500.0), VoltageV: ptr(230.2), CurrentA: ptr(6.5)},
		{Meter: "dds", EnergyWh: 12340, ExportWh: ptr(int64(0)), PowerW: ptr(-200.0), VoltageV: ptr(230.0), CurrentA: ptr(0.0)},
		{Meter: "gone", Err: ErrMeterSilent},
	}
	if diff := cmp.Diff(want, got, approx, ignoreTime, cmpopts.EquateErrors()); diff != "" {
		t.Errorf("Poll (-want +got):\n%s", diff)
	}
	// The silent meter costs 3 × 150 ms; the others answer at once.
	if elapsed > 450*time.Millisecond+3*time.Second {
		t.Errorf("Poll took %v", elapsed)
	}
	sdm.AddEnergyWh(8)
	if got := p.Poll(context.Background()); got[0].EnergyWh != 478500 {
		t.Errorf("second poll: %d Wh, %v, want 478500", got[0].EnergyWh, got[0].Err)
	}
}

// TestPollDLT645OverPTY reads dlt645.Meter simulators over a socat null
// modem with the DL/T 645-2007 and -1997 protocols, including an address
// no meter answers.
func TestPollDLT645OverPTY(t *testing.T) {
	tests := []struct {
		protocol string
		want     Result
	}{
		// 2007: 0.01 kWh, 0.1 V, 0.001 A, 0.0001 kW.
		{DLT645, Result{Meter: "m1", EnergyWh: 1234560, ExportWh: ptr(int64(50)), PowerW: ptr(1234.5), VoltageV: ptr(224.8), CurrentA: ptr(5.123)}},
		// 1997: whole volts and 0.01 A; no reverse-energy read in the
		// simulator's 1997 table beyond 9020.
		{DLT645v97, Result{Meter: "m1", EnergyWh: 1234560, ExportWh: ptr(int64(50)), PowerW: ptr(1234.5), VoltageV: ptr(224.0), CurrentA: ptr(5.12)}},
	}
	for _, tt := range tests {
		t.Run(tt.protocol, func(t *testing.T) {
			a, b := ptyPair(t)
			addr := dlt645.MustParseAddress("000000000161")
			m := dlt645.NewMeter(addr, dlt645.MeterOptions{Preamble: 4})
			m.SetEnergy(123456) // 1234.56 kWh
			m.SetReverseEnergy(5)
			m.SetVoltage(2248, 2200, 2200)
			m.SetCurrent(5123, 0, 0)
			m.SetPower(12345, 12345, 0, 0)
			slave := openEnd(t, b)
			serve(t, "Meter.Serve", func(ctx context.Context) error { return m.Serve(ctx, slave) })

			const timeout = 150 * time.Millisecond
			p := newPoller(t, Config{
				Protocol: tt.protocol, URL: a, Timeout: timeout,
				Meters: []MeterConfig{{ID: "m1", Address: "000000000161"}, {ID: "m2", Address: "000000000162"}},
			})
			start := time.Now()
			got := p.Poll(context.Background())
			elapsed := time.Since(start)
			want := []Result{tt.want, {Meter: "m2", Err: ErrMeterSilent}}
			if diff := cmp.Diff(want, got, approx, ignoreTime, cmpopts.EquateErrors()); diff != "" {
				t.Errorf("Poll (-want +got):\n%s", diff)
			}
			if elapsed < 3*timeout || elapsed > 3*timeout+3*time.Second {
				t.Errorf("Poll took %v, want about %v for the silent meter", elapsed, 3*timeout)
			}
			m.AddEnergy(1, 0)
			if got := p.Poll(context.Background()); got[0].EnergyWh != 1234570 {
				t.Errorf("second poll: %d Wh, %v, want 1234570", got[0].EnergyWh, got[0].Err)
			}
		})
	}
}

// TestDLT645SilentLineWithoutMeters checks ErrMeterSilent with nobody on
// the line and no retries.
func TestDLT645SilentLineWithoutMeters(t *testing.T) {
	a, _ := ptyPair(t)
	p := newPoller(t, Config{
		Protocol: DLT645, URL: a, Timeout: 50 * time.Millisecond, Retries: -1,
		Meters: []MeterConfig{{ID: "m1", Address: "000000000161"}},
	})
	start := time.Now()
	got := p.Poll(context.Background())
	if !errors.Is(got[0].Err, ErrMeterSilent) {
		t.Errorf("Poll error = %v, want ErrMeterSilent", got[0].Err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("Poll took %v with a 50ms timeout and no retries", elapsed)
	}
}

func TestNewOpenFails(t *testing.T) {
	for _, cfg := range []Config{
		{Protocol: DLT645, URL: "/nonexistent/tty", Meters: []MeterConfig{{ID: "m1", Address: "000000000161"}}},
		{Protocol: Modbus, URL: "rtu:///nonexistent/tty", Meters: []MeterConfig{{ID: "m1", Address: "1", Map: "sdm120"}}},
	} {
		if _, err := New(cfg, nil); !errors.Is(err, ErrLink) {
			t.Errorf("New(%s %s) error = %v, want ErrLink", cfg.Protocol, cfg.URL, err)
		}
	}
}
