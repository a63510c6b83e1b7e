package ops

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/meterlink/meterlink/topic"
	"github.com/meterlink/meterlink/wire"
)

// FuzzHandleUp feeds HandleUp arbitrary uplink payloads, and arbitrary batch bodies sealed
// with a valid identifier tag so that the fuzzer gets past the tag to the batch decoding.
// HandleUp must never panic, never fail (the store is healthy, so everything is either
// applied or dropped) and never store a reading that is not valid.
func FuzzHandleUp(f *testing.F) {
	o, err := New(testConfig(), testLog())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { o.Close() })
	o.cfg.Retention = 0 // seeds carry fixed, old timestamps
	if err := o.Provision(context.Background(), testDataset()); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, payload, body []byte) {
		ctx := context.Background()
		if err := o.HandleUp(ctx, topic.PDAUp("P01"), payload); err != nil {
			t.Fatalf("HandleUp(payload) = %v", err)
		}
		if json.Valid(body) { // an envelope can only carry a JSON body
			tp, sealedPayload := sealed(t, "P01", sidP01, batchID(body), body)
			if err := o.HandleUp(ctx, tp, sealedPayload); err != nil {
				t.Fatalf("HandleUp(sealed body) = %v", err)
			}
		}
		drain(o)
		for _, r := range allReadings(t, o) {
			if r.Terminal != "T0001" || r.District != "D01" || !wire.ValidID(string(r.Meter)) ||
				r.Channel < 1 || r.Channel > 16 || r.TimeMS <= 0 || r.Seq == 0 {
				t.Fatalf("invalid reading stored: %+v", r)
			}
		}
	})
}

// batchID finds the "id" a body claims, so the envelope's id can match it; bodies that
// do not decode get a fixed id and are dropped anyway.
func batchID(body []byte) string {
	var b struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return "x"
	}
	return b.ID
}
