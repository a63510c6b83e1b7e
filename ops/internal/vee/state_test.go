package vee

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meterlink/meterlink/ops/internal/store"
)

func TestStateBinaryRoundTrip(t *testing.T) {
	for _, want := range []MeterState{{}, {LastMS: 1_795_000_000_000, LastWh: -3, LastAdvanceMS: 7, HistWh: 1.0 / 3, HistMS: 86_400_000.5,
		Reverse: true, Zero: true, SpikeMS: 9, Estimated: true}} {
		b, _ := want.AppendBinary(nil)
		var got MeterState
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("meter state (-want +got):\n%s", diff)
		}
		if err := got.UnmarshalBinary(b[:len(b)-1]); err == nil {
			t.Error("UnmarshalBinary of a short state: nil error, want one")
		}
	}
	for _, want := range []TerminalState{{}, {MaxSeq: 1 << 50, Drift: true, Gaps: []SeqRange{{From: 2, To: 3}, {From: 9, To: 1 << 40}}}} {
		b, _ := want.AppendBinary(nil)
		var got TerminalState
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("terminal state (-want +got):\n%s", diff)
		}
	}
}

// TestStateJSONStillRead: a state stored as JSON (before the binary form) is read, and
// written back in the binary form.
func TestStateJSONStillRead(t *testing.T) {
	db, err := store.Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want := MeterState{LastMS: 5, LastWh: 1000, HistWh: 0.1, HistMS: 3, Zero: true}
	j, _ := json.Marshal(want)
	var raw json.RawMessage = j // not a BinaryAppender: stored as JSON
	err = db.Update(func(tx *store.Tx) error {
		if err := tx.SetState(store.StateVEEMeter, "M1", raw); err != nil {
			return err
		}
		var got MeterState
		if ok, err := tx.State(store.StateVEEMeter, "M1", &got); err != nil || !ok || got != want {
			t.Errorf("JSON state: got %+v, %v, %v; want %+v", got, ok, err, want)
		}
		if err := tx.SetState(store.StateVEEMeter, "M1", &got); err != nil {
			return err
		}
		var again MeterState
		if ok, err := tx.State(store.StateVEEMeter, "M1", &again); err != nil || !ok || again != want {
			t.Errorf("binary state: got %+v, %v, %v; want %+v", again, ok, err, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
