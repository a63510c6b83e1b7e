package terminal

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meterlink/meterlink/wire"
)

// fakeClock is a settable system clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func cst(s string) time.Time {
	t, err := time.ParseInLocation(time.DateTime, s, chinaStandardTime)
	if err != nil {
		panic(err)
	}
	return t
}

func outbox(t *testing.T, term *Terminal, kind wire.Kind) []wire.Record {
	t.Helper()
	rs, err := term.store.pending(1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []wire.Record
	for _, r := range rs {
		if r.Kind == kind {
			out = append(out, r)
		}
	}
	return out
}

func TestDailyFreezeAtTheSetTime(t *testing.T) {
	clk := &fakeClock{t: cst("2026-11-24 23:59:00")}
	cfg := testConfig(t, ":memory:")
	cfg.Now = clk.Now
	term, err := New(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	if err := term.CheckFreeze(); err != nil {
		t.Fatal(err)
	}
	if got := outbox(t, term, wire.KindFrozen); len(got) != 1 || got[0].FreezeDate != "2026-11-24" {
		t.Fatalf("first start at 23:59: frozen %+v, want today's (2026-11-24) made at once", got)
	}
	term.Pulse(1, 3200)
	clk.Add(2 * time.Minute) // 00:01 on the 25th
	if err := term.CheckFreeze(); err != nil {
		t.Fatal(err)
	}
	if err := term.CheckFreeze(); err != nil { // idempotent
		t.Fatal(err)
	}
	got := outbox(t, term, wire.KindFrozen)
	if len(got) != 2 {
		t.Fatalf("after midnight: %d frozen records, want 2", len(got))
	}
	fz := got[1]
	if fz.FreezeDate != "2026-11-25" || fz.TimeMS != cst("2026-11-25 00:00:00").UnixMilli() {
		t.Errorf("frozen record %s at %v, want 2026-11-25 at 00:00", fz.FreezeDate, time.UnixMilli(fz.TimeMS))
	}
	if c := fz.Channels[0]; c.Pulses != 3200 || c.EnergyWh != 1_001_000 || c.Estimated {
		t.Errorf("frozen channel 1 = %+v, want 3200 pulses, 1001000 Wh, actual", c)
	}
	kept, err := term.Frozen("2026-11-01", "2026-11-30")
	if err != nil || len(kept) != 2 {
		t.Errorf("Frozen(November) = %d records, %v; want 2", len(kept), err)
	}
}

func TestMissedFreezesAreEstimatedAndBounded(t *testing.T) {
	clk := &fakeClock{t: cst("2026-11-01 12:00:00")}
	path := filepath.Join(t.TempDir(), "t.db")
	cfg := testConfig(t, path)
	cfg.Now = clk.Now
	cfg.FrozenDays = 5
	term, err := New(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	term.CheckFreeze() // 2026-11-01
	term.Close()       // power off for 9 days, without a clean stop
	clk.Add(9 * 24 * time.Hour)
	term, err = New(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	if err := term.CheckFreeze(); err != nil {
		t.Fatal(err)
	}
	got := outbox(t, term, wire.KindFrozen)
	var dates []string
	for _, r := range got[1:] {
		dates = append(dates, r.FreezeDate)
		if !r.Channels[0].Estimated {
			t.Errorf("%s made after the terminal was off at its freeze time: not marked estimated", r.FreezeDate)
		}
	}
	if want := "2026-11-06 2026-11-07 2026-11-08 2026-11-09 2026-11-10"; strings.Join(dates, " ") != want {
		t.Errorf("back-filled dates %v, want the last 5 (%s)", dates, want)
	}
	if kept, _ := term.Frozen("2026-01-01", "2026-12-31"); len(kept) != 5 {
		t.Errorf("kept %d frozen days, want 5 (FrozenDays)", len(kept))
	}
	events := outbox(t, term, wire.KindEvent)
	if len(events) != 2 || events[0].Event.Code != EventPowerLoss || events[1].Event.Code != EventPowerRestore {
		t.Errorf("events after an unclean stop = %+v, want power_loss then power_restore", events)
	}
}

func TestCrashLosesNoCountedPulse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	term, err := New(testConfig(t, path), discard())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 250; i++ {
				if err := term.Pulse(1, 1); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// Crash: the store file is released without Run's final save or a clean-stop mark.
	term.store.db.Close()
	again, err := New(testConfig(t, path), discard())
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	live, _ := again.Live(1)
	if live[0].Pulses != 1000 {
		t.Errorf("after a crash: %d pulses, want all 1000 counted", live[0].Pulses)
	}
	if ev := outbox(t, again, wire.KindEvent); len(ev) == 0 || ev[0].Event.Code != EventPowerLoss {
		t.Errorf("no power_loss event after a crash: %+v", ev)
	}
}

func cmd(t *testing.T, op string, args any) []byte {
	t.Helper()
	c := wire.Command{V: 1, ID: "c-" + op, Terminal: "T0001", Op: op}
	if args != nil {
		c.Args, _ = json.Marshal(args)
	}
	b, _ := json.Marshal(c)
	return b
}

func TestCommands(t *testing.T) {
	clk := &fakeClock{t: cst("2026-11-24 10:00:00")}
	cfg := testConfig(t, ":memory:")
	cfg.Now = clk.Now
	term, err := New(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	term.Pulse(1, 6400)
	u32 := func(v uint32) *uint32 { return &v }
	i64 := func(v int64) *int64 { return &v }
	tests := []struct {
		name   string
		op     string
		args   any
		code   wire.AckCode
		result string // substring of the result JSON
	}{
		{"read clock", OpReadClock, nil, wire.AckOK, `"ts_ms":` + jsonInt(clk.Now().UnixMilli())},
		{"set clock by 30s: no event", OpSetClock, SetClockArgs{TimeMS: cst("2026-11-24 10:00:30").UnixMilli()}, wire.AckOK, `"moved_ms":30000`},
		{"set clock by 2h: event", OpSetClock, SetClockArgs{TimeMS: cst("2026-11-24 12:00:30").UnixMilli()}, wire.AckOK, `"moved_ms":7200000`},
		{"set clock to 1970", OpSetClock, SetClockArgs{TimeMS: 1}, wire.AckInvalid, ""},
		{"set freeze", OpSetFreeze, SetFreezeArgs{At: "01:30"}, wire.AckOK, `"at":"01:30"`},
		{"set freeze badly", OpSetFreeze, SetFreezeArgs{At: "25:00"}, wire.AckInvalid, ""},
		{"set freeze without args", OpSetFreeze, nil, wire.AckInvalid, ""},
		{"unknown argument field", OpSetFreeze, map[string]string{"at": "01:00", "when": "now"}, wire.AckInvalid, ""},
		{"live channel 1", OpLive, LiveArgs{Channel: 1}, wire.AckOK, `"pulses":6400`},
		{"live unknown channel", OpLive, LiveArgs{Channel: 9}, wire.AckInvalid, ""},
		{"new constant keeps the reading", OpSetChannel, SetChannelArgs{Channel: 1, Constant: u32(1600)}, wire.AckOK, `"energy_wh":1002000`},
		{"lower base: backwards event", OpSetChannel, SetChannelArgs{Channel: 1, BaseWh: i64(500_000)}, wire.AckOK, `"energy_wh":500000`},
		{"bad constant changes nothing", OpSetChannel, SetChannelArgs{Channel: 1, Constant: u32(0)}, wire.AckInvalid, ""},
		{"frozen range reversed", OpFrozen, FrozenArgs{From: "2026-11-24", To: "2026-11-01"}, wire.AckInvalid, ""},
		{"frozen range", OpFrozen, FrozenArgs{From: "2026-11-01", To: "2026-11-30"}, wire.AckOK, `"records":0`},
		{"collect", OpCollect, nil, wire.AckOK, `"seq":`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ack := term.Execute(cmd(t, tt.op, tt.args))
			if ack.Code != tt.code {
				t.Fatalf("code %d (%s), want %d", ack.Code, ack.Detail, tt.code)
			}
			if !strings.Contains(string(ack.Result), tt.result) {
				t.Errorf("result %s, want it to contain %s", ack.Result, tt.result)
			}
		})
	}
	var codes []string
	for _, e := range outbox(t, term, wire.KindEvent) {
		codes = append(codes, e.Event.Code)
	}
	if strings.Join(codes, ",") != EventClockSet+","+EventReadingBackwards {
		t.Errorf("events = %v, want clock_set then reading_backwards", codes)
	}
	if live, _ := term.Live(1); live[0].EnergyWh != 500_000 || live[0].Constant != 1600 {
		t.Errorf("channel 1 after the commands: %+v, want 500000 Wh at 1600 imp/kWh", live[0])
	}
	if got := term.freeze; got != 90 {
		t.Errorf("freeze time = %d minutes, want 90 (01:30)", got)
	}
}

func jsonInt(v int64) string { b, _ := json.Marshal(v); return string(b) }
