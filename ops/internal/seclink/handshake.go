package seclink

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/meterlink/meterlink/noisehs"
	"github.com/meterlink/meterlink/ops/internal/store"
	"github.com/meterlink/meterlink/wire"
)

// opsRow is the rotation state of an enrolled row for [noisehs.OpsRow].
func opsRow(r store.PDARow) noisehs.OpsRow {
	return noisehs.OpsRow{
		Static: to32(r.Static), Cur: toSID(r.Cur), Pending: toSID(r.Pending), LastHS: r.LastHS,
		CachedHash: to32(r.CachedHash), CachedResp: r.CachedResp, CachedAt: time.UnixMilli(r.CachedAtMS),
	}
}

// slotRow is an enrolment slot seen as a row whose cur is SID₀ and whose pending is the
// slot's candidate: an HS_INIT naming the candidate then commits it (rule 7), which is the
// second way §4.3 completes enrolment.
func slotRow(sid0 store.StoredSID, s store.EnrolSlot) noisehs.OpsRow {
	return noisehs.OpsRow{
		Static: to32(s.Static), Cur: toSID(sid0), Pending: toSID(s.Candidate), LastHS: s.LastHS,
		CachedHash: to32(s.CachedHash), CachedResp: s.CachedResp, CachedAt: time.UnixMilli(s.CachedAtMS),
	}
}

// isFailure reports whether a drop counts towards the lockout (§9: rules 3–6).
func isFailure(err error) bool {
	for _, e := range []error{noisehs.ErrHandshake, noisehs.ErrOpsKey, noisehs.ErrWrongStatic, noisehs.ErrUnknownSID,
		noisehs.ErrTruncated, noisehs.ErrPayload, noisehs.ErrTLV, noisehs.ErrCriticalTLV, noisehs.ErrExtLen} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// HandleHSInit applies §4.1 (and §4.3 before enrolment) to an HS_INIT received on the
// handshake topic of pda. It returns the HS_RESP to publish on topic.PDAHandshakeDown(pda),
// already persisted, or nil and the reason for dropping the frame.
func (l *Link) HandleHSInit(pda string, frame []byte) ([]byte, error) {
	unlock := l.lock(pda)
	defer unlock()
	now := l.cfg.Now()

	// Rule 1: row, state, lockout.
	row, err := l.cfg.Store.PDARow(wire.PDAID(pda))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrUnknownPDA
	}
	if err != nil {
		return nil, fmt.Errorf("hs_init of pda %s: %w", pda, err)
	}
	if row.State != store.PDAEnrolled || row.Cur.IsZero() {
		return nil, ErrRevoked
	}
	bound := len(row.Static) > 0
	if !bound && now.Sub(time.UnixMilli(row.CreatedMS)) > SID0Expires {
		return nil, ErrSID0
	}

	// Rule 2 before the token bucket: a QoS 1 duplicate costs a hash, not a DH, so answering it
	// from the cache spends no token (a redelivery must not lock an honest PDA out).
	h := noisehs.HSInitHash(frame)
	cached := func(hash, resp []byte, atMS int64) bool {
		at := time.UnixMilli(atMS)
		return resp != nil && bytes.Equal(hash, h[:]) && now.Sub(at) < noisehs.MsgDupCache && !now.Before(at)
	}
	if bound && cached(row.CachedHash, row.CachedResp, row.CachedAtMS) {
		return bytes.Clone(row.CachedResp), nil
	}
	for _, s := range row.Slots {
		if !bound && cached(s.CachedHash, s.CachedResp, s.CachedAtMS) {
			return bytes.Clone(s.CachedResp), nil
		}
	}
	if err := l.admit(pda, now); err != nil {
		return nil, err
	}

	idx, err := noisehs.NewIndex()
	if err != nil {
		return nil, fmt.Errorf("hs_init of pda %s: %w", pda, err)
	}
	rc := noisehs.ResponderConfig{Static: l.cfg.Key, OpsKey: l.cfg.OpsKey, PDAID: noisehs.PDAIDFromText(pda), SenderIdx: idx, Rand: l.cfg.Rand}
	p2 := noisehs.Payload2{OpsTimeMs: uint64(now.UnixMilli()),
		RekeyAfterMin: uint16(l.cfg.RekeyAfter / time.Minute), RejectAfterMin: uint16(l.cfg.RejectAfter / time.Minute)}

	var resp []byte
	var sess *session
	if bound {
		resp, sess, err = l.respondBound(pda, row, rc, frame, now, p2)
	} else {
		resp, sess, err = l.respondEnrol(pda, row, rc, frame, now, p2)
	}
	if err != nil {
		l.failed(pda, now, err)
		return nil, err
	}
	l.succeeded(pda)
	if sess != nil {
		l.add(sess)
	}
	return resp, nil
}

