package handheld

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/meterlink/meterlink/wire"
	"github.com/tidwall/buntdb"
)

// The on-site warning codes, with the Q/GDW 1376.1 event codes they correspond to (domain.md
// §5.4 and §7).
const (
	WarnReverse    = "reverse_running"  // ERC27: the reading went down
	WarnSpike      = "spike"            // ERC29: consumption far above the recent rate (飞走)
	WarnZero       = "zero_consumption" // ERC30: no advance over several readings (停走)
	WarnClock      = "clock_drift"      // ERC12: the terminal's clock is far off the handheld's
	WarnPowerLoss  = "power_loss"       // ERC14: the terminal lost power
	WarnLowBalance = "low_balance"      // prepaid balance at or below the alarm threshold, or used up
	WarnArrears    = "arrears"          // postpaid account in arrears
)

const (
	prefixMeterState = "mst:"
	prefixWarning    = "warn:"
	maxWarnings      = 2000 // the oldest go first
	rateHistory      = 5    // readings the recent average rate is taken over
)

// meterState is what the checks remember about a meter between readings.
type meterState struct {
	Seq      uint64    `json:"seq"`
	TimeMS   int64     `json:"ts_ms"`
	EnergyWh int64     `json:"energy_wh"`
	Rates    []float64 `json:"rates,omitempty"` // Wh per hour of the last readings
	ZeroRun  int       `json:"zero_run,omitempty"`
}

// warnings checks each reading against the previous reading of the same meter, kept in the
// store, and keeps the warnings it raises.
type warnings struct {
	db  *buntdb.DB
	cfg Config

	mu    sync.Mutex
	seq   uint64
	fresh map[wire.TerminalID]freshRecord // the record a collect just made, per terminal
}

// freshRecord is a record a terminal made on command at a known handheld time, so its time
// shows the terminal's clock error without the delay a record spends in outboxes.
type freshRecord struct {
	seq uint64
	at  time.Time
}

func newWarnings(db *buntdb.DB, cfg Config) *warnings {
	return &warnings{db: db, cfg: cfg, seq: uint64(cfg.Now().UnixNano()), fresh: map[wire.TerminalID]freshRecord{}}
}

