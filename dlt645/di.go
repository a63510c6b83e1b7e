package dlt645

import (
	"errors"
	"fmt"
)

// ErrUnknownDI is returned by [DecodeValue] for a DI whose format this
// package does not know.
var ErrUnknownDI = errors.New("dlt645: unknown data identifier")

// DI is a DL/T 645-2007 data identifier, written DI3 DI2 DI1 DI0 (for
// example 0x00010000, forward active energy) and sent DI0 first.
type DI uint32

// DL/T 645-2007 data identifiers (§2.5 of the domain reference).
const (
	DICombinedActive     DI = 0x00000000 // combined active energy total, XXXXXX.XX kWh, signed
	DIForwardActive      DI = 0x00010000 // forward active energy total, XXXXXX.XX kWh
	DIForwardActiveT1    DI = 0x00010100 // forward active, tariff 1 (sharp)
	DIForwardActiveT2    DI = 0x00010200 // forward active, tariff 2 (peak)
	DIForwardActiveT3    DI = 0x00010300 // forward active, tariff 3 (flat)
	DIForwardActiveT4    DI = 0x00010400 // forward active, tariff 4 (valley)
	DIForwardActiveBlock DI = 0x0001FF00 // forward active total, T1..Tn, n+1 × 4 B
	DIForwardActiveLast  DI = 0x00010001 // forward active total at the last settlement day
	DIReverseActive      DI = 0x00020000 // reverse active energy total, XXXXXX.XX kWh
	DIVoltageA           DI = 0x02010100 // Ua, XXX.X V
	DIVoltageB           DI = 0x02010200 // Ub, XXX.X V
	DIVoltageC           DI = 0x02010300 // Uc, XXX.X V
	DIVoltageBlock       DI = 0x0201FF00 // Ua, Ub, Uc
	DICurrentA           DI = 0x02020100 // Ia, XXX.XXX A, signed
	DICurrentB           DI = 0x02020200 // Ib, XXX.XXX A, signed
	DICurrentC           DI = 0x02020300 // Ic, XXX.XXX A, signed
	DICurrentBlock       DI = 0x0202FF00 // Ia, Ib, Ic
	DIActivePower        DI = 0x02030000 // P total, XX.XXXX kW, signed (0100..0300: phases)
	DIReactivePower      DI = 0x02040000 // Q total, XX.XXXX kvar, signed
	DIApparentPower      DI = 0x02050000 // S total, XX.XXXX kVA
	DIPowerFactor        DI = 0x02060000 // PF total, X.XXX, signed
	DINeutralCurrent     DI = 0x02800001 // neutral current, XXX.XXX A
	DIFrequency          DI = 0x02800002 // grid frequency, XX.XX Hz
	DITemperature        DI = 0x02800007 // meter temperature, XXX.X °C
	DIClockBattery       DI = 0x02800008 // clock battery voltage, XX.XX V
	DIDate               DI = 0x04000101 // date and weekday, YYMMDDWW (WW 0 = Sunday)
	DITime               DI = 0x04000102 // time, hhmmss
	DICommAddress        DI = 0x04000401 // communication address, 6 B
	DIMeterNumber        DI = 0x04000402 // meter number (表号), 6 B
	DICustomerNumber     DI = 0x0400040E // customer number (户号), 6 B
	DIActiveConstant     DI = 0x04000409 // active constant, XXXXXX imp/kWh
	DIReactiveConstant   DI = 0x0400040A // reactive constant, XXXXXX imp/kvarh
	DIRemainingMoney     DI = 0x00900200 // remaining balance (剩余金额), XXXXXX.XX 元
	DIOverdraftMoney     DI = 0x00900201 // overdraft amount, XXXXXX.XX 元
)

// Energy kinds, the DI2 of an energy DI (DI3 = 00).
const (
	EnergyCombinedActive byte = 0x00 // 组合有功, signed
	EnergyForwardActive  byte = 0x01 // 正向有功
	EnergyReverseActive  byte = 0x02 // 反向有功
	EnergyCombinedReact1 byte = 0x03 // combined reactive 1, signed
	EnergyCombinedReact2 byte = 0x04 // combined reactive 2, signed
)

