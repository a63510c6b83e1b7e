package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// ErrRadioPayload is returned (wrapped) for a radio payload that cannot be decoded.
var ErrRadioPayload = errors.New("malformed radio payload")

// Radio kind bytes.
const (
	radioReading = 1
	radioFrozen  = 2
	radioEvent   = 3
)

// MarshalRadio encodes a reading, frozen or event record in the compact binary form used on
// the radio (about a third of its JSON size):
//
//	version(1) kind(1) terminal(len8+bytes) seq(uvarint) ts_ms(varint)
//	reading/frozen: [frozen: days since 1970-01-01 (uvarint)] n(1) n × channel
//	  channel: ch(1) flags(1, bit0 estimated) meter(len8+bytes) pulses(uvarint)
//	           energy_wh(varint) constant(uvarint) multiplier(uvarint)
//	event: code(len8+bytes) ch(1) detail(len8+bytes)
func MarshalRadio(r Record) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 32+len(r.Channels)*32)
	b = append(b, Version)
	switch r.Kind {
	case KindReading:
		b = append(b, radioReading)
	case KindFrozen:
		b = append(b, radioFrozen)
	case KindEvent:
		b = append(b, radioEvent)
	default:
		return nil, fmt.Errorf("%w: kind %q has no radio form", ErrRadioPayload, r.Kind)
	}
	b = appendStr(b, string(r.Terminal))
	b = binary.AppendUvarint(b, r.Seq)
	b = binary.AppendVarint(b, r.TimeMS)
	switch r.Kind {
	case KindReading, KindFrozen:
		if r.Kind == KindFrozen {
			d, err := time.Parse(time.DateOnly, r.FreezeDate)
			if err != nil || d.Unix() < 0 {
				return nil, fmt.Errorf("%w: freeze_date %q", ErrRadioPayload, r.FreezeDate)
			}
			b = binary.AppendUvarint(b, uint64(d.Unix()/86400))
		}
		b = append(b, byte(len(r.Channels)))
		for _, c := range r.Channels {
			var flags byte
			if c.Estimated {
				flags |= 1
			}
			b = append(b, c.Channel, flags)
			b = appendStr(b, string(c.Meter))
			b = binary.AppendUvarint(b, c.Pulses)
			b = binary.AppendVarint(b, c.EnergyWh)
			b = binary.AppendUvarint(b, uint64(c.Constant))
			b = binary.AppendUvarint(b, uint64(c.Multiplier))
		}
	case KindEvent:
		if len(r.Event.Code) > 255 || len(r.Event.Detail) > 255 {
			return nil, fmt.Errorf("%w: event code or detail over 255 bytes", ErrRadioPayload)
		}
		b = appendStr(b, r.Event.Code)
		b = append(b, r.Event.Channel)
		b = appendStr(b, r.Event.Detail)
	}
	return b, nil
}

func appendStr(b []byte, s string) []byte {
	return append(append(b, byte(len(s))), s...)
}

// radioReader reads fields and remembers the first error.
type radioReader struct {
	b   []byte
	err error
}

func (r *radioReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrRadioPayload, what)
	}
}

func (r *radioReader) byte1(what string) byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail("short " + what)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *radioReader) str(what string) string {
	n := int(r.byte1(what))
	if r.err != nil || len(r.b) < n {
		r.fail("short " + what)
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *radioReader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad " + what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *radioReader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad " + what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// UnmarshalRadio decodes a payload made by [MarshalRadio] and validates the record.
func UnmarshalRadio(b []byte) (Record, error) {
	rd := &radioReader{b: b}
	if v := rd.byte1("version"); rd.err == nil && v != Version {
		return Record{}, fmt.Errorf("%w %d", ErrVersion, v)
	}
	var r Record
	kind := rd.byte1("kind")
	r.Terminal = TerminalID(rd.str("terminal"))
	r.Seq = rd.uvarint("seq")
	r.TimeMS = rd.varint("ts_ms")
	switch kind {
	case radioReading, radioFrozen:
		r.Kind = KindReading
		if kind == radioFrozen {
			r.Kind = KindFrozen
			days := rd.uvarint("freeze date")
			if days > 1<<20 {
				rd.fail("freeze date out of range")
			}
			r.FreezeDate = time.Unix(int64(days)*86400, 0).UTC().Format(time.DateOnly)
		}
		n := int(rd.byte1("channel count"))
		if n > maxChannelReadings {
			rd.fail("too many channel readings")
		}
		for i := 0; i < n && rd.err == nil; i++ {
			var c ChannelReading
			c.Channel = rd.byte1("channel")
			flags := rd.byte1("flags")
			c.Estimated = flags&1 != 0
			c.Meter = MeterID(rd.str("meter"))
			c.Pulses = rd.uvarint("pulses")
			c.EnergyWh = rd.varint("energy")
			k := rd.uvarint("constant")
			m := rd.uvarint("multiplier")
			if k > 1<<32-1 || m > 1<<32-1 {
				rd.fail("constant or multiplier out of range")
			}
			c.Constant, c.Multiplier = uint32(k), uint32(m)
			r.Channels = append(r.Channels, c)
		}
	case radioEvent:
		r.Kind = KindEvent
		r.Event = &Event{Code: rd.str("event code")}
		r.Event.Channel = rd.byte1("event channel")
		r.Event.Detail = rd.str("event detail")
	default:
		rd.fail(fmt.Sprintf("unknown kind %d", kind))
	}
	if rd.err != nil {
		return Record{}, rd.err
	}
	if len(rd.b) != 0 {
		return Record{}, fmt.Errorf("%w: %d trailing bytes", ErrRadioPayload, len(rd.b))
	}
	if err := r.Validate(); err != nil {
		return Record{}, err
	}
	return r, nil
}
