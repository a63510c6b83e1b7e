package regmap

import (
	"errors"
	"fmt"
	"math"
)

// ErrRange is returned by [Register.Encode] for a value the register
// cannot hold.
var ErrRange = errors.New("value out of the register's range")

// ErrWords is returned by [Register.Decode] for a word count that does
// not match the register.
var ErrWords = errors.New("wrong number of words")

// bits returns the register's raw bits from its words, undoing the word
// order, as the big-endian value ABCD (or AB). w has 1 or 2 words.
func (r Register) bits(w []uint16) uint32 {
	a, b := w[0], uint16(0)
	if len(w) == 2 {
		b = w[1]
	}
	if r.WordOrder == BADC || r.WordOrder == DCBA {
		a, b = a>>8|a<<8, b>>8|b<<8
	}
	switch {
	case len(w) == 1:
		return uint32(a)
	case r.WordOrder == CDAB || r.WordOrder == DCBA:
		return uint32(b)<<16 | uint32(a)
	}
	return uint32(a)<<16 | uint32(b)
}

// words is the inverse of bits.
func (r Register) words(v uint32) []uint16 {
	var w []uint16
	switch {
	case r.Words == 1:
		w = []uint16{uint16(v)}
	case r.WordOrder == CDAB || r.WordOrder == DCBA:
		w = []uint16{uint16(v), uint16(v >> 16)}
	default:
		w = []uint16{uint16(v >> 16), uint16(v)}
	}
	if r.WordOrder == BADC || r.WordOrder == DCBA {
		for i := range w {
			w[i] = w[i]>>8 | w[i]<<8
		}
	}
	return w
}

// Raw returns the number on the wire, before Scale: the float32 or the
// integer the words encode.
func (r Register) Raw(w []uint16) (float64, error) {
	if len(w) != r.Words || r.Type.Words() != r.Words {
		return 0, fmt.Errorf("decode %s: %w: %d, want %d", r.Quantity, ErrWords, len(w), r.Words)
	}
	b := r.bits(w)
	switch r.Type {
	case Float32:
		return float64(math.Float32frombits(b)), nil
	case Uint32, Uint16:
		return float64(b), nil
	case Int16:
		return float64(int16(uint16(b))), nil
	}
	return 0, fmt.Errorf("decode %s: type %q: %w", r.Quantity, r.Type, ErrInvalid)
}

// Decode returns the value the words encode, in the quantity's unit
// (the wire value × Scale).
func (r Register) Decode(w []uint16) (float64, error) {
	v, err := r.Raw(w)
	if err != nil {
		return 0, err
	}
	return v * r.Scale, nil
}

// Encode returns the words that carry v (in the quantity's unit): v ÷
// Scale, rounded to the nearest integer for integer types, as a float32
// for float32.
func (r Register) Encode(v float64) ([]uint16, error) {
	x := v / r.Scale
	var b uint32
	switch r.Type {
	case Float32:
		if math.Abs(x) > math.MaxFloat32 && !math.IsInf(x, 0) {
			return nil, fmt.Errorf("encode %s = %v: %w", r.Quantity, v, ErrRange)
		}
		b = math.Float32bits(float32(x))
	case Uint32, Uint16, Int16:
		x = math.Round(x)
		lo, hi := 0.0, float64(math.MaxUint32)
		switch r.Type {
		case Uint16:
			hi = math.MaxUint16
		case Int16:
			lo, hi = math.MinInt16, math.MaxInt16
		}
		if math.IsNaN(x) || x < lo || x > hi {
			return nil, fmt.Errorf("encode %s = %v: %w %v..%v", r.Quantity, v, ErrRange, lo*r.Scale, hi*r.Scale)
		}
		if r.Type == Int16 {
			b = uint32(uint16(int16(x)))
		} else {
			b = uint32(x)
		}
	default:
		return nil, fmt.Errorf("encode %s: type %q: %w", r.Quantity, r.Type, ErrInvalid)
	}
	return r.words(b), nil
}
