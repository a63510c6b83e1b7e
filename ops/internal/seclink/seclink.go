// Package seclink is ops' end of SECLINK/1 (security.md): it answers the PDAs' handshakes
// (§4.1 rules 1–10, enrolment §4.3), keeps the sessions in RAM keyed by ops' sender index,
// opens and seals DATA records, commits rotated SIDs (§7), raises the clone alarm and applies
// the rate limits and lockouts of §9, and revokes PDAs (§10). It gives the broker the
// verifiers of the passwords a PDA may use (§11).
//
// It does no MQTT itself: ops' ingest hands it frames from topic.PDAHandshakeUp and
// topic.PDAUp and publishes what it returns on topic.PDAHandshakeDown and topic.PDADown. The
// rotation state lives in the store's PDA rows ([store.PDARow]); every change is persisted
// before the frame that depends on it is returned. Processing is serialised per PDA.
package seclink

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/meterlink/meterlink/noisehs"
	"github.com/meterlink/meterlink/ops/internal/store"
	"github.com/meterlink/meterlink/topic"
	"github.com/meterlink/meterlink/wire"
)

// Drop reasons. Every failure looks the same outside (nothing is sent); the reason goes to a
// metric label only.
var (
	ErrUnknownPDA = errors.New("unknown pda")
	ErrRevoked    = errors.New("pda revoked or locked")
	ErrRateLimit  = errors.New("handshake rate limited")
	ErrLockedOut  = errors.New("handshakes locked out after failures")
	ErrSID0       = errors.New("sid0 expired")
	ErrSlotsFull  = errors.New("enrolment slots full")
	ErrNoSession  = errors.New("no session for receiver index")
)

// Limits of security.md §8 and §9.
const (
	PrevSessionRxGrace = 5 * time.Minute     // an older session stays receive-only this long
	SID0Expires        = 14 * 24 * time.Hour // an unused SID₀ expires
	MsgIDDedup         = 7 * 24 * time.Hour  // how long msg_ids are remembered
	maxSlots           = 8                   // enrolment slots per row (§4.3)
	maxSessionsPerPDA  = 4                   // older unconfirmed sessions are dropped beyond this
)

// Store is what the link needs from ops' store.
type Store interface {
	PDARow(id wire.PDAID) (store.PDARow, error)
	UpdatePDARow(id wire.PDAID, fn func(*store.PDARow) error) (store.PDARow, error)
	SetPDAState(id wire.PDAID, state store.PDAState) (store.PDA, error)
}

// Config configures a [Link]. Zero limits take the values of security.md §9.
type Config struct {
	Store  Store
	Key    noisehs.Keypair // S_ops (secret)
	OpsKey byte            // the opskey id that names Key in frames
	Now    func() time.Time
	Rand   io.Reader // nil means crypto/rand
	Log    *slog.Logger

	HSBurst     int           // HS_INIT token bucket per PDA: burst; default 5
	HSRefill    time.Duration // one token per this; default 1 min
	FailLimit   int           // consecutive rule 3–6 failures before a lockout; default 10
	FailLock    time.Duration // first lockout, doubling; default 15 min
	FailLockMax time.Duration // longest lockout; default 24 h
	RekeyAfter  time.Duration // REKEY_AFTER_TIME offered to PDAs, whole minutes; default 60 min
	RejectAfter time.Duration // REJECT_AFTER_TIME, whole minutes; default 75 min
}

// Link is ops' SECLINK/1 endpoint for every PDA. It is safe for concurrent use.
type Link struct {
	cfg        Config
	log        *slog.Logger
	disconnect func(pda string) // the broker's force-disconnect, set by [Link.SetDisconnect]

	mu       sync.Mutex
	sessions map[uint32]*session // by ops' sender_idx
	locks    map[string]*sync.Mutex
	limits   map[string]*limit
}

// session is one live session and what its first valid record commits.
type session struct {
	s         *noisehs.Session
	pda       string
	candidate noisehs.SID // the SID its handshake yielded
	enrol     *[32]byte   // the slot static, for a pre-enrolment session
	retired   time.Time   // when a newer session was confirmed; receive-only from then on
}

// limit is a PDA's HS_INIT token bucket and failure lockout (§9).
type limit struct {
	tokens   float64
	at       time.Time
	fails    int
	lockFor  time.Duration
	lockedTo time.Time
}

