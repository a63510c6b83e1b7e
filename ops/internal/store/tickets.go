package store

import (
	"errors"
	"fmt"

	"github.com/tidwall/buntdb"

	"github.com/meterlink/meterlink/wire"
)

// Handheld binding (security.md §12): which PDA each handheld is assigned to, its key version
// and ticket counters, under hhb:{handheld}; and K_master, when ops generated it, under
// k:hh-master.
const (
	pfxHandheldBinding = "hhb:"
	keyHHMaster        = "k:hh-master"
)

// ErrNotAssigned is returned when a handheld is not assigned to the PDA asking for its ticket.
var ErrNotAssigned = errors.New("handheld not assigned to this pda")

// HandheldBinding is a handheld's assignment and ticket state.
type HandheldBinding struct {
	ID      wire.HandheldID `json:"id"`
	PDA     wire.PDAID      `json:"pda"`
	KeyVer  byte            `json:"key_ver"`
	LastSeq uint64          `json:"last_seq"` // seq of the newest ticket issued
	// MinSeq is min_ticket_seq: every ticket carries it, and handhelds refuse tickets below it.
	// Revoking the PDA raises it above every ticket that PDA holds (§10).
	MinSeq uint64 `json:"min_seq"`
}

// AssignHandheld assigns handheld hh (key version keyVer) to pda, keeping its ticket counters.
// Moving it to another PDA raises min_ticket_seq above every ticket issued so far.
func (s *DB) AssignHandheld(hh wire.HandheldID, pda wire.PDAID, keyVer byte) error {
	return s.db.Update(func(tx *buntdb.Tx) error {
		var b HandheldBinding
		if _, err := get(tx, pfxHandheldBinding+string(hh), &b); err != nil {
			return err
		}
		if b.PDA != "" && b.PDA != pda {
			b.MinSeq = b.LastSeq + 1
		}
		b.ID, b.PDA, b.KeyVer = hh, pda, keyVer
		return set(tx, pfxHandheldBinding+string(hh), b)
	})
}

// HandheldBinding returns a handheld's binding, or ErrNotFound.
func (s *DB) HandheldBinding(hh wire.HandheldID) (HandheldBinding, error) {
	var b HandheldBinding
	err := s.db.View(func(tx *buntdb.Tx) error {
		ok, err := get(tx, pfxHandheldBinding+string(hh), &b)
		if err == nil && !ok {
			err = ErrNotFound
		}
		return err
	})
	return b, err
}

// NextTicket checks that hh is assigned to pda, which must be enrolled, and persists the next
// ticket seq. It returns the binding with LastSeq set to the new seq.
func (s *DB) NextTicket(hh wire.HandheldID, pda wire.PDAID) (HandheldBinding, error) {
	var b HandheldBinding
	err := s.db.Update(func(tx *buntdb.Tx) error {
		ok, err := get(tx, pfxHandheldBinding+string(hh), &b)
		if err != nil {
			return err
		}
		if !ok || b.PDA != pda {
			return ErrNotAssigned
		}
		var p PDARow
		if ok, err := get(tx, pfxPDA+string(pda), &p); err != nil {
			return err
		} else if !ok || p.State != PDAEnrolled {
			return ErrNotAssigned
		}
		b.LastSeq = max(b.LastSeq, b.MinSeq) + 1
		return set(tx, pfxHandheldBinding+string(hh), b)
	})
	return b, err
}

// RevokeTickets stops tickets for the handhelds assigned to pda and raises their
// min_ticket_seq above every ticket issued so far (security.md §10): they are unassigned, so
// no PDA gets a ticket for them until an administrator assigns them again. It returns them.
func (s *DB) RevokeTickets(pda wire.PDAID) ([]wire.HandheldID, error) {
	var out []wire.HandheldID
	err := s.db.Update(func(tx *buntdb.Tx) error {
		bs, err := list[HandheldBinding](tx, pfxHandheldBinding)
		if err != nil {
			return err
		}
		for _, b := range bs {
			if b.PDA != pda {
				continue
			}
			b.MinSeq, b.LastSeq, b.PDA = b.LastSeq+1, b.LastSeq+1, ""
			if err := set(tx, pfxHandheldBinding+string(b.ID), b); err != nil {
				return err
			}
			out = append(out, b.ID)
		}
		return nil
	})
	return out, err
}

// HHMasterKey returns K_master, storing gen's result on the first call (an HSM replaces this).
func (s *DB) HHMasterKey(gen func() ([]byte, error)) ([]byte, error) {
	var key []byte
	err := s.db.Update(func(tx *buntdb.Tx) error {
		var stored struct {
			Key []byte `json:"key"`
		}
		ok, err := get(tx, keyHHMaster, &stored)
		if err != nil {
			return err
		}
		if ok && len(stored.Key) == 32 {
			key = stored.Key
			return nil
		}
		if stored.Key, err = gen(); err != nil {
			return fmt.Errorf("generate handheld master key: %w", err)
		}
		key = stored.Key
		return set(tx, keyHHMaster, stored)
	})
	return key, err
}
