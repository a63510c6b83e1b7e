package pdabridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/meterlink/meterlink/bus"
	"github.com/meterlink/meterlink/noisehs"
	"github.com/meterlink/meterlink/topic"
	"github.com/meterlink/meterlink/wire"
)

// This file relays what a handheld exchanges with ops besides record batches: real-time
// queries up and their answers down (never stored: a query is useless after its deadline),
// job events up (held in the outbox like batches, acknowledged like them), and the groups ops
// pushes down.

// maxQueries bounds the queries waiting for an answer; more are dropped, and their handhelds
// answer offline at the deadline.
const maxQueries = 256

// query is a relayed query waiting for ops' answer.
type query struct {
	hh       string
	deadline time.Time
}

func (b *Bridge) bound(hh string) bool { return slices.Contains(b.cfg.Handhelds, hh) }

// onJobs takes a batch of job events from a handheld: like onRecords, only a bound handheld's
// valid batch on its own topic is stored (before the PUBLISH is acknowledged), then forwarded
// as noisehs.KindJobEvents until ops acknowledges its id.
func (b *Bridge) onJobs(_ context.Context, m bus.Message) error {
	hh, _, _, err := topic.ParseHH(m.Topic)
	if err != nil || !b.bound(hh) {
		b.count(func(s *Stats) { s.Unbound++ })
		b.log.Warn("job events dropped: handheld not bound to this pda", "topic", m.Topic)
		return nil
	}
	var je wire.JobEvents
	if err := json.Unmarshal(m.Payload, &je); err != nil {
		b.count(func(s *Stats) { s.Malformed++ })
		b.log.Warn("job events dropped", "topic", m.Topic, "err", err)
		return nil
	}
	if err := checkJobEvents(je, hh); err != nil {
		b.count(func(s *Stats) { s.Malformed++ })
		b.log.Warn("job events dropped", "topic", m.Topic, "err", err)
		return nil
	}
	msgID, err := noisehs.NewMsgID(time.Now(), nil)
	if err != nil {
		return fmt.Errorf("msg_id for job events %s: %w", je.ID, err)
	}
	if err := b.box.put(entry{ID: je.ID, Handheld: hh, Kind: noisehs.KindJobEvents, Body: m.Payload, MsgID: msgID}); err != nil {
		return fmt.Errorf("store job events %s: %w", je.ID, err) // unacknowledged: redelivered
	}
	b.count(func(s *Stats) { s.Accepted++ })
	b.wake()
	return nil
}

// checkJobEvents is the PDA's check of a job events batch: the envelope only; ops checks the
// events.
func checkJobEvents(je wire.JobEvents, hh string) error {
	var errs []error
	if je.V != wire.Version {
		errs = append(errs, fmt.Errorf("v: %d, want %d", je.V, wire.Version))
	}
	if je.ID == "" || len(je.ID) > 128 {
		errs = append(errs, errors.New("id: must be 1..128 characters"))
	}
	if string(je.Handheld) != hh {
		errs = append(errs, fmt.Errorf("handheld %q differs from the topic's %q", je.Handheld, hh))
	}
	if len(je.Events) == 0 || len(je.Events) > wire.MaxBatchRecords {
		errs = append(errs, fmt.Errorf("events: %d, want 1..%d", len(je.Events), wire.MaxBatchRecords))
	}
	return errors.Join(errs...)
}

