package dlt645

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestMeterVectors checks that the simulator produces every [V] and [C]
// reply byte for byte.
func TestMeterVectors(t *testing.T) {
	for _, tt := range vectors {
		if tt.meter == nil {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			m := tt.meter()
			req := tt.build()
			want := hx(t, tt.reply)
			want = want[preambleLen(want):]
			reply, ok := m.Handle(req)
			if !ok {
				t.Fatalf("Handle(%v) gave no reply", req)
			}
			if got := reply.Append(nil); !cmp.Equal(want, got) {
				t.Errorf("reply = % X\nwant    % X", got, want)
			}
		})
	}
}

func fixedClock() func() time.Time {
	return func() time.Time { return utc(2024, 5, 6, 7, 8, 9) }
}

func newTestMeter() *Meter {
	return NewMeter(addr161, MeterOptions{Location: time.UTC, Now: fixedClock()})
}

func TestMeterAddressing(t *testing.T) {
	other := MustParseAddress("000000000162")
	pw := Password{Level: 0x02}
	write, _ := WriteData(WildcardAddress(), DITime, pw, Operator{}, []byte{0, 0, 8})
	tests := []struct {
		name string
		req  Frame
		want *Frame // nil: no reply
	}{
		{"own address read", ReadData(addr161, DIForwardActive), &Frame{addr161, 0x91, []byte{0, 0, 1, 0, 0, 0, 0, 0}}},
		{"other address read", ReadData(other, DIForwardActive), nil},
		{"wildcard read", ReadData(WildcardAddress(), DIForwardActive), &Frame{addr161, 0x91, []byte{0, 0, 1, 0, 0, 0, 0, 0}}},
		{"short address read", ReadData(MustParseAddress("AAAAAAAAA161"), DIForwardActive), &Frame{addr161, 0x91, []byte{0, 0, 1, 0, 0, 0, 0, 0}}},
		{"broadcast read", ReadData(BroadcastAddress(), DIForwardActive), nil},
		{"wildcard read address", ReadAddress(), &Frame{addr161, 0x93, addr161[:]}},
		{"read address to other", Frame{Addr: other, Control: CtrlReadAddress}, nil},
		{"wildcard write ignored", write, nil},
		{"broadcast time", BroadcastTime(utc(2024, 5, 6, 7, 8, 0)), nil},
		{"broadcast freeze", Freeze(BroadcastAddress(), FreezeNow()), nil},
		{"reply ignored", Frame{Addr: addr161, Control: 0x91, Data: []byte{0, 0, 1, 0}}, nil},
		{"short read DI", Frame{Addr: addr161, Control: CtrlRead, Data: []byte{0, 0}}, &Frame{addr161, 0xD1, []byte{byte(CodeOther)}}},
		{"unsupported function", Frame{Addr: addr161, Control: CtrlClearMeter}, &Frame{addr161, 0xDA, []byte{byte(CodeOther)}}},
		{"1997 unknown DI", ReadData1997(addr161, 0xC032), &Frame{addr161, 0xC1, []byte{byte(CodeNoData)}}},
		{"1997 current", ReadData1997(addr161, DI97CurrentA), &Frame{addr161, 0x81, []byte{0x21, 0xB6, 0x00, 0x00}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := newTestMeter().Handle(tt.req)
			if ok != (tt.want != nil) {
				t.Fatalf("Handle(%v) replied %v (%v), want reply %v", tt.req, ok, got, tt.want != nil)
			}
			if tt.want != nil {
				if diff := cmp.Diff(*tt.want, got); diff != "" {
					t.Errorf("Handle(%v) (-want +got):\n%s", tt.req, diff)
				}
			}
		})
	}
}

func handleErr(t *testing.T, m *Meter, req Frame) error {
	t.Helper()
	reply, ok := m.Handle(req)
	if !ok {
		t.Fatalf("Handle(%v) gave no reply", req)
	}
	return reply.Err()
}

