package store

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/tidwall/buntdb"

	"github.com/meterlink/meterlink/wire"
)

// RejectUnknownTerminal is the rejection reason for a record from a terminal that has not
// been provisioned.
const RejectUnknownTerminal = "unknown terminal"

// Held is a record as the store keeps it.
type Held struct {
	Record     wire.Record     `json:"record"`
	District   wire.DistrictID `json:"district"`    // the terminal's district when it was stored
	ReceivedMS int64           `json:"received_ms"` // when ops stored it, Unix ms
}

// Applied is the outcome of [DB.Apply].
type Applied struct {
	Held       []wire.RecordKey // every record ops holds now (new, duplicate or expired), once each, in batch order
	Stored     []Held           // the records stored by this call
	Duplicates int              // records already held (or repeated in the batch)
	Expired    int              // records older than the retention: acknowledged, not stored
	Rejected   []wire.Rejection // records ops will never accept
}

// Reading is one channel of a stored reading or frozen record: one meter's reading.
type Reading struct {
	TimeMS     int64           `json:"ts_ms"`
	District   wire.DistrictID `json:"district"`
	Terminal   wire.TerminalID `json:"terminal"`
	Seq        uint64          `json:"seq"`
	Kind       wire.Kind       `json:"kind"`
	FreezeDate string          `json:"freeze_date,omitempty"`
	Channel    uint8           `json:"ch"`
	Meter      wire.MeterID    `json:"meter"`
	Pulses     uint64          `json:"pulses"`
	EnergyWh   int64           `json:"energy_wh"`
	Constant   uint32          `json:"constant"`
	Multiplier uint32          `json:"multiplier"`
	Estimated  bool            `json:"estimated,omitempty"`
	Reader     string          `json:"reader,omitempty"` // who entered a manual reading (KindManual)
}

func (h Held) readings() []Reading {
	r := h.Record
	if r.Kind != wire.KindReading && r.Kind != wire.KindFrozen {
		return nil
	}
	out := make([]Reading, len(r.Channels))
	for i, c := range r.Channels {
		out[i] = Reading{
			TimeMS: r.TimeMS, District: h.District, Terminal: r.Terminal, Seq: r.Seq, Kind: r.Kind,
			FreezeDate: r.FreezeDate, Channel: c.Channel, Meter: c.Meter, Pulses: c.Pulses,
			EnergyWh: c.EnergyWh, Constant: c.Constant, Multiplier: c.Multiplier, Estimated: c.Estimated,
		}
	}
	return out
}

// newer reports whether a is a later reading than b.
func (a Reading) newer(b Reading) bool {
	if a.TimeMS != b.TimeMS {
		return a.TimeMS > b.TimeMS
	}
	if a.Terminal != b.Terminal {
		return a.Terminal > b.Terminal
	}
	return a.Seq > b.Seq
}

func recordKey(t wire.TerminalID, seq uint64) string {
	return pfxRecord + string(t) + ":" + num(seq)
}

func meterKey(r Reading) string { return string(appendMeterKey(nil, &r)) }

// appendMeterKey appends rm:{meter}:{ts}:{terminal}:{seq}:{ch}.
func appendMeterKey(b []byte, r *Reading) []byte {
	b = append(append(append(b, pfxMeterRd...), r.Meter...), ':')
	b = append(appendNum(b, uint64(r.TimeMS)), ':')
	b = append(append(b, r.Terminal...), ':')
	b = append(appendNum(b, r.Seq), ':')
	return appendChannel(b, r.Channel)
}

// indexKind names the three time indexes of a record.
type indexKind int

const (
	indexTerminal indexKind = iota // rt:
	indexDistrict                  // rd:
	indexTime                      // rg:
	indexKinds
)

