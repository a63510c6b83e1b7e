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
	ID          string        // handheld id, e.g. H01; required
	MQTTSNAddr  string        // UDP address of the MQTT-SN gateway; default 127.0.0.1:1885
	Serial      string        // serial radio device for a second gateway on the radio (empty: none)
	RadioNode   uint16        // the handheld's node address on the serial radio; default 1
	PDAURL      string        // the PDA's local listener; default tcp://127.0.0.1:1884
	Key         string        // the handheld's password on the PDA listener (secret; env METERLINK_HANDHELD_KEY)
	StorePath   string        // buntdb outbox file; ":memory:" keeps nothing across restarts
	BatchMax    int           // records per upstream batch; default 200, 1..wire.MaxBatchRecords
	BatchWait   time.Duration // how long a new record waits for others to share its batch; default 50ms
	ResendAfter time.Duration // a batch not acknowledged by ops within this is sent again; default 15s
	Retry       time.Duration // MQTT-SN Tretry towards terminals; default 2s
	// Radio, if set, wraps the gateway's socket: tests put a lossy link simulator
	// (mqttsn/radiosim) here.
	Radio func(net.PacketConn) net.PacketConn
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
	return errors.Join(errs...)
}
