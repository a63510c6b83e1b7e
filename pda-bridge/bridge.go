// Package pdabridge is the PDA's security unit and link: it takes record batches and job
// events from the handhelds bound to it on its local listener, keeps them in a buntdb outbox,
// and sends them to ops through the untrusted ops broker over SECLINK/1 (security.md, package
// noisehs): a Noise IKpsk2 handshake keyed by the PDA's security identifier (SID) and its
// static key S_pda, sealed DATA records with counters and a replay window, and automatic SID
// rotation with one pending slot. It relays ops' end-to-end acknowledgements back to the
// handheld. It relays a handheld's real-time queries at once, never storing them, and ops'
// answers and groups back (relay.go). Records of a handheld that is not bound to this PDA
// never leave it; nothing from ops is accepted unless it opens under a session's keys.
// Handhelds are bound by ops-issued tickets (security.md §12, hhbind.go): the bridge asks ops
// for each bound handheld's ticket (TICKET_REQUEST), links the handheld with it (NNpsk0 keyed
// by the ticket's k_bind), and relays nothing to or from a handheld without that link; every
// handheld message is a link record.
//
// Topics (package topic): on the local listener it subscribes to hh-hs-up, hh-records, hh-jobs
// and hh-query and publishes hh-hs-down, hh-ack, hh-answer and hh-groups; upstream it publishes pda-hs-up
// (HS_INIT) and pda-up (DATA: CONFIRM, then batches, job events and queries), and subscribes
// to pda-hs-down (HS_RESP) and pda-down (DATA: COMMIT, acknowledgements, answers, groups). Its
// broker password derives from the SID it would use next (§11) and is computed on every
// reconnect. Stores (one buntdb file, fsync on every write): the outbox and the security
// unit's state (S_pda, cur and pending SIDs, hs_counter, the handhelds' tickets with their
// k_bind), saved before anything that depends on it is sent.
package pdabridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/meterlink/meterlink/bus"
	"github.com/meterlink/meterlink/noisehs"
	"github.com/meterlink/meterlink/topic"
	"github.com/meterlink/meterlink/wire"
)

// Bridge is a running PDA bridge.
type Bridge struct {
	cfg   Config
	log   *slog.Logger
	pda   noisehs.PDAID
	unit  *unit
	box   *outbox
	local *bus.Client
	up    *bus.Client
	kick  chan struct{}

	mu       sync.Mutex
	link     link                 // SECLINK/1 handshake and sessions (link.go)
	inflight map[string]time.Time // batch id → sent upstream
	queries  map[string]query     // query id → the handheld that asked, until its deadline (relay.go)
	bind     binding              // tickets and links of the bound handhelds (hhbind.go)
	stats    Stats

	closeOnce sync.Once
}

// maxPacket is the broker's packet limit (security.md §11): a sealed record, its topic and the
// MQTT header must fit.
const maxPacket = 64 << 10

// Stats counts what the bridge did since it started.
type Stats struct {
	Accepted   int // batches (of records or job events) taken from bound handhelds
	Unbound    int // batches and queries dropped: handheld not bound to this PDA
	Malformed  int // batches and queries dropped: not valid, or for another handheld than the topic's
	Forwarded  int // sealed batch records sent upstream
	Acked      int // batches ops acknowledged
	Queries    int // queries sealed and sent upstream
	Offline    int // queries dropped: no session to send them on, or too many waiting
	Relayed    int // answers and groups relayed to handhelds
	Unroutable int // records from ops dropped: unknown kind, unknown query, or handheld not bound
	Dropped    int // frames from upstream dropped: no handshake or session for them, or they did not open
	Handshakes int // HS_INITs sent
	Sessions   int // handshakes completed
	Rotations  int // SIDs committed after ops proved the new session
	Tickets    int // handheld tickets received from ops
	Links      int // handheld link handshakes completed
	Unlinked   int // handheld messages dropped: no link, or not sealed under it
}

// New opens the outbox and the security unit (creating S_pda from SID₀ on first use) and
// prepares both MQTT clients.
func New(cfg Config, log *slog.Logger) (*Bridge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log = log.With("pda_id", cfg.ID)
	box, err := openOutbox(cfg.StorePath)
	if err != nil {
		return nil, err
	}
	u, err := openUnit(box.db, cfg.SID, cfg.OpsPublicKey, cfg.OpsKey)
	if err != nil {
		box.close()
		return nil, err
	}
	b := &Bridge{cfg: cfg, log: log, pda: noisehs.PDAIDFromText(cfg.ID), unit: u, box: box,
		kick: make(chan struct{}, 1), inflight: map[string]time.Time{}, queries: map[string]query{}}
	b.loadTickets()
	b.local, err = bus.New(bus.Config{
		URL: cfg.LocalURL, ClientID: cfg.ID + "-bridge", Username: cfg.ID + "-bridge",
		Password: func() string { return cfg.LocalPassword }, Logger: log,
	})
	if err != nil {
		box.close()
		return nil, err
	}
	b.up, err = bus.New(bus.Config{
		URL: cfg.UpstreamURL, ClientID: cfg.ID, Username: cfg.ID,
		// §11: the password of the SID the PDA would use next, asked on every reconnect, so a
		// rotation between connections never locks it out.
		Password: func() string { return u.selected().BrokerPassword(b.pda) }, CleanSession: false, Logger: log,
		OnConnect: b.reconnected,
	})
	if err != nil {
		box.close()
		return nil, err
	}
	return b, nil
}

