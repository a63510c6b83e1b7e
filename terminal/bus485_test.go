package terminal

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meterlink/meterlink/dlt645"
	"github.com/meterlink/meterlink/metersim"
	"github.com/meterlink/meterlink/serialtest"
	"github.com/meterlink/meterlink/terminal/rs485"
	"github.com/meterlink/meterlink/wire"
)

func eventCodes(t *testing.T, term *Terminal) []string {
	var out []string
	for _, e := range outbox(t, term, wire.KindEvent) {
		out = append(out, e.Event.Code)
	}
	return out
}

func busReading(r wire.Record, meter string) (wire.ChannelReading, bool) {
	for _, c := range r.Channels {
		if c.Channel == 16 && string(c.Meter) == meter {
			return c, true
		}
	}
	return wire.ChannelReading{}, false
}

// TestModbusMetersOnChannel16ThroughDriftMidnightRestartAndSilence drives a terminal whose
// channel 16 is an RS485 bus with two Modbus meters on the real Modbus TCP server, one of
// which goes silent, through a drifting clock, the midnight freeze and an unclean restart.
func TestModbusMetersOnChannel16ThroughDriftMidnightRestartAndSilence(t *testing.T) {
	sdm, err := metersim.NewModbusMeter("sdm120", 1)
	if err != nil {
		t.Fatal(err)
	}
	dds, err := metersim.NewModbusMeter("ddsu666", 2)
	if err != nil {
		t.Fatal(err)
	}
	sdm.SetEnergyWh(1_234_560)
	dds.SetEnergyWh(42_000)
	bus, err := metersim.NewModbusBus(sdm, dds)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := bus.ListenTCP("127.0.0.1:0", discard())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	clk := &fakeClock{t: cst("2026-11-24 23:58:00")}
	path := filepath.Join(t.TempDir(), "t.db")
	cfg := testConfig(t, path)
	cfg.Now = clk.Now
	cfg.DriftPPM = 500 // 43 s a day fast
	cfg.Channels = cfg.Channels[:1]
	cfg.RS485 = &rs485.Config{
		Protocol: rs485.Modbus, URL: srv.URL(), Timeout: 100 * time.Millisecond, Retries: 1,
		Meters: []rs485.MeterConfig{{ID: "SDM-1", Address: "1", Map: "sdm120"}, {ID: "DDSU-2", Address: "2", Map: "ddsu666"}},
	}
	term, err := New(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	term.PollBus(ctx)
	r, err := term.Collect()
	if err != nil {
		t.Fatal(err)
	}
	for meter, want := range map[string]int64{"SDM-1": 1_234_560, "DDSU-2": 42_000} {
		if c, ok := busReading(r, meter); !ok || c.EnergyWh != want {
			t.Errorf("%s on channel 16 = %+v (present %v), want %d Wh", meter, c, ok, want)
		}
	}

	// The clock drifts: after a day of system time the terminal is 43.2 s ahead.
	clk.Add(24 * time.Hour)
	if ahead := term.Now().Sub(clk.Now()); ahead < 43*time.Second || ahead > 44*time.Second {
		t.Errorf("after a day at 500 ppm the clock is %v ahead, want 43.2s", ahead)
	}
	// Midnight passed (twice: the 25th and the 26th are due); the freeze carries the bus meters.
	sdm.AddEnergyWh(1000)
	term.PollBus(ctx)
	if err := term.CheckFreeze(); err != nil {
		t.Fatal(err)
	}
	frozen := outbox(t, term, wire.KindFrozen)
	last := frozen[len(frozen)-1]
	if c, ok := busReading(last, "SDM-1"); last.FreezeDate != "2026-11-25" || !ok || c.EnergyWh != 1_235_560 {
		t.Errorf("last freeze %s with SDM-1 %+v, want 2026-11-25 at 1235560 Wh", last.FreezeDate, c)
	}

	// One meter goes silent: one event, however many polls.
	dds.SetSilent(true)
	term.PollBus(ctx)
	term.PollBus(ctx)
	// A meter replaced by one reading lower: reading_backwards.
	sdm.SetEnergyWh(10)
	term.PollBus(ctx)
	if got := strings.Join(eventCodes(t, term), ","); got != EventMeterSilent+","+EventReadingBackwards {
		t.Errorf("events = %s, want meter_silent once, then reading_backwards", got)
	}

	// Crash and restart: power loss recorded, sequence continues, the bus is read again.
	lastSeq := term.LastSeq()
	term.store.db.Close()
	term.bus.Close()
	term, err = New(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	term.PollBus(ctx)
	r, err = term.Collect()
	if err != nil {
		t.Fatal(err)
	}
	if r.Seq <= lastSeq+2 { // power_loss and power_restore came first
		t.Errorf("after restart: seq %d, want above %d", r.Seq, lastSeq+2)
	}
	if c, ok := busReading(r, "SDM-1"); !ok || c.EnergyWh != 10 {
		t.Errorf("after restart SDM-1 = %+v, want 10 Wh", c)
	}
	if _, ok := busReading(r, "DDSU-2"); ok {
		t.Error("a silent meter never read since the restart is reported")
	}
}

// TestDLT645MeterOnChannel16OverSerial reads a DL/T 645-2007 meter through a real serial line.
func TestDLT645MeterOnChannel16OverSerial(t *testing.T) {
	a, b := serialtest.Pair(t)
	addr := dlt645.MustParseAddress("000000000161")
	m := dlt645.NewMeter(addr, dlt645.MeterOptions{Preamble: 4})
	m.SetEnergy(123456) // 1234.56 kWh
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- m.Serve(ctx, serialtest.Open(t, a)) }()
	defer func() { cancel(); <-served }()

	cfg := testConfig(t, ":memory:")
	cfg.Channels = cfg.Channels[:1]
	cfg.RS485 = &rs485.Config{Protocol: rs485.DLT645, URL: b, Timeout: 500 * time.Millisecond,
		Meters: []rs485.MeterConfig{{ID: "000000000161", Address: "000000000161"}, {ID: "000000000999", Address: "000000000999"}}}
	term, err := New(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	term.PollBus(ctx)
	r, err := term.Collect()
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := busReading(r, "000000000161"); !ok || c.EnergyWh != 1_234_560 {
		t.Errorf("DL/T 645 meter on channel 16 = %+v, want 1234560 Wh", c)
	}
	if got := eventCodes(t, term); len(got) != 1 || got[0] != EventMeterSilent {
		t.Errorf("events = %v, want meter_silent for the absent meter", got)
	}
}
