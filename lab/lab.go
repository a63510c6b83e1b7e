// Package lab composes MeterLink's parts in one process: the ops broker, ops, the PDA's local
// listener and bridge, the handheld, simulated terminals and their pulse meters, all on
// 127.0.0.1 with a seeded demo dataset. `meterlink lab` runs it; the e2e tests run it with
// ports 127.0.0.1:0 and drive the terminals' pulses themselves.
package lab

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meterlink/meterlink/broker"
	"github.com/meterlink/meterlink/demo"
	"github.com/meterlink/meterlink/handheld"
	"github.com/meterlink/meterlink/metersim"
	"github.com/meterlink/meterlink/noisehs"
	"github.com/meterlink/meterlink/ops"
	pdabridge "github.com/meterlink/meterlink/pda-bridge"
	"github.com/meterlink/meterlink/terminal"
	"github.com/meterlink/meterlink/topic"
)

// The parts a lab can run; Config.Parts picks a subset (compose runs "broker,ops" alone).
const (
	PartBroker    = "broker"
	PartOps       = "ops"
	PartPDA       = "pda-bridge"
	PartHandheld  = "handheld"
	PartTerminals = "terminals"
	PartMeters    = "meters"
)

// AllParts lists every part in start order.
var AllParts = []string{PartBroker, PartOps, PartPDA, PartHandheld, PartTerminals, PartMeters}

// Config sets up a lab.
type Config struct {
	MQTTAddr    string        // ops broker, TCP; default 127.0.0.1:1883
	WSAddr      string        // ops broker, MQTT over WebSocket; default 127.0.0.1:8083
	HTTPAddr    string        // ops API and dashboard; default 127.0.0.1:8080
	PDAAddr     string        // the PDA's local listener for handhelds; default 127.0.0.1:1884
	MQTTSNAddr  string        // the handheld's MQTT-SN gateway, UDP; default 127.0.0.1:1885
	HHAddr      string        // the handheld's control API for `meterlink hh`; default 127.0.0.1:8081, empty: off
	DataDir     string        // every part's store lives here; default ./meterlink-data
	Terminals   int           // simulated terminals; default 8
	Districts   int           // districts they are spread over; default 2
	Interval    time.Duration // terminals' collection interval; default 5s
	Speed       float64       // simulated seconds of consumption per second; default 60
	Parts       []string      // which parts to run; default AllParts
	HandheldID  string        // default H01
	PDAID       string        // default P01
	ResendAfter time.Duration // handheld and PDA resend unacknowledged batches after this; default 15s
	// Radio, if set, wraps every radio socket (terminals' and the gateway's): tests put a
	// lossy link simulator here. Retry is then the MQTT-SN Tretry on both sides.
	Radio func(net.PacketConn) net.PacketConn
	Retry time.Duration
}

// DefaultConfig returns the lab defaults.
func DefaultConfig() Config {
	return Config{
		MQTTAddr: "127.0.0.1:1883", WSAddr: "127.0.0.1:8083", HTTPAddr: "127.0.0.1:8080",
		PDAAddr: "127.0.0.1:1884", MQTTSNAddr: "127.0.0.1:1885", HHAddr: "127.0.0.1:8081", DataDir: "./meterlink-data",
		Terminals: 8, Districts: 2, Interval: 5 * time.Second, Speed: 60,
		Parts: AllParts, HandheldID: "H01", PDAID: "P01", ResendAfter: 15 * time.Second,
	}
}

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Terminals < 1 || c.Terminals > 9999 {
		errs = append(errs, fmt.Errorf("terminals %d: want 1..9999", c.Terminals))
	}
	if c.Districts < 1 || c.Districts > c.Terminals {
		errs = append(errs, fmt.Errorf("districts %d: want 1..terminals", c.Districts))
	}
	if c.Interval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("interval %v is below 100ms", c.Interval))
	}
	if c.Speed <= 0 || c.Speed > 100000 {
		errs = append(errs, fmt.Errorf("speed %v: want 0 < speed <= 100000", c.Speed))
	}
	for _, p := range c.Parts {
		if !slices.Contains(AllParts, p) {
			errs = append(errs, fmt.Errorf("parts: unknown part %q (know %s)", p, strings.Join(AllParts, ", ")))
		}
	}
	if len(c.Parts) == 0 {
		errs = append(errs, errors.New("parts: name at least one part"))
	}
	return errors.Join(errs...)
}

