package broker_test

import (
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/meterlink/meterlink/topic"
)

// TestInflightLimitRefusesCounted: messages beyond MaxInflight for an offline persistent
// session are refused and counted, never dropped silently, and the ones held are delivered.
func TestInflightLimitRefusesCounted(t *testing.T) {
	cfg := testConfig()
	cfg.MaxInflight, cfg.MaxClientWritesPending = 5, 10
	b := startBroker(t, cfg)
	rc := dialRaw(t, b.Addr())
	rc.connect("ops-1", "ops", false)
	rc.subscribe(1, topic.OpsUpShared, 1)
	rc.disconnect()
	waitDisconnected(t, b)

	p := login(t, b.URL(), "P01", "P01")
	for i := range 8 {
		if err := p.Publish(ctx5(t), topic.PDAUp("P01"), 1, false, []byte(fmt.Sprint("m", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, func() error {
		if n := b.Stats().MessagesRefused; n != 3 {
			return fmt.Errorf("MessagesRefused = %d, want 3", n)
		}
		return nil
	})

	rc = dialRaw(t, b.Addr())
	rc.connect("ops-1", "ops", false)
	var got []string
	for range 5 {
		m := rc.mustRead(packets.Publish)
		got = append(got, string(m.Payload))
		rc.puback(m.PacketID)
	}
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	rc.mustRead(packets.Pingresp)
	slices.Sort(got)
	if want := []string{"m0", "m1", "m2", "m3", "m4"}; !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
}

// TestWriteQueueFullDropsCounted: a consumer that stops reading fills its write queue; what
// cannot be queued is dropped, counted and logged (mochi alone drops QoS 0 without a word).
func TestWriteQueueFullDropsCounted(t *testing.T) {
	cfg := testConfig()
	cfg.MaxInflight, cfg.MaxClientWritesPending = 1, 2
	b := startBroker(t, cfg)

	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).SetReadBuffer(4096)
	stalled := &rawConn{t: t, c: c}
	stalled.r = newReader(c)
	t.Cleanup(func() { _ = c.Close() })
	stalled.connect("dash-stalled", "", true)
	stalled.subscribe(1, topic.OpsReadingsAll, 0)
	// From here on the viewer reads nothing.

	ops := login(t, b.URL(), "ops", "ops-1")
	payload := make([]byte, 60000)
	i := 0
	for ; b.Stats().MessagesDropped == 0; i++ {
		if i == 1000 {
			t.Fatalf("no drop after %d messages of %d bytes", i, len(payload))
		}
		// QoS 1 paces the publisher: each PUBACK comes once the broker has read the message.
		if err := ops.Publish(ctx5(t), topic.OpsReadings("D01", "T0001"), 1, false, payload); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("first drop after %d messages", i)
}
