package dlt645

import (
	"errors"
	"fmt"
	"strings"
)

// Control code bits (the C byte). D7 is the direction, D6 marks an error
// reply, D5 says that follow-up frames exist, and D4..D0 is the function.
const (
	CtrlReply    byte = 0x80 // D7: slave → master
	CtrlError    byte = 0x40 // D6: the slave reports an error; the data is an error byte
	CtrlMore     byte = 0x20 // D5: more data follows in follow-up frames
	CtrlFuncMask byte = 0x1F // D4..D0: the function code
)

// DL/T 645-2007 function codes of requests (master → meter). The reply is
// the code | [CtrlReply], an error reply is the code | [CtrlReply] | [CtrlError].
const (
	CtrlBroadcastTime  byte = 0x08 // broadcast time sync, ss mm hh DD MM YY; never answered
	CtrlRead           byte = 0x11 // read data: DI [+ N [+ mm hh DD MM YY]]; reply 91 or B1
	CtrlReadFollow     byte = 0x12 // read follow-up frame: DI + SEQ (layout unverified)
	CtrlReadAddress    byte = 0x13 // read address, sent to AA…AA; reply 93 with 6 address bytes
	CtrlWrite          byte = 0x14 // write data: DI + PA P0..P2 + C0..C3 + data; reply 94, L=0
	CtrlWriteAddress   byte = 0x15 // write address, sent to AA…AA: new address (6 B)
	CtrlFreeze         byte = 0x16 // freeze: mm hh DD MM with 99 wildcards; reply 96, L=0
	CtrlChangeBaud     byte = 0x17 // change baud rate: 1-byte bitmap; reply echoes it
	CtrlChangePassword byte = 0x18 // change password: DI + old + new password
	CtrlClearDemand    byte = 0x19 // clear maximum demand: password + operator
	CtrlClearMeter     byte = 0x1A // clear meter (电表清零): password (level 02) + operator
	CtrlClearEvents    byte = 0x1B // clear events: password + operator + DI (FFFFFFFF = all)
	CtrlRelay          byte = 0x1C // relay control: password + operator + N1..N8; reply 9C, L=0
)

// DL/T 645-1997 function codes of requests. The 1997 DI has two bytes.
const (
	Ctrl97Read           byte = 0x01 // read data: DI0 DI1; reply 81, error C1
	Ctrl97ReadFollow     byte = 0x02 // read follow-up data
	Ctrl97Reread         byte = 0x03 // re-read the last reply
	Ctrl97Write          byte = 0x04 // write data
	Ctrl97BroadcastTime  byte = 0x08 // broadcast time sync
	Ctrl97WriteAddress   byte = 0x0A // write address
	Ctrl97ChangeBaud     byte = 0x0C // change baud rate
	Ctrl97ChangePassword byte = 0x0F // change password
	Ctrl97ClearDemand    byte = 0x10 // clear maximum demand
)

// IsReply reports whether f travels from a meter to a master (D7 set).
func (f Frame) IsReply() bool { return f.Control&CtrlReply != 0 }

// IsError reports whether f is an error reply (D7 and D6 set).
func (f Frame) IsError() bool { return f.Control&(CtrlReply|CtrlError) == CtrlReply|CtrlError }

// MoreFollows reports whether f is a reply with follow-up frames (D5 set).
func (f Frame) MoreFollows() bool { return f.IsReply() && f.Control&CtrlMore != 0 }

// Function returns the function code of f, without the reply, error and
// follow-up bits.
func (f Frame) Function() byte { return f.Control & CtrlFuncMask }

// Reply returns the normal reply to request f from the meter at addr,
// carrying data (decoded bytes; for reads this includes the DI).
func (f Frame) Reply(addr Address, data []byte) Frame {
	return Frame{Addr: addr, Control: f.Function() | CtrlReply, Data: data}
}

// ErrorReply returns the error reply to request f from the meter at addr.
func (f Frame) ErrorReply(addr Address, code ErrorCode) Frame {
	return Frame{Addr: addr, Control: f.Function() | CtrlReply | CtrlError, Data: []byte{byte(code)}}
}

// Err returns a [*MeterError] if f is an error reply, and nil otherwise.
func (f Frame) Err() error {
	if !f.IsError() {
		return nil
	}
	e := &MeterError{Addr: f.Addr, Control: f.Control}
	if len(f.Data) > 0 {
		e.Code = ErrorCode(f.Data[0])
	}
	return e
}

// ErrorCode is the error byte of an error reply; each bit names a reason.
// The 1997 error byte uses the same low bits for the common cases.
type ErrorCode byte

// Error byte bits.
const (
	CodeOther          ErrorCode = 1 << 0 // other error
	CodeNoData         ErrorCode = 1 << 1 // no requested data: unknown or unsupported DI
	CodeUnauthorized   ErrorCode = 1 << 2 // wrong password or not authorised
	CodeBaudFixed      ErrorCode = 1 << 3 // the baud rate cannot be changed
	CodeTooManyZones   ErrorCode = 1 << 4 // too many annual time zones
	CodeTooManyPeriods ErrorCode = 1 << 5 // too many daily periods
	CodeTooManyTariffs ErrorCode = 1 << 6 // too many tariffs
)

var codeNames = []struct {
	bit  ErrorCode
	name string
}{
	{CodeOther, "other error"},
	{CodeNoData, "no requested data"},
	{CodeUnauthorized, "wrong password or unauthorised"},
	{CodeBaudFixed, "baud rate not changeable"},
	{CodeTooManyZones, "too many annual time zones"},
	{CodeTooManyPeriods, "too many daily periods"},
	{CodeTooManyTariffs, "too many tariffs"},
	{1 << 7, "reserved bit 7"},
}

// Has reports whether every bit of bits is set in c.
func (c ErrorCode) Has(bits ErrorCode) bool { return c&bits == bits }

// String lists the names of the set bits, for example "no requested data".
func (c ErrorCode) String() string {
	if c == 0 {
		return "no error bits"
	}
	var names []string
	for _, n := range codeNames {
		if c&n.bit != 0 {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, ", ")
}

// ErrNoData matches (with [errors.Is]) a [*MeterError] whose code has
// [CodeNoData]: the meter does not know the DI.
var ErrNoData = errors.New("dlt645: meter has no requested data")

// ErrUnauthorized matches (with [errors.Is]) a [*MeterError] whose code has
// [CodeUnauthorized]: wrong password or insufficient level.
var ErrUnauthorized = errors.New("dlt645: meter refused the password")

// MeterError is an error reply from a meter.
type MeterError struct {
	Addr    Address   // the replying meter
	Control byte      // the reply's control code, for example 0xD1
	Code    ErrorCode // the error byte
}

// Error describes the reply, for example
// "dlt645: meter 000000000161 replied d1: no requested data".
func (e *MeterError) Error() string {
	return fmt.Sprintf("dlt645: meter %s replied %02x: %s", e.Addr, e.Control, e.Code)
}

// Is lets errors.Is(err, [ErrNoData]) and errors.Is(err, [ErrUnauthorized])
// test the named bits.
func (e *MeterError) Is(target error) bool {
	switch target {
	case ErrNoData:
		return e.Code.Has(CodeNoData)
	case ErrUnauthorized:
		return e.Code.Has(CodeUnauthorized)
	}
	return false
}
