package e2e

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meterlink/meterlink/lab"
	"github.com/meterlink/meterlink/mqttsn/radiosim"
	"github.com/meterlink/meterlink/wire"
)

// TestHundredTerminalsThroughALossyRadio: 100 terminals send through a radio that loses 20 %
// of the frames both ways, duplicates 10 % and reorders 10 %. Every reading arrives exactly
// once at the handheld, and every command sent to every terminal is acknowledged.
func TestHundredTerminalsThroughALossyRadio(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end chain skipped under -short")
	}
	const terminals, perTerminal = 100, 3
	var seed atomic.Uint64
	cfg := labConfig(t, terminals)
	cfg.Districts = 4
	cfg.Retry = 200 * time.Millisecond
	cfg.Radio = func(c net.PacketConn) net.PacketConn {
		return radiosim.New(c, radiosim.Config{Loss: 0.2, Duplicate: 0.1, Reorder: 0.1, Seed: seed.Add(1)})
	}
	l := startPart(t, cfg, lab.PartHandheld, lab.PartTerminals).lab // no PDA: records stay at the handheld

	for i := 0; i < perTerminal; i++ {
		for _, term := range l.Terminals {
			if err := term.Pulse(1, uint64(10+i)); err != nil {
				t.Fatal(err)
			}
			if _, err := term.Collect(); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, 120*time.Second, func() error {
		pending := 0
		for _, term := range l.Terminals {
			pending += term.Pending()
		}
		if pending > 0 {
			return fmt.Errorf("%d records not yet acknowledged by the handheld", pending)
		}
		return nil
	})
	made := 0 // readings, and the daily frozen record each terminal makes at its first start
	for _, term := range l.Terminals {
		made += int(term.LastSeq())
	}
	if made < terminals*perTerminal {
		t.Fatalf("terminals made %d records, want at least %d", made, terminals*perTerminal)
	}
	st := l.Handheld.Stats()
	if st.Received != made || l.Handheld.Pending() != made {
		t.Errorf("handheld received %d records and holds %d, want exactly %d (duplicates seen and dropped: %d)",
			st.Received, l.Handheld.Pending(), made, st.Duplicates)
	}

	// Every terminal answers a command through the same radio.
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var acked atomic.Int32
	sem := make(chan struct{}, 20)
	for _, term := range l.Terminals {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			for attempt := 0; ctx.Err() == nil; attempt++ {
				cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
				ack, err := l.Handheld.SendCommand(cctx, wire.Command{ID: fmt.Sprintf("rc-%s-%d", term.ID(), attempt), Terminal: wire.TerminalID(term.ID()), Op: "read_clock"})
				ccancel()
				if err == nil && ack.Code == wire.AckOK {
					acked.Add(1)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := acked.Load(); n != terminals {
		t.Errorf("%d of %d terminals acknowledged a command", n, terminals)
	}
}
