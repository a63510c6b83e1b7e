package noisehs

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// Handheld tickets (security.md §12). Ops derives a handheld's K_hh from K_master, seals a
// ticket under a per-ticket key k_ticket = HKDF(K_hh, salt = ticket_id) and gives it, with a
// fresh k_bind, to the PDA the handheld is assigned to. Only the handheld (which holds K_hh
// from the depot) can open the ticket and learn k_bind; only the PDA that received the TICKET
// record knows k_bind, so only it can complete the NNpsk0 link (hhlink.go).

// ErrTicket is returned for a ticket that does not open under the handheld's key, or whose
// layout is wrong. The cause is not given (§9).
var ErrTicket = errors.New("ticket rejected")

// ErrTicketKeyVer is returned for a ticket naming a key_ver the handheld has no key for.
var ErrTicketKeyVer = errors.New("ticket key version unknown")

// ErrTicketForeign is returned for a ticket made for another handheld.
var ErrTicketForeign = errors.New("ticket for another handheld")

// ErrTicketSeq is returned for a ticket older than the stored min_ticket_seq (rolled back or
// from a revoked PDA), or not newer than the one a lockout waits to be replaced.
var ErrTicketSeq = errors.New("ticket sequence too old")

// ErrTicketTime is returned for a ticket outside its validity window (±[TicketSkew]) or one
// that would roll the handheld's clock back.
var ErrTicketTime = errors.New("ticket outside its validity window")

// ErrTicketOps is returned once a link has used its ticket's max_ops operations.
var ErrTicketOps = errors.New("ticket operations exhausted")

// Ticket constants.
const (
	TicketVersion    byte = 0x01
	TicketLen             = 26 + ticketPlainLen + tagLen // 130
	ticketPlainLen        = 8 + 16 + 8 + 8 + 4 + 4 + 8 + 32
	TicketSkew            = 5 * time.Minute // the handheld's clock tolerance (§12)
	HHTicketLifetime      = 12 * time.Hour  // §8 HH_TICKET_LIFETIME, the longest a ticket is valid
	labelHH               = "seclink/1 hh|" // K_hh = HKDF-Expand(K_master, label ‖ hh_id ‖ key_ver)
	labelTicket           = "seclink/1 ticket"
	labelHHID             = "seclink/1 hh-id|"
)

// HHID is the 8-byte identity of a handheld in tickets and link records.
type HHID [8]byte

// HHIDFromText returns the hh_id of a handheld's text id ("H01"): the first 8 bytes of
// SHA-256("seclink/1 hh-id|" ‖ id). Ops, the PDA and the handheld derive the same value.
func HHIDFromText(id string) HHID {
	var h HHID
	s := sha256.Sum256([]byte(labelHHID + id))
	copy(h[:], s[:len(h)])
	return h
}

// HandheldKey returns K_hh = HKDF-Expand(K_master, "seclink/1 hh|" ‖ hh_id ‖ key_ver, 32), the
// key injected into the handheld at the depot. It is secret.
func HandheldKey(master []byte, hh HHID, keyVer byte) [32]byte {
	var k [32]byte
	copy(k[:], expand(master, labelHH+string(hh[:])+string([]byte{keyVer}), 32))
	return k
}

// TicketFields are a ticket's fields; all but KeyVer, HH and ID are sealed. Times are Unix
// milliseconds.
type TicketFields struct {
	KeyVer       byte
	HH           HHID
	ID           [16]byte // ticket_id, random
	Seq          uint64   // per handheld, increasing
	PDA          PDAID    // the PDA the ticket binds the handheld to
	NotBefore    uint64
	NotAfter     uint64
	MaxOps       uint32 // link records the handheld may send under this ticket
	Perms        uint32 // 0 in v1
	MinTicketSeq uint64 // the handheld raises its stored minimum to this
}

// Ticket is an opened ticket: its fields and k_bind, the link PSK (secret).
type Ticket struct {
	TicketFields
	KBind [32]byte
}

func ticketKey(kHH [32]byte, id [16]byte) ([]byte, error) {
	prk, err := hkdf.Extract(sha256.New, kHH[:], id[:])
	if err != nil {
		return nil, err
	}
	defer clear(prk)
	return hkdf.Expand(sha256.New, prk, labelTicket, 32)
}

