package terminal

import (
	"time"

	"github.com/meterlink/meterlink/wire"
)

// freezeLate is how late a freeze may be made from the counters and still count as actual;
// a terminal that was off at the freeze time makes it later, marked estimated.
const freezeLate = 5 * time.Minute

// freezeInstant is the freeze time on the day of d.
func (t *Terminal) freezeInstant(d time.Time) time.Time {
	return time.Date(d.Year(), d.Month(), d.Day(), t.freeze/60, t.freeze%60, 0, 0, t.loc)
}

// CheckFreeze makes the daily frozen records that are due: the one of today once the freeze
// time has passed on the terminal's clock, and any day missed while the terminal was off
// (marked estimated, up to FrozenDays back). It is called every second by Run; tests call it
// directly.
func (t *Terminal) CheckFreeze() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clock.Now().In(t.loc)
	due := now
	if now.Before(t.freezeInstant(now)) {
		due = now.AddDate(0, 0, -1)
	}
	dueDate := due.Format(time.DateOnly)
	last := t.store.meta(keyLastFrozen)
	if last >= dueDate {
		return nil
	}
	var dates []time.Time
	if last == "" {
		dates = []time.Time{due}
	} else {
		lastDay, err := time.ParseInLocation(time.DateOnly, last, t.loc)
		if err != nil {
			lastDay = due.AddDate(0, 0, -1)
		}
		for d := lastDay.AddDate(0, 0, 1); d.Format(time.DateOnly) <= dueDate; d = d.AddDate(0, 0, 1) {
			dates = append(dates, d)
		}
		if len(dates) > t.cfg.FrozenDays {
			dates = dates[len(dates)-t.cfg.FrozenDays:]
		}
	}
	for _, d := range dates {
		at := t.freezeInstant(d)
		r := wire.Record{
			Terminal: wire.TerminalID(t.cfg.ID), Kind: wire.KindFrozen, TimeMS: at.UnixMilli(),
			FreezeDate: d.Format(time.DateOnly), Channels: t.snapshotLocked(now.Sub(at) > freezeLate),
		}
		if len(r.Channels) == 0 {
			return nil
		}
		for _, part := range t.split(r) {
			if _, err := t.appendLocked(part, nil, map[string]string{keyLastFrozen: r.FreezeDate}); err != nil {
				return err
			}
		}
		t.log.Info("daily freeze", "freeze_date", r.FreezeDate, "estimated", r.Channels[0].Estimated)
	}
	return t.store.pruneFrozen(due.AddDate(0, 0, -t.cfg.FrozenDays+1).Format(time.DateOnly))
}

// Frozen returns the kept frozen records of the dates from..to (YYYY-MM-DD, inclusive).
func (t *Terminal) Frozen(from, to string) ([]wire.Record, error) { return t.store.frozen(from, to) }
