package billing

import (
	"errors"
	"testing"
	"time"

	"github.com/meterlink/meterlink/ops/internal/store"
	"github.com/meterlink/meterlink/wire"
)

// newStore holds district D1, terminal T1 with meters M1 (prepaid A1, tiered, 100 元) and
// M2 (postpaid A2, TOU), and M3 (prepaid A3, CT ratio 30).
func newStore(t *testing.T) *store.DB {
	t.Helper()
	st, err := store.Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ds := store.Dataset{
		Districts: []store.District{{ID: "D1"}},
		Accounts: []store.Account{
			{ID: "A1", Owner: "张伟", Payment: store.Prepaid, BalanceFen: 10000, Tariff: ZJResTiered},
			{ID: "A2", Owner: "王芳", Payment: store.Postpaid, Tariff: ZJResTOU},
			{ID: "A3", Owner: "便利店", Payment: store.Prepaid, BalanceFen: 100000, Tariff: ZJComFlat},
		},
		Terminals: []store.Terminal{{ID: "T1", District: "D1", Channels: []store.Channel{
			{Channel: 1, Meter: "M1", Constant: 3200, Multiplier: 1},
			{Channel: 2, Meter: "M2", Constant: 3200, Multiplier: 1},
			{Channel: 3, Meter: "M3", Constant: 6400, Multiplier: 30},
		}}},
		Meters: []store.Meter{
			{ID: "M1", Terminal: "T1", Channel: 1, Account: "A1"},
			{ID: "M2", Terminal: "T1", Channel: 2, Account: "A2"},
			{ID: "M3", Terminal: "T1", Channel: 3, Account: "A3"},
		},
	}
	if err := st.Put(ds, false); err != nil {
		t.Fatal(err)
	}
	return st
}

func rec(seq uint64, ts int64, kind wire.Kind, m1, m2, m3 int64) wire.Record {
	r := wire.Record{Terminal: "T1", Seq: seq, Kind: kind, TimeMS: ts, Channels: []wire.ChannelReading{
		{Channel: 1, Meter: "M1", EnergyWh: m1, Constant: 3200, Multiplier: 1},
		{Channel: 2, Meter: "M2", EnergyWh: m2, Constant: 3200, Multiplier: 1},
		{Channel: 3, Meter: "M3", EnergyWh: m3, Constant: 6400, Multiplier: 30},
	}}
	if kind == wire.KindFrozen {
		r.FreezeDate = time.UnixMilli(ts).In(CST).Format(time.DateOnly)
	}
	return r
}

