package billing

import (
	"crypto/sha256"
	"encoding/hex"
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
	var order []store.AccountID
	var alerts []store.Alert
	for _, r := range rs {
		if r.Estimated || (r.Kind != wire.KindReading && r.Kind != wire.KindFrozen && r.Kind != store.KindManual) {
			continue
		}
		m, err := tx.Meter(r.Meter)
		if errors.Is(err, store.ErrNotFound) || (err == nil && m.Account == "") {
			continue
		}
		if err != nil {
			return nil, err
		}
		ac, ok := accts[m.Account]
		if !ok {
			a, err := tx.Account(m.Account)
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
			accts[m.Account] = ac
			order = append(order, m.Account)
		}
		if ac.a.Payment != store.Prepaid {
			continue
		}
		t, err := l.cat.Tariff(ac.a.Tariff)
		if err != nil {
			alerts = append(alerts, store.Alert{
				ID: alertID("tariff_unknown", string(ac.a.ID), ac.a.Tariff), Code: "tariff_unknown", Severity: store.SeverityCritical,
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
		l.chargeInterval(t, &ac.st, Interval{FromMS: c.TimeMS, ToMS: r.TimeMS, Wh: wh * int64(max(r.Multiplier, 1))})
		ac.a.BalanceFen = ac.start - (ac.st.ChargedFen - 0) + 0 // recomputed below
		*c = cursor{TimeMS: r.TimeMS, Terminal: r.Terminal, Seq: r.Seq, Wh: r.EnergyWh}
		ac.a.BalanceFen = ac.start - ac.charged(ac.st)
		_ = ac
		alerts = append(alerts, l.balanceAlerts(ac.a, r, ac.start, nowMS)...)
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
