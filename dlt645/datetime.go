package dlt645

import (
	"fmt"
	"time"
)

// Dates and times are BCD fields sent least significant first, so a date
// YYMMDDWW goes out as WW DD MM YY and a time hhmmss as ss mm hh. Years
// are two digits; this package reads them as 2000..2099.

// Date is the value of [DIDate] (04000101): a calendar date and the
// weekday the meter believes it is (0 = Sunday).
type Date struct {
	Year    int
	Month   time.Month
	Day     int
	Weekday time.Weekday
}

// TimeOfDay is the value of [DITime] (04000102).
type TimeOfDay struct {
	Hour, Minute, Second int
}

// bcdFields decodes BCD bytes to ints, most significant field first, so
// the fields come out in the order YY MM DD hh mm ss.
func bcdFields(b []byte, n int) ([]int, error) {
	if len(b) != n {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrData, len(b), n)
	}
	out := make([]int, n)
	for i := range n {
		v, ok := FromBCD(b[n-1-i])
		if !ok {
			return nil, fmt.Errorf("%w: byte %02x", ErrBCD, b[n-1-i])
		}
		out[i] = v
	}
	return out, nil
}

func checkDate(y, m, d int) error {
	if m < 1 || m > 12 || d < 1 || d > 31 {
		return fmt.Errorf("%w: date %02d-%02d-%02d", ErrRange, y%100, m, d)
	}
	return nil
}

func checkClock(h, mi, s int) error {
	if h > 23 || mi > 59 || s > 59 {
		return fmt.Errorf("%w: time %02d:%02d:%02d", ErrRange, h, mi, s)
	}
	return nil
}

// DecodeDate decodes a YYMMDDWW field (4 bytes, sent WW DD MM YY).
func DecodeDate(b []byte) (Date, error) {
	f, err := bcdFields(b, 4)
	if err != nil {
		return Date{}, err
	}
	if err := checkDate(f[0], f[1], f[2]); err != nil {
		return Date{}, err
	}
	if f[3] > 6 {
		return Date{}, fmt.Errorf("%w: weekday %d", ErrRange, f[3])
	}
	return Date{Year: 2000 + f[0], Month: time.Month(f[1]), Day: f[2], Weekday: time.Weekday(f[3])}, nil
}

// AppendDate appends the YYMMDDWW field of t's date and weekday.
func AppendDate(dst []byte, t time.Time) []byte {
	return append(dst, ToBCD(int(t.Weekday())), ToBCD(t.Day()), ToBCD(int(t.Month())), ToBCD(t.Year()))
}

// DecodeTime decodes an hhmmss field (3 bytes, sent ss mm hh).
func DecodeTime(b []byte) (TimeOfDay, error) {
	f, err := bcdFields(b, 3)
	if err != nil {
		return TimeOfDay{}, err
	}
	if err := checkClock(f[0], f[1], f[2]); err != nil {
		return TimeOfDay{}, err
	}
	return TimeOfDay{Hour: f[0], Minute: f[1], Second: f[2]}, nil
}

// AppendTime appends the hhmmss field of t's clock.
func AppendTime(dst []byte, t time.Time) []byte {
	return append(dst, ToBCD(t.Second()), ToBCD(t.Minute()), ToBCD(t.Hour()))
}

// DecodeFreezeTime decodes a YYMMDDhhmm field (5 bytes, sent mm hh DD MM
// YY), the time of a freeze record, as a time in loc.
func DecodeFreezeTime(b []byte, loc *time.Location) (time.Time, error) {
	f, err := bcdFields(b, 5)
	if err != nil {
		return time.Time{}, err
	}
	if err := checkDate(f[0], f[1], f[2]); err != nil {
		return time.Time{}, err
	}
	if err := checkClock(f[3], f[4], 0); err != nil {
		return time.Time{}, err
	}
	return time.Date(2000+f[0], time.Month(f[1]), f[2], f[3], f[4], 0, 0, loc), nil
}

// AppendFreezeTime appends the YYMMDDhhmm field of t.
func AppendFreezeTime(dst []byte, t time.Time) []byte {
	return append(dst, ToBCD(t.Minute()), ToBCD(t.Hour()), ToBCD(t.Day()), ToBCD(int(t.Month())), ToBCD(t.Year()))
}

// DecodeDateTime decodes a YYMMDDhhmmss field (6 bytes, sent ss mm hh DD
// MM YY), as carried by broadcast time sync and relay control, as a time
// in loc.
func DecodeDateTime(b []byte, loc *time.Location) (time.Time, error) {
	f, err := bcdFields(b, 6)
	if err != nil {
		return time.Time{}, err
	}
	if err := checkDate(f[0], f[1], f[2]); err != nil {
		return time.Time{}, err
	}
	if err := checkClock(f[3], f[4], f[5]); err != nil {
		return time.Time{}, err
	}
	return time.Date(2000+f[0], time.Month(f[1]), f[2], f[3], f[4], f[5], 0, loc), nil
}

// AppendDateTime appends the YYMMDDhhmmss field of t.
func AppendDateTime(dst []byte, t time.Time) []byte {
	return append(AppendTime(dst, t), ToBCD(t.Day()), ToBCD(int(t.Month())), ToBCD(t.Year()))
}
