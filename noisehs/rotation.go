package noisehs

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"
)

// ErrLocked is returned for HS_INITs of a row locked by the clone alarm.
var ErrLocked = errors.New("row locked")

// ErrStaleCounter is returned when hs_counter is not above last_hs (§4.1
// rule 5). With a valid S_pda it deserves a non-locking alert (§9).
var ErrStaleCounter = errors.New("stale hs_counter")

// ErrWrongStatic is returned when HS_INIT's static is not the enrolled S_pda.
var ErrWrongStatic = errors.New("peer static not enrolled")

// ErrCloneAlarm is returned when a fresh HS_INIT made with S_pda names an
// epoch older than cur without a match (§9): the row is locked.
var ErrCloneAlarm = errors.New("clone alarm")

// MsgDupCache is how long ops answers a repeated HS_INIT from its cache
// (§8 MSG1_DUP_CACHE).
const MsgDupCache = 60 * time.Second

// PDAState is the PDA's persisted rotation state (§4.2, §7.1). Methods return
// the next state, which the caller persists durably before acting on it.
type PDAState struct {
	Cur       SID
	Pending   SID // zero when none
	HSCounter uint64
}

// Selected returns the SID the PDA uses for its next handshake and its broker
// password: pending if present, else cur.
func (p PDAState) Selected() SID {
	if !p.Pending.IsZero() {
		return p.Pending
	}
	return p.Cur
}

// NextHandshake increments hs_counter and returns the new state and the PSK
// and counter for [InitiatorConfig]. Persist the state before releasing
// HS_INIT.
func (p PDAState) NextHandshake() (next PDAState, psk SID, hsCounter uint64) {
	p.HSCounter++
	return p, p.Selected(), p.HSCounter
}

// Completed applies a valid HS_RESP of the in-flight handshake that used psk
// and yielded candidate: if psk was pending it becomes cur (rule 7), and
// candidate becomes pending. Persist, then send CONFIRM.
func (p PDAState) Completed(psk, candidate SID) PDAState {
	if !p.Pending.IsZero() && p.Pending.Equal(psk) {
		p.Cur = p.Pending
	}
	p.Pending = candidate
	return p
}

// OpsRecord applies the first valid ops record of the newest session, whose
// handshake yielded candidate: it commits candidate (cur := pending) and
// drops the old SID. Records of older sessions change nothing.
func (p PDAState) OpsRecord(candidate SID) PDAState {
	if !p.Pending.IsZero() && p.Pending.Equal(candidate) {
		p.Cur, p.Pending = p.Pending, SID{}
	}
	return p
}

// OpsRow is ops' persisted rotation state for one enrolled PDA (§4.1).
// Rate limiting (§9), revocation and enrolment slots (§4.3) are the caller's.
type OpsRow struct {
	Static     [32]byte // enrolled S_pda public
	Cur        SID
	Pending    SID // zero when none
	LastHS     uint64
	CachedHash [32]byte  // SHA-256 of the last answered HS_INIT
	CachedResp []byte    // its HS_RESP
	CachedAt   time.Time // when it was answered
	Locked     bool      // set by the clone alarm
}

// Action tells ops what to do with an HS_INIT after [OpsRow.HandleHSInit].
type Action uint8

// Actions. Only ActRespond and ActCloneAlarm change the row.
const (
	ActDrop       Action = iota // send nothing; Err says why, for metrics
	ActRepublish                // publish HSResp (the cached answer) again
	ActRespond                  // persist Row in one transaction, then publish HSResp
	ActCloneAlarm               // persist Row (locked) and alert an operator
)

// HSInitOutcome is the result of [OpsRow.HandleHSInit].
type HSInitOutcome struct {
	Action  Action
	Row     OpsRow       // the row to persist; equal to the input unless Action changes it
	HSResp  []byte       // for ActRespond and ActRepublish
	Session *Established // for ActRespond
	Err     error        // the drop reason, never sent anywhere
}

// HandleHSInit applies rules 2–9 of §4.1 to an HS_INIT frame received on the
// row's PDA topic at now. c names ops' key and the PDA; p2 is ops' payload2.
// The row itself is not modified: persist Outcome.Row before publishing.
func (r OpsRow) HandleHSInit(c ResponderConfig, frame []byte, now time.Time, p2 Payload2) HSInitOutcome {
	drop := func(err error) HSInitOutcome { return HSInitOutcome{Action: ActDrop, Row: r, Err: err} }
	if r.Locked {
		return drop(ErrLocked)
	}
	// Rule 2: a QoS 1 duplicate of the last answered HS_INIT.
	h := HSInitHash(frame)
	if r.CachedResp != nil && subtle.ConstantTimeCompare(h[:], r.CachedHash[:]) == 1 &&
		now.Sub(r.CachedAt) < MsgDupCache && !now.Before(r.CachedAt) {
		return HSInitOutcome{Action: ActRepublish, Row: r, HSResp: bytes.Clone(r.CachedResp)}
	}
	// Rule 3.
	rs, err := ReadHSInit(c, frame)
	if err != nil {
		return drop(err)
	}
	// Rule 4.
	ps := rs.PeerStatic()
	if subtle.ConstantTimeCompare(ps[:], r.Static[:]) != 1 {
		return drop(ErrWrongStatic)
	}
	// Rule 5.
	p1 := rs.Payload1()
	if p1.HSCounter <= r.LastHS {
		return drop(ErrStaleCounter)
	}
	// Rule 6.
	next := r
	matchedPending := false
	lookup := func(epoch uint32, kid [8]byte) (SID, bool) {
		if r.Cur.Epoch == epoch && kidEqual(r.Cur, kid) {
			return r.Cur, true
		}
		if !r.Pending.IsZero() && r.Pending.Epoch == epoch && kidEqual(r.Pending, kid) {
			matchedPending = true
			return r.Pending, true
		}
		return SID{}, false
	}
	frameOut, est, err := rs.Respond(lookup, p2)
	if errors.Is(err, ErrUnknownSID) && p1.Epoch < r.Cur.Epoch {
		next.Locked = true
		return HSInitOutcome{Action: ActCloneAlarm, Row: next, Err: fmt.Errorf("epoch %d below cur %d: %w", p1.Epoch, r.Cur.Epoch, ErrCloneAlarm)}
	}
	if err != nil {
		return drop(err)
	}
	// Rules 7 and 9: one transaction.
	if matchedPending {
		next.Cur = r.Pending
	}
	next.Pending = est.Keys.NextSID
	next.LastHS = p1.HSCounter
	next.CachedHash = h
	next.CachedResp = frameOut
	next.CachedAt = now
	return HSInitOutcome{Action: ActRespond, Row: next, HSResp: bytes.Clone(frameOut), Session: est}
}

// ConfirmedBy applies the first valid DATA of a session whose handshake
// yielded candidate: a pending SID equal to it is committed (§7.1). Persist
// the returned row.
func (r OpsRow) ConfirmedBy(candidate SID) OpsRow {
	if !r.Pending.IsZero() && r.Pending.Equal(candidate) {
		r.Cur, r.Pending = r.Pending, SID{}
	}
	return r
}

func kidEqual(s SID, kid [8]byte) bool {
	k := s.KID()
	return subtle.ConstantTimeCompare(k[:], kid[:]) == 1
}
