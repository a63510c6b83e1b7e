// Package broker is MeterLink's MQTT broker: mochi-mqtt embedded with MeterLink's listeners,
// accounts, ACL and persistence. It runs as `meterlink broker`, inside ops and the lab, and as the
// pda-bridge's local listener for handhelds.
//
// The broker carries the topics of the [topic] registry and nothing else: every subscription,
// publish and delivery is checked with [topic.Allowed] for the client's role. PDAs (pda-up,
// pda-down, pda-hs-up, pda-hs-down) may use only their own exact topics, with no retain and no
// QoS 2, and their client id must equal their username; handhelds only their own hh-records and
// hh-ack; ops consumers subscribe to the PDAs' uplink through the shared subscription
// [topic.OpsUpShared]; dashboards (viewers, optionally anonymous) may only subscribe to the ops
// event topics. $SYS is closed to everyone. Failed logins are rate-limited per username and per
// remote IP (security.md §9) and every refusal is logged and counted ([Broker.Stats]).
//
// With a StorePath the broker stores, in one buntdb file written with fsync on every commit,
// the persistent sessions (CleanSession=false), their subscriptions, their in-flight and queued
// QoS 1/2 messages, and retained messages, so that a restart loses no QoS 1 message (DESIGN §8).
package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// ErrClosed is returned by Run on a broker that has been closed.
var ErrClosed = errors.New("broker closed")

// Broker is a running MQTT broker. Create it with [New], serve with [Broker.Run], release with
// [Broker.Close].
type Broker struct {
	log   *slog.Logger
	srv   *mqtt.Server
	auth  *authHook
	tcp   *listener
	ws    *listener
	c     *counters
	store bool

	mu      sync.Mutex // serialises Serve and Close
	closed  bool
	served  bool
	done    chan struct{} // closed by Close
	closeFn func() error
}

// Stats are the broker's counters since New, for ops' metrics.
type Stats struct {
	ConnectionsRefused uint64 // CONNECTs refused: bad credentials, rate limit, client id or will rules, invalid CONNECT
	RateLimited        uint64 // of ConnectionsRefused, those refused unchecked because the username or IP was blocked
	ACLDenials         uint64 // subscriptions, publishes and deliveries the ACL denied, retained or QoS 2 publishes from PDAs
	MessagesDropped    uint64 // messages dropped because a client's write queue was full (MaxClientWritesPending)
	MessagesRefused    uint64 // QoS 1/2 messages refused for a client whose in-flight store was full (MaxInflight)
	PacketsTooLarge    uint64 // connections closed for a packet over MaxPacketSize
	StoreErrors        uint64 // failed store writes and undecodable store records
	ClientsConnected   int64  // clients connected now
	Inflight           int64  // QoS 1/2 messages in flight or queued, over all clients
	Retained           int64  // retained messages
}

// New validates cfg, binds the listeners and opens the store. Run serves; Close releases. log
// may be nil, in which case cfg.Logger is used, or nothing is logged.
func New(cfg Config, log *slog.Logger) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = cfg.Logger
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	log = log.With("part", "broker")

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = cfg.MaxPacketSize
	caps.MaximumInflight = uint16(cfg.MaxInflight)
	caps.MaximumClientWritesPending = int32(cfg.MaxClientWritesPending)
	// mochi's default of one day drops queued QoS 1 messages and retained status once they are a
	// day old; here a message waits for its consumer (bounded by MaxInflight) and a retained
	// status stays until it is replaced. MQTT 5 per-message expiry still applies.
	caps.MaximumMessageExpiryInterval = 0

	b := &Broker{log: log, c: &counters{}, done: make(chan struct{}), store: cfg.StorePath != ""}
	b.srv = mqtt.New(&mqtt.Options{
		Capabilities: caps,
		Logger:       log.With("component", "mochi"),
		// $SYS is closed to every role; publishing it costs a stop-the-world ReadMemStats.
		SysTopicResendInterval: 60,
	})

	var cleanup []func()
	fail := func(err error) (*Broker, error) {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
		return nil, err
	}

	b.auth = newAuthHook(cfg, log, b.c, time.Now)
	b.auth.sessionUser = func(id string) (string, bool) {
		if cl, ok := b.srv.Clients.Get(id); ok {
			return string(cl.Properties.Username), true
		}
		return "", false
	}
	if err := b.srv.AddHook(b.auth, nil); err != nil {
		return fail(fmt.Errorf("add auth hook: %w", err))
	}
	if cfg.StorePath != "" {
		st, err := openStore(cfg.StorePath, log, &b.c.storeErrors)
		if err != nil {
			return fail(err)
		}
		cleanup = append(cleanup, func() { _ = st.Stop() })
		if err := b.srv.AddHook(st, nil); err != nil {
			return fail(fmt.Errorf("add store hook: %w", err))
		}
	}
	tooLarge := func() { b.c.tooLarge.Add(1) }
	if cfg.TCPAddr != "" {
		l, err := newListener("mqtt", cfg.TCPAddr, false, log, cfg.MaxPacketSize, tooLarge)
		if err != nil {
			return fail(fmt.Errorf("listen mqtt on %s: %w", cfg.TCPAddr, err))
		}
		cleanup = append(cleanup, func() { _ = l.ln.Close() })
		b.tcp = l
		if err := b.srv.AddListener(l); err != nil {
			return fail(fmt.Errorf("add mqtt listener: %w", err))
		}
	}
	if cfg.WSAddr != "" {
		l, err := newListener("ws", cfg.WSAddr, true, log, cfg.MaxPacketSize, tooLarge)
		if err != nil {
			return fail(fmt.Errorf("listen ws on %s: %w", cfg.WSAddr, err))
		}
		cleanup = append(cleanup, func() { _ = l.ln.Close() })
		b.ws = l
		if err := b.srv.AddListener(l); err != nil {
			return fail(fmt.Errorf("add ws listener: %w", err))
		}
	}
	b.closeFn = sync.OnceValue(b.close)
	return b, nil
}

