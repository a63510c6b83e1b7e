package store

import (
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/meterlink/meterlink/wire"
)

// AccountID names a customer account (户号), e.g. "A0001".
type AccountID string

// PaymentMethod is how a customer pays for energy.
type PaymentMethod string

// The payment methods.
const (
	Prepaid  PaymentMethod = "prepaid"  // 预付费: the balance is drawn down, top-ups add to it
	Postpaid PaymentMethod = "postpaid" // 后付费: billed after use; a negative balance is arrears
)

// District is a transformer district (台区).
type District struct {
	ID   wire.DistrictID `json:"id"`
	Name string          `json:"name"`
}

// Channel is one entry of a terminal's channel map: which meter the channel reads and how
// pulses become energy.
type Channel struct {
	Channel    uint8        `json:"ch"`         // 1..16
	Meter      wire.MeterID `json:"meter"`      // the meter on this channel
	Constant   uint32       `json:"constant"`   // impulse constant, imp/kWh; 0 for RS485 meters
	BaseWh     int64        `json:"base_wh"`    // the meter's reading when the channel was set up, Wh
	Multiplier uint32       `json:"multiplier"` // CT × PT ratio, at least 1
}

// Terminal is a collection terminal in a district with its channel map.
type Terminal struct {
	ID       wire.TerminalID `json:"id"`
	District wire.DistrictID `json:"district"`
	Channels []Channel       `json:"channels"`
}

// Meter is a customer's meter, read on one channel of one terminal.
type Meter struct {
	ID       wire.MeterID    `json:"id"`
	Terminal wire.TerminalID `json:"terminal"`
	Channel  uint8           `json:"ch"`
	Account  AccountID       `json:"account,omitempty"` // empty while no customer is assigned
}

// Account is a customer account.
type Account struct {
	ID         AccountID     `json:"id"`
	Owner      string        `json:"owner"`
	Address    string        `json:"address"`
	Payment    PaymentMethod `json:"payment"`
	BalanceFen int64         `json:"balance_fen"` // minor units (分); negative is arrears
	Tariff     string        `json:"tariff"`      // tariff id, e.g. "zj-res-tiered"
}

// Dataset is a set of provisioning entities, applied together.
type Dataset struct {
	Districts []District `json:"districts,omitempty"`
	Terminals []Terminal `json:"terminals,omitempty"`
	Meters    []Meter    `json:"meters,omitempty"`
	Accounts  []Account  `json:"accounts,omitempty"`
	PDAs      []PDA      `json:"pdas,omitempty"`
}

// FieldError names every bad field of a request or entity: field path → what is wrong.
type FieldError struct {
	Fields map[string]string
}

// Error lists the fields and their problems, sorted by field.
func (e *FieldError) Error() string {
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + e.Fields[k]
	}
	return "invalid fields: " + strings.Join(parts, "; ")
}

// fields collects field problems; err returns nil when there are none.
type fields map[string]string

func (f fields) addf(field, format string, args ...any) {
	if _, ok := f[field]; !ok { // keep the first problem of a field
		f[field] = fmt.Sprintf(format, args...)
	}
}

func (f fields) err() error {
	if len(f) == 0 {
		return nil
	}
	return &FieldError{Fields: f}
}

// text checks a free-text field: valid UTF-8, no control characters, at most max bytes.
func (f fields) text(field, s string, required bool, max int) {
	switch {
	case required && strings.TrimSpace(s) == "":
		f.addf(field, "is required")
	case len(s) > max:
		f.addf(field, "is longer than %d bytes", max)
	case !utf8.ValidString(s):
		f.addf(field, "is not valid UTF-8")
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		f.addf(field, "holds control characters")
	}
}

func (f fields) id(field, s string) {
	if !wire.ValidID(s) {
		f.addf(field, "%q is not a valid id (1-64 letters, digits, '-', '_', '.')", s)
	}
}

