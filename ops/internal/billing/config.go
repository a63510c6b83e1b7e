package billing

import (
	"errors"
	"fmt"
	"time"
)

// CST is China Standard Time (UTC+8, no daylight saving), the default billing time zone.
// A fixed zone needs no tzdata on the host.
var CST = time.FixedZone("CST", 8*3600)

// MonthDay is a day of the year, such as the tier-year start.
type MonthDay struct {
	Month time.Month
	Day   int // 1..28, so that every year has it
}

// ParseMonthDay parses "MM-DD", e.g. "01-01".
func ParseMonthDay(s string) (MonthDay, error) {
	var m, d int
	if len(s) != 5 || s[2] != '-' {
		return MonthDay{}, fmt.Errorf("%q: want MM-DD, e.g. 01-01", s)
	}
	if _, err := fmt.Sscanf(s, "%02d-%02d", &m, &d); err != nil || m < 1 || m > 12 || d < 1 || d > 28 {
		return MonthDay{}, fmt.Errorf("%q: want MM-DD with a day from 01 to 28", s)
	}
	return MonthDay{Month: time.Month(m), Day: d}, nil
}

// String formats the day as "MM-DD".
func (md MonthDay) String() string { return fmt.Sprintf("%02d-%02d", int(md.Month), md.Day) }

// Register is the arithmetic of a meter register between two readings (domain.md §6.5,
// configurable because it is [K]).
type Register struct {
	RolloverWh    int64 // the register wraps to 0 here; default 1,000,000 kWh (a 999999.99 display)
	MaxRolloverWh int64 // a decrease counts as a rollover only when the wrapped usage is at most this; default 10,000 kWh
}

// Advance kinds.
const (
	Forward  = "forward"  // cur ≥ prev
	Rollover = "rollover" // the register wrapped: usage = RolloverWh − prev + cur
	Backward = "backward" // cur < prev and not a plausible rollover: not billable (倒走)
)

// Advance returns the register's advance from prev to cur in Wh (before the multiplier)
// and its kind. A backward reading advances 0.
func (r Register) Advance(prevWh, curWh int64) (wh int64, kind string) {
	switch {
	case curWh >= prevWh:
		return curWh - prevWh, Forward
	case r.RolloverWh > 0 && prevWh < r.RolloverWh && r.RolloverWh-prevWh+curWh <= r.MaxRolloverWh:
		return r.RolloverWh - prevWh + curWh, Rollover
	}
	return 0, Backward
}

// Config configures billing. Every field has a default ([DefaultConfig]); the zero value
// of a field means its default.
type Config struct {
	Location       *time.Location // time zone of TOU bands, tier periods and billing months; default CST (UTC+8)
	TierYearStart  MonthDay       // the tier year's first day; default 01-01
	Alarm1Fen      int64          // prepaid: warn at or below this balance; default 2000 (20 元)
	Alarm2Fen      int64          // prepaid: critical at or below this balance; default 500 (5 元)
	HoardingMaxFen int64          // prepaid: a top-up may not raise the balance above this; 0 for no limit
	Register       Register       // rollover arithmetic
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Location: CST, TierYearStart: MonthDay{Month: time.January, Day: 1},
		Alarm1Fen: 2000, Alarm2Fen: 500,
		Register: Register{RolloverWh: 1_000_000_000, MaxRolloverWh: 10_000_000},
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Location == nil {
		c.Location = d.Location
	}
	if c.TierYearStart.Month == 0 {
		c.TierYearStart = d.TierYearStart
	}
	if c.Alarm1Fen == 0 {
		c.Alarm1Fen = d.Alarm1Fen
	}
	if c.Alarm2Fen == 0 {
		c.Alarm2Fen = d.Alarm2Fen
	}
	if c.Register == (Register{}) {
		c.Register = d.Register
	}
	return c
}

// Validate reports every bad value.
func (c Config) Validate() error {
	var errs []error
	if c.TierYearStart.Month != 0 && (c.TierYearStart.Month > 12 || c.TierYearStart.Day < 1 || c.TierYearStart.Day > 28) {
		errs = append(errs, fmt.Errorf("tier-year start %s: want MM-DD with a day from 01 to 28", c.TierYearStart))
	}
	if c.Alarm1Fen < 0 || c.Alarm2Fen < 0 || c.HoardingMaxFen < 0 {
		errs = append(errs, errors.New("alarm and hoarding amounts must not be negative"))
	}
	if c.Alarm1Fen != 0 && c.Alarm2Fen != 0 && c.Alarm2Fen > c.Alarm1Fen {
		errs = append(errs, fmt.Errorf("alarm 2 (%d fen) must not be above alarm 1 (%d fen)", c.Alarm2Fen, c.Alarm1Fen))
	}
	return errors.Join(errs...)
}

// TierPeriod returns the tier period [start, end) that contains tm: the tier year from
// TierYearStart, or the calendar month.
func (c Config) TierPeriod(p Period, tm time.Time) (start, end time.Time) {
	tm = tm.In(c.Location)
	if p == Monthly {
		return c.Month(tm)
	}
	md := c.TierYearStart
	start = time.Date(tm.Year(), md.Month, md.Day, 0, 0, 0, 0, c.Location)
	if tm.Before(start) {
		start = start.AddDate(-1, 0, 0)
	}
	return start, start.AddDate(1, 0, 0)
}

// Month returns the calendar month [start, end) that contains tm: the billing period of
// queries and default bills.
func (c Config) Month(tm time.Time) (start, end time.Time) {
	tm = tm.In(c.Location)
	start = time.Date(tm.Year(), tm.Month(), 1, 0, 0, 0, 0, c.Location)
	return start, start.AddDate(0, 1, 0)
}
