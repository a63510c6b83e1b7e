package handheld

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/meterlink/meterlink/wire"
	"github.com/tidwall/buntdb"
)

// outbox holds the records received from terminals until ops acknowledges them end to end.
// A record is written (with fsync) before the terminal gets its PUBACK, and deleted only when
// ops' acknowledgement names it, so a handheld that is offline or restarted loses nothing, and
// the key (terminal, seq) makes a record resent by a terminal a no-op.
type outbox struct {
	db *buntdb.DB
}

const prefixRecord = "rec:"

func openOutbox(path string) (*outbox, error) {
	db, err := buntdb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open handheld outbox %s: %w", path, err)
	}
	if err := db.SetConfig(buntdb.Config{SyncPolicy: buntdb.Always, AutoShrinkPercentage: 100, AutoShrinkMinSize: 1 << 20}); err != nil {
		db.Close()
		return nil, fmt.Errorf("configure handheld outbox %s: %w", path, err)
	}
	return &outbox{db: db}, nil
}

func (o *outbox) close() error { return o.db.Close() }

func recordKey(k wire.RecordKey) string {
	return fmt.Sprintf("%s%s:%020d", prefixRecord, k.Terminal, k.Seq)
}

// put stores a record unless it is already held; it reports whether it was new.
func (o *outbox) put(r wire.Record) (bool, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return false, err
	}
	added := false
	err = o.db.Update(func(tx *buntdb.Tx) error {
		k := recordKey(r.Key())
		if _, err := tx.Get(k); err == nil {
			return nil
		} else if !errors.Is(err, buntdb.ErrNotFound) {
			return err
		}
		added = true
		_, _, err := tx.Set(k, string(b), nil)
		return err
	})
	return added, err
}

// list returns up to n held records, skipping those for which skip returns true.
func (o *outbox) list(n int, skip func(wire.RecordKey) bool) ([]wire.Record, error) {
	var out []wire.Record
	err := o.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendKeys(prefixRecord+"*", func(_, v string) bool {
			var r wire.Record
			if json.Unmarshal([]byte(v), &r) == nil && !skip(r.Key()) {
				out = append(out, r)
			}
			return len(out) < n
		})
	})
	return out, err
}

// count returns the number of held records.
func (o *outbox) count() int {
	n := 0
	_ = o.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendKeys(prefixRecord+"*", func(_, _ string) bool { n++; return true })
	})
	return n
}

// remove deletes acknowledged records in one transaction and returns how many it held.
func (o *outbox) remove(keys []wire.RecordKey) (int, error) {
	n := 0
	err := o.db.Update(func(tx *buntdb.Tx) error {
		for _, k := range keys {
			if _, err := tx.Delete(recordKey(k)); err == nil {
				n++
			} else if !errors.Is(err, buntdb.ErrNotFound) {
				return err
			}
		}
		return nil
	})
	return n, err
}
