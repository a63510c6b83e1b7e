package pdabridge

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/meterlink/meterlink/bus"
	"github.com/meterlink/meterlink/noisehs"
	"github.com/meterlink/meterlink/topic"
	"github.com/meterlink/meterlink/wire"
)

// newTestBridge is a bridge for H01 that is never connected: the handlers are called directly.
func newTestBridge(t *testing.T) *Bridge {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ID, cfg.SID, cfg.OpsPublicKey, cfg.Handhelds = "P01", make([]byte, 32), [32]byte{9}, []string{"H01"}
	b, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func msg(t string, v any) bus.Message {
	body, _ := json.Marshal(v)
	return bus.Message{Topic: t, Payload: body, QoS: 1}
}

// TestRelayDropRules: queries and job events of unbound handhelds, or naming another handheld
// than their topic, are dropped; a valid query without a session is dropped (the handheld
// answers offline); valid job events are held as KindJobEvents; answers to no waiting query
// and groups for unbound handhelds are dropped.
func TestRelayDropRules(t *testing.T) {
	b := newTestBridge(t)
	ctx := context.Background()
	q := wire.Query{V: wire.Version, ID: "H01-q-1", Handheld: "H01", Meter: "M1", DeadlineMS: time.Now().Add(time.Minute).UnixMilli()}
	_ = b.onQuery(ctx, msg(topic.HHQuery("H02"), q))                         // unbound
	_ = b.onQuery(ctx, msg(topic.HHQuery("H01"), wire.Query{V: 1, ID: "x"})) // invalid
	_ = b.onQuery(ctx, msg(topic.HHQuery("H01"), func() wire.Query { q := q; q.Handheld = "H02"; return q }()))
	_ = b.onQuery(ctx, msg(topic.HHQuery("H01"), q)) // no session
	je := wire.JobEvents{V: wire.Version, ID: "H01-jev-batch-1", Handheld: "H01", Events: []wire.JobEvent{{ID: "e1", Job: "J1", State: wire.JobDone}}}
	_ = b.onJobs(ctx, msg(topic.HHJobs("H02"), je))                              // unbound
	_ = b.onJobs(ctx, msg(topic.HHJobs("H01"), wire.JobEvents{V: wire.Version})) // invalid
	if err := b.onJobs(ctx, msg(topic.HHJobs("H01"), je)); err != nil {
		t.Fatal(err)
	}
	ans, _ := json.Marshal(wire.Answer{V: wire.Version, ID: "H01-q-9"})
	_ = b.onAnswer(ctx, noisehs.Record{Kind: noisehs.KindAnswer, Body: ans})
	gs, _ := json.Marshal(wire.Groups{V: wire.Version, Handheld: "H02"})
	_ = b.onGroups(ctx, noisehs.Record{Kind: noisehs.KindGroups, Body: gs})

	s := b.Stats()
	if s.Unbound != 2 || s.Malformed != 3 || s.Offline != 1 || s.Accepted != 1 || s.Unroutable != 2 || s.Queries != 0 {
		t.Errorf("stats %+v, want 2 unbound, 3 malformed, 1 offline, 1 accepted, 2 unroutable", s)
	}
	if e, ok := b.box.get(je.ID); !ok || e.kind() != noisehs.KindJobEvents || e.Handheld != "H01" {
		t.Errorf("held %+v %v, want the job events as KindJobEvents", e, ok)
	}
	if len(b.queries) != 0 {
		t.Errorf("%d queries remembered, want none", len(b.queries))
	}
}