// Run serves until ctx is done or Close is called, then closes the broker. It returns nil on a
// clean stop.
func (b *Broker) Run(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	if b.served {
		b.mu.Unlock()
		return errors.New("broker: Run called twice")
	}
	b.served = true
	err := b.srv.Serve() // loads the store, starts the listeners; does not block
	b.mu.Unlock()
	if err != nil {
		_ = b.Close()
		return fmt.Errorf("start broker: %w", err)
	}
	b.log.Info("broker serving", "mqtt", b.Addr(), "ws", b.WSAddr(), "store", b.store)
	select {
	case <-ctx.Done():
	case <-b.done:
	}
	return b.Close()
}

// Close disconnects every client, closes the listeners and the store. It is idempotent and
// safe to call while Run is running.
func (b *Broker) Close() error { return b.closeFn() }

func (b *Broker) close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	close(b.done)
	// Server.Close closes the listeners (each waits for its connections), then stops the hooks,
	// which closes the store.
	err := b.srv.Close()
	b.log.Info("broker stopped")
	return err
}

// Addr returns the bound MQTT TCP address, e.g. "127.0.0.1:1883", or "" when TCP is off.
func (b *Broker) Addr() string {
	if b.tcp == nil {
		return ""
	}
	return b.tcp.Address()
}

// WSAddr returns the bound MQTT-over-WebSocket address, or "" when WebSocket is off.
func (b *Broker) WSAddr() string {
	if b.ws == nil {
		return ""
	}
	return b.ws.Address()
}

// Stats returns the broker's counters.
func (b *Broker) Stats() Stats {
	info := b.srv.Info
	return Stats{
		ConnectionsRefused: b.c.refused.Load(),
		RateLimited:        b.c.rateLimited.Load(),
		ACLDenials:         b.c.aclDenied.Load(),
		MessagesDropped:    b.c.dropped.Load(),
		MessagesRefused:    uint64(atomic.LoadInt64(&info.InflightDropped)),
		PacketsTooLarge:    b.c.tooLarge.Load(),
		StoreErrors:        b.c.storeErrors.Load(),
		ClientsConnected:   atomic.LoadInt64(&info.ClientsConnected),
		Inflight:           atomic.LoadInt64(&info.Inflight),
		Retained:           atomic.LoadInt64(&info.Retained),
	}
}

// Disconnect closes the connection of the client with clientID, e.g. a revoked PDA
// (security.md §10), and reports whether it was connected. Its persistent session, if any,
// stays; its next CONNECT is authenticated afresh, and deliveries queued for the session are
// checked against Accounts and Lookup again (a revoked PDA's account is gone from Lookup).
func (b *Broker) Disconnect(clientID string) bool {
	b.auth.forget(clientID)
	cl, ok := b.srv.Clients.Get(clientID)
	if !ok || cl.Closed() {
		return false
	}
	_ = b.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
	b.log.Info("client disconnected by request", "client_id", clientID)
	return true
}
