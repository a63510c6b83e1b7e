package handheld

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/meterlink/meterlink/wire"
	"github.com/tidwall/buntdb"
)

// outbox holds the records received from terminals until ops acknowledges them end to end.
// A record is written (with fsync) before the terminal gets its PUBACK, and deleted only when
// ops' acknowledgement names it, so a handheld that is offline or restarted loses nothing, and
// the key (terminal, seq) makes a record resent by a terminal a no-op.
//
// Puts from many terminals share one transaction and so one fsync (group commit): a record
// still waits for its own commit before the terminal gets its PUBACK, but fifty terminals
// sending at once cost one disk flush, not fifty.
type outbox struct {
	db   *buntdb.DB
	puts chan putReq
	quit chan struct{}
	done chan struct{}
	once sync.Once
}

type putReq struct {
	r     wire.Record
	b     []byte
	reply chan putResult
}

type putResult struct {
	added bool
	err   error
}

// maxGroup bounds the records one commit takes.
const maxGroup = 256

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
	o := &outbox{db: db, puts: make(chan putReq), quit: make(chan struct{}), done: make(chan struct{})}
	go o.committer()
	return o, nil
}

// errOutboxClosed is returned by a put after close.
var errOutboxClosed = errors.New("handheld outbox closed")

func (o *outbox) close() error {
	o.once.Do(func() {
		close(o.quit)
		<-o.done
	})
	return o.db.Close()
}

// committer writes waiting puts in groups, one transaction each, until close.
func (o *outbox) committer() {
	defer close(o.done)
	for {
		var group []putReq
		select {
		case <-o.quit:
			return
		case req := <-o.puts:
			group = append(group, req)
		}
	more:
		for len(group) < maxGroup {
			select {
			case req := <-o.puts:
				group = append(group, req)
			default:
				break more
			}
		}
		added := make([]bool, len(group))
		err := o.db.Update(func(tx *buntdb.Tx) error {
			for i, req := range group {
				k := recordKey(req.r.Key())
				if _, err := tx.Get(k); err == nil {
					continue
				} else if !errors.Is(err, buntdb.ErrNotFound) {
					return err
				}
				if _, _, err := tx.Set(k, string(req.b), nil); err != nil {
					return err
				}
				added[i] = true
			}
			return nil
		})
		for i, req := range group {
			req.reply <- putResult{added: added[i] && err == nil, err: err}
		}
	}
}

func recordKey(k wire.RecordKey) string {
	return fmt.Sprintf("%s%s:%020d", prefixRecord, k.Terminal, k.Seq)
}

// put stores a record unless it is already held, and reports whether it was new. It returns
// once the record is on disk.
func (o *outbox) put(r wire.Record) (bool, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return false, err
	}
	req := putReq{r: r, b: b, reply: make(chan putResult, 1)}
	select {
	case o.puts <- req:
	case <-o.quit:
		return false, errOutboxClosed
	}
	res := <-req.reply
	return res.added, res.err
}

// list returns up to n held records, skipping those for which skip returns true. The skip
// test reads the key only, so records in flight cost no decoding however many there are.
func (o *outbox) list(n int, skip func(wire.RecordKey) bool) ([]wire.Record, error) {
	var out []wire.Record
	err := o.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendKeys(prefixRecord+"*", func(k, v string) bool {
			if key, ok := parseRecordKey(k); ok && skip(key) {
				return true
			}
			var r wire.Record
			if json.Unmarshal([]byte(v), &r) == nil && !skip(r.Key()) {
				out = append(out, r)
			}
			return len(out) < n
		})
	})
	return out, err
}

// parseRecordKey reads the record key back from a store key made by recordKey.
func parseRecordKey(k string) (wire.RecordKey, bool) {
	rest := strings.TrimPrefix(k, prefixRecord)
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return wire.RecordKey{}, false
	}
	seq, err := strconv.ParseUint(rest[i+1:], 10, 64)
	if err != nil {
		return wire.RecordKey{}, false
	}
	return wire.RecordKey{Terminal: wire.TerminalID(rest[:i]), Seq: seq}, true
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
