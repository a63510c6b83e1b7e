package mqttsn

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSleepTimeoutLosesClient(t *testing.T) {
	g, gw, rec := startGateway(t, GatewayConfig{}, nil)
	c := newTestClient(t, gw, ClientConfig{ClientID: "sleepy", Will: &Will{Topic: "ml/will", Message: []byte("z")}}, nil)
	connect(t, c)
	if err := c.Sleep(ctxT(t), time.Second); err != nil {
		t.Fatal(err)
	}
	// Sleep 1s + 50 %: lost after 1.5s without a wake-up.
	waitFor(t, 5*time.Second, func() error { return wantState(g, "sleepy", StateLost) })
	if _, wills, _, _ := rec.snapshot(); !slices.Equal(wills, []string{"sleepy ml/will z"}) {
		t.Errorf("wills %q", wills)
	}
	if err := c.Wake(ctxT(t)); !errors.Is(err, ErrConnectionLost) {
		t.Errorf("Wake() of a lost client = %v, want ErrConnectionLost", err)
	}
}

func TestGatewayDisconnectMakesClientReconnect(t *testing.T) {
	g, gw, rec := startGateway(t, GatewayConfig{}, nil)
	c := newTestClient(t, gw, ClientConfig{ClientID: "kicked", Will: &Will{Topic: "w", Message: []byte("x")}}, nil)
	connect(t, c)
	if err := g.Disconnect("kicked"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() error {
		if err := c.Publish(ctxT(t), "ml/a/b", 1, nil); !errors.Is(err, ErrConnectionLost) {
			return fmt.Errorf("Publish after gateway DISCONNECT = %v, want ErrConnectionLost", err)
		}
		return nil
	})
	connect(t, c)
	if err := c.Publish(ctxT(t), "ml/a/b", 1, []byte("back")); err != nil {
		t.Errorf("Publish after reconnect = %v", err)
	}
	if _, wills, _, _ := rec.snapshot(); len(wills) != 0 {
		t.Errorf("wills %q, want none", wills)
	}
	if err := g.Disconnect("nobody"); !errors.Is(err, ErrUnknownClient) {
		t.Errorf("Disconnect(unknown) = %v, want ErrUnknownClient", err)
	}
}

func TestEncapsulatedRepliesToNode(t *testing.T) {
	g, gw, rec := startGateway(t, GatewayConfig{}, nil)
	fwd := newRawPeer(t, gw)
	wrap := func(node byte, p Packet) Packet { return &Encapsulated{NodeID: []byte{node}, Inner: p} }
	fwd.send(wrap(0x37, &Connect{Duration: 60, ClientID: "node-37"}))
	fwd.send(wrap(0x38, &Connect{Duration: 60, ClientID: "node-38"}))
	got := map[string]bool{}
	for range 2 {
		p := fwd.expect()
		e, ok := p.(*Encapsulated)
		if !ok {
			t.Fatalf("got %v, want encapsulated CONNACK", p.Type())
		}
		got[fmt.Sprintf("%x %v", e.NodeID, e.Inner.Type())] = true
	}
	if diff := cmp.Diff(map[string]bool{"37 CONNACK": true, "38 CONNACK": true}, got); diff != "" {
		t.Errorf("replies (-want +got):\n%s", diff)
	}
	fwd.send(wrap(0x38, &Publish{TopicIDType: TopicShort, TopicID: 0x7264, Data: []byte("v")}))
	waitFor(t, 5*time.Second, func() error {
		if pubs, _, _, _ := rec.snapshot(); !slices.Equal(pubs, []string{"node-38 rd v"}) {
			return fmt.Errorf("publications %q", pubs)
		}
		return nil
	})
	for _, ci := range g.Clients() {
		if ci.ClientID == "node-37" && !slices.Equal(ci.NodeID, []byte{0x37}) {
			t.Errorf("node-37 NodeID = %x", ci.NodeID)
		}
	}
}

