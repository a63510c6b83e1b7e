package rs485

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/meterlink/meterlink/metersim"
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

// ptyPair starts socat as a null modem and returns the paths of its two
// ends. socat is killed in t.Cleanup (registered first, so it runs after
// the cleanups of whatever uses the ends).
func ptyPair(t *testing.T) (a, b string) {
	t.Helper()
	if testing.Short() {
		t.Skip("pty test skipped under -short")
	}
	socat, err := exec.LookPath("socat")
	if err != nil {
		t.Skip("socat not on PATH; install it (apt-get install -y socat) to run the pty tests")
	}
	dir := t.TempDir()
	a, b = filepath.Join(dir, "a"), filepath.Join(dir, "b")
	cmd := exec.Command(socat, "-d", "-d", "pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start socat: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	waitFor(t, 5*time.Second, func() error {
		for _, p := range []string{a, b} {
			if _, err := os.Stat(p); err != nil {
				return err
			}
		}
		return nil
	})
	return a, b
}

// openEnd opens one end of a pty pair, closed in t.Cleanup.
func openEnd(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
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
