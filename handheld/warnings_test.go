package handheld

import (
	"testing"
	"time"

	"github.com/meterlink/meterlink/wire"
	"github.com/tidwall/buntdb"
)

func testWarnings(t *testing.T, now *time.Time) *warnings {
	t.Helper()
	db, err := buntdb.Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cfg := DefaultConfig()
	cfg.Now = func() time.Time { return *now }
	return newWarnings(db, cfg)
}

func reading(seq uint64, at time.Time, wh int64) wire.Record {
	return wire.Record{Terminal: "T0001", Seq: seq, Kind: wire.KindReading, TimeMS: at.UnixMilli(),
		Channels: []wire.ChannelReading{{Channel: 1, Meter: "T0001-01", EnergyWh: wh, Constant: 3200, Multiplier: 1}}}
}

// TestOnSiteWarnings feeds one meter's readings, 15 minutes apart, and expects each check to
// fire exactly where the readings turn wrong.
func TestOnSiteWarnings(t *testing.T) {
	start := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	now := start
	w := testWarnings(t, &now)
	steps := []struct {
		name string
		wh   int64
		skew time.Duration // record time minus handheld time
		want string        // warning code, "" for none
	}{
		{"first reading", 1000, 0, ""},
		{"normal", 1100, 0, ""},
		{"normal again", 1200, 0, ""},
		{"normal third", 1300, 0, ""},
		{"spike: 10x the rate", 2300, 0, WarnSpike},
		{"reverse running", 2000, 0, WarnReverse},
		{"zero 1", 2000, 0, ""},
		{"zero 2", 2000, 0, ""},
		{"zero 3: flagged", 2000, 0, WarnZero},
		{"zero 4: flagged once", 2000, 0, ""},
		{"clock far ahead", 2100, 5 * time.Minute, WarnClock},
		{"record from the past: may have waited", 2200, -2 * time.Hour, ""},
	}
	for i, st := range steps {
		now = start.Add(time.Duration(i) * 15 * time.Minute)
		ws, err := w.checkRecord(reading(uint64(i+1), now.Add(st.skew), st.wh))
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got := ""
		if len(ws) > 0 {
			got = ws[0].Code
		}
		if len(ws) > 1 || got != st.want {
			t.Errorf("%s: warnings %+v, want %q", st.name, ws, st.want)
		}
	}
	// A record resent by the terminal (older seq) changes nothing.
	if ws, _ := w.checkRecord(reading(2, start, 0)); len(ws) != 0 {
		t.Errorf("an old record raised %+v", ws)
	}
	if n := w.count(); n != 4 {
		t.Errorf("%d warnings kept, want 4", n)
	}
}

// TestCollectedRecordShowsClockBehind: a record made on command shows a clock that is behind,
// which an ordinary (possibly delayed) record cannot.
func TestCollectedRecordShowsClockBehind(t *testing.T) {
	now := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	w := testWarnings(t, &now)
	w.noteCollect("T0001", 7, now)
	ws, err := w.checkRecord(reading(7, now.Add(-3*time.Minute), 1000))
	if err != nil || len(ws) != 1 || ws[0].Code != WarnClock || ws[0].ERC != 12 {
		t.Errorf("warnings %+v, %v; want clock_drift", ws, err)
	}
}

func TestAnswerWarnings(t *testing.T) {
	now := time.Now()
	w := testWarnings(t, &now)
	a := wire.Answer{Customers: []wire.CustomerInfo{
		{Account: "A1", Payment: "prepaid", BalanceFen: 1500},
		{Account: "A2", Payment: "prepaid", BalanceFen: -10},
		{Account: "A3", Payment: "postpaid", BalanceFen: -100},
		{Account: "A4", Payment: "prepaid", BalanceFen: 50000},
		{Account: "A5", Payment: "prepaid", BalanceFen: 100, Warnings: []wire.Warning{{Code: WarnLowBalance, Severity: "warning"}}},
	}}
	if err := w.checkAnswer(&a); err != nil {
		t.Fatal(err)
	}
	want := []string{"low_balance/warning", "low_balance/critical", "arrears/warning", "", "low_balance/warning"}
	for i, c := range a.Customers {
		got := ""
		if len(c.Warnings) > 0 {
			got = c.Warnings[0].Code + "/" + c.Warnings[0].Severity
		}
		if got != want[i] || len(c.Warnings) > 1 {
			t.Errorf("%s: warnings %+v, want %s", c.Account, c.Warnings, want[i])
		}
	}
	// Asking again keeps one warning per account.
	if err := w.checkAnswer(&a); err != nil {
		t.Fatal(err)
	}
	if n := w.count(); n != 4 {
		t.Errorf("%d warnings kept, want 4 (one per account)", n)
	}
}

func TestCheckJobArgs(t *testing.T) {
	tests := []struct {
		op, args string
		ok       bool
	}{
		{OpSetFreeze, `{"at":"06:30"}`, true},
		{OpSetFreeze, `{"at":"6:30"}`, false},
		{OpSetFreeze, `{"at":"24:00"}`, false},
		{OpSetFreeze, ``, false},
		{OpSetFreeze, `{"at":"06:30","x":1}`, false},
		{OpSetClock, ``, true},
		{OpSetClock, `{"ts_ms":1}`, false},
		{OpSetChannel, `{"ch":2,"multiplier":10}`, true},
		{OpSetChannel, `{"ch":2}`, false},
		{OpSetChannel, `{"ch":17,"multiplier":1}`, false},
		{OpSetChannel, `{"ch":1,"constant":0}`, false},
		{OpCollect, ``, true},
		{OpCollect, `{"x":1}`, false},
		{OpFrozen, `{"from":"2026-01-01","to":"2026-01-03"}`, true},
		{OpFrozen, `{"from":"2026-01-03","to":"2026-01-01"}`, false},
		{OpLive, ``, false},
		{"reboot", ``, false},
	}
	for _, tt := range tests {
		_, err := checkJobArgs(tt.op, []byte(tt.args))
		if (err == nil) != tt.ok {
			t.Errorf("checkJobArgs(%s, %s) = %v, want ok %v", tt.op, tt.args, err, tt.ok)
		}
	}
}
