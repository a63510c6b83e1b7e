// Package bus is MeterLink's MQTT client: the only importer of eclipse/paho.mqtt.golang.
//
// It adds what every part needs on top of paho: a non-empty client id, contexts on every
// call, subscriptions restored after a reconnect, explicit acknowledgement (a QoS 1 message
// is acknowledged only when its handler returns nil), and paho's logs routed to slog.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// ErrRefused is returned when the broker refuses the connection (bad credentials, not
// authorised, or a refusal code MQTT 3.1.1 does not define).
var ErrRefused = errors.New("connection refused by broker")

// ErrClosed is returned by calls on a closed client.
var ErrClosed = errors.New("bus client closed")

// Message is one received MQTT message.
type Message struct {
	Topic     string
	Payload   []byte
	Duplicate bool
	QoS       byte
}

// Handler handles a message. Returning nil acknowledges it (QoS 1); returning an error leaves
// it unacknowledged so the broker redelivers it after the next reconnect. A handler that meets
// bad input logs it and returns nil: redelivering bad input helps nobody.
type Handler func(ctx context.Context, m Message) error

// Config sets up a client.
type Config struct {
	URL          string          // tcp://host:port or ws://host:port/path; required
	ClientID     string          // required, non-empty (paho issue #789)
	Username     string          // optional
	Password     func() string   // optional; called on every (re)connect
	CleanSession bool            // false keeps the session and queued QoS 1 messages across reconnects
	KeepAlive    time.Duration   // default 30s
	OnConnect    func()          // optional, after every successful (re)connect and resubscription
	OnLost       func(err error) // optional
	Logger       *slog.Logger    // required
	MaxReconnect time.Duration   // cap of the reconnect backoff; default 10s
}

// Client is a connected or connecting MQTT client.
type Client struct {
	cfg Config
	log *slog.Logger
	c   mqtt.Client

	ctx    context.Context // cancelled by Close; handlers run under it
	cancel context.CancelFunc

	connecting atomic.Bool // Connect is running; it subscribes itself

	mu   sync.Mutex
	subs map[string]sub // filter → subscription, restored on reconnect
}

type sub struct {
	qos byte
	h   Handler
}

// New builds a client; Connect connects it.
func New(cfg Config) (*Client, error) {
	var errs []error
	if cfg.ClientID == "" {
		errs = append(errs, errors.New("bus: client id is required"))
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" || (u.Scheme != "tcp" && u.Scheme != "ws" && u.Scheme != "ssl" && u.Scheme != "tls" && u.Scheme != "wss" && u.Scheme != "mqtt") {
		errs = append(errs, fmt.Errorf("bus: broker url %q: want tcp://host:port, ws://host:port/path or tls://host:port", cfg.URL))
	}
	if cfg.Logger == nil {
		errs = append(errs, errors.New("bus: logger is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	if cfg.MaxReconnect == 0 {
		cfg.MaxReconnect = 10 * time.Second
	}
	c := &Client{cfg: cfg, log: cfg.Logger.With("component", "bus", "client_id", cfg.ClientID), subs: map[string]sub{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())

	o := mqtt.NewClientOptions().
		AddBroker(cfg.URL).
		SetClientID(cfg.ClientID).
		SetProtocolVersion(4). // MQTT 3.1.1 only: paho would retry a refusal as 3.1
		SetCleanSession(cfg.CleanSession).
		SetKeepAlive(cfg.KeepAlive).
		SetAutoReconnect(true).
		SetConnectRetry(false).
		SetMaxReconnectInterval(cfg.MaxReconnect).
		SetConnectTimeout(10 * time.Second).
		SetWriteTimeout(10 * time.Second).
		SetOrderMatters(true).
		SetAutoAckDisabled(true).
		SetResumeSubs(false)
	if cfg.Username != "" || cfg.Password != nil {
		o.SetCredentialsProvider(func() (string, string) {
			pw := ""
			if cfg.Password != nil {
				pw = cfg.Password()
			}
			return cfg.Username, pw
		})
	}
	// Messages of a persistent session can arrive before the subscriptions are renewed after a
	// (re)connect; the default handler routes them by the filters already registered, so none
	// is left unacknowledged.
	o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { c.dispatch(m) })
	o.SetOnConnectHandler(func(mqtt.Client) {
		if c.connecting.Load() {
			return // Connect subscribes before it returns
		}
		go c.resubscribe()
	})
	o.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		c.log.Warn("broker connection lost", "err", err)
		if cfg.OnLost != nil {
			cfg.OnLost(err)
		}
	})
	c.c = mqtt.NewClient(o)
	return c, nil
}

// Connect connects to the broker, waiting at most until ctx is done. After a first success
// the client reconnects by itself.
// The subscriptions registered with Subscribe are made before Connect returns, so a
// message published to them afterwards is not missed.
func (c *Client) Connect(ctx context.Context) error {
	c.connecting.Store(true)
	defer c.connecting.Store(false)
	tok := c.c.Connect()
	if err := wait(ctx, tok); err != nil {
		return fmt.Errorf("connect to %s: %w", c.cfg.URL, classify(err))
	}
	// paho v1.5.1 reads some refusal codes as success (issue #789): trust only a live session.
	if !c.c.IsConnectionOpen() {
		return fmt.Errorf("connect to %s: %w", c.cfg.URL, ErrRefused)
	}
	if err := c.subscribeAll(ctx); err != nil {
		// Connected, but a subscription failed (refused by the ACL, or timed out): it is
		// made again on the next reconnect. An operator must see it.
		c.log.Error("subscription failed", "err", err)
	}
	if c.cfg.OnConnect != nil {
		c.cfg.OnConnect()
	}
	return nil
}

