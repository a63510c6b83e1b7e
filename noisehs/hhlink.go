package noisehs

import (
	"bytes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/flynn/noise"
	"golang.org/x/crypto/chacha20poly1305"
)

// The handheld link (security.md §12): Noise_NNpsk0_25519_ChaChaPoly_SHA256 with psk = k_bind
// and prologue "SECLINK-HH/1" ‖ hh_id ‖ pda_id ‖ ticket_id. The PDA initiates with
// 0x01 ‖ 0x11 ‖ sealed ticket ‖ message 1 on the handheld's down/hs topic; the handheld answers
// 0x01 ‖ 0x12 ‖ message 2 on up/hs. Records are §6 DATA frames of type 0x13 under the link
// keys, with AD = frame[0:16] ‖ topic ‖ hh_id.

// Handheld link frame types (byte 1).
const (
	TypeHHHello FrameType = 0x11 // PDA → handheld: sealed ticket ‖ NNpsk0 message 1
	TypeHHReply FrameType = 0x12 // handheld → PDA: NNpsk0 message 2
	TypeHHData  FrameType = 0x13 // sealed link record, both directions
)

const (
	hhPrologueLabel = "SECLINK-HH/1"
	labelHHUp       = "seclink/hh up"   // handheld → PDA
	labelHHDown     = "seclink/hh down" // PDA → handheld
	labelHHIdx      = "seclink/hh idx"
	labelHHPw       = "seclink/hh listener-pw|"
	hhMsg1Len       = 32 + tagLen // e ‖ encrypted empty payload
	hhMsg2Len       = 32 + tagLen
	// HHHelloLen is the size of a hello frame.
	HHHelloLen = 2 + TicketLen + hhMsg1Len
	// HHReplyLen is the size of a reply frame.
	HHReplyLen = 2 + hhMsg2Len
)

// HHListenerPassword returns the handheld's password on the PDA's local listener, derived from
// K_hh so that the PDA (which stores only its verifier) never holds K_hh:
// base64url(HKDF-Expand(K_hh, "seclink/hh listener-pw|" ‖ hh_id, 24)).
func HHListenerPassword(kHH [32]byte, hh HHID) string {
	return base64.RawURLEncoding.EncodeToString(expand(kHH[:], labelHHPw+string(hh[:]), 24))
}

func hhPrologue(hh HHID, pda PDAID, ticketID [16]byte) []byte {
	p := make([]byte, 0, len(hhPrologueLabel)+8+16+16)
	p = append(p, hhPrologueLabel...)
	p = append(p, hh[:]...)
	p = append(p, pda[:]...)
	return append(p, ticketID[:]...)
}

// HHInitiator is the PDA side of one link handshake. It accepts exactly one valid reply.
type HHInitiator struct {
	hh     HHID
	pda    PDAID
	id     [16]byte
	kbind  [32]byte
	eph    [32]byte
	hs     *noise.HandshakeState
	frame  []byte
	done   bool
	expiry time.Time
}

// NewHHInitiator builds the hello frame for a ticket the PDA holds: its sealed bytes, k_bind
// from the TICKET record, and its not_after (the link expires with the ticket). rnd gives the
// ephemeral key; nil means crypto/rand.
func NewHHInitiator(pda PDAID, sealed []byte, kBind [32]byte, notAfter time.Time, rnd io.Reader) (*HHInitiator, error) {
	_, hh, id, err := TicketHeader(sealed)
	if err != nil {
		return nil, fmt.Errorf("new link initiator: %w", err)
	}
	if rnd == nil {
		rnd = randReader()
	}
	i := &HHInitiator{hh: hh, pda: pda, id: id, kbind: kBind, expiry: notAfter}
	if _, err := io.ReadFull(rnd, i.eph[:]); err != nil {
		return nil, fmt.Errorf("new link initiator: %w", err)
	}
	msg, err := i.start()
	if err != nil {
		return nil, err
	}
	i.frame = append([]byte{Version, byte(TypeHHHello)}, sealed...)
	i.frame = append(i.frame, msg...)
	return i, nil
}

