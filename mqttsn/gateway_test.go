package mqttsn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPublishQoS1ArrivesOnce(t *testing.T) {
	_, gw, rec := startGateway(t, GatewayConfig{
		Predefined: func(id string) map[uint16]string { return map[uint16]string{1: "ml/rd/" + id} },
	}, nil)
	c := newTestClient(t, gw, ClientConfig{ClientID: "mt-0001", Predefined: map[string]uint16{"ml/rd/mt-0001": 1}}, nil)
	connect(t, c)
	ctx := ctxT(t)
	for _, tt := range []struct {
		topic string
		qos   int
		data  string
	}{
		{"ml/rd/mt-0001", 1, "predefined"},
		{"ml/ev/mt-0001", 1, "registered"},
		{"ml/ev/mt-0001", 1, "registered again"},
		{"rd", 1, "short"},
		{"ml/ev/mt-0001", 0, "qos0"},
		{"rd", 0, "qos0 short"},
	} {
		if err := c.Publish(ctx, tt.topic, tt.qos, []byte(tt.data)); err != nil {
			t.Fatalf("Publish(%q, %d) = %v", tt.topic, tt.qos, err)
		}
	}
	want := []string{
		"mt-0001 ml/rd/mt-0001 predefined",
		"mt-0001 ml/ev/mt-0001 registered",
		"mt-0001 ml/ev/mt-0001 registered again",
		"mt-0001 rd short",
		"mt-0001 ml/ev/mt-0001 qos0",
		"mt-0001 rd qos0 short",
	}
	waitFor(t, 5*time.Second, func() error {
		pubs, _, _, _ := rec.snapshot()
		if diff := cmp.Diff(want, pubs); diff != "" {
			return fmt.Errorf("publications (-want +got):\n%s", diff)
		}
		return nil
	})
}

func TestPublishQoSMinus1WithoutConnection(t *testing.T) {
	_, gw, rec := startGateway(t, GatewayConfig{
		Predefined: func(id string) map[uint16]string {
			if id == "" {
				return map[uint16]string{7: "ml/anon"}
			}
			return nil
		},
	}, nil)
	c := newTestClient(t, gw, ClientConfig{ClientID: "mt-0002", Predefined: map[string]uint16{"ml/anon": 7}}, nil)
	ctx := ctxT(t)
	if err := c.Publish(ctx, "ml/anon", -1, []byte("42")); err != nil {
		t.Fatalf("Publish qos -1 = %v", err)
	}
	if err := c.Publish(ctx, "ml/long/name", -1, []byte("x")); !errors.Is(err, ErrInvalidPacket) {
		t.Errorf("Publish qos -1 on a normal topic = %v, want ErrInvalidPacket", err)
	}
	if err := c.Publish(ctx, "ml/anon", 1, []byte("x")); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Publish qos 1 before Connect = %v, want ErrNotConnected", err)
	}
	waitFor(t, 5*time.Second, func() error {
		if pubs, _, _, _ := rec.snapshot(); !slices.Equal(pubs, []string{" ml/anon 42"}) {
			return fmt.Errorf("publications %q", pubs)
		}
		return nil
	})
}

