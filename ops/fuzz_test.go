package ops

import (
	"context"
	"testing"

	"github.com/meterlink/meterlink/noisehs"
	"github.com/meterlink/meterlink/topic"
	"github.com/meterlink/meterlink/wire"
)

// FuzzHandleUp feeds HandleUp arbitrary uplink and handshake frames (security.md T19), and
// arbitrary batch bodies sealed in a valid SECLINK/1 session so that the fuzzer gets past the
// record layer to the batch decoding.
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
	pda := connected(f, o, "P01", sidP01)
	f.Fuzz(func(t *testing.T, payload, body []byte) {
		ctx := context.Background()
		if err := o.HandleUp(ctx, topic.PDAUp("P01"), payload); err != nil {
			t.Fatalf("HandleUp(payload) = %v", err)
		}
		if err := o.HandleUp(ctx, topic.PDAHandshakeUp("P01"), payload); err != nil {
			t.Fatalf("HandleUp(hs payload) = %v", err)
		}
		var id [16]byte
		copy(id[:], body)
		if tp, sealed, err := pda.sealRaw(noisehs.KindBatch, id, body); err == nil {
			if err := o.HandleUp(ctx, tp, sealed); err != nil {
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
