// Package wire holds the payloads that cross a boundary between MeterLink's parts: plain
// structs with JSON tags, named ids, a version field on every envelope, Validate methods and
// the compact binary encoding used on the radio. It does no I/O.
package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Version is the wire format carried in every envelope's V field.
//
// History (dated, newest last):
//   - 1 (2026-11-24): first release.
const Version = 1

// Named ids. Each is one topic level, so it uses only letters, digits, '-', '_' and '.'.
type (
	TerminalID string // collection terminal, also its radio node name, e.g. "T0001"
	MeterID    string // meter serial or DL/T 645 address, e.g. "000000000161"
	DistrictID string // transformer district (台区), e.g. "D01"
	HandheldID string // handheld, e.g. "H01"
	PDAID      string // PDA security unit, e.g. "P01"
)

// Kind is what a record reports.
type Kind string

// The record kinds.
const (
	KindReading Kind = "reading" // the channels' readings at a moment
	KindFrozen  Kind = "frozen"  // the daily frozen readings of a date
	KindEvent   Kind = "event"   // a terminal event
	KindCmdAck  Kind = "cmd_ack" // a terminal's answer to a command
)

// ValidationError lists every field of a payload that is wrong.
type ValidationError struct {
	Problems []string // "field: what is wrong", one per problem
}

func (e *ValidationError) Error() string {
	return "invalid payload: " + strings.Join(e.Problems, "; ")
}

// validation collects problems; err returns nil when there are none.
type validation []string

func (v *validation) addf(format string, args ...any) { *v = append(*v, fmt.Sprintf(format, args...)) }

func (v validation) err() error {
	if len(v) == 0 {
		return nil
	}
	return &ValidationError{Problems: v}
}

// ValidID reports whether s is usable as an id: 1–64 characters of letters, digits, '-', '_'
// and '.' (it must fit one topic level).
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
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

// maxChannelReadings bounds a record: 15 pulse channels and up to 32 meters on the RS485 bus.
const maxChannelReadings = 15 + 32

// ChannelReading is one channel of a terminal at the moment of a record.
type ChannelReading struct {
	Channel    uint8   `json:"ch"`         // 1..16
	Meter      MeterID `json:"meter"`      // the meter on this channel
	Pulses     uint64  `json:"pulses"`     // the channel's pulse counter (pulse channels)
	EnergyWh   int64   `json:"energy_wh"`  // reading in Wh: base + (pulses − pulses at base) × 1000 / constant
	Constant   uint32  `json:"constant"`   // impulse constant, imp/kWh (0 for RS485 meters)
	Multiplier uint32  `json:"multiplier"` // CT × PT ratio; billed energy = Δreading × multiplier
	Estimated  bool    `json:"estimated,omitempty"`
}

// KWh returns the reading in kWh.
func (c ChannelReading) KWh() float64 { return float64(c.EnergyWh) / 1000 }

// Event is something a terminal noticed.
type Event struct {
	Code    string `json:"code"`             // "power_loss", "power_restore", "clock_set", "reading_backwards", "meter_silent", "counter_wrap"
	Channel uint8  `json:"ch,omitempty"`     // the channel concerned, if any
	Detail  string `json:"detail,omitempty"` // human-readable detail
}

// Record is one thing a terminal made: a reading, a frozen day, an event or a command answer.
// (Terminal, Seq) names it end to end: Seq is a per-terminal counter kept across restarts.
type Record struct {
	Terminal   TerminalID       `json:"terminal"`
	Seq        uint64           `json:"seq"`
	Kind       Kind             `json:"kind"`
	TimeMS     int64            `json:"ts_ms"`                 // terminal clock, Unix milliseconds
	Channels   []ChannelReading `json:"channels,omitempty"`    // reading, frozen
	FreezeDate string           `json:"freeze_date,omitempty"` // frozen: YYYY-MM-DD
	Event      *Event           `json:"event,omitempty"`
	CmdAck     *CommandAck      `json:"cmd_ack,omitempty"`
}

// Key returns the record's end-to-end name.
func (r Record) Key() RecordKey { return RecordKey{Terminal: r.Terminal, Seq: r.Seq} }

// Validate reports every problem of the record.
func (r Record) Validate() error {
	var v validation
	r.validate(&v, "")
	return v.err()
}