// onQuery relays a bound handheld's valid query to ops at once, sealed as noisehs.KindQuery
// on the newest session, and remembers who asked until the query's deadline. Without a
// session the query is dropped: the handheld answers offline at its deadline.
func (b *Bridge) onQuery(_ context.Context, m bus.Message) error {
	hh, _, _, err := topic.ParseHH(m.Topic)
	if err != nil || !b.bound(hh) {
		b.count(func(s *Stats) { s.Unbound++ })
		b.log.Warn("query dropped: handheld not bound to this pda", "topic", m.Topic)
		return nil
	}
	var q wire.Query
	err = json.Unmarshal(m.Payload, &q)
	if err == nil {
		err = q.Validate()
	}
	if err == nil && string(q.Handheld) != hh {
		err = fmt.Errorf("handheld %q differs from the topic's %q", q.Handheld, hh)
	}
	if err != nil {
		b.count(func(s *Stats) { s.Malformed++ })
		b.log.Warn("query dropped", "topic", m.Topic, "err", err)
		return nil
	}
	now := time.Now()
	deadline := time.UnixMilli(q.DeadlineMS)
	offline := func(why string) error {
		b.count(func(s *Stats) { s.Offline++ })
		b.log.Warn("query dropped: the handheld answers offline", "query_id", q.ID, "handheld_id", hh, "reason", why)
		return nil
	}
	if !deadline.After(now) {
		return offline("past its deadline")
	}
	s := b.sendSession()
	if s == nil || !b.up.IsConnected() {
		return offline("no session with ops")
	}
	b.mu.Lock()
	for id, w := range b.queries {
		if !w.deadline.After(now) {
			delete(b.queries, id)
		}
	}
	full := len(b.queries) >= maxQueries
	if !full {
		b.queries[q.ID] = query{hh: hh, deadline: deadline}
	}
	b.mu.Unlock()
	if full {
		return offline(fmt.Sprintf("%d queries already wait for ops", maxQueries))
	}
	msgID, err := noisehs.NewMsgID(now, nil)
	if err != nil {
		return fmt.Errorf("msg_id for query %s: %w", q.ID, err)
	}
	t := topic.PDAUp(b.cfg.ID)
	frame, err := s.Seal(t, noisehs.Record{Kind: noisehs.KindQuery, MsgID: msgID, Body: m.Payload})
	if err != nil {
		b.forget(q.ID)
		return offline("not sealed: " + err.Error())
	}
	// Not from inside the handler: it would wait for the ops broker's PUBACK while holding the
	// local listener's delivery (paho delivers in order).
	go func() {
		pctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		if err := b.up.Publish(pctx, t, 1, false, frame); err != nil {
			b.forget(q.ID)
			_ = offline("not sent: " + err.Error())
			return
		}
		b.count(func(s *Stats) { s.Queries++ })
	}()
	return nil
}

func (b *Bridge) forget(queryID string) {
	b.mu.Lock()
	delete(b.queries, queryID)
	b.mu.Unlock()
}

// onAnswer relays ops' answer to the handheld whose query is waiting for it. An answer to no
// waiting query (unknown, answered already, or past its deadline) is dropped.
func (b *Bridge) onAnswer(ctx context.Context, rec noisehs.Record) error {
	var a wire.Answer
	if err := json.Unmarshal(rec.Body, &a); err != nil || a.ID == "" {
		b.unroutable("answer not decoded", "err", err)
		return nil
	}
	b.mu.Lock()
	w, ok := b.queries[a.ID]
	delete(b.queries, a.ID)
	b.mu.Unlock()
	switch {
	case !ok:
		b.unroutable("answer to no waiting query", "query_id", a.ID)
		return nil
	case !b.bound(w.hh):
		b.unroutable("answer for a handheld not bound to this pda", "query_id", a.ID, "handheld_id", w.hh)
		return nil
	}
	b.relayDown(ctx, w.hh, topic.HHAnswer(w.hh), noisehs.KindAnswer, rec.Body, "query_id", a.ID)
	return nil
}

// onGroups relays the groups ops pushed to their handheld, if it is bound to this PDA.
func (b *Bridge) onGroups(ctx context.Context, rec noisehs.Record) error {
	var gs wire.Groups
	if err := json.Unmarshal(rec.Body, &gs); err != nil {
		b.unroutable("groups not decoded", "err", err)
		return nil
	}
	hh := string(gs.Handheld)
	if !b.bound(hh) {
		b.unroutable("groups for a handheld not bound to this pda", "handheld_id", hh)
		return nil
	}
	b.relayDown(ctx, hh, topic.HHGroups(hh), noisehs.KindGroups, rec.Body, "handheld_id", hh, "groups", len(gs.Groups))
	return nil
}

// relayDown seals a record's body under the handheld's link and publishes it on the local
// listener. A failure (no link included) is logged: the handheld answers offline, and ops
// pushes groups again later.
func (b *Bridge) relayDown(ctx context.Context, hh, t string, kind noisehs.Kind, body []byte, logArgs ...any) {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := b.publishHH(pctx, hh, t, kind, body); err != nil {
		b.log.Warn("not relayed to the handheld", append([]any{"topic", t, "err", err}, logArgs...)...)
		return
	}
	b.count(func(s *Stats) { s.Relayed++ })
}

// unroutable counts and logs a record from ops that has nowhere to go.
func (b *Bridge) unroutable(why string, logArgs ...any) {
	b.count(func(s *Stats) { s.Unroutable++ })
	b.log.Warn("downlink dropped: "+why, logArgs...)
}
