package billing

import (
	"errors"
	"fmt"
	"time"

	"github.com/meterlink/meterlink/ops/internal/store"
	"github.com/meterlink/meterlink/wire"
)

// ErrPaymentConflict is returned when a payment id is reused with a different amount,
// method or account.
var ErrPaymentConflict = errors.New("payment id already used for a different payment")

// ErrHoarding is returned when a prepaid top-up would raise the balance above the hoarding
// limit (囤积限额).
var ErrHoarding = errors.New("top-up above the hoarding limit")

// Ledger charges prepaid accounts as consumption arrives, records payments and prices
// bills. Its methods work inside a store transaction, so that a charge commits with
// whatever else the caller writes.
type Ledger struct {
	cfg Config
	cat *Catalog
}

// New returns a ledger pricing with the catalog's tariffs; zero config fields take their
// defaults.
func New(cfg Config, cat *Catalog) (*Ledger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Ledger{cfg: cfg.withDefaults(), cat: cat}, nil
}

// Config returns the configuration in effect, defaults filled.
func (l *Ledger) Config() Config { return l.cfg }

// Catalog returns the tariff catalog.
func (l *Ledger) Catalog() *Catalog { return l.cat }

// cursor is the last reading of a meter that was charged.
type cursor struct {
	TimeMS   int64           `json:"ts_ms"`
	Terminal wire.TerminalID `json:"terminal"`
	Seq      uint64          `json:"seq"`
	Wh       int64           `json:"energy_wh"`
}

// ChargeState is a prepaid account's charging state (store.StateCharge): the last charged
// reading of each meter, and what was charged in the current tier period. Because a
// reading is charged only when it is newer than its meter's cursor, a record that arrives
// twice, or late, never charges twice.
type ChargeState struct {
	PeriodStartMS int64                    `json:"period_start_ms"`
	PeriodWh      int64                    `json:"period_wh"`    // consumption charged in the tier period, × multiplier
	PeriodUnits   int64                    `json:"period_units"` // its exact cost, 1e-5 fen
	ChargedFen    int64                    `json:"charged_fen"`  // taken from the balance: RoundFen(PeriodUnits)
	Meters        map[wire.MeterID]*cursor `json:"meters"`
}

