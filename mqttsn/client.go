package mqttsn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Will is the message the gateway publishes for a client it has lost.
type Will struct {
	Topic   string
	Message []byte
	QoS     int // 0 or 1
	Retain  bool
}

// ClientConfig configures a [Client]. Zero fields take their defaults.
type ClientConfig struct {
	ClientID      string            // 1–23 characters; required
	KeepAlive     time.Duration     // keep-alive sent in CONNECT; default 60s, 1s..18h, whole seconds
	RetryInterval time.Duration     // Tretry; default 10s
	MaxRetries    int               // Nretry, retransmissions before giving up; default 4
	Predefined    map[string]uint16 // topic name -> predefined topic id, agreed with the gateway
	CleanSession  bool              // CONNECT's CleanSession flag
	Will          *Will             // optional; sent when the gateway prompts for it
	Logger        *slog.Logger      // default: discard
}

func (cfg ClientConfig) withDefaults() (ClientConfig, error) {
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = 60 * time.Second
	}
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = 10 * time.Second
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var errs []error
	if n := len(cfg.ClientID); n < 1 || n > 23 {
		errs = append(errs, fmt.Errorf("client id %q: length %d outside 1..23", cfg.ClientID, n))
	}
	if cfg.KeepAlive < time.Second || cfg.KeepAlive > 65535*time.Second {
		errs = append(errs, fmt.Errorf("keep-alive %v outside 1s..65535s", cfg.KeepAlive))
	}
	if cfg.RetryInterval < 0 || cfg.MaxRetries < 0 {
		errs = append(errs, errors.New("retry interval and max retries must not be negative"))
	}
	for name, id := range cfg.Predefined {
		if id == 0 || id == 0xFFFF {
			errs = append(errs, fmt.Errorf("predefined topic %q: reserved id %#04x", name, id))
		}
	}
	if w := cfg.Will; w != nil && (w.Topic == "" || w.QoS < 0 || w.QoS > 1) {
		errs = append(errs, fmt.Errorf("will: topic %q, qos %d: need a topic and qos 0 or 1", w.Topic, w.QoS))
	}
	return cfg, errors.Join(errs...)
}

type clientState int

const (
	clientDisconnected clientState = iota
	clientConnecting
	clientActive
	clientAsleep
	clientLost
	clientClosed
)

// Client is an MQTT-SN client for a collection terminal. It talks to one
// gateway over a [net.PacketConn] (UDP, or [NewSerialConn] on the radio),
// which it owns: Close closes it. The conn must support SetReadDeadline,
// which the client uses to stop its reader.
//
// Requests that expect an answer (CONNECT, REGISTER, QoS 1 PUBLISH,
// SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT) are serialised: one is
// outstanding at a time and concurrent callers queue. Each is retransmitted
// every RetryInterval, at most MaxRetries times; then the connection is
// lost and calls fail with an error wrapping [ErrConnectionLost] until
// Connect succeeds again.
//
// All methods are safe for concurrent use.
type Client struct {
	conn     net.PacketConn
	gw       net.Addr
	gwKey    string
	cfg      ClientConfig
	log      *slog.Logger
	predefBy map[uint16]string // predefined id -> name

	sem      chan struct{} // one outstanding request
	closedCh chan struct{}
	closeErr error
	once     sync.Once

	mu       sync.Mutex
	state    clientState
	lostErr  error
	sess     *clientSession
	waiter   *waiter
	msgID    uint16
	topics   map[string]uint16 // normal ids registered in this connection
	names    map[uint16]string // normal id -> name (REGACK, SUBACK, gateway REGISTER)
	subs     []subscription
	lastSent time.Time
	acked    dedup // incoming QoS 1 already handled
}

// clientSession holds what lives from Connect to Disconnect, loss or
// Close: the reader, the handler goroutine and (while active) the pinger.
type clientSession struct {
	ctx          context.Context
	cancel       context.CancelFunc
	activeCancel context.CancelFunc
	wg           sync.WaitGroup
	deliver      chan *inbound
	inProgress   map[uint16]bool // QoS 1 MsgIds being handled; guarded by Client.mu
	activity     chan struct{}   // a packet other than PINGRESP arrived
}

type inbound struct {
	topic string
	p     *Publish
}

type subscription struct {
	filter string
	qos    QoS
	h      func(topic string, payload []byte) error
}

type waiter struct {
	accept func(Packet) bool
	ch     chan Packet
}

