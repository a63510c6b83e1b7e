package mqttsn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

func waitFor(t testing.TB, within time.Duration, cond func() error) {
	t.Helper()
	end := time.Now().Add(within)
	for err := cond(); err != nil; err = cond() {
		if time.Now().After(end) {
			t.Fatalf("still failing after %v: %v", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recorder collects gateway callbacks.
type recorder struct {
	mu        sync.Mutex
	pubs      []string // "client topic payload"
	wills     []string // "client topic payload"
	lost      []string
	delivered []Delivery
}

func (r *recorder) onPublish(_ context.Context, clientID, topic string, payload []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pubs = append(r.pubs, fmt.Sprintf("%s %s %s", clientID, topic, payload))
	return nil
}

func (r *recorder) snapshot() (pubs, wills, lost []string, delivered []Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.pubs...), append([]string(nil), r.wills...),
		append([]string(nil), r.lost...), append([]Delivery(nil), r.delivered...)
}

func (r *recorder) hooks(cfg *GatewayConfig) {
	if cfg.OnPublish == nil {
		cfg.OnPublish = r.onPublish
	}
	cfg.WillPublish = func(clientID, topic string, payload []byte) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.wills = append(r.wills, fmt.Sprintf("%s %s %s", clientID, topic, payload))
	}
	cfg.OnLost = func(clientID string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.lost = append(r.lost, clientID)
	}
	cfg.OnDelivered = func(d Delivery) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.delivered = append(r.delivered, d)
	}
}

// startGateway runs a gateway on 127.0.0.1:0 (through wrap, if not nil)
// until the test ends.
func startGateway(t testing.TB, cfg GatewayConfig, wrap func(net.PacketConn) net.PacketConn) (*Gateway, net.Addr, *recorder) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conn := pc
	if wrap != nil {
		conn = wrap(pc)
	}
	rec := &recorder{}
	rec.hooks(&cfg)
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = 50 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	g, err := NewGateway(conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
		conn.Close()
	})
	return g, pc.LocalAddr(), rec
}

// newTestClient returns an unconnected client of gw, closed when the test
// ends.
func newTestClient(t testing.TB, gw net.Addr, cfg ClientConfig, wrap func(net.PacketConn) net.PacketConn) *Client {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conn := pc
	if wrap != nil {
		conn = wrap(pc)
	}
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = 50 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	c, err := NewClient(conn, gw, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func connect(t testing.TB, c *Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("Connect() = %v", err)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rawPeer speaks MQTT-SN packet by packet, for protocol-level tests.
type rawPeer struct {
	t    testing.TB
	conn net.PacketConn
	to   net.Addr
}

func newRawPeer(t testing.TB, to net.Addr) *rawPeer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return &rawPeer{t: t, conn: pc, to: to}
}

func (r *rawPeer) send(p Packet) {
	r.t.Helper()
	b, err := Append(nil, p)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.conn.WriteTo(b, r.to); err != nil {
		r.t.Fatal(err)
	}
}

// recv returns the next packet, or nil after within.
func (r *rawPeer) recv(within time.Duration) Packet {
	r.t.Helper()
	buf := make([]byte, MaxLen)
	_ = r.conn.SetReadDeadline(time.Now().Add(within))
	n, _, err := r.conn.ReadFrom(buf)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	if err != nil {
		r.t.Fatal(err)
	}
	p, err := Decode(buf[:n])
	if err != nil {
		r.t.Fatalf("Decode(% X) = %v", buf[:n], err)
	}
	return p
}

// expect returns the next packet, failing the test unless one arrives.
func (r *rawPeer) expect() Packet {
	r.t.Helper()
	p := r.recv(5 * time.Second)
	if p == nil {
		r.t.Fatal("no packet within 5s")
	}
	return p
}
