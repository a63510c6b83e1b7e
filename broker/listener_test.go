package broker_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/meterlink/meterlink/broker"
	"github.com/meterlink/meterlink/topic"
)

func TestWebSocketViewer(t *testing.T) {
	cfg := testConfig()
	cfg.WSAddr = "on"
	b := startBroker(t, cfg)
	if !strings.HasPrefix(b.WSURL(), "ws://127.0.0.1:") || b.WSAddr() == b.Addr() {
		t.Fatalf("WSURL() = %q, Addr() = %q", b.WSURL(), b.Addr())
	}
	ops := login(t, b.URL(), "ops", "ops-1")
	if err := ops.Publish(ctx5(t), topic.OpsStatus("ops"), 1, true, []byte("up")); err != nil {
		t.Fatal(err)
	}

	in := newInbox()
	v := login(t, b.WSURL(), "", "dash-ws")
	if err := v.Subscribe(ctx5(t), topic.OpsReadingsAll, 0, in.handle); err != nil {
		t.Fatal(err)
	}
	if err := v.Subscribe(ctx5(t), "meterlink/v1/ops/status/+", 1, in.handle); err != nil {
		t.Fatal(err)
	}
	if m := in.next(t); m.Topic != topic.OpsStatus("ops") || string(m.Payload) != "up" {
		t.Fatalf("got %s %q, want the retained status", m.Topic, m.Payload)
	}
	big := bytes.Repeat([]byte("r"), 20000) // spans many TCP segments and WebSocket reads
	if err := ops.Publish(ctx5(t), topic.OpsReadings("D01", "T0001"), 1, false, big); err != nil {
		t.Fatal(err)
	}
	if m := in.next(t); m.Topic != topic.OpsReadings("D01", "T0001") || !bytes.Equal(m.Payload, big) {
		t.Fatalf("got %s (%d bytes), want the reading (%d bytes)", m.Topic, len(m.Payload), len(big))
	}
	// Viewers stay read-only over WebSocket too.
	if err := v.Publish(ctx5(t), topic.OpsStatus("ops"), 0, false, []byte("down")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() error {
		if n := b.Stats().ACLDenials; n != 1 {
			return fmt.Errorf("ACLDenials = %d, want 1", n)
		}
		return nil
	})
}

func TestPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	for _, cfg := range []broker.Config{
		{TCPAddr: addr},
		{TCPAddr: "127.0.0.1:0", WSAddr: addr},
	} {
		def := broker.DefaultConfig()
		cfg.MaxPacketSize, cfg.MaxInflight, cfg.MaxClientWritesPending = def.MaxPacketSize, def.MaxInflight, def.MaxClientWritesPending
		b, err := broker.New(cfg, nil)
		if err == nil {
			_ = b.Close()
			t.Fatalf("New(%+v) succeeded on a port in use", cfg)
		}
		if !strings.Contains(err.Error(), addr) {
			t.Errorf("New error %q does not name %s", err, addr)
		}
	}
}

// TestOversizePacketRefused: a packet over MaxPacketSize closes the connection, is counted,
// and never reaches a subscriber.
func TestOversizePacketRefused(t *testing.T) {
	cfg := testConfig()
	cfg.MaxPacketSize = 4096
	b := startBroker(t, cfg)
	in := newInbox()
	ops := login(t, b.URL(), "ops", "ops-1")
	if err := ops.Subscribe(ctx5(t), topic.OpsUpShared, 1, in.handle); err != nil {
		t.Fatal(err)
	}
	onLost, lost := lostSignal()
	p, err := connect(t, clientOpts{url: b.URL(), clientID: "P01", username: "P01", password: "P01-pw", onLost: onLost})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx5(t), topic.PDAUp("P01"), 0, false, make([]byte, 5000)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("connection not closed within 5s")
	}
	waitFor(t, 5*time.Second, func() error {
		if n := b.Stats().PacketsTooLarge; n != 1 {
			return fmt.Errorf("PacketsTooLarge = %d, want 1", n)
		}
		return nil
	})
	// The first client would reconnect by itself and take the client id back from p2.
	p.Close()
	p2 := login(t, b.URL(), "P01", "P01")
	if err := p2.Publish(ctx5(t), topic.PDAUp("P01"), 1, false, make([]byte, 4000)); err != nil {
		t.Fatal(err)
	}
	if m := in.next(t); len(m.Payload) != 4000 {
		t.Fatalf("ops got %d bytes first, want the 4000-byte message", len(m.Payload))
	}
}

func TestRunAndClose(t *testing.T) {
	cfg := testConfig()
	cfg.TCPAddr = "127.0.0.1:0"
	b, err := broker.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Run(t.Context()) }()
	login(t, "tcp://"+b.Addr(), "ops", "ops-1")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v after Close, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if err := b.Run(t.Context()); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Run after Close = %v, want ErrClosed", err)
	}
	// The port is free again.
	ln, err := net.Listen("tcp", b.Addr())
	if err != nil {
		t.Fatalf("port still held after Close: %v", err)
	}
	_ = ln.Close()
}