// EnergyDI returns the DI of an energy register: kind (DI2, for example
// [EnergyForwardActive]), tariff (DI1: 0 total, 1..0x3F tariff n, 0xFF
// block) and period (DI0: 0 current, 1..12 the n-th last settlement day).
func EnergyDI(kind, tariff, period byte) DI {
	return DI(kind)<<16 | DI(tariff)<<8 | DI(period)
}

// DailyFreezeDI returns the DI of item of the n-th most recent daily
// freeze (05 06 item n): item 0 is the freeze time YYMMDDhhmm, 1 the
// forward active block, 2 the reverse active block; n is 1..62.
func DailyFreezeDI(item, n byte) DI {
	return 0x05060000 | DI(item)<<8 | DI(n)
}

// Append appends the four DI bytes in wire order, DI0 first.
func (d DI) Append(dst []byte) []byte {
	return append(dst, byte(d), byte(d>>8), byte(d>>16), byte(d>>24))
}

// String returns the DI as eight hex digits, DI3 first, such as "00010000".
func (d DI) String() string { return fmt.Sprintf("%08X", uint32(d)) }

// DecodeDI reads a DI from the first four bytes of b (DI0 first).
func DecodeDI(b []byte) (DI, error) {
	if len(b) < 4 {
		return 0, fmt.Errorf("%w: %d bytes, want a 4-byte DI", ErrData, len(b))
	}
	return DI(b[0]) | DI(b[1])<<8 | DI(b[2])<<16 | DI(b[3])<<24, nil
}

// FormatOf returns the format of one field read with di, for the DIs of
// §2.5 of the domain reference. Block DIs (DI1 = FF) return the format of
// one element; use [Format.DecodeAll]. Dates, times and addresses are not
// numbers: use [DecodeDate], [DecodeTime], [DecodeFreezeTime] and
// [Address].
func FormatOf(di DI) (Format, bool) {
	di3, di2, di1, di0 := byte(di>>24), byte(di>>16), byte(di>>8), byte(di)
	switch di3 {
	case 0x00:
		if di2 == 0x90 {
			switch di & 0xFFFFFF00 {
			case 0x00900100:
				return FormatEnergy, di0 <= 1
			case 0x00900200:
				return FormatMoney, di0 <= 1
			}
			return Format{}, false
		}
		return energyFormat(di2)
	case 0x02:
		switch {
		case di2 == 0x01 && di0 == 0:
			return FormatVoltage, true
		case di2 == 0x02 && di0 == 0:
			return FormatCurrent, true
		case di2 == 0x03 && di0 == 0:
			return FormatPower, true
		case di2 == 0x04 && di0 == 0:
			return FormatReactive, true
		case di2 == 0x05 && di0 == 0:
			return FormatApparent, true
		case di2 == 0x06 && di0 == 0:
			return FormatPF, true
		case di2 == 0x80 && di1 == 0:
			switch di0 {
			case 0x01:
				return Format{Size: 3, Scale: 3, Unit: "A"}, true
			case 0x02:
				return FormatFrequency, true
			case 0x07:
				return FormatTemperature, true
			case 0x08:
				return FormatBattery, true
			}
		}
	case 0x04:
		switch di {
		case DIActiveConstant:
			return FormatConstant, true
		case DIReactiveConstant:
			return Format{Size: 3, Unit: "imp/kvarh"}, true
		case 0x04001001, 0x04001002, 0x04001003, 0x04001004, 0x04001005:
			return FormatMoney, true
		}
	case 0x05:
		// Freeze records: item 01 forward active block, 02 reverse.
		if di1 == 0x01 || di1 == 0x02 {
			return FormatEnergy, true
		}
	}
	return Format{}, false
}

func energyFormat(kind byte) (Format, bool) {
	switch {
	case kind == 0x00:
		return FormatEnergySigned, true
	case kind == 0x01 || kind == 0x02:
		return FormatEnergy, true
	case kind == 0x03 || kind == 0x04:
		return FormatReactiveEnS, true
	case kind >= 0x05 && kind <= 0x08:
		return FormatReactiveEn, true
	case kind == 0x09 || kind == 0x0A:
		return FormatApparentEn, true
	}
	return Format{}, false
}

