package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/meterlink/meterlink/demo"
	"github.com/meterlink/meterlink/handheld"
	"github.com/meterlink/meterlink/lab"
	"github.com/meterlink/meterlink/terminal"
)

// chain is the running set of parts the e2e benchmark drives: from lab, or composed here
// when a knob that lab does not expose is set.
type chain struct {
	terminals []*terminal.Terminal
	hhPending func() int
	brPending func() int
	mqttAddr  string // ops broker
	httpAddr  string // ops API
	run       func(ctx context.Context) error
}

// chainKnobs are settings lab keeps at the parts' defaults.
type chainKnobs struct {
	BatchMax    int  `json:"handheld_batch_max,omitempty"` // handheld records per upstream batch
	NoCountSync bool `json:"no_counter_sync,omitempty"`    // terminals do not fsync every pulse
}

func (k chainKnobs) set() bool { return k.BatchMax != 0 || k.NoCountSync }

func labChain(ctx context.Context, cfg e2eConfig, getenv func(string) string, log *slog.Logger) (*chain, error) {
	lc := lab.DefaultConfig()
	lc.MQTTAddr, lc.WSAddr, lc.HTTPAddr, lc.PDAAddr, lc.MQTTSNAddr = "127.0.0.1:0", "", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	lc.DataDir, lc.Terminals, lc.Districts = cfg.DataDir, cfg.Terminals, cfg.Districts
	lc.Interval = 24 * time.Hour // the driver collects; the terminals' own timer must not
	lc.ResendAfter = cfg.ResendAfter
	lc.Parts = []string{lab.PartBroker, lab.PartOps, lab.PartPDA, lab.PartHandheld, lab.PartTerminals}
	l, err := lab.New(ctx, lc, getenv, log)
	if err != nil {
		return nil, err
	}
	c := l.Config()
	return &chain{
		terminals: l.Terminals, hhPending: l.Handheld.Pending, brPending: l.Bridge.Pending,
		mqttAddr: c.MQTTAddr, httpAddr: c.HTTPAddr, run: l.Run,
	}, nil
}

// ownChain runs broker, ops and pda-bridge from lab, and the handheld and the terminals made
// here with the knobs applied, bound to lab's PDA listener with the handheld key given to lab
// through its environment.
func ownChain(ctx context.Context, cfg e2eConfig, k chainKnobs, getenv func(string) string, log *slog.Logger) (_ *chain, err error) {
	const hhID = "H01" // lab's default handheld, bound to its PDA
	hhKey := randHex()
	lc := lab.DefaultConfig()
	lc.MQTTAddr, lc.WSAddr, lc.HTTPAddr, lc.PDAAddr, lc.MQTTSNAddr = "127.0.0.1:0", "", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	lc.DataDir, lc.Terminals, lc.Districts = cfg.DataDir, cfg.Terminals, cfg.Districts
	lc.ResendAfter, lc.HandheldID = cfg.ResendAfter, hhID
	lc.Parts = []string{lab.PartBroker, lab.PartOps, lab.PartPDA}
	l, err := lab.New(ctx, lc, func(k string) string {
		if k == "METERLINK_HANDHELD_KEY" {
			return hhKey
		}
		return getenv(k)
	}, log)
	if err != nil {
		return nil, err
	}
	var closers []func() error
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
			l.Close()
		}
	}()
	data := func(name string) string { return filepath.Join(cfg.DataDir, name) }
	lcfg := l.Config()

	hc := handheld.DefaultConfig()
	hc.ID, hc.MQTTSNAddr, hc.PDAURL, hc.Key = hhID, "127.0.0.1:0", "tcp://"+lcfg.PDAAddr, hhKey
	hc.StorePath, hc.ResendAfter = data("bench-handheld.db"), cfg.ResendAfter
	if k.BatchMax != 0 {
		hc.BatchMax = k.BatchMax
	}
	hh, err := handheld.New(hc, log.With("part", "handheld"))
	if err != nil {
		return nil, err
	}
	closers = append(closers, hh.Close)

	// The same terminals as lab's: demo.Dataset numbering, the demo channel maps.
	var terms []*terminal.Terminal
	for _, d := range demo.Dataset(cfg.Districts, (cfg.Terminals+cfg.Districts-1)/cfg.Districts) {
		for _, t := range d.Terminals {
			if len(terms) == cfg.Terminals {
				break
			}
			tc := terminal.DefaultConfig()
			tc.ID, tc.Gateway, tc.Interval = t.ID, "udp://"+hh.GatewayAddr().String(), 24*time.Hour
			tc.StorePath = data("bench-terminal-" + t.ID + ".db")
			tc.CounterSync = !k.NoCountSync
			for _, c := range t.Channels {
				tc.Channels = append(tc.Channels, terminal.ChannelConfig(c))
			}
			term, err := terminal.New(tc, log.With("part", "terminal"))
			if err != nil {
				return nil, err
			}
			terms = append(terms, term)
			closers = append(closers, term.Close)
		}
	}

	run := func(ctx context.Context) error {
		defer func() {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}()
		type part struct {
			cancel context.CancelFunc
			done   chan error
		}
		runs := []func(context.Context) error{l.Run, hh.Run}
		for _, t := range terms {
			runs = append(runs, t.Run)
		}
		parts := make([]part, len(runs))
		for i, r := range runs {
			pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
			parts[i] = part{cancel, make(chan error, 1)}
			go func() { parts[i].done <- r(pctx) }()
		}
		<-ctx.Done()
		// Stopped in reverse: terminals, handheld, then lab (bridge, ops, broker).
		var errs []error
		for i := len(parts) - 1; i >= 0; i-- {
			parts[i].cancel()
			errs = append(errs, <-parts[i].done)
		}
		return errors.Join(errs...)
	}
	return &chain{
		terminals: terms, hhPending: hh.Pending, brPending: l.Bridge.Pending,
		mqttAddr: lcfg.MQTTAddr, httpAddr: lcfg.HTTPAddr, run: run,
	}, nil
}

func randHex() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
