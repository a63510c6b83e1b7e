package store

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/meterlink/meterlink/wire"
)

// Held records (r:) and meter readings (rm:, l:) are the rows ingest writes, 34 per
// 16-channel record, so they are kept in a compact binary form rather than JSON: encoding
// and decoding JSON was most of Apply's time (docs/performance.md, optimisation log
// 2026-11-24). A row starts with its format byte; JSON rows (from a store written before
// the binary form) start with '{' and are still read. JSON stays at the API edge.
//
// Format 1, integers as (zig-zag for signed) varints, strings as a varint length and bytes:
//
//	Reading: 0x01 ts_ms district terminal seq kind freeze_date ch(1 byte) meter pulses
//	         energy_wh constant multiplier flags(1 byte: 1 estimated) reader
//	Meter:   0x01 id terminal ch(1 byte) account
//	Terminal: 0x01 id district n+1 (0: no channel list), n × (ch(1 byte) meter constant base_wh
//	         multiplier)
//	Held:    0x01 received_ms district terminal seq kind ts_ms freeze_date n, n × (ch(1 byte)
//	         meter pulses energy_wh constant multiplier flags(1 byte: 1 estimated)),
//	         event (JSON, empty if none) cmd_ack (JSON, empty if none)
const rowV1 = 0x01

// errCorrupt is wrapped by the errors of a binary row that cannot be decoded.
var errCorrupt = errors.New("corrupt row")

func appendUvarint(b []byte, x uint64) []byte {
	for x >= 0x80 {
		b = append(b, byte(x)|0x80)
		x >>= 7
	}
	return append(b, byte(x))
}

func appendVarint(b []byte, x int64) []byte {
	return appendUvarint(b, uint64(x<<1)^uint64(x>>63))
}

func appendString(b []byte, s string) []byte {
	return append(appendUvarint(b, uint64(len(s))), s...)
}

func appendFlag(b []byte, f bool) []byte {
	if f {
		return append(b, 1)
	}
	return append(b, 0)
}

// rowReader decodes a binary row. Strings it returns share the row's memory (no copy); the
// first error sticks and later reads return zero values.
type rowReader struct {
	s   string
	i   int
	bad bool
}

func (r *rowReader) uvarint() uint64 {
	var x uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if r.i >= len(r.s) {
			break
		}
		c := r.s[r.i]
		r.i++
		if c < 0x80 {
			return x | uint64(c)<<shift
		}
		x |= uint64(c&0x7f) << shift
	}
	r.bad = true
	return 0
}

