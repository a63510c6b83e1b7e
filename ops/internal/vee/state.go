package vee

import (
	"encoding"
	"encoding/binary"
	"errors"
	"math"
)

// The states are read and written for every reading ingested, so the store keeps them in
// this binary form rather than JSON (store.Tx.SetState). Integers are varints (zig-zag when
// signed), floats their 8 IEEE 754 bytes, so a state decodes to exactly what was encoded.
//
//	MeterState:    last_ms last_wh last_advance_ms hist_wh(8) hist_ms(8) spike_ms flags(1 byte:
//	               1 reverse, 2 zero, 4 estimated)
//	TerminalState: max_seq flags(1 byte: 1 drift) n, n × (from to)

// errBadState is returned for a binary state that cannot be decoded.
var errBadState = errors.New("bad binary state")

// Interface guards.
var (
	_ encoding.BinaryAppender    = MeterState{}
	_ encoding.BinaryUnmarshaler = (*MeterState)(nil)
	_ encoding.BinaryAppender    = TerminalState{}
	_ encoding.BinaryUnmarshaler = (*TerminalState)(nil)
)

// AppendBinary appends the state's binary form.
func (s MeterState) AppendBinary(b []byte) ([]byte, error) {
	b = binary.AppendVarint(b, s.LastMS)
	b = binary.AppendVarint(b, s.LastWh)
	b = binary.AppendVarint(b, s.LastAdvanceMS)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.HistWh))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.HistMS))
	b = binary.AppendVarint(b, s.SpikeMS)
	return append(b, flags(s.Reverse, s.Zero, s.Estimated)), nil
}

// UnmarshalBinary decodes the binary form made by AppendBinary.
func (s *MeterState) UnmarshalBinary(b []byte) error {
	d := stateReader{b: b}
	*s = MeterState{LastMS: d.varint(), LastWh: d.varint(), LastAdvanceMS: d.varint(), HistWh: d.float(), HistMS: d.float(), SpikeMS: d.varint()}
	f := d.byte()
	s.Reverse, s.Zero, s.Estimated = f&1 != 0, f&2 != 0, f&4 != 0
	return d.done()
}

// AppendBinary appends the state's binary form.
func (s TerminalState) AppendBinary(b []byte) ([]byte, error) {
	b = binary.AppendUvarint(b, s.MaxSeq)
	b = append(b, flags(s.Drift))
	b = binary.AppendUvarint(b, uint64(len(s.Gaps)))
	for _, g := range s.Gaps {
		b = binary.AppendUvarint(binary.AppendUvarint(b, g.From), g.To)
	}
	return b, nil
}

// UnmarshalBinary decodes the binary form made by AppendBinary.
func (s *TerminalState) UnmarshalBinary(b []byte) error {
	d := stateReader{b: b}
	*s = TerminalState{MaxSeq: d.uvarint(), Drift: d.byte()&1 != 0}
	n := d.uvarint()
	if n > uint64(len(b)) {
		return errBadState
	}
	for range n {
		s.Gaps = append(s.Gaps, SeqRange{From: d.uvarint(), To: d.uvarint()})
	}
	return d.done()
}

func flags(fs ...bool) byte {
	var b byte
	for i, f := range fs {
		if f {
			b |= 1 << i
		}
	}
	return b
}

// stateReader decodes a binary state; the first error sticks.
type stateReader struct {
	b   []byte
	bad bool
}

func (d *stateReader) uvarint() uint64 {
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *stateReader) varint() int64 {
	x, n := binary.Varint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *stateReader) float() float64 {
	if len(d.b) < 8 {
		d.bad = true
		return 0
	}
	x := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return x
}

func (d *stateReader) byte() byte {
	if len(d.b) < 1 {
		d.bad = true
		return 0
	}
	x := d.b[0]
	d.b = d.b[1:]
	return x
}

func (d *stateReader) done() error {
	if d.bad || len(d.b) != 0 {
		return errBadState
	}
	return nil
}
