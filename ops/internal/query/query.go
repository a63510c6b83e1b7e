// Package query answers the handheld's on-site customer queries ([wire.Query]): owner,
// payment method, balance, this billing period's consumption and warnings, reading only
// the keys the query needs so that an answer takes well under a millisecond at 100,000
// meters, and giving up at the query's deadline.
package query

import (
	"context"
	"errors"
	"time"

	"github.com/meterlink/meterlink/ops/internal/billing"
	"github.com/meterlink/meterlink/ops/internal/store"
	"github.com/meterlink/meterlink/ops/internal/vee"
	"github.com/meterlink/meterlink/wire"
)

// Answer error codes (wire.Answer.Error).
const (
	ErrNotFound = "not_found"
	ErrInvalid  = "invalid"
	ErrDeadline = "deadline"
	ErrInternal = "internal"
)

// Responder answers queries from the store.
type Responder struct {
	db     *store.DB
	ledger *billing.Ledger
	vee    *vee.Validator
	now    func() time.Time
}

// New returns a responder; now defaults to time.Now.
func New(db *store.DB, l *billing.Ledger, v *vee.Validator, now func() time.Time) *Responder {
	if now == nil {
		now = time.Now
	}
	return &Responder{db: db, ledger: l, vee: v, now: now}
}

// errDeadline stops the work when the query's deadline or ctx has passed.
var errDeadline = errors.New("deadline passed")

// Answer answers q: by meter (its account), by account, or by terminal (the accounts of its
// meters, in channel order). An invalid query, an unknown id, a passed deadline or a
// failed store read is answered with Error set and no customers.
func (r *Responder) Answer(ctx context.Context, q wire.Query) wire.Answer {
	now := r.now()
	ans := wire.Answer{V: wire.Version, ID: q.ID, Customers: []wire.CustomerInfo{}, AsOfMS: now.UnixMilli()}
	if err := q.Validate(); err != nil {
		ans.Error = ErrInvalid
		return ans
	}
	ctx, cancel := context.WithDeadline(ctx, time.UnixMilli(q.DeadlineMS))
	defer cancel()
	if ctx.Err() != nil {
		ans.Error = ErrDeadline
		return ans
	}
	err := r.db.View(func(tx *store.Tx) error {
		var meters []store.Meter
		switch {
		case q.Meter != "":
			m, err := tx.Meter(q.Meter)
			if err != nil {
				return err
			}
			meters = []store.Meter{m}
		case q.Account != "":
			ms, err := tx.AccountMeters(store.AccountID(q.Account))
			if err != nil {
				return err
			}
			if _, err := tx.Account(store.AccountID(q.Account)); err != nil {
				return err
			}
			return r.addAccount(ctx, tx, &ans, store.AccountID(q.Account), ms, now)
		default:
			t, err := tx.Terminal(q.Terminal)
			if err != nil {
				return err
			}
			for _, c := range t.Channels {
				m, err := tx.Meter(c.Meter)
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				meters = append(meters, m)
			}
		}
		// Group the meters by account, keeping their order.
		byAcct := map[store.AccountID][]store.Meter{}
		var order []store.AccountID
		for _, m := range meters {
			if m.Account == "" {
				continue
			}
			if _, ok := byAcct[m.Account]; !ok {
				order = append(order, m.Account)
			}
			byAcct[m.Account] = append(byAcct[m.Account], m)
		}
		if len(order) == 0 && q.Meter != "" {
			return store.ErrNotFound // a meter without a customer
		}
		for _, id := range order {
			if err := r.addAccount(ctx, tx, &ans, id, byAcct[id], now); err != nil {
				return err
			}
		}
		return nil
	})
	switch {
	case err == nil:
	case errors.Is(err, errDeadline):
		ans.Error, ans.Customers = ErrDeadline, []wire.CustomerInfo{}
	case errors.Is(err, store.ErrNotFound):
		ans.Error, ans.Customers = ErrNotFound, []wire.CustomerInfo{}
	default:
		ans.Error, ans.Customers = ErrInternal, []wire.CustomerInfo{}
	}
	return ans
}

// addAccount appends one account's information, computed from the given meters.
func (r *Responder) addAccount(ctx context.Context, tx *store.Tx, ans *wire.Answer, id store.AccountID, meters []store.Meter, now time.Time) error {
	if ctx.Err() != nil {
		return errDeadline
	}
	a, err := tx.Account(id)
	if err != nil {
		return err
	}
	cfg := r.ledger.Config()
	start, _ := cfg.Month(now)
	ci := wire.CustomerInfo{
		Account: string(a.ID), Owner: a.Owner, Address: a.Address, Payment: string(a.Payment),
		BalanceFen: a.BalanceFen, Meters: []wire.MeterID{}, PeriodStart: start.Format(time.DateOnly),
		Warnings: r.ledger.Warnings(a),
	}
	for _, m := range meters {
		if ctx.Err() != nil {
			return errDeadline
		}
		ci.Meters = append(ci.Meters, m.ID)
		u, err := cfg.Usage(tx, m.ID, start.UnixMilli(), now.UnixMilli(), false)
		if err != nil {
			return err
		}
		ci.PeriodWh += u.Wh
		if u.End != nil && u.End.TimeMS > ci.LastReadingMS {
			ci.LastReadingMS = u.End.TimeMS
		}
		ws, err := r.vee.Warnings(tx, m, now.UnixMilli())
		if err != nil {
			return err
		}
		for _, w := range ws {
			w.Detail = string(m.ID) + ": " + w.Detail
			ci.Warnings = append(ci.Warnings, w)
		}
	}
	ans.Customers = append(ans.Customers, ci)
	return nil
}
