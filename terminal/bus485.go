package terminal

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/meterlink/meterlink/terminal/rs485"
	"github.com/meterlink/meterlink/wire"
)

// busMeter is the latest state of one meter on the RS485 bus of channel 16.
type busMeter struct {
	energyWh int64
	at       time.Time
	ok       bool // at least one good reading
	silent   bool // the last poll got no answer
}

// pollBus reads every meter on the RS485 bus once, outside the terminal's lock (a poll of
// silent meters takes meters × attempts × timeout), and records readings and events.
func (t *Terminal) pollBus(ctx context.Context) {
	results := t.bus.Poll(ctx)
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range results {
		m := t.busMeters[r.Meter]
		switch {
		case errors.Is(r.Err, rs485.ErrMeterSilent):
			if !m.silent {
				m.silent = true
				if err := t.eventLocked(EventMeterSilent, 16, "meter "+r.Meter+" does not answer"); err != nil {
					t.log.Error("event not recorded", "err", err)
				}
			}
		case r.Err != nil:
			t.log.Warn("rs485 meter read failed", "meter", r.Meter, "err", r.Err)
		default:
			if m.ok && r.EnergyWh < m.energyWh {
				detail := fmt.Sprintf("meter %s went from %d Wh to %d Wh", r.Meter, m.energyWh, r.EnergyWh)
				if err := t.eventLocked(EventReadingBackwards, 16, detail); err != nil {
					t.log.Error("event not recorded", "err", err)
				}
			}
			m = busMeter{energyWh: r.EnergyWh, at: r.Time, ok: true}
		}
		t.busMeters[r.Meter] = m
	}
}

// busReadingsLocked returns the latest good reading of every bus meter, as channel 16.
func (t *Terminal) busReadingsLocked() []wire.ChannelReading {
	var out []wire.ChannelReading
	for _, mc := range t.cfg.RS485.Meters {
		m, ok := t.busMeters[mc.ID]
		if !ok || !m.ok {
			continue // never read: nothing to report
		}
		out = append(out, wire.ChannelReading{Channel: 16, Meter: wire.MeterID(mc.ID), EnergyWh: m.energyWh, Multiplier: 1})
	}
	return out
}

// busLoop polls the RS485 bus at the collection interval, first at once.
func (t *Terminal) busLoop(ctx context.Context) {
	tick := time.NewTicker(t.cfg.Interval)
	defer tick.Stop()
	for {
		t.pollBus(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// PollBus reads the RS485 meters now (tests and the collect command use the latest poll).
func (t *Terminal) PollBus(ctx context.Context) {
	if t.bus != nil {
		t.pollBus(ctx)
	}
}
