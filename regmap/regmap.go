package regmap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrInvalid is wrapped by every error [Parse] and [Map.Validate] return.
var ErrInvalid = errors.New("invalid register map")

// Function codes a map may use.
const (
	ReadHolding = 3 // FC03, read holding registers
	ReadInput   = 4 // FC04, read input registers
)

// Address is a 0-based PDU register address. In JSON it is a number or a
// "0x" hex string; it is written as "0x0048".
type Address uint16

// MarshalJSON writes the address as a four-digit hex string.
func (a Address) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, `"0x%04X"`, uint16(a)), nil
}

// UnmarshalJSON accepts 72, "72", "0x48" or "0x0048".
func (a *Address) UnmarshalJSON(b []byte) error {
	s := string(b)
	if uq, err := strconv.Unquote(s); err == nil {
		s = uq
	}
	v, err := strconv.ParseUint(s, 0, 16)
	if err != nil {
		return fmt.Errorf("address %s: want 0..65535 or 0x0000..0xFFFF", b)
	}
	*a = Address(v)
	return nil
}

// Type is how a register's words encode its value.
type Type string

// Register types.
const (
	Float32 Type = "float32" // IEEE 754 single, 2 words
	Uint32  Type = "uint32"  // unsigned, 2 words
	Int16   Type = "int16"   // two's complement, 1 word
	Uint16  Type = "uint16"  // unsigned, 1 word
)

// Words returns how many 16-bit registers t takes, or 0 for an unknown type.
func (t Type) Words() int {
	switch t {
	case Float32, Uint32:
		return 2
	case Int16, Uint16:
		return 1
	}
	return 0
}

// WordOrder is the byte order of a value on the wire, in libmodbus's
// letters: A is the most significant byte. Registers are big-endian on
// Modbus, so ABCD (high word first) is the default; CDAB sends the low
// word first, BADC swaps the bytes in each word, DCBA does both. For
// one-word types only the byte swap counts (BADC and DCBA give BA).
type WordOrder string

// Word orders.
const (
	ABCD WordOrder = "ABCD"
	CDAB WordOrder = "CDAB"
	BADC WordOrder = "BADC"
	DCBA WordOrder = "DCBA"
)

func (o WordOrder) valid() bool {
	switch o {
	case ABCD, CDAB, BADC, DCBA:
		return true
	}
	return false
}

// Register is one quantity of a map.
type Register struct {
	Quantity  string    `json:"quantity"`             // a name of [Quantities], such as "import_kwh"
	Address   Address   `json:"address"`              // first register, 0-based
	Words     int       `json:"words"`                // registers taken; must match Type
	Type      Type      `json:"type"`                 // float32, uint32, int16 or uint16
	WordOrder WordOrder `json:"word_order,omitempty"` // default: the map's
	Scale     float64   `json:"scale,omitempty"`      // wire value × Scale = value in the quantity's unit; 0 or omitted: 1
	Writable  bool      `json:"writable,omitempty"`   // accepts FC16 writes
	Note      string    `json:"note,omitempty"`       // wire unit and access, for people
}

// End returns the address after the register's last word.
func (r Register) End() int { return int(r.Address) + r.Words }

// Span is an inclusive range of register addresses.
type Span struct {
	From Address `json:"from"`
	To   Address `json:"to"`
}

// Map is the register map of one meter model.
type Map struct {
	Name        string     `json:"name"`                  // lookup name, lowercase, such as "sdm120"
	Description string     `json:"description,omitempty"` // model and source, for people
	Function    uint8      `json:"function"`              // ReadHolding (3) or ReadInput (4)
	WordOrder   WordOrder  `json:"word_order,omitempty"`  // default for the registers; default ABCD
	Reserved    []Span     `json:"reserved,omitempty"`    // unmapped words in these spans read as 0 (block reads)
	Registers   []Register `json:"registers"`             // one per quantity
}

