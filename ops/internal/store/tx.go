package store

import (
	"encoding"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tidwall/buntdb"

	"github.com/meterlink/meterlink/wire"
)

// KindManual marks a reading entered by a meter reader ([Tx.PutManualReading]) rather than
// collected by a terminal. Its Seq is 0 and its Terminal is the meter's terminal.
const KindManual wire.Kind = "manual"

// State names a kind of per-entity state that a component of ops keeps in the store as
// JSON (validation baselines, prepaid charging cursors). The store does not look inside.
type State string

// The state kinds.
const (
	StateVEEMeter    State = "veem" // per meter: validation baseline (package vee)
	StateVEETerminal State = "veet" // per terminal: highest seq, open gaps, clock state (package vee)
	StateCharge      State = "chg"  // per account: prepaid charging cursor and tier-period totals (package billing)
)

// Tx is a store transaction for the components that must read and write several things
// atomically (validation, prepaid charging, manual readings, payments). It is valid only
// inside the function given to [DB.Update] or [DB.View].
type Tx struct {
	tx *buntdb.Tx
}

// Update runs fn in a read-write transaction; an error from fn rolls everything back.
func (s *DB) Update(fn func(*Tx) error) error {
	return s.db.Update(func(tx *buntdb.Tx) error { return fn(&Tx{tx: tx}) })
}

// View runs fn in a read-only transaction.
func (s *DB) View(fn func(*Tx) error) error {
	return s.db.View(func(tx *buntdb.Tx) error { return fn(&Tx{tx: tx}) })
}

func getOne[T any](t *Tx, kind, prefix, id string) (T, error) {
	var v T
	ok, err := get(t.tx, prefix+id, &v)
	if err == nil && !ok {
		err = fmt.Errorf("%s %s: %w", kind, id, ErrNotFound)
	}
	return v, err
}

// Meter returns a meter, or [ErrNotFound].
func (t *Tx) Meter(id wire.MeterID) (Meter, error) {
	return getOne[Meter](t, "meter", pfxMeter, string(id))
}

// Terminal returns a terminal, or [ErrNotFound].
func (t *Tx) Terminal(id wire.TerminalID) (Terminal, error) {
	return getOne[Terminal](t, "terminal", pfxTerminal, string(id))
}

// Account returns an account, or [ErrNotFound].
func (t *Tx) Account(id AccountID) (Account, error) {
	return getOne[Account](t, "account", pfxAccount, string(id))
}

