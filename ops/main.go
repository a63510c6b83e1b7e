package ops

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/meterlink/meterlink/bus"
	"github.com/meterlink/meterlink/cmdline"
)

const summary = `Runs ops: consumes the PDAs' record batches from the broker (shared subscription),
stores each (terminal, seq) once, acknowledges batches to the PDA, publishes reading events for
dashboards, and serves the HTTP JSON API (/api/v1/...) and Prometheus metrics (/metrics).
The broker password is read from ` + PasswordEnv + `, S_ops' private key (optional) from ` + OpsKeyEnv + `.`

// Main is the "meterlink ops" subcommand: flags (and METERLINK_* variables) → config →
// logger → [New] → [Ops.Run] until ctx is done.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && adminVerbs[args[0]] != "" {
		return Admin(ctx, args, getenv, stdout, stderr)
	}
	cfg := DefaultConfig()
	var lc cmdline.LogConfig
	fs := cmdline.NewFlagSet("ops", summary, stderr)
	cfg.flags(fs)
	lc.AddFlags(fs)
	checkOnly := fs.Bool("check-config", false, "validate the configuration and exit")
	if err := cmdline.Parse(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("ops: unexpected arguments %q (flags only; see -help)", fs.Args())
	}
	cfg.Password = getenv(PasswordEnv)
	if k := getenv(OpsKeyEnv); k != "" {
		key, err := hex.DecodeString(k)
		if err != nil {
			return fmt.Errorf("%s: want 64 hex digits", OpsKeyEnv)
		}
		cfg.OpsKey = key
	}
	if k := getenv(HHMasterEnv); k != "" {
		key, err := hex.DecodeString(k)
		if err != nil {
			return fmt.Errorf("%s: want 64 hex digits", HHMasterEnv)
		}
		cfg.HHMasterKey = key
	}
	if err := errors.Join(cfg.Validate(), lc.Validate()); err != nil {
		return err
	}
	if *checkOnly {
		fmt.Fprintln(stdout, "ops: configuration ok")
		return nil
	}
	log, err := lc.Logger(stderr)
	if err != nil {
		return err
	}
	bus.RouteLibraryLogs(log)
	o, err := New(cfg, log)
	if err != nil {
		return err
	}
	return errors.Join(o.Run(ctx), o.Close())
}