// SealTicket returns the 130-byte sealed ticket of §12 under k_ticket = HKDF(K_hh, salt =
// ticket_id, "seclink/1 ticket"); a key per ticket makes nonce 0 safe.
func SealTicket(kHH [32]byte, f TicketFields, kBind [32]byte) ([]byte, error) {
	b := make([]byte, 0, TicketLen)
	b = append(b, TicketVersion, f.KeyVer)
	b = append(b, f.HH[:]...)
	b = append(b, f.ID[:]...)
	pt := make([]byte, 0, ticketPlainLen)
	pt = binary.BigEndian.AppendUint64(pt, f.Seq)
	pt = append(pt, f.PDA[:]...)
	pt = binary.BigEndian.AppendUint64(pt, f.NotBefore)
	pt = binary.BigEndian.AppendUint64(pt, f.NotAfter)
	pt = binary.BigEndian.AppendUint32(pt, f.MaxOps)
	pt = binary.BigEndian.AppendUint32(pt, f.Perms)
	pt = binary.BigEndian.AppendUint64(pt, f.MinTicketSeq)
	pt = append(pt, kBind[:]...)
	defer clear(pt)
	k, err := ticketKey(kHH, f.ID)
	if err != nil {
		return nil, fmt.Errorf("seal ticket: %w", err)
	}
	defer clear(k)
	aead, err := chacha20poly1305.New(k)
	if err != nil {
		return nil, fmt.Errorf("seal ticket: %w", err)
	}
	var nonce [12]byte
	return aead.Seal(b, nonce[:], pt, b[:26]), nil
}

// TicketHeader returns the clear part of a sealed ticket: key_ver, hh_id and ticket_id.
func TicketHeader(b []byte) (keyVer byte, hh HHID, id [16]byte, err error) {
	if len(b) != TicketLen || b[0] != TicketVersion {
		return 0, hh, id, ErrTicket
	}
	copy(hh[:], b[2:10])
	copy(id[:], b[10:26])
	return b[1], hh, id, nil
}

// OpenTicket opens a sealed ticket with the handheld's keys by key_ver. It checks the layout
// and the tag only; [HHGuard.Check] applies the handheld's rules.
func OpenTicket(keys map[byte][32]byte, b []byte) (Ticket, error) {
	keyVer, hh, id, err := TicketHeader(b)
	if err != nil {
		return Ticket{}, err
	}
	kHH, ok := keys[keyVer]
	if !ok {
		return Ticket{}, ErrTicketKeyVer
	}
	k, err := ticketKey(kHH, id)
	if err != nil {
		return Ticket{}, ErrTicket
	}
	defer clear(k)
	aead, err := chacha20poly1305.New(k)
	if err != nil {
		return Ticket{}, ErrTicket
	}
	var nonce [12]byte
	pt, err := aead.Open(nil, nonce[:], b[26:], b[:26])
	if err != nil {
		return Ticket{}, ErrTicket
	}
	defer clear(pt)
	t := Ticket{TicketFields: TicketFields{KeyVer: keyVer, HH: hh, ID: id}}
	t.Seq = binary.BigEndian.Uint64(pt[0:8])
	copy(t.PDA[:], pt[8:24])
	t.NotBefore = binary.BigEndian.Uint64(pt[24:32])
	t.NotAfter = binary.BigEndian.Uint64(pt[32:40])
	t.MaxOps = binary.BigEndian.Uint32(pt[40:44])
	t.Perms = binary.BigEndian.Uint32(pt[44:48])
	t.MinTicketSeq = binary.BigEndian.Uint64(pt[48:56])
	copy(t.KBind[:], pt[56:88])
	return t, nil
}

// TicketGrant is the body of a TICKET record (ops → PDA, §6 kind 0x05): k_bind for the PDA's
// security unit, the fields the PDA needs to schedule renewal, and the sealed ticket it
// forwards to the handheld. It is secret (k_bind).
type TicketGrant struct {
	KBind     [32]byte
	Seq       uint64
	NotBefore uint64 // Unix ms
	NotAfter  uint64 // Unix ms
	Sealed    []byte // TicketLen bytes
}

const grantLen = 32 + 8 + 8 + 8 + TicketLen

// AppendBinary appends g's wire form: k_bind ‖ seq ‖ not_before ‖ not_after ‖ sealed ticket.
func (g TicketGrant) AppendBinary(b []byte) ([]byte, error) {
	if len(g.Sealed) != TicketLen {
		return nil, ErrTicket
	}
	b = append(b, g.KBind[:]...)
	b = binary.BigEndian.AppendUint64(b, g.Seq)
	b = binary.BigEndian.AppendUint64(b, g.NotBefore)
	b = binary.BigEndian.AppendUint64(b, g.NotAfter)
	return append(b, g.Sealed...), nil
}

// ParseTicketGrant parses a TICKET record body. Sealed does not alias b.
func ParseTicketGrant(b []byte) (TicketGrant, error) {
	if len(b) != grantLen {
		return TicketGrant{}, fmt.Errorf("parse ticket grant: %w", ErrTicket)
	}
	var g TicketGrant
	copy(g.KBind[:], b[:32])
	g.Seq = binary.BigEndian.Uint64(b[32:40])
	g.NotBefore = binary.BigEndian.Uint64(b[40:48])
	g.NotAfter = binary.BigEndian.Uint64(b[48:56])
	g.Sealed = append([]byte(nil), b[56:]...)
	if _, _, _, err := TicketHeader(g.Sealed); err != nil {
		return TicketGrant{}, fmt.Errorf("parse ticket grant: %w", err)
	}
	return g, nil
}