// NewClient returns a client that will talk to the gateway at gateway over
// conn. It sends nothing until Connect, or a QoS −1 Publish.
func NewClient(conn net.PacketConn, gateway net.Addr, cfg ClientConfig) (*Client, error) {
	if conn == nil || gateway == nil {
		return nil, errors.New("new mqtt-sn client: nil conn or gateway address")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("new mqtt-sn client: %w", err)
	}
	c := &Client{
		conn:     conn,
		gw:       gateway,
		gwKey:    gateway.String(),
		cfg:      cfg,
		log:      cfg.Logger.With("component", "mqttsn-client", "client_id", cfg.ClientID),
		predefBy: make(map[uint16]string, len(cfg.Predefined)),
		sem:      make(chan struct{}, 1),
		closedCh: make(chan struct{}),
		topics:   make(map[string]uint16),
		names:    make(map[uint16]string),
	}
	if cfg.Predefined != nil {
		c.cfg.Predefined = make(map[string]uint16, len(cfg.Predefined))
	}
	for name, id := range cfg.Predefined {
		c.cfg.Predefined[name] = id
		c.predefBy[id] = name
	}
	return c, nil
}

// Connect sends CONNECT, answers the gateway's Will prompts when a Will is
// configured, and waits for CONNACK. It starts the client's reader and
// keep-alive goroutines, which stop on Disconnect, on connection loss and
// on Close. Calling Connect while asleep makes the client active again.
// With CleanSession it subscribes again to every topic of earlier Subscribe
// calls. A rejection returns a [*RejectedError].
func (c *Client) Connect(ctx context.Context) error {
	if err := c.acquire(ctx); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer c.release()

	c.mu.Lock()
	if c.state == clientClosed {
		c.mu.Unlock()
		return fmt.Errorf("connect: %w", ErrClosed)
	}
	old := c.sess
	c.sess = nil
	c.mu.Unlock()
	c.teardown(old)

	s := c.startSession()
	c.mu.Lock()
	c.state = clientConnecting
	c.lostErr = nil
	if c.cfg.CleanSession {
		clear(c.topics)
		clear(c.names)
	}
	c.mu.Unlock()

	err := c.connectFlow(ctx, s)
	c.mu.Lock()
	if err == nil && c.state == clientConnecting {
		c.state = clientActive
		c.startPinger(s)
		resub := c.cfg.CleanSession && len(c.subs) > 0
		c.mu.Unlock()
		c.log.Info("mqtt-sn connected", "gateway", c.gwKey)
		if resub {
			if err := c.resubscribe(ctx); err != nil {
				return fmt.Errorf("connect: %w", err)
			}
		}
		return nil
	}
	if err == nil {
		err = c.connErrLocked()
	}
	if c.state == clientConnecting {
		c.state = clientDisconnected
	}
	if c.sess == s {
		c.sess = nil
	}
	c.mu.Unlock()
	c.teardown(s)
	return fmt.Errorf("connect: %w", err)
}

func (c *Client) connectFlow(ctx context.Context, s *clientSession) error {
	connect := &Connect{
		Will:         c.cfg.Will != nil,
		CleanSession: c.cfg.CleanSession,
		Duration:     uint16(c.cfg.KeepAlive / time.Second),
		ClientID:     c.cfg.ClientID,
	}
	w := c.setWaiter(func(p Packet) bool {
		switch p.(type) {
		case *Connack, *WillTopicReq, *WillMsgReq:
			return true
		}
		return false
	})
	defer c.clearWaiter(w)
	if err := c.send(connect); err != nil {
		return err
	}
	t := time.NewTimer(c.cfg.RetryInterval)
	defer t.Stop()
	for tries := 0; ; {
		select {
		case p := <-w.ch:
			switch p := p.(type) {
			case *Connack:
				if p.ReturnCode != Accepted {
					return &RejectedError{Op: "connect", Code: p.ReturnCode}
				}
				return nil
			default:
				if err := c.answerWillPrompt(p); err != nil {
					return err
				}
			}
			t.Reset(c.cfg.RetryInterval)
		case <-t.C:
			tries++
			if tries > c.cfg.MaxRetries {
				return fmt.Errorf("no connack after %d retransmissions: %w", c.cfg.MaxRetries, ErrTimeout)
			}
			if err := c.send(connect); err != nil {
				return err
			}
			t.Reset(c.cfg.RetryInterval)
		case <-ctx.Done():
			return ctx.Err()
		case <-s.ctx.Done():
			return c.connErr()
		}
	}
}

