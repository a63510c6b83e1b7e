package dlt645

import (
	"errors"
	"fmt"
)

// ErrAddress is returned by [ParseAddress] for text that is not a meter address.
var ErrAddress = errors.New("dlt645: invalid address")

// Address is a meter address as sent on the wire: six BCD bytes, A0 first,
// where A0 holds the lowest two digits. Meter 000000000161 is
// Address{0x61, 0x01, 0, 0, 0, 0}.
//
// A byte of 0xAA is a wildcard ("AA" in the text form); 99…99 is the
// broadcast address.
type Address [6]byte

// BroadcastAddress returns 999999999999, the address of broadcast time
// sync (0x08) and freeze (0x16) commands. Meters never answer it.
func BroadcastAddress() Address {
	return Address{0x99, 0x99, 0x99, 0x99, 0x99, 0x99}
}

// WildcardAddress returns AAAAAAAAAAAA, used to reach the only meter on a
// link whose address is unknown (read address 0x13, reads 0x11).
func WildcardAddress() Address {
	return Address{0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA}
}

// ParseAddress parses the 12-character printed form of an address, most
// significant digits first, for example "000000000161". The characters are
// decimal digits or 'A' (either case) for the nibble 0xA, so short
// addresses such as "AAAAAAAAA123" and the wildcard are accepted.
func ParseAddress(s string) (Address, error) {
	var a Address
	if len(s) != 2*len(a) {
		return a, fmt.Errorf("%w: %q has %d characters, want 12", ErrAddress, s, len(s))
	}
	for i := range len(s) {
		var n byte
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			n = c - '0'
		case c == 'A' || c == 'a':
			n = 0xA
		default:
			return Address{}, fmt.Errorf("%w: %q has %q at %d", ErrAddress, s, c, i)
		}
		// Character 0 is the high nibble of A5, the last byte on the wire.
		b := len(a) - 1 - i/2
		if i%2 == 0 {
			a[b] |= n << 4
		} else {
			a[b] |= n
		}
	}
	return a, nil
}

// MustParseAddress is like [ParseAddress] but panics on error. It is meant
// for constants in tests and tables.
func MustParseAddress(s string) Address {
	a, err := ParseAddress(s)
	if err != nil {
		panic(err)
	}
	return a
}

// String returns the printed form, most significant digits first, with
// nibbles above 9 in upper-case hexadecimal ("AAAAAAAAAAAA").
func (a Address) String() string {
	const hex = "0123456789ABCDEF"
	var buf [12]byte
	for i := range len(a) {
		b := a[len(a)-1-i]
		buf[2*i] = hex[b>>4]
		buf[2*i+1] = hex[b&0x0F]
	}
	return string(buf[:])
}

// IsBroadcast reports whether a is 999999999999.
func (a Address) IsBroadcast() bool { return a == BroadcastAddress() }

// IsWildcard reports whether a is AAAAAAAAAAAA.
func (a Address) IsWildcard() bool { return a == WildcardAddress() }

// Matches reports whether a request sent to a reaches the meter with
// address meter. Nibbles of a that are 0xA match any digit, which covers
// both the full wildcard and short addressing (缩位寻址, "AAAAAAAAA123").
// The broadcast address matches every meter.
func (a Address) Matches(meter Address) bool {
	if a.IsBroadcast() {
		return true
	}
	for i := range a {
		if a[i]>>4 != 0xA && a[i]>>4 != meter[i]>>4 {
			return false
		}
		if a[i]&0x0F != 0xA && a[i]&0x0F != meter[i]&0x0F {
			return false
		}
	}
	return true
}
