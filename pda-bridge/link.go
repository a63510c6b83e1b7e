package pdabridge

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/meterlink/meterlink/bus"
	"github.com/meterlink/meterlink/noisehs"
	"github.com/meterlink/meterlink/topic"
)

// Timers of security.md §7.2 and §8 that the bridge applies itself.
const (
	prevSessionRxGrace = 5 * time.Minute  // an older session stays receive-only this long
	tellAppAfter       = 90 * time.Second // handshakes failing this long: log an error for the operator
)

// link is the PDA's SECLINK/1 state in RAM (§4.2): at most one handshake in flight, the
// newest session (used to send) and the previous one (receive-only for a grace period), and
// the timers that decide when to handshake again. b.mu guards it.
type link struct {
	init      *noisehs.Initiator
	initPSK   noisehs.SID
	retryAt   time.Time     // no new handshake before this (HANDSHAKE_RETRY backoff)
	backoff   time.Duration // the next retry interval, before jitter
	failSince time.Time     // first handshake since the last ops record on the newest session
	told      bool          // the operator was told that ops is unreachable
	want      bool          // a handshake is wanted (reconnect, REKEY_NOW, stall)

	cur, prev    *psess
	unackedSince time.Time // uplink sent and no ops record since
}

// psess is one PDA-side session.
type psess struct {
	s         *noisehs.Session
	candidate noisehs.SID // the SID its handshake yielded; the first ops record commits it
	started   time.Time   // when CONFIRM was sent
	opsSeen   bool        // a valid ops record arrived
	retired   time.Time   // when a newer session replaced it
}

// jitter spreads d by ±20 % (§8) so that PDAs do not retry in step.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// maintain decides whether to handshake now (§4.2, §8): no session, an expired or aging
// session, no ops record within HandshakeRetry after CONFIRM, uplink unacknowledged for
// StallAfter, a reconnect or a REKEY_NOW; always within the HANDSHAKE_RETRY backoff.
func (b *Bridge) maintain(ctx context.Context) {
	now := time.Now()
	b.mu.Lock()
	lk := &b.link
	if lk.prev != nil && !lk.prev.retired.IsZero() && now.Sub(lk.prev.retired) >= prevSessionRxGrace {
		lk.prev.s.Close()
		lk.prev = nil
	}
	if lk.cur != nil && lk.cur.s.Expired() {
		lk.cur.s.Close()
		lk.cur = nil
	}
	reason := ""
	switch {
	case lk.want:
		reason = "requested"
	case lk.cur == nil:
		reason = "no session"
	case lk.cur.s.NeedsRekey():
		reason = "rekey"
	case !lk.cur.opsSeen && now.Sub(lk.cur.started) >= b.cfg.HandshakeRetry:
		reason = "no ops record after confirm"
	case !lk.unackedSince.IsZero() && now.Sub(lk.unackedSince) >= b.cfg.StallAfter:
		reason = "uplink unacknowledged"
		lk.unackedSince = now
	}
	if reason == "" || now.Before(lk.retryAt) || !b.up.IsConnected() {
		b.mu.Unlock()
		return
	}
	if !lk.failSince.IsZero() && now.Sub(lk.failSince) >= tellAppAfter && !lk.told {
		lk.told = true
		b.log.Error("ops unreachable: handshakes unanswered; contact the administrator if this persists", "for", now.Sub(lk.failSince).Round(time.Second))
	}
	frame, err := b.startHandshake(now)
	b.mu.Unlock()
	if err != nil {
		b.log.Error("handshake not started", "err", err)
		return
	}
	b.log.Info("handshake", "reason", reason)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := b.up.Publish(pctx, topic.PDAHandshakeUp(b.cfg.ID), 1, false, frame); err != nil {
		b.log.Warn("hs_init not published", "err", err) // the retry timer sends a fresh one
	}
}

// startHandshake builds a fresh HS_INIT, replacing any handshake in flight (only the newest
// completes, §7.3). hs_counter is stored before the frame is returned. b.mu is held.
func (b *Bridge) startHandshake(now time.Time) ([]byte, error) {
	lk := &b.link
	if lk.backoff == 0 {
		lk.backoff = b.cfg.HandshakeRetry
	}
	lk.retryAt = now.Add(jitter(lk.backoff))
	lk.backoff = min(2*lk.backoff, b.cfg.HandshakeRetryMax)
	if lk.failSince.IsZero() {
		lk.failSince = now
	}
	lk.want = false
	if lk.init != nil {
		lk.init.Close()
		lk.init = nil
	}
	psk, counter, err := b.unit.nextHandshake()
	if err != nil {
		return nil, err
	}
	idx, err := noisehs.NewIndex()
	if err != nil {
		return nil, err
	}
	ic := b.unit.initiator()
	ic.PDAID, ic.SID, ic.HSCounter, ic.Now, ic.SenderIdx = b.pda, psk, counter, now, idx
	i, err := noisehs.NewInitiator(ic)
	if err != nil {
		return nil, err
	}
	lk.init, lk.initPSK = i, psk
	b.stats.Handshakes++
	return i.HSInit(), nil
}