// New returns a link.
func New(cfg Config) *Link {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if cfg.HSBurst <= 0 {
		cfg.HSBurst = 5
	}
	if cfg.FailLimit <= 0 {
		cfg.FailLimit = 10
	}
	def(&cfg.HSRefill, time.Minute)
	def(&cfg.FailLock, 15*time.Minute)
	def(&cfg.FailLockMax, 24*time.Hour)
	def(&cfg.RekeyAfter, noisehs.RekeyAfterTime)
	def(&cfg.RejectAfter, noisehs.RejectAfterTime)
	return &Link{cfg: cfg, log: cfg.Log.With("component", "seclink"), disconnect: func(string) {},
		sessions: map[uint32]*session{}, locks: map[string]*sync.Mutex{}, limits: map[string]*limit{}}
}

// SetDisconnect sets the function that force-disconnects a PDA's MQTT client (the embedded
// broker's Disconnect, or an external cluster's admin API). Call it before frames arrive.
func (l *Link) SetDisconnect(f func(pda string)) { l.disconnect = f }

// OpsPublic returns the opskey id and S_ops public key that PDAs pin.
func (l *Link) OpsPublic() (byte, [32]byte) { return l.cfg.OpsKey, l.cfg.Key.Public }

// lock serialises processing per PDA (§4.1).
func (l *Link) lock(pda string) func() {
	l.mu.Lock()
	m, ok := l.locks[pda]
	if !ok {
		m = &sync.Mutex{}
		l.locks[pda] = m
	}
	l.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// Verifiers returns SHA-256 of every broker password the PDA may use now (§11): its current
// and pending SIDs' once enrolled, SID₀'s and the enrolment candidates' before. ok is false
// for an unknown, locked or revoked PDA.
func (l *Link) Verifiers(pda string) (cur [32]byte, more [][32]byte, ok bool) {
	r, err := l.cfg.Store.PDARow(wire.PDAID(pda))
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			l.log.Error("pda lookup failed", "pda", pda, "err", err)
		}
		return cur, nil, false
	}
	if r.State != store.PDAEnrolled || r.Cur.IsZero() {
		return cur, nil, false
	}
	id := noisehs.PDAIDFromText(pda)
	v := func(s store.StoredSID) [32]byte { return sha256.Sum256([]byte(toSID(s).BrokerPassword(id))) }
	cur = v(r.Cur)
	if !r.Pending.IsZero() {
		more = append(more, v(r.Pending))
	}
	for _, s := range r.Slots {
		if !s.Candidate.IsZero() {
			more = append(more, v(s.Candidate))
		}
	}
	return cur, more, true
}

// Revoke revokes a PDA in one store transaction (SIDs, pending SID and slots deleted), drops
// its live sessions and force-disconnects its MQTT client (§10).
func (l *Link) Revoke(pda wire.PDAID) (store.PDA, error) {
	unlock := l.lock(string(pda))
	p, err := l.cfg.Store.SetPDAState(pda, store.PDARevoked)
	if err == nil {
		l.dropSessions(string(pda))
	}
	unlock()
	if err != nil {
		return p, err
	}
	l.disconnect(string(pda))
	l.log.Info("pda revoked: sessions dropped, broker client disconnected", "pda", pda)
	return p, nil
}

func (l *Link) dropSessions(pda string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for idx, s := range l.sessions {
		if s.pda == pda {
			s.s.Close()
			delete(l.sessions, idx)
		}
	}
}

// Sessions returns the number of live sessions of a PDA.
func (l *Link) Sessions(pda string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.sessions {
		if s.pda == pda {
			n++
		}
	}
	return n
}

func toSID(s store.StoredSID) noisehs.SID {
	var out noisehs.SID
	if len(s.Key) == len(out.Key) {
		out.Epoch = s.Epoch
		copy(out.Key[:], s.Key)
	}
	return out
}

func fromSID(s noisehs.SID) store.StoredSID {
	if s.IsZero() {
		return store.StoredSID{}
	}
	return store.StoredSID{Epoch: s.Epoch, Key: bytes.Clone(s.Key[:])}
}

func to32(b []byte) [32]byte {
	var out [32]byte
	copy(out[:], b)
	return out
}

// isStatic reports in constant time whether b is the 32-byte key k.
func isStatic(b []byte, k [32]byte) bool {
	return len(b) == 32 && subtle.ConstantTimeCompare(b, k[:]) == 1
}