// appendIndexKey appends the key of one of a record's time indexes.
func appendIndexKey(b []byte, h *Held, k indexKind) []byte {
	r := &h.Record
	switch k {
	case indexTerminal:
		b = append(append(append(b, pfxTermTime...), r.Terminal...), ':')
		b = append(appendNum(b, uint64(r.TimeMS)), ':')
	case indexDistrict:
		b = append(append(append(b, pfxDistTime...), h.District...), ':')
		b = append(appendNum(b, uint64(r.TimeMS)), ':')
		b = append(append(b, r.Terminal...), ':')
	default:
		b = append(appendNum(append(b, pfxTime...), uint64(r.TimeMS)), ':')
		b = append(append(b, r.Terminal...), ':')
	}
	return appendNum(b, r.Seq)
}

func indexKeys(h Held) []string {
	keys := make([]string, indexKinds)
	var b []byte
	for k := range indexKinds {
		b = appendIndexKey(b[:0], &h, k)
		keys[k] = string(b)
	}
	return keys
}

// Apply stores the records of one batch in one transaction, each (terminal, seq) once: a
// record already held (or repeated in the batch) is counted and ignored, a record from an
// unprovisioned terminal is rejected, and a record stamped before notBeforeMS (outside the
// retention) is acknowledged without being stored. The records must be valid
// ([wire.Record.Validate]); an invalid one fails the batch and nothing changes. An error
// means nothing was stored.
func (s *DB) Apply(recs []wire.Record, notBeforeMS, nowMS int64) (Applied, error) {
	for i, r := range recs {
		if err := r.Validate(); err != nil {
			return Applied{}, fmt.Errorf("record %d: %w", i, err)
		}
	}
	var a Applied
	err := s.db.Update(func(tx *buntdb.Tx) error {
		a = Applied{}
		w := applier{tx: tx, latest: map[wire.MeterID]*latest{}}
		seen := map[wire.RecordKey]bool{} // held by this batch
		terminals := map[wire.TerminalID]*Terminal{}
		for _, r := range recs {
			k := r.Key()
			if seen[k] {
				a.Duplicates++
				continue
			}
			rk := recordKey(r.Terminal, r.Seq)
			held, err := exists(tx, rk)
			if err != nil {
				return err
			}
			if held {
				seen[k] = true
				a.Held = append(a.Held, k)
				a.Duplicates++
				continue
			}
			t, ok := terminals[r.Terminal]
			if !ok {
				var tt Terminal
				found, err := get(tx, pfxTerminal+string(r.Terminal), &tt)
				if err != nil {
					return err
				}
				if found {
					t = &tt
				}
				terminals[r.Terminal] = t
			}
			if t == nil {
				a.Rejected = append(a.Rejected, wire.Rejection{Key: k, Reason: RejectUnknownTerminal})
				seen[k] = true // reject a repeat once, not twice
				continue
			}
			seen[k] = true
			a.Held = append(a.Held, k)
			if r.TimeMS < notBeforeMS {
				a.Expired++
				continue
			}
			h := Held{Record: r, District: t.District, ReceivedMS: nowMS}
			if err := w.store(rk, &h); err != nil {
				return err
			}
			a.Stored = append(a.Stored, h)
		}
		return w.flushLatest()
	})
	if err != nil {
		return Applied{}, fmt.Errorf("apply %d records: %w", len(recs), err)
	}
	return a, nil
}

// applier writes the records of one Apply transaction. It keeps each meter's latest reading
// in memory while the batch is stored and writes each l:{meter} once at the end, so a meter
// read several times in a batch costs one read and one write of its latest row.
type applier struct {
	tx     *buntdb.Tx
	buf    []byte
	latest map[wire.MeterID]*latest
	order  []wire.MeterID // of latest, for a deterministic write order
}

type latest struct {
	rd    Reading
	dirty bool // rd is newer than the stored row
}

func (w *applier) set(key string, val []byte) error {
	if _, _, err := w.tx.Set(key, string(val), nil); err != nil {
		return fmt.Errorf("set %s: %w", key, err)
	}
	return nil
}

