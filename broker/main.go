package broker

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/meterlink/meterlink/cmdline"
	"github.com/meterlink/meterlink/topic"
)

// accountJSON is one entry of an -accounts-file. Passwords appear only as SHA-256 verifiers.
type accountJSON struct {
	Username       string   `json:"username"`
	PasswordSHA256 string   `json:"password_sha256"`       // 64 hex digits
	MoreSHA256     []string `json:"more_sha256,omitempty"` // further accepted verifiers, 64 hex digits each
	Role           string   `json:"role"`                  // terminal, handheld, bridge, pda, ops or viewer
	ID             string   `json:"id,omitempty"`          // the role's own topic id, e.g. H01; for a PDA its username
}

// LoadAccounts reads a JSON list of accounts, e.g.
//
//	[{"username":"ops","password_sha256":"9f86d0…","role":"ops"},
//	 {"username":"P01","password_sha256":"…","role":"pda"}]
//
// Unknown fields are errors. The accounts are not validated here: [Config.Validate] does it.
func LoadAccounts(r io.Reader) ([]Account, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var in []accountJSON
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("decode accounts: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decode accounts: data after the list")
	}
	var errs []error
	out := make([]Account, len(in))
	for i, a := range in {
		out[i] = Account{Username: a.Username, Role: topic.Role(a.Role), ID: a.ID}
		var err error
		if out[i].PasswordSHA256, err = parseSHA256(a.PasswordSHA256); err != nil {
			errs = append(errs, fmt.Errorf("account %d (%q) password_sha256: %w", i, a.Username, err))
		}
		for _, m := range a.MoreSHA256 {
			v, err := parseSHA256(m)
			if err != nil {
				errs = append(errs, fmt.Errorf("account %d (%q) more_sha256: %w", i, a.Username, err))
			}
			out[i].MoreSHA256 = append(out[i].MoreSHA256, v)
		}
	}
	return out, errors.Join(errs...)
}

func parseSHA256(s string) ([32]byte, error) {
	var v [32]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(v) {
		return v, errors.New("want 64 hex digits")
	}
	copy(v[:], b)
	return v, nil
}

const usage = `Runs MeterLink's MQTT broker: TCP and optionally WebSocket listeners, accounts and
topic ACLs from the topic registry, rate-limited logins, and (with -store) persistent
sessions, in-flight QoS 1 and retained messages that survive a restart.

Accounts come from -accounts-file, a JSON list such as
  [{"username":"ops","password_sha256":"<64 hex>","role":"ops"},
   {"username":"P01","password_sha256":"<64 hex>","role":"pda"},
   {"username":"hh1","password_sha256":"<64 hex>","role":"handheld","id":"H01"}]
(roles: terminal, handheld, bridge, pda, ops, viewer; password_sha256 = sha256sum of the
password). A PDA's client id must equal its username.`

// Main is `meterlink broker`: it reads flags (each also from METERLINK_<FLAG>), loads the
// accounts file, validates, and runs the broker until ctx is done.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg := DefaultConfig()
	var lc cmdline.LogConfig
	var accountsFile string
	var checkOnly bool
	fs := cmdline.NewFlagSet("broker", usage, stdout)
	fs.StringVar(&cfg.TCPAddr, "mqtt", cfg.TCPAddr, `MQTT over TCP listen address host:port; "" = off`)
	fs.StringVar(&cfg.WSAddr, "ws", cfg.WSAddr, `MQTT over WebSocket listen address host:port, e.g. 127.0.0.1:8083; "" = off`)
	fs.StringVar(&cfg.StorePath, "store", cfg.StorePath, `buntdb file for sessions, in-flight and retained messages; "" = memory only`)
	fs.StringVar(&accountsFile, "accounts-file", "", "JSON list of accounts (see above)")
	fs.BoolVar(&cfg.AllowViewers, "allow-viewers", false, "let clients without a username subscribe, read-only, to the ops event topics")
	fs.Func("max-packet-size", fmt.Sprintf("largest MQTT packet in bytes (default %d)", cfg.MaxPacketSize), func(s string) error {
		var n uint32
		if _, err := fmt.Sscan(s, &n); err != nil {
			return errors.New("want a number of bytes")
		}
		cfg.MaxPacketSize = n
		return nil
	})
	fs.BoolVar(&checkOnly, "check-config", false, "validate the flags and the accounts file, then exit")
	lc.AddFlags(fs)
	if err := cmdline.Parse(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("broker: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("broker: unexpected arguments %q", fs.Args())
	}
	var accErr, cfgErr error
	if accountsFile != "" {
		b, err := os.ReadFile(accountsFile)
		if err == nil {
			cfg.Accounts, err = LoadAccounts(bytes.NewReader(b))
		}
		if err != nil {
			accErr = fmt.Errorf("accounts-file %s: %w", accountsFile, err)
		}
	}
	if accErr == nil { // a broken accounts file would bury its cause under "password required"
		cfgErr = cfg.Validate()
	}
	if err := errors.Join(accErr, lc.Validate(), cfgErr); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	if checkOnly {
		fmt.Fprintln(stdout, "broker: configuration ok")
		return nil
	}
	log, err := lc.Logger(stderr)
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	log.Info("broker starting", "config", cfg)
	b, err := New(cfg, log)
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	return b.Run(ctx)
}
