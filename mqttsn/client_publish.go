package mqttsn

import (
	"context"
	"errors"
	"fmt"
)

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
// Subscriptions survive reconnects: after a clean-session Connect the
// client subscribes again by itself.
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
	// Install the handler first: the gateway may publish right after SUBACK.
	c.mu.Lock()
	prev := c.subs
	c.subs = append(withoutFilter(c.subs, topic), subscription{filter: topic, qos: QoS(qos), h: h})
	c.mu.Unlock()
	if err := c.subscribeLocked(ctx, topic, QoS(qos)); err != nil {
		c.mu.Lock()
		c.subs = prev
		c.mu.Unlock()
		return fmt.Errorf("subscribe %q: %w", topic, err)
	}
	return nil
}

// subscribeLocked sends SUBSCRIBE and waits for SUBACK; it runs with the
// request slot held.
func (c *Client) subscribeLocked(ctx context.Context, topic string, qos QoS) error {
	sub := &Subscribe{QoS: qos, MsgID: c.nextMsgID()}
	sub.TopicIDType, sub.TopicID, sub.TopicName = c.subscribeTopic(topic)
	r, err := c.exchange(ctx, "subscribe", sub, func(p Packet) bool {
		a, ok := p.(*Suback)
		return ok && a.MsgID == sub.MsgID
	}, func() { sub.DUP = true })
	if err != nil {
		return err
	}
	ack := r.(*Suback)
	if ack.ReturnCode != Accepted {
		return &RejectedError{Op: "subscribe", Code: ack.ReturnCode}
	}
	if sub.TopicIDType == TopicNormal && ack.TopicID != 0 && ack.TopicID != 0xFFFF && !hasWildcard(topic) {
		c.mu.Lock()
		c.names[ack.TopicID] = topic
		c.topics[topic] = ack.TopicID
		c.mu.Unlock()
	}
	return nil
}

// resubscribe renews every subscription after a clean-session CONNECT,
// which made the gateway forget them. A rejected one is dropped with a
// warning; a transport failure is returned. It runs with the request slot
// held.
func (c *Client) resubscribe(ctx context.Context) error {
	c.mu.Lock()
	subs := append([]subscription(nil), c.subs...)
	c.mu.Unlock()
	for _, s := range subs {
		err := c.subscribeLocked(ctx, s.filter, s.qos)
		if errors.Is(err, ErrRejected) {
			c.log.Warn("resubscribe rejected", "topic", s.filter, "err", err)
			c.mu.Lock()
			c.subs = withoutFilter(c.subs, s.filter)
			c.mu.Unlock()
			continue
		}
		if err != nil {
			return fmt.Errorf("resubscribe %q: %w", s.filter, err)
		}
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