// store writes a new record (its key is rk) with its indexes and meter readings.
func (w *applier) store(rk string, h *Held) error {
	var err error
	if w.buf, err = appendHeld(w.buf[:0], h); err != nil {
		return fmt.Errorf("encode %s: %w", rk, err)
	}
	if err := w.set(rk, w.buf); err != nil {
		return err
	}
	for k := range indexKinds {
		w.buf = appendIndexKey(w.buf[:0], h, k)
		if _, _, err := w.tx.Set(string(w.buf), "", nil); err != nil {
			return fmt.Errorf("set %s: %w", w.buf, err)
		}
	}
	for _, rd := range h.readings() {
		w.buf = appendMeterKey(w.buf[:0], &rd)
		key := string(w.buf)
		if err := w.set(key, appendReading(w.buf[:0], &rd)); err != nil {
			return err
		}
		if err := w.offerLatest(rd); err != nil {
			return err
		}
	}
	return nil
}

// offerLatest makes rd its meter's latest reading if it is newer than the latest so far.
func (w *applier) offerLatest(rd Reading) error {
	l, ok := w.latest[rd.Meter]
	if !ok {
		l = &latest{}
		found, err := get(w.tx, pfxLatest+string(rd.Meter), &l.rd)
		if err != nil {
			return err
		}
		l.dirty = !found
		if !found {
			l.rd = rd
		}
		w.latest[rd.Meter] = l
		w.order = append(w.order, rd.Meter)
		if !found {
			return nil
		}
	}
	if rd.newer(l.rd) {
		l.rd, l.dirty = rd, true
	}
	return nil
}

// flushLatest writes the latest readings that changed.
func (w *applier) flushLatest() error {
	for _, m := range w.order {
		l := w.latest[m]
		if !l.dirty {
			continue
		}
		if err := w.set(pfxLatest+string(m), appendReading(w.buf[:0], &l.rd)); err != nil {
			return err
		}
	}
	return nil
}

// Query selects readings. Empty fields do not filter.
type Query struct {
	Terminal wire.TerminalID
	Meter    wire.MeterID
	District wire.DistrictID
	FromMS   int64 // inclusive; 0 for no lower bound
	ToMS     int64 // exclusive; 0 for no upper bound
	Limit    int   // at most this many readings; must be positive
}

func (q Query) match(r Reading) bool {
	return (q.Terminal == "" || r.Terminal == q.Terminal) &&
		(q.Meter == "" || r.Meter == q.Meter) &&
		(q.District == "" || r.District == q.District) &&
		r.TimeMS >= q.FromMS && (q.ToMS == 0 || r.TimeMS < q.ToMS)
}

// timeRange returns the key range [lo, hi) of index prefix p for the query's times.
func (q Query) timeRange(p string) (lo, hi string) {
	lo, hi = p+num(uint64(max(q.FromMS, 0))), prefixEnd(p)
	if q.ToMS > 0 {
		hi = p + num(uint64(q.ToMS))
	}
	return lo, hi
}