// Validate names every bad field of the district.
func (d District) Validate() error { f := fields{}; d.validate(f, ""); return f.err() }

func (d District) validate(f fields, at string) {
	f.id(at+"id", string(d.ID))
	f.text(at+"name", d.Name, false, 200)
}

// Validate names every bad field of the terminal and its channel map.
func (t Terminal) Validate() error { f := fields{}; t.validate(f, ""); return f.err() }

func (t Terminal) validate(f fields, at string) {
	f.id(at+"id", string(t.ID))
	f.id(at+"district", string(t.District))
	if len(t.Channels) > 16 {
		f.addf(at+"channels", "%d channels, a terminal has at most 16", len(t.Channels))
	}
	seenCh := map[uint8]bool{}
	seenMeter := map[wire.MeterID]bool{}
	for i, c := range t.Channels {
		p := fmt.Sprintf("%schannels[%d].", at, i)
		if c.Channel < 1 || c.Channel > 16 {
			f.addf(p+"ch", "%d is out of 1..16", c.Channel)
		} else if seenCh[c.Channel] {
			f.addf(p+"ch", "channel %d is mapped twice", c.Channel)
		}
		seenCh[c.Channel] = true
		f.id(p+"meter", string(c.Meter))
		if seenMeter[c.Meter] {
			f.addf(p+"meter", "meter %q is on two channels", c.Meter)
		}
		seenMeter[c.Meter] = true
		switch c.Constant {
		case 0, 100, 200, 400, 500, 800, 1000, 1200, 1600, 2000, 2400, 3200, 4000, 6400, 8000, 10000, 12800, 20000:
		default:
			f.addf(p+"constant", "%d imp/kWh is not a standard impulse constant (e.g. 1600, 3200, 6400; 0 for RS485)", c.Constant)
		}
		if c.BaseWh < 0 {
			f.addf(p+"base_wh", "must not be negative")
		}
		if c.Multiplier < 1 || c.Multiplier > 100000 {
			f.addf(p+"multiplier", "%d is out of 1..100000", c.Multiplier)
		}
	}
}

// Validate names every bad field of the meter.
func (m Meter) Validate() error { f := fields{}; m.validate(f, ""); return f.err() }

func (m Meter) validate(f fields, at string) {
	f.id(at+"id", string(m.ID))
	f.id(at+"terminal", string(m.Terminal))
	if m.Channel < 1 || m.Channel > 16 {
		f.addf(at+"ch", "%d is out of 1..16", m.Channel)
	}
	if m.Account != "" {
		f.id(at+"account", string(m.Account))
	}
}

// Validate names every bad field of the account.
func (a Account) Validate() error { f := fields{}; a.validate(f, ""); return f.err() }

func (a Account) validate(f fields, at string) {
	f.id(at+"id", string(a.ID))
	f.text(at+"owner", a.Owner, true, 200)
	f.text(at+"address", a.Address, false, 500)
	if a.Payment != Prepaid && a.Payment != Postpaid {
		f.addf(at+"payment", "%q: want prepaid or postpaid", a.Payment)
	}
	f.id(at+"tariff", a.Tariff)
}

// Validate names every bad field of every entity in the dataset, with paths such as
// "terminals[2].channels[0].constant". It checks each entity alone; references between
// entities are checked when the dataset is applied.
func (ds Dataset) Validate() error {
	f := fields{}
	for i, d := range ds.Districts {
		d.validate(f, fmt.Sprintf("districts[%d].", i))
	}
	for i, t := range ds.Terminals {
		t.validate(f, fmt.Sprintf("terminals[%d].", i))
	}
	for i, m := range ds.Meters {
		m.validate(f, fmt.Sprintf("meters[%d].", i))
	}
	for i, a := range ds.Accounts {
		a.validate(f, fmt.Sprintf("accounts[%d].", i))
	}
	for i, p := range ds.PDAs {
		p.validate(f, fmt.Sprintf("pdas[%d].", i))
	}
	return f.err()
}
