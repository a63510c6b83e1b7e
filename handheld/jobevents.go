package handheld

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/meterlink/meterlink/topic"
	"github.com/meterlink/meterlink/wire"
	"github.com/tidwall/buntdb"
)

const (
	prefixJobEvent = "jev:"
	// maxJobEvents bounds the job events waiting for ops; the oldest go first, with a log line.
	maxJobEvents = 10000
)

// jobEvents is the outbox of job results for ops: each event stays in the store until ops
// acknowledges the batch that carried it (an Ack with the batch id on hh-ack), and is sent
// again after ResendAfter until then.
type jobEvents struct {
	h  *Handheld
	db *buntdb.DB

	mu       sync.Mutex
	seq      uint64
	sent     map[string]time.Time // event key → when last sent
	batches  map[string][]string  // batch id → event keys
	batchSeq uint64
}

func newJobEvents(h *Handheld, db *buntdb.DB) *jobEvents {
	n := uint64(h.now().UnixNano())
	return &jobEvents{h: h, db: db, seq: n, batchSeq: n, sent: map[string]time.Time{}, batches: map[string][]string{}}
}

// queue stores an event for ops.
func (e *jobEvents) queue(ev wire.JobEvent) {
	e.mu.Lock()
	e.seq++
	key := fmt.Sprintf("%s%020d", prefixJobEvent, e.seq)
	ev.ID = fmt.Sprintf("%s-jev-%d", e.h.cfg.ID, e.seq)
	e.mu.Unlock()
	b, _ := json.Marshal(ev)
	var dropped []string
	err := e.db.Update(func(tx *buntdb.Tx) error {
		if _, _, err := tx.Set(key, string(b), nil); err != nil {
			return err
		}
		n := 0
		tx.AscendKeys(prefixJobEvent+"*", func(_, _ string) bool { n++; return true })
		tx.AscendKeys(prefixJobEvent+"*", func(k, _ string) bool {
			if n-len(dropped) <= maxJobEvents {
				return false
			}
			dropped = append(dropped, k)
			return true
		})
		for _, k := range dropped {
			tx.Delete(k)
		}
		return nil
	})
	if err != nil {
		e.h.log.Error("job event not stored", "job_id", ev.Job, "err", err)
		return
	}
	if len(dropped) > 0 {
		e.h.log.Warn("oldest job events dropped: ops has not acknowledged them", "dropped", len(dropped))
	}
	e.h.wake()
}

func (e *jobEvents) count() int {
	n := 0
	_ = e.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendKeys(prefixJobEvent+"*", func(_, _ string) bool { n++; return true })
	})
	return n
}

// send publishes one batch of events not sent within ResendAfter; it reports whether it sent a
// full batch.
func (e *jobEvents) send(ctx context.Context) bool {
	if !e.h.pda.IsConnected() {
		return false
	}
	now := e.h.now()
	var keys []string
	var evs []wire.JobEvent
	e.mu.Lock()
	err := e.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendKeys(prefixJobEvent+"*", func(k, v string) bool {
			if at, ok := e.sent[k]; ok && now.Sub(at) < e.h.cfg.ResendAfter {
				return true
			}
			var ev wire.JobEvent
			if json.Unmarshal([]byte(v), &ev) == nil {
				keys, evs = append(keys, k), append(evs, ev)
			}
			return len(evs) < e.h.cfg.BatchMax
		})
	})
	e.batchSeq++
	id := fmt.Sprintf("%s-jev-batch-%d", e.h.cfg.ID, e.batchSeq)
	e.mu.Unlock()
	if err != nil || len(evs) == 0 {
		return false
	}
	b, _ := json.Marshal(wire.JobEvents{V: wire.Version, ID: id, Handheld: wire.HandheldID(e.h.cfg.ID), Events: evs})
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := e.h.pda.Publish(pctx, topic.HHJobs(e.h.cfg.ID), 1, false, b); err != nil {
		e.h.log.Warn("job events not sent", "batch_id", id, "err", err)
		return false
	}
	e.mu.Lock()
	for _, k := range keys {
		e.sent[k] = now
	}
	e.batches[id] = keys
	for bid := range e.batches {
		// Batches whose events were all sent again since are of no more use.
		if len(e.batches) > 1000 && bid != id {
			delete(e.batches, bid)
		}
	}
	e.mu.Unlock()
	return len(evs) == e.h.cfg.BatchMax
}

// onAck deletes the events of an acknowledged batch; it reports whether the id was one of
// its batches.
func (e *jobEvents) onAck(id string) (bool, error) {
	e.mu.Lock()
	keys, ok := e.batches[id]
	delete(e.batches, id)
	for _, k := range keys {
		delete(e.sent, k)
	}
	e.mu.Unlock()
	if !ok {
		return false, nil
	}
	return true, e.db.Update(func(tx *buntdb.Tx) error {
		for _, k := range keys {
			if _, err := tx.Delete(k); err != nil && !errors.Is(err, buntdb.ErrNotFound) {
				return err
			}
		}
		return nil
	})
}
