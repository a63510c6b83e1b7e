package noisehs

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/flynn/noise"
)

// ErrHandshake is returned when Noise rejects a handshake message: a bad tag,
// a wrong key or PSK, or a low-order point. The cause is deliberately not
// given; all failures look the same outside (§9).
var ErrHandshake = errors.New("handshake failed")

// ErrOpsKey is returned when a frame's opskey does not name the configured
// S_ops keypair.
var ErrOpsKey = errors.New("unknown ops key")

// ErrHeaderMismatch is returned when HS_RESP's header differs from HS_INIT's
// in anything but the type.
var ErrHeaderMismatch = errors.New("header mismatch")

// ErrIndex is returned when a frame's receiver_idx names another handshake or
// session.
var ErrIndex = errors.New("unexpected receiver index")

// ErrUnknownSID is returned when the PSK lookup finds no SID for payload1's
// (epoch, kid).
var ErrUnknownSID = errors.New("no sid for epoch and kid")

// ErrPayload is returned for a decrypted payload whose values are unusable.
var ErrPayload = errors.New("invalid payload")

// ErrState is returned when a handshake step is called out of order or twice.
var ErrState = errors.New("handshake step out of order")

// prologueLabel starts the Noise prologue (§4).
const prologueLabel = "SECLINK/1"

var suiteIKpsk2 = noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashSHA256)

// Role says which end of the link a session or handshake is.
type Role uint8

// Roles. The PDA always initiates.
const (
	RolePDA Role = 1 // initiator; sends with k_up, receives with k_down
	RoleOps Role = 2 // responder; sends with k_down, receives with k_up
)

// Established is the result of a completed handshake, from which
// [NewSession] builds a session. Keys is secret: call [Established.Zero]
// once the session and the candidate SID are stored.
type Established struct {
	Role        Role
	Header      Header // suite and opskey of the session; Type is TypeData
	PDAID       PDAID
	LocalIdx    uint32        // our sender_idx; peers put it in receiver_idx
	PeerIdx     uint32        // the peer's sender_idx
	PeerStatic  [32]byte      // S_pda public (on the ops side) or S_ops public
	Epoch       uint32        // epoch of the SID used as PSK
	Keys        Keys          // k_up, k_down, next SID, handshake hash
	Payload1    Payload1      // as sent or received
	Payload2    Payload2      // as sent or received
	RekeyAfter  time.Duration // REKEY_AFTER_TIME in force for this session
	RejectAfter time.Duration // REJECT_AFTER_TIME in force for this session
}

// Zero overwrites the secret keys.
func (e *Established) Zero() { e.Keys.Zero() }

func prologue(hsInit8 []byte, pda PDAID) []byte {
	p := make([]byte, 0, len(prologueLabel)+8+len(pda))
	p = append(p, prologueLabel...)
	p = append(p, hsInit8[:8]...)
	return append(p, pda[:]...)
}

func toDHKey(k Keypair) noise.DHKey {
	return noise.DHKey{Private: bytes.Clone(k.Private[:]), Public: bytes.Clone(k.Public[:])}
}

func finish(cs1, cs2 *noise.CipherState, hs *noise.HandshakeState, pda PDAID, epoch uint32) (Keys, error) {
	var h [32]byte
	copy(h[:], hs.ChannelBinding())
	return DeriveKeys(cs1.UnsafeKey(), cs2.UnsafeKey(), h, pda, epoch)
}

// HSInitHash returns SHA-256 of an HS_INIT frame, which ops caches to
// answer QoS 1 duplicates (§4.1 rule 2).
func HSInitHash(frame []byte) [32]byte { return sha256.Sum256(frame) }

// InitiatorConfig holds what the PDA needs to start a handshake (§4.2).
type InitiatorConfig struct {
	Static      Keypair       // S_pda
	OpsStatic   [32]byte      // pinned S_ops public key named by OpsKey
	OpsKey      byte          // opskey of OpsStatic
	PDAID       PDAID         // own identity
	SID         SID           // PSK: pending if present, else cur
	HSCounter   uint64        // already incremented and durably stored
	Now         time.Time     // becomes pda_time_ms (informational)
	SenderIdx   uint32        // random handle for this handshake, see [NewIndex]
	Ext         Extensions    // TLVs for payload1; empty in v1
	Rand        io.Reader     // ephemeral key source; nil means crypto/rand
	RekeyAfter  time.Duration // local REKEY_AFTER_TIME; 0 means [RekeyAfterTime]
	RejectAfter time.Duration // local REJECT_AFTER_TIME; 0 means [RejectAfterTime]
}

