//go:build linux

package dlt645

import (
	"context"
	"errors"
	"github.com/meterlink/meterlink/serialtest"
	"os"
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

// ptyPair opens both ends of a socat null modem.
func ptyPair(t *testing.T) (*os.File, *os.File) {
	a, b := serialtest.Pair(t)
	return serialtest.Open(t, a), serialtest.Open(t, b)
}

func TestClientMeterOverPTY(t *testing.T) {
	if testing.Short() {
		t.Skip("pty test skipped under -short")
	}
	master, slave := ptyPair(t)
	m := NewMeter(addrP, MeterOptions{Preamble: 4})
	m.SetEnergy(226)
	m.SetVoltage(2248, 2200, 2200)

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- m.Serve(ctx, slave) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	c := NewClient(master, ClientOptions{Timeout: 2 * time.Second})
	if got, err := c.ReadAddress(ctx); err != nil || got != addrP {
		t.Errorf("ReadAddress = %s, %v, want %s", got, err, addrP)
	}
	if got, err := c.ReadEnergy(ctx, addrP); err != nil || got != 226 {
		t.Errorf("ReadEnergy = %d, %v, want 226", got, err)
	}
	for range 20 {
		m.AddEnergy(1, 0)
		if _, err := c.ReadValue(ctx, addrP, DIVoltageA); err != nil {
			t.Fatalf("ReadValue: %v", err)
		}
	}
	if got, err := c.ReadEnergy(ctx, addrP); err != nil || got != 246 {
		t.Errorf("ReadEnergy = %d, %v, want 246", got, err)
	}
	if _, err := c.Read(ctx, addrP, 0x04000C01); !errors.Is(err, ErrNoData) {
		t.Errorf("Read(unknown DI) error = %v, want ErrNoData", err)
	}
}