// Charge draws prepaid balances down for the readings (field or manual; estimated ones are
// skipped) inside tx: each meter's advance since its last charged reading is priced at
// its account's tariff, tiers based on the tier-period consumption charged so far. The
// running cost is kept exactly and the balance moves by the change in its rounded value,
// so rounding never drifts. It returns the balance alerts the charges raised (low balance,
// overdraft), stored in tx, and is idempotent: a reading not newer than its meter's
// cursor charges nothing.
func (l *Ledger) Charge(tx *store.Tx, rs []store.Reading, nowMS int64) ([]store.Alert, error) {
	type acct struct {
		a     store.Account
		st    ChargeState
		start int64 // balance before this call
	}
	accts := map[store.AccountID]*acct{}
	accountOf := map[wire.MeterID]store.AccountID{} // "" for a meter not found or without an account
	var order []store.AccountID
	var alerts []store.Alert
	for _, r := range rs {
		if r.Estimated || (r.Kind != wire.KindReading && r.Kind != wire.KindFrozen && r.Kind != store.KindManual) {
			continue
		}
		account, ok := accountOf[r.Meter]
		if !ok {
			m, err := tx.Meter(r.Meter)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, err
			}
			account, accountOf[r.Meter] = m.Account, m.Account
		}
		if account == "" {
			continue
		}
		ac, ok := accts[account]
		if !ok {
			a, err := tx.Account(account)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			ac = &acct{a: a, start: a.BalanceFen}
			if _, err := tx.State(store.StateCharge, string(a.ID), &ac.st); err != nil {
				return nil, err
			}
			if ac.st.Meters == nil {
				ac.st.Meters = map[wire.MeterID]*cursor{}
			}
			accts[account] = ac
			order = append(order, account)
		}
		if ac.a.Payment != store.Prepaid {
			continue
		}
		t, err := l.cat.Tariff(ac.a.Tariff)
		if err != nil {
			alerts = append(alerts, store.Alert{
				ID: store.AlertID("tariff_unknown", string(ac.a.ID), ac.a.Tariff), Code: "tariff_unknown", Severity: store.SeverityCritical,
				District: r.District, Account: ac.a.ID, Meter: r.Meter, TimeMS: r.TimeMS, RaisedMS: nowMS,
				Detail: fmt.Sprintf("account %s names tariff %q, which is not in the catalog: not charged", ac.a.ID, ac.a.Tariff),
			})
			continue
		}
		c := ac.st.Meters[r.Meter]
		if c == nil {
			ac.st.Meters[r.Meter] = &cursor{TimeMS: r.TimeMS, Terminal: r.Terminal, Seq: r.Seq, Wh: r.EnergyWh}
			continue // the first reading is the baseline
		}
		if !newer(r, c) {
			continue
		}
		wh, kind := l.cfg.Register.Advance(c.Wh, r.EnergyWh)
		if kind == Backward {
			continue // not billable; validation raises reverse_running and the cursor stays
		}
		before := ac.a.BalanceFen
		ac.a.BalanceFen -= l.chargeInterval(t, &ac.st, Interval{FromMS: c.TimeMS, ToMS: r.TimeMS, Wh: wh * int64(max(r.Multiplier, 1))})
		*c = cursor{TimeMS: r.TimeMS, Terminal: r.Terminal, Seq: r.Seq, Wh: r.EnergyWh}
		alerts = append(alerts, l.balanceAlerts(ac.a, r, before, nowMS)...)
	}
	for _, id := range order {
		ac := accts[id]
		if err := tx.SetState(store.StateCharge, string(id), ac.st); err != nil {
			return nil, err
		}
		if ac.a.BalanceFen != ac.start {
			if _, err := tx.SetBalance(id, ac.a.BalanceFen); err != nil {
				return nil, err
			}
		}
	}
	return alerts, nil
}

// newer reports whether reading r is later than the cursor.
func newer(r store.Reading, c *cursor) bool {
	if r.TimeMS != c.TimeMS {
		return r.TimeMS > c.TimeMS
	}
	if r.Terminal != c.Terminal {
		return r.Terminal > c.Terminal
	}
	return r.Seq > c.Seq
}

// chargeInterval prices iv into st, split pro rata at tier-period bounds, and returns the
// fen to take from the balance. A new tier period starts from zero; what was charged in
// the old one is settled (its rounded total is what the balance paid). An interval that
// starts before the state's period (another meter of the account is already in the next
// period) is priced in the state's period: an approximation that only touches the
// readings around a tier-period change.
func (l *Ledger) chargeInterval(t *Tariff, st *ChargeState, iv Interval) int64 {
	var fen int64
	for {
		start, end := l.cfg.TierPeriod(t.Period, time.UnixMilli(iv.FromMS))
		if s := start.UnixMilli(); s > st.PeriodStartMS {
			*st = ChargeState{PeriodStartMS: s, Meters: st.Meters}
		}
		seg, done := iv, true
		if endMS := end.UnixMilli(); iv.ToMS > endMS {
			parts := splitLargest(iv.Wh, []int64{endMS - iv.FromMS, iv.ToMS - endMS})
			seg = Interval{FromMS: iv.FromMS, ToMS: endMS, Wh: parts[0]}
			iv, done = Interval{FromMS: endMS, ToMS: iv.ToMS, Wh: parts[1]}, false
		}
		c := t.Price(st.PeriodWh, []Interval{seg}, l.cfg.Location)
		st.PeriodWh += seg.Wh
		st.PeriodUnits += c.Units
		charged := RoundFen(st.PeriodUnits)
		fen += charged - st.ChargedFen
		st.ChargedFen = charged
		if done {
			return fen
		}
	}
}

