// Package vee validates what ops receives (VEE: validation, estimation, editing): it finds
// reverse running (倒走, ERC27) with the rollover rule, spikes against the meter's own
// history (突增, ERC28) and running fast (飞走, ERC29), zero consumption for N cycles
// (停走, ERC30), clock drift between a record's time and its arrival (ERC12), missing seq
// ranges per terminal, and terminal events. Each finding becomes a [store.Alert] with a
// severity, stored once (its id is deterministic).
//
// The checks are pure functions over small per-meter and per-terminal states
// ([MeterState], [TerminalState]); [Validator] keeps those states in the store
// (store.StateVEEMeter, store.StateVEETerminal) within the caller's transaction.
package vee

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/meterlink/meterlink/ops/internal/billing"
	"github.com/meterlink/meterlink/ops/internal/store"
)

// Alert codes raised here; wire.Warning uses the same codes on site.
const (
	CodeReverse     = "reverse_running"
	CodeRollover    = "rollover"
	CodeSpike       = "spike"
	CodeZero        = "zero_consumption"
	CodeClockDrift  = "clock_drift"
	CodeSeqGap      = "seq_gap"
	CodeEstimated   = "estimated"
	maxGapsTracked  = 64
	maxDetailLength = 200
)

// Config holds the thresholds, all [K] in domain.md §9 and so configurable. Zero fields take
// their defaults ([DefaultConfig]).
type Config struct {
	Register       billing.Register // rollover rule; default billing.DefaultConfig().Register
	SpikeFactor    float64          // an advance above this × the meter's mean is a spike; default 3
	SpikeWindow    time.Duration    // the mean is taken over at least this long, so that a busy hour is no spike; default 24h
	SpikeMinWh     int64            // advances below this (× multiplier) are never spikes; default 2 kWh
	HistoryMin     time.Duration    // a meter needs this much history before spikes are judged; default 72h
	HistoryTau     time.Duration    // the mean forgets with this time constant; default 30 days
	MaxKW          int64            // a register advancing faster than this is running fast (飞走); default 30 kW (Imax 100 A × 230 V, rounded up); negative disables
	ZeroCycles     int              // cycles without any advance before zero consumption; default 3
	Cycle          time.Duration    // a reading cycle; default 24h
	ClockTolerance time.Duration    // a record stamped further ahead of ops' clock is clock drift; default 5 min
	MaxTransit     time.Duration    // a record stamped longer before it arrived is clock drift (or was held too long); default 72h (the 3-day back-fill)
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Register: billing.DefaultConfig().Register, SpikeFactor: 3, SpikeWindow: 24 * time.Hour,
		SpikeMinWh: 2000, HistoryMin: 72 * time.Hour, HistoryTau: 30 * 24 * time.Hour, MaxKW: 30,
		ZeroCycles: 3, Cycle: 24 * time.Hour, ClockTolerance: 5 * time.Minute, MaxTransit: 72 * time.Hour,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Register == (billing.Register{}) {
		c.Register = d.Register
	}
	if c.SpikeFactor == 0 {
		c.SpikeFactor = d.SpikeFactor
	}
	if c.SpikeWindow == 0 {
		c.SpikeWindow = d.SpikeWindow
	}
	if c.SpikeMinWh == 0 {
		c.SpikeMinWh = d.SpikeMinWh
	}
	if c.HistoryMin == 0 {
		c.HistoryMin = d.HistoryMin
	}
	if c.HistoryTau == 0 {
		c.HistoryTau = d.HistoryTau
	}
	if c.MaxKW == 0 {
		c.MaxKW = d.MaxKW
	}
	if c.ZeroCycles == 0 {
		c.ZeroCycles = d.ZeroCycles
	}
	if c.Cycle == 0 {
		c.Cycle = d.Cycle
	}
	if c.ClockTolerance == 0 {
		c.ClockTolerance = d.ClockTolerance
	}
	if c.MaxTransit == 0 {
		c.MaxTransit = d.MaxTransit
	}
	return c
}

