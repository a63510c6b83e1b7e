package mqttsn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// startSession starts the reader and the handler goroutine of a new
// connection and makes it current.
func (c *Client) startSession() *clientSession {
	ctx, cancel := context.WithCancel(context.Background())
	s := &clientSession{
		ctx:        ctx,
		cancel:     cancel,
		deliver:    make(chan *inbound, 64),
		inProgress: make(map[uint16]bool),
		activity:   make(chan struct{}, 1),
	}
	_ = c.conn.SetReadDeadline(time.Time{})
	c.mu.Lock()
	c.sess = s
	c.mu.Unlock()
	s.wg.Add(2)
	go c.readLoop(s)
	go c.deliverLoop(s)
	return s
}

// teardown stops the goroutines of s and waits for them. It must not run
// on one of them.
func (c *Client) teardown(s *clientSession) {
	if s == nil {
		return
	}
	s.cancel()
	_ = c.conn.SetReadDeadline(time.Now())
	s.wg.Wait()
}

// startPinger starts the keep-alive goroutine; c.mu is held.
func (c *Client) startPinger(s *clientSession) {
	ctx, cancel := context.WithCancel(s.ctx)
	s.activeCancel = cancel
	s.wg.Add(1)
	go c.pingLoop(ctx, s)
}

// acquireActive takes the request slot, giving up when the current
// connection ends, so that a handler blocked here cannot hold up teardown.
func (c *Client) acquireActive(ctx context.Context) error {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s == nil {
		return c.connErr()
	}
	select {
	case c.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.closedCh:
		return ErrClosed
	case <-s.ctx.Done():
		return c.connErr()
	}
}

// pingLoop sends PINGREQ when nothing was sent for KeepAlive, and declares
// the connection lost when MaxRetries retransmissions go unanswered.
func (c *Client) pingLoop(ctx context.Context, s *clientSession) {
	defer s.wg.Done()
	t := time.NewTimer(c.cfg.KeepAlive)
	defer t.Stop()
	for {
		c.mu.Lock()
		due := time.Until(c.lastSent.Add(c.cfg.KeepAlive))
		c.mu.Unlock()
		if due > 0 {
			t.Reset(due)
			select {
			case <-t.C:
				continue
			case <-ctx.Done():
				return
			}
		}
		select {
		case c.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		c.mu.Lock()
		due = time.Until(c.lastSent.Add(c.cfg.KeepAlive))
		c.mu.Unlock()
		var err error
		if due <= 0 {
			_, err = c.exchange(ctx, "ping", &Pingreq{}, func(p Packet) bool { _, ok := p.(*Pingresp); return ok }, nil)
		}
		c.release()
		if err != nil {
			return
		}
	}
}

func (c *Client) readLoop(s *clientSession) {
	defer s.wg.Done()
	buf := make([]byte, MaxLen)
	for {
		n, addr, err := c.conn.ReadFrom(buf)
		if s.ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			c.markLost(s, fmt.Errorf("read: %w", err))
			return
		}
		if addr == nil || addr.String() != c.gwKey {
			c.log.Debug("datagram from another sender dropped", "addr", addr)
			continue
		}
		p, err := Decode(buf[:n])
		if err != nil {
			c.log.Warn("packet rejected", "addr", c.gwKey, "err", err)
			continue
		}
		c.handle(s, p)
	}
}

func (c *Client) handle(s *clientSession, p Packet) {
	if _, ok := p.(*Pingresp); !ok {
		select {
		case s.activity <- struct{}{}:
		default:
		}
	}
	c.mu.Lock()
	w := c.waiter
	c.mu.Unlock()
	if w != nil && w.accept(p) {
		select {
		case w.ch <- p:
		default:
		}
		return
	}
	var err error
	switch p := p.(type) {
	case *Publish:
		err = c.onPublish(s, p)
	case *Register:
		err = c.onRegister(p)
	case *Pingreq:
		err = c.send(&Pingresp{})
	case *Disconnect:
		c.mu.Lock()
		connecting := c.state == clientConnecting
		c.mu.Unlock()
		if connecting {
			// A gateway answers CONNECT with CONNACK: this DISCONNECT
			// answered something sent before the connection was lost.
			c.log.Debug("stale disconnect ignored")
			return
		}
		c.markLost(s, errors.New("disconnected by gateway"))
	case *WillTopicReq, *WillMsgReq:
		err = c.answerWillPrompt(p)
	case *Puback:
		if p.ReturnCode != Accepted {
			c.log.Warn("publish rejected", "topic_id", p.TopicID, "err", &RejectedError{Op: "publish", Code: p.ReturnCode})
			if p.ReturnCode == RejectedInvalidTopicID {
				c.mu.Lock()
				if name, ok := c.names[p.TopicID]; ok {
					delete(c.names, p.TopicID)
					delete(c.topics, name)
				}
				c.mu.Unlock()
			}
		}
	default:
		c.log.Debug("unexpected packet ignored", "type", p.Type())
	}
	if err != nil {
		c.log.Warn("answer not sent", "type", p.Type(), "err", err)
	}
}