func (r Record) validate(v *validation, at string) {
	if !ValidID(string(r.Terminal)) {
		v.addf("%sterminal: %q is not a valid id", at, r.Terminal)
	}
	if r.Seq == 0 {
		v.addf("%sseq: must be at least 1", at)
	}
	if r.TimeMS <= 0 {
		v.addf("%sts_ms: must be positive", at)
	}
	switch r.Kind {
	case KindReading, KindFrozen:
		if len(r.Channels) == 0 || len(r.Channels) > maxChannelReadings {
			v.addf("%schannels: %d channel readings, want 1..%d", at, len(r.Channels), maxChannelReadings)
		}
		seen := map[string]bool{}
		for i, c := range r.Channels {
			// Channel 16 doubles as the RS485 port, where several meters share the channel.
			key := fmt.Sprint(c.Channel)
			if c.Channel == 16 {
				key += "/" + string(c.Meter)
			}
			if c.Channel < 1 || c.Channel > 16 || seen[key] {
				v.addf("%schannels[%d].ch: %d is out of 1..16 or repeated", at, i, c.Channel)
			}
			seen[key] = true
			if !ValidID(string(c.Meter)) {
				v.addf("%schannels[%d].meter: %q is not a valid id", at, i, c.Meter)
			}
		}
		if r.Kind == KindFrozen && len(r.FreezeDate) != len("2006-01-02") {
			v.addf("%sfreeze_date: %q is not YYYY-MM-DD", at, r.FreezeDate)
		}
	case KindEvent:
		if r.Event == nil || r.Event.Code == "" {
			v.addf("%sevent: missing code", at)
		}
	case KindCmdAck:
		if r.CmdAck == nil || r.CmdAck.ID == "" {
			v.addf("%scmd_ack: missing id", at)
		}
	default:
		v.addf("%skind: unknown %q", at, r.Kind)
	}
}

// RecordKey names a record end to end.
type RecordKey struct {
	Terminal TerminalID `json:"terminal"`
	Seq      uint64     `json:"seq"`
}

func (k RecordKey) String() string { return fmt.Sprintf("%s/%d", k.Terminal, k.Seq) }

// Batch carries records from the handheld's outbox upstream.
type Batch struct {
	V        int        `json:"v"`
	ID       string     `json:"id"` // unique per batch, chosen by the handheld
	Handheld HandheldID `json:"handheld"`
	Records  []Record   `json:"records"`
}

// MaxBatchRecords bounds a batch so that one message stays well under the brokers' size limits.
const MaxBatchRecords = 500

// Validate reports every problem of the batch and its records.
func (b Batch) Validate() error {
	var v validation
	if b.V != Version {
		v.addf("v: %d, want %d", b.V, Version)
	}
	if b.ID == "" || len(b.ID) > 128 {
		v.addf("id: must be 1..128 characters")
	}
	if !ValidID(string(b.Handheld)) {
		v.addf("handheld: %q is not a valid id", b.Handheld)
	}
	if len(b.Records) == 0 || len(b.Records) > MaxBatchRecords {
		v.addf("records: %d records, want 1..%d", len(b.Records), MaxBatchRecords)
	}
	for i, r := range b.Records {
		r.validate(&v, fmt.Sprintf("records[%d].", i))
	}
	return v.err()
}

// Ack is ops' end-to-end acknowledgement: the records it holds now (stored, or already held).
type Ack struct {
	V        int         `json:"v"`
	ID       string      `json:"id"`                 // the batch acknowledged
	Handheld HandheldID  `json:"handheld,omitempty"` // the batch's handheld, so the PDA can relay the ack
	Records  []RecordKey `json:"records"`
	Rejected []Rejection `json:"rejected,omitempty"`
}

// Rejection is a record ops will never accept; the sender drops it and reports it.
type Rejection struct {
	Key    RecordKey `json:"key"`
	Reason string    `json:"reason"`
}

// ErrVersion is returned when a payload carries a wire version this build does not read.
var ErrVersion = errors.New("unsupported wire version")

// ReadingEvent is what ops publishes for dashboards when it has stored a reading.
type ReadingEvent struct {
	V        int              `json:"v"`
	District DistrictID       `json:"district"`
	Terminal TerminalID       `json:"terminal"`
	Seq      uint64           `json:"seq"`
	TimeMS   int64            `json:"ts_ms"`
	Channels []ChannelReading `json:"channels"`
}

// Status is a part's retained liveness message.
type Status struct {
	V      int    `json:"v"`
	Part   string `json:"part"`
	State  string `json:"state"` // "up" or "down"
	TimeMS int64  `json:"ts_ms"`
}

// Command is an order for one terminal.
type Command struct {
	V         int             `json:"v"`
	ID        string          `json:"id"`
	Terminal  TerminalID      `json:"terminal"`
	Op        string          `json:"op"`                   // "collect", "read_clock", "set_clock", "set_freeze", "set_channel", "live", "frozen"
	ExpiresMS int64           `json:"expires_ms,omitempty"` // Unix ms after which the terminal refuses it
	Args      json.RawMessage `json:"args,omitempty"`
}

// AckCode is the result of a command.
type AckCode int

// The command result codes.
const (
	AckOK          AckCode = 0
	AckInvalid     AckCode = 1 // malformed or out-of-range arguments; nothing changed
	AckUnsupported AckCode = 2 // the terminal does not know the operation
	AckFailed      AckCode = 3 // valid, but carrying it out failed
	AckExpired     AckCode = 4 // arrived after its expiry; nothing changed
)

// CommandAck is a terminal's answer to a command.
type CommandAck struct {
	V        int             `json:"v"`
	ID       string          `json:"id"`
	Terminal TerminalID      `json:"terminal"`
	Code     AckCode         `json:"code"`
	Detail   string          `json:"detail,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
}
