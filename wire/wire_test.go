package wire

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func sampleReading() Record {
	return Record{
		Terminal: "T0001", Seq: 42, Kind: KindReading, TimeMS: 1_764_000_000_000,
		Channels: []ChannelReading{
			{Channel: 1, Meter: "M0001", Pulses: 3200, EnergyWh: 1_001_000, Constant: 3200, Multiplier: 1},
			{Channel: 16, Meter: "000000000161", Pulses: 0, EnergyWh: 2_260, Multiplier: 10, Estimated: true},
		},
	}
}

func TestRadioRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		r    Record
	}{
		{"reading", sampleReading()},
		{"frozen", func() Record {
			r := sampleReading()
			r.Kind, r.FreezeDate = KindFrozen, "2026-11-23"
			return r
		}()},
		{"event", Record{Terminal: "T0001", Seq: 7, Kind: KindEvent, TimeMS: 5, Event: &Event{Code: "power_loss", Channel: 3, Detail: "supply lost"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := MarshalRadio(tt.r)
			if err != nil {
				t.Fatal(err)
			}
			got, err := UnmarshalRadio(b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.r, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
			j, _ := json.Marshal(tt.r)
			if len(b) >= len(j) {
				t.Errorf("radio form %d bytes is not smaller than JSON %d bytes", len(b), len(j))
			}
		})
	}
}

func TestUnmarshalRadioRejectsDamage(t *testing.T) {
	good, err := MarshalRadio(sampleReading())
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(good); n++ {
		if _, err := UnmarshalRadio(good[:n]); err == nil {
			t.Errorf("truncated to %d bytes: accepted", n)
		}
	}
	if _, err := UnmarshalRadio(append(append([]byte{}, good...), 0)); !errors.Is(err, ErrRadioPayload) {
		t.Errorf("trailing byte: err = %v, want ErrRadioPayload", err)
	}
	bad := append([]byte{}, good...)
	bad[0] = 9
	if _, err := UnmarshalRadio(bad); !errors.Is(err, ErrVersion) {
		t.Errorf("version 9: err = %v, want ErrVersion", err)
	}
}

func TestValidateNamesEveryProblem(t *testing.T) {
	b := Batch{V: 1, ID: "", Handheld: "H 1", Records: []Record{{Terminal: "", Seq: 0, Kind: "x"}}}
	err := b.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate = %v, want *ValidationError", err)
	}
	if len(ve.Problems) < 5 {
		t.Errorf("problems = %q, want id, handheld, terminal, seq, ts_ms and kind named", ve.Problems)
	}
	if err := (Batch{V: 1, ID: "b1", Handheld: "H01", Records: []Record{sampleReading()}}).Validate(); err != nil {
		t.Errorf("valid batch: %v", err)
	}
}

func FuzzRadio(f *testing.F) {
	for _, r := range []Record{sampleReading(), {Terminal: "T1", Seq: 1, Kind: KindEvent, TimeMS: 1, Event: &Event{Code: "clock_set"}}} {
		b, _ := MarshalRadio(r)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalRadio(b)
		if err != nil {
			return
		}
		b2, err := MarshalRadio(r)
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		r2, err := UnmarshalRadio(b2)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if diff := cmp.Diff(r, r2); diff != "" {
			t.Fatalf("decode→encode→decode changed the record (-first +second):\n%s", diff)
		}
	})
}
