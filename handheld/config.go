package handheld

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"
)

// Config sets up a handheld.
type Config struct {
	ID         string // handheld id, e.g. H01; required
	MQTTSNAddr string // UDP address of the MQTT-SN gateway; default 127.0.0.1:1885
	Serial     string // serial radio device for a second gateway on the radio (empty: none)
	RadioNode  uint16 // the handheld's node address on the serial radio; default 1
	PDAURL     string // the PDA's local listener; default tcp://127.0.0.1:1884
	// Key is the handheld's depot key (secret; env METERLINK_HANDHELD_KEY): 64 hex digits are
	// K_hh (security.md §12), which opens the PDA's tickets and from which the password on the
	// PDA listener derives. Any other value is only a listener password, and such a handheld
	// never gets a link: it sends nothing upstream.
	Key         string
	KeyVer      byte          // key_ver of K_hh; default 1
	StorePath   string        // buntdb outbox file; ":memory:" keeps nothing across restarts
	BatchMax    int           // records per upstream batch; default 200, 1..wire.MaxBatchRecords
	BatchWait   time.Duration // how long a new record waits for others to share its batch; default 50ms
	ResendAfter time.Duration // a batch not acknowledged by ops within this is sent again; default 15s
	Retry       time.Duration // MQTT-SN Tretry towards terminals; default 2s
	// Radio, if set, wraps the gateway's socket: tests put a lossy link simulator
	// (mqttsn/radiosim) here.
	Radio func(net.PacketConn) net.PacketConn

	ControlAddr  string        // loopback address of the control API (meterlink hh); empty: none. `meterlink handheld` defaults to 127.0.0.1:8081
	JobRetry     time.Duration // first wait before a job tries a terminal again; doubles up to JobRetryMax; default 5s
	JobRetryMax  time.Duration // longest wait between a job's tries of a terminal; default 2m
	AckWait      time.Duration // a command the terminal took but did not answer is sent again after this; default 30s
	JobDeadline  time.Duration // default time a job keeps trying; default 1h, at most 7 days
	QueryTimeout time.Duration // default deadline of a real-time query; default 5s

	ClockDrift    time.Duration    // a terminal clock further off than this is flagged (ERC12); default 1m
	SpikeFactor   float64          // a rate above this × the recent average is flagged (ERC29); default 3
	ZeroReadings  int              // this many readings in a row without consumption are flagged (ERC30); default 3
	LowBalanceFen int64            // a prepaid balance at or below this is flagged; default 2000 (20.00 元)
	Now           func() time.Time // the handheld's clock; default time.Now
}

// DefaultConfig returns a handheld configuration with every default filled in.
func DefaultConfig() Config {
	return Config{
		MQTTSNAddr:  "127.0.0.1:1885",
		PDAURL:      "tcp://127.0.0.1:1884",
		StorePath:   ":memory:",
		BatchMax:    200,
		BatchWait:   50 * time.Millisecond,
		ResendAfter: 15 * time.Second,
		Retry:       2 * time.Second,
		RadioNode:   1,
		KeyVer:      1,

		JobRetry:     5 * time.Second,
		JobRetryMax:  2 * time.Minute,
		AckWait:      30 * time.Second,
		JobDeadline:  time.Hour,
		QueryTimeout: 5 * time.Second,

		ClockDrift:    time.Minute,
		SpikeFactor:   3,
		ZeroReadings:  3,
		LowBalanceFen: 2000,
		Now:           time.Now,
	}
}

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.ID == "" {
		errs = append(errs, errors.New("id is required"))
	}
	if _, _, err := net.SplitHostPort(c.MQTTSNAddr); err != nil {
		errs = append(errs, fmt.Errorf("mqttsn-udp %q: want host:port", c.MQTTSNAddr))
	}
	if u, err := url.Parse(c.PDAURL); err != nil || u.Host == "" {
		errs = append(errs, fmt.Errorf("pda-url %q: want tcp://host:port", c.PDAURL))
	}
	if c.Serial != "" && (c.RadioNode == 0 || c.RadioNode == 0xFFFF) {
		errs = append(errs, fmt.Errorf("radio-node %d: want 1..0xfffe", c.RadioNode))
	}
	if c.BatchMax < 1 || c.BatchMax > 500 {
		errs = append(errs, fmt.Errorf("batch-max %d: want 1..500", c.BatchMax))
	}
	if c.BatchWait < 0 || c.BatchWait > 10*time.Second {
		errs = append(errs, fmt.Errorf("batch-wait %v: want 0..10s", c.BatchWait))
	}
	if c.ResendAfter < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("resend-after %v is below 100ms", c.ResendAfter))
	}
	if c.ControlAddr != "" {
		if err := checkLoopback(c.ControlAddr); err != nil {
			errs = append(errs, fmt.Errorf("control %q: %w", c.ControlAddr, err))
		}
	}
	if c.JobRetry < 10*time.Millisecond || c.JobRetryMax < c.JobRetry {
		errs = append(errs, fmt.Errorf("job-retry %v, job-retry-max %v: want 10ms <= job-retry <= job-retry-max", c.JobRetry, c.JobRetryMax))
	}
	if c.AckWait < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("ack-wait %v is below 10ms", c.AckWait))
	}
	if c.JobDeadline < time.Second || c.JobDeadline > 7*24*time.Hour {
		errs = append(errs, fmt.Errorf("job-deadline %v: want 1s..168h", c.JobDeadline))
	}
	if c.QueryTimeout < 10*time.Millisecond || c.QueryTimeout > time.Minute {
		errs = append(errs, fmt.Errorf("query-timeout %v: want 10ms..1m", c.QueryTimeout))
	}
	if c.ClockDrift < time.Second {
		errs = append(errs, fmt.Errorf("clock-drift %v is below 1s", c.ClockDrift))
	}
	if c.SpikeFactor <= 1 {
		errs = append(errs, fmt.Errorf("spike-factor %v: want above 1", c.SpikeFactor))
	}
	if c.ZeroReadings < 1 {
		errs = append(errs, fmt.Errorf("zero-readings %d: want at least 1", c.ZeroReadings))
	}
	return errors.Join(errs...)
}

// checkLoopback accepts host:port on a loopback address only: the control API has no
// authentication, so it must not be reachable from the network.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port")
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return errors.New("want a loopback address (127.0.0.1 or ::1): the control API has no authentication")
	}
	return nil
}
