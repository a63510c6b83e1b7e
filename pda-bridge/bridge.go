// Package pdabridge is the PDA's security unit and link: it takes record batches from the
// handhelds bound to it on its local listener, keeps them in a buntdb outbox, and sends them to
// ops through the ops broker in envelopes tagged with its security identifier (SID). It relays
// ops' end-to-end acknowledgements back to the handheld. Records of a handheld that is not
// bound to this PDA never leave it, and messages from ops whose tag does not verify are dropped.
//
// Topics (package topic): on the local listener it subscribes to hh-records and publishes
// hh-ack; upstream it publishes pda-up and subscribes to pda-down. Stores (buntdb): the outbox.
//
// The SID check here is the spine's (package idcheck); the SECLINK/1 secure channel of
// security.md (package noisehs) replaces it.
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
	"github.com/meterlink/meterlink/idcheck"
	"github.com/meterlink/meterlink/topic"
	"github.com/meterlink/meterlink/wire"
)

// Bridge is a running PDA bridge.
type Bridge struct {
	cfg   Config
	log   *slog.Logger
	key   []byte
	box   *outbox
	local *bus.Client
	up    *bus.Client
	kick  chan struct{}

	mu       sync.Mutex
	inflight map[string]time.Time // batch id → sent upstream
	stats    Stats

	closeOnce sync.Once
}

// Stats counts what the bridge did since it started.
type Stats struct {
	Accepted  int // batches taken from bound handhelds
	Unbound   int // batches dropped: handheld not bound to this PDA
	Malformed int // batches dropped: not a valid wire.Batch
	Forwarded int // envelopes sent upstream
	Acked     int // batches ops acknowledged
	BadTags   int // messages from upstream dropped: tag did not verify
}

// New opens the outbox and prepares both MQTT clients.
func New(cfg Config, log *slog.Logger) (*Bridge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log = log.With("pda_id", cfg.ID)
	key, err := idcheck.Key(cfg.SID, cfg.ID)
	if err != nil {
		return nil, err
	}
	pw, err := idcheck.BrokerPassword(cfg.SID, cfg.ID)
	if err != nil {
		return nil, err
	}
	box, err := openOutbox(cfg.StorePath)
	if err != nil {
		return nil, err
	}
	b := &Bridge{cfg: cfg, log: log, key: key, box: box, kick: make(chan struct{}, 1), inflight: map[string]time.Time{}}
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
		Password: func() string { return pw }, CleanSession: false, Logger: log,
		OnConnect: b.wake,
	})
	if err != nil {
		box.close()
		return nil, err
	}
	return b, nil
}

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
	if err := b.local.Subscribe(ctx, topic.HHRecordsAll, 1, b.onRecords); err != nil {
		return fmt.Errorf("subscribe to handheld records: %w", err)
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
	resend := time.NewTicker(b.cfg.ResendAfter / 2)
	defer resend.Stop()
	b.wake()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-b.kick:
		case <-resend.C:
		}
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
	if err := b.box.put(entry{ID: batch.ID, Handheld: hh, Body: m.Payload}); err != nil {
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

// forward sends every held batch that is not in flight, in tagged envelopes.
func (b *Bridge) forward(ctx context.Context) {
	for b.up.IsConnected() {
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
			env := wire.Envelope{V: wire.Version, PDA: wire.PDAID(b.cfg.ID), Kind: wire.EnvelopeBatch, ID: e.ID, Body: e.Body}
			env.Tag = idcheck.Tag(b.key, b.cfg.ID, t, env.Kind, env.ID, env.Body)
			payload, _ := json.Marshal(env)
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := b.up.Publish(pctx, t, 1, false, payload)
			cancel()
			if err != nil {
				b.log.Warn("batch not forwarded", "batch_id", e.ID, "err", err)
				return
			}
			b.mu.Lock()
			b.inflight[e.ID] = now
			b.stats.Forwarded++
			b.mu.Unlock()
		}
	}
}

// onDown handles ops' messages: a verified acknowledgement deletes the batch and is relayed to
// its handheld.
func (b *Bridge) onDown(ctx context.Context, m bus.Message) error {
	var env wire.Envelope
	if err := json.Unmarshal(m.Payload, &env); err != nil || env.V != wire.Version || string(env.PDA) != b.cfg.ID {
		b.count(func(s *Stats) { s.BadTags++ })
		b.log.Warn("downlink dropped", "topic", m.Topic, "err", "malformed envelope")
		return nil
	}
	if !idcheck.Verify(b.key, b.cfg.ID, m.Topic, env.Kind, env.ID, env.Body, env.Tag) {
		b.count(func(s *Stats) { s.BadTags++ })
		b.log.Warn("downlink dropped", "topic", m.Topic, "err", "identifier tag does not verify")
		return nil
	}
	if env.Kind != wire.EnvelopeAck {
		b.log.Warn("downlink dropped", "topic", m.Topic, "kind", env.Kind, "err", "unsupported kind")
		return nil
	}
	var ack wire.Ack
	if err := json.Unmarshal(env.Body, &ack); err != nil {
		b.log.Warn("downlink dropped", "topic", m.Topic, "err", err)
		return nil
	}
	hh := string(ack.Handheld)
	if e, ok := b.box.get(ack.ID); ok {
		hh = e.Handheld
	}
	if !slices.Contains(b.cfg.Handhelds, hh) {
		b.log.Warn("acknowledgement for an unknown handheld", "batch_id", ack.ID, "handheld_id", hh)
		return nil
	}
	// Relay first: if the relay fails the batch stays held, and ops acknowledges it again.
	body, _ := json.Marshal(ack)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := b.local.Publish(pctx, topic.HHAck(hh), 1, false, body); err != nil {
		return fmt.Errorf("relay acknowledgement %s: %w", ack.ID, err)
	}
	if err := b.box.remove(ack.ID); err != nil {
		return fmt.Errorf("remove acknowledged batch %s: %w", ack.ID, err)
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