func (r *rowReader) varint() int64 {
	u := r.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func (r *rowReader) byte() byte {
	if r.i >= len(r.s) {
		r.bad = true
		return 0
	}
	c := r.s[r.i]
	r.i++
	return c
}

func (r *rowReader) uint32() uint32 {
	u := r.uvarint()
	if u > 1<<32-1 {
		r.bad = true
	}
	return uint32(u)
}

func (r *rowReader) string() string {
	n := r.uvarint()
	if r.bad || n > uint64(len(r.s)-r.i) {
		r.bad = true
		return ""
	}
	s := r.s[r.i : r.i+int(n)]
	r.i += int(n)
	return s
}

// done reports an error if the row was malformed or has bytes left over.
func (r *rowReader) done() error {
	if r.bad || r.i != len(r.s) {
		return errCorrupt
	}
	return nil
}

// appendReading appends the binary row of a reading.
func appendReading(b []byte, rd *Reading) []byte {
	b = append(b, rowV1)
	b = appendVarint(b, rd.TimeMS)
	b = appendString(b, string(rd.District))
	b = appendString(b, string(rd.Terminal))
	b = appendUvarint(b, rd.Seq)
	b = appendString(b, string(rd.Kind))
	b = appendString(b, rd.FreezeDate)
	b = append(b, rd.Channel)
	b = appendString(b, string(rd.Meter))
	b = appendUvarint(b, rd.Pulses)
	b = appendVarint(b, rd.EnergyWh)
	b = appendUvarint(b, uint64(rd.Constant))
	b = appendUvarint(b, uint64(rd.Multiplier))
	b = appendFlag(b, rd.Estimated)
	return appendString(b, rd.Reader)
}

// parseReading decodes a reading row, binary or JSON.
func parseReading(v string, rd *Reading) error {
	if len(v) == 0 || v[0] != rowV1 {
		return json.Unmarshal([]byte(v), rd)
	}
	r := rowReader{s: v, i: 1}
	*rd = Reading{
		TimeMS: r.varint(), District: wire.DistrictID(r.string()), Terminal: wire.TerminalID(r.string()),
		Seq: r.uvarint(), Kind: wire.Kind(r.string()), FreezeDate: r.string(), Channel: r.byte(),
		Meter: wire.MeterID(r.string()), Pulses: r.uvarint(), EnergyWh: r.varint(), Constant: r.uint32(),
		Multiplier: r.uint32(), Estimated: r.byte()&1 != 0, Reader: r.string(),
	}
	return r.done()
}

// appendHeld appends the binary row of a held record.
func appendHeld(b []byte, h *Held) ([]byte, error) {
	rec := &h.Record
	b = append(b, rowV1)
	b = appendVarint(b, h.ReceivedMS)
	b = appendString(b, string(h.District))
	b = appendString(b, string(rec.Terminal))
	b = appendUvarint(b, rec.Seq)
	b = appendString(b, string(rec.Kind))
	b = appendVarint(b, rec.TimeMS)
	b = appendString(b, rec.FreezeDate)
	b = appendUvarint(b, uint64(len(rec.Channels)))
	for i := range rec.Channels {
		c := &rec.Channels[i]
		b = append(b, c.Channel)
		b = appendString(b, string(c.Meter))
		b = appendUvarint(b, c.Pulses)
		b = appendVarint(b, c.EnergyWh)
		b = appendUvarint(b, uint64(c.Constant))
		b = appendUvarint(b, uint64(c.Multiplier))
		b = appendFlag(b, c.Estimated)
	}
	var err error
	if b, err = appendJSON(b, rec.Event, rec.Event != nil); err != nil {
		return nil, err
	}
	return appendJSON(b, rec.CmdAck, rec.CmdAck != nil)
}

// appendJSON appends v as a length-prefixed JSON string, or an empty one when !present:
// events and command answers are rare and free-form, so they keep their JSON.
func appendJSON(b []byte, v any, present bool) ([]byte, error) {
	if !present {
		return append(b, 0), nil
	}
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(appendUvarint(b, uint64(len(j))), j...), nil
}

// parseHeld decodes a held record row, binary or JSON.
func parseHeld(v string, h *Held) error {
	if len(v) == 0 || v[0] != rowV1 {
		return json.Unmarshal([]byte(v), h)
	}
	r := rowReader{s: v, i: 1}
	*h = Held{ReceivedMS: r.varint(), District: wire.DistrictID(r.string())}
	rec := &h.Record
	rec.Terminal, rec.Seq, rec.Kind = wire.TerminalID(r.string()), r.uvarint(), wire.Kind(r.string())
	rec.TimeMS, rec.FreezeDate = r.varint(), r.string()
	n := r.uvarint()
	if n > uint64(len(v)) { // each channel takes several bytes
		return errCorrupt
	}
	if n > 0 {
		rec.Channels = make([]wire.ChannelReading, n)
	}
	for i := range rec.Channels {
		rec.Channels[i] = wire.ChannelReading{Channel: r.byte(), Meter: wire.MeterID(r.string()), Pulses: r.uvarint(),
			EnergyWh: r.varint(), Constant: r.uint32(), Multiplier: r.uint32(), Estimated: r.byte()&1 != 0}
	}
	if j := r.string(); j != "" {
		rec.Event = new(wire.Event)
		if err := json.Unmarshal([]byte(j), rec.Event); err != nil {
			return err
		}
	}
	if j := r.string(); j != "" {
		rec.CmdAck = new(wire.CommandAck)
		if err := json.Unmarshal([]byte(j), rec.CmdAck); err != nil {
			return err
		}
	}
	return r.done()
}

// appendMeter appends the binary row of a meter: ingest's charging looks up the meter of
// every reading for its account.
func appendMeter(b []byte, m *Meter) []byte {
	b = append(b, rowV1)
	b = appendString(b, string(m.ID))
	b = appendString(b, string(m.Terminal))
	b = append(b, m.Channel)
	return appendString(b, string(m.Account))
}

// parseMeter decodes a meter row, binary or JSON.
func parseMeter(v string, m *Meter) error {
	if len(v) == 0 || v[0] != rowV1 {
		return json.Unmarshal([]byte(v), m)
	}
	r := rowReader{s: v, i: 1}
	*m = Meter{ID: wire.MeterID(r.string()), Terminal: wire.TerminalID(r.string()), Channel: r.byte(), Account: AccountID(r.string())}
	return r.done()
}

// appendTerminal appends the binary row of a terminal: Apply looks up the terminal (for its
// district) of every record.
func appendTerminal(b []byte, t *Terminal) []byte {
	b = append(b, rowV1)
	b = appendString(b, string(t.ID))
	b = appendString(b, string(t.District))
	n := uint64(len(t.Channels)) + 1
	if t.Channels == nil {
		n = 0 // JSON tells null from [], so the row does too
	}
	b = appendUvarint(b, n)
	for _, c := range t.Channels {
		b = append(b, c.Channel)
		b = appendString(b, string(c.Meter))
		b = appendUvarint(b, uint64(c.Constant))
		b = appendVarint(b, c.BaseWh)
		b = appendUvarint(b, uint64(c.Multiplier))
	}
	return b
}

// parseTerminal decodes a terminal row, binary or JSON.
func parseTerminal(v string, t *Terminal) error {
	if len(v) == 0 || v[0] != rowV1 {
		return json.Unmarshal([]byte(v), t)
	}
	r := rowReader{s: v, i: 1}
	*t = Terminal{ID: wire.TerminalID(r.string()), District: wire.DistrictID(r.string())}
	n := r.uvarint()
	if n > uint64(len(v)) {
		return errCorrupt
	}
	if n > 0 {
		t.Channels = make([]Channel, n-1)
	}
	for i := range t.Channels {
		t.Channels[i] = Channel{Channel: r.byte(), Meter: wire.MeterID(r.string()), Constant: r.uint32(), BaseWh: r.varint(), Multiplier: r.uint32()}
	}
	return r.done()
}

// appendNum appends n zero-padded to 20 digits, as [num] does, so that keys sort numerically.
func appendNum(b []byte, n uint64) []byte {
	var d [20]byte
	for i := len(d) - 1; i >= 0; i-- {
		d[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, d[:]...)
}

// appendChannel appends a channel number as two digits (%02d).
func appendChannel(b []byte, ch uint8) []byte {
	if ch < 10 {
		b = append(b, '0')
	}
	return strconv.AppendUint(b, uint64(ch), 10)
}