func TestSubscribeDownlink(t *testing.T) {
	g, gw, rec := startGateway(t, GatewayConfig{
		Predefined: func(string) map[uint16]string { return map[uint16]string{5: "ml/cfg"} },
	}, nil)
	c := newTestClient(t, gw, ClientConfig{ClientID: "mt-0003", Predefined: map[string]uint16{"ml/cfg": 5}}, nil)
	connect(t, c)
	ctx := ctxT(t)
	got := make(chan string, 10)
	h := func(topic string, payload []byte) error {
		got <- topic + " " + string(payload)
		return nil
	}
	for _, topic := range []string{"ml/cmd/mt-0003", "ml/bc/+", "ml/cfg", "xy"} {
		if err := c.Subscribe(ctx, topic, 1, h); err != nil {
			t.Fatalf("Subscribe(%q) = %v", topic, err)
		}
	}
	send := []struct {
		topic string
		qos   int
	}{
		{"ml/cmd/mt-0003", 1}, // id from SUBACK
		{"ml/bc/all", 1},      // REGISTER after the wildcard subscription
		{"ml/cfg", 1},         // predefined
		{"xy", 0},             // short
		{"ml/bc/all", 0},      // now registered
	}
	for i, s := range send {
		if err := g.Publish(ctx, "mt-0003", s.topic, s.qos, fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatalf("Gateway.Publish(%q) = %v", s.topic, err)
		}
	}
	want := []string{"ml/cmd/mt-0003 m0", "ml/bc/all m1", "ml/cfg m2", "xy m3", "ml/bc/all m4"}
	for i, w := range want {
		select {
		case g := <-got:
			if g != w {
				t.Errorf("message %d = %q, want %q", i, g, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d (%q) not delivered", i, w)
		}
	}
	waitFor(t, 5*time.Second, func() error {
		_, _, _, del := rec.snapshot()
		if len(del) != len(send) {
			return fmt.Errorf("%d deliveries reported, want %d", len(del), len(send))
		}
		for _, d := range del {
			if d.Err != nil {
				return fmt.Errorf("delivery %+v failed", d)
			}
		}
		return nil
	})
}

func TestSubscribeUnknownPredefinedRejected(t *testing.T) {
	_, gw, _ := startGateway(t, GatewayConfig{}, nil)
	c := newTestClient(t, gw, ClientConfig{ClientID: "mt-0004", Predefined: map[string]uint16{"ml/x": 10}}, nil)
	connect(t, c)
	err := c.Subscribe(ctxT(t), "ml/x", 1, func(string, []byte) error { return nil })
	var rej *RejectedError
	if !errors.As(err, &rej) || rej.Code != RejectedInvalidTopicID || !errors.Is(err, ErrRejected) {
		t.Fatalf("Subscribe(unknown predefined) = %v, want RejectedError with code 0x02", err)
	}
}

func TestSleepWakeBufferedInOrder(t *testing.T) {
	g, gw, rec := startGateway(t, GatewayConfig{}, nil)
	c := newTestClient(t, gw, ClientConfig{ClientID: "mt-0005"}, nil)
	connect(t, c)
	ctx := ctxT(t)
	got := make(chan string, 10)
	if err := c.Subscribe(ctx, "ml/cmd/#", 1, func(topic string, payload []byte) error {
		got <- string(payload)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.Sleep(ctx, 30*time.Second); err != nil {
		t.Fatalf("Sleep() = %v", err)
	}
	waitFor(t, 5*time.Second, func() error { return wantState(g, "mt-0005", StateAsleep) })
	want := []string{"one", "two", "three"}
	for i, m := range want {
		topic := "ml/cmd/a"
		if i == 1 {
			topic = "ml/cmd/b"
		}
		if err := g.Publish(ctx, "mt-0005", topic, 1, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case m := <-got:
		t.Fatalf("%q delivered while asleep", m)
	default:
	}
	if err := c.Wake(ctx); err != nil {
		t.Fatalf("Wake() = %v", err)
	}
	// PINGRESP comes after the last PUBACK, so all arrived before Wake returned.
	var order []string
	for range want {
		select {
		case m := <-got:
			order = append(order, m)
		default:
			t.Fatalf("after Wake got %q, want %q", order, want)
		}
	}
	if diff := cmp.Diff(want, order); diff != "" {
		t.Errorf("buffered delivery (-want +got):\n%s", diff)
	}
	if err := wantState(g, "mt-0005", StateAsleep); err != nil {
		t.Error(err)
	}
	if _, _, _, del := rec.snapshot(); len(del) != 3 {
		t.Errorf("%d deliveries reported, want 3", len(del))
	}
	// A second wake-up with nothing buffered returns at once.
	if err := c.Wake(ctx); err != nil {
		t.Fatalf("second Wake() = %v", err)
	}
	connect(t, c)
	if err := wantState(g, "mt-0005", StateActive); err != nil {
		t.Error(err)
	}
	if err := c.Publish(ctx, "ml/up", 1, []byte("awake")); err != nil {
		t.Errorf("Publish after reconnect = %v", err)
	}
}

func wantState(g *Gateway, id string, st ClientState) error {
	for _, ci := range g.Clients() {
		if ci.ClientID == id {
			if ci.State != st {
				return fmt.Errorf("%s is %v, want %v", id, ci.State, st)
			}
			return nil
		}
	}
	return fmt.Errorf("%s unknown", id)
}

func TestWillOnLossNotOnDisconnect(t *testing.T) {
	g, gw, rec := startGateway(t, GatewayConfig{}, nil)
	clean := newTestClient(t, gw, ClientConfig{ClientID: "clean", KeepAlive: time.Second,
		Will: &Will{Topic: "ml/will/clean", Message: []byte("gone")}}, nil)
	lost := newTestClient(t, gw, ClientConfig{ClientID: "lost", KeepAlive: time.Second,
		Will: &Will{Topic: "ml/will/lost", Message: []byte("gone")}}, nil)
	connect(t, clean)
	connect(t, lost)
	if err := clean.Disconnect(ctxT(t)); err != nil {
		t.Fatalf("Disconnect() = %v", err)
	}
	lost.Close() // silent: no DISCONNECT, no more PINGREQ
	waitFor(t, 5*time.Second, func() error { return wantState(g, "lost", StateLost) })
	_, wills, lostIDs, _ := rec.snapshot()
	if diff := cmp.Diff([]string{"lost ml/will/lost gone"}, wills); diff != "" {
		t.Errorf("wills (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"lost"}, lostIDs); diff != "" {
		t.Errorf("lost clients (-want +got):\n%s", diff)
	}
	if err := wantState(g, "clean", StateDisconnected); err != nil {
		t.Error(err)
	}
}

func TestKeepAliveKeepsClientActive(t *testing.T) {
	g, gw, rec := startGateway(t, GatewayConfig{}, nil)
	c := newTestClient(t, gw, ClientConfig{ClientID: "pinger", KeepAlive: time.Second,
		Will: &Will{Topic: "w", Message: []byte("x")}}, nil)
	connect(t, c)
	start := time.Now()
	// Three keep-alive periods with no traffic but PINGREQ.
	waitFor(t, 10*time.Second, func() error {
		if time.Since(start) < 3*time.Second {
			return errors.New("waiting")
		}
		return nil
	})
	if err := wantState(g, "pinger", StateActive); err != nil {
		t.Error(err)
	}
	if _, wills, _, _ := rec.snapshot(); len(wills) != 0 {
		t.Errorf("wills %q, want none", wills)
	}
}

func TestClientLosesSilentGateway(t *testing.T) {
	fake := newRawPeer(t, nil)
	c := newTestClient(t, fake.conn.LocalAddr(), ClientConfig{ClientID: "mt-0006", MaxRetries: 2}, nil)
	done := make(chan error, 1)
	go func() { done <- c.Connect(ctxT(t)) }()
	p := fake.expect()
	if _, ok := p.(*Connect); !ok {
		t.Fatalf("got %v, want CONNECT", p.Type())
	}
	fake.to = c.conn.LocalAddr()
	fake.send(&Connack{})
	if err := <-done; err != nil {
		t.Fatalf("Connect() = %v", err)
	}
	err := c.Publish(ctxT(t), "ml/x/y", 1, []byte("lost"))
	if !errors.Is(err, ErrConnectionLost) || !errors.Is(err, ErrTimeout) {
		t.Fatalf("Publish to a silent gateway = %v, want ErrConnectionLost and ErrTimeout", err)
	}
	// REGISTER sent 1+2 times, then lost.
	n := 0
	for p := fake.recv(200 * time.Millisecond); p != nil; p = fake.recv(200 * time.Millisecond) {
		if _, ok := p.(*Register); ok {
			n++
		}
	}
	if n != 3 {
		t.Errorf("REGISTER sent %d times, want 3", n)
	}
	if err := c.Publish(ctxT(t), "ml/x/y", 1, nil); !errors.Is(err, ErrConnectionLost) {
		t.Errorf("Publish after loss = %v, want ErrConnectionLost", err)
	}
}

func TestUnknownTopicIDGetsInvalidTopicID(t *testing.T) {
	g, gw, rec := startGateway(t, GatewayConfig{}, nil)
	r := newRawPeer(t, gw)
	r.send(&Connect{CleanSession: true, Duration: 60, ClientID: "raw"})
	if p, ok := r.expect().(*Connack); !ok || p.ReturnCode != Accepted {
		t.Fatalf("got %#v, want CONNACK accepted", p)
	}
	tests := []struct {
		name string
		pub  *Publish
		want *Puback
	}{
		{"qos 0", &Publish{TopicID: 99, Data: []byte("x")}, &Puback{TopicID: 99, ReturnCode: RejectedInvalidTopicID}},
		{"qos 1", &Publish{QoS: QoS1, TopicID: 98, MsgID: 4, Data: []byte("x")},
			&Puback{TopicID: 98, MsgID: 4, ReturnCode: RejectedInvalidTopicID}},
		{"predefined", &Publish{QoS: QoS1, TopicIDType: TopicPredefined, TopicID: 3, MsgID: 5},
			&Puback{TopicID: 3, MsgID: 5, ReturnCode: RejectedInvalidTopicID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.send(tt.pub)
			if diff := cmp.Diff(Packet(tt.want), r.expect()); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
		})
	}
	// The session survives.
	r.send(&Pingreq{})
	if _, ok := r.expect().(*Pingresp); !ok {
		t.Error("no PINGRESP after rejected publications")
	}
	if pubs, _, _, _ := rec.snapshot(); len(pubs) != 0 {
		t.Errorf("forwarded %q, want nothing", pubs)
	}
	if err := wantState(g, "raw", StateActive); err != nil {
		t.Error(err)
	}
}

func TestDuplicateQoS1AckedOnce(t *testing.T) {
	_, gw, rec := startGateway(t, GatewayConfig{}, nil)
	r := newRawPeer(t, gw)
	r.send(&Connect{Duration: 60, ClientID: "dup"})
	r.expect()
	r.send(&Register{MsgID: 1, TopicName: "ml/d"})
	ack := r.expect().(*Regack)
	pub := &Publish{QoS: QoS1, TopicID: ack.TopicID, MsgID: 2, Data: []byte("once")}
	for i := range 3 {
		pub.DUP = i == 2 // the link may copy without DUP
		r.send(pub)
		if diff := cmp.Diff(Packet(&Puback{TopicID: ack.TopicID, MsgID: 2}), r.expect()); diff != "" {
			t.Errorf("answer %d (-want +got):\n%s", i, diff)
		}
	}
	pubs, _, _, _ := rec.snapshot()
	if diff := cmp.Diff([]string{"dup ml/d once"}, pubs); diff != "" {
		t.Errorf("publications (-want +got):\n%s", diff)
	}
}

func TestUnknownSender(t *testing.T) {
	_, gw, _ := startGateway(t, GatewayConfig{GatewayID: 7}, nil)
	r := newRawPeer(t, gw)
	tests := []struct {
		name string
		send Packet
		want Packet
	}{
		{"pingreq", &Pingreq{}, &Disconnect{}},
		{"publish qos 1", &Publish{QoS: QoS1, TopicID: 1, MsgID: 1}, &Disconnect{}},
		{"register", &Register{MsgID: 1, TopicName: "a"}, &Disconnect{}},
		{"wake-up of unknown client", &Pingreq{ClientID: "nobody"}, &Disconnect{}},
		{"searchgw", &SearchGW{}, &GWInfo{GwID: 7}},
		{"bad client id", &Connect{Duration: 1, ClientID: "012345678901234567890123"}, &Connack{ReturnCode: RejectedNotSupported}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.send(tt.send)
			if diff := cmp.Diff(tt.want, r.expect()); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
		})
	}
	// QoS -1 with an unknown id gets no answer at all.
	r.send(&Publish{QoS: QoSMinus1, TopicIDType: TopicPredefined, TopicID: 1})
	if p := r.recv(200 * time.Millisecond); p != nil {
		t.Errorf("answer to qos -1 = %#v, want none", p)
	}
}

func TestWillFlowRaw(t *testing.T) {
	g, gw, rec := startGateway(t, GatewayConfig{}, nil)
	r := newRawPeer(t, gw)
	r.send(&Connect{Will: true, CleanSession: true, Duration: 1, ClientID: "w"})
	if _, ok := r.expect().(*WillTopicReq); !ok {
		t.Fatal("no WILLTOPICREQ")
	}
	r.send(&WillTopic{QoS: QoS1, Topic: "ml/will"})
	if _, ok := r.expect().(*WillMsgReq); !ok {
		t.Fatal("no WILLMSGREQ")
	}
	r.send(&WillMsg{Msg: []byte("bye")})
	if p, ok := r.expect().(*Connack); !ok || p.ReturnCode != Accepted {
		t.Fatal("no CONNACK")
	}
	r.send(&WillMsgUpd{Msg: []byte("bye2")})
	if diff := cmp.Diff(Packet(&WillMsgResp{}), r.expect()); diff != "" {
		t.Errorf("WILLMSGUPD answer (-want +got):\n%s", diff)
	}
	// Keep-alive 1s + 50 %: lost after 1.5s of silence.
	waitFor(t, 5*time.Second, func() error { return wantState(g, "w", StateLost) })
	if _, wills, _, _ := rec.snapshot(); !slices.Equal(wills, []string{"w ml/will bye2"}) {
		t.Errorf("wills %q", wills)
	}
	// A lost client is told to reconnect.
	r.send(&Pingreq{})
	if _, ok := r.expect().(*Disconnect); !ok {
		t.Error("lost client's PINGREQ not answered with DISCONNECT")
	}
}

func TestSlowOnPublishDoesNotBlockOthers(t *testing.T) {
	release := make(chan struct{})
	var rec2 recorder
	_, gw, _ := startGateway(t, GatewayConfig{
		OnPublish: func(ctx context.Context, clientID, topic string, payload []byte) error {
			if clientID == "slow" {
				select {
				case <-release:
				case <-ctx.Done():
				}
			}
			return rec2.onPublish(ctx, clientID, topic, payload)
		},
	}, nil)
	slow := newTestClient(t, gw, ClientConfig{ClientID: "slow", RetryInterval: time.Second}, nil)
	fast := newTestClient(t, gw, ClientConfig{ClientID: "fast"}, nil)
	connect(t, slow)
	connect(t, fast)
	slowDone := make(chan error, 1)
	go func() { slowDone <- slow.Publish(context.Background(), "ml/slow", 1, []byte("s")) }()
	for i := range 5 {
		if err := fast.Publish(ctxT(t), "ml/fast", 1, fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatalf("fast Publish = %v", err)
		}
	}
	select {
	case err := <-slowDone:
		t.Fatalf("slow Publish returned %v before OnPublish did", err)
	default:
	}
	release <- struct{}{}
	if err := <-slowDone; err != nil {
		t.Errorf("slow Publish = %v", err)
	}
}

func TestGatewayPublishErrors(t *testing.T) {
	g, gw, _ := startGateway(t, GatewayConfig{MaxBuffered: 2}, nil)
	c := newTestClient(t, gw, ClientConfig{ClientID: "buf"}, nil)
	connect(t, c)
	ctx := ctxT(t)
	if err := c.Sleep(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := g.Publish(ctx, "nobody", "t/x", 1, nil); !errors.Is(err, ErrUnknownClient) {
		t.Errorf("Publish to unknown = %v, want ErrUnknownClient", err)
	}
	for i := range 2 {
		if err := g.Publish(ctx, "buf", "t/x", 1, nil); err != nil {
			t.Fatalf("Publish %d = %v", i, err)
		}
	}
	if err := g.Publish(ctx, "buf", "t/x", 1, nil); !errors.Is(err, ErrBufferFull) {
		t.Errorf("third Publish = %v, want ErrBufferFull", err)
	}
}

func TestTolerance(t *testing.T) {
	for _, tt := range []struct{ d, want time.Duration }{
		{10 * time.Second, 15 * time.Second},
		{time.Minute, 90 * time.Second},
		{10 * time.Minute, 11 * time.Minute},
	} {
		if got := tolerance(tt.d); got != tt.want {
			t.Errorf("tolerance(%v) = %v, want %v", tt.d, got, tt.want)
		}
	}
}
