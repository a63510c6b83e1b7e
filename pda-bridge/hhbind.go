package pdabridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tidwall/buntdb"

	"github.com/meterlink/meterlink/bus"
	"github.com/meterlink/meterlink/noisehs"
	"github.com/meterlink/meterlink/topic"
)

// This file binds the PDA to its handhelds (security.md §12). For each bound handheld the
// bridge asks ops for a ticket (TICKET_REQUEST on its session), keeps the TICKET's k_bind and
// sealed ticket in the security unit's store, and runs the NNpsk0 link handshake with the
// handheld on topic hh-hs-down / hh-hs-up. Until that link is up the bridge relays nothing
// from the handheld and sends it nothing; afterwards every other handheld topic carries link
// records only: a record that does not open under the handheld's link is dropped.

// Binding timers.
const (
	ticketRetry     = 5 * time.Second  // a TICKET_REQUEST unanswered this long is sent again
	helloFirst      = time.Second      // first hello retry, doubling up to helloMax
	helloMax        = 30 * time.Second //
	helloRefresh    = 5                // unanswered hellos before the bridge asks ops for a fresh ticket
	helloRequestGap = time.Second      // a handheld's hello requests are honoured at most this often
)

// errNoLink is returned when a handheld has no link to seal for.
var errNoLink = errors.New("no link with the handheld")

// keyTicket prefixes a handheld's stored ticket in the security unit's store.
const keyTicket = "unit:ticket:"

// storedTicket is a TICKET as the security unit keeps it: k_bind is secret.
type storedTicket struct {
	Grant []byte `json:"grant"` // noisehs.TicketGrant wire form
}

// hhState is the bridge's binding state for one handheld.
type hhState struct {
	grant     *noisehs.TicketGrant
	requested time.Time // last TICKET_REQUEST
	init      *noisehs.HHInitiator
	helloAt   time.Time // next hello
	backoff   time.Duration
	hellos    int             // hellos since the last completed link
	link      *noisehs.HHLink // the newest completed link
	confirmed bool            // the handheld's CONFIRM arrived on link
	lastAsk   time.Time       // last hello request honoured
}

// binding holds every bound handheld's state; its own mutex, never held while publishing.
type binding struct {
	mu  sync.Mutex
	hhs map[string]*hhState
}

func (b *Bridge) hhState(hh string) *hhState {
	s := b.bind.hhs[hh]
	if s == nil {
		s = &hhState{backoff: helloFirst}
		b.bind.hhs[hh] = s
	}
	return s
}

// loadTickets reads the stored tickets of the bound handhelds (a PDA restarted offline keeps
// binding its handhelds until their tickets expire).
func (b *Bridge) loadTickets() {
	b.bind.hhs = map[string]*hhState{}
	for _, hh := range b.cfg.Handhelds {
		var st storedTicket
		err := b.box.db.View(func(tx *buntdb.Tx) error {
			v, err := tx.Get(keyTicket + hh)
			if err != nil {
				return err
			}
			return json.Unmarshal([]byte(v), &st)
		})
		if err != nil {
			continue
		}
		if g, err := noisehs.ParseTicketGrant(st.Grant); err == nil {
			b.hhState(hh).grant = &g
		}
	}
}

// onTicket stores a TICKET from ops and starts a link handshake with it.
func (b *Bridge) onTicket(rec noisehs.Record) error {
	g, err := noisehs.ParseTicketGrant(rec.Body)
	if err != nil {
		b.unroutable("ticket not decoded", "err", err)
		return nil
	}
	_, hhID, _, _ := noisehs.TicketHeader(g.Sealed)
	hh := ""
	for _, h := range b.cfg.Handhelds {
		if noisehs.HHIDFromText(h) == hhID {
			hh = h
		}
	}
	if hh == "" {
		b.unroutable("ticket for a handheld not bound to this pda")
		return nil
	}
	body, _ := json.Marshal(storedTicket{Grant: rec.Body})
	err = b.box.db.Update(func(tx *buntdb.Tx) error {
		_, _, err := tx.Set(keyTicket+hh, string(body), nil)
		return err
	})
	clear(body)
	if err != nil {
		b.log.Error("ticket not stored", "handheld_id", hh, "err", err) // asked again after ticketRetry
		return nil
	}
	b.bind.mu.Lock()
	s := b.hhState(hh)
	if s.grant == nil || g.Seq >= s.grant.Seq {
		s.grant, s.requested = &g, time.Time{}
		// Link with the newer ticket now; the old link carries records until the reply.
		s.helloAt, s.backoff, s.hellos, s.confirmed = time.Time{}, helloFirst, 0, false
	}
	b.bind.mu.Unlock()
	b.count(func(s *Stats) { s.Tickets++ })
	b.log.Info("handheld ticket received", "handheld_id", hh, "seq", g.Seq)
	b.wake()
	return nil
}