// fakeGateway connects c to a raw peer acting as the gateway.
func fakeGateway(t *testing.T, cfg ClientConfig) (*Client, *rawPeer) {
	t.Helper()
	fake := newRawPeer(t, nil)
	c := newTestClient(t, fake.conn.LocalAddr(), cfg, nil)
	fake.to = c.conn.LocalAddr()
	done := make(chan error, 1)
	go func() { done <- c.Connect(ctxT(t)) }()
	if p, ok := fake.expect().(*Connect); !ok {
		t.Fatalf("got %#v, want CONNECT", p)
	}
	fake.send(&Connack{})
	if err := <-done; err != nil {
		t.Fatalf("Connect() = %v", err)
	}
	return c, fake
}

func TestClientIncomingDuplicatesAndUnknownIDs(t *testing.T) {
	c, gw := fakeGateway(t, ClientConfig{ClientID: "dedup", Predefined: map[string]uint16{"ml/cmd": 3}})
	calls := make(chan string, 10)
	fail := true
	subDone := make(chan error, 1)
	go func() {
		subDone <- c.Subscribe(ctxT(t), "ml/cmd", 1, func(topic string, payload []byte) error {
			calls <- string(payload)
			if fail {
				fail = false
				return errors.New("disk full")
			}
			return nil
		})
	}()
	sub := gw.expect().(*Subscribe)
	if sub.TopicIDType != TopicPredefined || sub.TopicID != 3 {
		t.Fatalf("SUBSCRIBE %#v, want predefined id 3", sub)
	}
	gw.send(&Suback{QoS: QoS1, TopicID: 3, MsgID: sub.MsgID})
	if err := <-subDone; err != nil {
		t.Fatal(err)
	}
	pub := &Publish{QoS: QoS1, TopicIDType: TopicPredefined, TopicID: 3, MsgID: 9, Data: []byte("cmd")}
	gw.send(pub)
	if got := <-calls; got != "cmd" {
		t.Fatalf("handler got %q", got)
	}
	if p := gw.recv(200 * time.Millisecond); p != nil {
		t.Fatalf("answer %#v to a failed handler, want none", p)
	}
	pub.DUP = true
	for i := range 3 { // retransmission, then copies
		gw.send(pub)
		if diff := cmp.Diff(Packet(&Puback{TopicID: 3, MsgID: 9}), gw.expect()); diff != "" {
			t.Fatalf("answer %d (-want +got):\n%s", i, diff)
		}
	}
	if got := <-calls; got != "cmd" {
		t.Fatalf("handler got %q on retransmission", got)
	}
	select {
	case got := <-calls:
		t.Errorf("duplicate delivered: %q", got)
	default:
	}
	gw.send(&Publish{TopicID: 77, Data: []byte("?")})
	if diff := cmp.Diff(Packet(&Puback{TopicID: 77, ReturnCode: RejectedInvalidTopicID}), gw.expect()); diff != "" {
		t.Errorf("answer to unknown id (-want +got):\n%s", diff)
	}
	// A gateway REGISTER makes the id known.
	gw.send(&Register{TopicID: 77, MsgID: 10, TopicName: "ml/cmd"})
	if diff := cmp.Diff(Packet(&Regack{TopicID: 77, MsgID: 10}), gw.expect()); diff != "" {
		t.Errorf("REGACK (-want +got):\n%s", diff)
	}
	gw.send(&Publish{TopicID: 77, Data: []byte("known")})
	if got := <-calls; got != "known" {
		t.Errorf("handler got %q", got)
	}
}

