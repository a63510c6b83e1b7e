// Package brokertest runs the production broker ([broker.New], real ACL and store hooks
// included) on 127.0.0.1 with free ports for tests, and stops it when the test ends.
package brokertest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/meterlink/meterlink/broker"
)

// Broker is a broker started by [Start]. The embedded [broker.Broker] gives Stats, Addr,
// WSAddr and Disconnect; it is replaced by [Broker.Restart].
type Broker struct {
	*broker.Broker
	cfg  broker.Config
	stop func() // stops the running broker and waits for Run to return
}

// Start runs broker.New(cfg) on 127.0.0.1 with a free TCP port, and a free WebSocket port when
// cfg.WSAddr is not empty, and stops it in t.Cleanup. Other fields of cfg are used as given,
// with DefaultConfig's limits for those left zero. Without cfg.Logger, the broker logs warnings
// and errors to the test's output (shown for failing tests and with -v).
func Start(t testing.TB, cfg broker.Config) *Broker {
	t.Helper()
	def := broker.DefaultConfig()
	cfg.TCPAddr = "127.0.0.1:0"
	if cfg.WSAddr != "" {
		cfg.WSAddr = "127.0.0.1:0"
	}
	if cfg.MaxPacketSize == 0 {
		cfg.MaxPacketSize = def.MaxPacketSize
	}
	if cfg.MaxInflight == 0 {
		cfg.MaxInflight = def.MaxInflight
	}
	if cfg.MaxClientWritesPending == 0 {
		cfg.MaxClientWritesPending = max(def.MaxClientWritesPending, 2*cfg.MaxInflight)
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	b := &Broker{cfg: cfg}
	b.start(t)
	t.Cleanup(func() { b.stop() })
	return b
}

func (b *Broker) start(t testing.TB) {
	t.Helper()
	bb, err := broker.New(b.cfg, nil)
	if err != nil {
		t.Fatalf("brokertest: start broker: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bb.Run(ctx) }()
	var once sync.Once
	b.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, broker.ErrClosed) {
				t.Errorf("brokertest: broker run: %v", err)
			}
		})
	}
	b.Broker = bb
	// Later starts (Restart) keep the same ports, so that clients reconnect to the same URLs.
	b.cfg.TCPAddr = bb.Addr()
	if b.cfg.WSAddr != "" {
		b.cfg.WSAddr = bb.WSAddr()
	}
}

// URL returns the broker's MQTT URL, "tcp://127.0.0.1:port".
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

// WSURL returns the broker's MQTT-over-WebSocket URL, "ws://127.0.0.1:port/mqtt", or "" when
// the broker was started without WebSocket.
func (b *Broker) WSURL() string {
	if b.WSAddr() == "" {
		return ""
	}
	return "ws://" + b.WSAddr() + "/mqtt"
}

// Config returns the configuration the broker runs with (bound addresses filled in).
func (b *Broker) Config() broker.Config { return b.cfg }

// Restart stops the broker and starts a new one with the same configuration on the same
// ports, as a process restart would: with a StorePath, persistent sessions, in-flight and
// retained messages come back from the store.
func (b *Broker) Restart(t testing.TB) {
	t.Helper()
	b.stop()
	b.start(t)
}

// testLogger writes warnings and errors to t's output until the test is cleaned up; log lines
// from goroutines that outlive the test are discarded instead of panicking.
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{w: t.Output()}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct {
	mu   sync.Mutex
	w    io.Writer
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	return w.w.Write(p)
}
