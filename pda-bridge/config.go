package pdabridge

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/meterlink/meterlink/wire"
)

// Config sets up a PDA bridge.
type Config struct {
	ID string // PDA id, e.g. P01; the MQTT client id and username upstream; required
	// SID is SID₀, the security identifier ops pre-assigned, 32 bytes (secret; env METERLINK_SID
	// as hex). It is used once: on first start, when the store holds no security state yet.
	// Afterwards the stored, rotated SIDs win and SID may be empty.
	SID           []byte
	OpsPublicKey  [32]byte      // S_ops public key that the PDA pins (security.md §3); required
	OpsKey        byte          // opskey id of OpsPublicKey; default 1
	UpstreamURL   string        // the ops broker; default tcp://127.0.0.1:1883
	LocalURL      string        // the PDA's local listener, which handhelds use; default tcp://127.0.0.1:1884
	LocalPassword string        // the bridge's own password on the local listener (secret)
	Handhelds     []string      // handhelds bound to this PDA; records of any other are dropped
	StorePath     string        // buntdb file: outbox and security unit; ":memory:" keeps nothing across restarts
	ResendAfter   time.Duration // a batch not acknowledged by ops within this is sent again; default 15s
	// StallAfter starts a new handshake when uplink stays unacknowledged this long (ops may have
	// lost the session, security.md §4.2); default 30s.
	StallAfter time.Duration
	// HandshakeRetry is the first HANDSHAKE_RETRY interval, doubling (±20 % jitter) up to
	// HandshakeRetryMax (security.md §8); defaults 5s and 5min.
	HandshakeRetry    time.Duration
	HandshakeRetryMax time.Duration
}

// DefaultConfig returns a bridge configuration with every default filled in.
func DefaultConfig() Config {
	return Config{
		OpsKey:            1,
		UpstreamURL:       "tcp://127.0.0.1:1883",
		LocalURL:          "tcp://127.0.0.1:1884",
		StorePath:         ":memory:",
		ResendAfter:       15 * time.Second,
		StallAfter:        30 * time.Second,
		HandshakeRetry:    5 * time.Second,
		HandshakeRetryMax: 5 * time.Minute,
	}
}

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	if !wire.ValidID(c.ID) {
		errs = append(errs, fmt.Errorf("id %q: want a PDA id such as P01", c.ID))
	}
	if n := len(c.SID); n != 0 && n != 32 {
		errs = append(errs, fmt.Errorf("sid: want 32 bytes (64 hex digits in METERLINK_SID), got %d", n))
	}
	if c.OpsPublicKey == ([32]byte{}) {
		errs = append(errs, errors.New("ops-public-key: the S_ops public key (64 hex digits) ops gave with SID₀ is required"))
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
	if c.StallAfter < c.ResendAfter {
		errs = append(errs, fmt.Errorf("stall-after %v is below resend-after %v", c.StallAfter, c.ResendAfter))
	}
	if c.HandshakeRetry < 10*time.Millisecond || c.HandshakeRetryMax < c.HandshakeRetry {
		errs = append(errs, fmt.Errorf("handshake retry %v..%v: want 10ms ≤ first ≤ max", c.HandshakeRetry, c.HandshakeRetryMax))
	}
	return errors.Join(errs...)
}

// LogValue keeps secrets out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", c.ID), slog.String("upstream_url", c.UpstreamURL),
		slog.String("local_url", c.LocalURL), slog.Any("handhelds", c.Handhelds),
		slog.String("store", c.StorePath), slog.Bool("sid0_set", len(c.SID) > 0),
		slog.Int("opskey", int(c.OpsKey)),
	)
}
