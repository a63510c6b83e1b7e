package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/tidwall/buntdb"

	"github.com/meterlink/meterlink/wire"
)

// SIDSize is the size of a security identifier's key in bytes (security.md §3).
const SIDSize = 32

// PDAState is the lifecycle state of a PDA.
type PDAState string

// The PDA states.
const (
	PDAEnrolled PDAState = "enrolled" // provisioned: may handshake and upload
	PDALocked   PDAState = "locked"   // the clone alarm fired (security.md §9); only re-provisioning unlocks it
	PDARevoked  PDAState = "revoked"  // its SIDs are deleted; everything it sends is dropped
)

// PDA is a PDA security unit as provisioning and the API see it. SID is SID₀ when the PDA is
// provisioned ([DB.Put]) and the current SID when it is read back; it is never serialised. The
// other fields after State are read-only status kept by the secure channel.
type PDA struct {
	ID        wire.PDAID `json:"id"`
	SID       []byte     `json:"-"` // 32 bytes; never serialised by this type
	State     PDAState   `json:"state"`
	CreatedMS int64      `json:"created_ms"` // Unix milliseconds

	Epoch           uint32 `json:"epoch"`                       // epoch of the current SID
	Bound           bool   `json:"bound"`                       // S_pda is bound (enrolment done, security.md §4.3)
	RotationPending bool   `json:"rotation_pending"`            // a candidate SID awaits its commit
	LastHandshakeMS int64  `json:"last_handshake_ms,omitempty"` // last answered HS_INIT
	LastRotationMS  int64  `json:"last_rotation_ms,omitempty"`  // last commit of a new SID
	LockedMS        int64  `json:"locked_ms,omitempty"`         // when the clone alarm locked it
}

// StoredSID is a SID as kept in a row: its epoch and 32-byte key. A nil Key means none.
type StoredSID struct {
	Epoch uint32 `json:"e"`
	Key   []byte `json:"k,omitempty"`
}

// IsZero reports whether s holds no SID.
func (s StoredSID) IsZero() bool { return len(s.Key) == 0 }

// EnrolSlot is one pre-enrolment peer static and its handshake state (security.md §4.3).
type EnrolSlot struct {
	Static     []byte    `json:"static"`
	LastHS     uint64    `json:"last_hs"`
	Candidate  StoredSID `json:"candidate"`
	CachedHash []byte    `json:"cached_hash,omitempty"`
	CachedResp []byte    `json:"cached_resp,omitempty"`
	CachedAtMS int64     `json:"cached_at_ms,omitempty"`
}

// PDARow is ops' whole record of a PDA, secrets included: the SECLINK/1 rotation state of
// security.md §4.1 and §4.3. Only the secure channel reads it; the API sees [PDARow.View].
type PDARow struct {
	ID        wire.PDAID `json:"id"`
	State     PDAState   `json:"state"`
	CreatedMS int64      `json:"created_ms"`

	Static     []byte      `json:"static,omitempty"` // bound S_pda public; nil before enrolment
	Cur        StoredSID   `json:"cur"`              // SID₀ before enrolment
	Pending    StoredSID   `json:"pending"`
	LastHS     uint64      `json:"last_hs"`
	CachedHash []byte      `json:"cached_hash,omitempty"`
	CachedResp []byte      `json:"cached_resp,omitempty"`
	CachedAtMS int64       `json:"cached_at_ms,omitempty"`
	Slots      []EnrolSlot `json:"slots,omitempty"`

	LastHandshakeMS int64 `json:"last_handshake_ms,omitempty"`
	LastRotationMS  int64 `json:"last_rotation_ms,omitempty"`
	LockedMS        int64 `json:"locked_ms,omitempty"`
}

// View returns the row as the API may show it: no key material except the current SID in
// the unserialised PDA.SID.
func (r PDARow) View() PDA {
	return PDA{
		ID: r.ID, SID: r.Cur.Key, State: r.State, CreatedMS: r.CreatedMS,
		Epoch: r.Cur.Epoch, Bound: len(r.Static) > 0, RotationPending: !r.Pending.IsZero(),
		LastHandshakeMS: r.LastHandshakeMS, LastRotationMS: r.LastRotationMS, LockedMS: r.LockedMS,
	}
}

// clearSecrets deletes every SID, slot and cached answer (revocation, security.md §10).
func (r *PDARow) clearSecrets() {
	r.Cur, r.Pending, r.Slots = StoredSID{}, StoredSID{}, nil
	r.CachedHash, r.CachedResp, r.CachedAtMS = nil, nil, 0
}

// newPDARow is a freshly provisioned row: SID₀ at epoch 0, nothing bound. Provisioning an
// existing PDA again (re-provisioning) replaces its row, which clears the binding.
func newPDARow(p PDA) PDARow {
	r := PDARow{ID: p.ID, State: p.State, CreatedMS: p.CreatedMS, Cur: StoredSID{Key: p.SID}}
	if p.State == PDARevoked {
		r.clearSecrets()
	}
	return r
}