// Readings returns the meter readings that match q, oldest first (by time, terminal, seq and
// channel), at most q.Limit of them.
func (s *DB) Readings(q Query) ([]Reading, error) {
	if q.Limit <= 0 {
		return nil, nil
	}
	var out []Reading
	err := s.db.View(func(tx *buntdb.Tx) error {
		if q.Meter != "" {
			lo, hi := q.timeRange(pfxMeterRd + string(q.Meter) + ":")
			var derr error
			err := tx.AscendRange("", lo, hi, func(k, v string) bool {
				var r Reading
				if derr = parseReading(v, &r); derr != nil {
					derr = fmt.Errorf("decode %s: %w", k, derr)
					return false
				}
				if q.match(r) {
					out = append(out, r)
				}
				return len(out) < q.Limit
			})
			if err != nil {
				return fmt.Errorf("scan meter readings: %w", err)
			}
			return derr
		}
		// The index keys end in the record key's parts; collect them, then read the records.
		var prefix string
		switch {
		case q.Terminal != "":
			prefix = pfxTermTime + string(q.Terminal) + ":"
		case q.District != "":
			prefix = pfxDistTime + string(q.District) + ":"
		default:
			prefix = pfxTime
		}
		lo, hi := q.timeRange(prefix)
		var rerr error
		err := tx.AscendRange("", lo, hi, func(k, _ string) bool {
			var term string
			var seq uint64
			term, seq, rerr = indexRecord(k)
			if rerr != nil {
				return false
			}
			var h Held
			ok, err := get(tx, recordKey(wire.TerminalID(term), seq), &h)
			if err != nil || !ok {
				rerr = fmt.Errorf("index %s: record missing: %v", k, err)
				return false
			}
			for _, r := range h.readings() {
				if q.match(r) {
					out = append(out, r)
				}
			}
			return len(out) < q.Limit
		})
		if err != nil {
			return fmt.Errorf("scan %s: %w", prefix, err)
		}
		return rerr
	})
	if err != nil {
		return nil, err
	}
	if len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

// indexRecord returns the terminal and seq that an rt:, rd: or rg: index key points to: its
// last two parts are terminal and seq, except in rt: where the terminal comes first.
func indexRecord(k string) (terminal string, seq uint64, err error) {
	parts := splitKey(k)
	switch {
	case len(parts) == 4 && parts[0] == "rt":
		terminal = parts[1]
	case len(parts) == 5 && parts[0] == "rd":
		terminal = parts[3]
	case len(parts) == 4 && parts[0] == "rg":
		terminal = parts[2]
	default:
		return "", 0, fmt.Errorf("bad index key %q", k)
	}
	seq, err = strconv.ParseUint(parts[len(parts)-1], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("bad index key %q: %w", k, err)
	}
	return terminal, seq, nil
}

func splitKey(k string) []string {
	var parts []string
	start := 0
	for i := 0; i < len(k); i++ {
		if k[i] == ':' {
			parts = append(parts, k[start:i])
			start = i + 1
		}
	}
	return append(parts, k[start:])
}

// Latest returns the latest reading of each meter that matches q (times are ignored), by
// meter id, at most q.Limit of them.
func (s *DB) Latest(q Query) ([]Reading, error) {
	if q.Limit <= 0 {
		return nil, nil
	}
	q.FromMS, q.ToMS = 0, 0
	var out []Reading
	err := s.db.View(func(tx *buntdb.Tx) error {
		if q.Meter != "" {
			var r Reading
			ok, err := get(tx, pfxLatest+string(q.Meter), &r)
			if err == nil && ok && q.match(r) {
				out = append(out, r)
			}
			return err
		}
		all, err := list[Reading](tx, pfxLatest)
		for _, r := range all {
			if q.match(r) && len(out) < q.Limit {
				out = append(out, r)
			}
		}
		return err
	})
	return out, err
}

// Prune deletes the records stamped before beforeMS with their indexes and returns how many
// it deleted. It works in transactions of at most 1,000 records so that ingest is not held
// up. Latest readings stay. A deleted record that arrives again is acknowledged and not
// stored by [DB.Apply] as long as its caller passes a notBeforeMS of at least beforeMS.
func (s *DB) Prune(beforeMS int64) (int, error) {
	const chunk = 1000
	total := 0
	for {
		n := 0
		err := s.db.Update(func(tx *buntdb.Tx) error {
			var keys []string
			err := tx.AscendRange("", pfxTime, pfxTime+num(uint64(max(beforeMS, 0))), func(k, _ string) bool {
				keys = append(keys, k)
				return len(keys) < chunk
			})
			if err != nil {
				return fmt.Errorf("scan %s: %w", pfxTime, err)
			}
			for _, k := range keys {
				term, seq, err := indexRecord(k)
				if err != nil {
					return err
				}
				rk := recordKey(wire.TerminalID(term), seq)
				var h Held
				ok, err := get(tx, rk, &h)
				if err != nil {
					return err
				}
				del := []string{k}
				if ok {
					del = append(del, rk)
					del = append(del, indexKeys(h)...)
					for _, r := range h.readings() {
						del = append(del, meterKey(r))
					}
				}
				for _, d := range del {
					if _, err := tx.Delete(d); err != nil && !errors.Is(err, buntdb.ErrNotFound) {
						return fmt.Errorf("delete %s: %w", d, err)
					}
				}
			}
			n = len(keys)
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("prune before %d: %w", beforeMS, err)
		}
		total += n
		if n < chunk {
			return total, nil
		}
	}
}
