package dlt645

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Data errors.
var (
	// ErrBCD means a nibble above 9 where a BCD digit was expected.
	ErrBCD = errors.New("dlt645: invalid BCD")
	// ErrRange means a value does not fit its field.
	ErrRange = errors.New("dlt645: value out of range")
	// ErrData means a data field has the wrong length or layout.
	ErrData = errors.New("dlt645: malformed data")
)

// ToBCD returns the BCD byte of v, which must be in 0..99 (it is taken
// modulo 100 otherwise).
func ToBCD(v int) byte {
	v %= 100
	if v < 0 {
		v = -v
	}
	return byte(v/10<<4 | v%10)
}

// FromBCD returns the value of the BCD byte b and whether both nibbles
// are decimal digits.
func FromBCD(b byte) (int, bool) {
	hi, lo := b>>4, b&0x0F
	return int(hi)*10 + int(lo), hi <= 9 && lo <= 9
}

// DecodeBCD decodes b, least significant byte first, as an unsigned BCD
// number. It accepts at most 9 bytes (18 digits).
func DecodeBCD(b []byte) (uint64, error) {
	if len(b) > 9 {
		return 0, fmt.Errorf("%w: %d BCD bytes", ErrRange, len(b))
	}
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		d, ok := FromBCD(b[i])
		if !ok {
			return 0, fmt.Errorf("%w: byte %02x", ErrBCD, b[i])
		}
		v = v*100 + uint64(d)
	}
	return v, nil
}

// AppendBCD appends v as size BCD bytes, least significant byte first.
// It fails with [ErrRange] if v has more than 2×size digits.
func AppendBCD(dst []byte, v uint64, size int) ([]byte, error) {
	for range size {
		dst = append(dst, ToBCD(int(v%100)))
		v /= 100
	}
	if v != 0 {
		return dst[:len(dst)-size], fmt.Errorf("%w: more than %d digits", ErrRange, 2*size)
	}
	return dst, nil
}

// Format is a fixed-point BCD field of the standard, such as XXXXXX.XX kWh.
type Format struct {
	Size   int    // bytes on the wire
	Scale  int    // decimal places: the value is Int × 10^-Scale
	Signed bool   // bit 7 of the most significant byte is the sign
	Unit   string // unit of the scaled value, for example "kWh"
}

// Formats of DL/T 645-2007 (§2.4 of the domain reference) and the 1997
// variants that differ.
var (
	FormatEnergy       = Format{Size: 4, Scale: 2, Unit: "kWh"}                 // XXXXXX.XX kWh
	FormatEnergySigned = Format{Size: 4, Scale: 2, Signed: true, Unit: "kWh"}   // combined active energy
	FormatReactiveEn   = Format{Size: 4, Scale: 2, Unit: "kvarh"}               // XXXXXX.XX kvarh
	FormatReactiveEnS  = Format{Size: 4, Scale: 2, Signed: true, Unit: "kvarh"} // combined reactive energy
	FormatApparentEn   = Format{Size: 4, Scale: 2, Unit: "kVAh"}                // XXXXXX.XX kVAh
	FormatVoltage      = Format{Size: 2, Scale: 1, Unit: "V"}                   // XXX.X V
	FormatCurrent      = Format{Size: 3, Scale: 3, Signed: true, Unit: "A"}     // XXX.XXX A
	FormatPower        = Format{Size: 3, Scale: 4, Signed: true, Unit: "kW"}    // XX.XXXX kW
	FormatReactive     = Format{Size: 3, Scale: 4, Signed: true, Unit: "kvar"}  // XX.XXXX kvar
	FormatApparent     = Format{Size: 3, Scale: 4, Unit: "kVA"}                 // XX.XXXX kVA
	FormatPF           = Format{Size: 2, Scale: 3, Signed: true}                // X.XXX
	FormatFrequency    = Format{Size: 2, Scale: 2, Unit: "Hz"}                  // XX.XX Hz
	FormatTemperature  = Format{Size: 2, Scale: 1, Signed: true, Unit: "°C"}    // XXX.X °C
	FormatBattery      = Format{Size: 2, Scale: 2, Unit: "V"}                   // XX.XX V
	FormatConstant     = Format{Size: 3, Scale: 0, Unit: "imp/kWh"}             // XXXXXX imp/kWh
	FormatMoney        = Format{Size: 4, Scale: 2, Unit: "yuan"}                // XXXXXX.XX 元
	FormatVoltage97    = Format{Size: 2, Scale: 0, Unit: "V"}                   // 1997: XXX V
	FormatCurrent97    = Format{Size: 2, Scale: 2, Unit: "A"}                   // 1997: XX.XX A
)

