package vee

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterlink/meterlink/ops/internal/store"
	"github.com/meterlink/meterlink/wire"
)

const hour = int64(3600_000)

func TestCheckMeter(t *testing.T) {
	// steady is 4 days of hourly readings at 500 Wh/h: enough history for spikes.
	steady := func() []Sample {
		var s []Sample
		for i := range 97 {
			s = append(s, Sample{TimeMS: int64(i+1) * hour, Wh: 1_000_000 + int64(i)*500, Multiplier: 1})
		}
		return s
	}
	last := steady()[96]
	next := func(dh, wh int64) Sample { return Sample{TimeMS: last.TimeMS + dh*hour, Wh: wh, Multiplier: 1} }
	tests := []struct {
		name    string
		history []Sample
		s       Sample
		want    []string // code/severity of each finding
	}{
		{name: "first reading is the baseline", s: Sample{TimeMS: hour, Wh: 5}},
		{name: "normal advance", history: steady(), s: next(1, last.Wh+600)},
		{name: "reverse running", history: steady(), s: next(1, last.Wh-1000), want: []string{"reverse_running/critical"}},
		{name: "rollover", history: []Sample{{TimeMS: hour, Wh: 999_999_000, Multiplier: 1}}, s: Sample{TimeMS: 2 * hour, Wh: 500, Multiplier: 1},
			want: []string{"rollover/info"}},
		{name: "spike vs history", history: steady(), s: next(24, last.Wh+40_000), want: []string{"spike/warning"}},
		{name: "busy hour is no spike", history: steady(), s: next(1, last.Wh+5_000)},
		{name: "running fast", history: []Sample{{TimeMS: hour, Wh: 0, Multiplier: 1}}, s: Sample{TimeMS: 2 * hour, Wh: 50_000, Multiplier: 1},
			want: []string{"spike/critical"}},
		{name: "no spike judged without history", history: []Sample{{TimeMS: hour, Wh: 0, Multiplier: 1}}, s: Sample{TimeMS: 25 * hour, Wh: 20_000, Multiplier: 1}},
		{name: "zero consumption for 3 days", history: []Sample{{TimeMS: hour, Wh: 7, Multiplier: 1}, {TimeMS: 49 * hour, Wh: 7, Multiplier: 1}},
			s: Sample{TimeMS: 73 * hour, Wh: 7, Multiplier: 1}, want: []string{"zero_consumption/warning"}},
		{name: "zero for 2 days only", history: []Sample{{TimeMS: hour, Wh: 7, Multiplier: 1}}, s: Sample{TimeMS: 49 * hour, Wh: 7, Multiplier: 1}},
		{name: "late reading not compared", history: steady(), s: Sample{TimeMS: hour / 2, Wh: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			var st MeterState
			for _, h := range tt.history {
				if f := c.CheckMeter(&st, h); len(f) > 0 && tt.name != "rollover" {
					t.Fatalf("history reading %+v: findings %v", h, f)
				}
			}
			var got []string
			for _, f := range c.CheckMeter(&st, tt.s) {
				got = append(got, f.Code+"/"+f.Severity)
				if f.Detail == "" {
					t.Errorf("finding %s has no detail", f.Code)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReverseOnceAndEstimates(t *testing.T) {
	var c Config
	st := MeterState{}
	c.CheckMeter(&st, Sample{TimeMS: hour, Wh: 10_000})
	if f := c.CheckMeter(&st, Sample{TimeMS: 2 * hour, Wh: 9_000}); len(f) != 1 {
		t.Fatalf("first backward reading: %v, want one finding", f)
	}
	if f := c.CheckMeter(&st, Sample{TimeMS: 3 * hour, Wh: 9_100}); len(f) != 0 {
		t.Errorf("still below the baseline: %v, want no new finding while it is open", f)
	}
	if f := c.CheckMeter(&st, Sample{TimeMS: 4 * hour, Wh: 10_500}); len(f) != 0 || st.Reverse {
		t.Errorf("back above: %v, reverse %v; want it closed", f, st.Reverse)
	}
	// An estimate above the next actual reading does not make the actual one "backwards".
	c.CheckMeter(&st, Sample{TimeMS: 5 * hour, Wh: 20_000, Estimated: true})
	if !st.Estimated || st.LastWh != 10_500 {
		t.Errorf("estimate moved the baseline: %+v", st)
	}
	if f := c.CheckMeter(&st, Sample{TimeMS: 6 * hour, Wh: 11_000}); len(f) != 0 || st.Estimated {
		t.Errorf("actual after an estimate: %v, state %+v; want no finding and the estimate settled", f, st)
	}
}

func TestCheckRecord(t *testing.T) {
	var c Config
	now := int64(1_800_000_000_000)
	st := TerminalState{}
	steps := []struct {
		seq      uint64
		ts       int64
		want     []string
		wantGaps []SeqRange
	}{
		{seq: 10, ts: now},
		{seq: 11, ts: now},
		{seq: 15, ts: now, want: []string{"seq_gap"}, wantGaps: []SeqRange{{12, 14}}},
		{seq: 13, ts: now, wantGaps: []SeqRange{{12, 12}, {14, 14}}},
		{seq: 16, ts: now + int64(10*time.Minute/time.Millisecond), want: []string{"clock_drift"}, wantGaps: []SeqRange{{12, 12}, {14, 14}}},
		{seq: 17, ts: now + int64(10*time.Minute/time.Millisecond), wantGaps: []SeqRange{{12, 12}, {14, 14}}}, // still drifting: no new alert
		{seq: 18, ts: now, wantGaps: []SeqRange{{12, 12}, {14, 14}}},
		{seq: 12, ts: now - 4*24*hour, want: []string{"clock_drift"}, wantGaps: []SeqRange{{14, 14}}},
		{seq: 14, ts: now, wantGaps: nil},
	}
	for i, s := range steps {
		var got []string
		for _, f := range c.CheckRecord(&st, s.seq, s.ts, now) {
			got = append(got, f.Code)
		}
		if diff := cmp.Diff(s.want, got); diff != "" {
			t.Errorf("step %d (seq %d): findings (-want +got):\n%s", i, s.seq, diff)
		}
		if diff := cmp.Diff(s.wantGaps, st.Gaps); diff != "" {
			t.Errorf("step %d (seq %d): gaps (-want +got):\n%s", i, s.seq, diff)
		}
	}
}

func TestRecordsStoresAlertsOnce(t *testing.T) {
	st, err := store.Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Put(store.Dataset{
		Districts: []store.District{{ID: "D1"}},
		Terminals: []store.Terminal{{ID: "T1", District: "D1", Channels: []store.Channel{{Channel: 1, Meter: "M1", Constant: 3200, Multiplier: 1}}}},
		Meters:    []store.Meter{{ID: "M1", Terminal: "T1", Channel: 1}},
	}, false); err != nil {
		t.Fatal(err)
	}
	v, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	now := int64(1_800_000_000_000)
	rd := func(seq uint64, wh int64) wire.Record {
		return wire.Record{Terminal: "T1", Seq: seq, Kind: wire.KindReading, TimeMS: now + int64(seq)*hour - 10*hour,
			Channels: []wire.ChannelReading{{Channel: 1, Meter: "M1", EnergyWh: wh, Constant: 3200, Multiplier: 1}}}
	}
	recs := []wire.Record{rd(1, 5000), rd(2, 4000), rd(5, 4500),
		{Terminal: "T1", Seq: 6, Kind: wire.KindEvent, TimeMS: now, Event: &wire.Event{Code: "power_loss", Detail: "mains lost"}}}
	a, err := st.Apply(recs, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	run := func() []store.Alert {
		var out []store.Alert
		if err := st.Update(func(tx *store.Tx) error {
			var err error
			out, err = v.Records(tx, a.Stored, now)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	var codes []string
	for _, al := range run() {
		codes = append(codes, al.Code)
	}
	for _, want := range []string{"reverse_running", "seq_gap", "power_loss"} {
		if !strings.Contains(strings.Join(codes, " "), want) {
			t.Errorf("alerts %v: missing %s", codes, want)
		}
	}
	if again := run(); len(again) != 0 {
		t.Errorf("validating the same records again raised %d new alerts, want 0", len(again))
	}
	all, err := st.Alerts(store.AlertQuery{Limit: 100})
	if err != nil || len(all) != len(codes) {
		t.Errorf("stored alerts = %d (%v), want %d", len(all), err, len(codes))
	}
	if err := st.View(func(tx *store.Tx) error {
		w, err := v.Warnings(tx, store.Meter{ID: "M1", Terminal: "T1"}, now)
		if err == nil && (len(w) == 0 || w[0].Code != "reverse_running") {
			t.Errorf("warnings = %v, want reverse_running", w)
		}
		g, err2 := v.Gaps(tx, "T1")
		if err2 == nil && !cmp.Equal(g, []SeqRange{{3, 4}}) {
			t.Errorf("gaps = %v, want 3..4", g)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
