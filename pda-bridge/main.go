package pdabridge

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/meterlink/meterlink/cmdline"
	"github.com/meterlink/meterlink/idcheck"
)

// Flags holds the command-line settings of `meterlink pda-bridge` beyond Config: the parts of
// the subcommand that start the PDA's local listener read them too.
type Flags struct {
	Config
	Listen  string // the local listener's address for handhelds
	DataDir string
	Log     cmdline.LogConfig
}

// ParseFlags reads the pda-bridge flags and environment: METERLINK_SID (64 hex digits),
// METERLINK_HANDHELD_KEY (the bound handhelds' password on the local listener) and
// METERLINK_BRIDGE_KEY (the bridge's own). It returns flag.ErrHelp after printing help.
func ParseFlags(args []string, getenv func(string) string, stderr io.Writer) (Flags, error) {
	f := Flags{Config: DefaultConfig()}
	fs := cmdline.NewFlagSet("pda-bridge", "Runs the PDA's security unit: a local MQTT listener for the bound handhelds, and\n"+
		"the link that forwards their records to ops only under the PDA's security identifier.\n"+
		"Secrets come from the environment: METERLINK_SID (64 hex digits, pre-assigned by ops),\n"+
		"METERLINK_HANDHELD_KEY (handhelds' password here), METERLINK_BRIDGE_KEY (optional).", stderr)
	var handhelds string
	fs.StringVar(&f.ID, "id", "P01", "PDA id")
	fs.StringVar(&f.UpstreamURL, "upstream-url", f.UpstreamURL, "the ops broker")
	fs.StringVar(&f.Listen, "listen", "127.0.0.1:1884", "address of the local listener for handhelds")
	fs.StringVar(&handhelds, "handhelds", "H01", "comma-separated handhelds bound to this PDA")
	fs.DurationVar(&f.ResendAfter, "resend-after", f.ResendAfter, "resend a batch ops has not acknowledged after this")
	fs.StringVar(&f.DataDir, "data-dir", "./meterlink-data", "directory for the PDA's outbox and listener state")
	f.Log.AddFlags(fs)
	if err := cmdline.Parse(fs, args, getenv); err != nil {
		return f, err
	}
	var errs []error
	if s := getenv("METERLINK_SID"); s == "" {
		errs = append(errs, errors.New("METERLINK_SID is not set: the PDA needs the security identifier ops assigned to it"))
	} else if sid, err := idcheck.ParseSID(s); err != nil {
		errs = append(errs, fmt.Errorf("METERLINK_SID: %w", err))
	} else {
		f.SID = sid
	}
	for _, h := range strings.Split(handhelds, ",") {
		if h = strings.TrimSpace(h); h != "" {
			f.Handhelds = append(f.Handhelds, h)
		}
	}
	f.LocalURL = "tcp://" + f.Listen
	f.LocalPassword = getenv("METERLINK_BRIDGE_KEY")
	f.StorePath = filepath.Join(f.DataDir, "pda-"+f.ID+".db")
	if len(f.SID) == 0 {
		f.SID = make([]byte, idcheck.SIDSize) // checked above; keeps Validate from repeating it
	}
	errs = append(errs, f.Config.Validate(), f.Log.Validate())
	if err := errors.Join(errs...); err != nil {
		return f, err
	}
	if err := os.MkdirAll(f.DataDir, 0o755); err != nil {
		return f, fmt.Errorf("data-dir %s: %w", f.DataDir, err)
	}
	return f, nil
}
