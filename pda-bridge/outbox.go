package pdabridge

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tidwall/buntdb"

	"github.com/meterlink/meterlink/noisehs"
)

// outbox holds batches (of records or of job events) accepted from handhelds until ops
// acknowledges them. A batch is stored
// (with fsync) before the handheld's PUBLISH is acknowledged, keyed by its id, so a handheld
// that sends it again adds nothing. Each batch gets its record msg_id (UUIDv7) when first
// stored and keeps it through every resend, so ops answers a repeat without applying it again
// (security.md §6). The security unit's state lives in the same file (unit.go).
type outbox struct {
	db *buntdb.DB
}

// entry is one held batch: records (a wire.Batch) or job events (a wire.JobEvents). Both
// share one key space by id; handhelds name them apart ("H01-7", "H01-jev-batch-7").
type entry struct {
	ID       string          `json:"id"`
	Handheld string          `json:"handheld"`
	Kind     noisehs.Kind    `json:"kind,omitempty"` // the record kind it is sealed as; 0 (entries stored before kinds) is noisehs.KindBatch
	Body     json.RawMessage `json:"body"`           // the wire.Batch or wire.JobEvents as received
	MsgID    [16]byte        `json:"msg_id"`         // the sealed record's msg_id
}

// kind returns the record kind to seal the entry as.
func (e entry) kind() noisehs.Kind {
	if e.Kind == 0 {
		return noisehs.KindBatch
	}
	return e.Kind
}

const prefixBatch = "batch:"

func openOutbox(path string) (*outbox, error) {
	db, err := buntdb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open pda outbox %s: %w", path, err)
	}
	if err := db.SetConfig(buntdb.Config{SyncPolicy: buntdb.Always, AutoShrinkPercentage: 100, AutoShrinkMinSize: 1 << 20}); err != nil {
		db.Close()
		return nil, fmt.Errorf("configure pda outbox %s: %w", path, err)
	}
	return &outbox{db: db}, nil
}

func (o *outbox) close() error { return o.db.Close() }

// put stores a batch unless it is already held (then the held one, and its msg_id, stay).
func (o *outbox) put(e entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return o.db.Update(func(tx *buntdb.Tx) error {
		if _, err := tx.Get(prefixBatch + e.ID); err == nil {
			return nil
		}
		_, _, err := tx.Set(prefixBatch+e.ID, string(b), nil)
		return err
	})
}

// get returns a held batch.
func (o *outbox) get(id string) (entry, bool) {
	var e entry
	ok := false
	_ = o.db.View(func(tx *buntdb.Tx) error {
		v, err := tx.Get(prefixBatch + id)
		if err == nil && json.Unmarshal([]byte(v), &e) == nil {
			ok = true
		}
		return nil
	})
	return e, ok
}

// list returns up to n held batches for which skip returns false.
func (o *outbox) list(n int, skip func(id string) bool) ([]entry, error) {
	var out []entry
	err := o.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendKeys(prefixBatch+"*", func(_, v string) bool {
			var e entry
			if json.Unmarshal([]byte(v), &e) == nil && !skip(e.ID) {
				out = append(out, e)
			}
			return len(out) < n
		})
	})
	return out, err
}

func (o *outbox) count() int {
	n := 0
	_ = o.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendKeys(prefixBatch+"*", func(_, _ string) bool { n++; return true })
	})
	return n
}

// remove deletes an acknowledged batch.
func (o *outbox) remove(id string) error {
	return o.db.Update(func(tx *buntdb.Tx) error {
		_, err := tx.Delete(prefixBatch + id)
		if errors.Is(err, buntdb.ErrNotFound) {
			return nil
		}
		return err
	})
}