// maintainHH asks ops for tickets that are missing, expiring (half their lifetime left) or
// not answered by the handheld, and sends hellos to handhelds without a confirmed link.
func (b *Bridge) maintainHH(ctx context.Context) {
	now := time.Now()
	type out struct {
		up    bool
		topic string
		body  []byte
	}
	var outs []out
	b.bind.mu.Lock()
	for _, hh := range b.cfg.Handhelds {
		s := b.hhState(hh)
		if s.link != nil && s.link.Expired() {
			s.link.Close()
			s.link, s.confirmed = nil, false
		}
		valid := s.grant != nil && uint64(now.UnixMilli()) < s.grant.NotAfter
		renew := !valid || uint64(now.UnixMilli()) > s.grant.NotBefore+(s.grant.NotAfter-s.grant.NotBefore)/2 ||
			s.hellos >= helloRefresh
		if renew && now.Sub(s.requested) >= ticketRetry {
			s.requested = now
			hid := noisehs.HHIDFromText(hh)
			outs = append(outs, out{up: true, body: append(hid[:], hh...)})
		}
		if !valid || (s.link != nil && s.confirmed) || now.Before(s.helloAt) {
			continue
		}
		if s.init != nil {
			s.init.Close()
		}
		i, err := noisehs.NewHHInitiator(b.pda, s.grant.Sealed, s.grant.KBind, time.UnixMilli(int64(s.grant.NotAfter)), nil)
		if err != nil {
			b.log.Error("hello not built", "handheld_id", hh, "err", err)
			continue
		}
		s.init, s.hellos = i, s.hellos+1
		s.helloAt, s.backoff = now.Add(jitter(s.backoff)), min(2*s.backoff, helloMax)
		outs = append(outs, out{topic: topic.HHHandshakeDown(hh), body: i.Hello()})
	}
	b.bind.mu.Unlock()
	for _, o := range outs {
		if o.up {
			b.requestTicket(ctx, o.body)
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := b.local.Publish(pctx, o.topic, 1, false, o.body); err != nil {
			b.log.Warn("hello not sent", "topic", o.topic, "err", err)
		}
		cancel()
	}
}

// requestTicket seals a TICKET_REQUEST (hh_id ‖ handheld id) on the newest session.
func (b *Bridge) requestTicket(ctx context.Context, body []byte) {
	s := b.sendSession()
	if s == nil || !b.up.IsConnected() {
		return
	}
	id, err := noisehs.NewMsgID(time.Now(), nil)
	if err != nil {
		return
	}
	t := topic.PDAUp(b.cfg.ID)
	frame, err := s.Seal(t, noisehs.Record{Kind: noisehs.KindTicketRequest, MsgID: id, Body: body})
	if err != nil {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := b.up.Publish(pctx, t, 1, false, frame); err != nil {
		b.log.Warn("ticket request not sent", "err", err)
	}
}

// onHSUp takes a handheld's link handshake traffic: its reply to the hello in flight (then
// the bridge confirms the link), its CONFIRM, or a request for a new hello.
func (b *Bridge) onHSUp(ctx context.Context, m bus.Message) error {
	hh, _, _, err := topic.ParseHH(m.Topic)
	if err != nil || !b.bound(hh) || len(m.Payload) < 2 || m.Payload[0] != noisehs.Version {
		b.count(func(s *Stats) { s.Unlinked++ })
		return nil
	}
	now := time.Now()
	b.bind.mu.Lock()
	s := b.hhState(hh)
	var confirm []byte
	switch noisehs.FrameType(m.Payload[1]) {
	case 0x10: // hello request: a restarted handheld has no link
		if now.Sub(s.lastAsk) >= helloRequestGap {
			s.lastAsk, s.confirmed, s.helloAt, s.backoff = now, false, time.Time{}, helloFirst
		}
	case noisehs.TypeHHReply:
		if s.init == nil {
			break
		}
		l, err := s.init.ReadReply(m.Payload, time.Now)
		if err != nil {
			break
		}
		s.init.Close()
		s.init = nil
		if s.link != nil {
			s.link.Close()
		}
		s.link, s.confirmed = l, false
		id, _ := noisehs.NewMsgID(now, nil)
		confirm, _ = l.Seal(topic.HHHandshakeDown(hh), noisehs.Record{Kind: noisehs.KindConfirm, MsgID: id})
	case noisehs.TypeHHData:
		if s.link == nil {
			break
		}
		if r, err := s.link.Open(m.Topic, m.Payload); err == nil && r.Kind == noisehs.KindConfirm && !s.confirmed {
			s.confirmed, s.hellos, s.backoff = true, 0, helloFirst
			b.log.Info("handheld link up", "handheld_id", hh)
		}
	}
	b.bind.mu.Unlock()
	if confirm != nil {
		b.count(func(s *Stats) { s.Links++ })
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := b.local.Publish(pctx, topic.HHHandshakeDown(hh), 1, false, confirm); err != nil {
			b.log.Warn("link confirm not sent", "handheld_id", hh, "err", err)
		}
	}
	b.wake()
	return nil
}

// linked wraps a handler of a handheld's uplink topic: the message must open under the
// handheld's link, and the handler gets the record's body.
func (b *Bridge) linked(h bus.Handler) bus.Handler {
	return func(ctx context.Context, m bus.Message) error {
		hh, _, _, err := topic.ParseHH(m.Topic)
		if err != nil || !b.bound(hh) {
			b.count(func(s *Stats) { s.Unbound++ })
			b.log.Warn("handheld message dropped: handheld not bound to this pda", "topic", m.Topic)
			return nil
		}
		b.bind.mu.Lock()
		l := b.hhState(hh).link
		b.bind.mu.Unlock()
		if l == nil {
			b.count(func(s *Stats) { s.Unlinked++ })
			b.log.Warn("handheld message dropped: no link", "topic", m.Topic)
			return nil
		}
		r, err := l.Open(m.Topic, m.Payload)
		if err != nil || r.Kind < noisehs.KindApp {
			b.count(func(s *Stats) { s.Unlinked++ })
			b.log.Warn("handheld message dropped: not sealed under its link", "topic", m.Topic, "err", err)
			return nil
		}
		m.Payload = r.Body
		return h(ctx, m)
	}
}

// publishHH seals body as a record of kind under the handheld's link and publishes it on t.
func (b *Bridge) publishHH(ctx context.Context, hh, t string, kind noisehs.Kind, body []byte) error {
	b.bind.mu.Lock()
	l := b.hhState(hh).link
	b.bind.mu.Unlock()
	if l == nil {
		return errNoLink
	}
	id, err := noisehs.NewMsgID(time.Now(), nil)
	if err != nil {
		return err
	}
	frame, err := l.Seal(t, noisehs.Record{Kind: kind, MsgID: id, Body: body})
	if err != nil {
		return fmt.Errorf("seal for the handheld: %w", err)
	}
	return b.local.Publish(ctx, t, 1, false, frame)
}

// HandheldLinked reports whether a handheld's link is up and confirmed (tests and status).
func (b *Bridge) HandheldLinked(hh string) bool {
	b.bind.mu.Lock()
	defer b.bind.mu.Unlock()
	s := b.hhState(hh)
	return s.link != nil && s.confirmed && !s.link.Expired()
}