func (c Config) runs(part string) bool { return slices.Contains(c.Parts, part) }

// Lab is a composed, started set of parts.
type Lab struct {
	cfg       Config
	log       *slog.Logger
	secrets   secrets
	districts []demo.District

	Broker    *broker.Broker     // the ops broker, if run
	Ops       *ops.Ops           // if run
	Listener  *broker.Broker     // the PDA's local listener, if run
	Bridge    *pdabridge.Bridge  // if run
	Handheld  *handheld.Handheld // if run
	Terminals []*terminal.Terminal
	Meters    *metersim.Bank // if run

	closers []func() error
}

// New acquires every listener, store and socket of the chosen parts, so a port in use or a
// bad data directory fails here, naming what is wrong.
func New(ctx context.Context, cfg Config, getenv func(string) string, log *slog.Logger) (_ *Lab, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data-dir %s: %w", cfg.DataDir, err)
	}
	sec, err := loadSecrets(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	sec.overrideFrom(getenv)
	// The depot: the lab's handheld gets its K_hh, derived from K_master as ops derives it.
	if err := sec.depotKey(cfg.DataDir, cfg.HandheldID, ops.HHKeyVer); err != nil {
		return nil, err
	}
	hhMaster, _ := hex.DecodeString(sec.HHMaster)
	sid, err := hex.DecodeString(sec.SID)
	if err != nil || len(sid) != 32 {
		return nil, errors.New("the lab's PDA SID₀: want 64 hex digits")
	}
	opsPriv, err := hex.DecodeString(sec.OpsKey)
	if err != nil || len(opsPriv) != 32 {
		return nil, errors.New("the lab's ops key: want 64 hex digits")
	}
	opsKP, err := noisehs.KeypairFromPrivate([32]byte(opsPriv))
	if err != nil {
		return nil, fmt.Errorf("the lab's ops key: %w", err)
	}
	l := &Lab{cfg: cfg, log: log, secrets: sec,
		districts: demo.Dataset(cfg.Districts, (cfg.Terminals+cfg.Districts-1)/cfg.Districts)}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	data := func(name string) string { return filepath.Join(cfg.DataDir, name) }

	if cfg.runs(PartBroker) {
		bc := broker.DefaultConfig()
		bc.TCPAddr, bc.WSAddr, bc.StorePath, bc.AllowViewers = cfg.MQTTAddr, cfg.WSAddr, data("broker.db"), true
		bc.Accounts = []broker.Account{{Username: "ops", Password: []byte(sec.OpsPassword), Role: topic.RoleOps}}
		// The broker learns a PDA's password verifiers from ops (security.md §11); without ops
		// in this process it knows no PDA: they rotate with every handshake, which only ops sees.
		bc.Lookup = l.pdaAccount
		if l.Broker, err = broker.New(bc, log.With("part", "broker")); err != nil {
			return nil, err
		}
		l.closers = append(l.closers, l.Broker.Close)
		cfg.MQTTAddr = l.Broker.Addr()
		if cfg.WSAddr != "" {
			cfg.WSAddr = l.Broker.WSAddr()
		}
	}
	if cfg.runs(PartOps) {
		oc := ops.DefaultConfig()
		oc.BrokerURL, oc.ClientID, oc.Password = "tcp://"+cfg.MQTTAddr, "ops-lab", sec.OpsPassword
		oc.HTTPAddr, oc.DataDir, oc.OpsKey, oc.HHMasterKey = cfg.HTTPAddr, cfg.DataDir, opsPriv, hhMaster
		// The lab's PDA restarts often (tests stop it with handshakes in flight): a larger
		// HS_INIT burst than security.md §9's 5 keeps it from waiting for the 1/min refill.
		oc.HandshakeBurst = 30
		if l.Ops, err = ops.New(oc, log.With("part", "ops")); err != nil {
			return nil, err
		}
		l.closers = append(l.closers, l.Ops.Close)
		cfg.HTTPAddr = l.Ops.HTTPAddr()
		if err = l.Ops.Provision(ctx, opsDataset(l.districts)); err != nil {
			return nil, fmt.Errorf("seed the demo dataset: %w", err)
		}
		// SID₀ is provisioned once: a restarted lab keeps the rotated SIDs.
		if _, err = l.Ops.EnsurePDA(cfg.PDAID, sid); err != nil {
			return nil, fmt.Errorf("provision the lab's pda: %w", err)
		}
		if err = l.Ops.AssignHandheld(cfg.HandheldID, cfg.PDAID); err != nil {
			return nil, fmt.Errorf("assign the lab's handheld: %w", err)
		}
		if l.Broker != nil {
			b := l.Broker
			l.Ops.SetDisconnect(func(pda string) { b.Disconnect(pda) })
		}
	}
	if cfg.runs(PartPDA) {
		if l.Listener, l.Bridge, err = startPDA(pdaSetup{
			ID: cfg.PDAID, SID: sid, OpsPublic: opsKP.Public, Listen: cfg.PDAAddr, UpstreamURL: "tcp://" + cfg.MQTTAddr,
			Handhelds: []string{cfg.HandheldID}, HandheldKey: sec.HandheldKey, BridgeKey: sec.BridgeKey,
			DataDir: cfg.DataDir, ResendAfter: cfg.ResendAfter,
			// Quick recovery for the lab: a stall is 4 resend periods (at most security.md's
			// 30 s), handshake retries start at half a resend period (at most 5 s), up to 10×.
			StallAfter:        max(cfg.ResendAfter, min(30*time.Second, 4*cfg.ResendAfter)),
			HandshakeRetry:    min(5*time.Second, cfg.ResendAfter/2),
			HandshakeRetryMax: 10 * min(5*time.Second, cfg.ResendAfter/2),
		}, log); err != nil {
			return nil, err
		}
		l.closers = append(l.closers, l.Bridge.Close, l.Listener.Close)
		cfg.PDAAddr = l.Listener.Addr()
	}
	if cfg.runs(PartHandheld) {
		hc := handheld.DefaultConfig()
		hc.ID, hc.MQTTSNAddr, hc.PDAURL, hc.Key = cfg.HandheldID, cfg.MQTTSNAddr, "tcp://"+cfg.PDAAddr, sec.HandheldKey
		hc.StorePath, hc.ResendAfter = data("handheld-"+cfg.HandheldID+".db"), cfg.ResendAfter
		hc.Radio = cfg.Radio
		hc.ControlAddr = cfg.HHAddr
		if cfg.Retry > 0 {
			hc.Retry = cfg.Retry
		}
		if l.Handheld, err = handheld.New(hc, log.With("part", "handheld")); err != nil {
			return nil, err
		}
		l.closers = append(l.closers, l.Handheld.Close)
		cfg.MQTTSNAddr = l.Handheld.GatewayAddr().String()
		cfg.HHAddr = l.Handheld.ControlAddr()
		if err = l.Handheld.SetGroups(handheldGroups(l.districts, cfg.Terminals)); err != nil {
			return nil, fmt.Errorf("seed the handheld's groups: %w", err)
		}
	}
	if cfg.runs(PartTerminals) {
		for _, d := range l.districts {
			for _, t := range d.Terminals {
				if len(l.Terminals) == cfg.Terminals {
					break
				}
				tc := terminal.DefaultConfig()
				tc.ID, tc.Gateway, tc.Interval = t.ID, "udp://"+cfg.MQTTSNAddr, cfg.Interval
				tc.StorePath = data("terminal-" + t.ID + ".db")
				tc.Radio = cfg.Radio
				if cfg.Retry > 0 {
					tc.Retry = cfg.Retry
				}
				for _, c := range t.Channels {
					tc.Channels = append(tc.Channels, terminal.ChannelConfig(c))
				}
				term, err := terminal.New(tc, log.With("part", "terminal"))
				if err != nil {
					return nil, err
				}
				l.Terminals = append(l.Terminals, term)
				l.closers = append(l.closers, term.Close)
			}
		}
	}
	if cfg.runs(PartMeters) && len(l.Terminals) > 0 {
		l.Meters = metersim.DemoBank(1, len(l.Terminals))
	}
	l.cfg = cfg
	return l, nil
}