// reconnected handshakes again after every upstream (re)connect: ops or its broker may have
// restarted and lost the session's keys, which live in RAM only (§4.2).
func (b *Bridge) reconnected() { b.wantHandshake() }

// Epoch returns the epoch of the SID the PDA would use next (the broker password's).
func (b *Bridge) Epoch() uint32 { return b.unit.selected().Epoch }

// Pending returns the number of batches waiting for ops' acknowledgement.
func (b *Bridge) Pending() int { return b.box.count() }

// Stats returns the bridge's counters.
func (b *Bridge) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

func (b *Bridge) wake() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// Run connects both links and forwards until ctx is done.
func (b *Bridge) Run(ctx context.Context) error {
	defer b.Close()
	// Subscriptions are registered before connecting, so messages queued in the persistent
	// sessions find their handlers at once.
	if err := b.local.Subscribe(ctx, topic.HHHandshakeUpAll, 1, b.onHSUp); err != nil {
		return fmt.Errorf("subscribe to handheld link handshakes: %w", err)
	}
	if err := b.local.Subscribe(ctx, topic.HHRecordsAll, 1, b.linked(b.onRecords)); err != nil {
		return fmt.Errorf("subscribe to handheld records: %w", err)
	}
	if err := b.local.Subscribe(ctx, topic.HHJobsAll, 1, b.linked(b.onJobs)); err != nil {
		return fmt.Errorf("subscribe to handheld job events: %w", err)
	}
	if err := b.local.Subscribe(ctx, topic.HHQueryAll, 1, b.linked(b.onQuery)); err != nil {
		return fmt.Errorf("subscribe to handheld queries: %w", err)
	}
	if err := b.up.Subscribe(ctx, topic.PDAHandshakeDown(b.cfg.ID), 1, b.onHSDown); err != nil {
		return fmt.Errorf("subscribe to ops handshakes: %w", err)
	}
	if err := b.up.Subscribe(ctx, topic.PDADown(b.cfg.ID), 1, b.onDown); err != nil {
		return fmt.Errorf("subscribe to ops downlink: %w", err)
	}
	if err := connect(ctx, b.log, "local listener", b.local); err != nil {
		return nil // ctx done
	}
	if err := connect(ctx, b.log, "ops broker", b.up); err != nil {
		return nil
	}
	b.log.Info("pda bridge up", "config", b.cfg)
	tick := time.NewTicker(min(b.cfg.ResendAfter/2, 250*time.Millisecond))
	defer tick.Stop()
	b.wake()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-b.kick:
		case <-tick.C:
		}
		b.maintain(ctx)
		b.maintainHH(ctx)
		b.forward(ctx)
	}
}