// Initiator is the PDA side of one handshake. It accepts exactly one valid
// HS_RESP; forged or corrupted ones leave it ready for the genuine one.
type Initiator struct {
	cfg       InitiatorConfig
	hs        *noise.HandshakeState
	frame     []byte
	payload1  []byte
	p1        Payload1
	ephemeral [32]byte
	done      bool
}

// NewInitiator builds HS_INIT; [Initiator.HSInit] returns it.
func NewInitiator(c InitiatorConfig) (*Initiator, error) {
	if c.SID.Epoch == ^uint32(0) {
		return nil, ErrEpochExhausted
	}
	i := &Initiator{cfg: c}
	i.p1 = Payload1{
		Epoch:     c.SID.Epoch,
		KID:       c.SID.KID(),
		HSCounter: c.HSCounter,
		PDATimeMs: uint64(c.Now.UnixMilli()),
		Ext:       c.Ext,
	}
	p1, err := i.p1.AppendBinary(nil)
	if err != nil {
		return nil, fmt.Errorf("new initiator: %w", err)
	}
	i.payload1 = p1
	h := Header{Type: TypeHSInit, Suite: SuiteIKpsk2, OpsKey: c.OpsKey}.Bytes()
	i.frame = append(i.frame, h[:]...)
	i.frame = binary.BigEndian.AppendUint32(i.frame, c.SenderIdx)
	r := c.Rand
	if r == nil {
		r = randReader()
	}
	if _, err := io.ReadFull(r, i.ephemeral[:]); err != nil {
		return nil, fmt.Errorf("new initiator: read ephemeral: %w", err)
	}
	msg, err := i.start()
	if err != nil {
		return nil, err
	}
	i.frame = append(i.frame, msg...)
	if len(i.frame) > MaxFrameLen {
		return nil, fmt.Errorf("new initiator: %w", ErrTooLong)
	}
	return i, nil
}

// start (re)creates the Noise state and writes message 1. With the same
// ephemeral it writes the same bytes, which lets the initiator discard a
// state damaged by a forged HS_RESP.
func (i *Initiator) start() ([]byte, error) {
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:           suiteIKpsk2,
		Random:                bytes.NewReader(i.ephemeral[:]),
		Pattern:               noise.HandshakeIK,
		Initiator:             true,
		Prologue:              prologue(i.frame[:8], i.cfg.PDAID),
		PresharedKey:          i.cfg.SID.Key[:],
		PresharedKeyPlacement: 2,
		StaticKeypair:         toDHKey(i.cfg.Static),
		PeerStatic:            bytes.Clone(i.cfg.OpsStatic[:]),
	})
	if err != nil {
		return nil, fmt.Errorf("new initiator: %w", err)
	}
	msg, _, _, err := hs.WriteMessage(nil, i.payload1)
	if err != nil {
		return nil, fmt.Errorf("new initiator: write message 1: %w", ErrHandshake)
	}
	i.hs = hs
	return msg, nil
}

// HSInit returns a copy of the HS_INIT frame.
func (i *Initiator) HSInit() []byte { return bytes.Clone(i.frame) }

// SenderIdx returns the handshake's sender_idx, which HS_RESP must echo.
func (i *Initiator) SenderIdx() uint32 { return i.cfg.SenderIdx }

