package handheld

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tidwall/buntdb"

	"github.com/meterlink/meterlink/bus"
	"github.com/meterlink/meterlink/noisehs"
	"github.com/meterlink/meterlink/topic"
)

// This file is the handheld's end of its binding to a PDA (security.md §12). The handheld
// holds K_hh from the depot. The PDA sends a hello carrying an ops-issued ticket on
// topic hh-hs-down; the handheld opens the ticket under K_hh, checks it (key_ver, hh_id,
// seq ≥ min_ticket_seq, validity window ±5 min by its clock, no clock rollback, max_ops),
// completes the NNpsk0 link with the ticket's k_bind and answers on hh-hs-up. Until the PDA
// confirms that link the handheld sends nothing and accepts nothing; afterwards every record,
// query, job event, acknowledgement, answer and groups message is a link record. Repeated
// failures delay and finally lock the link (§9) until a newer ticket arrives.

// errNoLink is returned when the handheld has no link with its PDA to seal for.
var errNoLink = errors.New("no link with the pda")

// keyGuard holds the persisted ticket and lockout state (noisehs.HHGuard).
const keyGuard = "hhlink:guard"

// Hello requests: a handheld without a link asks its PDA for a hello at most this often,
// doubling up to the maximum.
const (
	askFirst = time.Second
	askMax   = 30 * time.Second
)

// linkKinds maps the handheld topics' kinds to the record kinds sealed on them.
var linkKinds = map[string]noisehs.Kind{
	"records": noisehs.KindBatch, "jobs": noisehs.KindJobEvents, "query": noisehs.KindQuery,
}

// pdaLink is the handheld's client of the PDA listener with the link on top: it has the
// methods of the bus client the handheld uses, sealing what it publishes and opening what it
// receives.
type pdaLink struct {
	c    *bus.Client
	id   string
	hh   noisehs.HHID
	keys map[byte][32]byte // K_hh by key_ver; empty: this handheld cannot bind
	db   *buntdb.DB
	log  *slog.Logger
	rtc  func() time.Time // the handheld's clock, for ticket windows
	wake func()

	mu        sync.Mutex
	guard     noisehs.HHGuard
	cur       *noisehs.HHLink // confirmed by the PDA
	pending   *noisehs.HHLink // answered, waiting for the PDA's CONFIRM
	ticket    noisehs.Ticket  // pending's ticket
	lastHello [32]byte        // hash of the hello answered last, and the answer
	lastReply []byte
	askAt     time.Time
	askEvery  time.Duration
	failures  int // link failures since start (status and tests)
}

// depotKey returns K_hh from the configured key: 64 hex digits are K_hh; anything else is a
// plain listener password of a handheld without a depot key, which no PDA will link with.
func depotKey(key string) ([32]byte, bool) {
	var k [32]byte
	b, err := hex.DecodeString(key)
	if err != nil || len(b) != 32 {
		return k, false
	}
	copy(k[:], b)
	clear(b)
	return k, true
}

// listenerPassword is the handheld's password on the PDA listener: derived from K_hh when the
// key is one (security.md §12: the PDA stores only its verifier, never K_hh).
func listenerPassword(id, key string) string {
	if k, ok := depotKey(key); ok {
		return noisehs.HHListenerPassword(k, noisehs.HHIDFromText(id))
	}
	return key
}

func newPDALink(h *Handheld, c *bus.Client) (*pdaLink, error) {
	p := &pdaLink{c: c, id: h.cfg.ID, hh: noisehs.HHIDFromText(h.cfg.ID), keys: map[byte][32]byte{},
		db: h.box.db, log: h.log, rtc: h.now, wake: h.wake, askEvery: askFirst}
	if k, ok := depotKey(h.cfg.Key); ok {
		p.keys[max(h.cfg.KeyVer, 1)] = k
	} else {
		h.log.Warn("no depot key (METERLINK_HANDHELD_KEY is not 64 hex digits): the handheld cannot bind to a pda")
	}
	err := p.db.View(func(tx *buntdb.Tx) error {
		v, err := tx.Get(keyGuard)
		if err != nil {
			return err
		}
		return json.Unmarshal([]byte(v), &p.guard)
	})
	if err != nil && !errors.Is(err, buntdb.ErrNotFound) {
		return nil, fmt.Errorf("read link state: %w", err)
	}
	return p, nil
}