// Decode decodes one field; b must be exactly f.Size bytes. For signed
// formats bit 7 of the most significant (last) byte is the sign and is
// masked with 0x7F before the digits are read.
func (f Format) Decode(b []byte) (Value, error) {
	if len(b) != f.Size {
		return Value{}, fmt.Errorf("%w: %d bytes, format takes %d", ErrData, len(b), f.Size)
	}
	neg := false
	if f.Signed && b[len(b)-1]&0x80 != 0 {
		neg = true
		b = append([]byte(nil), b...)
		b[len(b)-1] &= 0x7F
	}
	u, err := DecodeBCD(b)
	if err != nil {
		return Value{}, err
	}
	v := int64(u)
	if neg {
		v = -v
	}
	return Value{Int: v, Scale: f.Scale, Unit: f.Unit}, nil
}

// DecodeAll decodes a block of consecutive fields, such as the reply to a
// DI with DI1 = FF (total, then tariffs 1..n).
func (f Format) DecodeAll(b []byte) ([]Value, error) {
	if f.Size == 0 || len(b)%f.Size != 0 {
		return nil, fmt.Errorf("%w: %d bytes is not a multiple of %d", ErrData, len(b), f.Size)
	}
	vs := make([]Value, 0, len(b)/f.Size)
	for i := 0; i < len(b); i += f.Size {
		v, err := f.Decode(b[i : i+f.Size])
		if err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	return vs, nil
}

// Append encodes v (in units of 10^-Scale) as one field. Negative values
// need a signed format; the magnitude must leave bit 7 of the last byte
// free in signed formats.
func (f Format) Append(dst []byte, v int64) ([]byte, error) {
	neg := v < 0
	if neg && !f.Signed {
		return dst, fmt.Errorf("%w: %d is negative in an unsigned format", ErrRange, v)
	}
	u := uint64(v)
	if neg {
		u = uint64(-v)
	}
	out, err := AppendBCD(dst, u, f.Size)
	if err != nil {
		return dst, err
	}
	last := len(out) - 1
	if f.Signed {
		if out[last]&0x80 != 0 {
			return dst, fmt.Errorf("%w: %d does not fit a signed field of %d bytes", ErrRange, v, f.Size)
		}
		if neg {
			out[last] |= 0x80
		}
	}
	return out, nil
}

// Value is an exact reading: Int × 10^-Scale in Unit, for example
// Value{Int: 123456, Scale: 2, Unit: "kWh"} is 1234.56 kWh.
type Value struct {
	Int   int64  // the value in units of 10^-Scale
	Scale int    // decimal places
	Unit  string // unit, empty for ratios such as the power factor
}

// Float64 returns the value as a float, for display and plots. Use Int
// for sums and comparisons.
func (v Value) Float64() float64 {
	return float64(v.Int) / math.Pow10(v.Scale)
}

// String formats v exactly, for example "1234.56 kWh" or "-0.500".
func (v Value) String() string {
	s := strconv.FormatInt(v.Int, 10)
	neg := v.Int < 0
	if neg {
		s = s[1:]
	}
	if v.Scale > 0 {
		for len(s) <= v.Scale {
			s = "0" + s
		}
		s = s[:len(s)-v.Scale] + "." + s[len(s)-v.Scale:]
	}
	if neg {
		s = "-" + s
	}
	if v.Unit != "" {
		s += " " + v.Unit
	}
	return s
}