// apply stores records and charges what was stored, as ops' ingest hook does.
func apply(t *testing.T, st *store.DB, l *Ledger, recs ...wire.Record) []store.Alert {
	t.Helper()
	a, err := st.Apply(recs, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	var rs []store.Reading
	for _, h := range a.Stored {
		rs = append(rs, h.Readings()...)
	}
	var alerts []store.Alert
	if err := st.Update(func(tx *store.Tx) error {
		var err error
		alerts, err = l.Charge(tx, rs, 1)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return alerts
}

func balance(t *testing.T, st *store.DB, id store.AccountID) int64 {
	t.Helper()
	var b int64
	if err := st.View(func(tx *store.Tx) error {
		a, err := tx.Account(id)
		b = a.BalanceFen
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return b
}

func newLedger(t *testing.T) *Ledger {
	t.Helper()
	l, err := New(Config{}, DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestChargePrepaidIdempotent(t *testing.T) {
	st, l := newStore(t), newLedger(t)
	day := cst("2026-03-01 00:00")
	apply(t, st, l, rec(1, day, wire.KindReading, 1_000_000, 0, 0)) // baseline
	if got := balance(t, st, "A1"); got != 10000 {
		t.Fatalf("balance after the baseline = %d, want 10000", got)
	}
	// 10 kWh at 0.538 = 5.38 元; M3: 1 kWh × 30 at 0.664 = 19.92 元.
	apply(t, st, l, rec(2, day+3600_000, wire.KindReading, 1_010_000, 0, 1_000))
	if got := balance(t, st, "A1"); got != 10000-538 {
		t.Errorf("A1 balance = %d, want %d", got, 10000-538)
	}
	if got := balance(t, st, "A3"); got != 100000-1992 {
		t.Errorf("A3 balance = %d, want %d", got, 100000-1992)
	}
	if got := balance(t, st, "A2"); got != 0 {
		t.Errorf("postpaid A2 balance = %d, want 0 (not charged as it goes)", got)
	}

	// Replaying the records, and charging the same readings twice, changes nothing.
	apply(t, st, l, rec(1, day, wire.KindReading, 1_000_000, 0, 0), rec(2, day+3600_000, wire.KindReading, 1_010_000, 0, 1_000))
	rs := rec(2, day+3600_000, wire.KindReading, 1_010_000, 0, 1_000)
	held := store.Held{Record: rs, District: "D1"}
	for range 2 {
		if err := st.Update(func(tx *store.Tx) error { _, err := l.Charge(tx, held.Readings(), 1); return err }); err != nil {
			t.Fatal(err)
		}
	}
	if got := balance(t, st, "A1"); got != 10000-538 {
		t.Errorf("A1 balance after replays = %d, want %d", got, 10000-538)
	}
	// A late, older record charges nothing either; a backwards reading charges nothing.
	apply(t, st, l, rec(3, day+1800_000, wire.KindReading, 1_005_000, 0, 500))
	apply(t, st, l, rec(4, day+7200_000, wire.KindReading, 900_000, 0, 1_000))
	if got := balance(t, st, "A1"); got != 10000-538 {
		t.Errorf("A1 balance after late and backward readings = %d, want %d", got, 10000-538)
	}
	// The next good reading charges from the last charged one.
	apply(t, st, l, rec(5, day+3*3600_000, wire.KindReading, 1_020_000, 0, 1_000))
	if got := balance(t, st, "A1"); got != 10000-2*538 {
		t.Errorf("A1 balance = %d, want %d", got, 10000-2*538)
	}
}

func TestChargeRoundingDoesNotDrift(t *testing.T) {
	st, l := newStore(t), newLedger(t)
	day := cst("2026-03-01 00:00")
	apply(t, st, l, rec(1, day, wire.KindReading, 0, 0, 0))
	// 100 readings of 25 Wh: each costs 1.345 fen, together 134.5 → 135 fen (not 100 × 1).
	for i := range 100 {
		apply(t, st, l, rec(uint64(i+2), day+int64(i+1)*900_000, wire.KindReading, int64(i+1)*25, 0, 0))
	}
	if got := balance(t, st, "A1"); got != 10000-135 {
		t.Errorf("balance = %d, want %d", got, 10000-135)
	}
}

func TestChargeAcrossTierYear(t *testing.T) {
	st, l := newStore(t), newLedger(t)
	if err := st.Update(func(tx *store.Tx) error { _, err := tx.SetBalance("A1", 1_000_000); return err }); err != nil {
		t.Fatal(err)
	}
	apply(t, st, l, rec(1, cst("2026-01-01 00:00"), wire.KindReading, 0, 0, 0))
	apply(t, st, l, rec(2, cst("2026-06-01 00:00"), wire.KindReading, 2_700_000, 0, 0)) // 2700 kWh, all tier 1: 1452.60 元
	// The worked example, charged as it arrives: 200 kWh → 114.60 元.
	apply(t, st, l, rec(3, cst("2026-07-01 00:00"), wire.KindReading, 2_900_000, 0, 0))
	if got, want := balance(t, st, "A1"), int64(1_000_000-145260-11460); got != want {
		t.Errorf("balance = %d, want %d", got, want)
	}
	// New tier year: tier 1 again.
	apply(t, st, l, rec(4, cst("2027-01-01 00:00"), wire.KindReading, 2_900_000, 0, 0))
	before := balance(t, st, "A1")
	apply(t, st, l, rec(5, cst("2027-01-02 00:00"), wire.KindReading, 2_910_000, 0, 0))
	if got := before - balance(t, st, "A1"); got != 538 {
		t.Errorf("10 kWh in the new tier year cost %d fen, want 538 (tier 1)", got)
	}
}

func TestBalanceAlerts(t *testing.T) {
	st, l := newStore(t), newLedger(t)
	if err := st.Update(func(tx *store.Tx) error { _, err := tx.SetBalance("A1", 2050); return err }); err != nil {
		t.Fatal(err)
	}
	day := cst("2026-03-01 00:00")
	apply(t, st, l, rec(1, day, wire.KindReading, 0, 0, 0))
	var codes []string
	for i, wh := range []int64{1_000, 30_000, 45_000} { // 20.50 − 0.54, − 16.14 in all, − 24.21 in all
		for _, a := range apply(t, st, l, rec(uint64(i+2), day+int64(i+1)*3600_000, wire.KindReading, wh, 0, 0)) {
			codes = append(codes, a.Code+"/"+a.Severity)
		}
	}
	want := []string{"low_balance/warning", "low_balance/critical", "arrears/critical"}
	if len(codes) != len(want) {
		t.Fatalf("alerts = %v, want %v", codes, want)
	}
	for i := range want {
		if codes[i] != want[i] {
			t.Errorf("alert %d = %s, want %s", i, codes[i], want[i])
		}
	}
	if w := l.Warnings(store.Account{Payment: store.Postpaid, BalanceFen: -100}); len(w) != 1 || w[0].Code != "arrears" {
		t.Errorf("postpaid arrears warnings = %v", w)
	}
}

func TestPay(t *testing.T) {
	st := newStore(t)
	l, err := New(Config{HoardingMaxFen: 50000}, DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	pay := func(p store.Payment) (store.Payment, bool, error) {
		var out store.Payment
		var created bool
		err := st.Update(func(tx *store.Tx) error {
			var err error
			out, created, err = l.Pay(tx, p)
			return err
		})
		return out, created, err
	}
	p := store.Payment{ID: "pay-1", Account: "A1", AmountFen: 5000, Method: "wechat", TimeMS: 1}
	got, created, err := pay(p)
	if err != nil || !created || got.BalanceAfter != 15000 {
		t.Fatalf("first payment = %+v, %v, %v; want balance 15000, created", got, created, err)
	}
	got, created, err = pay(p)
	if err != nil || created || got.BalanceAfter != 15000 || balance(t, st, "A1") != 15000 {
		t.Errorf("same payment again = %+v, %v, %v; want the first, not created, balance unchanged", got, created, err)
	}
	p.AmountFen = 6000
	if _, _, err := pay(p); !errors.Is(err, ErrPaymentConflict) {
		t.Errorf("payment id reused with another amount: err = %v, want ErrPaymentConflict", err)
	}
	if _, _, err := pay(store.Payment{ID: "pay-2", Account: "A1", AmountFen: 40000}); !errors.Is(err, ErrHoarding) {
		t.Errorf("top-up above the hoarding limit: err = %v, want ErrHoarding", err)
	}
	if _, _, err := pay(store.Payment{ID: "pay-3", Account: "nobody", AmountFen: 1}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("payment to an unknown account: err = %v, want ErrNotFound", err)
	}
	if b := balance(t, st, "A1"); b != 15000 {
		t.Errorf("balance = %d, want 15000", b)
	}
}

func bill(t *testing.T, st *store.DB, l *Ledger, id store.AccountID, from, to string) Bill {
	t.Helper()
	var b Bill
	if err := st.View(func(tx *store.Tx) error {
		var err error
		b, err = l.Bill(tx, id, time.UnixMilli(cst(from)), time.UnixMilli(cst(to)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBillFromReadings(t *testing.T) {
	st, l := newStore(t), newLedger(t)
	// Frozen records at the month bounds win over readings near them.
	apply(t, st, l,
		rec(1, cst("2026-01-01 00:00"), wire.KindFrozen, 0, 0, 0),
		rec(2, cst("2026-05-31 23:50"), wire.KindReading, 2_690_000, 0, 0),
		rec(3, cst("2026-06-01 00:00"), wire.KindFrozen, 2_700_000, 0, 0),
		rec(4, cst("2026-06-01 00:05"), wire.KindReading, 2_701_000, 0, 0),
		rec(5, cst("2026-06-15 12:00"), wire.KindReading, 2_800_000, 0, 0),
		rec(6, cst("2026-07-01 00:00"), wire.KindFrozen, 2_900_000, 0, 0),
	)
	b := bill(t, st, l, "A1", "2026-06-01 00:00", "2026-07-01 00:00")
	if b.TotalFen != 11460 || b.Total != "114.60" || b.TotalWh != 200_000 || len(b.Lines) != 2 {
		t.Errorf("June bill = %s 元 for %d Wh in %d lines, want 114.60 for 200 kWh in 2 lines: %+v", b.Total, b.TotalWh, len(b.Lines), b)
	}
	if b.Meters[0].Start.Kind != wire.KindFrozen || b.Meters[0].End.Kind != wire.KindFrozen {
		t.Errorf("bounds = %+v, %+v; want the frozen records", b.Meters[0].Start, b.Meters[0].End)
	}

	// Without frozen records the nearest readings stand for the bounds.
	st2 := newStore(t)
	apply(t, st2, l,
		rec(1, cst("2026-01-01 03:00"), wire.KindReading, 0, 0, 0),
		rec(2, cst("2026-06-01 01:00"), wire.KindReading, 2_700_000, 0, 0),
		rec(3, cst("2026-06-30 22:00"), wire.KindReading, 2_900_000, 0, 0),
	)
	b = bill(t, st2, l, "A1", "2026-06-01 00:00", "2026-07-01 00:00")
	if b.Total != "114.60" {
		t.Errorf("June bill from nearest readings = %s 元, want 114.60", b.Total)
	}
}

func TestBillTOUAndSpanningYears(t *testing.T) {
	st, l := newStore(t), newLedger(t)
	// M2 (TOU): 3 kWh in the peak (10:00–11:00), 2 kWh in the valley (23:00–24:00).
	apply(t, st, l,
		rec(1, cst("2026-03-01 00:00"), wire.KindReading, 0, 0, 0),
		rec(2, cst("2026-03-01 10:00"), wire.KindReading, 0, 0, 0),
		rec(3, cst("2026-03-01 11:00"), wire.KindReading, 0, 3_000, 0),
		rec(4, cst("2026-03-01 23:00"), wire.KindReading, 0, 3_000, 0),
		rec(5, cst("2026-03-02 00:00"), wire.KindReading, 0, 5_000, 0),
	)
	b := bill(t, st, l, "A2", "2026-03-01 00:00", "2026-03-02 00:00")
	// 3 × 0.568 = 1.704 → 1.70; 2 × 0.288 = 0.576 → 0.58.
	if len(b.Lines) != 2 || b.Lines[0].Band != BandPeak || b.Lines[0].Wh != 3000 || b.Lines[1].Band != BandValley || b.TotalFen != 170+58 {
		t.Errorf("TOU bill = %+v", b.Lines)
	}

	st2 := newStore(t)
	apply(t, st2, l,
		rec(1, cst("2026-01-01 00:00"), wire.KindFrozen, 0, 0, 0),
		rec(2, cst("2026-12-01 00:00"), wire.KindFrozen, 2_700_000, 0, 0),
		rec(3, cst("2027-01-01 00:00"), wire.KindFrozen, 2_900_000, 0, 0),
		rec(4, cst("2027-02-01 00:00"), wire.KindFrozen, 3_000_000, 0, 0),
	)
	b = bill(t, st2, l, "A1", "2026-12-01 00:00", "2027-02-01 00:00")
	// December: the worked example (114.60); January: a new tier year, 100 kWh at tier 1.
	if b.TotalFen != 11460+5380 || len(b.Lines) != 3 || b.Lines[2].Period != "2027-01-01" || b.Lines[2].Tier != 1 {
		t.Errorf("bill across the tier year = %d fen, lines %+v", b.TotalFen, b.Lines)
	}
}

func TestBillEstimatedSettledByActual(t *testing.T) {
	st, l := newStore(t), newLedger(t)
	apply(t, st, l, rec(1, cst("2026-01-01 00:00"), wire.KindFrozen, 0, 0, 0), rec(2, cst("2026-06-01 00:00"), wire.KindFrozen, 2_700_000, 0, 0))
	est := store.Reading{TimeMS: cst("2026-06-30 10:00"), District: "D1", Terminal: "T1", Meter: "M1", Channel: 1,
		EnergyWh: 2_950_000, Multiplier: 1, Estimated: true, Reader: "R1"}
	if err := st.Update(func(tx *store.Tx) error { return tx.PutManualReading(est) }); err != nil {
		t.Fatal(err)
	}
	b := bill(t, st, l, "A1", "2026-06-01 00:00", "2026-07-01 00:00")
	if !b.Estimated || b.TotalWh != 250_000 {
		t.Errorf("bill with an estimate = %d Wh, estimated %v; want 250 kWh, estimated", b.TotalWh, b.Estimated)
	}
	// The actual reading a little later is lower than the estimate; it settles the bill.
	act := est
	act.TimeMS, act.EnergyWh, act.Estimated = cst("2026-06-30 16:00"), 2_900_000, false
	if err := st.Update(func(tx *store.Tx) error { return tx.PutManualReading(act) }); err != nil {
		t.Fatal(err)
	}
	b = bill(t, st, l, "A1", "2026-06-01 00:00", "2026-07-01 00:00")
	if b.Estimated || b.TotalWh != 200_000 || b.Total != "114.60" {
		t.Errorf("settled bill = %s 元 for %d Wh, estimated %v; want 114.60 for 200 kWh, actual", b.Total, b.TotalWh, b.Estimated)
	}
}