// saveGuard persists the guard (p.mu held).
func (p *pdaLink) saveGuard(g noisehs.HHGuard) error {
	b, _ := json.Marshal(g)
	err := p.db.Update(func(tx *buntdb.Tx) error {
		_, _, err := tx.Set(keyGuard, string(b), nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("store link state: %w", err)
	}
	p.guard = g
	return nil
}

// Connect connects to the PDA listener.
func (p *pdaLink) Connect(ctx context.Context) error { return p.c.Connect(ctx) }

// Close disconnects.
func (p *pdaLink) Close() error { return p.c.Close() }

// IsConnected reports whether the PDA listener is connected and the link is up.
func (p *pdaLink) IsConnected() bool {
	if !p.c.IsConnected() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur != nil && p.cur.Usable()
}

func (p *pdaLink) link() *noisehs.HHLink {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// Publish seals payload under the link and publishes it.
func (p *pdaLink) Publish(ctx context.Context, t string, qos byte, retained bool, payload []byte) error {
	_, _, kind, err := topic.ParseHH(t)
	if err != nil {
		return err
	}
	l := p.link()
	if l == nil {
		return errNoLink
	}
	id, err := noisehs.NewMsgID(time.Now(), nil)
	if err != nil {
		return err
	}
	frame, err := l.Seal(t, noisehs.Record{Kind: linkKinds[kind], MsgID: id, Body: payload})
	if err != nil {
		return err
	}
	// max_ops holds across links with the same ticket: the count is stored before sending.
	p.mu.Lock()
	g := p.guard
	g.OpsUsed = l.Ops()
	err = p.saveGuard(g)
	p.mu.Unlock()
	if err != nil {
		return err
	}
	return p.c.Publish(ctx, t, qos, retained, frame)
}

// Subscribe subscribes to a down topic whose messages must open under the link; the handler
// gets the record's body. The hh-hs-down topic is subscribed by the link itself.
func (p *pdaLink) Subscribe(ctx context.Context, filter string, qos byte, h bus.Handler) error {
	return p.c.Subscribe(ctx, filter, qos, func(ctx context.Context, m bus.Message) error {
		l := p.link()
		if l == nil {
			p.log.Warn("message from the pda dropped: no link", "topic", m.Topic)
			return nil
		}
		r, err := l.Open(m.Topic, m.Payload)
		if err != nil || r.Kind < noisehs.KindApp {
			p.log.Warn("message from the pda dropped: not sealed under the link", "topic", m.Topic, "err", err)
			return nil
		}
		m.Payload = r.Body
		return h(ctx, m)
	})
}

// subscribeHS subscribes to the link handshake topic (before connecting).
func (p *pdaLink) subscribeHS(ctx context.Context) error {
	return p.c.Subscribe(ctx, topic.HHHandshakeDown(p.id), 1, p.onHS)
}

// maintain asks the PDA for a hello while there is no usable link (a restarted handheld or
// PDA, an expired ticket), with backoff.
func (p *pdaLink) maintain(ctx context.Context) {
	if !p.c.IsConnected() || len(p.keys) == 0 {
		return
	}
	now := time.Now()
	p.mu.Lock()
	if (p.cur != nil && p.cur.Usable()) || now.Before(p.askAt) {
		p.mu.Unlock()
		return
	}
	p.askAt, p.askEvery = now.Add(p.askEvery), min(2*p.askEvery, askMax)
	p.mu.Unlock()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.c.Publish(pctx, topic.HHHandshakeUp(p.id), 1, false, []byte{noisehs.Version, 0x10}); err != nil {
		p.log.Warn("hello request not sent", "err", err)
	}
}

// onHS takes the PDA's hello (answered once; a duplicate gets the same answer) or its CONFIRM
// of the pending link.
func (p *pdaLink) onHS(ctx context.Context, m bus.Message) error {
	if len(m.Payload) < 2 || m.Payload[0] != noisehs.Version {
		return nil
	}
	var out []byte
	switch noisehs.FrameType(m.Payload[1]) {
	case noisehs.TypeHHHello:
		out = p.onHello(m.Payload)
	case noisehs.TypeHHData:
		out = p.onConfirm(m.Topic, m.Payload)
	}
	if out == nil {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.c.Publish(pctx, topic.HHHandshakeUp(p.id), 1, false, out); err != nil {
		p.log.Warn("link handshake not answered", "err", err)
	}
	return nil
}

func (p *pdaLink) onHello(frame []byte) []byte {
	sum := sha256.Sum256(frame)
	p.mu.Lock()
	defer p.mu.Unlock()
	if sum == p.lastHello && p.lastReply != nil {
		return p.lastReply // QoS 1 duplicate: the same answer, no second link
	}
	now := p.rtc()
	reply, l, t, err := noisehs.AcceptHHHello(noisehs.HHResponderConfig{
		HH: p.hh, Keys: p.keys, Guard: p.guard, Now: now, Clock: time.Now,
	}, frame)
	if err != nil {
		if errors.Is(err, noisehs.ErrLinkDelayed) {
			p.log.Warn("link hello refused: delayed after repeated failures")
			return nil
		}
		p.failures++
		g := p.guard.Failed(now, t.Seq)
		if serr := p.saveGuard(g); serr != nil {
			p.log.Error("link failure not stored", "err", serr)
		}
		p.log.Warn("link hello refused", "err", err, "failures", g.Failures, "locked", g.Locked)
		return nil
	}
	if p.pending != nil {
		p.pending.Close()
	}
	p.pending, p.ticket, p.lastHello, p.lastReply = l, t, sum, reply
	return reply
}

// onConfirm opens the PDA's CONFIRM with the pending link: the link is up. The guard takes
// the ticket (min_ticket_seq rises) and the handheld confirms back.
func (p *pdaLink) onConfirm(t string, frame []byte) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending == nil {
		return nil
	}
	r, err := p.pending.Open(t, frame)
	if err != nil || r.Kind != noisehs.KindConfirm {
		return nil
	}
	if err := p.saveGuard(p.guard.Accepted(p.ticket)); err != nil {
		p.log.Error("ticket not stored: link not taken", "err", err)
		return nil
	}
	if p.cur != nil {
		p.cur.Close()
	}
	p.cur, p.pending, p.askEvery, p.askAt = p.pending, nil, askFirst, time.Time{}
	p.ticket.KBind = [32]byte{}
	id, _ := noisehs.NewMsgID(time.Now(), nil)
	out, err := p.cur.Seal(topic.HHHandshakeUp(p.id), noisehs.Record{Kind: noisehs.KindConfirm, MsgID: id})
	if err != nil {
		return nil
	}
	p.log.Info("pda link up", "ticket_seq", p.ticket.Seq)
	p.wake()
	return out
}

// LinkStatus is the handheld's view of its binding (tests and status).
type LinkStatus struct {
	Up           bool   // a confirmed, usable link
	Failures     int    // link failures since start
	MinTicketSeq uint64 // stored min_ticket_seq
	Locked       bool   // locked after repeated failures until a newer ticket
}

// Link returns the state of the handheld's binding to its PDA.
func (h *Handheld) Link() LinkStatus {
	p := h.pda
	p.mu.Lock()
	defer p.mu.Unlock()
	return LinkStatus{Up: p.cur != nil && p.cur.Usable(), Failures: p.failures, MinTicketSeq: p.guard.MinTicketSeq, Locked: p.guard.Locked}
}