// checkRecord runs the on-site checks on a record the handheld has just stored (not on a
// duplicate), and returns the warnings raised.
func (w *warnings) checkRecord(r wire.Record) ([]wire.SiteWarning, error) {
	now := w.cfg.Now()
	var out []wire.SiteWarning
	add := func(sw wire.SiteWarning) {
		sw.Terminal, sw.Seq, sw.RecordMS, sw.TimeMS = r.Terminal, r.Seq, r.TimeMS, now.UnixMilli()
		out = append(out, sw)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	// Clock: a record from the future is wrong whatever its delay; a record made on command
	// (collect) shows the error exactly. Older records may have waited in outboxes.
	ahead := time.Duration(r.TimeMS-now.UnixMilli()) * time.Millisecond
	if f, ok := w.fresh[r.Terminal]; ok && f.seq == r.Seq {
		ahead = time.Duration(r.TimeMS-f.at.UnixMilli()) * time.Millisecond
		delete(w.fresh, r.Terminal)
	} else if ahead < 0 {
		ahead = 0
	}
	if ahead > w.cfg.ClockDrift || ahead < -w.cfg.ClockDrift {
		add(wire.SiteWarning{Code: WarnClock, ERC: 12, Severity: "warning",
			Detail: fmt.Sprintf("terminal clock is %s the handheld's by %s", aheadWord(ahead), absDur(ahead).Round(time.Second))})
	}
	switch r.Kind {
	case wire.KindEvent:
		if r.Event != nil && r.Event.Code == "power_loss" {
			add(wire.SiteWarning{Code: WarnPowerLoss, ERC: 14, Severity: "warning", Detail: "terminal lost power: " + r.Event.Detail})
		}
	case wire.KindReading:
		// One transaction for every channel: one disk flush per record, not one per meter.
		err := w.db.Update(func(tx *buntdb.Tx) error {
			for _, c := range r.Channels {
				sws, err := w.checkChannel(tx, r, c)
				if err != nil {
					return err
				}
				for _, sw := range sws {
					sw.Channel, sw.Meter = c.Channel, c.Meter
					add(sw)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, w.keepLocked(out)
}

func aheadWord(d time.Duration) string {
	if d > 0 {
		return "ahead of"
	}
	return "behind"
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// checkChannel compares one channel's reading with the meter's previous one and remembers it.
func (w *warnings) checkChannel(tx *buntdb.Tx, r wire.Record, c wire.ChannelReading) ([]wire.SiteWarning, error) {
	key := prefixMeterState + string(c.Meter)
	var st meterState
	found := false
	if v, err := tx.Get(key); err == nil {
		found = json.Unmarshal([]byte(v), &st) == nil
	} else if !errors.Is(err, buntdb.ErrNotFound) {
		return nil, err
	}
	var out []wire.SiteWarning
	next := meterState{Seq: r.Seq, TimeMS: r.TimeMS, EnergyWh: c.EnergyWh, Rates: st.Rates}
	if found && r.Seq <= st.Seq {
		return nil, nil // an older record, resent: the newer one was judged already
	}
	if found {
		d := c.EnergyWh - st.EnergyWh
		hours := float64(r.TimeMS-st.TimeMS) / float64(time.Hour/time.Millisecond)
		switch {
		case d < 0:
			out = append(out, wire.SiteWarning{Code: WarnReverse, ERC: 27, Severity: "critical", PrevWh: st.EnergyWh, CurrWh: c.EnergyWh,
				Detail: fmt.Sprintf("reading went down from %s to %s kWh", kwh(st.EnergyWh), kwh(c.EnergyWh))})
			next.Rates = nil
		case d == 0:
			next.ZeroRun = st.ZeroRun + 1
			if next.ZeroRun == w.cfg.ZeroReadings {
				out = append(out, wire.SiteWarning{Code: WarnZero, ERC: 30, Severity: "warning", PrevWh: st.EnergyWh, CurrWh: c.EnergyWh,
					Detail: fmt.Sprintf("no consumption over %d readings, standing at %s kWh", next.ZeroRun, kwh(c.EnergyWh))})
			}
			if hours > 0 {
				next.Rates = pushRate(st.Rates, 0)
			}
		case hours > 0:
			rate := float64(d) / hours
			if avg, n := mean(st.Rates); n >= 2 && avg > 0 && rate > w.cfg.SpikeFactor*avg {
				out = append(out, wire.SiteWarning{Code: WarnSpike, ERC: 29, Severity: "warning", PrevWh: st.EnergyWh, CurrWh: c.EnergyWh,
					Detail: fmt.Sprintf("%s kWh in %s: %.1f× the recent average rate", kwh(d), time.Duration(hours*float64(time.Hour)).Round(time.Second), rate/avg)})
			}
			next.Rates = pushRate(st.Rates, rate)
		}
	}
	b, _ := json.Marshal(next)
	_, _, err := tx.Set(key, string(b), nil)
	return out, err
}

func pushRate(rs []float64, r float64) []float64 {
	rs = append(append([]float64(nil), rs...), r)
	if len(rs) > rateHistory {
		rs = rs[len(rs)-rateHistory:]
	}
	return rs
}

func mean(rs []float64) (float64, int) {
	if len(rs) == 0 {
		return 0, 0
	}
	s := 0.0
	for _, r := range rs {
		s += r
	}
	return s / float64(len(rs)), len(rs)
}

func kwh(wh int64) string { return fmt.Sprintf("%.3f", float64(wh)/1000) }

// noteCollect remembers that a terminal made record seq on command at time at, so the record's
// time can be checked against the handheld's clock when it arrives.
func (w *warnings) noteCollect(t wire.TerminalID, seq uint64, at time.Time) {
	w.mu.Lock()
	w.fresh[t] = freshRecord{seq: seq, at: at}
	w.mu.Unlock()
}

// checkClock flags a terminal clock read now (read_clock) that is far off.
func (w *warnings) checkClock(t wire.TerminalID, tsMS int64) error {
	now := w.cfg.Now()
	off := time.Duration(tsMS-now.UnixMilli()) * time.Millisecond
	if off <= w.cfg.ClockDrift && off >= -w.cfg.ClockDrift {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.keepLocked([]wire.SiteWarning{{Code: WarnClock, ERC: 12, Severity: "warning", Terminal: t, RecordMS: tsMS, TimeMS: now.UnixMilli(),
		Detail: fmt.Sprintf("terminal clock is %s the handheld's by %s", aheadWord(off), absDur(off).Round(time.Second))}})
}

// checkAnswer flags prepaid balances at or below the alarm threshold, and arrears, in an answer
// from ops; it adds them to the customers' warnings unless ops named them already.
func (w *warnings) checkAnswer(a *wire.Answer) error {
	now := w.cfg.Now().UnixMilli()
	var out []wire.SiteWarning
	for i := range a.Customers {
		c := &a.Customers[i]
		var ww wire.Warning
		switch {
		case c.Payment == "prepaid" && c.BalanceFen <= 0:
			ww = wire.Warning{Code: WarnLowBalance, Severity: "critical", Detail: "prepaid balance used up: " + yuan(c.BalanceFen)}
		case c.Payment == "prepaid" && c.BalanceFen <= w.cfg.LowBalanceFen:
			ww = wire.Warning{Code: WarnLowBalance, Severity: "warning", Detail: "prepaid balance low: " + yuan(c.BalanceFen)}
		case c.Payment == "postpaid" && c.BalanceFen < 0:
			ww = wire.Warning{Code: WarnArrears, Severity: "warning", Detail: "in arrears: " + yuan(-c.BalanceFen)}
		default:
			continue
		}
		has := false
		for _, x := range c.Warnings {
			has = has || x.Code == ww.Code
		}
		if !has {
			c.Warnings = append(c.Warnings, ww)
		}
		sw := wire.SiteWarning{ID: "acct-" + ww.Code + "-" + c.Account, Code: ww.Code, Severity: ww.Severity, Account: c.Account, Detail: ww.Detail, TimeMS: now}
		if len(c.Meters) > 0 {
			sw.Meter = c.Meters[0]
		}
		out = append(out, sw)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.keepLocked(out)
}

func yuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d 元", sign, fen/100, fen%100)
}

// keepLocked stores warnings (an account warning replaces the previous one of the same id) and
// drops the oldest beyond maxWarnings.
func (w *warnings) keepLocked(ws []wire.SiteWarning) error {
	if len(ws) == 0 {
		return nil
	}
	return w.db.Update(func(tx *buntdb.Tx) error {
		for i := range ws {
			if ws[i].ID == "" {
				w.seq++
				ws[i].ID = fmt.Sprintf("W%x", w.seq)
			}
			// Keys sort by time; an account warning's fixed id keeps one entry per account.
			if strings.HasPrefix(ws[i].ID, "acct-") {
				var old []string
				tx.AscendKeys(prefixWarning+"*", func(k, _ string) bool {
					if strings.HasSuffix(k, "/"+ws[i].ID) {
						old = append(old, k)
					}
					return true
				})
				for _, k := range old {
					tx.Delete(k)
				}
			}
			b, _ := json.Marshal(ws[i])
			if _, _, err := tx.Set(fmt.Sprintf("%s%020d/%s", prefixWarning, ws[i].TimeMS, ws[i].ID), string(b), nil); err != nil {
				return err
			}
		}
		var drop []string
		count := 0
		tx.AscendKeys(prefixWarning+"*", func(k, _ string) bool { count++; return true })
		if count <= maxWarnings {
			return nil
		}
		tx.AscendKeys(prefixWarning+"*", func(k, _ string) bool {
			if count-len(drop) <= maxWarnings {
				return false
			}
			drop = append(drop, k)
			return true
		})
		for _, k := range drop {
			if _, err := tx.Delete(k); err != nil && !errors.Is(err, buntdb.ErrNotFound) {
				return err
			}
		}
		return nil
	})
}

// Warnings returns the on-site warnings held, newest first, of one terminal if it is not
// empty, at most limit (0: all).
func (h *Handheld) Warnings(terminal string, limit int) ([]wire.SiteWarning, error) {
	var out []wire.SiteWarning
	err := h.warn.db.View(func(tx *buntdb.Tx) error {
		return tx.DescendKeys(prefixWarning+"*", func(_, v string) bool {
			var sw wire.SiteWarning
			if json.Unmarshal([]byte(v), &sw) == nil && (terminal == "" || string(sw.Terminal) == terminal) {
				out = append(out, sw)
			}
			return limit <= 0 || len(out) < limit
		})
	})
	return out, err
}

func (w *warnings) count() int {
	n := 0
	_ = w.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendKeys(prefixWarning+"*", func(_, _ string) bool { n++; return true })
	})
	return n
}
