package rs485

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/meterlink/meterlink/metersim"
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
	var meters []*metersim.ModbusMeter
	names := regmap.Names()
	for i, name := range names {
		unit := uint8(i + 1)
		m := newSimMeter(t, name, unit)
		m.SetEnergyWh(energy[name])
		m.SetExportWh(1250)
		m.SetVoltage(230.2)
		m.SetCurrent(4.25)
		m.SetPower(978)
		meters = append(meters, m)
		cfg.Meters = append(cfg.Meters, MeterConfig{ID: "m-" + name, Address: strconv.Itoa(int(unit)), Map: name})
		want = append(want, Result{
			Meter: "m-" + name, EnergyWh: energy[name], ExportWh: ptr(int64(1250)),
			PowerW: ptr(978.0), VoltageV: ptr(230.2), CurrentA: ptr(4.25),
		})
	}
	silent := newSimMeter(t, "sdm120", 40)
	silent.SetSilent(true)
	b := newBus(t, append(meters, silent)...)
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
	if diff := cmp.Diff(want, got[:len(want)], approx, ignoreTime, cmpopts.EquateErrors()); diff != "" {
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

// mute is a TCP peer that reads requests and never answers: a meter
// behind a dumb serial-to-TCP converter that stays silent. It counts the
// bytes it receives.
func mute(t *testing.T) (addr string, received *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	received = new(atomic.Int64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				n, _ := io.Copy(io.Discard, c)
				received.Add(n)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return l.Addr().String(), received
}

// TestSilentMeterTimesOut checks the retry budget: a meter that never
// answers gives ErrMeterSilent after exactly 1 + Retries requests, within
// about (1 + Retries) × Timeout.
func TestSilentMeterTimesOut(t *testing.T) {
	tests := []struct {
		name    string
		retries int
		sends   int64
	}{
		{"default retries", 0, 3},
		{"no retries", -1, 1},
		{"four retries", 4, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, received := mute(t)
			const timeout = 50 * time.Millisecond
			p := newPoller(t, Config{
				Protocol: Modbus, URL: "rtuovertcp://" + addr, Timeout: timeout, Retries: tt.retries,
				Meters: []MeterConfig{{ID: "m1", Address: "1", Map: "sdm120"}},
			})
			start := time.Now()
			got := p.Poll(context.Background())
			elapsed := time.Since(start)
			if !errors.Is(got[0].Err, ErrMeterSilent) {
				t.Errorf("Poll error = %v, want ErrMeterSilent", got[0].Err)
			}
			if min := time.Duration(tt.sends) * timeout; elapsed < min || elapsed > min+2*time.Second {
				t.Errorf("Poll took %v, want about %v", elapsed, min)
			}
			// Each RTU read request is 8 bytes. The connection is
			// closed with the poller, so count after Close.
			p.Close()
			waitFor(t, 2*time.Second, func() error {
				if n := received.Load(); n != 8*tt.sends {
					return fmt.Errorf("peer received %d bytes, want %d (%d requests)", n, 8*tt.sends, tt.sends)
				}
				return nil
			})
		})
	}
}

// TestPollLinkDownAndBack checks that a TCP gateway that is down gives
// ErrLink, and that the poller reconnects once it is back.
func TestPollLinkDownAndBack(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens here now

	p := newPoller(t, Config{
		Protocol: Modbus, URL: "tcp://" + addr, Timeout: 100 * time.Millisecond, Retries: -1,
		Meters: []MeterConfig{{ID: "m1", Address: "1", Map: "ddsu666"}},
	})
	if got := p.Poll(context.Background()); !errors.Is(got[0].Err, ErrLink) {
		t.Fatalf("gateway down: error %v, want ErrLink", got[0].Err)
	}
	m := newSimMeter(t, "ddsu666", 1)
	m.SetEnergyWh(5000)
	srv, err := newBus(t, m).ListenTCP(addr, testLog(t))
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	t.Cleanup(func() { srv.Close() })
	if got := p.Poll(context.Background()); got[0].Err != nil || got[0].EnergyWh != 5000 {
		t.Errorf("gateway back: %d Wh, %v, want 5000 Wh", got[0].EnergyWh, got[0].Err)
	}
}

func TestPollWrongMapGivesMeterError(t *testing.T) {
	m := newSimMeter(t, "sdm120", 1)
	srv, err := newBus(t, m).ListenTCP("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	// A DTSU666 map on an SDM120: FC03 at 0x101E is not there.
	p := newPoller(t, Config{Protocol: Modbus, URL: srv.URL(), Meters: []MeterConfig{{ID: "m1", Address: "1", Map: "dtsu666"}}})
	got := p.Poll(context.Background())
	if !errors.Is(got[0].Err, ErrMeterError) {
		t.Errorf("Poll error = %v, want ErrMeterError", got[0].Err)
	}
}

func TestPollAfterCloseAndCancel(t *testing.T) {
	addr, _ := mute(t)
	p, err := New(Config{Protocol: Modbus, URL: "tcp://" + addr, Meters: []MeterConfig{{ID: "m1", Address: "1", Map: "sdm120"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := p.Poll(ctx); !errors.Is(got[0].Err, context.Canceled) {
		t.Errorf("Poll(cancelled) error = %v, want context.Canceled", got[0].Err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if got := p.Poll(context.Background()); !errors.Is(got[0].Err, ErrClosed) {
		t.Errorf("Poll after Close: error %v, want ErrClosed", got[0].Err)
	}
}

func TestWhFromKWh(t *testing.T) {
	tests := []struct {
		kwh  float64
		want int64
		err  error
	}{
		{0, 0, nil},
		{float64(float32(478.492)), 478492, nil},
		{0.0005, 1, nil}, // half away from zero
		{0.0004999, 0, nil},
		{float64(float32(16777.215)), 16777215, nil},
		{-0.001, 0, ErrBadValue},
		{math.NaN(), 0, ErrBadValue},
		{math.Inf(1), 0, ErrBadValue},
	}
	for _, tt := range tests {
		got, err := whFromKWh(tt.kwh)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("whFromKWh(%v) = %d, %v, want %d, %v", tt.kwh, got, err, tt.want, tt.err)
		}
	}
}

// TestWhFromIntegerRegisters checks the documented exactness: a uint32
// register in 0.01 kWh gives raw × 10 Wh for every raw value.
func TestWhFromIntegerRegisters(t *testing.T) {
	m, _ := regmap.Lookup("dds238-2")
	r, _ := m.Register(regmap.ImportEnergy)
	check := func(raw uint32) {
		kwh, err := r.Decode([]uint16{uint16(raw >> 16), uint16(raw)})
		if err != nil {
			t.Fatal(err)
		}
		if wh, err := whFromKWh(kwh); err != nil || wh != int64(raw)*10 {
			t.Fatalf("raw %d: %d Wh, %v, want %d", raw, wh, err, int64(raw)*10)
		}
	}
	for raw := uint32(0); raw < 1_000_000; raw++ {
		check(raw)
	}
	for raw := uint32(math.MaxUint32); raw > math.MaxUint32-1_000_000; raw-- {
		check(raw)
	}
	for raw := uint64(0); raw <= math.MaxUint32; raw += 65521 {
		check(uint32(raw))
	}
}

// TestFloat32EnergyExact checks the documented float32 behaviour: whole
// Wh come back exactly below 8,192 kWh and within 1 Wh up to 16,777 kWh.
func TestFloat32EnergyExact(t *testing.T) {
	for wh := int64(0); wh <= 16_777_216; wh += 997 {
		kwh := float64(float32(float64(wh) / 1000))
		got, err := whFromKWh(kwh)
		if err != nil || got != wh {
			// From 8,192 kWh the float32 spacing is 1.95 Wh, so a Wh may
			// come back as its neighbour; below, it must be exact.
			if wh < 8_192_000 || got-wh > 1 || wh-got > 1 {
				t.Fatalf("%d Wh via float32 = %d, %v", wh, got, err)
			}
		}
	}
}

func BenchmarkPollModbusTCP(b *testing.B) {
	m := newSimMeter(b, "sdm630", 1)
	srv, err := newBus(b, m).ListenTCP("127.0.0.1:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	p, err := New(Config{Protocol: Modbus, URL: srv.URL(), Meters: []MeterConfig{{ID: "m1", Address: "1", Map: "sdm630"}}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for b.Loop() {
		if r := p.Poll(context.Background()); r[0].Err != nil {
			b.Fatal(r[0].Err)
		}
	}
}
