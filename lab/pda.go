package lab

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/meterlink/meterlink/broker"
	"github.com/meterlink/meterlink/noisehs"
	pdabridge "github.com/meterlink/meterlink/pda-bridge"
	"github.com/meterlink/meterlink/topic"
)

// pdaSetup is what it takes to start a PDA: its local listener for handhelds and its bridge.
type pdaSetup struct {
	ID          string
	SID         []byte   // SID₀, used on the PDA's first start only
	OpsPublic   [32]byte // S_ops public key the PDA pins
	Listen      string   // local listener address
	UpstreamURL string
	Handhelds   []string
	HandheldKey string // the bound handhelds' depot key K_hh (64 hex digits; their listener password derives from it) or plain password
	BridgeKey   string // the bridge's own password on the listener
	DataDir     string
	ResendAfter time.Duration
	// StallAfter and HandshakeRetry(Max), if set, replace security.md's 30 s, 5 s and 5 min:
	// the lab's tests restart parts with uplink in flight and want the link back in seconds.
	StallAfter        time.Duration
	HandshakeRetry    time.Duration
	HandshakeRetryMax time.Duration
}

// startPDA builds the PDA's local listener (a broker with one account per bound handheld and
// one for the bridge, each limited by the topic registry's ACL) and the bridge.
func startPDA(s pdaSetup, log *slog.Logger) (*broker.Broker, *pdabridge.Bridge, error) {
	bc := broker.DefaultConfig()
	bc.TCPAddr, bc.StorePath = s.Listen, filepath.Join(s.DataDir, "pda-"+s.ID+"-listener.db")
	bridgeUser := s.ID + "-bridge"
	bc.Accounts = []broker.Account{{Username: bridgeUser, Password: []byte(s.BridgeKey), Role: topic.RoleBridge}}
	for _, h := range s.Handhelds {
		bc.Accounts = append(bc.Accounts, broker.Account{Username: h, Password: []byte(listenerPassword(h, s.HandheldKey)), Role: topic.RoleHandheld, ID: h})
	}
	ln, err := broker.New(bc, log.With("part", "pda-listener"))
	if err != nil {
		return nil, nil, fmt.Errorf("pda local listener: %w", err)
	}
	pc := pdabridge.DefaultConfig()
	pc.ID, pc.SID, pc.OpsPublicKey, pc.UpstreamURL, pc.LocalURL = s.ID, s.SID, s.OpsPublic, s.UpstreamURL, "tcp://"+ln.Addr()
	pc.LocalPassword, pc.Handhelds = s.BridgeKey, s.Handhelds
	pc.StorePath = filepath.Join(s.DataDir, "pda-"+s.ID+".db")
	if s.ResendAfter > 0 {
		pc.ResendAfter = s.ResendAfter
	}
	for _, d := range []struct{ to, from *time.Duration }{
		{&pc.StallAfter, &s.StallAfter}, {&pc.HandshakeRetry, &s.HandshakeRetry}, {&pc.HandshakeRetryMax, &s.HandshakeRetryMax},
	} {
		if *d.from > 0 {
			*d.to = *d.from
		}
	}
	br, err := pdabridge.New(pc, log.With("part", "pda-bridge"))
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	return ln, br, nil
}

// listenerPassword is a handheld's password on the PDA listener: derived from its depot key
// K_hh when key is one (security.md §12), so the listener never holds K_hh; else key itself.
func listenerPassword(hh, key string) string {
	k, err := hex.DecodeString(key)
	if err != nil || len(k) != 32 {
		return key
	}
	return noisehs.HHListenerPassword([32]byte(k), noisehs.HHIDFromText(hh))
}

// PDABridgeMain runs `meterlink pda-bridge`: the PDA's local listener for handhelds and the
// bridge that forwards their records to ops under the PDA's security identifier.
func PDABridgeMain(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	f, err := pdabridge.ParseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log, _ := f.Log.Logger(stderr)
	bridgeKey := f.LocalPassword
	if bridgeKey == "" {
		bridgeKey = randomHex(16) // the bridge is the only user of its own account
	}
	hhKey := getenv("METERLINK_HANDHELD_KEY")
	if hhKey == "" {
		return errors.New("METERLINK_HANDHELD_KEY is not set: the bound handhelds need a password on the local listener")
	}
	ln, br, err := startPDA(pdaSetup{
		ID: f.ID, SID: f.SID, OpsPublic: f.OpsPublicKey, Listen: f.Listen, UpstreamURL: f.UpstreamURL, Handhelds: f.Handhelds,
		HandheldKey: hhKey, BridgeKey: bridgeKey, DataDir: f.DataDir, ResendAfter: f.ResendAfter,
		StallAfter: f.StallAfter,
	}, log)
	if err != nil {
		return err
	}
	log.Info("pda local listener up", "listen", ln.Addr(), "handhelds", f.Handhelds)
	var wg sync.WaitGroup
	var lnErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		lnErr = ln.Run(ctx)
	}()
	err = br.Run(ctx)
	wg.Wait()
	return errors.Join(err, lnErr)
}
