package billing

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Price is an energy price in units of 0.0001 元 per kWh, so 0.538 元/kWh is 5380. Four
// decimals cover every published residential price (some provinces quote 0.5283).
type Price int64

// ParsePrice parses a price in 元/kWh such as "0.538" (at most four decimals).
func ParsePrice(s string) (Price, error) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || len(frac) > 4 || strings.HasPrefix(whole, "-") || strings.HasPrefix(whole, "+") {
		return 0, fmt.Errorf("price %q: want 元/kWh with at most 4 decimals, e.g. 0.538", s)
	}
	w, err := strconv.ParseInt(whole, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("price %q: %w", s, errors.Unwrap(err))
	}
	f := int64(0)
	if frac != "" {
		f, err = strconv.ParseInt((frac + "000")[:4], 10, 32)
		if err != nil || frac[0] == '-' || frac[0] == '+' {
			return 0, fmt.Errorf("price %q: bad decimals", s)
		}
	}
	return Price(w*10000 + f), nil
}

// MustPrice is [ParsePrice] for the preset tables; it panics on a bad literal.
func MustPrice(s string) Price {
	p, err := ParsePrice(s)
	if err != nil {
		panic(err)
	}
	return p
}

// String formats the price in 元/kWh with four decimals.
func (p Price) String() string { return fmt.Sprintf("%d.%04d", p/10000, p%10000) }

// MarshalText writes the price as "0.5380" so that JSON carries an exact decimal.
func (p Price) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads a price written by MarshalText or ParsePrice.
func (p *Price) UnmarshalText(b []byte) error {
	v, err := ParsePrice(string(b))
	*p = v
	return err
}

// Amounts are computed exactly in "units": price × energy in Wh, i.e. 0.0001 元/kWh × 1 Wh
// = 1e-7 元 = 1e-5 fen. int64 holds 9.2e13 fen of units, far beyond any account.
const unitsPerFen = 100_000

// units is the exact cost of wh at price p.
func units(p Price, wh int64) int64 { return int64(p) * wh }

// RoundFen converts exact units to fen, rounding half away from zero (四舍五入): the rule
// for every amount on a bill. A bill's total is the sum of its rounded line amounts, so the
// lines always add up to the total the customer sees.
func RoundFen(u int64) int64 {
	if u < 0 {
		return -RoundFen(-u)
	}
	return (u + unitsPerFen/2) / unitsPerFen
}

// FormatFen formats an amount in fen as 元 with two decimals, e.g. 11460 → "114.60".
func FormatFen(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}
