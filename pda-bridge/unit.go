package pdabridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/tidwall/buntdb"

	"github.com/meterlink/meterlink/noisehs"
)

// keyUnit holds the security unit's persisted state in the bridge's buntdb file.
const keyUnit = "unit:state"

// unitState is what the security unit persists (security.md §3, §4.2): S_pda, the SIDs of
// the rotation state machine and hs_counter. v1 is the software backend: the file is the
// secret, protected by its mode (0600 directory in production; a hardware unit replaces it).
type unitState struct {
	Static    []byte   `json:"static"` // S_pda private key
	CurEpoch  uint32   `json:"cur_epoch"`
	Cur       []byte   `json:"cur"`
	PendEpoch uint32   `json:"pending_epoch,omitempty"`
	Pending   []byte   `json:"pending,omitempty"`
	HSCounter uint64   `json:"hs_counter"`
	OpsPublic [32]byte `json:"ops_public"` // pinned S_ops public key
	OpsKey    byte     `json:"opskey"`
}

// unit is the PDA's software security unit: identity, pinned ops key, selected SID,
// hs_counter and the atomic store-candidate/commit steps of §4.2 and §7.1. Every change is
// written with fsync before it returns, so the caller may then send (persist before sending).
type unit struct {
	db  *buntdb.DB
	mu  sync.Mutex
	kp  noisehs.Keypair
	st  noisehs.PDAState
	ops [32]byte
	key byte
}

// errNoSID is returned when the unit has no state and no SID₀ was given.
var errNoSID = errors.New("no stored security state and no SID₀ (set METERLINK_SID)")

// openUnit loads the unit's state from db, or creates it from SID₀ on first use: a fresh
// S_pda, cur = SID₀ at epoch 0, hs_counter 0. A stored state wins over SID₀, which is single
// use: after the first handshake the PDA holds only rotated SIDs.
func openUnit(db *buntdb.DB, sid0 []byte, opsPublic [32]byte, opsKey byte) (*unit, error) {
	u := &unit{db: db}
	var s unitState
	err := db.View(func(tx *buntdb.Tx) error {
		v, err := tx.Get(keyUnit)
		if err != nil {
			return err
		}
		return json.Unmarshal([]byte(v), &s)
	})
	switch {
	case errors.Is(err, buntdb.ErrNotFound):
		if len(sid0) != 32 {
			return nil, errNoSID
		}
		kp, err := noisehs.GenerateKeypair(nil)
		if err != nil {
			return nil, fmt.Errorf("generate S_pda: %w", err)
		}
		u.kp = kp
		copy(u.st.Cur.Key[:], sid0)
		u.ops, u.key = opsPublic, opsKey
		if err := u.save(); err != nil {
			return nil, err
		}
		return u, nil
	case err != nil:
		return nil, fmt.Errorf("read security unit: %w", err)
	}
	var priv [32]byte
	copy(priv[:], s.Static)
	if u.kp, err = noisehs.KeypairFromPrivate(priv); err != nil {
		return nil, fmt.Errorf("stored S_pda: %w", err)
	}
	clear(priv[:])
	u.st.Cur.Epoch, u.st.Pending.Epoch, u.st.HSCounter = s.CurEpoch, s.PendEpoch, s.HSCounter
	copy(u.st.Cur.Key[:], s.Cur)
	copy(u.st.Pending.Key[:], s.Pending)
	if u.st.Pending.Key == ([32]byte{}) {
		u.st.Pending = noisehs.SID{}
	}
	// The pinned key comes from the configuration when given (a re-pin is an operator act),
	// else from the state.
	u.ops, u.key = s.OpsPublic, s.OpsKey
	if opsPublic != ([32]byte{}) {
		u.ops, u.key = opsPublic, opsKey
	}
	return u, nil
}

// save writes the state with fsync (the db uses SyncPolicy Always). u.mu is held or u is new.
func (u *unit) save() error {
	s := unitState{Static: u.kp.Private[:], CurEpoch: u.st.Cur.Epoch, Cur: u.st.Cur.Key[:], HSCounter: u.st.HSCounter,
		OpsPublic: u.ops, OpsKey: u.key}
	if !u.st.Pending.IsZero() {
		s.PendEpoch, s.Pending = u.st.Pending.Epoch, u.st.Pending.Key[:]
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	err = u.db.Update(func(tx *buntdb.Tx) error {
		_, _, err := tx.Set(keyUnit, string(b), nil)
		return err
	})
	clear(b)
	if err != nil {
		return fmt.Errorf("persist security unit: %w", err)
	}
	return nil
}

// set persists next and then makes it the state; on failure the state is unchanged.
func (u *unit) set(next noisehs.PDAState) error {
	prev := u.st
	u.st = next
	if err := u.save(); err != nil {
		u.st = prev
		return err
	}
	return nil
}

// nextHandshake increments and durably stores hs_counter (§4.2) and returns what
// [noisehs.InitiatorConfig] needs.
func (u *unit) nextHandshake() (psk noisehs.SID, counter uint64, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	next, psk, counter := u.st.NextHandshake()
	return psk, counter, u.set(next)
}

// completed applies a valid HS_RESP (§4.2): commit pending if it was the PSK, store the
// candidate. Persisted before CONFIRM is sent.
func (u *unit) completed(psk, candidate noisehs.SID) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.set(u.st.Completed(psk, candidate))
}

// opsRecord applies the first valid ops record of the newest session (§7.1): commit its
// candidate. It reports whether the state changed.
func (u *unit) opsRecord(candidate noisehs.SID) (bool, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	next := u.st.OpsRecord(candidate)
	if next.Cur.Equal(u.st.Cur) && next.Pending.Equal(u.st.Pending) {
		return false, nil
	}
	return true, u.set(next)
}

// selected returns the SID of the next handshake and of the broker password.
func (u *unit) selected() noisehs.SID {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.st.Selected()
}

// state returns a copy of the rotation state (tests and status).
func (u *unit) state() noisehs.PDAState {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.st
}

// initiator returns the fixed part of an [noisehs.InitiatorConfig].
func (u *unit) initiator() noisehs.InitiatorConfig {
	u.mu.Lock()
	defer u.mu.Unlock()
	return noisehs.InitiatorConfig{Static: u.kp, OpsStatic: u.ops, OpsKey: u.key}
}