// ReadHSResp checks an HS_RESP against the in-flight HS_INIT and completes
// the handshake. Only the first valid HS_RESP counts; later ones return
// [ErrState].
func (i *Initiator) ReadHSResp(frame []byte) (*Established, error) {
	const op = "read hs_resp"
	if i.done {
		return nil, fmt.Errorf("%s: %w", op, ErrState)
	}
	r, err := ParseHSResp(frame)
	if err != nil {
		return nil, err
	}
	want := Header{Type: TypeHSResp, Suite: SuiteIKpsk2, OpsKey: i.cfg.OpsKey}.Bytes()
	if subtle.ConstantTimeCompare(frame[:4], want[:]) != 1 {
		return nil, fmt.Errorf("%s: %w", op, ErrHeaderMismatch)
	}
	if r.ReceiverIdx != i.cfg.SenderIdx {
		return nil, fmt.Errorf("%s: %w", op, ErrIndex)
	}
	p2b, cs1, cs2, err := i.hs.ReadMessage(nil, frame[hsRespFixed-32:])
	if err != nil || cs1 == nil {
		if _, rerr := i.start(); rerr != nil {
			return nil, rerr
		}
		return nil, fmt.Errorf("%s: %w", op, ErrHandshake)
	}
	// From here on the message is authentic: ops wrote it with the SID.
	i.done = true
	p2, err := ParsePayload2(p2b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if p2.RekeyAfterMin == 0 || p2.RejectAfterMin < p2.RekeyAfterMin {
		return nil, fmt.Errorf("%s: timers %d/%d min: %w", op, p2.RekeyAfterMin, p2.RejectAfterMin, ErrPayload)
	}
	keys, err := finish(cs1, cs2, i.hs, i.cfg.PDAID, i.cfg.SID.Epoch)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return &Established{
		Role:        RolePDA,
		Header:      Header{Type: TypeData, Suite: SuiteIKpsk2, OpsKey: i.cfg.OpsKey},
		PDAID:       i.cfg.PDAID,
		LocalIdx:    i.cfg.SenderIdx,
		PeerIdx:     r.SenderIdx,
		PeerStatic:  i.cfg.OpsStatic,
		Epoch:       i.cfg.SID.Epoch,
		Keys:        keys,
		Payload1:    i.p1,
		Payload2:    p2,
		RekeyAfter:  minDur(orDefault(i.cfg.RekeyAfter, RekeyAfterTime), time.Duration(p2.RekeyAfterMin)*time.Minute),
		RejectAfter: minDur(orDefault(i.cfg.RejectAfter, RejectAfterTime), time.Duration(p2.RejectAfterMin)*time.Minute),
	}, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func minDur(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

// ResponderConfig holds what ops needs to answer an HS_INIT (§4.1).
type ResponderConfig struct {
	Static    Keypair   // S_ops named by OpsKey
	OpsKey    byte      // opskey the frame must carry
	PDAID     PDAID     // taken from the topic, never from the frame
	SenderIdx uint32    // ops' handle for the new session, see [NewIndex]
	Rand      io.Reader // ephemeral key source; nil means crypto/rand
}

// PSKLookup finds the SID named by payload1's (epoch, kid) among the row's
// cur and pending (§4.1 rule 6). It returns false on a miss.
type PSKLookup func(epoch uint32, kid [8]byte) (SID, bool)

// Responder is the ops side of one handshake, between reading message 1 and
// writing message 2. In between, ops applies rules 4 and 5 of §4.1 to
// [Responder.PeerStatic] and [Responder.Payload1].
type Responder struct {
	cfg        ResponderConfig
	hs         *noise.HandshakeState
	hdr        Header
	peerIdx    uint32
	peerStatic [32]byte
	p1         Payload1
	done       bool
}

// ReadHSInit reads an HS_INIT frame (Noise message 1). The PSK is not needed
// yet: IKpsk2 mixes it at message 2, so ops can pick the SID from payload1.
func ReadHSInit(c ResponderConfig, frame []byte) (*Responder, error) {
	const op = "read hs_init"
	f, err := ParseHSInit(frame)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeByteEq(f.Header.OpsKey, c.OpsKey) != 1 {
		return nil, fmt.Errorf("%s: %w", op, ErrOpsKey)
	}
	rnd := c.Rand
	if rnd == nil {
		rnd = randReader()
	}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:           suiteIKpsk2,
		Random:                rnd,
		Pattern:               noise.HandshakeIK,
		Initiator:             false,
		Prologue:              prologue(frame[:8], c.PDAID),
		PresharedKeyPlacement: 2,
		StaticKeypair:         toDHKey(c.Static),
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	p1b, _, _, err := hs.ReadMessage(nil, frame[8:])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, ErrHandshake)
	}
	p1, err := ParsePayload1(p1b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	r := &Responder{cfg: c, hs: hs, hdr: f.Header, peerIdx: f.SenderIdx, p1: p1}
	copy(r.peerStatic[:], hs.PeerStatic())
	return r, nil
}

// PeerStatic returns the initiator's static public key (S_pda) from message
// 1. Ops compares it with the enrolled key using crypto/subtle.
func (r *Responder) PeerStatic() [32]byte { return r.peerStatic }

// Payload1 returns the decrypted payload1.
func (r *Responder) Payload1() Payload1 { return r.p1 }

// PeerIdx returns the initiator's sender_idx.
func (r *Responder) PeerIdx() uint32 { return r.peerIdx }

// Respond looks the PSK up by payload1's (epoch, kid), writes HS_RESP and
// derives the session keys. Zero timers in p2 are sent as the defaults
// ([RekeyAfterTime], [RejectAfterTime]). It can be called once.
func (r *Responder) Respond(lookup PSKLookup, p2 Payload2) ([]byte, *Established, error) {
	const op = "write hs_resp"
	if r.done {
		return nil, nil, fmt.Errorf("%s: %w", op, ErrState)
	}
	r.done = true
	sid, ok := lookup(r.p1.Epoch, r.p1.KID)
	if !ok {
		return nil, nil, fmt.Errorf("%s: %w", op, ErrUnknownSID)
	}
	defer sid.Zero()
	kid := sid.KID()
	if sid.Epoch != r.p1.Epoch || subtle.ConstantTimeCompare(kid[:], r.p1.KID[:]) != 1 {
		return nil, nil, fmt.Errorf("%s: %w", op, ErrUnknownSID)
	}
	if p2.RekeyAfterMin == 0 {
		p2.RekeyAfterMin = uint16(RekeyAfterTime / time.Minute)
	}
	if p2.RejectAfterMin == 0 {
		p2.RejectAfterMin = uint16(RejectAfterTime / time.Minute)
	}
	if p2.RejectAfterMin < p2.RekeyAfterMin {
		return nil, nil, fmt.Errorf("%s: timers %d/%d min: %w", op, p2.RekeyAfterMin, p2.RejectAfterMin, ErrPayload)
	}
	p2b, err := p2.AppendBinary(nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := r.hs.SetPresharedKey(sid.Key[:]); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", op, err)
	}
	h := Header{Type: TypeHSResp, Suite: r.hdr.Suite, OpsKey: r.hdr.OpsKey}.Bytes()
	frame := append([]byte{}, h[:]...)
	frame = binary.BigEndian.AppendUint32(frame, r.peerIdx)
	frame = binary.BigEndian.AppendUint32(frame, r.cfg.SenderIdx)
	frame, cs1, cs2, err := r.hs.WriteMessage(frame, p2b)
	if err != nil || cs1 == nil {
		return nil, nil, fmt.Errorf("%s: %w", op, ErrHandshake)
	}
	if len(frame) > MaxFrameLen {
		return nil, nil, fmt.Errorf("%s: %w", op, ErrTooLong)
	}
	keys, err := finish(cs1, cs2, r.hs, r.cfg.PDAID, sid.Epoch)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", op, err)
	}
	return frame, &Established{
		Role:        RoleOps,
		Header:      Header{Type: TypeData, Suite: r.hdr.Suite, OpsKey: r.hdr.OpsKey},
		PDAID:       r.cfg.PDAID,
		LocalIdx:    r.cfg.SenderIdx,
		PeerIdx:     r.peerIdx,
		PeerStatic:  r.peerStatic,
		Epoch:       sid.Epoch,
		Keys:        keys,
		Payload1:    r.p1,
		Payload2:    p2,
		RekeyAfter:  time.Duration(p2.RekeyAfterMin) * time.Minute,
		RejectAfter: time.Duration(p2.RejectAfterMin) * time.Minute,
	}, nil
}

// Close overwrites the initiator's copies of S_pda's private key, the SID
// and the ephemeral private key. Call it once the handshake is over.
func (i *Initiator) Close() {
	i.cfg.Static.Zero()
	i.cfg.SID.Zero()
	i.ephemeral = [32]byte{}
	i.hs, i.done = nil, true
}
