package vee

import (
	"fmt"

	"github.com/meterlink/meterlink/ops/internal/store"
	"github.com/meterlink/meterlink/wire"
)

// Validator runs the checks on what ingest stored, keeping the states in the store.
type Validator struct {
	cfg Config
}

// New returns a validator; zero config fields take their defaults.
func New(cfg Config) (*Validator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Validator{cfg: cfg.withDefaults()}, nil
}

// Config returns the configuration in effect, defaults filled.
func (v *Validator) Config() Config { return v.cfg }

// eventSeverity grades the terminal events (wire.Event codes).
var eventSeverity = map[string]string{
	"reading_backwards": store.SeverityCritical,
	"power_loss":        store.SeverityWarning,
	"meter_silent":      store.SeverityWarning,
	"counter_wrap":      store.SeverityInfo,
	"power_restore":     store.SeverityInfo,
	"clock_set":         store.SeverityInfo,
}

// Records validates newly stored records inside tx: each record's seq and clock against its
// terminal's state, each terminal event, and each channel reading against its meter's
// baseline. It stores the alerts (once each) and returns those that are new.
func (v *Validator) Records(tx *store.Tx, held []store.Held, nowMS int64) ([]store.Alert, error) {
	terms := map[wire.TerminalID]*TerminalState{}
	var order []wire.TerminalID
	var out []store.Alert
	for _, h := range held {
		r := h.Record
		ts, ok := terms[r.Terminal]
		if !ok {
			ts = &TerminalState{}
			if _, err := tx.State(store.StateVEETerminal, string(r.Terminal), ts); err != nil {
				return nil, err
			}
			terms[r.Terminal] = ts
			order = append(order, r.Terminal)
		}
		base := store.Alert{District: h.District, Terminal: r.Terminal, Seq: r.Seq, TimeMS: r.TimeMS, RaisedMS: nowMS}
		for _, f := range v.cfg.CheckRecord(ts, r.Seq, r.TimeMS, h.ReceivedMS) {
			a := base
			a.ID = store.AlertID(f.Code, string(r.Terminal), fmt.Sprint(r.Seq))
			a.Code, a.Severity, a.Detail = f.Code, f.Severity, f.Detail
			if f.Code == CodeSeqGap && len(ts.Gaps) > 0 {
				g := ts.Gaps[len(ts.Gaps)-1]
				a.FromSeq, a.ToSeq = g.From, g.To
			}
			out = append(out, a)
		}
		if r.Kind == wire.KindEvent && r.Event != nil {
			sev, ok := eventSeverity[r.Event.Code]
			if !ok {
				sev = store.SeverityInfo
			}
			a := base
			a.ID = store.AlertID("event", string(r.Terminal), fmt.Sprint(r.Seq))
			a.Code, a.Severity = r.Event.Code, sev
			a.Detail = fmt.Sprintf("terminal event %s on channel %d: %s", r.Event.Code, r.Event.Channel, r.Event.Detail)
			out = append(out, a)
		}
	}
	var rs []store.Reading
	for _, h := range held {
		rs = append(rs, h.Readings()...)
	}
	ms, err := v.Readings(tx, rs, nowMS)
	if err != nil {
		return nil, err
	}
	for _, id := range order {
		if err := tx.SetState(store.StateVEETerminal, string(id), terms[id]); err != nil {
			return nil, err
		}
	}
	return add(tx, append(out, ms...))
}

// add stores the alerts and returns those not stored before.
func add(tx *store.Tx, as []store.Alert) ([]store.Alert, error) {
	var out []store.Alert
	for _, a := range as {
		ok, err := tx.AddAlert(a)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, a)
		}
	}
	return out, nil
}

// Readings validates meter readings against their meters' baselines inside tx and
// returns the alerts, not yet stored (Records and manual readings store them).
func (v *Validator) Readings(tx *store.Tx, rs []store.Reading, nowMS int64) ([]store.Alert, error) {
	meters := map[wire.MeterID]*MeterState{}
	var order []wire.MeterID
	var out []store.Alert
	for _, r := range rs {
		st, ok := meters[r.Meter]
		if !ok {
			st = &MeterState{}
			if _, err := tx.State(store.StateVEEMeter, string(r.Meter), st); err != nil {
				return nil, err
			}
			meters[r.Meter] = st
			order = append(order, r.Meter)
		}
		for _, f := range v.cfg.CheckMeter(st, Sample{TimeMS: r.TimeMS, Wh: r.EnergyWh, Multiplier: r.Multiplier, Estimated: r.Estimated}) {
			out = append(out, store.Alert{
				ID:   store.AlertID(f.Code, string(r.Meter), fmt.Sprint(r.TimeMS), string(r.Terminal), fmt.Sprint(r.Seq)),
				Code: f.Code, Severity: f.Severity, Detail: f.Detail, ValueWh: f.ValueWh,
				District: r.District, Terminal: r.Terminal, Meter: r.Meter, Seq: r.Seq, TimeMS: r.TimeMS, RaisedMS: nowMS,
			})
		}
	}
	for _, id := range order {
		if err := tx.SetState(store.StateVEEMeter, string(id), meters[id]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Manual validates manual readings and stores their alerts; see Records.
func (v *Validator) Manual(tx *store.Tx, rs []store.Reading, nowMS int64) ([]store.Alert, error) {
	as, err := v.Readings(tx, rs, nowMS)
	if err != nil {
		return nil, err
	}
	return add(tx, as)
}

// Warnings returns a meter's open findings for the reader on site: reverse running, zero
// consumption, a spike within the last cycle, an estimate awaiting an actual reading, and
// its terminal's clock drift.
func (v *Validator) Warnings(tx *store.Tx, m store.Meter, nowMS int64) ([]wire.Warning, error) {
	var st MeterState
	if _, err := tx.State(store.StateVEEMeter, string(m.ID), &st); err != nil {
		return nil, err
	}
	var out []wire.Warning
	if st.Reverse {
		out = append(out, wire.Warning{Code: CodeReverse, Severity: store.SeverityCritical, Detail: "reading below " + kwh(st.LastWh)})
	}
	if st.Zero {
		out = append(out, wire.Warning{Code: CodeZero, Severity: store.SeverityWarning, Detail: fmt.Sprintf("no consumption for %d cycles", v.cfg.ZeroCycles)})
	}
	if st.SpikeMS > 0 && nowMS-st.SpikeMS < v.cfg.Cycle.Milliseconds() {
		out = append(out, wire.Warning{Code: CodeSpike, Severity: store.SeverityWarning, Detail: "sudden rise in consumption"})
	}
	if st.Estimated {
		out = append(out, wire.Warning{Code: CodeEstimated, Severity: store.SeverityInfo, Detail: "last reading estimated: read the meter"})
	}
	var ts TerminalState
	if _, err := tx.State(store.StateVEETerminal, string(m.Terminal), &ts); err != nil {
		return nil, err
	}
	if ts.Drift {
		out = append(out, wire.Warning{Code: CodeClockDrift, Severity: store.SeverityWarning, Detail: "terminal " + string(m.Terminal) + " clock off"})
	}
	return out, nil
}

// Gaps returns a terminal's missing seq ranges (at most the last 64 opened).
func (v *Validator) Gaps(tx *store.Tx, terminal wire.TerminalID) ([]SeqRange, error) {
	var ts TerminalState
	if _, err := tx.State(store.StateVEETerminal, string(terminal), &ts); err != nil {
		return nil, err
	}
	if ts.Gaps == nil {
		return []SeqRange{}, nil
	}
	return ts.Gaps, nil
}
