// Package store keeps ops' state in buntdb: provisioning entities (districts, terminals with
// their channel maps, meters, customer accounts, PDAs) and the records received from the
// field, keyed (terminal, seq) so that each is stored once.
//
// buntdb holds everything in memory, so readings have a retention ([DB.Prune]). Every write
// is synced before the transaction returns (SyncPolicy Always) because ops acknowledges
// records upstream only once they are stored; batches keep that affordable. No buntdb type
// leaves this package.
//
// Key layout (ids never hold ':', see [wire.ValidID]; numbers are zero-padded to sort):
//
//	d:{district}  a:{account}  p:{pda}        entities (JSON)
//	t:{terminal}  m:{meter}                   entities (binary rows)
//	r:{terminal}:{seq}                        a held record (binary row); the de-duplication key
//	rt:{terminal}:{ts}:{seq}                  time index per terminal (empty value)
//	rd:{district}:{ts}:{terminal}:{seq}       time index per district (empty value)
//	rg:{ts}:{terminal}:{seq}                  global time index, also drives retention
//	rm:{meter}:{ts}:{terminal}:{seq}:{ch}     one meter's reading (binary [Reading] row)
//	l:{meter}                                 the meter's latest reading (binary [Reading] row)
//	s:{kind}:{id}                             component state ([State]; binary or JSON)
//
// Stored format: the rows that ingest reads or writes for every record (r:, rm:, l:, t:,
// m:, and the states whose types have a binary form) are compact binary rows starting with
// a format byte (codec.go), not JSON, since 2026-11-24. JSON rows written before still
// read, so a store from the first builds opens unchanged and becomes binary as it is
// written; a store written since cannot be read by a build older than that date. The API
// answers in JSON as before.
package store

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tidwall/buntdb"
)

// ErrNotFound is returned when an entity does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is returned when an entity to create already exists.
var ErrExists = errors.New("already exists")

// DB is ops' buntdb store. It is safe for concurrent use.
type DB struct {
	db *buntdb.DB
}

// Open opens (or creates) the store at path; ":memory:" keeps it in memory only.
func Open(path string) (*DB, error) {
	db, err := buntdb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	var c buntdb.Config
	if err := db.ReadConfig(&c); err != nil {
		db.Close()
		return nil, fmt.Errorf("read store config: %w", err)
	}
	// Ops acknowledges upstream only what it stored, so every commit is fsynced (DESIGN §8).
	c.SyncPolicy = buntdb.Always
	if err := db.SetConfig(c); err != nil {
		db.Close()
		return nil, fmt.Errorf("set store config: %w", err)
	}
	return &DB{db: db}, nil
}

// Close closes the store. It is idempotent.
func (s *DB) Close() error {
	if err := s.db.Close(); err != nil && !errors.Is(err, buntdb.ErrDatabaseClosed) {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// Key prefixes; see the package comment.
const (
	pfxDistrict = "d:"
	pfxTerminal = "t:"
	pfxMeter    = "m:"
	pfxAccount  = "a:"
	pfxPDA      = "p:"
	pfxRecord   = "r:"
	pfxTermTime = "rt:"
	pfxDistTime = "rd:"
	pfxTime     = "rg:"
	pfxMeterRd  = "rm:"
	pfxLatest   = "l:"
)

// num pads n so that keys sort numerically.
func num(n uint64) string { return string(appendNum(make([]byte, 0, 20), n)) }

// prefixEnd returns the smallest key greater than every key with prefix p (p ends in ':').
func prefixEnd(p string) string { return p[:len(p)-1] + ";" }

// get decodes the JSON value at key into v; ok is false when the key does not exist.
func get(tx *buntdb.Tx, key string, v any) (ok bool, err error) {
	s, err := tx.Get(key)
	if errors.Is(err, buntdb.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get %s: %w", key, err)
	}
	if err := decode(s, v); err != nil {
		return false, fmt.Errorf("decode %s: %w", key, err)
	}
	return true, nil
}

func set(tx *buntdb.Tx, key string, v any) error {
	b, err := encode(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	if _, _, err := tx.Set(key, string(b), nil); err != nil {
		return fmt.Errorf("set %s: %w", key, err)
	}
	return nil
}

func exists(tx *buntdb.Tx, key string) (bool, error) {
	_, err := tx.Get(key)
	if errors.Is(err, buntdb.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get %s: %w", key, err)
	}
	return true, nil
}

// list decodes every value under prefix, in key order.
func list[T any](tx *buntdb.Tx, prefix string) ([]T, error) {
	var out []T
	var derr error
	err := tx.AscendRange("", prefix, prefixEnd(prefix), func(k, v string) bool {
		var x T
		if err := decode(v, &x); err != nil {
			derr = fmt.Errorf("decode %s: %w", k, err)
			return false
		}
		out = append(out, x)
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", prefix, err)
	}
	return out, derr
}

// decode decodes a stored value into v: readings, held records, meters and terminals from
// their rows (codec.go), everything else from JSON.
func decode(s string, v any) error {
	switch x := v.(type) {
	case *Reading:
		return parseReading(s, x)
	case *Held:
		return parseHeld(s, x)
	case *Meter:
		return parseMeter(s, x)
	case *Terminal:
		return parseTerminal(s, x)
	}
	return json.Unmarshal([]byte(s), v)
}

// encode encodes a value to store: readings, held records, meters and terminals as rows
// (codec.go), everything else as JSON. A pointer is stored as JSON, which decode reads too.
func encode(v any) ([]byte, error) {
	switch x := v.(type) {
	case Reading:
		return appendReading(nil, &x), nil
	case Held:
		return appendHeld(nil, &x)
	case Meter:
		return appendMeter(nil, &x), nil
	case Terminal:
		return appendTerminal(nil, &x), nil
	}
	return json.Marshal(v)
}
