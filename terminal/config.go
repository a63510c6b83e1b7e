package terminal

import (
	"errors"
	"fmt"
	"net"

	"github.com/meterlink/meterlink/terminal/rs485"
	"time"
)

// ChannelConfig is the commissioning of one channel: the meter on it and how to turn its
// pulses into a reading.
type ChannelConfig struct {
	Channel    uint8  // 1..16
	Meter      string // meter id
	Constant   uint32 // impulse constant, imp/kWh; 1..100000
	BaseWh     int64  // base reading (底数) at commissioning, Wh
	Multiplier uint32 // CT × PT ratio; default 1
}

// Config sets up one terminal.
type Config struct {
	ID        string           // terminal id, also its MQTT-SN client id; required
	Gateway   string           // MQTT-SN gateway, udp://host:port; default udp://127.0.0.1:1885
	StorePath string           // buntdb file; ":memory:" keeps nothing across restarts
	Channels  []ChannelConfig  // used for channels the store does not know yet
	Interval  time.Duration    // collection interval; default 15s, minimum 100ms
	KeepAlive time.Duration    // MQTT-SN keep-alive; default 60s
	Retry     time.Duration    // MQTT-SN Tretry; default 2s (the radio's round trip plus the handheld's store)
	Retries   int              // MQTT-SN Nretry before the session counts as lost; default 8 (a lossy radio needs more than the spec's 3-5)
	Now       func() time.Time // system clock; the terminal's own clock runs from it with DriftPPM

	FreezeAt      string         // daily freeze time HH:MM on the terminal's clock; default 00:00
	Location      *time.Location // time zone of the freeze time and dates; default Asia/Shanghai (UTC+8)
	DriftPPM      float64        // simulated clock drift, parts per million; default 0, |drift| ≤ 1000
	ClockSetEvent time.Duration  // a clock set that moves the clock further than this raises an event; default 60s
	FrozenDays    int            // daily frozen records kept; default 62
	Sleep         time.Duration  // 0: always connected; else sleep this long between contacts (MQTT-SN sleeping client)
	CounterSync   bool           // persist every pulse before Pulse returns (default true in DefaultConfig)
	// RS485, if set, makes channel 16 the RS485 port: its meters are polled (Modbus RTU/TCP or
	// DL/T 645) at the collection interval, and channel 16 cannot also count pulses.
	RS485 *rs485.Config
	// Radio, if set, wraps the terminal's radio socket: tests put a lossy link simulator
	// (mqttsn/radiosim) here.
	Radio func(net.PacketConn) net.PacketConn
}

// DefaultConfig returns a terminal configuration with every default filled in.
func DefaultConfig() Config {
	return Config{
		Gateway:   "udp://127.0.0.1:1885",
		StorePath: ":memory:",
		Interval:  15 * time.Second,
		KeepAlive: 60 * time.Second,
		Retry:     2 * time.Second,
		Retries:   8,
		Now:       time.Now,

		FreezeAt:      "00:00",
		Location:      chinaStandardTime,
		ClockSetEvent: time.Minute,
		FrozenDays:    62,
		CounterSync:   true,
	}
}

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.ID == "" {
		errs = append(errs, errors.New("id is required"))
	} else if !validID(c.ID) {
		errs = append(errs, fmt.Errorf("id %q: use 1-23 letters, digits, '-', '_' or '.'", c.ID))
	}
	if _, err := parseGateway(c.Gateway); err != nil {
		errs = append(errs, err)
	}
	if c.Interval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("interval %v is below 100ms", c.Interval))
	}
	if _, err := parseHHMM(c.FreezeAt); err != nil {
		errs = append(errs, fmt.Errorf("freeze-at %q: %w", c.FreezeAt, err))
	}
	if c.DriftPPM < -1000 || c.DriftPPM > 1000 {
		errs = append(errs, fmt.Errorf("drift %v ppm: want -1000..1000", c.DriftPPM))
	}
	if c.FrozenDays < 1 || c.FrozenDays > 366 {
		errs = append(errs, fmt.Errorf("frozen-days %d: want 1..366", c.FrozenDays))
	}
	if c.Sleep != 0 && (c.Sleep < time.Second || c.Sleep > 18*time.Hour) {
		errs = append(errs, fmt.Errorf("sleep %v: want 0 (always on) or 1s..18h", c.Sleep))
	}
	if c.RS485 != nil {
		if err := c.RS485.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("rs485: %w", err))
		}
	}
	seen := map[uint8]bool{}
	for _, ch := range c.Channels {
		switch {
		case ch.Channel < 1 || ch.Channel > 16:
			errs = append(errs, fmt.Errorf("channel %d: out of 1..16", ch.Channel))
		case seen[ch.Channel]:
			errs = append(errs, fmt.Errorf("channel %d: configured twice", ch.Channel))
		case ch.Channel == 16 && c.RS485 != nil:
			errs = append(errs, errors.New("channel 16: configured as a pulse input and as the RS485 port"))
		}
		seen[ch.Channel] = true
		if ch.Constant < 1 || ch.Constant > 100000 {
			errs = append(errs, fmt.Errorf("channel %d: impulse constant %d out of 1..100000 imp/kWh", ch.Channel, ch.Constant))
		}
		if !validID(ch.Meter) {
			errs = append(errs, fmt.Errorf("channel %d: meter id %q is not valid", ch.Channel, ch.Meter))
		}
		if ch.BaseWh < 0 {
			errs = append(errs, fmt.Errorf("channel %d: base reading %d Wh is negative", ch.Channel, ch.BaseWh))
		}
	}
	return errors.Join(errs...)
}

func validID(s string) bool {
	if len(s) == 0 || len(s) > 23 { // MQTT-SN client ids are 1-23 characters
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// chinaStandardTime is UTC+8, the clock of State Grid terminals; a fixed zone needs no tzdata.
var chinaStandardTime = time.FixedZone("CST", 8*3600)

// parseHHMM parses a time of day "HH:MM" into minutes after midnight.
func parseHHMM(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil || len(s) != 5 {
		return 0, errors.New("want HH:MM, 00:00 to 23:59")
	}
	return t.Hour()*60 + t.Minute(), nil
}