// pdaAccount gives the broker a PDA's account from ops: the verifiers of the passwords of its
// current and pending SIDs (security.md §11), so a revoked, locked or unknown PDA cannot connect
// and rotation never locks one out.
func (l *Lab) pdaAccount(username string) (broker.Account, bool) {
	if l.Ops == nil {
		return broker.Account{}, false
	}
	cur, more, ok := l.Ops.PDAVerifiers(username)
	if !ok {
		return broker.Account{}, false
	}
	return broker.Account{Username: username, PasswordSHA256: cur, MoreSHA256: more, Role: topic.RolePDA, ID: username}, true
}

// Config returns the configuration with the bound addresses filled in.
func (l *Lab) Config() Config { return l.cfg }

// Run runs every part until ctx is done or one fails, then stops them in reverse start order
// (meters and terminals first, the broker last), each after the ones that depend on it.
func (l *Lab) Run(ctx context.Context) error {
	defer l.Close()
	failed, fail := context.WithCancel(ctx)
	defer fail()
	type running struct {
		name   string
		cancel context.CancelFunc
		done   chan struct{}
	}
	var parts []running
	var mu sync.Mutex
	var errs []error
	run := func(name string, f func(context.Context) error) {
		pctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		parts = append(parts, running{name, cancel, done})
		go func() {
			defer close(done)
			if err := f(pctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				mu.Unlock()
				l.log.Error("part stopped", "part", name, "err", err)
				fail() // the first failure stops the lab
			}
		}()
	}
	if l.Broker != nil {
		run("broker", l.Broker.Run)
	}
	if l.Ops != nil {
		run("ops", l.Ops.Run)
	}
	if l.Listener != nil {
		run("pda listener", l.Listener.Run)
		run("pda-bridge", l.Bridge.Run)
	}
	if l.Handheld != nil {
		run("handheld", l.Handheld.Run)
	}
	for _, t := range l.Terminals {
		run("terminal "+t.ID(), t.Run)
	}
	if l.Meters != nil {
		byID := map[string]*terminal.Terminal{}
		for _, t := range l.Terminals {
			byID[t.ID()] = t
		}
		run("meters", func(ctx context.Context) error {
			return l.Meters.Run(ctx, time.Second, l.cfg.Speed, func(id string, ch uint8, n uint64) error {
				return byID[id].Pulse(ch, n)
			})
		})
	}
	<-failed.Done()
	for i := len(parts) - 1; i >= 0; i-- {
		parts[i].cancel()
		<-parts[i].done
	}
	mu.Lock()
	defer mu.Unlock()
	return errors.Join(errs...)
}

// Close releases everything New acquired, in reverse order. It is idempotent.
func (l *Lab) Close() error {
	var errs []error
	for i := len(l.closers) - 1; i >= 0; i-- {
		errs = append(errs, l.closers[i]())
	}
	l.closers = nil
	return errors.Join(errs...)
}
