package ops

import (
	"crypto/rand"
	"fmt"
	"time"

	"github.com/meterlink/meterlink/noisehs"
	"github.com/meterlink/meterlink/ops/internal/seclink"
	"github.com/meterlink/meterlink/ops/internal/store"
	"github.com/meterlink/meterlink/wire"
)

// OpsKeyID is the opskey id of ops' S_ops keypair in frames (security.md §3); a key roll
// (§7.2) would add a second one.
const OpsKeyID byte = 1

// pdaStore is what the secure channel needs from the store beyond [storage]'s basics.
type pdaStore interface {
	seclink.Store
	EnsurePDA(p store.PDA) (bool, error)
	MsgAnswer(pda wire.PDAID, msgID string) ([]byte, bool)
	RememberMsg(pda wire.PDAID, msgID string, answer []byte, ttl time.Duration) error
	OpsStaticKey(gen func() ([]byte, error)) ([]byte, error)
}

// newLink loads S_ops (from the configuration, else generated once and kept in the store) and
// builds the SECLINK/1 endpoint.
func newLink(cfg Config, st pdaStore, now func() time.Time, o *Ops) (*seclink.Link, error) {
	priv := cfg.OpsKey
	if len(priv) == 0 {
		var err error
		priv, err = st.OpsStaticKey(func() ([]byte, error) {
			kp, err := noisehs.GenerateKeypair(rand.Reader)
			return kp.Private[:], err
		})
		if err != nil {
			return nil, err
		}
	}
	var p [32]byte
	copy(p[:], priv)
	kp, err := noisehs.KeypairFromPrivate(p)
	clear(p[:])
	if err != nil {
		return nil, fmt.Errorf("ops key: %w", err)
	}
	return seclink.New(seclink.Config{
		Store: st, Key: kp, OpsKey: OpsKeyID, Now: func() time.Time { return now() }, Log: o.log,
		HSBurst: cfg.HandshakeBurst,
	}), nil
}

// OpsPublicKey returns the opskey id and S_ops public key that a PDA pins (security.md §3).
func (o *Ops) OpsPublicKey() (byte, [32]byte) { return o.sec.OpsPublic() }

// PDAVerifiers returns SHA-256 of each broker password the PDA may use now, for the broker's
// account lookup (security.md §11): cur and more together are the current and pending SIDs'
// (before enrolment, SID₀'s and the candidates'). ok is false for an unknown, locked or revoked PDA.
func (o *Ops) PDAVerifiers(id string) (cur [32]byte, more [][32]byte, ok bool) {
	return o.sec.Verifiers(id)
}

// SetDisconnect gives ops the broker's force-disconnect for revoked and locked PDAs.
func (o *Ops) SetDisconnect(f func(pda string)) { o.sec.SetDisconnect(f) }

// RevokePDA revokes a PDA (security.md §10): its SIDs are deleted, its sessions dropped and
// its MQTT client disconnected, at once.
func (o *Ops) RevokePDA(id string) error {
	_, err := o.sec.Revoke(wire.PDAID(id))
	return err
}

// EnsurePDA provisions a PDA with SID₀ unless it exists, and reports whether it did. A
// restarted lab keeps its PDA's rotated SIDs this way.
func (o *Ops) EnsurePDA(id string, sid0 []byte) (bool, error) {
	return o.st.EnsurePDA(store.PDA{ID: wire.PDAID(id), SID: sid0, State: store.PDAEnrolled, CreatedMS: o.now().UnixMilli()})
}

// PDAStatus returns a PDA's state, epoch and handshake times, never its secrets.
func (o *Ops) PDAStatus(id string) (PDA, error) {
	p, err := o.st.PDA(wire.PDAID(id))
	p.SID = nil
	return p, err
}