func TestMeterWrite(t *testing.T) {
	good := Password{Level: 0x02}
	bad := Password{Level: 0x02, Code: [3]byte{1, 2, 3}}
	tests := []struct {
		name    string
		di      DI
		pw      Password
		data    []byte
		wantErr error
		want    time.Time
	}{
		{"time", DITime, good, []byte{0x00, 0x30, 0x12}, nil, utc(2024, 5, 6, 12, 30, 0)},
		{"date", DIDate, good, []byte{0x00, 0x02, 0x06, 0x24}, nil, utc(2024, 6, 2, 7, 8, 9)},
		{"bad password", DITime, bad, []byte{0x00, 0x30, 0x12}, ErrUnauthorized, utc(2024, 5, 6, 7, 8, 9)},
		{"bad time", DITime, good, []byte{0x00, 0x60, 0x12}, &MeterError{addr161, 0xD4, CodeOther}, utc(2024, 5, 6, 7, 8, 9)},
		{"read-only DI", DIForwardActive, good, []byte{0, 0, 0, 0}, ErrNoData, utc(2024, 5, 6, 7, 8, 9)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestMeter()
			req, err := WriteData(addr161, tt.di, tt.pw, Operator{}, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			err = handleErr(t, m, req)
			if want, ok := tt.wantErr.(*MeterError); ok {
				if diff := cmp.Diff(want, err); diff != "" {
					t.Errorf("error (-want +got):\n%s", diff)
				}
			} else if !errors.Is(err, tt.wantErr) {
				t.Errorf("error = %v, want %v", err, tt.wantErr)
			}
			if got := m.Clock(); !got.Equal(tt.want) {
				t.Errorf("Clock() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMeterBroadcastTime(t *testing.T) {
	m := NewMeter(addr161, MeterOptions{Location: time.UTC, Now: fixedClock(), SyncWindow: 10 * time.Minute})
	steps := []struct {
		name string
		send time.Time
		want time.Time
	}{
		{"outside window ignored", utc(2024, 5, 6, 7, 20, 0), utc(2024, 5, 6, 7, 8, 9)},
		{"small correction applied", utc(2024, 5, 6, 7, 10, 0), utc(2024, 5, 6, 7, 10, 0)},
		{"second sync the same day ignored", utc(2024, 5, 6, 7, 11, 0), utc(2024, 5, 6, 7, 10, 0)},
	}
	for _, s := range steps {
		if _, ok := m.Handle(BroadcastTime(s.send)); ok {
			t.Fatalf("%s: broadcast answered", s.name)
		}
		if got := m.Clock(); !got.Equal(s.want) {
			t.Errorf("%s: Clock() = %v, want %v", s.name, got, s.want)
		}
	}
}

func TestMeterRelay(t *testing.T) {
	pw := Password{Level: 0x02}
	tests := []struct {
		name    string
		pw      Password
		until   time.Time
		wantErr error
		want    RelayCommand
	}{
		{"trip", pw, utc(2024, 5, 6, 8, 0, 0), nil, RelayTrip},
		{"expired", pw, utc(2024, 5, 6, 7, 0, 0), &MeterError{addr161, 0xDC, CodeOther}, 0},
		{"bad password", Password{Level: 4}, utc(2024, 5, 6, 8, 0, 0), ErrUnauthorized, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestMeter()
			err := handleErr(t, m, RelayControl(addr161, tt.pw, Operator{}, RelayTrip, tt.until))
			if want, ok := tt.wantErr.(*MeterError); ok {
				if diff := cmp.Diff(want, err); diff != "" {
					t.Errorf("error (-want +got):\n%s", diff)
				}
			} else if !errors.Is(err, tt.wantErr) {
				t.Errorf("error = %v, want %v", err, tt.wantErr)
			}
			if got := m.Relay(); got != tt.want {
				t.Errorf("Relay() = %02x, want %02x", got, tt.want)
			}
		})
	}
}

func TestMeterFreeze(t *testing.T) {
	m := newTestMeter()
	m.SetEnergy(4200)
	m.Handle(Freeze(BroadcastAddress(), FreezeNow()))
	reply, _ := m.Handle(ReadData(addr161, 0x05010101))
	vs, err := FormatEnergy.DecodeAll(reply.Data[4:])
	if err != nil || len(vs) != 5 || vs[0].Int != 4200 {
		t.Errorf("instant freeze block = %v, %v, want total 4200", vs, err)
	}
	p, _ := FreezeDaily(23, 30)
	if err := handleErr(t, m, Freeze(addr161, p)); err != nil {
		t.Fatal(err)
	}
	if got := m.DailyFreezeTime(); got != p {
		t.Errorf("DailyFreezeTime() = %s, want %s", got, p)
	}
	if err := handleErr(t, m, ReadData(addr161, DailyFreezeDI(0, 1))); !errors.Is(err, ErrNoData) {
		t.Errorf("read of a missing daily record = %v, want ErrNoData", err)
	}
	for d := range 70 {
		m.RecordDailyFreeze(utc(2024, 1, 1, 0, 0, 0).AddDate(0, 0, d))
	}
	recs := m.DailyFreezes()
	if len(recs) != 62 || !recs[0].Time.Equal(utc(2024, 3, 10, 0, 0, 0)) {
		t.Errorf("kept %d records, newest %v; want 62, 2024-03-10", len(recs), recs[0].Time)
	}
}

func TestMeterConcurrentEnergy(t *testing.T) {
	m := newTestMeter()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				m.AddEnergy(1, 1)
				if _, ok := m.Handle(ReadData(addr161, DIForwardActiveBlock)); !ok {
					t.Error("no reply")
				}
			}
		})
	}
	wg.Wait()
	if got := m.Energy(); got != 400 {
		t.Errorf("Energy() = %d, want 400", got)
	}
}