// respondBound applies rules 3–9 to an enrolled row.
func (l *Link) respondBound(pda string, row store.PDARow, rc noisehs.ResponderConfig, frame []byte, now time.Time, p2 noisehs.Payload2) ([]byte, *session, error) {
	out := opsRow(row).HandleHSInit(rc, frame, now, p2)
	switch out.Action {
	case noisehs.ActRepublish:
		return out.HSResp, nil, nil
	case noisehs.ActCloneAlarm:
		_, err := l.cfg.Store.UpdatePDARow(wire.PDAID(pda), func(r *store.PDARow) error {
			r.State, r.LockedMS = store.PDALocked, now.UnixMilli()
			return nil
		})
		l.dropSessions(pda)
		l.disconnect(pda)
		l.log.Error("clone alarm: pda locked; unlock by re-provisioning", "pda", pda, "err", out.Err, "store_err", err)
		return nil, nil, out.Err
	case noisehs.ActRespond:
	default:
		if errors.Is(out.Err, noisehs.ErrStaleCounter) {
			// Made with S_pda but replayed or from a clone: a non-locking alert (§9).
			l.log.Warn("stale hs_counter from the enrolled static", "pda", pda)
		}
		return nil, nil, out.Err
	}
	defer out.Session.Zero()
	_, err := l.cfg.Store.UpdatePDARow(wire.PDAID(pda), func(r *store.PDARow) error {
		if r.State != store.PDAEnrolled {
			return ErrRevoked
		}
		if !toSID(r.Cur).Equal(out.Row.Cur) {
			r.LastRotationMS = now.UnixMilli()
		}
		r.Cur, r.Pending, r.LastHS = fromSID(out.Row.Cur), fromSID(out.Row.Pending), out.Row.LastHS
		r.CachedHash, r.CachedResp, r.CachedAtMS = bytes.Clone(out.Row.CachedHash[:]), out.Row.CachedResp, out.Row.CachedAt.UnixMilli()
		r.LastHandshakeMS = now.UnixMilli()
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	s, err := noisehs.NewSession(out.Session, l.cfg.Now)
	if err != nil {
		return nil, nil, err
	}
	return out.HSResp, &session{s: s, pda: pda, candidate: out.Session.Keys.NextSID}, nil
}

// respondEnrol applies §4.3 to a row without a bound S_pda: one slot per peer static, each
// with its own last_hs, candidate and cached answer; SID₀ (the row's cur) is the PSK until a
// slot's candidate is proven.
func (l *Link) respondEnrol(pda string, row store.PDARow, rc noisehs.ResponderConfig, frame []byte, now time.Time, p2 noisehs.Payload2) ([]byte, *session, error) {
	probe := rc
	probe.Rand = nil
	rs, err := noisehs.ReadHSInit(probe, frame)
	if err != nil {
		return nil, nil, err
	}
	static := rs.PeerStatic()
	slot := -1
	for i, s := range row.Slots {
		if isStatic(s.Static, static) {
			slot = i
		}
	}
	cur := store.EnrolSlot{Static: static[:]}
	if slot >= 0 {
		cur = row.Slots[slot]
	} else if len(row.Slots) >= maxSlots {
		return nil, nil, ErrSlotsFull
	}
	out := slotRow(row.Cur, cur).HandleHSInit(rc, frame, now, p2)
	switch out.Action {
	case noisehs.ActRepublish:
		return out.HSResp, nil, nil
	case noisehs.ActRespond:
	default:
		return nil, nil, out.Err // no clone alarm before enrolment: cur is SID₀ at epoch 0
	}
	defer out.Session.Zero()
	enrolled := !out.Row.Cur.Equal(toSID(row.Cur)) // the HS_INIT named the slot's candidate
	var created bool
	_, err = l.cfg.Store.UpdatePDARow(wire.PDAID(pda), func(r *store.PDARow) error {
		if r.State != store.PDAEnrolled || len(r.Static) > 0 || !toSID(r.Cur).Equal(toSID(row.Cur)) {
			return ErrRevoked // revoked, re-provisioned or enrolled meanwhile: drop
		}
		cache := func() ([]byte, []byte, int64) {
			return bytes.Clone(out.Row.CachedHash[:]), out.Row.CachedResp, out.Row.CachedAt.UnixMilli()
		}
		r.LastHandshakeMS = now.UnixMilli()
		if enrolled {
			r.Static, r.Cur, r.Pending, r.LastHS = static[:], fromSID(out.Row.Cur), fromSID(out.Row.Pending), out.Row.LastHS
			r.CachedHash, r.CachedResp, r.CachedAtMS = cache()
			r.Slots = nil
			r.LastRotationMS = now.UnixMilli()
			return nil
		}
		s := store.EnrolSlot{Static: static[:], LastHS: out.Row.LastHS, Candidate: fromSID(out.Row.Pending)}
		s.CachedHash, s.CachedResp, s.CachedAtMS = cache()
		if slot >= 0 && slot < len(r.Slots) && isStatic(r.Slots[slot].Static, static) {
			r.Slots[slot] = s
		} else {
			r.Slots = append(r.Slots, s)
			created = true
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if enrolled {
		l.log.Info("pda enrolled: S_pda bound by an HS_INIT naming its candidate", "pda", pda)
	} else if created {
		l.log.Info("enrolment slot added", "pda", pda, "slots", len(row.Slots)+1)
	}
	s, err := noisehs.NewSession(out.Session, l.cfg.Now)
	if err != nil {
		return nil, nil, err
	}
	sess := &session{s: s, pda: pda, candidate: out.Session.Keys.NextSID}
	if !enrolled {
		sess.enrol = &static
	}
	return out.HSResp, sess, nil
}

// add registers a new session, dropping the PDA's oldest unconfirmed ones beyond the limit.
func (l *Link) add(s *session) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep()
	l.sessions[s.s.LocalIdx()] = s
	var mine []*session
	for _, o := range l.sessions {
		if o.pda == s.pda {
			mine = append(mine, o)
		}
	}
	for len(mine) > maxSessionsPerPDA {
		oldest := 0
		for i, o := range mine {
			if o.s.Created().Before(mine[oldest].s.Created()) {
				oldest = i
			}
		}
		mine[oldest].s.Close()
		delete(l.sessions, mine[oldest].s.LocalIdx())
		mine = append(mine[:oldest], mine[oldest+1:]...)
	}
}

// admit takes a token from the PDA's HS_INIT bucket (§9), unless it is locked out.
func (l *Link) admit(pda string, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.limits[pda]
	if !ok {
		lim = &limit{tokens: float64(l.cfg.HSBurst), at: now}
		l.limits[pda] = lim
	}
	if now.Before(lim.lockedTo) {
		return ErrLockedOut
	}
	if el := now.Sub(lim.at); el > 0 {
		lim.tokens = min(float64(l.cfg.HSBurst), lim.tokens+float64(el)/float64(l.cfg.HSRefill))
	}
	lim.at = now
	if lim.tokens < 1 {
		return ErrRateLimit
	}
	lim.tokens--
	return nil
}

// failed counts a rule 3–6 failure; FailLimit in a row lock the PDA's handshakes out for
// FailLock, doubling up to FailLockMax (§9).
func (l *Link) failed(pda string, now time.Time, err error) {
	if !isFailure(err) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.limits[pda]
	if lim == nil {
		return
	}
	lim.fails++
	if lim.fails < l.cfg.FailLimit {
		return
	}
	if lim.lockFor == 0 {
		lim.lockFor = l.cfg.FailLock
	} else {
		lim.lockFor = min(2*lim.lockFor, l.cfg.FailLockMax)
	}
	lim.lockedTo, lim.fails = now.Add(lim.lockFor), 0
	l.log.Error("handshake failures: pda locked out", "pda", pda, "for", lim.lockFor)
}

// succeeded resets the failure count after a valid handshake.
func (l *Link) succeeded(pda string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lim := l.limits[pda]; lim != nil {
		lim.fails, lim.lockFor = 0, 0
	}
}