// start (re)creates the Noise state with the same ephemeral, so a forged reply that damaged
// the state is forgotten.
func (i *HHInitiator) start() ([]byte, error) {
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite: suiteIKpsk2, Random: bytes.NewReader(i.eph[:]), Pattern: noise.HandshakeNN,
		Initiator: true, Prologue: hhPrologue(i.hh, i.pda, i.id),
		PresharedKey: bytes.Clone(i.kbind[:]), PresharedKeyPlacement: 0,
	})
	if err != nil {
		return nil, fmt.Errorf("new link initiator: %w", err)
	}
	msg, _, _, err := hs.WriteMessage(nil, nil)
	if err != nil {
		return nil, fmt.Errorf("new link initiator: %w", ErrHandshake)
	}
	i.hs = hs
	return msg, nil
}

// Hello returns a copy of the hello frame.
func (i *HHInitiator) Hello() []byte { return bytes.Clone(i.frame) }

// HH returns the handheld the hello is for.
func (i *HHInitiator) HH() HHID { return i.hh }

// ReadReply reads the handheld's reply and returns the PDA's end of the link. now is the
// link's clock.
func (i *HHInitiator) ReadReply(frame []byte, now func() time.Time) (*HHLink, error) {
	const op = "read link reply"
	if i.done {
		return nil, fmt.Errorf("%s: %w", op, ErrState)
	}
	if len(frame) != HHReplyLen || frame[0] != Version || frame[1] != byte(TypeHHReply) {
		return nil, fmt.Errorf("%s: %w", op, ErrFrameType)
	}
	_, cs1, cs2, err := i.hs.ReadMessage(nil, frame[2:])
	if err != nil || cs1 == nil {
		if _, rerr := i.start(); rerr != nil {
			return nil, rerr
		}
		return nil, fmt.Errorf("%s: %w", op, ErrHandshake)
	}
	i.done = true
	return newHHLink(true, i.hh, cs1, cs2, i.hs, i.expiry, 0, now)
}

// Close overwrites the initiator's secrets.
func (i *HHInitiator) Close() {
	i.kbind, i.eph = [32]byte{}, [32]byte{}
	i.hs, i.done = nil, true
}

// HHResponderConfig is what the handheld needs to answer a hello.
type HHResponderConfig struct {
	HH    HHID              // own hh_id
	Keys  map[byte][32]byte // K_hh by key_ver (secret)
	Guard HHGuard           // stored min_ticket_seq, clock floor and lockout
	Now   time.Time         // RTC, for the ticket's window
	Clock func() time.Time
	Rand  io.Reader // ephemeral key source; nil means crypto/rand
}

