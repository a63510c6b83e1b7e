package broker_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/meterlink/meterlink/broker/brokertest"
	"github.com/meterlink/meterlink/topic"
)

func storeConfig(t *testing.T) *brokertest.Broker {
	cfg := testConfig()
	cfg.StorePath = filepath.Join(t.TempDir(), "broker.db")
	return startBroker(t, cfg)
}

func waitDisconnected(t *testing.T, b *brokertest.Broker) {
	t.Helper()
	waitFor(t, 5*time.Second, func() error {
		if n := b.Stats().ClientsConnected; n != 0 {
			return fmt.Errorf("%d clients connected", n)
		}
		return nil
	})
}

// TestQoS1SurvivesRestart: a message published at QoS 1 for an offline persistent subscriber
// survives a broker restart and is delivered exactly once; its acknowledgement survives the
// next restart too.
func TestQoS1SurvivesRestart(t *testing.T) {
	b := storeConfig(t)

	// An ops consumer with a persistent session subscribes through the shared subscription,
	// then goes away.
	rc := dialRaw(t, b.Addr())
	if ack := rc.connect("ops-1", "ops", false); ack.ReasonCode != 0 || ack.SessionPresent {
		t.Fatalf("CONNACK code %#x session present %v, want 0, false", ack.ReasonCode, ack.SessionPresent)
	}
	if codes := rc.subscribe(1, topic.OpsUpShared, 1); len(codes) != 1 || codes[0] != 1 {
		t.Fatalf("SUBACK %v, want [1]", codes)
	}
	rc.disconnect()
	waitDisconnected(t, b)

	p := login(t, b.URL(), "P01", "P01")
	if err := p.Publish(ctx5(t), topic.PDAUp("P01"), 1, false, []byte("m1")); err != nil {
		t.Fatal(err)
	}
	_ = p.Close()
	waitDisconnected(t, b)

	b.Restart(t)

	rc = dialRaw(t, b.Addr())
	if ack := rc.connect("ops-1", "ops", false); ack.ReasonCode != 0 || !ack.SessionPresent {
		t.Fatalf("CONNACK code %#x session present %v, want 0, true", ack.ReasonCode, ack.SessionPresent)
	}
	m := rc.mustRead(packets.Publish)
	if m.TopicName != topic.PDAUp("P01") || string(m.Payload) != "m1" || m.FixedHeader.Qos != 1 {
		t.Fatalf("got %s %q qos %d, want %s m1 qos 1", m.TopicName, m.Payload, m.FixedHeader.Qos, topic.PDAUp("P01"))
	}
	rc.puback(m.PacketID)

	// The subscription survived too: a message published now arrives, and it is the next
	// packet, so m1 was not delivered twice.
	p = login(t, b.URL(), "P01", "P01")
	if err := p.Publish(ctx5(t), topic.PDAUp("P01"), 1, false, []byte("m2")); err != nil {
		t.Fatal(err)
	}
	m = rc.mustRead(packets.Publish)
	if string(m.Payload) != "m2" {
		t.Fatalf("got %q, want m2 (m1 only once)", m.Payload)
	}
	rc.puback(m.PacketID)
	// A PINGRESP proves the broker has read the PUBACKs before the restart.
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	rc.mustRead(packets.Pingresp)
	rc.disconnect()
	_ = p.Close()
	waitDisconnected(t, b)

	// After another restart nothing is redelivered: the first packet after CONNACK (where the
	// broker resends what is in flight) answers our PINGREQ.
	b.Restart(t)
	rc = dialRaw(t, b.Addr())
	if ack := rc.connect("ops-1", "ops", false); !ack.SessionPresent {
		t.Fatal("session lost in the second restart")
	}
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	if pk, err := rc.read(); err != nil || pk.FixedHeader.Type != packets.Pingresp {
		t.Fatalf("after the second restart got packet type %d %q (err %v), want PINGRESP", pk.FixedHeader.Type, pk.Payload, err)
	}
	if s := b.Stats(); s.StoreErrors != 0 {
		t.Errorf("StoreErrors = %d", s.StoreErrors)
	}
}

func TestRetainedSurvivesRestart(t *testing.T) {
	b := storeConfig(t)
	ops := login(t, b.URL(), "ops", "ops-1")
	if err := ops.Publish(ctx5(t), topic.OpsStatus("ops"), 1, true, []byte("up")); err != nil {
		t.Fatal(err)
	}
	if err := ops.Publish(ctx5(t), topic.OpsStatus("billing"), 1, true, []byte("up")); err != nil {
		t.Fatal(err)
	}
	// An empty retained payload deletes the retained message, in the store too.
	if err := ops.Publish(ctx5(t), topic.OpsStatus("billing"), 1, true, nil); err != nil {
		t.Fatal(err)
	}
	_ = ops.Close()
	waitDisconnected(t, b)

	b.Restart(t)

	in := newInbox()
	v := login(t, b.URL(), "", "dash-1")
	if err := v.Subscribe(ctx5(t), "meterlink/v1/ops/status/+", 1, in.handle); err != nil {
		t.Fatal(err)
	}
	if m := in.next(t); m.Topic != topic.OpsStatus("ops") || string(m.Payload) != "up" {
		t.Fatalf("got %s %q, want %s up", m.Topic, m.Payload, topic.OpsStatus("ops"))
	}
	if n := b.Stats().Retained; n != 1 {
		t.Errorf("Retained = %d, want 1", n)
	}
}

// TestCleanSessionNotRestored: a clean session leaves nothing behind in the store.
func TestCleanSessionNotRestored(t *testing.T) {
	b := storeConfig(t)
	rc := dialRaw(t, b.Addr())
	rc.connect("ops-1", "ops", false)
	rc.subscribe(1, topic.OpsUpShared, 1)
	rc.disconnect()
	waitDisconnected(t, b)
	// The same client id comes back with a clean session: the persistent one is gone for good.
	rc = dialRaw(t, b.Addr())
	if ack := rc.connect("ops-1", "ops", true); ack.SessionPresent {
		t.Fatal("clean session reported a present session")
	}
	rc.disconnect()
	waitDisconnected(t, b)

	b.Restart(t)
	p := login(t, b.URL(), "P01", "P01")
	if err := p.Publish(ctx5(t), topic.PDAUp("P01"), 1, false, []byte("m1")); err != nil {
		t.Fatal(err)
	}
	rc = dialRaw(t, b.Addr())
	if ack := rc.connect("ops-1", "ops", false); ack.SessionPresent {
		t.Fatal("a session came back from the store after a clean session replaced it")
	}
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	rc.mustRead(packets.Pingresp)
}
