package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/meterlink/meterlink/bus"
	"github.com/meterlink/meterlink/topic"
	"github.com/meterlink/meterlink/wire"
)

// runBus connects to the broker (retrying until ctx is done), subscribes to the PDAs' uplink
// and handshakes through shared subscriptions, publishes ops' retained status and drains ingest's
// publications. On ctx done it publishes status "down" and disconnects.
func (o *Ops) runBus(ctx context.Context) error {
	pw := o.cfg.Password
	var lost atomic.Bool // set when the connection drops, so that a reconnect republishes the status
	c, err := bus.New(bus.Config{
		URL: o.cfg.BrokerURL, ClientID: o.cfg.ClientID, Username: o.cfg.Username,
		Password:     func() string { return pw },
		CleanSession: false, // the broker keeps our QoS 1 messages while we are away
		Logger:       o.log,
		OnConnect: func() {
			o.connected.Store(true)
			select {
			case o.reconnect <- struct{}{}:
			default:
			}
		},
		OnLost: func(error) {
			o.connected.Store(false)
			lost.Store(true)
		},
	})
	if err != nil {
		return fmt.Errorf("mqtt client: %w", err)
	}
	defer c.Close()
	// Registered before connecting: the uplink the broker kept for our session while we were
	// away finds its handler at once. bus makes the subscription on every (re)connect.
	filter := o.cfg.upFilter()
	handle := func(ctx context.Context, m bus.Message) error { return o.HandleUp(ctx, m.Topic, m.Payload) }
	if err := c.Subscribe(ctx, filter, 1, handle); err != nil {
		return fmt.Errorf("subscribe to the pda uplink: %w", err)
	}
	// The PDAs' SECLINK/1 handshakes, in the same shared-subscription group.
	if err := c.Subscribe(ctx, "$share/"+o.cfg.Group+"/"+topic.PDAHandshakeUp("+"), 1, handle); err != nil {
		return fmt.Errorf("subscribe to the pda handshakes: %w", err)
	}

	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 10*time.Second) {
		err := c.Connect(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		o.log.Warn("broker connect failed", "broker_url", o.cfg.BrokerURL, "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
	o.connected.Store(true)
	o.log.Info("consuming pda uplink", "broker_url", o.cfg.BrokerURL, "filter", filter, "qos", 1)
	o.publishStatus(ctx, c, "up")

	for {
		select {
		case <-ctx.Done():
			o.connected.Store(false)
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			o.publishStatus(sctx, c, "down")
			cancel()
			return nil
		case <-o.reconnect:
			if lost.Swap(false) { // the first connect's status is published above
				o.publishStatus(ctx, c, "up")
			}
		case m := <-o.out:
			o.publish(ctx, c, m)
		}
	}
}

func (o *Ops) publish(ctx context.Context, c *bus.Client, m outMsg) {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.Publish(pctx, m.topic, m.qos, m.retained, m.payload); err != nil {
		o.metrics.Add(metricPubFailed, 1, "kind", m.kind)
		o.log.Warn("publish failed", "topic", m.topic, "qos", m.qos, "err", err)
		return
	}
	o.metrics.Add(metricPublished, 1, "kind", m.kind)
}

// publishStatus publishes ops' retained liveness on topic.OpsStatus("ops").
func (o *Ops) publishStatus(ctx context.Context, c *bus.Client, state string) {
	b, err := json.Marshal(wire.Status{V: wire.Version, Part: "ops", State: state, TimeMS: o.now().UnixMilli()})
	if err != nil {
		o.log.Error("encode status", "err", err)
		return
	}
	o.publish(ctx, c, outMsg{kind: "status", topic: topic.OpsStatus("ops"), qos: 1, retained: true, payload: b})
}