func classify(err error) error {
	for _, refused := range []error{packets.ErrorRefusedBadProtocolVersion, packets.ErrorRefusedIDRejected,
		packets.ErrorRefusedServerUnavailable, packets.ErrorRefusedBadUsernameOrPassword,
		packets.ErrorRefusedNotAuthorised} {
		if errors.Is(err, refused) {
			return fmt.Errorf("%w: %v", ErrRefused, err)
		}
	}
	return err
}

func wait(ctx context.Context, tok mqtt.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// IsConnected reports whether the client has a live connection now.
func (c *Client) IsConnected() bool { return c.c.IsConnectionOpen() }

// Publish sends a message and, for QoS 1, waits for the broker's PUBACK or ctx. A PUBACK is
// not a delivery receipt across reconnects (paho issue #563): outboxes delete only on the
// end-to-end acknowledgement.
func (c *Client) Publish(ctx context.Context, topic string, qos byte, retained bool, payload []byte) error {
	if c.ctx.Err() != nil {
		return ErrClosed
	}
	if err := wait(ctx, c.c.Publish(topic, qos, retained, payload)); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

// Subscribe subscribes filter with handler h and keeps the subscription across reconnects.
// Called before Connect, it registers the subscription, which Connect then makes: a
// persistent session's queued messages then find their handler at once.
func (c *Client) Subscribe(ctx context.Context, filter string, qos byte, h Handler) error {
	c.mu.Lock()
	c.subs[filter] = sub{qos: qos, h: h}
	c.mu.Unlock()
	if !c.c.IsConnectionOpen() {
		return nil
	}
	return c.subscribe(ctx, filter, qos, h)
}

// handle runs h on m and acknowledges m when h returns nil.
func (c *Client) handle(h Handler, m mqtt.Message) {
	msg := Message{Topic: m.Topic(), Payload: m.Payload(), Duplicate: m.Duplicate(), QoS: m.Qos()}
	if err := h(c.ctx, msg); err != nil {
		c.log.Warn("message left unacknowledged", "topic", msg.Topic, "err", err)
		return
	}
	m.Ack()
}

// dispatch routes a message that arrived before its subscription was renewed.
func (c *Client) dispatch(m mqtt.Message) {
	c.mu.Lock()
	var h Handler
	for f, s := range c.subs {
		if Match(f, m.Topic()) {
			h = s.h
			break
		}
	}
	c.mu.Unlock()
	if h == nil {
		c.log.Warn("message without a handler acknowledged and dropped", "topic", m.Topic())
		m.Ack()
		return
	}
	c.handle(h, m)
}

// Match reports whether topic matches the MQTT filter (a shared subscription's
// $share/group/ prefix is ignored).
func Match(filter, topic string) bool {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		if _, f, found := strings.Cut(rest, "/"); found {
			filter = f
		}
	}
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fl {
		if f == "#" {
			return true
		}
		if i >= len(tl) || (f != "+" && f != tl[i]) {
			return false
		}
	}
	return len(fl) == len(tl)
}

func (c *Client) subscribe(ctx context.Context, filter string, qos byte, h Handler) error {
	tok := c.c.Subscribe(filter, qos, func(_ mqtt.Client, m mqtt.Message) { c.handle(h, m) })
	if err := wait(ctx, tok); err != nil {
		return fmt.Errorf("subscribe %s: %w", filter, err)
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		for _, code := range st.Result() {
			if code == 0x80 {
				return fmt.Errorf("subscribe %s: %w", filter, ErrRefused)
			}
		}
	}
	return nil
}

// subscribeAll makes every registered subscription and returns the first failure.
func (c *Client) subscribeAll(ctx context.Context) error {
	c.mu.Lock()
	subs := make(map[string]sub, len(c.subs))
	for f, s := range c.subs {
		subs[f] = s
	}
	c.mu.Unlock()
	var first error
	for f, s := range subs {
		if err := c.subscribe(ctx, f, s.qos, s.h); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// resubscribe renews the subscriptions after paho reconnected by itself.
func (c *Client) resubscribe() {
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	if err := c.subscribeAll(ctx); err != nil {
		c.log.Warn("resubscribe failed", "err", err)
	}
	if c.cfg.OnConnect != nil {
		c.cfg.OnConnect()
	}
}

// Close disconnects, waiting up to 250 ms for in-flight work. It is idempotent.
func (c *Client) Close() error {
	if c.ctx.Err() != nil {
		return nil
	}
	c.cancel()
	c.c.Disconnect(250)
	return nil
}

// RouteLibraryLogs sends paho's process-wide logs to log (warnings and errors only; paho's
// debug output is per packet). Call it from a subcommand's Main, never from init.
func RouteLibraryLogs(log *slog.Logger) {
	l := log.With("component", "paho")
	mqtt.ERROR = printer{l, slog.LevelError}
	mqtt.CRITICAL = printer{l, slog.LevelError}
	mqtt.WARN = printer{l, slog.LevelWarn}
}

type printer struct {
	l     *slog.Logger
	level slog.Level
}

func (p printer) Println(v ...any) {
	p.l.Log(context.Background(), p.level, "paho", "msg", fmt.Sprint(v...))
}

func (p printer) Printf(format string, v ...any) {
	p.l.Log(context.Background(), p.level, "paho", "msg", fmt.Sprintf(format, v...))
}
