package lab

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/meterlink/meterlink/bus"
	"github.com/meterlink/meterlink/cmdline"
	"github.com/meterlink/meterlink/topic"
)

// Main runs `meterlink lab`.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg := DefaultConfig()
	fs := cmdline.NewFlagSet("lab", "Runs the whole MeterLink chain in one process on 127.0.0.1: the ops broker, ops with a\n"+
		"seeded demo dataset, the PDA bridge and its local listener, the handheld's MQTT-SN\n"+
		"gateway, simulated terminals and pulse meters. Stop it with Ctrl-C.", stderr)
	var (
		lc    cmdline.LogConfig
		parts = fs.String("parts", strings.Join(AllParts, ","), "comma-separated parts to run: "+strings.Join(AllParts, ", "))
	)
	fs.StringVar(&cfg.MQTTAddr, "mqtt", cfg.MQTTAddr, "ops broker, MQTT over TCP")
	fs.StringVar(&cfg.WSAddr, "ws", cfg.WSAddr, "ops broker, MQTT over WebSocket (empty: off)")
	fs.StringVar(&cfg.HTTPAddr, "http", cfg.HTTPAddr, "ops HTTP API and dashboard")
	fs.StringVar(&cfg.PDAAddr, "pda", cfg.PDAAddr, "the PDA bridge's local listener for handhelds")
	fs.StringVar(&cfg.MQTTSNAddr, "mqttsn", cfg.MQTTSNAddr, "the handheld's MQTT-SN gateway (UDP)")
	fs.StringVar(&cfg.HHAddr, "hh", cfg.HHAddr, "the handheld's control API for `meterlink hh` (loopback; empty: off)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for every part's store")
	fs.IntVar(&cfg.Terminals, "terminals", cfg.Terminals, "simulated terminals (16 channels each)")
	fs.IntVar(&cfg.Districts, "districts", cfg.Districts, "transformer districts the terminals are spread over")
	fs.DurationVar(&cfg.Interval, "interval", cfg.Interval, "terminals' collection interval")
	fs.Float64Var(&cfg.Speed, "speed", cfg.Speed, "simulated seconds of consumption per real second")
	lc.AddFlags(fs)
	if err := cmdline.Parse(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg.Parts = nil
	for _, p := range strings.Split(*parts, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.Parts = append(cfg.Parts, p)
		}
	}
	if err := errors.Join(cfg.Validate(), lc.Validate()); err != nil {
		return err
	}
	log, _ := lc.Logger(stderr)
	bus.RouteLibraryLogs(log)
	l, err := New(ctx, cfg, getenv, log)
	if err != nil {
		return err
	}
	printWelcome(stdout, l.Config())
	return l.Run(ctx)
}

func printWelcome(w io.Writer, c Config) {
	fmt.Fprintf(w, "MeterLink lab running (parts: %s). Ctrl-C stops it.\n\n", strings.Join(c.Parts, ", "))
	row := func(k, v string) { fmt.Fprintf(w, "  %-22s %s\n", k, v) }
	if c.runs(PartOps) {
		row("ops API", "http://"+c.HTTPAddr+"/api/v1/health")
		row("readings", "http://"+c.HTTPAddr+"/api/v1/readings")
	}
	if c.runs(PartBroker) {
		row("broker (MQTT)", "tcp://"+c.MQTTAddr)
		if c.WSAddr != "" {
			row("broker (WebSocket)", "ws://"+c.WSAddr)
		}
	}
	if c.runs(PartPDA) {
		row("PDA local listener", "tcp://"+c.PDAAddr)
	}
	if c.runs(PartHandheld) {
		row("MQTT-SN gateway", "udp://"+c.MQTTSNAddr)
		if c.HHAddr != "" {
			row("handheld control", "http://"+c.HHAddr+"  (meterlink hh --handheld "+c.HHAddr+" terminals)")
		}
	}
	if c.runs(PartTerminals) {
		row("terminals", fmt.Sprintf("%d in %d districts, collecting every %v", c.Terminals, c.Districts, c.Interval))
	}
	row("data", c.DataDir)
	if c.runs(PartBroker) {
		host, port, _ := strings.Cut(c.MQTTAddr, ":")
		fmt.Fprintf(w, "\nWatch live events:\n  mosquitto_sub -h %s -p %s -t '%s' -v\n\n", host, port, strings.TrimSuffix(topic.OpsReadingsAll, "readings/#")+"#")
	}
}