// connect retries until the client is connected or ctx is done. A refused connection (bad
// credentials) is retried too, with a loud log line: the operator must fix it.
func connect(ctx context.Context, log *slog.Logger, what string, c *bus.Client) error {
	backoff := 200 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := c.Connect(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if errors.Is(err, bus.ErrRefused) {
			log.Error("connection refused", "link", what, "err", err)
		} else {
			log.Warn("link not reachable", "link", what, "err", err, "retry_in", backoff)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// onRecords takes a batch from a handheld: only a bound handheld's valid batch on its own
// topic is stored; anything else is dropped (and acknowledged, since resending cannot fix it).
func (b *Bridge) onRecords(_ context.Context, m bus.Message) error {
	hh, _, _, err := topic.ParseHH(m.Topic)
	if err != nil || !slices.Contains(b.cfg.Handhelds, hh) {
		b.count(func(s *Stats) { s.Unbound++ })
		b.log.Warn("batch dropped: handheld not bound to this pda", "topic", m.Topic)
		return nil
	}
	var batch wire.Batch
	if err := json.Unmarshal(m.Payload, &batch); err != nil {
		b.count(func(s *Stats) { s.Malformed++ })
		b.log.Warn("batch dropped", "topic", m.Topic, "err", err)
		return nil
	}
	if err := batch.Validate(); err != nil || string(batch.Handheld) != hh {
		b.count(func(s *Stats) { s.Malformed++ })
		b.log.Warn("batch dropped", "topic", m.Topic, "err", errors.Join(err, errors.New("or handheld differs from topic")))
		return nil
	}
	msgID, err := noisehs.NewMsgID(time.Now(), nil)
	if err != nil {
		return fmt.Errorf("msg_id for batch %s: %w", batch.ID, err)
	}
	if err := b.box.put(entry{ID: batch.ID, Handheld: hh, Kind: noisehs.KindBatch, Body: m.Payload, MsgID: msgID}); err != nil {
		return fmt.Errorf("store batch %s: %w", batch.ID, err) // unacknowledged: redelivered
	}
	b.count(func(s *Stats) { s.Accepted++ })
	b.wake()
	return nil
}

func (b *Bridge) count(f func(*Stats)) {
	b.mu.Lock()
	f(&b.stats)
	b.mu.Unlock()
}

// forward seals and sends every held batch (records or job events) that is not in flight, on the newest session, at
// send time (never in advance, §7.2). Without a session it waits for the handshake.
func (b *Bridge) forward(ctx context.Context) {
	for b.up.IsConnected() {
		s := b.sendSession()
		if s == nil {
			return
		}
		now := time.Now()
		b.mu.Lock()
		batches, err := b.box.list(64, func(id string) bool {
			sent, ok := b.inflight[id]
			return ok && now.Sub(sent) < b.cfg.ResendAfter
		})
		b.mu.Unlock()
		if err != nil {
			b.log.Error("read outbox failed", "err", err)
			return
		}
		if len(batches) == 0 {
			return
		}
		t := topic.PDAUp(b.cfg.ID)
		for _, e := range batches {
			frame, err := s.Seal(t, noisehs.Record{Kind: e.kind(), MsgID: e.MsgID, Body: e.Body})
			if err == nil && len(frame)+len(t)+16 > maxPacket {
				err = fmt.Errorf("sealed record of %d bytes: over the broker's packet limit", len(frame))
			}
			if err != nil {
				b.log.Error("batch not sealed", "batch_id", e.ID, "err", err)
				return
			}
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err = b.up.Publish(pctx, t, 1, false, frame)
			cancel()
			if err != nil {
				b.log.Warn("batch not forwarded", "batch_id", e.ID, "err", err)
				return
			}
			b.mu.Lock()
			b.inflight[e.ID] = now
			if b.link.unackedSince.IsZero() {
				b.link.unackedSince = now
			}
			b.stats.Forwarded++
			b.mu.Unlock()
		}
	}
}

// onDown handles ops' sealed records: COMMIT confirms the session, REKEY_NOW asks for a
// handshake, an acknowledgement deletes its batch and is relayed to the handheld, and an
// answer or groups go to their handheld (relay.go).
func (b *Bridge) onDown(ctx context.Context, m bus.Message) error {
	rec, ok := b.openDown(m)
	if !ok {
		return nil
	}
	switch rec.Kind {
	case noisehs.KindCommit:
		return nil
	case noisehs.KindRekeyNow:
		b.wantHandshake()
		return nil
	case noisehs.KindAnswer:
		return b.onAnswer(ctx, rec)
	case noisehs.KindGroups:
		return b.onGroups(ctx, rec)
	case noisehs.KindTicket:
		return b.onTicket(rec)
	case noisehs.KindWireAck:
	default:
		b.unroutable("unsupported kind", "kind", byte(rec.Kind))
		return nil
	}
	var ack wire.Ack
	if err := json.Unmarshal(rec.Body, &ack); err != nil {
		b.log.Warn("downlink dropped", "topic", m.Topic, "err", err)
		return nil
	}
	hh := string(ack.Handheld)
	if e, ok := b.box.get(ack.ID); ok {
		hh = e.Handheld
	}
	if !slices.Contains(b.cfg.Handhelds, hh) {
		b.unroutable("acknowledgement for a handheld not bound to this pda", "batch_id", ack.ID, "handheld_id", hh)
		return nil
	}
	// Relay first: if the relay fails the batch stays held, and ops acknowledges it again.
	body, _ := json.Marshal(ack)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := b.publishHH(pctx, hh, topic.HHAck(hh), noisehs.KindWireAck, body); err != nil {
		b.log.Warn("acknowledgement not relayed", "batch_id", ack.ID, "err", err) // ops acknowledges the resend
		return nil
	}
	if err := b.box.remove(ack.ID); err != nil {
		b.log.Error("acknowledged batch not removed", "batch_id", ack.ID, "err", err)
		return nil
	}
	b.mu.Lock()
	delete(b.inflight, ack.ID)
	b.stats.Acked++
	b.mu.Unlock()
	return nil
}

// Close disconnects both links and releases the outbox. It is idempotent.
func (b *Bridge) Close() error {
	var err error
	b.closeOnce.Do(func() {
		b.local.Close()
		b.up.Close()
		err = b.box.close()
	})
	return err
}
