package billing

import (
	"time"

	"github.com/meterlink/meterlink/ops/internal/store"
	"github.com/meterlink/meterlink/wire"
)

// frozenWindow is how far from a period bound a daily frozen record may be stamped and
// still stand for the bound (the terminal's clock may be a little off).
const frozenWindow = 15 * time.Minute

// maxPeriodReadings bounds the readings of one meter that a bill walks through (a year of
// 15-minute readings is 35,040).
const maxPeriodReadings = 100_000

// Bound is the reading that stands for a meter's register at a period bound.
type Bound struct {
	TimeMS     int64     `json:"ts_ms"`
	EnergyWh   int64     `json:"energy_wh"`
	Kind       wire.Kind `json:"kind"` // frozen, reading or manual
	Estimated  bool      `json:"estimated,omitempty"`
	Multiplier uint32    `json:"multiplier"`
}

func boundOf(r store.Reading) Bound {
	return Bound{TimeMS: r.TimeMS, EnergyWh: r.EnergyWh, Kind: r.Kind, Estimated: r.Estimated, Multiplier: max(r.Multiplier, 1)}
}

// BoundAt returns the reading that stands for the meter's register at atMS: the daily
// frozen record of that date when there is one (frozen records are stamped at the freeze
// time), else the nearest reading in time (the earlier one on a tie). ok is false when the
// meter has no reading at all.
func (c Config) BoundAt(tx *store.Tx, meter wire.MeterID, atMS int64) (b Bound, ok bool, err error) {
	date := time.UnixMilli(atMS).In(c.Location).Format(time.DateOnly)
	w := frozenWindow.Milliseconds()
	near, err := tx.MeterReadings(meter, atMS-w, atMS+w+1, 64)
	if err != nil {
		return Bound{}, false, err
	}
	for _, r := range near {
		if r.Kind == wire.KindFrozen && r.FreezeDate == date && !r.Estimated {
			return boundOf(r), true, nil
		}
	}
	before, okB, err := tx.ReadingAtOrBefore(meter, atMS)
	if err != nil {
		return Bound{}, false, err
	}
	after, okA, err := tx.ReadingAtOrAfter(meter, atMS)
	if err != nil {
		return Bound{}, false, err
	}
	switch {
	case okB && okA:
		if atMS-before.TimeMS <= after.TimeMS-atMS {
			return boundOf(before), true, nil
		}
		return boundOf(after), true, nil
	case okB:
		return boundOf(before), true, nil
	case okA:
		return boundOf(after), true, nil
	}
	return Bound{}, false, nil
}

// Usage is one meter's consumption over a period.
type Usage struct {
	Meter     wire.MeterID `json:"meter"`
	Start     *Bound       `json:"start,omitempty"` // nil when the meter has no reading
	End       *Bound       `json:"end,omitempty"`
	Wh        int64        `json:"wh"`                  // × multiplier
	Estimated bool         `json:"estimated,omitempty"` // the end reading is an estimate (暂计), settled by the next actual reading
	Backward  bool         `json:"backward,omitempty"`  // some reading went backwards; that step is not billed

	intervals []Interval
}

// Usage returns the meter's consumption in [fromMS, toMS): from the reading at the start
// bound to the reading at the end bound (see BoundAt), through every actual reading in
// between so that time-of-use bands get the consumption of their own hours. Estimated
// readings count only as the end bound; an actual reading after them supersedes them.
// Backward steps advance nothing; a plausible rollover counts (Register.Advance).
func (c Config) Usage(tx *store.Tx, meter wire.MeterID, fromMS, toMS int64, withIntervals bool) (Usage, error) {
	u := Usage{Meter: meter}
	start, okS, err := c.BoundAt(tx, meter, fromMS)
	if err != nil || !okS {
		return u, err
	}
	end, _, err := c.BoundAt(tx, meter, toMS)
	if err != nil {
		return u, err
	}
	u.Start, u.End, u.Estimated = &start, &end, end.Estimated
	if end.TimeMS <= start.TimeMS {
		return u, nil
	}
	points := []Bound{start}
	if withIntervals {
		mid, err := tx.MeterReadings(meter, start.TimeMS+1, end.TimeMS, maxPeriodReadings)
		if err != nil {
			return u, err
		}
		for _, r := range mid {
			if !r.Estimated {
				points = append(points, boundOf(r))
			}
		}
	}
	points = append(points, end)
	ref := points[0]
	for _, p := range points[1:] {
		wh, kind := c.Register.Advance(ref.EnergyWh, p.EnergyWh)
		if kind == Backward {
			u.Backward = true
			continue // keep the last good reading as the reference
		}
		wh *= int64(p.Multiplier)
		u.Wh += wh
		u.intervals = append(u.intervals, Interval{FromMS: ref.TimeMS, ToMS: p.TimeMS, Wh: wh})
		ref = p
	}
	return u, nil
}
