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
	c.cfg.Predefined = make(map[string]uint16, len(cfg.Predefined))
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
// A rejection returns a [*RejectedError].
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
		c.subs = nil
	}
	c.mu.Unlock()

	err := c.connectFlow(ctx, s)
	c.mu.Lock()
	if err == nil && c.state == clientConnecting {
		c.state = clientActive
		c.startPinger(s)
		c.mu.Unlock()
		c.log.Info("mqtt-sn connected", "gateway", c.gwKey)
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

// Publish publishes payload on topic at QoS -1, 0 or 1.
//
// The topic is sent as its predefined id if it is in
// ClientConfig.Predefined, as a short name if it has two characters, and
// otherwise as a normal id obtained by REGISTER (once per connection).
//
// QoS 1 blocks until the gateway's PUBACK, retransmitting with DUP set and
// the same MsgId; a PUBACK with "invalid topic id" on a normal id makes it
// register again and republish. QoS 0 returns once sent. QoS −1 needs no
// connection and only a predefined or short topic; it has no feedback.
func (c *Client) Publish(ctx context.Context, topic string, qos int, payload []byte) error {
	switch qos {
	case -1:
		tt, id, ok := c.fixedTopic(topic)
		if !ok {
			return fmt.Errorf("publish %q at qos -1: %w: needs a predefined or short topic", topic, ErrInvalidPacket)
		}
		c.mu.Lock()
		closed := c.state == clientClosed
		c.mu.Unlock()
		if closed {
			return fmt.Errorf("publish %q: %w", topic, ErrClosed)
		}
		return c.send(&Publish{QoS: QoSMinus1, TopicIDType: tt, TopicID: id, Data: payload})
	case 0, 1:
	default:
		return fmt.Errorf("publish %q: qos %d not supported", topic, qos)
	}
	if tt, id, ok := c.fixedTopic(topic); ok && qos == 0 {
		if err := c.needActive(); err != nil {
			return fmt.Errorf("publish %q: %w", topic, err)
		}
		return c.send(&Publish{TopicIDType: tt, TopicID: id, Data: payload})
	}
	if err := c.acquireActive(ctx); err != nil {
		return fmt.Errorf("publish %q: %w", topic, err)
	}
	defer c.release()
	if err := c.publishLocked(ctx, topic, QoS(qos), payload); err != nil {
		return fmt.Errorf("publish %q: %w", topic, err)
	}
	return nil
}

// publishLocked runs with the request slot held.
func (c *Client) publishLocked(ctx context.Context, topic string, qos QoS, payload []byte) error {
	if err := c.needActive(); err != nil {
		return err
	}
	tt, id, err := c.resolve(ctx, topic)
	if err != nil {
		return err
	}
	p := &Publish{QoS: qos, TopicIDType: tt, TopicID: id, Data: payload}
	if qos == QoS0 {
		return c.send(p)
	}
	p.MsgID = c.nextMsgID()
	for reregistered := false; ; reregistered = true {
		ack, err := c.exchange(ctx, "publish", p, func(r Packet) bool {
			a, ok := r.(*Puback)
			return ok && a.MsgID == p.MsgID
		}, func() { p.DUP = true })
		if err != nil {
			return err
		}
		rc := ack.(*Puback).ReturnCode
		if rc == Accepted {
			return nil
		}
		if rc != RejectedInvalidTopicID || tt != TopicNormal || reregistered {
			return &RejectedError{Op: "publish", Code: rc}
		}
		// The gateway lost our registration (a clean reconnect, a restart):
		// register again and resend with the same MsgId, so that a gateway
		// that did accept it recognises the duplicate.
		c.forgetTopic(topic)
		if _, p.TopicID, err = c.resolve(ctx, topic); err != nil {
			return err
		}
		p.DUP = true
	}
}

// fixedTopic resolves a predefined or short topic.
func (c *Client) fixedTopic(topic string) (TopicIDType, uint16, bool) {
	if id, ok := c.cfg.Predefined[topic]; ok {
		return TopicPredefined, id, true
	}
	if id, ok := ShortTopicID(topic); ok {
		return TopicShort, id, true
	}
	return 0, 0, false
}

// resolve returns the topic's id, registering it if needed. It runs with
// the request slot held.
func (c *Client) resolve(ctx context.Context, topic string) (TopicIDType, uint16, error) {
	if tt, id, ok := c.fixedTopic(topic); ok {
		return tt, id, nil
	}
	if topic == "" || hasWildcard(topic) {
		return 0, 0, fmt.Errorf("%w: cannot publish to %q", ErrInvalidPacket, topic)
	}
	c.mu.Lock()
	id, ok := c.topics[topic]
	c.mu.Unlock()
	if ok {
		return TopicNormal, id, nil
	}
	reg := &Register{MsgID: c.nextMsgID(), TopicName: topic}
	r, err := c.exchange(ctx, "register", reg, func(p Packet) bool {
		a, ok := p.(*Regack)
		return ok && a.MsgID == reg.MsgID
	}, nil)
	if err != nil {
		return 0, 0, err
	}
	ack := r.(*Regack)
	if ack.ReturnCode != Accepted {
		return 0, 0, &RejectedError{Op: "register", Code: ack.ReturnCode}
	}
	if ack.TopicID == 0 || ack.TopicID == 0xFFFF {
		return 0, 0, fmt.Errorf("register %q: gateway assigned reserved id %#04x", topic, ack.TopicID)
	}
	c.mu.Lock()
	c.topics[topic] = ack.TopicID
	c.names[ack.TopicID] = topic
	c.mu.Unlock()
	return TopicNormal, ack.TopicID, nil
}

func (c *Client) forgetTopic(topic string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id, ok := c.topics[topic]; ok {
		delete(c.topics, topic)
		delete(c.names, id)
	}
}

// Subscribe subscribes to topic (a name, possibly with wildcards, a
// predefined topic name from ClientConfig.Predefined, or a two-character
// short name) at QoS 0 or 1, and routes matching publications to h.
//
// h runs on the client's handler goroutine, one message at a time, in
// arrival order; it may call Publish. A QoS 1 publication is acknowledged
// only when h returns nil, so the gateway retransmits it otherwise;
// duplicates of an acknowledged one are acknowledged again without calling
// h. A publication on an unknown topic id is answered with PUBACK
// "invalid topic id". A rejection returns a [*RejectedError].
func (c *Client) Subscribe(ctx context.Context, topic string, qos int, h func(topic string, payload []byte) error) error {
	if qos < 0 || qos > 1 {
		return fmt.Errorf("subscribe %q: qos %d not supported", topic, qos)
	}
	if h == nil || topic == "" {
		return fmt.Errorf("subscribe %q: empty topic or nil handler", topic)
	}
	if err := c.acquireActive(ctx); err != nil {
		return fmt.Errorf("subscribe %q: %w", topic, err)
	}
	defer c.release()
	if err := c.needActive(); err != nil {
		return fmt.Errorf("subscribe %q: %w", topic, err)
	}
	sub := &Subscribe{QoS: QoS(qos), MsgID: c.nextMsgID()}
	sub.TopicIDType, sub.TopicID, sub.TopicName = c.subscribeTopic(topic)

	// Install the handler first: the gateway may publish right after SUBACK.
	c.mu.Lock()
	prev := c.subs
	c.subs = append(withoutFilter(c.subs, topic), subscription{filter: topic, h: h})
	c.mu.Unlock()

	r, err := c.exchange(ctx, "subscribe", sub, func(p Packet) bool {
		a, ok := p.(*Suback)
		return ok && a.MsgID == sub.MsgID
	}, func() { sub.DUP = true })
	if err == nil && r.(*Suback).ReturnCode != Accepted {
		err = &RejectedError{Op: "subscribe", Code: r.(*Suback).ReturnCode}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.subs = prev
		return fmt.Errorf("subscribe %q: %w", topic, err)
	}
	if ack := r.(*Suback); sub.TopicIDType == TopicNormal && ack.TopicID != 0 && ack.TopicID != 0xFFFF && !hasWildcard(topic) {
		c.names[ack.TopicID] = topic
		c.topics[topic] = ack.TopicID
	}
	return nil
}

// Unsubscribe ends a subscription made by Subscribe with the same topic.
func (c *Client) Unsubscribe(ctx context.Context, topic string) error {
	if err := c.acquireActive(ctx); err != nil {
		return fmt.Errorf("unsubscribe %q: %w", topic, err)
	}
	defer c.release()
	if err := c.needActive(); err != nil {
		return fmt.Errorf("unsubscribe %q: %w", topic, err)
	}
	u := &Unsubscribe{MsgID: c.nextMsgID()}
	u.TopicIDType, u.TopicID, u.TopicName = c.subscribeTopic(topic)
	if _, err := c.exchange(ctx, "unsubscribe", u, func(p Packet) bool {
		a, ok := p.(*Unsuback)
		return ok && a.MsgID == u.MsgID
	}, nil); err != nil {
		return fmt.Errorf("unsubscribe %q: %w", topic, err)
	}
	c.mu.Lock()
	c.subs = withoutFilter(c.subs, topic)
	c.mu.Unlock()
	return nil
}

func (c *Client) subscribeTopic(topic string) (TopicIDType, uint16, string) {
	if id, ok := c.cfg.Predefined[topic]; ok {
		return TopicPredefined, id, ""
	}
	if id, ok := ShortTopicID(topic); ok && !hasWildcard(topic) {
		return TopicShort, id, ""
	}
	return TopicNormal, 0, topic
}

func withoutFilter(subs []subscription, filter string) []subscription {
	out := make([]subscription, 0, len(subs))
	for _, s := range subs {
		if s.filter != filter {
			out = append(out, s)
		}
	}
	return out
}

// Disconnect sends DISCONNECT, waits for the gateway's DISCONNECT and stops
// the client's goroutines. The gateway does not publish the Will.
func (c *Client) Disconnect(ctx context.Context) error {
	if err := c.acquire(ctx); err != nil {
		return fmt.Errorf("disconnect: %w", err)
	}
	defer c.release()
	c.mu.Lock()
	s, st := c.sess, c.state
	c.mu.Unlock()
	if st != clientActive && st != clientAsleep {
		return fmt.Errorf("disconnect: %w", c.connErr())
	}
	_, err := c.exchange(ctx, "disconnect", &Disconnect{}, isDisconnect, nil)
	c.mu.Lock()
	if c.state != clientClosed {
		c.state = clientDisconnected
		c.lostErr = nil
	}
	if c.sess == s {
		c.sess = nil
	}
	c.mu.Unlock()
	c.teardown(s)
	if err != nil {
		return fmt.Errorf("disconnect: %w", err)
	}
	c.log.Info("mqtt-sn disconnected")
	return nil
}

// Sleep tells the gateway that the client sleeps for d (rounded up to whole
// seconds, at most about 18 h): DISCONNECT with a Duration. The gateway
// buffers downlink messages until Wake. Keep-alive pings stop; the reader
// keeps running. Call Wake within d, or Connect to become active again.
func (c *Client) Sleep(ctx context.Context, d time.Duration) error {
	secs := (d + time.Second - 1) / time.Second
	if secs < 1 || secs > 65535 {
		return fmt.Errorf("sleep %v: outside 1s..65535s", d)
	}
	if err := c.acquireActive(ctx); err != nil {
		return fmt.Errorf("sleep: %w", err)
	}
	defer c.release()
	if err := c.needActive(); err != nil {
		return fmt.Errorf("sleep: %w", err)
	}
	if _, err := c.exchange(ctx, "sleep", &Disconnect{HasDuration: true, Duration: uint16(secs)}, isDisconnect, nil); err != nil {
		return fmt.Errorf("sleep: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == clientActive {
		c.state = clientAsleep
		if c.sess != nil && c.sess.activeCancel != nil {
			c.sess.activeCancel()
		}
	}
	return nil
}

// Wake wakes a sleeping client: it sends PINGREQ with the ClientId,
// receives the downlink messages the gateway buffered (delivered to the
// Subscribe handlers, in order) and returns at the gateway's PINGRESP,
// after which the client is asleep again. The retransmission timer restarts
// on every message from the gateway; after MaxRetries unanswered PINGREQs
// the connection is lost.
func (c *Client) Wake(ctx context.Context) error {
	if err := c.acquireActive(ctx); err != nil {
		return fmt.Errorf("wake: %w", err)
	}
	defer c.release()
	c.mu.Lock()
	s, st := c.sess, c.state
	c.mu.Unlock()
	if st != clientAsleep || s == nil {
		return fmt.Errorf("wake: %w", c.connErr())
	}
	w := c.setWaiter(func(p Packet) bool { _, ok := p.(*Pingresp); return ok })
	defer c.clearWaiter(w)
	select {
	case <-s.activity:
	default:
	}
	ping := &Pingreq{ClientID: c.cfg.ClientID}
	if err := c.send(ping); err != nil {
		return fmt.Errorf("wake: %w", err)
	}
	t := time.NewTimer(c.cfg.RetryInterval)
	defer t.Stop()
	for tries := 0; ; {
		select {
		case <-w.ch:
			return nil
		case <-s.activity:
			t.Reset(c.cfg.RetryInterval)
		case <-t.C:
			tries++
			if tries > c.cfg.MaxRetries {
				err := fmt.Errorf("wake: no pingresp after %d retransmissions: %w", c.cfg.MaxRetries, ErrTimeout)
				return fmt.Errorf("wake: %w", c.markLost(s, err))
			}
			if err := c.send(ping); err != nil {
				return fmt.Errorf("wake: %w", err)
			}
			t.Reset(c.cfg.RetryInterval)
		case <-ctx.Done():
			return fmt.Errorf("wake: %w", ctx.Err())
		case <-s.ctx.Done():
			return fmt.Errorf("wake: %w", c.connErr())
		}
	}
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
