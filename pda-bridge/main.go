package pdabridge

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/meterlink/meterlink/cmdline"
)

// Flags holds the command-line settings of `meterlink pda-bridge` beyond Config: the parts of
// the subcommand that start the PDA's local listener read them too.
type Flags struct {
	Config
	Listen  string // the local listener's address for handhelds
	DataDir string
	Log     cmdline.LogConfig
}

// ParseFlags reads the pda-bridge flags and environment: METERLINK_SID (SID₀, 64 hex digits;
// needed on first start only), METERLINK_OPS_PUBLIC_KEY (or -ops-public-key: S_ops public, 64
// hex digits), METERLINK_HANDHELD_KEY (a bound handheld's depot key K_hh, from which its listener password derives)
// and METERLINK_BRIDGE_KEY (the bridge's own). It returns flag.ErrHelp after printing help.
func ParseFlags(args []string, getenv func(string) string, stderr io.Writer) (Flags, error) {
	f := Flags{Config: DefaultConfig()}
	fs := cmdline.NewFlagSet("pda-bridge", "Runs the PDA's security unit: a local MQTT listener for the bound handhelds, and\n"+
		"the SECLINK/1 link that forwards their records to ops sealed under keys derived from the\n"+
		"PDA's security identifier (SID), which rotates on every handshake. Secrets come from the\n"+
		"environment: METERLINK_SID (SID₀, 64 hex digits from ops; first start only),\n"+
		"METERLINK_HANDHELD_KEY (handheld depot key; its listener password derives), METERLINK_BRIDGE_KEY (optional).", stderr)
	var handhelds, opsPub string
	opsKey := int(f.OpsKey)
	fs.StringVar(&f.ID, "id", "P01", "PDA id")
	fs.StringVar(&f.UpstreamURL, "upstream-url", f.UpstreamURL, "the ops broker")
	fs.StringVar(&f.Listen, "listen", "127.0.0.1:1884", "address of the local listener for handhelds")
	fs.StringVar(&handhelds, "handhelds", "H01", "comma-separated handhelds bound to this PDA")
	fs.DurationVar(&f.ResendAfter, "resend-after", f.ResendAfter, "resend a batch ops has not acknowledged after this")
	fs.DurationVar(&f.StallAfter, "stall-after", f.StallAfter, "handshake again when uplink stays unacknowledged this long")
	fs.StringVar(&opsPub, "ops-public-key", "", "S_ops public key that ops gave with SID₀ (64 hex digits)")
	fs.IntVar(&opsKey, "opskey", opsKey, "id of the ops key (1..255)")
	fs.StringVar(&f.DataDir, "data-dir", "./meterlink-data", "directory for the PDA's outbox and listener state")
	f.Log.AddFlags(fs)
	if err := cmdline.Parse(fs, args, getenv); err != nil {
		return f, err
	}
	var errs []error
	if s := getenv("METERLINK_SID"); s != "" {
		sid, err := hex.DecodeString(s)
		if err != nil || len(sid) != 32 {
			errs = append(errs, errors.New("METERLINK_SID: want 64 hex digits"))
		} else {
			f.SID = sid
		}
	}
	if opsPub != "" {
		if k, err := hex.DecodeString(opsPub); err != nil || len(k) != 32 {
			errs = append(errs, errors.New("ops-public-key: want 64 hex digits"))
		} else {
			copy(f.OpsPublicKey[:], k)
		}
	}
	if opsKey < 1 || opsKey > 255 {
		errs = append(errs, fmt.Errorf("opskey %d: want 1..255", opsKey))
	}
	f.OpsKey = byte(opsKey)
	for _, h := range strings.Split(handhelds, ",") {
		if h = strings.TrimSpace(h); h != "" {
			f.Handhelds = append(f.Handhelds, h)
		}
	}
	f.LocalURL = "tcp://" + f.Listen
	f.LocalPassword = getenv("METERLINK_BRIDGE_KEY")
	f.StorePath = filepath.Join(f.DataDir, "pda-"+f.ID+".db")
	errs = append(errs, f.Config.Validate(), f.Log.Validate())
	if err := errors.Join(errs...); err != nil {
		return f, err
	}
	if err := os.MkdirAll(f.DataDir, 0o755); err != nil {
		return f, fmt.Errorf("data-dir %s: %w", f.DataDir, err)
	}
	return f, nil
}