// balanceAlerts raises an alert when a charge takes a prepaid balance across alarm 1,
// alarm 2 or zero (domain.md §6.3).
func (l *Ledger) balanceAlerts(a store.Account, r store.Reading, before, nowMS int64) []store.Alert {
	after := a.BalanceFen
	mk := func(level, code, sev, detail string) []store.Alert {
		return []store.Alert{{
			ID: store.AlertID(code, string(a.ID), level, fmt.Sprint(r.TimeMS), string(r.Meter)), Code: code, Severity: sev,
			District: r.District, Terminal: r.Terminal, Meter: r.Meter, Account: a.ID, Seq: r.Seq,
			TimeMS: r.TimeMS, RaisedMS: nowMS, Detail: detail,
		}}
	}
	switch {
	case before > 0 && after <= 0:
		return mk("zero", "arrears", store.SeverityCritical, fmt.Sprintf("prepaid balance %s 元: overdrawn", FormatFen(after)))
	case before > l.cfg.Alarm2Fen && after <= l.cfg.Alarm2Fen:
		return mk("alarm2", "low_balance", store.SeverityCritical,
			fmt.Sprintf("prepaid balance %s 元 at or below alarm 2 (%s 元)", FormatFen(after), FormatFen(l.cfg.Alarm2Fen)))
	case before > l.cfg.Alarm1Fen && after <= l.cfg.Alarm1Fen:
		return mk("alarm1", "low_balance", store.SeverityWarning,
			fmt.Sprintf("prepaid balance %s 元 at or below alarm 1 (%s 元)", FormatFen(after), FormatFen(l.cfg.Alarm1Fen)))
	}
	return nil
}

// Warnings returns the on-site warnings of an account's balance: overdraft or arrears,
// and a prepaid balance at or below the alarms.
func (l *Ledger) Warnings(a store.Account) []wire.Warning {
	b := a.BalanceFen
	switch {
	case a.Payment == store.Prepaid && b <= 0:
		return []wire.Warning{{Code: "arrears", Severity: store.SeverityCritical, Detail: "prepaid balance " + FormatFen(b) + " 元: overdrawn"}}
	case a.Payment == store.Prepaid && b <= l.cfg.Alarm2Fen:
		return []wire.Warning{{Code: "low_balance", Severity: store.SeverityCritical, Detail: "prepaid balance " + FormatFen(b) + " 元"}}
	case a.Payment == store.Prepaid && b <= l.cfg.Alarm1Fen:
		return []wire.Warning{{Code: "low_balance", Severity: store.SeverityWarning, Detail: "prepaid balance " + FormatFen(b) + " 元"}}
	case a.Payment == store.Postpaid && b < 0:
		return []wire.Warning{{Code: "arrears", Severity: store.SeverityWarning, Detail: "arrears " + FormatFen(-b) + " 元"}}
	}
	return nil
}

// Pay records a payment into an account inside tx and returns it with the balance after
// it. A payment id is recorded once: the same payment again returns the stored one with
// created false and changes nothing; the id with another amount or method is
// [ErrPaymentConflict]. A prepaid top-up above Config.HoardingMaxFen is [ErrHoarding].
func (l *Ledger) Pay(tx *store.Tx, p store.Payment) (out store.Payment, created bool, err error) {
	a, err := tx.Account(p.Account)
	if err != nil {
		return store.Payment{}, false, err
	}
	old, ok, err := tx.Payment(p.Account, p.ID)
	if err != nil {
		return store.Payment{}, false, err
	}
	if ok {
		if old.AmountFen != p.AmountFen || old.Method != p.Method {
			return store.Payment{}, false, fmt.Errorf("payment %s of %s 元: %w", p.ID, FormatFen(old.AmountFen), ErrPaymentConflict)
		}
		return old, false, nil
	}
	if a.Payment == store.Prepaid && l.cfg.HoardingMaxFen > 0 && a.BalanceFen+p.AmountFen > l.cfg.HoardingMaxFen {
		return store.Payment{}, false, fmt.Errorf("balance would be %s 元, limit %s 元: %w",
			FormatFen(a.BalanceFen+p.AmountFen), FormatFen(l.cfg.HoardingMaxFen), ErrHoarding)
	}
	a, err = tx.SetBalance(a.ID, a.BalanceFen+p.AmountFen)
	if err != nil {
		return store.Payment{}, false, err
	}
	p.BalanceAfter = a.BalanceFen
	return p, true, tx.PutPayment(p)
}