// Validate reports every bad value.
func (c Config) Validate() error {
	var errs []error
	if c.SpikeFactor < 0 || (c.SpikeFactor > 0 && c.SpikeFactor <= 1) {
		errs = append(errs, fmt.Errorf("spike factor %v: want more than 1", c.SpikeFactor))
	}
	if c.ZeroCycles < 0 {
		errs = append(errs, fmt.Errorf("zero cycles %d: must not be negative", c.ZeroCycles))
	}
	for name, d := range map[string]time.Duration{"spike window": c.SpikeWindow, "history": c.HistoryMin,
		"history time constant": c.HistoryTau, "cycle": c.Cycle, "clock tolerance": c.ClockTolerance, "max transit": c.MaxTransit} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s %v: must not be negative", name, d))
		}
	}
	return errors.Join(errs...)
}

// Finding is one problem found by a check.
type Finding struct {
	Code     string
	Severity string
	Detail   string
	ValueWh  int64
}

// Sample is one meter reading as the meter checks see it.
type Sample struct {
	TimeMS     int64
	Wh         int64 // register, Wh
	Multiplier uint32
	Estimated  bool
}

// MeterState is a meter's validation baseline: its last good reading, when it last
// advanced, its mean consumption rate, and which findings are open.
type MeterState struct {
	LastMS        int64   `json:"last_ms"`
	LastWh        int64   `json:"last_wh"`
	LastAdvanceMS int64   `json:"last_advance_ms"`
	HistWh        float64 `json:"hist_wh"`            // decayed consumption (× multiplier) …
	HistMS        float64 `json:"hist_ms"`            // … over decayed time: their ratio is the mean rate
	Reverse       bool    `json:"reverse,omitempty"`  // open: readings are below the baseline
	Zero          bool    `json:"zero,omitempty"`     // open: no advance for ZeroCycles
	SpikeMS       int64   `json:"spike_ms,omitempty"` // time of the last spike
	Estimated     bool    `json:"estimated,omitempty"`
}

func kwh(wh int64) string { return fmt.Sprintf("%.3f kWh", float64(wh)/1000) }

// CheckMeter checks a reading against the meter's state and moves the baseline on. An
// estimated reading is checked but never moves the baseline: the next actual reading is
// measured from the last actual one. A reading older than the baseline (back-filled) is
// not compared.
func (c Config) CheckMeter(st *MeterState, s Sample) []Finding {
	c = c.withDefaults()
	if st.LastMS == 0 {
		if !s.Estimated {
			*st = MeterState{LastMS: s.TimeMS, LastWh: s.Wh, LastAdvanceMS: s.TimeMS}
		}
		return nil
	}
	if s.TimeMS <= st.LastMS {
		return nil
	}
	var out []Finding
	wh, kind := c.Register.Advance(st.LastWh, s.Wh)
	switch kind {
	case billing.Backward:
		if !st.Reverse {
			out = append(out, Finding{Code: CodeReverse, Severity: store.SeverityCritical, ValueWh: s.Wh,
				Detail: fmt.Sprintf("reading %s is below the previous %s (ERC27); not billed", kwh(s.Wh), kwh(st.LastWh))})
		}
		if !s.Estimated {
			st.Reverse = true
		}
		return out
	case billing.Rollover:
		out = append(out, Finding{Code: CodeRollover, Severity: store.SeverityInfo, ValueWh: s.Wh,
			Detail: fmt.Sprintf("register rolled over from %s to %s: %s used", kwh(st.LastWh), kwh(s.Wh), kwh(wh))})
	}
	if s.Estimated {
		st.Estimated = true
		return out
	}
	mult := int64(max(s.Multiplier, 1))
	used := wh * mult
	d := s.TimeMS - st.LastMS
	spike := false
	if used >= c.SpikeMinWh && c.MaxKW > 0 && wh*3_600_000 > c.MaxKW*1000*d {
		spike = true
		out = append(out, Finding{Code: CodeSpike, Severity: store.SeverityCritical, ValueWh: used,
			Detail: fmt.Sprintf("register advanced %s in %v: faster than %d kW (running fast, ERC29)", kwh(wh), time.Duration(d)*time.Millisecond, c.MaxKW)})
	} else if used >= c.SpikeMinWh && st.HistMS >= float64(c.HistoryMin.Milliseconds()) {
		expected := st.HistWh / st.HistMS * float64(max(d, c.SpikeWindow.Milliseconds()))
		if float64(used) > c.SpikeFactor*expected {
			spike = true
			out = append(out, Finding{Code: CodeSpike, Severity: store.SeverityWarning, ValueWh: used,
				Detail: fmt.Sprintf("%s used in %v, %.1f× the meter's usual %s (突增)", kwh(used), time.Duration(d)*time.Millisecond,
					float64(used)/math.Max(expected, 1), kwh(int64(expected)))})
		}
	}
	if spike {
		st.SpikeMS = s.TimeMS
	} else {
		decay := math.Exp(-float64(d) / float64(c.HistoryTau.Milliseconds()))
		st.HistWh = st.HistWh*decay + float64(used)
		st.HistMS = st.HistMS*decay + float64(d)
	}
	if wh > 0 {
		st.LastAdvanceMS, st.Zero = s.TimeMS, false
	} else if c.ZeroCycles > 0 && !st.Zero && s.TimeMS-st.LastAdvanceMS >= int64(c.ZeroCycles)*c.Cycle.Milliseconds() {
		st.Zero = true
		out = append(out, Finding{Code: CodeZero, Severity: store.SeverityWarning, ValueWh: s.Wh,
			Detail: fmt.Sprintf("no consumption since %s (%d cycles of %v, ERC30): check on site", time.UnixMilli(st.LastAdvanceMS).UTC().Format(time.RFC3339), c.ZeroCycles, c.Cycle)})
	}
	st.LastMS, st.LastWh, st.Reverse, st.Estimated = s.TimeMS, s.Wh, false, false
	return out
}

