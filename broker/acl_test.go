package broker_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/meterlink/meterlink/bus"
	"github.com/meterlink/meterlink/topic"
)

func TestACLPerRole(t *testing.T) {
	b := startBroker(t, testConfig())
	type check struct {
		publish bool
		topic   string
		allow   bool
	}
	sub := func(f string, allow bool) check { return check{false, f, allow} }
	pub := func(tp string, allow bool) check { return check{true, tp, allow} }
	tests := []struct {
		name, username, clientID string
		sync                     string // a filter the role may subscribe to: its SUBACK proves earlier packets were handled
		checks                   []check
	}{
		{"pda", "P01", "P01", topic.PDADown("P01"), []check{
			pub(topic.PDAUp("P01"), true),
			pub(topic.PDAHandshakeUp("P01"), true),
			pub(topic.PDAUp("P02"), false),
			pub(topic.PDADown("P01"), false),
			pub(topic.OpsStatus("ops"), false),
			pub(topic.HHRecords("H01"), false),
			sub(topic.PDADown("P01"), true),
			sub(topic.PDAHandshakeDown("P01"), true),
			sub(topic.PDADown("P02"), false),
			sub(topic.PDAUp("P01"), false),
			sub("meterlink/v1/pda/+/down", false),
			sub("meterlink/v1/pda/P01/#", false),
			sub("#", false),
			sub("$SYS/#", false),
			sub("$SYS/broker/clients/connected", false),
		}},
		{"handheld", "hh1", "hh1-client", topic.HHAck("H01"), []check{
			pub(topic.HHRecords("H01"), true),
			pub(topic.HHRecords("H02"), false),
			pub(topic.HHAck("H01"), false),
			pub(topic.PDAUp("P01"), false),
			sub(topic.HHAck("H01"), true),
			sub(topic.HHAck("H02"), false),
			sub("meterlink/v1/hh/+/down/ack", false),
			sub(topic.HHRecordsAll, false),
			sub("$SYS/#", false),
		}},
		{"bridge", "bridge", "bridge-1", topic.HHRecordsAll, []check{
			sub(topic.HHRecordsAll, true),
			pub(topic.HHAck("H01"), true),
			pub(topic.HHRecords("H01"), false),
			pub(topic.PDAUp("P01"), false),
		}},
		{"ops", "ops", "ops-1", topic.PDAHandshakeUp("+"), []check{
			sub(topic.OpsUpShared, true),
			sub("$share/ops/"+topic.PDAHandshakeUp("+"), true),
			sub(topic.PDAUp("+"), true),
			pub(topic.PDADown("P01"), true),
			pub(topic.PDAHandshakeDown("P01"), true),
			pub(topic.OpsReadings("D01", "T0001"), true),
			pub(topic.PDAUp("P01"), false),
			sub("$SYS/broker/#", false),
			sub("#", false),
		}},
		{"viewer", "", "dash-1", "meterlink/v1/ops/status/+", []check{
			sub(topic.OpsReadingsAll, true),
			sub(topic.OpsReadings("D01", "+"), true),
			sub("meterlink/v1/ops/status/+", true),
			pub(topic.OpsStatus("ops"), false),
			pub(topic.OpsReadings("D01", "T0001"), false),
			sub(topic.PDAUp("+"), false),
			sub(topic.OpsUpShared, false),
			sub(topic.HHRecordsAll, false),
			sub("#", false),
			sub("$SYS/#", false),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := login(t, b.URL(), tt.username, tt.clientID)
			for _, ck := range tt.checks {
				before := b.Stats().ACLDenials
				if ck.publish {
					// QoS 0: a denied QoS 1 publish makes mochi close an MQTT 3.1.1 connection.
					if err := c.Publish(ctx5(t), ck.topic, 0, false, []byte("x")); err != nil {
						t.Fatalf("publish %s: %v", ck.topic, err)
					}
					if err := c.Subscribe(ctx5(t), tt.sync, 0, newInbox().handle); err != nil {
						t.Fatalf("sync subscribe %s: %v", tt.sync, err)
					}
					denied := b.Stats().ACLDenials - before
					if got := denied == 0; got != ck.allow {
						t.Errorf("%s publish %s: allowed = %v, want %v", tt.name, ck.topic, got, ck.allow)
					}
					continue
				}
				err := c.Subscribe(ctx5(t), ck.topic, 1, newInbox().handle)
				switch {
				case ck.allow && err != nil:
					t.Errorf("%s subscribe %s: %v, want allowed", tt.name, ck.topic, err)
				case !ck.allow && !errors.Is(err, bus.ErrRefused):
					t.Errorf("%s subscribe %s: err = %v, want bus.ErrRefused", tt.name, ck.topic, err)
				}
				if denied := b.Stats().ACLDenials - before; (denied == 0) != ck.allow {
					t.Errorf("%s subscribe %s: ACL denials grew by %d", tt.name, ck.topic, denied)
				}
			}
			if !c.IsConnected() {
				t.Errorf("%s client was disconnected", tt.name)
			}
		})
	}
}

