package billing

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// ErrUnknownTariff is returned for a tariff id that the catalog does not hold.
var ErrUnknownTariff = errors.New("unknown tariff")

// Band is a time-of-use period (尖/峰/平/谷, meter tariffs 1..4).
type Band string

// The bands. A tariff without a schedule prices everything as BandFlat.
const (
	BandSharp  Band = "sharp"  // 尖
	BandPeak   Band = "peak"   // 峰
	BandFlat   Band = "flat"   // 平
	BandValley Band = "valley" // 谷
)

// Period is how often tier thresholds reset.
type Period string

// The tier periods.
const (
	Annual  Period = "annual"  // thresholds per tier year (configurable start, 1 January by default)
	Monthly Period = "monthly" // thresholds per calendar month
)

// SplitRule says how a tariff with tiers and time-of-use bands combines them. Provinces
// differ (domain.md §6.1), so it is part of the tariff's data.
type SplitRule string

// The split rules.
const (
	// SplitProRata splits the period's kWh across tiers using the consumption before the
	// period, then splits each tier slice by the period's band shares (the common method).
	SplitProRata SplitRule = "pro_rata"
	// SplitChronological fills the tiers in time order: the earliest consumption of the
	// period fills the lower tier, whatever its band.
	SplitChronological SplitRule = "chronological"
)

// SlotsPerDay is the time-of-use granularity: 15-minute slots.
const SlotsPerDay = 96

// Tier is one step of a tiered tariff.
type Tier struct {
	UpToKWh int64          `json:"up_to_kwh"` // last kWh of this tier in the tier period (inclusive, ≤ 2760 means 2760 is tier 1); 0 on the last tier: no limit
	Prices  map[Band]Price `json:"prices"`    // price per band; a tariff without a schedule has only "flat"
}

// Span gives a band to the local times [From, To), "HH:MM" on the 15-minute grid; To may be
// "24:00", and a span may wrap past midnight ("22:00"–"08:00").
type Span struct {
	From string `json:"from"`
	To   string `json:"to"`
	Band Band   `json:"band"`
}

// Tariff is a tariff as data: tiers with annual or monthly thresholds, an optional
// time-of-use schedule, and the rule that combines them. A single-tier tariff without a
// schedule is a fixed (flat) price.
type Tariff struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Source   string    `json:"source,omitempty"` // where the numbers come from, with their evidence mark
	Period   Period    `json:"period"`
	Tiers    []Tier    `json:"tiers"`
	Schedule []Span    `json:"schedule,omitempty"` // empty: no time of use
	Split    SplitRule `json:"split,omitempty"`    // default SplitProRata

	slots [SlotsPerDay]Band // the schedule compiled by Validate
}