// AcceptHHHello is the handheld's side of the link handshake: it opens and checks the ticket
// (§12: known key_ver, opens under K_hh, own hh_id, seq, window, rollback, max_ops) and reads
// message 1 with k_bind. On success it returns the reply frame, the handheld's end of the link
// (unconfirmed until the PDA's first record opens) and the ticket, whose min_ticket_seq the
// caller stores ([HHGuard.Accepted]). Any failure changes nothing; the caller counts it
// ([HHGuard.Failed]) with the ticket's seq when the ticket opened.
func AcceptHHHello(c HHResponderConfig, frame []byte) (reply []byte, link *HHLink, t Ticket, err error) {
	const op = "accept link hello"
	if err := c.Guard.Admit(c.Now); err != nil {
		return nil, nil, Ticket{}, err
	}
	if len(frame) != HHHelloLen || frame[0] != Version || frame[1] != byte(TypeHHHello) {
		return nil, nil, Ticket{}, fmt.Errorf("%s: %w", op, ErrFrameType)
	}
	t, err = OpenTicket(c.Keys, frame[2:2+TicketLen])
	if err != nil {
		return nil, nil, Ticket{}, fmt.Errorf("%s: %w", op, err)
	}
	if err := c.Guard.Check(t, c.HH, c.Now); err != nil {
		return nil, nil, t, fmt.Errorf("%s: %w", op, err)
	}
	rnd := c.Rand
	if rnd == nil {
		rnd = randReader()
	}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite: suiteIKpsk2, Random: rnd, Pattern: noise.HandshakeNN, Initiator: false,
		Prologue:     hhPrologue(c.HH, t.PDA, t.ID),
		PresharedKey: bytes.Clone(t.KBind[:]), PresharedKeyPlacement: 0,
	})
	if err != nil {
		return nil, nil, t, fmt.Errorf("%s: %w", op, err)
	}
	if _, _, _, err := hs.ReadMessage(nil, frame[2+TicketLen:]); err != nil {
		return nil, nil, t, fmt.Errorf("%s: %w", op, ErrHandshake)
	}
	reply = []byte{Version, byte(TypeHHReply)}
	reply, cs1, cs2, err := hs.WriteMessage(reply, nil)
	if err != nil || cs1 == nil {
		return nil, nil, t, fmt.Errorf("%s: %w", op, ErrHandshake)
	}
	clock := c.Clock
	if clock == nil {
		clock = time.Now
	}
	// The link dies with the ticket: at not_after + skew by the handheld's clock.
	expiry := clock().Add(time.UnixMilli(int64(t.NotAfter)).Sub(c.Now) + TicketSkew)
	link, err = newHHLink(false, c.HH, cs1, cs2, hs, expiry, t.MaxOps, clock)
	if err != nil {
		return nil, nil, t, err
	}
	link.ops = c.Guard.usedOps(t.ID)
	return reply, link, t, nil
}

// HHLink is one end of an established handheld link: keys, link index, counters, replay
// window. Its methods are safe for concurrent use.
type HHLink struct {
	mu         sync.Mutex
	pda        bool // the PDA's end (sends with k_down)
	hh         HHID
	idx        uint32
	send, recv cipher.AEAD
	sendCtr    uint64
	window     replayWindow
	confirmed  bool
	closed     bool
	expiry     time.Time
	now        func() time.Time
	maxOps     uint32 // handheld end: application records it may send; 0 = no limit (PDA end)
	ops        uint32
}

func newHHLink(pda bool, hh HHID, cs1, cs2 *noise.CipherState, hs *noise.HandshakeState, expiry time.Time, maxOps uint32, now func() time.Time) (*HHLink, error) {
	k1, k2 := cs1.UnsafeKey(), cs2.UnsafeKey()
	ikm := append(k1[:], k2[:]...)
	prk, err := hkdf.Extract(sha256.New, ikm, hs.ChannelBinding())
	clear(ikm)
	if err != nil {
		return nil, fmt.Errorf("link keys: %w", err)
	}
	defer clear(prk)
	up, down := expand(prk, labelHHUp, 32), expand(prk, labelHHDown, 32)
	defer clear(up)
	defer clear(down)
	aUp, err := chacha20poly1305.New(up)
	if err != nil {
		return nil, err
	}
	aDown, err := chacha20poly1305.New(down)
	if err != nil {
		return nil, err
	}
	l := &HHLink{pda: pda, hh: hh, idx: binary.BigEndian.Uint32(expand(prk, labelHHIdx, 4)), expiry: expiry, now: now, maxOps: maxOps}
	if pda {
		l.send, l.recv = aDown, aUp
	} else {
		l.send, l.recv = aUp, aDown
	}
	return l, nil
}

var hhDataHeader = [4]byte{Version, byte(TypeHHData), byte(SuiteIKpsk2), 0}

// Confirmed reports whether a valid record from the peer has been opened.
func (l *HHLink) Confirmed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.confirmed
}

