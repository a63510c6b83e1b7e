// Package hhcli is `meterlink hh`: the meter reader's command line for a running handheld. It
// talks to the handheld only over its loopback control API (JSON over HTTP, see
// handheld/control.go), with the payload types of package wire.
//
//	meterlink hh [--handheld ADDR] [--json] <command> [flags]
//
// The handheld is found with --handheld or METERLINK_HANDHELD (default 127.0.0.1:8081).
// Batch commands (set-clock, set-freeze, set-channel, collect, frozen) start a job on a
// district (--district), a group (--group) or terminals (--terminal), show its progress and
// end with a per-terminal summary; they fail (non-zero exit) when a terminal failed.
package hhcli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// DefaultAddr is where `meterlink handheld` and the lab put the control API.
const DefaultAddr = "127.0.0.1:8081"

// errUsage is returned for a missing or unknown command, after the usage text.
var errUsage = errors.New("see usage above")

// env is what every command gets.
type env struct {
	ctx    context.Context
	c      *client
	json   bool
	stdout io.Writer
	stderr io.Writer
}

// common holds the flags every command takes.
type common struct {
	addr string
	json bool
}

func (c *common) add(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "handheld", c.addr, "the handheld's control API, host:port (env METERLINK_HANDHELD)")
	fs.BoolVar(&c.json, "json", c.json, "print JSON for scripts")
}

type command struct {
	summary string
	run     func(e *env, fs *flag.FlagSet, args []string) error
}

var commands = map[string]command{
	"terminals":   {"list the terminals of the handheld's groups with their radio state", cmdTerminals},
	"groups":      {"list groups; --narrow NAME --from G --terminal T,... makes a local one", cmdGroups},
	"set-clock":   {"set the terminals' clocks to the handheld's time", batch("set_clock")},
	"set-freeze":  {"set the daily freeze time: set-freeze HH:MM", batch("set_freeze")},
	"set-channel": {"set channel parameters: --channel N and --meter/--constant/--base-kwh/--multiplier", batch("set_channel")},
	"collect":     {"make every terminal take a reading now", batch("collect")},
	"frozen":      {"have terminals send their frozen records again: --from DATE [--to DATE]", batch("frozen")},
	"live":        {"watch a terminal's or a meter's live values: --terminal T [--channel N] | --meter M", cmdLive},
	"query":       {"ask ops about a customer: --meter M | --account A | --terminal T", cmdQuery},
	"outbox":      {"show what waits in the handheld for ops", cmdOutbox},
	"jobs":        {"list batch jobs, or show one: jobs [ID]", cmdJobs},
	"warnings":    {"list on-site warnings [--terminal T]", cmdWarnings},
}

// Main runs `meterlink hh`.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cm := common{addr: DefaultAddr}
	if v := getenv("METERLINK_HANDHELD"); v != "" {
		cm.addr = v
	}
	top := flag.NewFlagSet("hh", flag.ContinueOnError)
	top.SetOutput(stderr)
	cm.add(top)
	top.Usage = func() { usage(stderr, top) }
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if top.NArg() == 0 {
		usage(stderr, top)
		return fmt.Errorf("name a command: %w", errUsage)
	}
	name := top.Arg(0)
	if name == "help" {
		usage(stdout, top)
		return nil
	}
	cmd, ok := commands[name]
	if !ok {
		usage(stderr, top)
		return fmt.Errorf("unknown command %q: %w", name, errUsage)
	}
	fs := flag.NewFlagSet("hh "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cm.add(fs)
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr}
	// The command's own flags are defined by run before it parses; parse sets e.c and e.json.
	if err := cmd.run(e, fs, top.Args()[1:]); !errors.Is(err, errHelp) {
		return err
	}
	return nil
}

// parse parses a command's flags, which may come before or after its positional arguments,
// and connects to the handheld.
func (e *env) parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	addr := fs.Lookup("handheld").Value.String()
	e.json = fs.Lookup("json").Value.String() == "true"
	c, err := newClient(addr)
	if err != nil {
		return nil, err
	}
	e.c = c
	return pos, nil
}

// errHelp stops a command after -help printed its usage; Main turns it into success.
var errHelp = errors.New("help shown")

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, "Usage: meterlink hh [--handheld ADDR] [--json] <command> [flags]\n\n"+
		"The meter reader's commands for a running handheld (meterlink handheld, or the lab).\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprint(w, "\nBatch commands take --district D, --group G or --terminal T[,T...] and wait for the job\n"+
		"(--detach: don't). `meterlink hh <command> -help` lists a command's flags.\n\nFlags:\n")
	fs.PrintDefaults()
}

// printJSON writes v as indented JSON.
func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// isTerminal reports whether w is a character device (an interactive terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// splitList splits comma-separated values of a repeatable flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
