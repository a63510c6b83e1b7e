package e2e

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meterlink/meterlink/demo"
	"github.com/meterlink/meterlink/lab"
	"github.com/meterlink/meterlink/mqttsn/radiosim"
)

// partLab is one part of the chain running as its own lab, so a test can stop and restart it
// on the same address and data directory, as an operator would restart a process.
type partLab struct {
	t      *testing.T
	cfg    lab.Config
	lab    *lab.Lab
	cancel context.CancelFunc
	done   chan error
}

func startPart(t *testing.T, cfg lab.Config, parts ...string) *partLab {
	t.Helper()
	cfg.Parts = parts
	p := &partLab{t: t, cfg: cfg}
	p.start()
	t.Cleanup(p.stop)
	return p
}

func (p *partLab) start() {
	p.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l, err := lab.New(ctx, p.cfg, func(string) string { return "" }, testLogger(p.t))
	if err != nil {
		cancel()
		p.t.Fatalf("start %v: %v", p.cfg.Parts, err)
	}
	p.lab, p.cancel, p.done = l, cancel, make(chan error, 1)
	p.cfg = l.Config() // bound addresses: a restart takes the same ones
	go func() { p.done <- l.Run(ctx) }()
}

func (p *partLab) stop() {
	if p.cancel == nil {
		return
	}
	p.cancel()
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Errorf("%v stopped with error: %v", p.cfg.Parts, err)
		}
	case <-time.After(15 * time.Second):
		p.t.Errorf("%v did not stop within 15s", p.cfg.Parts)
	}
	p.cancel = nil
}

func (p *partLab) restart() {
	p.t.Helper()
	p.stop()
	p.start()
}

// TestExactlyOnceThroughFaults sends readings through a radio that loses 20 % of the frames
// and duplicates and reorders others, while the handheld, ops with its broker, and the PDA are
// each stopped and restarted with readings in flight. Every reading must reach ops exactly
// once, with the right kWh, and every outbox must drain.
func TestExactlyOnceThroughFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end chain skipped under -short")
	}
	var seed atomic.Uint64
	cfg := labConfig(t, 3)
	cfg.Retry = 100 * time.Millisecond
	cfg.ResendAfter = 500 * time.Millisecond
	cfg.Radio = func(c net.PacketConn) net.PacketConn {
		return radiosim.New(c, radiosim.Config{Loss: 0.2, Duplicate: 0.1, Reorder: 0.1, Seed: seed.Add(1)})
	}

	opsLab := startPart(t, cfg, lab.PartBroker, lab.PartOps)
	cfg.MQTTAddr, cfg.HTTPAddr = opsLab.cfg.MQTTAddr, opsLab.cfg.HTTPAddr
	pdaLab := startPart(t, cfg, lab.PartPDA)
	cfg.PDAAddr = pdaLab.cfg.PDAAddr
	hhLab := startPart(t, cfg, lab.PartHandheld)
	cfg.MQTTSNAddr = hhLab.cfg.MQTTSNAddr
	termLab := startPart(t, cfg, lab.PartTerminals)

	pulses := map[string]uint64{}
	records := 0
	collect := func(rounds int) {
		t.Helper()
		for i := 0; i < rounds; i++ {
			for _, term := range termLab.lab.Terminals {
				n := uint64(1000 + 37*records)
				if err := term.Pulse(1, n); err != nil {
					t.Fatal(err)
				}
				pulses[term.ID()] += n
				if _, err := term.Collect(); err != nil {
					t.Fatal(err)
				}
			}
			records++
		}
	}

	collect(3)
	hhLab.stop() // the handheld goes offline with records on the way
	collect(3)
	hhLab.start()
	collect(2)
	opsLab.stop() // ops and its broker go down
	collect(3)
	opsLab.start()
	pdaLab.stop() // then the PDA
	collect(3)
	pdaLab.start()
	collect(2)

	waitFor(t, 90*time.Second, func() error {
		for _, term := range termLab.lab.Terminals {
			rs, err := readings(t, opsLab.cfg.HTTPAddr, "meter="+demo.MeterID(term.ID(), 1)+"&limit=1000")
			if err != nil {
				return err
			}
			if len(rs) != records {
				return fmt.Errorf("ops holds %d readings of %s channel 1, want %d", len(rs), term.ID(), records)
			}
		}
		return nil
	})
	for _, term := range termLab.lab.Terminals {
		rs, err := readings(t, opsLab.cfg.HTTPAddr, "meter="+demo.MeterID(term.ID(), 1)+"&limit=1000")
		if err != nil {
			t.Fatal(err)
		}
		seen := map[uint64]bool{}
		var last apiReading
		for _, r := range rs {
			if seen[r.Seq] {
				t.Errorf("%s seq %d stored twice", term.ID(), r.Seq)
			}
			seen[r.Seq] = true
			if r.Seq > last.Seq {
				last = r
			}
		}
		for s := uint64(1); s <= uint64(records); s++ {
			if !seen[s] {
				t.Errorf("%s seq %d lost", term.ID(), s)
			}
		}
		ch := demo.TerminalChannels(term.ID())[0]
		if want := ch.BaseWh + int64(pulses[term.ID()]*1000/uint64(ch.Constant)); last.EnergyWh != want || last.Pulses != pulses[term.ID()] {
			t.Errorf("%s last reading %d pulses %d Wh, want %d pulses %d Wh", term.ID(), last.Pulses, last.EnergyWh, pulses[term.ID()], want)
		}
	}
	waitFor(t, 30*time.Second, func() error {
		n := hhLab.lab.Handheld.Pending() + pdaLab.lab.Bridge.Pending()
		for _, term := range termLab.lab.Terminals {
			n += term.Pending()
		}
		if n != 0 {
			return fmt.Errorf("%d records or batches still pending", n)
		}
		return nil
	})
}
