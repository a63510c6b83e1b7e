// Command meterlink is MeterLink's one binary: every part is a subcommand.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/meterlink/meterlink/bench"
	"github.com/meterlink/meterlink/broker"
	"github.com/meterlink/meterlink/dlt645/dltcli"
	"github.com/meterlink/meterlink/handheld"
	"github.com/meterlink/meterlink/handheld/hhcli"
	"github.com/meterlink/meterlink/lab"
	"github.com/meterlink/meterlink/metersim"
	"github.com/meterlink/meterlink/ops"
	"github.com/meterlink/meterlink/terminal"
)

type command struct {
	run     func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error
	summary string
}

var commands = map[string]command{
	"lab":        {lab.Main, "run the whole chain on 127.0.0.1 with demo terminals, meters and customers"},
	"broker":     {broker.Main, "run the MQTT broker (TCP and WebSocket, ACL from the topic registry, persistent)"},
	"ops":        {ops.Main, "run the operations system: ingest, store, HTTP API"},
	"pda-bridge": {lab.PDABridgeMain, "run the PDA security unit with its local listener for handhelds"},
	"hh":         {hhcli.Main, "the meter reader's commands for a running handheld (groups, jobs, live, query)"},
	"handheld":   {handheld.Main, "run the handheld: MQTT-SN gateway for terminals, outbox to ops via the PDA"},
	"terminal":   {terminal.Main, "run collection terminals that send readings over MQTT-SN"},
	"meter-sim":  {metersim.Main, "run simulated pulse meters feeding a terminal process"},
	"bench":      {bench.Main, "measure the chain, the broker, the MQTT-SN gateway and ops ingest"},
	"dlt645":     {dltcli.Main, "decode a DL/T 645 frame (decode HEX) or read a meter on a serial port (read)"},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := dispatch(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "meterlink:", err)
		os.Exit(1)
	}
}

// errUsage is returned for a missing or unknown subcommand, after the usage text.
var errUsage = errors.New("see usage above")

func dispatch(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		usage(stdout)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	c, ok := commands[args[0]]
	if !ok {
		usage(stderr)
		return fmt.Errorf("unknown subcommand %q: %w", args[0], errUsage)
	}
	return c.run(ctx, args[1:], getenv, stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprint(w, "MeterLink: automatic meter reading from pulse and RS485 meters to the operations system.\n\n"+
		"Usage: meterlink <subcommand> [flags]   (meterlink <subcommand> -help for its flags)\n\nSubcommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-11s %s\n", n, commands[n].summary)
	}
	fmt.Fprint(w, "\nEvery flag can also be set with METERLINK_<FLAG> (e.g. -data-dir → METERLINK_DATA_DIR).\n")
}