// DecodeValue decodes the value field (the reply data after the DI) of a
// single-value DI known to [FormatOf].
func DecodeValue(di DI, b []byte) (Value, error) {
	f, ok := FormatOf(di)
	if !ok {
		return Value{}, fmt.Errorf("%w: %s", ErrUnknownDI, di)
	}
	v, err := f.Decode(b)
	if err != nil {
		return Value{}, fmt.Errorf("decode %s: %w", di, err)
	}
	return v, nil
}

// DI97 is a DL/T 645-1997 data identifier, written DI1 DI0 (for example
// 0x9010) and sent DI0 first.
type DI97 uint16

// DL/T 645-1997 data identifiers.
const (
	DI97ForwardActive      DI97 = 0x9010 // forward active total, XXXXXX.XX kWh (2007: 00010000)
	DI97ForwardActiveT1    DI97 = 0x9011 // forward active, tariff 1
	DI97ForwardActiveT2    DI97 = 0x9012 // forward active, tariff 2
	DI97ForwardActiveT3    DI97 = 0x9013 // forward active, tariff 3
	DI97ForwardActiveT4    DI97 = 0x9014 // forward active, tariff 4
	DI97ForwardActiveBlock DI97 = 0x901F // forward active total, T1..T4
	DI97ReverseActive      DI97 = 0x9020 // reverse active total
	DI97ForwardActiveLast  DI97 = 0x9410 // forward active total, last month (2007: 00010001)
	DI97VoltageA           DI97 = 0xB611 // Ua, XXX V (2007: 02010100)
	DI97VoltageB           DI97 = 0xB612 // Ub, XXX V
	DI97VoltageC           DI97 = 0xB613 // Uc, XXX V
	DI97CurrentA           DI97 = 0xB621 // Ia, XX.XX A (2007: 02020100)
	DI97CurrentB           DI97 = 0xB622 // Ib, XX.XX A
	DI97CurrentC           DI97 = 0xB623 // Ic, XX.XX A
	DI97ActivePower        DI97 = 0xB630 // P total, XX.XXXX kW (2007: 02030000)
	DI97Date               DI97 = 0xC010 // date and weekday, YYMMDDWW
	DI97Time               DI97 = 0xC011 // time, hhmmss (2007: 04000102)
	DI97MeterNumber        DI97 = 0xC032 // meter number
)

// Append appends the two DI bytes in wire order, DI0 first.
func (d DI97) Append(dst []byte) []byte { return append(dst, byte(d), byte(d>>8)) }

// String returns the DI as four hex digits, such as "9010".
func (d DI97) String() string { return fmt.Sprintf("%04X", uint16(d)) }

// DecodeDI97 reads a 1997 DI from the first two bytes of b (DI0 first).
func DecodeDI97(b []byte) (DI97, error) {
	if len(b) < 2 {
		return 0, fmt.Errorf("%w: %d bytes, want a 2-byte DI", ErrData, len(b))
	}
	return DI97(b[0]) | DI97(b[1])<<8, nil
}

// FormatOf97 returns the format of one field read with a 1997 DI.
func FormatOf97(di DI97) (Format, bool) {
	switch di & 0xFFF0 {
	case 0x9010, 0x9020, 0x9410, 0x9420:
		return FormatEnergy, true
	case 0xB610:
		return FormatVoltage97, true
	case 0xB620:
		return FormatCurrent97, true
	case 0xB630:
		return FormatPower, true
	case 0xB640:
		return FormatReactive, true
	}
	return Format{}, false
}

// DecodeValue97 decodes the value field of a 1997 DI known to [FormatOf97].
func DecodeValue97(di DI97, b []byte) (Value, error) {
	f, ok := FormatOf97(di)
	if !ok {
		return Value{}, fmt.Errorf("%w: %s", ErrUnknownDI, di)
	}
	v, err := f.Decode(b)
	if err != nil {
		return Value{}, fmt.Errorf("decode %s: %w", di, err)
	}
	return v, nil
}