// onHSDown takes an HS_RESP: only the in-flight handshake's counts (§4.2). The rotation state
// is persisted, then CONFIRM is sent on the new session, and held batches follow at once.
func (b *Bridge) onHSDown(ctx context.Context, m bus.Message) error {
	b.mu.Lock()
	lk := &b.link
	if lk.init == nil {
		b.mu.Unlock()
		b.dropped(m.Topic, "no handshake in flight")
		return nil
	}
	est, err := lk.init.ReadHSResp(m.Payload)
	if err != nil {
		b.mu.Unlock()
		b.dropped(m.Topic, err.Error())
		return nil
	}
	defer est.Zero()
	if err := b.unit.completed(lk.initPSK, est.Keys.NextSID); err != nil {
		b.mu.Unlock()
		b.log.Error("handshake result not stored", "err", err) // no CONFIRM: ops keeps both SIDs
		return nil
	}
	s, err := noisehs.NewSession(est, time.Now)
	if err != nil {
		b.mu.Unlock()
		return nil
	}
	lk.init.Close()
	lk.init = nil
	if lk.prev != nil {
		lk.prev.s.Close()
	}
	if lk.cur != nil {
		lk.cur.retired = time.Now()
	}
	lk.prev, lk.cur = lk.cur, &psess{s: s, candidate: est.Keys.NextSID, started: time.Now()}
	lk.unackedSince = time.Time{}
	clear(b.inflight) // resend what ops has not acknowledged on the new session
	b.stats.Sessions++
	id, _ := noisehs.NewMsgID(time.Now(), nil)
	frame, err := s.Seal(topic.PDAUp(b.cfg.ID), noisehs.Record{Kind: noisehs.KindConfirm, MsgID: id})
	b.mu.Unlock()
	if err != nil {
		return nil
	}
	b.log.Info("session up", "epoch", s.Epoch())
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := b.up.Publish(pctx, topic.PDAUp(b.cfg.ID), 1, false, frame); err != nil {
		b.log.Warn("confirm not published", "err", err) // no ops record follows: handshake again
	}
	b.wake()
	return nil
}

// openDown opens a DATA record from ops on the newest or the previous session. The first ops
// record on the newest session commits its SID (§7.1) and ends the handshake backoff.
func (b *Bridge) openDown(m bus.Message) (noisehs.Record, bool) {
	d, err := noisehs.ParseData(m.Payload)
	if err != nil {
		b.dropped(m.Topic, err.Error())
		return noisehs.Record{}, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	lk := &b.link
	var ps *psess
	for _, c := range []*psess{lk.cur, lk.prev} {
		if c != nil && c.s.LocalIdx() == d.ReceiverIdx {
			ps = c
		}
	}
	if ps == nil {
		b.stats.Dropped++
		return noisehs.Record{}, false
	}
	rec, err := ps.s.Open(m.Topic, b.pda, m.Payload)
	if err != nil {
		b.stats.Dropped++
		return noisehs.Record{}, false
	}
	lk.unackedSince = time.Time{}
	if ps == lk.cur && !ps.opsSeen {
		ps.opsSeen = true
		lk.backoff, lk.retryAt, lk.failSince, lk.told = 0, time.Time{}, time.Time{}, false
		changed, err := b.unit.opsRecord(ps.candidate)
		switch {
		case err != nil:
			b.log.Error("sid commit not stored", "err", err) // the next HS_INIT names pending: ops commits then
		case changed:
			b.stats.Rotations++
			b.log.Info("sid rotated", "epoch", ps.candidate.Epoch)
		}
	}
	return rec, true
}

// sendSession returns the session to seal uplink with, or nil.
func (b *Bridge) sendSession() *noisehs.Session {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.link.cur; c != nil && !c.s.Expired() {
		return c.s
	}
	return nil
}

// wantHandshake asks maintain for a handshake at the next tick (within the backoff).
func (b *Bridge) wantHandshake() {
	b.mu.Lock()
	b.link.want = true
	b.mu.Unlock()
	b.wake()
}

func (b *Bridge) dropped(t, why string) {
	b.count(func(s *Stats) { s.Dropped++ })
	b.log.Warn("downlink dropped", "topic", t, "err", why)
}
