package terminal

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/meterlink/meterlink/wire"
	"github.com/tidwall/buntdb"
)

// store keeps a terminal's state in buntdb: channel counters and parameters, the record
// sequence counter and the outbox of records not yet acknowledged by the handheld. Records and
// counters are written in one transaction, with fsync on every commit: the terminal
// acknowledges nothing upstream, but a counted pulse must survive a restart.
type store struct {
	db *buntdb.DB
}

const (
	keySeq        = "seq"
	keyClean      = "meta:clean"       // present while the terminal is stopped cleanly
	keyClock      = "meta:clock"       // clock offset from the system clock, ns
	keyFreezeAt   = "meta:freeze_at"   // daily freeze time, HH:MM
	keyLastFrozen = "meta:last_frozen" // date of the newest daily freeze, YYYY-MM-DD
	keyLastSeen   = "meta:last_seen"   // terminal time of the last collection, Unix ms
	prefixOutbox  = "out:"
	prefixChan    = "ch:"
	prefixFrozen  = "fz:" // fz:YYYY-MM-DD → the frozen record of that day
)

func openStore(path string) (*store, error) {
	db, err := buntdb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open terminal store %s: %w", path, err)
	}
	if err := db.SetConfig(buntdb.Config{SyncPolicy: buntdb.Always, AutoShrinkPercentage: 100, AutoShrinkMinSize: 1 << 20}); err != nil {
		db.Close()
		return nil, fmt.Errorf("configure terminal store %s: %w", path, err)
	}
	return &store{db: db}, nil
}

func (s *store) close() error { return s.db.Close() }

func outboxKey(seq uint64) string { return fmt.Sprintf("%s%020d", prefixOutbox, seq) }

// channelState is what a channel keeps across restarts.
type channelState struct {
	Meter      string `json:"meter"`
	Constant   uint32 `json:"constant"`
	BaseWh     int64  `json:"base_wh"`
	CountBase  uint64 `json:"count_base"` // pulse count at which BaseWh was set
	Count      uint64 `json:"count"`
	Multiplier uint32 `json:"multiplier"`
}

// loadChannels returns the stored channel states by channel number.
func (s *store) loadChannels() (map[uint8]channelState, error) {
	out := map[uint8]channelState{}
	err := s.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendKeys(prefixChan+"*", func(k, v string) bool {
			n, err := strconv.Atoi(k[len(prefixChan):])
			var st channelState
			if err == nil && n >= 1 && n <= 16 && json.Unmarshal([]byte(v), &st) == nil {
				out[uint8(n)] = st
			}
			return true
		})
	})
	return out, err
}

// saveChannels stores channel states (no record).
func (s *store) saveChannels(chs map[uint8]channelState) error {
	return s.db.Update(func(tx *buntdb.Tx) error { return putChannels(tx, chs) })
}

func putChannels(tx *buntdb.Tx, chs map[uint8]channelState) error {
	for n, st := range chs {
		b, _ := json.Marshal(st)
		if _, _, err := tx.Set(fmt.Sprintf("%s%02d", prefixChan, n), string(b), nil); err != nil {
			return err
		}
	}
	return nil
}

// appendRecord assigns the next sequence number to r, stores it in the outbox and stores the
// channel states (if any) and the meta values, all in one transaction. A frozen record is also
// kept under its date. It returns the record as stored.
func (s *store) appendRecord(r wire.Record, chs map[uint8]channelState, meta map[string]string) (wire.Record, error) {
	err := s.db.Update(func(tx *buntdb.Tx) error {
		for k, v := range meta {
			if _, _, err := tx.Set(k, v, nil); err != nil {
				return err
			}
		}
		var seq uint64
		if v, err := tx.Get(keySeq); err == nil {
			seq, _ = strconv.ParseUint(v, 10, 64)
		} else if !errors.Is(err, buntdb.ErrNotFound) {
			return err
		}
		seq++
		r.Seq = seq
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if _, _, err := tx.Set(keySeq, strconv.FormatUint(seq, 10), nil); err != nil {
			return err
		}
		if _, _, err := tx.Set(outboxKey(seq), string(b), nil); err != nil {
			return err
		}
		if r.Kind == wire.KindFrozen {
			if _, _, err := tx.Set(prefixFrozen+r.FreezeDate, string(b), nil); err != nil {
				return err
			}
		}
		return putChannels(tx, chs)
	})
	if err != nil {
		return wire.Record{}, fmt.Errorf("store record: %w", err)
	}
	return r, nil
}

// pending returns up to n records of the outbox, oldest first.
func (s *store) pending(n int) ([]wire.Record, error) {
	var out []wire.Record
	err := s.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendKeys(prefixOutbox+"*", func(_, v string) bool {
			var r wire.Record
			if json.Unmarshal([]byte(v), &r) == nil {
				out = append(out, r)
			}
			return len(out) < n
		})
	})
	return out, err
}

// pendingCount returns the number of records in the outbox.
func (s *store) pendingCount() int {
	n := 0
	_ = s.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendKeys(prefixOutbox+"*", func(_, _ string) bool { n++; return true })
	})
	return n
}

// remove deletes an acknowledged record from the outbox.
func (s *store) remove(seq uint64) error {
	return s.db.Update(func(tx *buntdb.Tx) error {
		_, err := tx.Delete(outboxKey(seq))
		if errors.Is(err, buntdb.ErrNotFound) {
			return nil
		}
		return err
	})
}

// meta returns a meta value, or "" when it is not set.
func (s *store) meta(key string) string {
	var v string
	_ = s.db.View(func(tx *buntdb.Tx) error {
		v, _ = tx.Get(key)
		return nil
	})
	return v
}

// setMeta sets (or, with "", deletes) meta values in one transaction.
func (s *store) setMeta(kv map[string]string) error {
	return s.db.Update(func(tx *buntdb.Tx) error {
		for k, v := range kv {
			var err error
			if v == "" {
				_, err = tx.Delete(k)
				if errors.Is(err, buntdb.ErrNotFound) {
					err = nil
				}
			} else {
				_, _, err = tx.Set(k, v, nil)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// frozen returns the kept frozen records of the dates from..to (inclusive, YYYY-MM-DD).
func (s *store) frozen(from, to string) ([]wire.Record, error) {
	var out []wire.Record
	err := s.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendRange("", prefixFrozen+from, prefixFrozen+to+"~", func(_, v string) bool {
			var r wire.Record
			if json.Unmarshal([]byte(v), &r) == nil {
				out = append(out, r)
			}
			return true
		})
	})
	return out, err
}

// resend puts kept records back in the outbox, under their own sequence numbers, so a
// receiver that has them already recognises them.
func (s *store) resend(rs []wire.Record) error {
	return s.db.Update(func(tx *buntdb.Tx) error {
		for _, r := range rs {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if _, _, err := tx.Set(outboxKey(r.Seq), string(b), nil); err != nil {
				return err
			}
		}
		return nil
	})
}

// pruneFrozen deletes frozen records of dates before the given one.
func (s *store) pruneFrozen(before string) error {
	return s.db.Update(func(tx *buntdb.Tx) error {
		var old []string
		_ = tx.AscendRange("", prefixFrozen, prefixFrozen+before, func(k, _ string) bool {
			old = append(old, k)
			return true
		})
		for _, k := range old {
			if _, err := tx.Delete(k); err != nil && !errors.Is(err, buntdb.ErrNotFound) {
				return err
			}
		}
		return nil
	})
}
