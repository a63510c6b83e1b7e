package noisehs

import (
	"crypto/cipher"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// ErrReplay is returned for a DATA counter already accepted or older than the
// replay window.
var ErrReplay = errors.New("replayed or too old counter")

// ErrCounterLimit is returned when a counter reaches [RejectAfterMessages].
var ErrCounterLimit = errors.New("counter limit reached")

// ErrExpired is returned once a session is older than its REJECT_AFTER_TIME.
var ErrExpired = errors.New("session expired")

// ErrWrongPDA is returned when a record arrives on another PDA's topic.
var ErrWrongPDA = errors.New("record for another pda")

// ErrNotConfirmed is returned when ops would send on a session before the
// PDA's first valid record confirmed its keys (§4.1 rule 10).
var ErrNotConfirmed = errors.New("session not confirmed")

// ErrClosed is returned by a session after [Session.Close].
var ErrClosed = errors.New("session closed")

// Timers and limits of §8.
const (
	RekeyAfterTime      = 60 * time.Minute
	RejectAfterTime     = 75 * time.Minute
	RekeyAfterMessages  = uint64(1) << 32
	RejectAfterMessages = uint64(1) << 40
)

// Session is one side of an established SECLINK/1 session: keys, indices,
// send counter and replay window. Its methods are safe for concurrent use.
// Keys and counters live in RAM only (§4.2).
type Session struct {
	mu          sync.Mutex
	role        Role
	hdr         Header
	pda         PDAID
	localIdx    uint32
	peerIdx     uint32
	epoch       uint32
	send, recv  cipher.AEAD
	sendCtr     uint64
	window      replayWindow
	confirmed   bool // a valid record was received
	closed      bool
	created     time.Time
	now         func() time.Time
	rekeyAfter  time.Duration
	rejectAfter time.Duration
	pad         bool // pad to size buckets (§6 SHOULD)
}

// NewSession builds a session from a completed handshake. now is the clock
// for the timers; pass time.Now, whose monotonic reading §8 wants, or a fake.
func NewSession(e *Established, now func() time.Time) (*Session, error) {
	up, err := chacha20poly1305.New(e.Keys.Up[:])
	if err != nil {
		return nil, fmt.Errorf("new session: %w", err)
	}
	down, err := chacha20poly1305.New(e.Keys.Down[:])
	if err != nil {
		return nil, fmt.Errorf("new session: %w", err)
	}
	s := &Session{
		role:        e.Role,
		hdr:         Header{Type: TypeData, Suite: e.Header.Suite, OpsKey: e.Header.OpsKey},
		pda:         e.PDAID,
		localIdx:    e.LocalIdx,
		peerIdx:     e.PeerIdx,
		epoch:       e.Epoch,
		created:     now(),
		now:         now,
		rekeyAfter:  orDefault(e.RekeyAfter, RekeyAfterTime),
		rejectAfter: orDefault(e.RejectAfter, RejectAfterTime),
		pad:         true,
	}
	switch e.Role {
	case RolePDA:
		s.send, s.recv = up, down
	case RoleOps:
		s.send, s.recv = down, up
	default:
		return nil, fmt.Errorf("new session: role %d: %w", e.Role, ErrState)
	}
	return s, nil
}

// Role returns which end of the link s is.
func (s *Session) Role() Role { return s.role }

// LocalIdx returns our sender_idx: incoming records carry it as receiver_idx.
func (s *Session) LocalIdx() uint32 { return s.localIdx }

// PeerIdx returns the peer's sender_idx, put in outgoing records.
func (s *Session) PeerIdx() uint32 { return s.peerIdx }

// PDAID returns the PDA the session belongs to.
func (s *Session) PDAID() PDAID { return s.pda }

// Epoch returns the epoch of the SID the session was made with.
func (s *Session) Epoch() uint32 { return s.epoch }

// Created returns when the session was built, by its clock.
func (s *Session) Created() time.Time { return s.created }

// Confirmed reports whether a valid record has been received.
func (s *Session) Confirmed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.confirmed
}

// NeedsRekey reports whether the PDA should start a new handshake:
// REKEY_AFTER_TIME has passed or the send counter reached
// [RekeyAfterMessages].
func (s *Session) NeedsRekey() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now().Sub(s.created) >= s.rekeyAfter || s.sendCtr >= RekeyAfterMessages
}

// Expired reports whether REJECT_AFTER_TIME has passed; the session then
// neither seals nor opens.
func (s *Session) Expired() bool {
	return s.now().Sub(s.created) >= s.rejectAfter
}

// SetPadding turns padding to size buckets ([PadLen]) on or off; it is on by
// default.
func (s *Session) SetPadding(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pad = on
}

// Seal seals r as the next DATA frame for topic, with the next send counter.
func (s *Session) Seal(topic string, r Record) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return nil, fmt.Errorf("seal: %w", ErrClosed)
	case s.now().Sub(s.created) >= s.rejectAfter:
		return nil, fmt.Errorf("seal: %w", ErrExpired)
	case s.sendCtr >= RejectAfterMessages:
		return nil, fmt.Errorf("seal: %w", ErrCounterLimit)
	case s.role == RoleOps && !s.confirmed:
		return nil, fmt.Errorf("seal: %w", ErrNotConfirmed)
	}
	pt, err := appendRecord(nil, r, s.pad)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	f := sealData(make([]byte, 0, dataFixed+len(pt)+tagLen), s.send, s.hdr, s.peerIdx, s.sendCtr, topic, s.pda, pt)
	clear(pt)
	s.sendCtr++
	return f, nil
}

// Open authenticates a DATA frame received on topic, which belongs to pda,
// and returns its record. It follows §6's order: index and owner, reject
// limits, window pre-check, AEAD, and only then marks the counter. Any error
// leaves the session unchanged except an authentic but malformed plaintext,
// whose counter stays marked.
func (s *Session) Open(topic string, pda PDAID, frame []byte) (Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := ParseData(frame)
	if err != nil {
		return Record{}, err
	}
	want := s.hdr.Bytes()
	switch {
	case s.closed:
		return Record{}, fmt.Errorf("open: %w", ErrClosed)
	case subtle.ConstantTimeCompare(frame[:4], want[:]) != 1:
		return Record{}, fmt.Errorf("open: %w", ErrHeaderMismatch)
	case d.ReceiverIdx != s.localIdx:
		return Record{}, fmt.Errorf("open: %w", ErrIndex)
	case subtle.ConstantTimeCompare(pda[:], s.pda[:]) != 1:
		return Record{}, fmt.Errorf("open: %w", ErrWrongPDA)
	case s.now().Sub(s.created) >= s.rejectAfter:
		return Record{}, fmt.Errorf("open: %w", ErrExpired)
	case d.Counter >= RejectAfterMessages:
		return Record{}, fmt.Errorf("open: %w", ErrCounterLimit)
	case !s.window.check(d.Counter):
		return Record{}, fmt.Errorf("open: %w", ErrReplay)
	}
	pt, err := openData(s.recv, frame, d, topic, pda)
	if err != nil {
		return Record{}, fmt.Errorf("open: %w", err)
	}
	s.window.mark(d.Counter)
	s.confirmed = true
	r, err := ParseRecord(pt)
	if err != nil {
		return Record{}, fmt.Errorf("open: %w", err)
	}
	return r, nil
}

// Close ends the session; later calls to Seal and Open fail. The AEAD keys
// are dropped for the garbage collector: x/crypto keeps its own copy, which
// cannot be overwritten from outside.
func (s *Session) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.send, s.recv = nil, nil
}
