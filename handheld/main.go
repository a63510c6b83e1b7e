package handheld

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/meterlink/meterlink/cmdline"
)

// Main runs `meterlink handheld`: the MQTT-SN gateway for terminals, the upload of their
// records to ops through the PDA, and the control API that `meterlink hh` talks to.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg := DefaultConfig()
	fs := cmdline.NewFlagSet("handheld", "Runs the handheld: the MQTT-SN gateway the terminals talk to, and the outbox that\n"+
		"reports their records to ops through the PDA. Its depot key K_hh (64 hex digits) comes\n"+
		"from METERLINK_HANDHELD_KEY; its password on the PDA listener derives from it.", stderr)
	var (
		lc      cmdline.LogConfig
		dataDir = fs.String("data-dir", "./meterlink-data", "directory for the handheld's outbox")
	)
	fs.StringVar(&cfg.ID, "id", "H01", "handheld id")
	fs.StringVar(&cfg.MQTTSNAddr, "mqttsn-udp", cfg.MQTTSNAddr, "UDP address the MQTT-SN gateway listens on")
	fs.StringVar(&cfg.Serial, "mqttsn-serial", "", "serial radio device for terminals on the radio (empty: UDP only)")
	radioNode := fs.Uint("radio-node", uint(cfg.RadioNode), "the handheld's node address on the serial radio")
	fs.StringVar(&cfg.PDAURL, "pda-url", cfg.PDAURL, "the PDA's local listener")
	fs.IntVar(&cfg.BatchMax, "batch-max", cfg.BatchMax, "records per upstream batch (1..500)")
	fs.DurationVar(&cfg.BatchWait, "batch-wait", cfg.BatchWait, "how long a record waits for others to share its batch")
	fs.DurationVar(&cfg.ResendAfter, "resend-after", cfg.ResendAfter, "resend a batch ops has not acknowledged after this")
	cfg.ControlAddr = "127.0.0.1:8081"
	fs.StringVar(&cfg.ControlAddr, "control", cfg.ControlAddr, "loopback address of the control API for `meterlink hh` (empty: off)")
	fs.DurationVar(&cfg.JobRetry, "job-retry", cfg.JobRetry, "first wait before a job tries a silent terminal again (doubles each try)")
	fs.DurationVar(&cfg.JobRetryMax, "job-retry-max", cfg.JobRetryMax, "longest wait between a job's tries of a terminal")
	fs.DurationVar(&cfg.JobDeadline, "job-deadline", cfg.JobDeadline, "default time a batch job keeps trying")
	fs.DurationVar(&cfg.QueryTimeout, "query-timeout", cfg.QueryTimeout, "default deadline of a real-time query to ops")
	fs.DurationVar(&cfg.ClockDrift, "clock-drift", cfg.ClockDrift, "flag a terminal clock further off than this")
	lc.AddFlags(fs)
	if err := cmdline.Parse(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg.Key = getenv("METERLINK_HANDHELD_KEY")
	if *radioNode > 0xFFFE {
		return fmt.Errorf("radio-node %d: want 1..0xfffe", *radioNode)
	}
	cfg.RadioNode = uint16(*radioNode)
	if err := errors.Join(cfg.Validate(), lc.Validate()); err != nil {
		return err
	}
	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		return fmt.Errorf("data-dir %s: %w", *dataDir, err)
	}
	cfg.StorePath = filepath.Join(*dataDir, "handheld-"+cfg.ID+".db")
	log, _ := lc.Logger(stderr)
	log = log.With("part", "handheld")
	h, err := New(cfg, log)
	if err != nil {
		return err
	}
	log.Info("handheld running", "mqttsn_udp", h.GatewayAddr().String(), "pda_url", cfg.PDAURL, "outbox", h.Pending(), "control", h.ControlAddr())
	if c := h.ControlAddr(); c != "" {
		fmt.Fprintf(stdout, "handheld %s: control API on http://%s (meterlink hh --handheld %s)\n", cfg.ID, c, c)
	}
	return h.Run(ctx)
}