// answerWillPrompt answers WILLTOPICREQ and WILLMSGREQ, during CONNECT or
// when a gateway re-prompts after a duplicated CONNECT.
func (c *Client) answerWillPrompt(p Packet) error {
	w := c.cfg.Will
	switch p.(type) {
	case *WillTopicReq:
		if w == nil {
			return c.send(&WillTopic{})
		}
		return c.send(&WillTopic{QoS: QoS(w.QoS), Retain: w.Retain, Topic: w.Topic})
	case *WillMsgReq:
		var msg []byte
		if w != nil {
			msg = w.Message
		}
		return c.send(&WillMsg{Msg: msg})
	}
	return nil
}

// Close stops the client's goroutines and closes its conn. It sends
// nothing: call Disconnect first for a clean end. Close is idempotent.
func (c *Client) Close() error {
	c.once.Do(func() {
		c.mu.Lock()
		c.state = clientClosed
		s := c.sess
		c.sess = nil
		c.mu.Unlock()
		close(c.closedCh)
		if s != nil {
			s.cancel()
		}
		c.closeErr = c.conn.Close()
		if s != nil {
			s.wg.Wait()
		}
	})
	return c.closeErr
}

func isDisconnect(p Packet) bool { _, ok := p.(*Disconnect); return ok }

func (c *Client) acquire(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.closedCh:
		return ErrClosed
	}
}

func (c *Client) release() { <-c.sem }

func (c *Client) needActive() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != clientActive {
		return c.connErrLocked()
	}
	return nil
}

func (c *Client) connErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connErrLocked()
}

func (c *Client) connErrLocked() error {
	switch c.state {
	case clientLost:
		return c.lostErr
	case clientClosed:
		return ErrClosed
	}
	return ErrNotConnected
}

func (c *Client) nextMsgID() uint16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgID++
	if c.msgID == 0 {
		c.msgID = 1
	}
	return c.msgID
}

func (c *Client) send(p Packet) error {
	b, err := Append(nil, p)
	if err != nil {
		return err
	}
	if _, err := c.conn.WriteTo(b, c.gw); err != nil {
		return fmt.Errorf("send %v: %w", p.Type(), err)
	}
	c.mu.Lock()
	c.lastSent = time.Now()
	c.mu.Unlock()
	return nil
}

func (c *Client) setWaiter(accept func(Packet) bool) *waiter {
	w := &waiter{accept: accept, ch: make(chan Packet, 8)}
	c.mu.Lock()
	c.waiter = w
	c.mu.Unlock()
	return w
}

func (c *Client) clearWaiter(w *waiter) {
	c.mu.Lock()
	if c.waiter == w {
		c.waiter = nil
	}
	c.mu.Unlock()
}

// exchange sends p and waits for an answer that accept recognises,
// retransmitting every RetryInterval (calling retry first, to set DUP).
// After MaxRetries retransmissions the connection is lost. It runs with
// the request slot held.
func (c *Client) exchange(ctx context.Context, op string, p Packet, accept func(Packet) bool, retry func()) (Packet, error) {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s == nil {
		return nil, c.connErr()
	}
	w := c.setWaiter(accept)
	defer c.clearWaiter(w)
	if err := c.send(p); err != nil {
		return nil, err
	}
	t := time.NewTimer(c.cfg.RetryInterval)
	defer t.Stop()
	for tries := 0; ; {
		select {
		case r := <-w.ch:
			return r, nil
		case <-t.C:
			tries++
			if tries > c.cfg.MaxRetries {
				return nil, c.markLost(s, fmt.Errorf("%s: no answer after %d retransmissions: %w", op, c.cfg.MaxRetries, ErrTimeout))
			}
			if retry != nil {
				retry()
			}
			if err := c.send(p); err != nil {
				return nil, err
			}
			t.Reset(c.cfg.RetryInterval)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.ctx.Done():
			return nil, c.connErr()
		}
	}
}

// markLost declares the connection of session s lost and returns the error
// that calls get until the next Connect.
func (c *Client) markLost(s *clientSession, cause error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess != s || s == nil {
		return c.connErrLocked()
	}
	if c.state == clientActive || c.state == clientAsleep || c.state == clientConnecting {
		c.state = clientLost
		c.lostErr = fmt.Errorf("%w: %w", ErrConnectionLost, cause)
		c.log.Warn("mqtt-sn connection lost", "err", cause)
	}
	s.cancel()
	_ = c.conn.SetReadDeadline(time.Now()) // wake the reader so it exits
	return c.connErrLocked()
}