// Handheld link lockout (§9: 5 failures → exponential delay; 20 → refuse until a newer ticket).
const (
	HHLinkDelayAfter = 5
	HHLinkLockAfter  = 20
	HHLinkDelayFirst = time.Second
	HHLinkDelayMax   = 5 * time.Minute
)

// ErrLinkDelayed is returned while the handheld waits out the delay after repeated link failures.
var ErrLinkDelayed = errors.New("handheld link delayed after failures")

// HHGuard is the handheld's persistent ticket and lockout state (§9, §12). Its methods are
// pure: the handheld stores the returned value.
type HHGuard struct {
	MinTicketSeq uint64 `json:"min_ticket_seq"`
	MaxNotBefore uint64 `json:"max_not_before"` // largest not_before ever accepted (Unix ms): no clock rollback
	Failures     int    `json:"failures"`       // link failures in a row
	Locked       bool   `json:"locked"`         // HHLinkLockAfter failures: refuse until a newer ticket
	LockSeq      uint64 `json:"lock_seq"`       // a lock lifts only for a ticket with seq above this
	MaxSeqSeen   uint64 `json:"max_seq_seen"`   // highest seq of a ticket that opened, in failures
	RetryAt      int64  `json:"retry_at"`       // Unix ms; no attempt before (exponential delay)
	// OpsTicket and OpsUsed count the operations used under the newest linked ticket, so a
	// new link with the same ticket cannot reset max_ops.
	OpsTicket [16]byte `json:"ops_ticket"`
	OpsUsed   uint32   `json:"ops_used"`
}

// usedOps returns the operations already used under ticket id.
func (g HHGuard) usedOps(id [16]byte) uint32 {
	if subtle.ConstantTimeCompare(id[:], g.OpsTicket[:]) == 1 {
		return g.OpsUsed
	}
	return 0
}

// Check applies the handheld's rules of §12 to an opened ticket at RTC now: own hh_id, seq ≥
// min_ticket_seq (and above LockSeq while locked), now in [not_before, not_after] ±TicketSkew,
// not_after ≥ the largest not_before accepted, max_ops > 0.
func (g HHGuard) Check(t Ticket, own HHID, now time.Time) error {
	ms := now.UnixMilli()
	skew := uint64(TicketSkew / time.Millisecond)
	switch {
	case subtle.ConstantTimeCompare(t.HH[:], own[:]) != 1:
		return ErrTicketForeign
	case t.Seq < g.MinTicketSeq, g.Locked && t.Seq <= g.LockSeq:
		return ErrTicketSeq
	case ms < 0, t.NotAfter < t.NotBefore, uint64(ms)+skew < t.NotBefore, uint64(ms) > t.NotAfter+skew,
		t.NotAfter < g.MaxNotBefore, t.NotAfter-t.NotBefore > uint64(HHTicketLifetime/time.Millisecond):
		return ErrTicketTime
	case t.MaxOps == 0 || g.usedOps(t.ID) >= t.MaxOps:
		return ErrTicketOps
	}
	return nil
}

// Admit reports whether a link attempt may be made at now: not while the exponential delay
// after HHLinkDelayAfter failures runs ([ErrLinkDelayed]). A lock is checked by [HHGuard.Check].
func (g HHGuard) Admit(now time.Time) error {
	if g.RetryAt != 0 && now.UnixMilli() < g.RetryAt {
		return ErrLinkDelayed
	}
	return nil
}

// Failed counts a failed link attempt at now; seq is the ticket's if it opened, else 0.
func (g HHGuard) Failed(now time.Time, seq uint64) HHGuard {
	g.Failures++
	g.MaxSeqSeen = max(g.MaxSeqSeen, seq)
	if g.Failures >= HHLinkDelayAfter {
		d := HHLinkDelayFirst << min(g.Failures-HHLinkDelayAfter, 16)
		g.RetryAt = now.Add(min(d, HHLinkDelayMax)).UnixMilli()
	}
	if g.Failures >= HHLinkLockAfter && !g.Locked {
		g.Locked, g.LockSeq = true, max(g.MaxSeqSeen, g.MinTicketSeq)
	}
	return g
}

// Accepted applies a ticket whose link completed: the stored min_ticket_seq rises to the
// ticket's, the largest not_before is kept, the operation count moves to this ticket, and the
// failure count and any lock are cleared.
func (g HHGuard) Accepted(t Ticket) HHGuard {
	g.OpsTicket, g.OpsUsed = t.ID, g.usedOps(t.ID)
	g.MinTicketSeq = max(g.MinTicketSeq, t.MinTicketSeq)
	g.MaxNotBefore = max(g.MaxNotBefore, t.NotBefore)
	g.Failures, g.Locked, g.LockSeq, g.MaxSeqSeen, g.RetryAt = 0, false, 0, 0, 0
	return g
}