// Validate names every bad field of the PDA.
func (p PDA) Validate() error { f := fields{}; p.validate(f, ""); return f.err() }

func (p PDA) validate(f fields, at string) {
	f.id(at+"id", string(p.ID))
	if len(p.SID) != SIDSize {
		f.addf(at+"sid", "must be %d bytes, got %d", SIDSize, len(p.SID))
	}
	if p.State != PDAEnrolled && p.State != PDARevoked {
		f.addf(at+"state", "%q: want enrolled or revoked", p.State)
	}
	if p.CreatedMS <= 0 {
		f.addf(at+"created_ms", "must be positive")
	}
}

// PDA returns a PDA with its current SID, or [ErrNotFound].
func (s *DB) PDA(id wire.PDAID) (PDA, error) {
	r, err := s.PDARow(id)
	return r.View(), err
}

// PDARow returns a PDA's whole row, secrets included, or [ErrNotFound].
func (s *DB) PDARow(id wire.PDAID) (PDARow, error) {
	var r PDARow
	err := s.db.View(func(tx *buntdb.Tx) error {
		ok, err := get(tx, pfxPDA+string(id), &r)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("pda %s: %w", id, ErrNotFound)
		}
		return nil
	})
	return r, err
}

// UpdatePDARow applies fn to a PDA's row and stores the result in one synced transaction; an
// error from fn changes nothing and is returned. It returns the stored row, or [ErrNotFound].
func (s *DB) UpdatePDARow(id wire.PDAID, fn func(*PDARow) error) (PDARow, error) {
	var r PDARow
	err := s.db.Update(func(tx *buntdb.Tx) error {
		ok, err := get(tx, pfxPDA+string(id), &r)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("pda %s: %w", id, ErrNotFound)
		}
		if err := fn(&r); err != nil {
			return err
		}
		return set(tx, pfxPDA+string(id), r)
	})
	return r, err
}

// EnsurePDA provisions p unless a PDA with its id exists, and reports whether it did. The lab
// seeds its PDA this way, so a restart keeps the rotated SIDs.
func (s *DB) EnsurePDA(p PDA) (bool, error) {
	err := s.Put(Dataset{PDAs: []PDA{p}}, false)
	if errors.Is(err, ErrExists) {
		return false, nil
	}
	return err == nil, err
}

// SetPDAState changes a PDA's state and returns it, or [ErrNotFound]. Revoking deletes its
// SIDs, pending SID, enrolment slots and cached answers in the same transaction (security.md
// §10); enrolling it again does not bring them back: that takes re-provisioning.
func (s *DB) SetPDAState(id wire.PDAID, state PDAState) (PDA, error) {
	if state != PDAEnrolled && state != PDARevoked {
		return PDA{}, &FieldError{Fields: map[string]string{"state": fmt.Sprintf("%q: want enrolled or revoked", state)}}
	}
	r, err := s.UpdatePDARow(id, func(r *PDARow) error {
		r.State = state
		if state == PDARevoked {
			r.clearSecrets()
		}
		return nil
	})
	return r.View(), err
}

// pfxMsgID keys the msg_ids ops has answered (security.md §6): pm:{pda}:{msg_id hex}.
const pfxMsgID = "pm:"

// MsgAnswer returns what ops answered to a PDA's record msg_id, if it still remembers it.
func (s *DB) MsgAnswer(pda wire.PDAID, msgID string) ([]byte, bool) {
	var v string
	err := s.db.View(func(tx *buntdb.Tx) error {
		var err error
		v, err = tx.Get(pfxMsgID + string(pda) + ":" + msgID)
		return err
	})
	if err != nil {
		return nil, false
	}
	return []byte(v), true
}

// RememberMsg keeps ops' answer to a PDA's record msg_id for ttl, so that a repeat is
// answered again and never applied again.
func (s *DB) RememberMsg(pda wire.PDAID, msgID string, answer []byte, ttl time.Duration) error {
	return s.db.Update(func(tx *buntdb.Tx) error {
		_, _, err := tx.Set(pfxMsgID+string(pda)+":"+msgID, string(answer), &buntdb.SetOptions{Expires: true, TTL: ttl})
		return err
	})
}

// keyOpsStatic holds S_ops' private key when ops generated it itself (security.md §3: an HSM
// in production).
const keyOpsStatic = "k:ops-static"

// OpsStaticKey returns ops' S_ops private key, storing gen's result on the first call.
func (s *DB) OpsStaticKey(gen func() ([]byte, error)) ([]byte, error) {
	var key []byte
	err := s.db.Update(func(tx *buntdb.Tx) error {
		var stored struct {
			Private []byte `json:"private"`
		}
		ok, err := get(tx, keyOpsStatic, &stored)
		if err != nil {
			return err
		}
		if ok && len(stored.Private) == 32 {
			key = stored.Private
			return nil
		}
		if stored.Private, err = gen(); err != nil {
			return fmt.Errorf("generate ops key: %w", err)
		}
		key = stored.Private
		return set(tx, keyOpsStatic, stored)
	})
	return key, err
}
