package rs485

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meterlink/meterlink/dlt645"
	"github.com/meterlink/meterlink/regmap"
)

// Protocols a [Config] may name.
const (
	Modbus    = "modbus"      // Modbus RTU, RTU over TCP or Modbus TCP
	DLT645    = "dlt645-2007" // DL/T 645-2007
	DLT645v97 = "dlt645-1997" // DL/T 645-1997 (reads only)
)

// MeterConfig is one meter on the line.
type MeterConfig struct {
	ID      string // meter id (户号/表号) used in results; 1-23 letters, digits, '-', '_' or '.'
	Address string // Modbus unit id "1".."247", or the DL/T 645 address, 12 digits
	Map     string // Modbus register map, such as "sdm120" (regmap.Names or Config.Maps); empty for DL/T 645
}

// Config sets up the channel-16 line. Zero values take the defaults, so
// only Protocol, URL and Meters are required.
type Config struct {
	Protocol string // Modbus, DLT645 or DLT645v97; required
	// URL is the line. Modbus: rtu:///dev/ttyUSB0, rtuovertcp://host:port
	// or tcp://host:port. DL/T 645: the serial device path, /dev/ttyS1.
	URL      string
	Speed    int              // baud; default 9600 (Modbus), 2400 (DL/T 645-2007), 1200 (1997); serial lines only
	Parity   string           // "N", "E" or "O"; default N (Modbus), E (DL/T 645)
	DataBits int              // 7 or 8; default 8
	StopBits int              // 1 or 2; default 1
	Meters   []MeterConfig    // at least one
	Maps     []regmap.Map     // extra register maps (regmap.Parse), found before the shipped ones
	Timeout  time.Duration    // reply timeout per attempt; default 1s, 10ms..10s
	Retries  int              // extra attempts when a meter does not answer; default 2, -1 for none, at most 10
	Now      func() time.Time // clock for Result.Time; default time.Now
}

// serial baud rates accepted in Config.Speed.
var speeds = []int{300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200}

// withDefaults returns c with every zero value replaced by its default.
func (c Config) withDefaults() Config {
	if c.Speed == 0 {
		switch c.Protocol {
		case DLT645:
			c.Speed = 2400
		case DLT645v97:
			c.Speed = 1200 // domain.md §1: 1200 bps for 1997 meters
		default:
			c.Speed = 9600
		}
	}
	if c.Parity == "" {
		c.Parity = "N"
		if c.Protocol != Modbus {
			c.Parity = "E"
		}
	}
	if c.DataBits == 0 {
		c.DataBits = 8
	}
	if c.StopBits == 0 {
		c.StopBits = 1
	}
	if c.Timeout == 0 {
		c.Timeout = time.Second
	}
	switch {
	case c.Retries == 0:
		c.Retries = 2
	case c.Retries < 0:
		c.Retries = 0
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports every problem of the configuration, naming the field.
// Zero values are valid: they stand for the defaults.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch c.Protocol {
	case Modbus, DLT645, DLT645v97:
		if err := checkURL(c.Protocol, c.URL); err != nil {
			errs = append(errs, err)
		}
	default:
		bad("protocol %q: want %s, %s or %s", c.Protocol, Modbus, DLT645, DLT645v97)
	}
	if c.Speed != 0 && !slices.Contains(speeds, c.Speed) {
		bad("speed %d: want one of %v baud", c.Speed, speeds)
	}
	if c.Parity != "" && c.Parity != "N" && c.Parity != "E" && c.Parity != "O" {
		bad("parity %q: want N, E or O", c.Parity)
	}
	if c.DataBits != 0 && c.DataBits != 7 && c.DataBits != 8 {
		bad("data bits %d: want 7 or 8", c.DataBits)
	}
	if c.StopBits != 0 && c.StopBits != 1 && c.StopBits != 2 {
		bad("stop bits %d: want 1 or 2", c.StopBits)
	}
	if c.Timeout != 0 && (c.Timeout < 10*time.Millisecond || c.Timeout > 10*time.Second) {
		bad("timeout %v: want 10ms..10s", c.Timeout)
	}
	if c.Retries < -1 || c.Retries > 10 {
		bad("retries %d: want -1 (none) .. 10", c.Retries)
	}
	maps := map[string]bool{}
	for i, m := range c.Maps {
		if err := m.Validate(); err != nil {
			bad("maps[%d]: %w", i, err)
		}
		if maps[m.Name] {
			bad("maps[%d]: name %q used twice", i, m.Name)
		}
		maps[m.Name] = true
	}
	if len(c.Meters) == 0 {
		bad("meters: none configured")
	}
	ids, addrs := map[string]int{}, map[string]int{}
	for i, m := range c.Meters {
		at := fmt.Sprintf("meters[%d] (%s)", i, m.ID)
		if !validID(m.ID) {
			bad("%s: id %q: use 1-23 letters, digits, '-', '_' or '.'", at, m.ID)
		} else if j, dup := ids[m.ID]; dup {
			bad("%s: id %q is also meters[%d]", at, m.ID, j)
		}
		ids[m.ID] = i
		key, err := parseAddress(c.Protocol, m.Address)
		if err != nil {
			bad("%s: address %q: %w", at, m.Address, err)
		} else if j, dup := addrs[key]; dup {
			bad("%s: address %q is also meters[%d]", at, m.Address, j)
		} else {
			addrs[key] = i
		}
		switch {
		case c.Protocol == Modbus && m.Map == "":
			bad("%s: map: required for Modbus; shipped maps: %s", at, strings.Join(regmap.Names(), ", "))
		case c.Protocol == Modbus && !maps[m.Map]:
			if _, err := regmap.Lookup(m.Map); err != nil {
				bad("%s: map: %w", at, err)
			}
		case c.Protocol != Modbus && m.Map != "":
			bad("%s: map %q: DL/T 645 meters take no register map", at, m.Map)
		}
	}
	return errors.Join(errs...)
}

// checkURL checks the line URL of a protocol.
func checkURL(protocol, s string) error {
	if protocol != Modbus {
		if s == "" || strings.Contains(s, "://") {
			return fmt.Errorf("url %q: want a serial device path such as /dev/ttyS1", s)
		}
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("url %q: %w", s, err)
	}
	switch u.Scheme {
	case "rtu":
		if u.Host != "" || u.Path == "" {
			return fmt.Errorf("url %q: want rtu:///dev/ttyUSB0 (three slashes, then the device)", s)
		}
	case "tcp", "rtuovertcp":
		if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" || u.Path != "" {
			return fmt.Errorf("url %q: want %s://host:port", s, u.Scheme)
		}
	default:
		return fmt.Errorf("url %q: want rtu:///dev/..., rtuovertcp://host:port or tcp://host:port", s)
	}
	return nil
}

// parseAddress checks a meter address and returns it in a canonical form
// for duplicate checks.
func parseAddress(protocol, s string) (string, error) {
	if protocol != Modbus {
		a, err := dlt645.ParseAddress(s)
		if err != nil || len(s) != 12 || a.IsBroadcast() || a.IsWildcard() {
			return "", errors.New("want the meter's 12-digit DL/T 645 address")
		}
		return a.String(), nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 247 {
		return "", errors.New("want a Modbus unit id 1..247")
	}
	return strconv.Itoa(n), nil
}

func validID(s string) bool {
	if len(s) == 0 || len(s) > 23 { // the terminal's ids are MQTT-SN client id sized
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
