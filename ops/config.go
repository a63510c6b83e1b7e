package ops

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/meterlink/meterlink/ops/internal/billing"
	"github.com/meterlink/meterlink/topic"
)

// PasswordEnv is the environment variable that holds ops' broker password. It is not a flag
// so that it never shows in a process listing.
const PasswordEnv = "METERLINK_OPS_PASSWORD"

// MemoryDataDir as the data directory keeps the store in memory only (tests, demos).
const MemoryDataDir = ":memory:"

// Config configures ops.
type Config struct {
	BrokerURL  string        // MQTT broker, tcp://host:port or ws://host:port/path; default tcp://127.0.0.1:1883
	ClientID   string        // MQTT client id, non-empty; default "ops-" + hostname
	Username   string        // broker user name; default "ops"
	Password   string        // broker password, from PasswordEnv; never logged
	Group      string        // shared subscription group that ops replicas split the uplink in; default "ops"
	HTTPAddr   string        // HTTP API listen address; default 127.0.0.1:8080 (port 0 picks one)
	DataDir    string        // directory of the store file ops.db; default ./meterlink-data; MemoryDataDir for none
	Retention  time.Duration // records older than this are deleted and no longer stored; default 400 days, 0 keeps all
	PruneEvery time.Duration // how often retention runs; default 1h, minimum 1s

	TierYearStart  string        // first day of the tier year (阶梯年度), MM-DD; default 01-01
	LowBalanceFen  int64         // prepaid balance alarm 1, fen; default 2000 (20 元); alarm 2 is 500
	ClockTolerance time.Duration // a record stamped further ahead of ops' clock raises clock_drift; default 5m
	// OpsKey is S_ops' X25519 private key, 32 bytes (secret, from OpsKeyEnv as hex); empty:
	// generated once and kept in the store. PDAs pin its public key (security.md §3).
	OpsKey []byte
	// HandshakeBurst is the burst of each PDA's HS_INIT token bucket (security.md §9, one more
	// per minute); default 5.
	HandshakeBurst int
	// HHMasterKey is K_master, 32 bytes (secret, from HHMasterEnv as hex), from which each
	// handheld's depot key K_hh derives (security.md §12); empty: generated once and kept in
	// the store.
	HHMasterKey []byte
}

// HHMasterEnv is the environment variable that may hold K_master (64 hex digits).
const HHMasterEnv = "METERLINK_HH_MASTER"

// OpsKeyEnv is the environment variable that may hold S_ops' private key (64 hex digits).
const OpsKeyEnv = "METERLINK_OPS_KEY"

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "local"
	}
	return Config{
		BrokerURL:  "tcp://127.0.0.1:1883",
		ClientID:   "ops-" + host,
		Username:   "ops",
		Group:      "ops",
		HTTPAddr:   "127.0.0.1:8080",
		DataDir:    "./meterlink-data",
		Retention:  400 * 24 * time.Hour,
		PruneEvery: time.Hour,

		TierYearStart:  "01-01",
		LowBalanceFen:  2000,
		ClockTolerance: 5 * time.Minute,
	}
}

// flags registers ops' flags on fs, with c's values as defaults.
func (c *Config) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.BrokerURL, "broker-url", c.BrokerURL, "MQTT broker URL (tcp://host:port or ws://host:port/path)")
	fs.StringVar(&c.ClientID, "client-id", c.ClientID, "MQTT client id (non-empty)")
	fs.StringVar(&c.Username, "username", c.Username, "broker user name (the password comes from "+PasswordEnv+")")
	fs.StringVar(&c.Group, "group", c.Group, "shared subscription group that ops replicas split the PDA uplink in")
	fs.StringVar(&c.HTTPAddr, "http", c.HTTPAddr, "HTTP API listen address host:port")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory of ops' store (ops.db), or "+MemoryDataDir)
	fs.DurationVar(&c.Retention, "retention", c.Retention, "keep records this long (0 keeps all)")
	fs.StringVar(&c.TierYearStart, "tier-year-start", c.TierYearStart, "first day of the tier year for tiered tariffs, MM-DD")
	fs.Int64Var(&c.LowBalanceFen, "low-balance-fen", c.LowBalanceFen, "prepaid low-balance alarm, fen")
	fs.DurationVar(&c.ClockTolerance, "clock-tolerance", c.ClockTolerance, "records stamped further ahead of ops' clock raise clock_drift")
}

