package dlt645

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestBCD(t *testing.T) {
	tests := []struct {
		name string
		v    uint64
		size int
		wire []byte
	}{
		{"123456.78 kWh", 12345678, 4, []byte{0x78, 0x56, 0x34, 0x12}},
		{"zero", 0, 2, []byte{0, 0}},
		{"max 4 bytes", 99999999, 4, []byte{0x99, 0x99, 0x99, 0x99}},
		{"one byte", 7, 1, []byte{0x07}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendBCD(nil, tt.v, tt.size)
			if err != nil || !cmp.Equal(tt.wire, got) {
				t.Errorf("AppendBCD(%d, %d) = % X, %v, want % X", tt.v, tt.size, got, err, tt.wire)
			}
			v, err := DecodeBCD(tt.wire)
			if err != nil || v != tt.v {
				t.Errorf("DecodeBCD(% X) = %d, %v, want %d", tt.wire, v, err, tt.v)
			}
		})
	}
	if _, err := AppendBCD([]byte{1}, 100, 1); !errors.Is(err, ErrRange) {
		t.Errorf("AppendBCD(100, 1) error = %v, want ErrRange", err)
	}
	if _, err := DecodeBCD([]byte{0x1A}); !errors.Is(err, ErrBCD) {
		t.Errorf("DecodeBCD(1A) error = %v, want ErrBCD", err)
	}
	if got := ToBCD(59); got != 0x59 {
		t.Errorf("ToBCD(59) = %02X", got)
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		name   string
		format Format
		wire   []byte
		want   Value
		str    string
	}{
		{"energy", FormatEnergy, []byte{0x56, 0x34, 0x12, 0x00}, Value{123456, 2, "kWh"}, "1234.56 kWh"},
		{"unsigned energy keeps bit 7", FormatEnergy, []byte{0x99, 0x99, 0x99, 0x99}, Value{99999999, 2, "kWh"}, "999999.99 kWh"},
		{"signed energy negative", FormatEnergySigned, []byte{0x34, 0x12, 0x00, 0x80}, Value{-1234, 2, "kWh"}, "-12.34 kWh"},
		// Masking with 0x0F, as one decoder does, would read 051234.56.
		{"sign masked with 7F", FormatEnergySigned, []byte{0x56, 0x34, 0x12, 0xC5}, Value{-45123456, 2, "kWh"}, "-451234.56 kWh"},
		{"voltage", FormatVoltage, []byte{0x48, 0x22}, Value{2248, 1, "V"}, "224.8 V"},
		{"current negative", FormatCurrent, []byte{0x38, 0x02, 0x80}, Value{-238, 3, "A"}, "-0.238 A"},
		{"power", FormatPower, []byte{0x45, 0x23, 0x01}, Value{12345, 4, "kW"}, "1.2345 kW"},
		{"power factor", FormatPF, []byte{0x00, 0x80 | 0x05}, Value{-500, 3, ""}, "-0.500"},
		{"frequency", FormatFrequency, []byte{0x03, 0x50}, Value{5003, 2, "Hz"}, "50.03 Hz"},
		{"constant", FormatConstant, []byte{0x00, 0x12, 0x00}, Value{1200, 0, "imp/kWh"}, "1200 imp/kWh"},
		{"money", FormatMoney, []byte{0x50, 0x88, 0x00, 0x00}, Value{8850, 2, "yuan"}, "88.50 yuan"},
		{"1997 voltage", FormatVoltage97, []byte{0x00, 0x01}, Value{100, 0, "V"}, "100 V"},
		{"1997 current", FormatCurrent97, []byte{0x05, 0x00}, Value{5, 2, "A"}, "0.05 A"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.format.Decode(tt.wire)
			if err != nil {
				t.Fatalf("Decode(% X): %v", tt.wire, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decode(% X) (-want +got):\n%s", tt.wire, diff)
			}
			if s := got.String(); s != tt.str {
				t.Errorf("String() = %q, want %q", s, tt.str)
			}
			enc, err := tt.format.Append(nil, tt.want.Int)
			if err != nil || !cmp.Equal(tt.wire, enc) {
				t.Errorf("Append(%d) = % X, %v, want % X", tt.want.Int, enc, err, tt.wire)
			}
		})
	}
}