// Expired reports whether the link's ticket has run out.
func (l *HHLink) Expired() bool {
	return !l.expiry.IsZero() && !l.now().Before(l.expiry)
}

// Usable reports whether the link can still seal: not closed, not expired, operations left.
func (l *HHLink) Usable() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.closed && !l.Expired() && (l.maxOps == 0 || l.ops < l.maxOps)
}

// Ops returns the application records sealed under the link's ticket so far (handheld end).
func (l *HHLink) Ops() uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ops
}

// Seal seals r as the next link record for topic. On the handheld's end every application
// record counts against the ticket's max_ops.
func (l *HHLink) Seal(topic string, r Record) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		return nil, fmt.Errorf("seal link record: %w", ErrClosed)
	case l.Expired():
		return nil, fmt.Errorf("seal link record: %w", ErrExpired)
	case l.sendCtr >= RejectAfterMessages:
		return nil, fmt.Errorf("seal link record: %w", ErrCounterLimit)
	case l.maxOps != 0 && r.Kind >= KindApp && l.ops >= l.maxOps:
		return nil, fmt.Errorf("seal link record: %w", ErrTicketOps)
	}
	pt, err := appendRecord(nil, r, true)
	if err != nil {
		return nil, fmt.Errorf("seal link record: %w", err)
	}
	defer clear(pt)
	f := make([]byte, 0, dataFixed+len(pt)+tagLen)
	f = append(f, hhDataHeader[:]...)
	f = binary.BigEndian.AppendUint32(f, l.idx)
	f = binary.BigEndian.AppendUint64(f, l.sendCtr)
	nonce := dataNonce(l.sendCtr)
	f = l.send.Seal(f, nonce[:], pt, l.ad(f, topic))
	l.sendCtr++
	if r.Kind >= KindApp {
		l.ops++
	}
	return f, nil
}

func (l *HHLink) ad(frame []byte, topic string) []byte {
	ad := make([]byte, 0, 16+len(topic)+len(l.hh))
	ad = append(ad, frame[:16]...)
	ad = append(ad, topic...)
	return append(ad, l.hh[:]...)
}

// Open authenticates a link record received on topic, in §6's order: header and index, expiry,
// window pre-check, AEAD, then the counter is marked.
func (l *HHLink) Open(topic string, frame []byte) (Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(frame) < DataMinLen || len(frame) > MaxFrameLen {
		return Record{}, fmt.Errorf("open link record: %w", ErrTruncated)
	}
	ctr := binary.BigEndian.Uint64(frame[8:16])
	switch {
	case l.closed:
		return Record{}, fmt.Errorf("open link record: %w", ErrClosed)
	case subtle.ConstantTimeCompare(frame[:4], hhDataHeader[:]) != 1:
		return Record{}, fmt.Errorf("open link record: %w", ErrHeaderMismatch)
	case binary.BigEndian.Uint32(frame[4:8]) != l.idx:
		return Record{}, fmt.Errorf("open link record: %w", ErrIndex)
	case l.Expired():
		return Record{}, fmt.Errorf("open link record: %w", ErrExpired)
	case ctr >= RejectAfterMessages:
		return Record{}, fmt.Errorf("open link record: %w", ErrCounterLimit)
	case !l.window.check(ctr):
		return Record{}, fmt.Errorf("open link record: %w", ErrReplay)
	}
	nonce := dataNonce(ctr)
	pt, err := l.recv.Open(nil, nonce[:], frame[16:], l.ad(frame, topic))
	if err != nil {
		return Record{}, fmt.Errorf("open link record: %w", ErrAuth)
	}
	l.window.mark(ctr)
	l.confirmed = true
	r, err := ParseRecord(pt)
	if err != nil {
		return Record{}, fmt.Errorf("open link record: %w", err)
	}
	return r, nil
}

// Close ends the link.
func (l *HHLink) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.send, l.recv = nil, nil
}