// Open authenticates a DATA frame from a PDA's uplink topic t and returns its record and the
// session it came in. The first valid record of a session confirms it: the SID its handshake
// yielded is committed (§7.1), or the PDA is enrolled (§4.3), and older sessions become
// receive-only for [PrevSessionRxGrace].
func (l *Link) Open(pda, t string, frame []byte) (noisehs.Record, error) {
	d, err := noisehs.ParseData(frame)
	if err != nil {
		return noisehs.Record{}, err
	}
	l.mu.Lock()
	l.sweep()
	s, ok := l.sessions[d.ReceiverIdx]
	l.mu.Unlock()
	if !ok || s.pda != pda {
		return noisehs.Record{}, ErrNoSession
	}
	unlock := l.lock(pda)
	defer unlock()
	first := !s.s.Confirmed()
	rec, err := s.s.Open(t, noisehs.PDAIDFromText(pda), frame)
	if err != nil {
		return noisehs.Record{}, err
	}
	if first {
		if err := l.confirmed(s); err != nil {
			return noisehs.Record{}, err
		}
	}
	return rec, nil
}

// confirmed applies the first valid record of s: commit or enrolment, persisted, and
// retirement of the PDA's older sessions.
func (l *Link) confirmed(s *session) error {
	now := l.cfg.Now()
	_, err := l.cfg.Store.UpdatePDARow(wire.PDAID(s.pda), func(r *store.PDARow) error {
		if r.State != store.PDAEnrolled {
			return ErrRevoked
		}
		if s.enrol != nil {
			if len(r.Static) > 0 {
				return nil // enrolled meanwhile by a newer session
			}
			for _, slot := range r.Slots {
				if isStatic(slot.Static, *s.enrol) && toSID(slot.Candidate).Equal(s.candidate) {
					r.Static, r.Cur, r.Pending, r.LastHS = bytes.Clone(slot.Static), slot.Candidate, store.StoredSID{}, slot.LastHS
					r.CachedHash, r.CachedResp, r.CachedAtMS = slot.CachedHash, slot.CachedResp, slot.CachedAtMS
					r.Slots = nil
					r.LastRotationMS = now.UnixMilli()
					l.log.Info("pda enrolled: S_pda bound, SID₀ replaced", "pda", s.pda, "epoch", r.Cur.Epoch)
					return nil
				}
			}
			return nil
		}
		before := toSID(r.Cur)
		next := opsRow(*r).ConfirmedBy(s.candidate)
		if !next.Cur.Equal(before) {
			r.Cur, r.Pending = fromSID(next.Cur), fromSID(next.Pending)
			r.LastRotationMS = now.UnixMilli()
		}
		return nil
	})
	if errors.Is(err, ErrRevoked) {
		l.dropSessions(s.pda)
		return err
	}
	if err != nil {
		return fmt.Errorf("confirm session of pda %s: %w", s.pda, err)
	}
	l.mu.Lock()
	for _, o := range l.sessions {
		if o != s && o.pda == s.pda && o.retired.IsZero() && o.s.Created().Before(s.s.Created()) {
			o.retired = now
		}
	}
	l.mu.Unlock()
	return nil
}

// sweep drops expired sessions and retired ones past their grace. l.mu is held.
func (l *Link) sweep() {
	now := l.cfg.Now()
	for idx, s := range l.sessions {
		if s.s.Expired() || (!s.retired.IsZero() && now.Sub(s.retired) >= PrevSessionRxGrace) {
			s.s.Close()
			delete(l.sessions, idx)
		}
	}
}

// Seal seals a record for a PDA on its newest confirmed session, for topic.PDADown. It fails
// when the PDA has no confirmed live session (the PDA resends; its next handshake makes one).
func (l *Link) Seal(pda string, kind noisehs.Kind, body []byte) ([]byte, error) {
	l.mu.Lock()
	var best *session
	for _, s := range l.sessions {
		if s.pda != pda || !s.retired.IsZero() || !s.s.Confirmed() || s.s.Expired() {
			continue
		}
		if best == nil || s.s.Created().After(best.s.Created()) {
			best = s
		}
	}
	l.mu.Unlock()
	if best == nil {
		return nil, fmt.Errorf("seal for pda %s: %w", pda, ErrNoSession)
	}
	id, err := noisehs.NewMsgID(l.cfg.Now(), l.cfg.Rand)
	if err != nil {
		return nil, fmt.Errorf("seal for pda %s: %w", pda, err)
	}
	return best.s.Seal(topic.PDADown(pda), noisehs.Record{Kind: kind, MsgID: id, Body: body})
}