// Validate reports every bad value, naming its flag.
func (c Config) Validate() error {
	var errs []error
	u, err := url.Parse(c.BrokerURL)
	if err != nil || u.Host == "" || (u.Scheme != "tcp" && u.Scheme != "mqtt" && u.Scheme != "ws" &&
		u.Scheme != "wss" && u.Scheme != "ssl" && u.Scheme != "tls") {
		errs = append(errs, fmt.Errorf("broker-url %q: want tcp://host:port, ws://host:port/path or tls://host:port", c.BrokerURL))
	}
	if c.ClientID == "" || len(c.ClientID) > 128 {
		errs = append(errs, fmt.Errorf("client-id %q: must be 1..128 characters", c.ClientID))
	}
	if !topic.ValidID(c.Group) {
		errs = append(errs, fmt.Errorf("group %q: want 1-64 letters, digits, '-', '_' or '.'", c.Group))
	}
	if _, port, err := net.SplitHostPort(c.HTTPAddr); err != nil || port == "" {
		errs = append(errs, fmt.Errorf("http %q: want host:port, e.g. 127.0.0.1:8080", c.HTTPAddr))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data-dir is required"))
	}
	if c.Retention < 0 {
		errs = append(errs, fmt.Errorf("retention %v: must not be negative", c.Retention))
	} else if c.Retention > 0 && c.Retention < time.Hour {
		errs = append(errs, fmt.Errorf("retention %v: want 0 (keep all) or at least 1h", c.Retention))
	}
	if n := len(c.OpsKey); n != 0 && n != 32 {
		errs = append(errs, fmt.Errorf("%s: want 64 hex digits, got %d bytes", OpsKeyEnv, n))
	}
	if n := len(c.HHMasterKey); n != 0 && n != 32 {
		errs = append(errs, fmt.Errorf("%s: want 64 hex digits, got %d bytes", HHMasterEnv, n))
	}
	if c.TierYearStart != "" {
		if _, err := billing.ParseMonthDay(c.TierYearStart); err != nil {
			errs = append(errs, fmt.Errorf("tier-year-start %w", err))
		}
	}
	if c.LowBalanceFen < 0 {
		errs = append(errs, fmt.Errorf("low-balance-fen %d: must not be negative", c.LowBalanceFen))
	}
	if c.ClockTolerance < 0 {
		errs = append(errs, fmt.Errorf("clock-tolerance %v: must not be negative", c.ClockTolerance))
	}
	if c.PruneEvery < time.Second {
		errs = append(errs, fmt.Errorf("prune interval %v: must be at least 1s", c.PruneEvery))
	}
	return errors.Join(errs...)
}

// LogValue logs the configuration without the password.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("broker_url", c.BrokerURL),
		slog.String("client_id", c.ClientID),
		slog.String("username", c.Username),
		slog.Bool("password_set", c.Password != ""),
		slog.Bool("ops_key_set", len(c.OpsKey) > 0),
		slog.Bool("hh_master_set", len(c.HHMasterKey) > 0),
		slog.String("group", c.Group),
		slog.String("http_addr", c.HTTPAddr),
		slog.String("data_dir", c.DataDir),
		slog.Duration("retention", c.Retention),
	)
}

// upFilter is the shared subscription through which this replica gets its share of the PDAs'
// uplink.
func (c Config) upFilter() string { return topic.OpsUpSharedGroup(c.Group) }