func TestFormatErrors(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		wantErr error
	}{
		{"decode wrong size", second(FormatEnergy.Decode([]byte{1, 2, 3})), ErrData},
		{"decode bad digit", second(FormatEnergy.Decode([]byte{0x0A, 0, 0, 0})), ErrBCD},
		{"append negative unsigned", second(FormatEnergy.Append(nil, -1)), ErrRange},
		{"append too big", second(FormatEnergy.Append(nil, 100000000)), ErrRange},
		{"append into sign bit", second(FormatEnergySigned.Append(nil, 80000000)), ErrRange},
		{"block not multiple", second(FormatEnergy.DecodeAll(make([]byte, 7))), ErrData},
		{"unknown DI", second(DecodeValue(0x04000C01, []byte{0})), ErrUnknownDI},
		{"unknown DI97", second(DecodeValue97(0xC011, []byte{0})), ErrUnknownDI},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, tt.wantErr) {
				t.Errorf("error = %v, want %v", tt.err, tt.wantErr)
			}
		})
	}
}

func second[T any](_ T, err error) error { return err }

func TestValueFloat(t *testing.T) {
	if got := (Value{Int: -1234, Scale: 2}).Float64(); got != -12.34 {
		t.Errorf("Float64() = %v, want -12.34", got)
	}
	if got := (Value{Int: 5, Scale: 3}).String(); got != "0.005" {
		t.Errorf("String() = %q, want 0.005", got)
	}
}

