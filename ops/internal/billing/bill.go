package billing

import (
	"fmt"
	"time"

	"github.com/meterlink/meterlink/ops/internal/store"
)

// Bill is an account's bill for a period: each meter's consumption and the priced lines.
type Bill struct {
	Account    store.AccountID     `json:"account"`
	Owner      string              `json:"owner"`
	Payment    store.PaymentMethod `json:"payment"`
	Tariff     string              `json:"tariff"`
	TariffName string              `json:"tariff_name"`
	From       time.Time           `json:"from"`
	To         time.Time           `json:"to"`
	Meters     []Usage             `json:"meters"`
	Lines      []Line              `json:"lines"` // per tier and band (and tier period, when the bill spans several)
	TotalWh    int64               `json:"total_wh"`
	TotalFen   int64               `json:"total_fen"`           // the sum of the lines' amounts
	Total      string              `json:"total"`               // TotalFen in 元, e.g. "114.60"
	Estimated  bool                `json:"estimated,omitempty"` // some meter's end reading is an estimate (暂计)
	BalanceFen int64               `json:"balance_fen"`         // the account's balance now
}

// Bill prices an account's consumption in [from, to) at its tariff. The period is cut at
// tier-period bounds; in each part the tiers start from the account's consumption since
// its tier period began (all its meters together: tiers are per household), and the lines
// say which part they belong to when there are several.
func (l *Ledger) Bill(tx *store.Tx, id store.AccountID, from, to time.Time) (Bill, error) {
	a, err := tx.Account(id)
	if err != nil {
		return Bill{}, err
	}
	t, err := l.cat.Tariff(a.Tariff)
	if err != nil {
		return Bill{}, fmt.Errorf("account %s: %w", id, err)
	}
	meters, err := tx.AccountMeters(id)
	if err != nil {
		return Bill{}, err
	}
	loc := l.cfg.Location
	b := Bill{Account: a.ID, Owner: a.Owner, Payment: a.Payment, Tariff: t.ID, TariffName: t.Name,
		From: from.In(loc), To: to.In(loc), Meters: []Usage{}, Lines: []Line{}, BalanceFen: a.BalanceFen}
	for _, m := range meters {
		u, err := l.cfg.Usage(tx, m.ID, from.UnixMilli(), to.UnixMilli(), false)
		if err != nil {
			return Bill{}, err
		}
		b.Meters = append(b.Meters, u)
		b.TotalWh += u.Wh
		b.Estimated = b.Estimated || u.Estimated
	}
	var segs [][2]time.Time
	for s := from; s.Before(to); {
		_, e := l.cfg.TierPeriod(t.Period, s)
		if to.Before(e) {
			e = to
		}
		segs = append(segs, [2]time.Time{s, e})
		s = e
	}
	for _, seg := range segs {
		ps, _ := l.cfg.TierPeriod(t.Period, seg[0])
		var base int64
		var ivs []Interval
		for _, m := range meters {
			if seg[0].After(ps) {
				u, err := l.cfg.Usage(tx, m.ID, ps.UnixMilli(), seg[0].UnixMilli(), false)
				if err != nil {
					return Bill{}, err
				}
				base += u.Wh
			}
			u, err := l.cfg.Usage(tx, m.ID, seg[0].UnixMilli(), seg[1].UnixMilli(), t.HasTOU())
			if err != nil {
				return Bill{}, err
			}
			ivs = append(ivs, u.intervals...)
		}
		c := t.Price(base, ivs, loc)
		for _, ln := range c.Lines {
			if len(segs) > 1 {
				ln.Period = ps.Format(time.DateOnly)
			}
			b.Lines = append(b.Lines, ln)
			b.TotalFen += ln.AmountFen
		}
	}
	b.Total = FormatFen(b.TotalFen)
	return b, nil
}
