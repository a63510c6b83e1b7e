package mqttsn

import (
	"context"
	"fmt"
	"time"
)

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