// SeqRange is a range of missing seqs, inclusive.
type SeqRange struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// TerminalState is what validation keeps per terminal: the highest seq seen, the seq
// ranges still missing below it, and whether its clock is off.
type TerminalState struct {
	MaxSeq uint64     `json:"max_seq"`
	Gaps   []SeqRange `json:"gaps,omitempty"`
	Drift  bool       `json:"drift,omitempty"`
}

// CheckRecord checks a record's seq and time (terminal clock) against its arrival time.
// A gap is reported when it opens; a back-filled record closes its part of it.
func (c Config) CheckRecord(st *TerminalState, seq uint64, tsMS, receivedMS int64) []Finding {
	c = c.withDefaults()
	var out []Finding
	ahead := tsMS - receivedMS
	drift := ""
	switch {
	case ahead > c.ClockTolerance.Milliseconds():
		drift = fmt.Sprintf("record %d stamped %v ahead of ops' clock (tolerance %v, ERC12)", seq, time.Duration(ahead)*time.Millisecond, c.ClockTolerance)
	case -ahead > c.MaxTransit.Milliseconds():
		drift = fmt.Sprintf("record %d stamped %v before it arrived: clock behind, or held longer than %v", seq, time.Duration(-ahead)*time.Millisecond, c.MaxTransit)
	}
	if drift != "" && !st.Drift {
		out = append(out, Finding{Code: CodeClockDrift, Severity: store.SeverityWarning, Detail: drift})
	}
	st.Drift = drift != ""

	switch {
	case st.MaxSeq == 0:
		st.MaxSeq = seq
	case seq > st.MaxSeq+1:
		g := SeqRange{From: st.MaxSeq + 1, To: seq - 1}
		out = append(out, Finding{Code: CodeSeqGap, Severity: store.SeverityWarning,
			Detail: fmt.Sprintf("records %d..%d missing (%d): ask the field to back-fill", g.From, g.To, g.To-g.From+1)})
		st.Gaps = append(st.Gaps, g)
		if len(st.Gaps) > maxGapsTracked {
			st.Gaps = st.Gaps[len(st.Gaps)-maxGapsTracked:]
		}
		st.MaxSeq = seq
	case seq == st.MaxSeq+1:
		st.MaxSeq = seq
	default:
		st.Gaps = fill(st.Gaps, seq)
	}
	return out
}

// fill removes seq from the gaps.
func fill(gaps []SeqRange, seq uint64) []SeqRange {
	var out []SeqRange
	for _, g := range gaps {
		switch {
		case seq < g.From || seq > g.To:
			out = append(out, g)
		case g.From == g.To:
		case seq == g.From:
			out = append(out, SeqRange{From: g.From + 1, To: g.To})
		case seq == g.To:
			out = append(out, SeqRange{From: g.From, To: g.To - 1})
		default:
			out = append(out, SeqRange{From: g.From, To: seq - 1}, SeqRange{From: seq + 1, To: g.To})
		}
	}
	return out
}
