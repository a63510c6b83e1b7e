package e2e

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meterlink/meterlink/demo"
	"github.com/meterlink/meterlink/handheld"
	"github.com/meterlink/meterlink/lab"
	"github.com/meterlink/meterlink/terminal"
	"github.com/meterlink/meterlink/wire"
)

// hhChain is ops with its broker and the PDA, each a lab part, for a handheld and terminals
// that a test builds itself, so it can set their timings, stop and restart them.
type hhChain struct {
	cfg       lab.Config
	ops, pda  *partLab
	secrets   hhSecrets
	districts []demo.District
}

// hhSecrets are the credentials the lab generated in its data directory.
type hhSecrets struct {
	HandheldKey string `json:"handheld_key"`
	BridgeKey   string `json:"bridge_key"`
}

func startHHChain(t *testing.T, terminals int) *hhChain {
	t.Helper()
	cfg := labConfig(t, terminals)
	cfg.HHAddr = ""
	c := &hhChain{cfg: cfg, districts: demo.Dataset(1, terminals)}
	c.ops = startPart(t, cfg, lab.PartBroker, lab.PartOps)
	c.cfg.MQTTAddr, c.cfg.HTTPAddr = c.ops.cfg.MQTTAddr, c.ops.cfg.HTTPAddr
	c.pda = startPart(t, c.cfg, lab.PartPDA)
	c.cfg.PDAAddr = c.pda.cfg.PDAAddr
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, "lab-secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &c.secrets); err != nil {
		t.Fatal(err)
	}
	return c
}

// handheldConfig is the lab's handheld H01 on free ports, with short retry timings.
func (c *hhChain) handheldConfig() handheld.Config {
	hc := handheld.DefaultConfig()
	hc.ID, hc.Key, hc.PDAURL = c.cfg.HandheldID, c.secrets.HandheldKey, "tcp://"+c.cfg.PDAAddr
	hc.MQTTSNAddr, hc.ControlAddr = "127.0.0.1:0", "127.0.0.1:0"
	hc.StorePath = filepath.Join(c.cfg.DataDir, "hh-test.db")
	hc.ResendAfter, hc.Retry = time.Second, 200*time.Millisecond
	hc.JobRetry, hc.JobRetryMax, hc.AckWait = 100*time.Millisecond, time.Second, 5*time.Second
	return hc
}

// groups are the chain's districts as the handheld's groups.
func (c *hhChain) groups() []wire.Group {
	var out []wire.Group
	for _, d := range c.districts {
		g := wire.Group{Name: d.ID, Kind: wire.GroupKindDistrict, Title: d.Name}
		for _, tm := range d.Terminals {
			gt := wire.GroupTerminal{ID: wire.TerminalID(tm.ID), District: wire.DistrictID(d.ID)}
			for _, ch := range tm.Channels {
				gt.Meters = append(gt.Meters, wire.GroupMeter{Channel: ch.Channel, Meter: wire.MeterID(ch.Meter), Account: "A" + ch.Meter})
			}
			g.Terminals = append(g.Terminals, gt)
		}
		out = append(out, g)
	}
	return out
}

// runningHH is a handheld a test can stop and start again on the same store and addresses.
type runningHH struct {
	t      *testing.T
	cfg    handheld.Config
	h      *handheld.Handheld
	cancel context.CancelFunc
	done   chan error
}

func startHH(t *testing.T, cfg handheld.Config) *runningHH {
	t.Helper()
	r := &runningHH{t: t, cfg: cfg}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *runningHH) start() {
	r.t.Helper()
	h, err := handheld.New(r.cfg, testLogger(r.t))
	if err != nil {
		r.t.Fatalf("start handheld: %v", err)
	}
	r.cfg.MQTTSNAddr, r.cfg.ControlAddr = h.GatewayAddr().String(), h.ControlAddr() // a restart keeps them
	ctx, cancel := context.WithCancel(context.Background())
	r.h, r.cancel, r.done = h, cancel, make(chan error, 1)
	go func() { r.done <- h.Run(ctx) }()
}

func (r *runningHH) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("handheld stopped with error: %v", err)
		}
	case <-time.After(15 * time.Second):
		r.t.Errorf("handheld did not stop within 15s")
	}
	r.cancel = nil
}

// runningTerm is a demo terminal a test can stop and start again on the same store.
type runningTerm struct {
	t      *testing.T
	cfg    terminal.Config
	term   *terminal.Terminal
	cancel context.CancelFunc
	done   chan error
}

func newTerm(t *testing.T, id, gateway, dataDir string, mod func(*terminal.Config)) *runningTerm {
	tc := terminal.DefaultConfig()
	tc.ID, tc.Gateway, tc.Interval = id, "udp://"+gateway, time.Hour
	tc.StorePath = filepath.Join(dataDir, "term-"+id+".db")
	tc.Retry, tc.KeepAlive = 200*time.Millisecond, 2*time.Second
	for _, ch := range demo.TerminalChannels(id) {
		tc.Channels = append(tc.Channels, terminal.ChannelConfig(ch))
	}
	if mod != nil {
		mod(&tc)
	}
	r := &runningTerm{t: t, cfg: tc}
	t.Cleanup(r.stop)
	return r
}

func (r *runningTerm) start() *runningTerm {
	r.t.Helper()
	term, err := terminal.New(r.cfg, testLogger(r.t))
	if err != nil {
		r.t.Fatalf("start terminal %s: %v", r.cfg.ID, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.term, r.cancel, r.done = term, cancel, make(chan error, 1)
	go func() { r.done <- term.Run(ctx) }()
	return r
}

func (r *runningTerm) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("terminal %s stopped with error: %v", r.cfg.ID, err)
		}
	case <-time.After(15 * time.Second):
		r.t.Errorf("terminal %s did not stop within 15s", r.cfg.ID)
	}
	r.term.Close()
	r.cancel = nil
}

// switchRadio is a radio link a test takes out of range and back: while down, nothing goes
// either way.
type switchRadio struct {
	net.PacketConn
	down *atomic.Bool
}

func (s switchRadio) WriteTo(b []byte, addr net.Addr) (int, error) {
	if s.down.Load() {
		return len(b), nil // lost on the air
	}
	return s.PacketConn.WriteTo(b, addr)
}

func (s switchRadio) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := s.PacketConn.ReadFrom(b)
		if err != nil || !s.down.Load() {
			return n, addr, err
		}
	}
}