// AccountMeters returns the meters assigned to an account, by id (from the
// meter-by-account index).
func (t *Tx) AccountMeters(id AccountID) ([]Meter, error) {
	p := pfxMeterAccount + string(id) + ":"
	var ids []string
	err := t.tx.AscendRange("", p, prefixEnd(p), func(k, _ string) bool {
		ids = append(ids, k[len(p):])
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", p, err)
	}
	var out []Meter
	for _, mid := range ids {
		m, err := t.Meter(wire.MeterID(mid))
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// SetBalance sets an existing account's balance (fen) and returns the account.
func (t *Tx) SetBalance(id AccountID, balanceFen int64) (Account, error) {
	a, err := t.Account(id)
	if err != nil {
		return Account{}, err
	}
	a.BalanceFen = balanceFen
	return a, set(t.tx, pfxAccount+string(id), a)
}

func stateKey(kind State, id string) string { return "s:" + string(kind) + ":" + id }

// State decodes the state of kind for id into v; ok is false when there is none yet. A
// state written by SetState from an [encoding.BinaryAppender] is decoded with v's
// UnmarshalBinary; one written as JSON (by an older version, or a type without a binary
// form) with encoding/json.
func (t *Tx) State(kind State, id string, v any) (ok bool, err error) {
	key := stateKey(kind, id)
	s, err := t.tx.Get(key)
	if errors.Is(err, buntdb.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get %s: %w", key, err)
	}
	if u, isBin := v.(encoding.BinaryUnmarshaler); isBin && len(s) > 0 && s[0] == rowV1 {
		err = u.UnmarshalBinary([]byte(s[1:]))
	} else {
		err = json.Unmarshal([]byte(s), v)
	}
	if err != nil {
		return false, fmt.Errorf("decode %s: %w", key, err)
	}
	return true, nil
}

// SetState stores the state of kind for id: in its binary form (a format byte, then
// AppendBinary) when v is an [encoding.BinaryAppender], as JSON otherwise. States are read
// and written for every reading ingested, so the hot ones have a binary form.
func (t *Tx) SetState(kind State, id string, v any) error {
	a, isBin := v.(encoding.BinaryAppender)
	if !isBin {
		return set(t.tx, stateKey(kind, id), v)
	}
	key := stateKey(kind, id)
	b, err := a.AppendBinary([]byte{rowV1})
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	if _, _, err := t.tx.Set(key, string(b), nil); err != nil {
		return fmt.Errorf("set %s: %w", key, err)
	}
	return nil
}

// Latest returns a meter's latest reading; ok is false when it has none.
func (t *Tx) Latest(meter wire.MeterID) (r Reading, ok bool, err error) {
	ok, err = get(t.tx, pfxLatest+string(meter), &r)
	return r, ok, err
}

// ReadingAtOrBefore returns the meter's last reading stamped at or before atMS.
func (t *Tx) ReadingAtOrBefore(meter wire.MeterID, atMS int64) (r Reading, ok bool, err error) {
	p := pfxMeterRd + string(meter) + ":"
	var derr error
	err = t.tx.DescendRange("", p+num(uint64(max(atMS, 0)))+";", p, func(k, v string) bool {
		derr, ok = decodeReading(k, v, &r), true
		return false
	})
	return r, ok && derr == nil, errors.Join(err, derr)
}

// ReadingAtOrAfter returns the meter's first reading stamped at or after atMS.
func (t *Tx) ReadingAtOrAfter(meter wire.MeterID, atMS int64) (r Reading, ok bool, err error) {
	p := pfxMeterRd + string(meter) + ":"
	var derr error
	err = t.tx.AscendRange("", p+num(uint64(max(atMS, 0))), prefixEnd(p), func(k, v string) bool {
		derr, ok = decodeReading(k, v, &r), true
		return false
	})
	return r, ok && derr == nil, errors.Join(err, derr)
}

// MeterReadings returns the meter's readings stamped in [fromMS, toMS), oldest first, at
// most limit of them.
func (t *Tx) MeterReadings(meter wire.MeterID, fromMS, toMS int64, limit int) ([]Reading, error) {
	p := pfxMeterRd + string(meter) + ":"
	var out []Reading
	var derr error
	err := t.tx.AscendRange("", p+num(uint64(max(fromMS, 0))), p+num(uint64(max(toMS, 0))), func(k, v string) bool {
		var r Reading
		if derr = decodeReading(k, v, &r); derr != nil {
			return false
		}
		out = append(out, r)
		return len(out) < limit
	})
	return out, errors.Join(err, derr)
}

func decodeReading(k, v string, r *Reading) error {
	if err := parseReading(v, r); err != nil {
		return fmt.Errorf("decode %s: %w", k, err)
	}
	return nil
}

// PutManualReading stores a reading entered by a meter reader (Kind [KindManual], Seq 0)
// in the meter's history and, when it is the newest, as its latest reading. A second
// manual reading of the same meter at the same millisecond replaces the first.
func (t *Tx) PutManualReading(r Reading) error {
	r.Kind, r.Seq = KindManual, 0
	if err := set(t.tx, meterKey(r), r); err != nil {
		return err
	}
	var last Reading
	ok, err := get(t.tx, pfxLatest+string(r.Meter), &last)
	if err != nil {
		return err
	}
	if !ok || !last.newer(r) {
		return set(t.tx, pfxLatest+string(r.Meter), r)
	}
	return nil
}

// Readings returns the meter readings of a held reading or frozen record, one per channel.
func (h Held) Readings() []Reading { return h.readings() }

// pfxMeterAccount indexes meters by account: ma:{account}:{meter} (empty value).
const pfxMeterAccount = "ma:"

// indexMeterAccount keeps the meter-by-account index in step with a meter being written.
func indexMeterAccount(tx *buntdb.Tx, m Meter) error {
	var old Meter
	ok, err := get(tx, pfxMeter+string(m.ID), &old)
	if err != nil {
		return err
	}
	if ok && old.Account != "" && old.Account != m.Account {
		if _, err := tx.Delete(pfxMeterAccount + string(old.Account) + ":" + string(m.ID)); err != nil && !errors.Is(err, buntdb.ErrNotFound) {
			return fmt.Errorf("unindex meter %s: %w", m.ID, err)
		}
	}
	if m.Account != "" {
		if _, _, err := tx.Set(pfxMeterAccount+string(m.Account)+":"+string(m.ID), "", nil); err != nil {
			return fmt.Errorf("index meter %s: %w", m.ID, err)
		}
	}
	return nil
}
