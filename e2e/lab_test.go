package e2e

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/meterlink/meterlink/lab"
)

// TestLabShowsReadingsWithSimulatedMeters runs the lab as `meterlink lab` does, simulated
// meters included, and expects readings of every terminal in the API well within 30 s.
func TestLabShowsReadingsWithSimulatedMeters(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end chain skipped under -short")
	}
	cfg := labConfig(t, 4)
	cfg.Districts = 2
	cfg.Parts = lab.AllParts
	cfg.Interval = 500 * time.Millisecond
	cfg.Speed = 3600
	l := startLab(t, cfg)
	waitFor(t, 30*time.Second, func() error {
		for _, id := range []string{"T0001", "T0002", "T0003", "T0004"} {
			rs, err := readings(t, l.Config().HTTPAddr, "terminal="+id)
			if err != nil {
				return err
			}
			moving := false
			for _, r := range rs {
				moving = moving || r.Pulses > 0
			}
			if !moving {
				return fmt.Errorf("no reading of %s with pulses yet (%d readings)", id, len(rs))
			}
		}
		return nil
	})
}

// TestLabPortInUse: a port already taken stops the lab at start with an error naming it, and
// leaves nothing running.
func TestLabPortInUse(t *testing.T) {
	for _, which := range []string{"mqtt", "http", "pda", "mqttsn"} {
		t.Run(which, func(t *testing.T) {
			network := "tcp"
			if which == "mqttsn" {
				network = "udp"
			}
			var addr string
			if network == "udp" {
				pc, err := net.ListenPacket("udp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer pc.Close()
				addr = pc.LocalAddr().String()
			} else {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				addr = ln.Addr().String()
			}
			cfg := labConfig(t, 1)
			switch which {
			case "mqtt":
				cfg.MQTTAddr = addr
			case "http":
				cfg.HTTPAddr = addr
			case "pda":
				cfg.PDAAddr = addr
			case "mqttsn":
				cfg.MQTTSNAddr = addr
			}
			l, err := lab.New(context.Background(), cfg, func(string) string { return "" }, testLogger(t))
			if err == nil {
				l.Close()
				t.Fatalf("lab started with %s %s already in use", which, addr)
			}
			if !strings.Contains(err.Error(), addr) {
				t.Errorf("error %q does not name %s", err, addr)
			}
		})
	}
}

// TestLabStopsCleanly: after Ctrl-C (ctx cancelled) no goroutine of the lab is left.
func TestLabStopsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end chain skipped under -short")
	}
	before := runtime.NumGoroutine()
	cfg := labConfig(t, 2)
	cfg.Parts = lab.AllParts
	cfg.Interval = 200 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	l, err := lab.New(ctx, cfg, func(string) string { return "" }, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	waitFor(t, 20*time.Second, func() error {
		rs, err := readings(t, l.Config().HTTPAddr, "terminal=T0001")
		if err != nil || len(rs) == 0 {
			return fmt.Errorf("no reading yet (%v)", err)
		}
		return nil
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("lab stopped with error: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("lab did not stop within 15s")
	}
	waitFor(t, 10*time.Second, func() error {
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			return fmt.Errorf("%d goroutines left over (%d before):\n%s", n-before, before, buf[:runtime.Stack(buf, true)])
		}
		return nil
	})
}