// Parse decodes a map from JSON strictly (unknown fields are errors),
// fills in the defaults and validates it.
func Parse(data []byte) (Map, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Map
	if err := dec.Decode(&m); err != nil {
		return Map{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if dec.More() {
		return Map{}, fmt.Errorf("%w: data after the map", ErrInvalid)
	}
	m = m.withDefaults()
	if err := m.Validate(); err != nil {
		return Map{}, err
	}
	return m, nil
}

// withDefaults returns a copy of m with the word order and scales filled
// in. Registers are copied, so the result shares nothing with m.
func (m Map) withDefaults() Map {
	if m.WordOrder == "" {
		m.WordOrder = ABCD
	}
	m.Registers = append([]Register(nil), m.Registers...)
	m.Reserved = append([]Span(nil), m.Reserved...)
	for i := range m.Registers {
		r := &m.Registers[i]
		if r.WordOrder == "" {
			r.WordOrder = m.WordOrder
		}
		if r.Scale == 0 {
			r.Scale = 1
		}
	}
	return m
}

// Validate reports every problem of a map with defaults filled in,
// naming the field, such as `registers[3] (power_l2): type "float33"`.
func (m Map) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !validName(m.Name) {
		bad("name %q: use lowercase letters, digits, '-', '_' or '.'", m.Name)
	}
	if m.Function != ReadHolding && m.Function != ReadInput {
		bad("function %d: want 3 (holding registers) or 4 (input registers)", m.Function)
	}
	if !m.WordOrder.valid() {
		bad("word_order %q: want ABCD, CDAB, BADC or DCBA", m.WordOrder)
	}
	for i, s := range m.Reserved {
		if s.From > s.To {
			bad("reserved[%d]: from 0x%04X is after to 0x%04X", i, s.From, s.To)
		}
	}
	if len(m.Registers) == 0 {
		bad("registers: none")
	}
	seen := map[string]int{}
	for i, r := range m.Registers {
		at := fmt.Sprintf("registers[%d] (%s)", i, r.Quantity)
		if _, ok := Unit(r.Quantity); !ok {
			bad("%s: quantity %q is not known; see regmap.Quantities", at, r.Quantity)
		} else if j, dup := seen[r.Quantity]; dup {
			bad("%s: quantity %q is also registers[%d]", at, r.Quantity, j)
		}
		seen[r.Quantity] = i
		if r.Type.Words() == 0 {
			bad("%s: type %q: want float32, uint32, int16 or uint16", at, r.Type)
		} else if r.Words != r.Type.Words() {
			bad("%s: words %d: type %s takes %d", at, r.Words, r.Type, r.Type.Words())
		}
		if r.Words > 0 && r.End() > 0x10000 {
			bad("%s: address 0x%04X: %d words run past 0xFFFF", at, r.Address, r.Words)
		}
		if r.WordOrder != m.WordOrder && !r.WordOrder.valid() {
			bad("%s: word_order %q: want ABCD, CDAB, BADC or DCBA", at, r.WordOrder)
		}
		if r.Scale == 0 || math.IsNaN(r.Scale) || math.IsInf(r.Scale, 0) {
			bad("%s: scale %v: want a finite non-zero number", at, r.Scale)
		}
		for j, o := range m.Registers[:i] {
			if r.Words > 0 && o.Words > 0 && int(r.Address) < o.End() && int(o.Address) < r.End() {
				bad("%s: address 0x%04X overlaps registers[%d] (%s) at 0x%04X", at, r.Address, j, o.Quantity, o.Address)
			}
		}
	}
	if _, ok := seen[ImportEnergy]; !ok && len(m.Registers) > 0 {
		bad("registers: no %s register; the poller needs import energy", ImportEnergy)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w %q: %w", ErrInvalid, m.Name, errors.Join(errs...))
}

func validName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-_.") == ""
}

// Register returns the register of quantity q.
func (m Map) Register(q string) (Register, bool) {
	for _, r := range m.Registers {
		if r.Quantity == q {
			return r, true
		}
	}
	return Register{}, false
}

// IsReserved reports whether addr lies in one of the map's reserved spans.
func (m Map) IsReserved(addr Address) bool {
	for _, s := range m.Reserved {
		if addr >= s.From && addr <= s.To {
			return true
		}
	}
	return false
}

// DecodeBlock decodes every register that lies wholly inside a block of
// words read from start, such as the DDS238-2's read of 0x0000..0x0011.
// It returns the values by quantity.
func (m Map) DecodeBlock(start Address, words []uint16) (map[string]float64, error) {
	out := map[string]float64{}
	end := int(start) + len(words)
	for _, r := range m.Registers {
		if int(r.Address) < int(start) || r.End() > end {
			continue
		}
		off := int(r.Address) - int(start)
		v, err := r.Decode(words[off : off+r.Words])
		if err != nil {
			return nil, err
		}
		out[r.Quantity] = v
	}
	return out, nil
}
