package terminal

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/meterlink/meterlink/mqttsn"
	"github.com/meterlink/meterlink/topic"
	"github.com/meterlink/meterlink/wire"
)

// uplink keeps a session with the gateway and drains the outbox through it.
func (t *Terminal) uplink(ctx context.Context) {
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		err := t.session(ctx)
		if ctx.Err() != nil {
			return
		}
		t.log.Warn("gateway session ended", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// radioTopic is the topic a record kind travels on.
func radioTopic(terminal string, k wire.Kind) string {
	switch k {
	case wire.KindFrozen:
		return topic.RadioFrozen(terminal)
	case wire.KindEvent:
		return topic.RadioEvents(terminal)
	}
	return topic.RadioReadings(terminal)
}

func (t *Terminal) session(ctx context.Context) error {
	conn, gwAddr, err := t.gw.dial()
	if err != nil {
		return err
	}
	if t.cfg.Radio != nil {
		conn = t.cfg.Radio(conn)
	}
	c, err := mqttsn.NewClient(conn, gwAddr, mqttsn.ClientConfig{
		ClientID: t.cfg.ID, KeepAlive: t.cfg.KeepAlive, RetryInterval: t.cfg.Retry, MaxRetries: t.cfg.Retries,
		Predefined: topic.RadioPredefined(t.cfg.ID), Logger: t.log,
	})
	if err != nil {
		conn.Close()
		return err
	}
	defer func() {
		c.Close()
		conn.Close()
	}()
	if err := c.Connect(ctx); err != nil {
		return fmt.Errorf("connect to gateway %s: %w", t.gw, err)
	}
	// Commands are handled on the client's receive path: the answer is queued, and this
	// loop sends it, since the client allows one exchange at a time.
	if err := c.Subscribe(ctx, topic.RadioCommands(t.cfg.ID), 1, func(_ string, payload []byte) error {
		t.command(payload)
		return nil
	}); err != nil {
		return fmt.Errorf("subscribe to commands: %w", err)
	}
	t.log.Info("gateway session up", "gateway", t.gw.String())
	for {
		if err := t.drain(ctx, c); err != nil {
			return err
		}
		if t.cfg.Sleep > 0 {
			if err := t.sleep(ctx, c); err != nil {
				return err
			}
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		select {
		case <-ctx.Done():
			t.disconnect(ctx, c)
			return nil
		case <-t.kick:
		}
	}
}

// drain sends queued command answers, then the outbox, deleting each record after its PUBACK.
func (t *Terminal) drain(ctx context.Context, c *mqttsn.Client) error {
	for {
		t.mu.Lock()
		acks := t.acks
		t.acks = nil
		t.mu.Unlock()
		for i, a := range acks {
			b, _ := json.Marshal(a)
			if err := c.Publish(ctx, topic.RadioCmdAcks(t.cfg.ID), 1, b); err != nil {
				t.mu.Lock()
				t.acks = append(acks[i:], t.acks...) // keep the unsent answers, in order
				t.mu.Unlock()
				return fmt.Errorf("send command answer %s: %w", a.ID, err)
			}
		}
		recs, err := t.store.pending(64)
		if err != nil {
			return fmt.Errorf("read outbox: %w", err)
		}
		if len(recs) == 0 && len(acks) == 0 {
			return nil
		}
		for _, r := range recs {
			b, err := wire.MarshalRadio(r)
			if err != nil {
				// A record that cannot be encoded can never be sent; keeping it would block the
				// outbox for ever.
				t.log.Error("record dropped: cannot encode", "seq", r.Seq, "err", err)
				_ = t.store.remove(r.Seq)
				continue
			}
			if err := c.Publish(ctx, radioTopic(t.cfg.ID, r.Kind), 1, b); err != nil {
				return fmt.Errorf("publish record %d: %w", r.Seq, err)
			}
			if err := t.store.remove(r.Seq); err != nil {
				return fmt.Errorf("remove acknowledged record %d: %w", r.Seq, err)
			}
		}
	}
}

// sleep puts the client to sleep until the next contact: every Sleep it wakes to take the
// commands the gateway buffered, and becomes active again when it has something to send.
// Records made while asleep wait for the next contact, as a battery-powered terminal's do.
func (t *Terminal) sleep(ctx context.Context, c *mqttsn.Client) error {
	if err := c.Sleep(ctx, t.cfg.Sleep); err != nil {
		return fmt.Errorf("go to sleep: %w", err)
	}
	for {
		timer := time.NewTimer(t.cfg.Sleep)
		select {
		case <-ctx.Done():
			timer.Stop()
			t.disconnect(ctx, c)
			return nil
		case <-timer.C:
			if err := c.Wake(ctx); err != nil {
				return fmt.Errorf("wake: %w", err)
			}
		}
		t.mu.Lock()
		busy := len(t.acks) > 0
		t.mu.Unlock()
		if busy || t.store.pendingCount() > 0 {
			if err := c.Connect(ctx); err != nil {
				return fmt.Errorf("become active: %w", err)
			}
			return nil
		}
	}
}

// disconnect ends the session cleanly, so the gateway does not publish a Will; it does not
// wait long for a gateway that may be gone.
func (t *Terminal) disconnect(ctx context.Context, c *mqttsn.Client) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 500*time.Millisecond)
	defer cancel()
	_ = c.Disconnect(dctx)
}