// onRegister records a topic id the gateway assigns before publishing on
// it (after a wildcard subscription, or a reconnect without clean session).
func (c *Client) onRegister(p *Register) error {
	rc := Accepted
	if p.TopicID == 0 || p.TopicID == 0xFFFF || p.TopicName == "" || hasWildcard(p.TopicName) {
		rc = RejectedNotSupported
	} else {
		c.mu.Lock()
		if old, ok := c.names[p.TopicID]; ok && c.topics[old] == p.TopicID {
			delete(c.topics, old)
		}
		c.names[p.TopicID] = p.TopicName
		c.mu.Unlock()
	}
	return c.send(&Regack{TopicID: p.TopicID, MsgID: p.MsgID, ReturnCode: rc})
}

func (c *Client) topicName(tt TopicIDType, id uint16) (string, bool) {
	switch tt {
	case TopicPredefined:
		name, ok := c.predefBy[id]
		return name, ok
	case TopicShort:
		return ShortTopicName(id), true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	name, ok := c.names[id]
	return name, ok
}

func (c *Client) onPublish(s *clientSession, p *Publish) error {
	topic, ok := c.topicName(p.TopicIDType, p.TopicID)
	if !ok {
		c.log.Warn("packet rejected", "addr", c.gwKey, "err", fmt.Errorf("publish on unknown %v topic id %d", p.TopicIDType, p.TopicID))
		return c.send(&Puback{TopicID: p.TopicID, MsgID: p.MsgID, ReturnCode: RejectedInvalidTopicID})
	}
	switch p.QoS {
	case QoS2:
		c.log.Warn("packet rejected", "addr", c.gwKey, "err", errors.New("qos 2 publish not supported"))
		return c.send(&Puback{TopicID: p.TopicID, MsgID: p.MsgID, ReturnCode: RejectedNotSupported})
	case QoS1:
		c.mu.Lock()
		if c.acked.seen(p.MsgID, topic, p.Data) {
			c.mu.Unlock()
			return c.send(&Puback{TopicID: p.TopicID, MsgID: p.MsgID})
		}
		if s.inProgress[p.MsgID] {
			c.mu.Unlock()
			return nil // acknowledged when its handler returns
		}
		s.inProgress[p.MsgID] = true
		c.mu.Unlock()
	}
	select {
	case s.deliver <- &inbound{topic: topic, p: p}:
	default:
		c.mu.Lock()
		delete(s.inProgress, p.MsgID)
		c.mu.Unlock()
		c.log.Warn("publication dropped", "topic", topic, "err", errors.New("handler queue full"))
	}
	return nil
}

// deliverLoop runs the Subscribe handlers, one message at a time, and
// acknowledges QoS 1 messages whose handler succeeded.
func (c *Client) deliverLoop(s *clientSession) {
	defer s.wg.Done()
	for {
		var in *inbound
		select {
		case <-s.ctx.Done():
			return
		case in = <-s.deliver:
		}
		var err error
		if h := c.handlerFor(in.topic); h != nil {
			err = h(in.topic, in.p.Data)
		} else {
			c.log.Debug("publication without handler", "topic", in.topic)
		}
		if err != nil {
			c.log.Warn("handler failed", "topic", in.topic, "qos", int(in.p.QoS), "err", err)
		}
		if in.p.QoS != QoS1 {
			continue
		}
		c.mu.Lock()
		delete(s.inProgress, in.p.MsgID)
		if err == nil {
			c.acked.add(in.p.MsgID, in.topic, in.p.Data)
		}
		c.mu.Unlock()
		if err == nil {
			if err := c.send(&Puback{TopicID: in.p.TopicID, MsgID: in.p.MsgID}); err != nil {
				c.log.Warn("answer not sent", "type", TypePuback, "err", err)
			}
		}
	}
}

// handlerFor returns the handler of the exact subscription, or else of the
// first wildcard subscription matching topic.
func (c *Client) handlerFor(topic string) func(string, []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.subs {
		if s.filter == topic {
			return s.h
		}
	}
	for _, s := range c.subs {
		if matchTopic(s.filter, topic) {
			return s.h
		}
	}
	return nil
}
