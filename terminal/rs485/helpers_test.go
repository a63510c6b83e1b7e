package rs485

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/meterlink/meterlink/metersim"
	"github.com/meterlink/meterlink/serialtest"
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

// testLog sends the poller's logs to the test output.
func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// ptyPair returns the two ends of a socat null modem (serialtest.Pair).
func ptyPair(t *testing.T) (a, b string) {
	t.Helper()
	return serialtest.Pair(t)
}

// openEnd opens one end of a pty pair, closed in t.Cleanup.
func openEnd(t *testing.T, path string) *os.File {
	t.Helper()
	return serialtest.Open(t, path)
}

// serve runs serve(ctx) in a goroutine until the test ends, and fails the
// test if it returns an error.
func serve(t *testing.T, name string, fn func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("%s: %v", name, err)
		}
	})
}

func newPoller(t *testing.T, cfg Config) *Poller {
	t.Helper()
	p, err := New(cfg, testLog(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

func newSimMeter(t testing.TB, mapName string, unit uint8) *metersim.ModbusMeter {
	t.Helper()
	m, err := metersim.NewModbusMeter(mapName, unit)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newBus(t testing.TB, meters ...*metersim.ModbusMeter) *metersim.ModbusBus {
	t.Helper()
	b, err := metersim.NewModbusBus(meters...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