func TestClientReregistersOnInvalidTopicID(t *testing.T) {
	c, gw := fakeGateway(t, ClientConfig{ClientID: "rereg"})
	done := make(chan error, 1)
	go func() { done <- c.Publish(ctxT(t), "ml/ev/x", 1, []byte("p")) }()
	reg := gw.expect().(*Register)
	gw.send(&Regack{TopicID: 4, MsgID: reg.MsgID})
	pub := gw.expect().(*Publish)
	if pub.TopicID != 4 || pub.DUP {
		t.Fatalf("PUBLISH %#v, want id 4 without DUP", pub)
	}
	gw.send(&Puback{TopicID: 4, MsgID: pub.MsgID, ReturnCode: RejectedInvalidTopicID})
	reg2 := gw.expect().(*Register)
	if reg2.TopicName != "ml/ev/x" {
		t.Fatalf("REGISTER %#v", reg2)
	}
	gw.send(&Regack{TopicID: 5, MsgID: reg2.MsgID})
	pub2 := gw.expect().(*Publish)
	if pub2.TopicID != 5 || pub2.MsgID != pub.MsgID || !pub2.DUP {
		t.Fatalf("republish %#v, want id 5, MsgId %d, DUP", pub2, pub.MsgID)
	}
	// Lost PUBACK: the client retransmits with DUP and the same MsgId.
	pub3 := gw.expect().(*Publish)
	if pub3.MsgID != pub.MsgID || !pub3.DUP {
		t.Fatalf("retransmission %#v", pub3)
	}
	gw.send(&Puback{TopicID: 5, MsgID: pub.MsgID})
	if err := <-done; err != nil {
		t.Errorf("Publish() = %v", err)
	}
}

func TestClientSerialisesConcurrentPublishes(t *testing.T) {
	_, gw, rec := startGateway(t, GatewayConfig{}, nil)
	c := newTestClient(t, gw, ClientConfig{ClientID: "conc"}, nil)
	connect(t, c)
	errs := make(chan error, 40)
	for i := range 8 {
		go func() {
			for j := range 5 {
				errs <- c.Publish(ctxT(t), fmt.Sprintf("ml/t/%d", i), 1, fmt.Appendf(nil, "%d-%d", i, j))
			}
		}()
	}
	for range 40 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if pubs, _, _, _ := rec.snapshot(); len(pubs) != 40 {
		t.Errorf("%d publications, want 40", len(pubs))
	}
}

func TestClientConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  ClientConfig
	}{
		{"empty id", ClientConfig{}},
		{"long id", ClientConfig{ClientID: "012345678901234567890123"}},
		{"reserved predefined", ClientConfig{ClientID: "a", Predefined: map[string]uint16{"x": 0xFFFF}}},
		{"will without topic", ClientConfig{ClientID: "a", Will: &Will{}}},
		{"keep-alive too long", ClientConfig{ClientID: "a", KeepAlive: 100000 * time.Second}},
	}
	gw := newRawPeer(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewClient(gw.conn, gw.conn.LocalAddr(), tt.cfg); err == nil {
				t.Errorf("NewClient(%+v) succeeded", tt.cfg)
			}
		})
	}
	c, err := NewClient(gw.conn, gw.conn.LocalAddr(), ClientConfig{ClientID: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	want := ClientConfig{ClientID: "ok", KeepAlive: 60 * time.Second, RetryInterval: 10 * time.Second, MaxRetries: 4}
	got := c.cfg
	got.Logger = nil
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func TestCloseIdempotent(t *testing.T) {
	_, gw, _ := startGateway(t, GatewayConfig{}, nil)
	c := newTestClient(t, gw, ClientConfig{ClientID: "close"}, nil)
	connect(t, c)
	if err := c.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close() = %v", err)
	}
	if err := c.Publish(ctxT(t), "ml/x", 1, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}
}

func TestAdvertise(t *testing.T) {
	watcher := newRawPeer(t, nil)
	startGateway(t, GatewayConfig{GatewayID: 3, AdvertiseInterval: time.Second, AdvertiseAddr: watcher.conn.LocalAddr()}, nil)
	if diff := cmp.Diff(Packet(&Advertise{GwID: 3, Duration: 1}), watcher.expect()); diff != "" {
		t.Errorf("ADVERTISE (-want +got):\n%s", diff)
	}
	if _, err := NewGateway(watcher.conn, GatewayConfig{AdvertiseInterval: time.Second}); err == nil {
		t.Error("NewGateway with an interval and no address succeeded")
	}
}

func TestUnsubscribe(t *testing.T) {
	g, gw, _ := startGateway(t, GatewayConfig{}, nil)
	c := newTestClient(t, gw, ClientConfig{ClientID: "unsub"}, nil)
	connect(t, c)
	got := make(chan string, 4)
	ctx := ctxT(t)
	if err := c.Subscribe(ctx, "ml/cmd/u", 1, func(_ string, p []byte) error { got <- string(p); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := c.Unsubscribe(ctx, "ml/cmd/u"); err != nil {
		t.Fatalf("Unsubscribe() = %v", err)
	}
	if err := g.Publish(ctx, "unsub", "ml/cmd/u", 1, []byte("ignored")); err != nil {
		t.Fatal(err)
	}
	// Acknowledged (no handler) but not delivered.
	waitFor(t, 5*time.Second, func() error {
		for _, ci := range g.Clients() {
			if ci.Queued != 0 {
				return fmt.Errorf("%d queued", ci.Queued)
			}
		}
		return nil
	})
	select {
	case m := <-got:
		t.Errorf("delivered %q after Unsubscribe", m)
	default:
	}
}

func TestCleanReconnectResubscribes(t *testing.T) {
	c, gw := fakeGateway(t, ClientConfig{ClientID: "resub", CleanSession: true})
	subscribe := func() error {
		return c.Subscribe(ctxT(t), "ml/cmd/+", 1, func(string, []byte) error { return nil })
	}
	done := make(chan error, 1)
	go func() { done <- subscribe() }()
	sub := gw.expect().(*Subscribe)
	gw.send(&Suback{QoS: QoS1, MsgID: sub.MsgID})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	go func() { done <- c.Connect(ctxT(t)) }()
	if _, ok := gw.expect().(*Connect); !ok {
		t.Fatal("no CONNECT")
	}
	gw.send(&Connack{})
	sub2, ok := gw.expect().(*Subscribe)
	if !ok || sub2.TopicName != "ml/cmd/+" || sub2.QoS != QoS1 {
		t.Fatalf("after clean reconnect got %#v, want SUBSCRIBE ml/cmd/+", sub2)
	}
	gw.send(&Suback{QoS: QoS1, MsgID: sub2.MsgID})
	if err := <-done; err != nil {
		t.Errorf("Connect() = %v", err)
	}
}

func TestMaxClients(t *testing.T) {
	_, gw, _ := startGateway(t, GatewayConfig{MaxClients: 1}, nil)
	first := newTestClient(t, gw, ClientConfig{ClientID: "first"}, nil)
	second := newTestClient(t, gw, ClientConfig{ClientID: "second"}, nil)
	connect(t, first)
	var rej *RejectedError
	if err := second.Connect(ctxT(t)); !errors.As(err, &rej) || rej.Code != RejectedCongestion {
		t.Fatalf("Connect() beyond MaxClients = %v, want congestion", err)
	}
	// A disconnected session with nothing queued makes room.
	if err := first.Disconnect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	connect(t, second)
}

func TestGatewayQoS2(t *testing.T) {
	_, gw, rec := startGateway(t, GatewayConfig{}, nil)
	r := newRawPeer(t, gw)
	r.send(&Connect{Duration: 60, ClientID: "q2"})
	r.expect()
	pub := &Publish{QoS: QoS2, TopicIDType: TopicShort, TopicID: 0x7264, MsgID: 7, Data: []byte("x")}
	for i := range 2 {
		pub.DUP = i == 1
		r.send(pub)
		if diff := cmp.Diff(Packet(&Pubrec{MsgID: 7}), r.expect()); diff != "" {
			t.Errorf("answer %d (-want +got):\n%s", i, diff)
		}
	}
	r.send(&Pubrel{MsgID: 7})
	if diff := cmp.Diff(Packet(&Pubcomp{MsgID: 7}), r.expect()); diff != "" {
		t.Errorf("PUBCOMP (-want +got):\n%s", diff)
	}
	if pubs, _, _, _ := rec.snapshot(); !slices.Equal(pubs, []string{"q2 rd x"}) {
		t.Errorf("publications %q", pubs)
	}
}