func TestFormatOf(t *testing.T) {
	tests := []struct {
		di   DI
		want Format
		ok   bool
	}{
		{DICombinedActive, FormatEnergySigned, true},
		{DIForwardActive, FormatEnergy, true},
		{DIForwardActiveT4, FormatEnergy, true},
		{DIForwardActiveBlock, FormatEnergy, true},
		{DIForwardActiveLast, FormatEnergy, true},
		{EnergyDI(EnergyForwardActive, 2, 12), FormatEnergy, true},
		{DIVoltageC, FormatVoltage, true},
		{DICurrentB, FormatCurrent, true},
		{0x02030200, FormatPower, true},
		{DIReactivePower, FormatReactive, true},
		{DIApparentPower, FormatApparent, true},
		{DIPowerFactor, FormatPF, true},
		{DIFrequency, FormatFrequency, true},
		{DITemperature, FormatTemperature, true},
		{DIClockBattery, FormatBattery, true},
		{DIActiveConstant, FormatConstant, true},
		{DIRemainingMoney, FormatMoney, true},
		{0x04001001, FormatMoney, true},
		{DailyFreezeDI(1, 3), FormatEnergy, true},
		{DIDate, Format{}, false},
		{0x0B000000, Format{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.di.String(), func(t *testing.T) {
			got, ok := FormatOf(tt.di)
			if ok != tt.ok || got != tt.want {
				t.Errorf("FormatOf(%s) = %+v, %v, want %+v, %v", tt.di, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestDateTime(t *testing.T) {
	ts := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC) // Monday
	t.Run("date", func(t *testing.T) {
		b := AppendDate(nil, ts)
		if want := []byte{0x01, 0x06, 0x05, 0x24}; !cmp.Equal(want, b) {
			t.Errorf("AppendDate = % X, want % X", b, want)
		}
		d, err := DecodeDate(b)
		if want := (Date{2024, time.May, 6, time.Monday}); err != nil || d != want {
			t.Errorf("DecodeDate = %+v, %v, want %+v", d, err, want)
		}
		sunday := AppendDate(nil, ts.AddDate(0, 0, 6))
		if sunday[0] != 0 {
			t.Errorf("Sunday weekday byte = %02X, want 00", sunday[0])
		}
	})
	t.Run("time", func(t *testing.T) {
		b := AppendTime(nil, ts)
		if want := []byte{0x09, 0x08, 0x07}; !cmp.Equal(want, b) {
			t.Errorf("AppendTime = % X, want % X", b, want)
		}
	})
	t.Run("freeze time", func(t *testing.T) {
		b := AppendFreezeTime(nil, ts)
		got, err := DecodeFreezeTime(b, time.UTC)
		if want := ts.Truncate(time.Minute); err != nil || !got.Equal(want) {
			t.Errorf("DecodeFreezeTime(% X) = %v, %v, want %v", b, got, err, want)
		}
	})
	t.Run("date time", func(t *testing.T) {
		b := AppendDateTime(nil, ts)
		got, err := DecodeDateTime(b, time.UTC)
		if err != nil || !got.Equal(ts) {
			t.Errorf("DecodeDateTime(% X) = %v, %v, want %v", b, got, err, ts)
		}
	})
	bad := []struct {
		name string
		err  error
	}{
		{"month 13", second(DecodeDate([]byte{0x01, 0x06, 0x13, 0x24}))},
		{"weekday 7", second(DecodeDate([]byte{0x07, 0x06, 0x05, 0x24}))},
		{"hour 24", second(DecodeTime([]byte{0x00, 0x00, 0x24}))},
		{"minute 60", second(DecodeFreezeTime([]byte{0x60, 0, 0x01, 0x01, 0x24}, time.UTC))},
		{"day 0", second(DecodeDateTime([]byte{0, 0, 0, 0x00, 0x01, 0x24}, time.UTC))},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, ErrRange) {
				t.Errorf("error = %v, want ErrRange", tt.err)
			}
		})
	}
}

func TestFreezePatterns(t *testing.T) {
	mustP := func(p FreezePattern, err error) FreezePattern {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		got  FreezePattern
		want string
	}{
		{"instant", FreezeNow(), "99999999"},
		{"daily 00:00", mustP(FreezeDaily(0, 0)), "99990000"},
		{"daily 23:45", mustP(FreezeDaily(23, 45)), "99992345"},
		{"hourly :30", mustP(FreezeHourly(30)), "99999930"},
		{"monthly 1st 00:00", mustP(FreezeMonthly(1, 0, 0)), "99010000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s := tt.got.String(); s != tt.want {
				t.Errorf("pattern = %s, want %s", s, tt.want)
			}
		})
	}
	if _, err := FreezeDaily(24, 0); !errors.Is(err, ErrRange) {
		t.Errorf("FreezeDaily(24, 0) error = %v, want ErrRange", err)
	}
	if _, err := FreezeMonthly(32, 0, 0); !errors.Is(err, ErrRange) {
		t.Errorf("FreezeMonthly(32) error = %v, want ErrRange", err)
	}
}

func TestWriteData(t *testing.T) {
	pw := Password{Level: 0x02, Code: [3]byte{0x12, 0x34, 0x56}}
	op := Operator{1, 2, 3, 4}
	f, err := WriteData(addr161, DITime, pw, op, []byte{0x09, 0x08, 0x07})
	if err != nil {
		t.Fatal(err)
	}
	want := Frame{Addr: addr161, Control: 0x14, Data: []byte{
		0x02, 0x01, 0x00, 0x04, 0x02, 0x12, 0x34, 0x56, 1, 2, 3, 4, 0x09, 0x08, 0x07,
	}}
	if diff := cmp.Diff(want, f); diff != "" {
		t.Errorf("WriteData (-want +got):\n%s", diff)
	}
	if _, err := WriteData(addr161, DITime, pw, op, make([]byte, 244)); !errors.Is(err, ErrRange) {
		t.Errorf("WriteData(244 bytes) error = %v, want ErrRange", err)
	}
}
