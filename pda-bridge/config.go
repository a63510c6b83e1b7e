package pdabridge

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/meterlink/meterlink/idcheck"
	"github.com/meterlink/meterlink/wire"
)

// Config sets up a PDA bridge.
type Config struct {
	ID            string        // PDA id, e.g. P01; required
	SID           []byte        // security identifier pre-assigned by ops, 32 bytes (secret; env METERLINK_SID as hex)
	UpstreamURL   string        // the ops broker; default tcp://127.0.0.1:1883
	LocalURL      string        // the PDA's local listener, which handhelds use; default tcp://127.0.0.1:1884
	LocalPassword string        // the bridge's own password on the local listener (secret)
	Handhelds     []string      // handhelds bound to this PDA; records of any other are dropped
	StorePath     string        // buntdb outbox; ":memory:" keeps nothing across restarts
	ResendAfter   time.Duration // a batch not acknowledged by ops within this is sent again; default 15s
}

// DefaultConfig returns a bridge configuration with every default filled in.
func DefaultConfig() Config {
	return Config{
		UpstreamURL: "tcp://127.0.0.1:1883",
		LocalURL:    "tcp://127.0.0.1:1884",
		StorePath:   ":memory:",
		ResendAfter: 15 * time.Second,
	}
}

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	if !wire.ValidID(c.ID) {
		errs = append(errs, fmt.Errorf("id %q: want a PDA id such as P01", c.ID))
	}
	if len(c.SID) != idcheck.SIDSize {
		errs = append(errs, errors.New("sid: "+idcheck.ErrBadSID.Error()+" (set METERLINK_SID)"))
	}
	for name, s := range map[string]string{"upstream-url": c.UpstreamURL, "local-url": c.LocalURL} {
		if u, err := url.Parse(s); err != nil || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s %q: want tcp://host:port", name, s))
		}
	}
	if len(c.Handhelds) == 0 {
		errs = append(errs, errors.New("handhelds: bind at least one handheld"))
	}
	for _, h := range c.Handhelds {
		if !wire.ValidID(h) {
			errs = append(errs, fmt.Errorf("handhelds: %q is not a valid id", h))
		}
	}
	if c.ResendAfter < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("resend-after %v is below 100ms", c.ResendAfter))
	}
	return errors.Join(errs...)
}

// LogValue keeps secrets out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", c.ID), slog.String("upstream_url", c.UpstreamURL),
		slog.String("local_url", c.LocalURL), slog.Any("handhelds", c.Handhelds),
		slog.String("store", c.StorePath),
	)
}
