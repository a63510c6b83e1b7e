package dlt645

import (
	"fmt"
	"time"
)

// Password is the password field of writes and control commands: the
// level PA and the three password bytes P0 P1 P2 in wire order.
type Password struct {
	Level byte    // PA, for example 0x02
	Code  [3]byte // P0 P1 P2 as sent
}

// Operator is the four-byte operator code C0..C3 in wire order.
type Operator [4]byte

func (p Password) append(dst []byte) []byte {
	return append(append(dst, p.Level), p.Code[:]...)
}

// ReadData returns a 2007 read request (C = 0x11) for di.
func ReadData(addr Address, di DI) Frame {
	return Frame{Addr: addr, Control: CtrlRead, Data: di.Append(nil)}
}

// ReadData1997 returns a 1997 read request (C = 0x01) for di.
func ReadData1997(addr Address, di DI97) Frame {
	return Frame{Addr: addr, Control: Ctrl97Read, Data: di.Append(nil)}
}

// ReadAddress returns a read-address request (C = 0x13) to the wildcard
// address. Only one meter may be on the link.
func ReadAddress() Frame {
	return Frame{Addr: WildcardAddress(), Control: CtrlReadAddress}
}

// BroadcastTime returns a broadcast time sync (C = 0x08) setting meters
// to t's wall clock (ss mm hh DD MM YY). Meters never answer it and accept
// only small corrections.
func BroadcastTime(t time.Time) Frame {
	return Frame{Addr: BroadcastAddress(), Control: CtrlBroadcastTime, Data: AppendDateTime(nil, t)}
}

// WriteData returns a write request (C = 0x14): di, the password, the
// operator code and data (decoded bytes, in wire order).
func WriteData(addr Address, di DI, pw Password, op Operator, data []byte) (Frame, error) {
	if n := 12 + len(data); n > MaxData {
		return Frame{}, fmt.Errorf("write %s: %w: %d data bytes", di, ErrRange, n)
	}
	d := di.Append(make([]byte, 0, 12+len(data)))
	d = pw.append(d)
	d = append(d, op[:]...)
	d = append(d, data...)
	return Frame{Addr: addr, Control: CtrlWrite, Data: d}, nil
}

// FreezePattern is the data of a freeze command in wire order, mm hh DD
// MM, where 0x99 in a field is a wildcard.
type FreezePattern [4]byte

const wild = 0x99

// FreezeNow returns 99999999: freeze at once (instant freeze).
func FreezeNow() FreezePattern { return FreezePattern{wild, wild, wild, wild} }

// FreezeDaily returns 9999hhmm: a daily freeze at hour:minute.
func FreezeDaily(hour, minute int) (FreezePattern, error) {
	if err := checkClock(hour, minute, 0); err != nil {
		return FreezePattern{}, err
	}
	return FreezePattern{ToBCD(minute), ToBCD(hour), wild, wild}, nil
}

// FreezeHourly returns 999999mm: an hourly freeze at the given minute.
func FreezeHourly(minute int) (FreezePattern, error) {
	if err := checkClock(0, minute, 0); err != nil {
		return FreezePattern{}, err
	}
	return FreezePattern{ToBCD(minute), wild, wild, wild}, nil
}

// FreezeMonthly returns 99DDhhmm: a monthly freeze on day at hour:minute.
func FreezeMonthly(day, hour, minute int) (FreezePattern, error) {
	if err := checkDate(0, 1, day); err != nil {
		return FreezePattern{}, err
	}
	if err := checkClock(hour, minute, 0); err != nil {
		return FreezePattern{}, err
	}
	return FreezePattern{ToBCD(minute), ToBCD(hour), ToBCD(day), wild}, nil
}

// IsInstant reports whether p is 99999999.
func (p FreezePattern) IsInstant() bool { return p == FreezeNow() }

// String returns p as written, MMDDhhmm, for example "99990000".
func (p FreezePattern) String() string {
	return fmt.Sprintf("%02X%02X%02X%02X", p[3], p[2], p[1], p[0])
}

// Freeze returns a freeze command (C = 0x16) to addr, which may be the
// broadcast address.
func Freeze(addr Address, p FreezePattern) Frame {
	return Frame{Addr: addr, Control: CtrlFreeze, Data: append([]byte(nil), p[:]...)}
}

// RelayCommand is N1 of a relay control command.
type RelayCommand byte

// Relay commands. The alarm and keep-power codes are unverified.
const (
	RelayTrip         RelayCommand = 0x1A // trip (拉闸)
	RelayCloseAllowed RelayCommand = 0x1B // closing allowed (合闸允许)
	RelayCloseNow     RelayCommand = 0x1C // close now (直接合闸)
	RelayAlarm        RelayCommand = 0x2A // alarm
	RelayAlarmOff     RelayCommand = 0x2B // alarm off
	RelayKeepOn       RelayCommand = 0x3A // keep power on (保电)
	RelayKeepOff      RelayCommand = 0x3B // end keep power on
)

// RelayControl returns a relay control command (C = 0x1C): password,
// operator, N1 = cmd, N2 = 0 and N3..N8 = validUntil (ss mm hh DD MM YY).
func RelayControl(addr Address, pw Password, op Operator, cmd RelayCommand, validUntil time.Time) Frame {
	d := pw.append(make([]byte, 0, 16))
	d = append(d, op[:]...)
	d = append(d, byte(cmd), 0)
	d = AppendDateTime(d, validUntil)
	return Frame{Addr: addr, Control: CtrlRelay, Data: d}
}

// ParseReadReply checks that f answers a 2007 read and returns the DI it
// carries and the value bytes after it. An error reply returns a
// [*MeterError].
func ParseReadReply(f Frame) (DI, []byte, error) {
	if err := f.Err(); err != nil {
		return 0, nil, err
	}
	if !f.IsReply() || f.Function() != CtrlRead {
		return 0, nil, fmt.Errorf("%w: control %02x is not a read reply", ErrData, f.Control)
	}
	di, err := DecodeDI(f.Data)
	if err != nil {
		return 0, nil, err
	}
	return di, f.Data[4:], nil
}

// ParseReadReply97 checks that f answers a 1997 read and returns the DI
// it carries and the value bytes after it. An error reply returns a
// [*MeterError].
func ParseReadReply97(f Frame) (DI97, []byte, error) {
	if err := f.Err(); err != nil {
		return 0, nil, err
	}
	if !f.IsReply() || f.Function() != Ctrl97Read {
		return 0, nil, fmt.Errorf("%w: control %02x is not a 1997 read reply", ErrData, f.Control)
	}
	di, err := DecodeDI97(f.Data)
	if err != nil {
		return 0, nil, err
	}
	return di, f.Data[2:], nil
}