// TestFlowThroughRoles sends a record up from a PDA to ops over the shared subscription and an
// ack down, and checks that another PDA sees neither.
func TestFlowThroughRoles(t *testing.T) {
	b := startBroker(t, testConfig())
	opsIn, p1In, p2In := newInbox(), newInbox(), newInbox()
	ops := login(t, b.URL(), "ops", "ops-1")
	if err := ops.Subscribe(ctx5(t), topic.OpsUpShared, 1, opsIn.handle); err != nil {
		t.Fatal(err)
	}
	p1 := login(t, b.URL(), "P01", "P01")
	if err := p1.Subscribe(ctx5(t), topic.PDADown("P01"), 1, p1In.handle); err != nil {
		t.Fatal(err)
	}
	p2 := login(t, b.URL(), "P02", "P02")
	if err := p2.Subscribe(ctx5(t), topic.PDADown("P02"), 1, p2In.handle); err != nil {
		t.Fatal(err)
	}

	if err := p1.Publish(ctx5(t), topic.PDAUp("P01"), 1, false, []byte("batch-1")); err != nil {
		t.Fatal(err)
	}
	if m := opsIn.next(t); m.Topic != topic.PDAUp("P01") || string(m.Payload) != "batch-1" {
		t.Fatalf("ops got %s %q, want %s batch-1", m.Topic, m.Payload, topic.PDAUp("P01"))
	}
	if err := ops.Publish(ctx5(t), topic.PDADown("P01"), 1, false, []byte("ack-1")); err != nil {
		t.Fatal(err)
	}
	if err := ops.Publish(ctx5(t), topic.PDADown("P02"), 1, false, []byte("ack-2")); err != nil {
		t.Fatal(err)
	}
	if m := p1In.next(t); string(m.Payload) != "ack-1" {
		t.Fatalf("P01 got %q, want ack-1", m.Payload)
	}
	if m := p2In.next(t); string(m.Payload) != "ack-2" {
		t.Fatalf("P02 got %q, want ack-2 (and never P01's ack)", m.Payload)
	}
	if s := b.Stats(); s.ACLDenials != 0 || s.ConnectionsRefused != 0 {
		t.Errorf("stats = %+v, want no denials or refusals", s)
	}
}

// TestPDARetainAndQoS2Refused: a PDA's retained or QoS 2 publish closes its connection, even on
// its own topic (security.md §11).
func TestPDARetainAndQoS2Refused(t *testing.T) {
	b := startBroker(t, testConfig())
	opsIn := newInbox()
	ops := login(t, b.URL(), "ops", "ops-1")
	if err := ops.Subscribe(ctx5(t), topic.OpsUpShared, 1, opsIn.handle); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		qos    byte
		retain bool
	}{{0, true}, {1, true}, {2, false}} {
		t.Run(fmt.Sprintf("qos%d-retain%v", tc.qos, tc.retain), func(t *testing.T) {
			onLost, lost := lostSignal()
			c, err := connect(t, clientOpts{url: b.URL(), clientID: "P01", username: "P01", password: "P01-pw", onLost: onLost})
			if err != nil {
				t.Fatal(err)
			}
			before := b.Stats().ACLDenials
			go func() { _ = c.Publish(ctx5(t), topic.PDAUp("P01"), tc.qos, tc.retain, []byte(fmt.Sprint("bad-", i))) }()
			select {
			case <-lost:
			case <-time.After(5 * time.Second):
				t.Fatal("connection not closed within 5s")
			}
			if got := b.Stats().ACLDenials - before; got != 1 {
				t.Errorf("ACL denials grew by %d, want 1", got)
			}
			_ = c.Close()
		})
	}
	// Nothing of it reached ops: the first message ops sees is the good one.
	p := login(t, b.URL(), "P01", "P01")
	if err := p.Publish(ctx5(t), topic.PDAUp("P01"), 1, false, []byte("good")); err != nil {
		t.Fatal(err)
	}
	if m := opsIn.next(t); string(m.Payload) != "good" {
		t.Fatalf("ops got %q, want good", m.Payload)
	}
}