// Validate checks the tariff and compiles its schedule; every problem is reported.
func (t *Tariff) Validate() error {
	var errs []error
	if t.ID == "" {
		errs = append(errs, errors.New("id is required"))
	}
	if t.Period != Annual && t.Period != Monthly {
		errs = append(errs, fmt.Errorf("period %q: want annual or monthly", t.Period))
	}
	if t.Split == "" {
		t.Split = SplitProRata
	}
	if t.Split != SplitProRata && t.Split != SplitChronological {
		errs = append(errs, fmt.Errorf("split %q: want pro_rata or chronological", t.Split))
	}
	bands := map[Band]bool{BandFlat: true}
	if len(t.Schedule) > 0 {
		bands = map[Band]bool{}
		var set [SlotsPerDay]bool
		for i, s := range t.Schedule {
			from, err1 := slotOf(s.From)
			to, err2 := slotOf(s.To)
			if err := errors.Join(err1, err2); err != nil {
				errs = append(errs, fmt.Errorf("schedule[%d]: %w", i, err))
				continue
			}
			switch s.Band {
			case BandSharp, BandPeak, BandFlat, BandValley:
			default:
				errs = append(errs, fmt.Errorf("schedule[%d].band %q: want sharp, peak, flat or valley", i, s.Band))
			}
			bands[s.Band] = true
			n := (to - from + SlotsPerDay) % SlotsPerDay
			if n == 0 && to != from {
				n = SlotsPerDay // 00:00–24:00
			}
			if n == 0 {
				errs = append(errs, fmt.Errorf("schedule[%d]: empty span %s–%s", i, s.From, s.To))
			}
			for j := range n {
				k := (from + j) % SlotsPerDay
				if set[k] {
					errs = append(errs, fmt.Errorf("schedule[%d]: %s overlaps another span", i, slotTime(k)))
					break
				}
				set[k], t.slots[k] = true, s.Band
			}
		}
		for k, ok := range set {
			if !ok {
				errs = append(errs, fmt.Errorf("schedule leaves %s without a band", slotTime(k)))
				break
			}
		}
	} else {
		for k := range t.slots {
			t.slots[k] = BandFlat
		}
	}
	if len(t.Tiers) == 0 {
		errs = append(errs, errors.New("tiers: at least one is required"))
	}
	prev := int64(0)
	for i, tr := range t.Tiers {
		last := i == len(t.Tiers)-1
		switch {
		case last && tr.UpToKWh != 0:
			errs = append(errs, fmt.Errorf("tiers[%d].up_to_kwh: the last tier has no limit (0)", i))
		case !last && tr.UpToKWh <= prev:
			errs = append(errs, fmt.Errorf("tiers[%d].up_to_kwh %d: must be above the previous tier's %d", i, tr.UpToKWh, prev))
		}
		prev = tr.UpToKWh
		for b := range bands {
			if p, ok := tr.Prices[b]; !ok || p < 0 {
				errs = append(errs, fmt.Errorf("tiers[%d].prices: no price for band %s", i, b))
			}
		}
	}
	return errors.Join(errs...)
}

// slotOf parses "HH:MM" on the 15-minute grid into a slot 0..96.
func slotOf(s string) (int, error) {
	var h, m int
	if len(s) != 5 || s[2] != ':' {
		return 0, fmt.Errorf("time %q: want HH:MM", s)
	}
	if _, err := fmt.Sscanf(s, "%02d:%02d", &h, &m); err != nil || h > 24 || m > 59 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("time %q: want HH:MM from 00:00 to 24:00", s)
	}
	if m%15 != 0 {
		return 0, fmt.Errorf("time %q: not on the 15-minute grid", s)
	}
	return h*4 + m/15, nil
}

func slotTime(k int) string { return fmt.Sprintf("%02d:%02d", k/4, k%4*15) }

// HasTOU reports whether the tariff has a time-of-use schedule.
func (t *Tariff) HasTOU() bool { return len(t.Schedule) > 0 }

// BandAt returns the band of local time tm.
func (t *Tariff) BandAt(tm time.Time) Band {
	return t.slots[(tm.Hour()*60+tm.Minute())/15]
}

// Catalog holds the tariffs by id. It is read-only after construction and safe for
// concurrent use.
type Catalog struct {
	byID map[string]*Tariff
}

// NewCatalog validates the tariffs and returns a catalog of them.
func NewCatalog(ts ...Tariff) (*Catalog, error) {
	c := &Catalog{byID: map[string]*Tariff{}}
	var errs []error
	for _, t := range ts {
		if err := t.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("tariff %q: %w", t.ID, err))
			continue
		}
		if _, dup := c.byID[t.ID]; dup {
			errs = append(errs, fmt.Errorf("tariff %q: defined twice", t.ID))
		}
		c.byID[t.ID] = &t
	}
	return c, errors.Join(errs...)
}

// Tariff returns the tariff with the id, or [ErrUnknownTariff].
func (c *Catalog) Tariff(id string) (*Tariff, error) {
	t, ok := c.byID[id]
	if !ok {
		return nil, fmt.Errorf("tariff %q: %w", id, ErrUnknownTariff)
	}
	return t, nil
}

// All returns the tariffs by id.
func (c *Catalog) All() []Tariff {
	out := make([]Tariff, 0, len(c.byID))
	for _, t := range c.byID {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
