package mqttsn

import (
	"context"
	"fmt"
	"net"
	"time"
)

// Publish queues a downlink message for a client and returns at once; it
// does not wait for the PUBACK. The outcome goes to
// GatewayConfig.OnDelivered. Messages to one client are sent one at a time,
// in order, with a REGISTER first when the client has no id for the topic.
// While the client sleeps they wait, and are delivered when it wakes
// (PINGRESP follows the last acknowledgement); while it is disconnected or
// lost they wait for its next CONNECT. qos is 0 or 1.
func (g *Gateway) Publish(ctx context.Context, clientID, topic string, qos int, payload []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if qos < 0 || qos > 1 {
		return fmt.Errorf("publish to %s: qos %d not supported", clientID, qos)
	}
	if topic == "" || hasWildcard(topic) {
		return fmt.Errorf("publish to %s: %w: topic %q", clientID, ErrInvalidPacket, topic)
	}
	g.mu.Lock()
	s := g.byID[clientID]
	g.mu.Unlock()
	if s == nil {
		return fmt.Errorf("publish to %s: %w", clientID, ErrUnknownClient)
	}
	if int(s.queued.Add(1)) > g.cfg.MaxBuffered {
		s.queued.Add(-1)
		return fmt.Errorf("publish to %s: %w", clientID, ErrBufferFull)
	}
	d := &downlink{topic: topic, qos: QoS(qos), payload: append([]byte(nil), payload...)}
	if !s.post(func() { s.enqueue(d) }) {
		s.queued.Add(-1)
		return fmt.Errorf("publish to %s: %w", clientID, ErrClosed)
	}
	return nil
}

// Disconnect sends an unsolicited DISCONNECT to an active, asleep or awake
// client, which must then CONNECT again; the Will is not published. Call
// it when the broker connection that serves the client drops (pitfall 13),
// or to evict a client.
func (g *Gateway) Disconnect(clientID string) error {
	g.mu.Lock()
	s := g.byID[clientID]
	g.mu.Unlock()
	if s == nil {
		return fmt.Errorf("disconnect %s: %w", clientID, ErrUnknownClient)
	}
	if !s.post(s.kick) {
		return fmt.Errorf("disconnect %s: %w", clientID, ErrClosed)
	}
	return nil
}

func (g *Gateway) clientIDAt(addr net.Addr) string {
	if addr == nil {
		return ""
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if s := g.byAddr[addr.String()]; s != nil {
		return s.id
	}
	return ""
}

// Clients returns a snapshot of all client sessions.
func (g *Gateway) Clients() []ClientInfo {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]ClientInfo, 0, len(g.byID))
	for id, s := range g.byID {
		ci := ClientInfo{
			ClientID: id,
			State:    s.State(),
			LastSeen: time.Unix(0, s.lastSeen.Load()),
			Queued:   int(s.queued.Load()),
		}
		if pr := s.peer.Load(); pr != nil {
			ci.Addr, ci.NodeID = pr.addr, pr.node
		}
		out = append(out, ci)
	}
	return out
}

// superviseLoop finds clients whose keep-alive or sleep time (plus
// tolerance) has run out; their session confirms and declares them lost.
func (g *Gateway) superviseLoop(ctx context.Context) {
	t := time.NewTicker(supervisePeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			g.mu.Lock()
			ss := make([]*session, 0, len(g.byID))
			for _, s := range g.byID {
				ss = append(ss, s)
			}
			g.mu.Unlock()
			for _, s := range ss {
				if s.expired(now) && s.lostCheck.CompareAndSwap(false, true) {
					s.post(s.checkLost)
				}
			}
		}
	}
}

// tolerance adds the spec's margin to a keep-alive or sleep duration:
// +10 % above one minute, +50 % up to it.
func tolerance(d time.Duration) time.Duration {
	if d > time.Minute {
		return d + d/10
	}
	return d + d/2
}

func (g *Gateway) advertiseLoop(ctx context.Context) {
	adv := &Advertise{GwID: g.cfg.GatewayID, Duration: uint16(g.cfg.AdvertiseInterval / time.Second)}
	pr := peer{addr: g.cfg.AdvertiseAddr}
	g.send(pr, adv)
	t := time.NewTicker(g.cfg.AdvertiseInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.send(pr, adv)
		}
	}
}

// supervisePeriod is how often keep-alive deadlines are checked.
const supervisePeriod = 100 * time.Millisecond
