package ops

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterlink/meterlink/idcheck"
	"github.com/meterlink/meterlink/ops/internal/store"
	"github.com/meterlink/meterlink/topic"
	"github.com/meterlink/meterlink/wire"
)

var (
	sidP01 = fill(0x11)
	sidP02 = fill(0x22)
)

func fill(b byte) []byte {
	s := make([]byte, idcheck.SIDSize)
	for i := range s {
		s[i] = b
	}
	return s
}

// testLog keeps test output quiet; the behaviour under test is asserted, not logged.
func testLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testConfig is a config that binds a free loopback port and keeps the store in memory.
func testConfig() Config {
	c := DefaultConfig()
	c.HTTPAddr = "127.0.0.1:0"
	c.DataDir = MemoryDataDir
	c.ClientID = "ops-test"
	return c
}

// testDataset: district D01 with terminal T0001 (2 channels), P01 and P03 enrolled, P02
// revoked.
func testDataset() Dataset {
	return Dataset{
		Districts: []District{{ID: "D01", Name: "文三新村1号变"}},
		Accounts: []Account{
			{ID: "A1", Owner: "张伟 Zhang Wei", Payment: Prepaid, BalanceFen: 5000, Tariff: "zj-res-tiered"},
		},
		Terminals: []Terminal{{ID: "T0001", District: "D01", Channels: []Channel{
			{Channel: 1, Meter: "M000101", Constant: 3200, BaseWh: 1000000, Multiplier: 1},
			{Channel: 2, Meter: "M000102", Constant: 1600, Multiplier: 1},
		}}},
		Meters: []Meter{{ID: "M000101", Terminal: "T0001", Channel: 1, Account: "A1"}},
		PDAs: []PDA{
			{ID: "P01", SID: sidP01, State: PDAEnrolled, CreatedMS: 1},
			{ID: "P02", SID: sidP02, State: PDARevoked, CreatedMS: 1},
			{ID: "P03", SID: fill(0x33), State: PDAEnrolled, CreatedMS: 1},
		},
	}
}

func newTestOps(t *testing.T) *Ops {
	t.Helper()
	o, err := New(testConfig(), testLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	if err := o.Provision(context.Background(), testDataset()); err != nil {
		t.Fatal(err)
	}
	return o
}

func rec(seq uint64, ts int64) wire.Record {
	return wire.Record{Terminal: "T0001", Seq: seq, Kind: wire.KindReading, TimeMS: ts, Channels: []wire.ChannelReading{
		{Channel: 1, Meter: "M000101", Pulses: 3200 * seq, EnergyWh: 1000000 + 1000*int64(seq), Constant: 3200, Multiplier: 1},
		{Channel: 2, Meter: "M000102", Pulses: 1600 * seq, EnergyWh: 1000 * int64(seq), Constant: 1600, Multiplier: 1},
	}}
}

func batch(id string, recs ...wire.Record) wire.Batch {
	return wire.Batch{V: wire.Version, ID: id, Handheld: "H01", Records: recs}
}

// envelope builds a PDA's uplink message as the pda-bridge would, tagged with sid.
func envelope(t testing.TB, pda string, sid []byte, b wire.Batch) (string, []byte) {
	t.Helper()
	body, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return sealed(t, pda, sid, b.ID, body)
}

func sealed(t testing.TB, pda string, sid []byte, id string, body []byte) (string, []byte) {
	t.Helper()
	tp := topic.PDAUp(pda)
	key, err := idcheck.Key(sid, pda)
	if err != nil {
		t.Fatal(err)
	}
	env := wire.Envelope{V: wire.Version, PDA: wire.PDAID(pda), Kind: wire.EnvelopeBatch, ID: id, Body: body,
		Tag: idcheck.Tag(key, pda, tp, wire.EnvelopeBatch, id, body)}
	p, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return tp, p
}

// drain returns the publications ingest has queued so far.
func drain(o *Ops) []outMsg {
	var out []outMsg
	for {
		select {
		case m := <-o.out:
			out = append(out, m)
		default:
			return out
		}
	}
}

// openAck checks an ack envelope's tag as the PDA would and returns the ack.
func openAck(t testing.TB, pda string, sid []byte, tp string, payload []byte) wire.Ack {
	t.Helper()
	var env wire.Envelope
	if err := json.Unmarshal(payload, &env); err != nil {
		t.Fatal(err)
	}
	key, _ := idcheck.Key(sid, pda)
	if tp != topic.PDADown(pda) || env.Kind != wire.EnvelopeAck || string(env.PDA) != pda ||
		!idcheck.Verify(key, pda, tp, env.Kind, env.ID, env.Body, env.Tag) {
		t.Fatalf("ack envelope on %s does not verify: %s", tp, payload)
	}
	var a wire.Ack
	if err := json.Unmarshal(env.Body, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

func allReadings(t testing.TB, o *Ops) []store.Reading {
	t.Helper()
	rs, err := o.st.Readings(store.Query{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestHandleUpStoresAndAcks(t *testing.T) {
	o := newTestOps(t)
	ctx := context.Background()
	now := time.Now().UnixMilli()
	b := batch("H01-1", rec(1, now-2000), rec(2, now-1000), rec(3, now))
	tp, payload := envelope(t, "P01", sidP01, b)

	if err := o.HandleUp(ctx, tp, payload); err != nil {
		t.Fatal(err)
	}
	if n := len(allReadings(t, o)); n != 6 {
		t.Errorf("%d meter readings stored, want 6", n)
	}
	out := drain(o)
	if len(out) != 4 {
		t.Fatalf("%d publications, want 3 reading events and 1 ack: %+v", len(out), out)
	}
	for i, m := range out[:3] {
		var ev wire.ReadingEvent
		if err := json.Unmarshal(m.payload, &ev); err != nil {
			t.Fatal(err)
		}
		if m.topic != topic.OpsReadings("D01", "T0001") || m.qos != 0 || ev.Seq != uint64(i+1) || ev.District != "D01" || len(ev.Channels) != 2 {
			t.Errorf("event %d on %s qos %d = %+v", i, m.topic, m.qos, ev)
		}
	}
	if out[3].qos != 1 {
		t.Errorf("ack qos %d, want 1", out[3].qos)
	}
	ack := openAck(t, "P01", sidP01, out[3].topic, out[3].payload)
	want := wire.Ack{V: wire.Version, ID: "H01-1", Records: []wire.RecordKey{{Terminal: "T0001", Seq: 1}, {Terminal: "T0001", Seq: 2}, {Terminal: "T0001", Seq: 3}}}
	if diff := cmp.Diff(want, ack); diff != "" {
		t.Errorf("ack (-want +got):\n%s", diff)
	}

	// The same batch again (a redelivery, or the PDA resending after a lost ack).
	if err := o.HandleUp(ctx, tp, payload); err != nil {
		t.Fatal(err)
	}
	if n := len(allReadings(t, o)); n != 6 {
		t.Errorf("%d meter readings after replay, want 6", n)
	}
	out = drain(o)
	if len(out) != 1 {
		t.Fatalf("replay: %d publications, want the ack only", len(out))
	}
	if diff := cmp.Diff(want, openAck(t, "P01", sidP01, out[0].topic, out[0].payload)); diff != "" {
		t.Errorf("replay ack (-want +got):\n%s", diff)
	}
	if got := o.metrics.Value(metricDuplicates); got != 3 {
		t.Errorf("duplicates = %d, want 3", got)
	}
	if got := o.metrics.Value(metricStored, "kind", "reading"); got != 3 {
		t.Errorf("stored readings = %d, want 3", got)
	}
}

func TestHandleUpRejectsUnknownTerminal(t *testing.T) {
	o := newTestOps(t)
	now := time.Now().UnixMilli()
	stray := rec(7, now)
	stray.Terminal = "T9999"
	tp, payload := envelope(t, "P01", sidP01, batch("H01-2", stray, rec(1, now)))
	if err := o.HandleUp(context.Background(), tp, payload); err != nil {
		t.Fatal(err)
	}
	out := drain(o)
	ack := openAck(t, "P01", sidP01, out[len(out)-1].topic, out[len(out)-1].payload)
	want := wire.Ack{V: wire.Version, ID: "H01-2", Records: []wire.RecordKey{{Terminal: "T0001", Seq: 1}},
		Rejected: []wire.Rejection{{Key: wire.RecordKey{Terminal: "T9999", Seq: 7}, Reason: store.RejectUnknownTerminal}}}
	if diff := cmp.Diff(want, ack); diff != "" {
		t.Errorf("ack (-want +got):\n%s", diff)
	}
}

func TestHandleUpDropsBadInput(t *testing.T) {
	now := time.Now().UnixMilli()
	good := batch("H01-3", rec(1, now))
	goodBody, _ := json.Marshal(good)
	tests := []struct {
		name   string
		reason string
		msg    func(t *testing.T) (string, []byte)
	}{
		{"bad tag", dropTag, func(t *testing.T) (string, []byte) { return envelope(t, "P01", sidP02, good) }},
		{"unknown pda", dropUnknownPDA, func(t *testing.T) (string, []byte) { return envelope(t, "P77", sidP01, good) }},
		{"revoked pda", dropRevokedPDA, func(t *testing.T) (string, []byte) { return envelope(t, "P02", sidP02, good) }},
		{"pda mismatch", dropPDAMismatch, func(t *testing.T) (string, []byte) {
			_, p := envelope(t, "P02", sidP02, good)
			return topic.PDAUp("P01"), p
		}},
		{"moved to another topic", dropTag, func(t *testing.T) (string, []byte) {
			_, p := envelope(t, "P01", sidP01, good)
			var env wire.Envelope
			json.Unmarshal(p, &env)
			env.PDA = "P03" // an enrolled PDA replays P01's envelope as its own
			p, _ = json.Marshal(env)
			return topic.PDAUp("P03"), p
		}},
		{"malformed json", dropJSON, func(t *testing.T) (string, []byte) { return topic.PDAUp("P01"), []byte(`{"v":1,"pda":`) }},
		{"not json", dropJSON, func(t *testing.T) (string, []byte) { return topic.PDAUp("P01"), []byte{0xff, 0x00} }},
		{"wrong version", dropVersion, func(t *testing.T) (string, []byte) {
			return topic.PDAUp("P01"), []byte(`{"v":2,"pda":"P01","kind":"batch","id":"x","body":{},"tag":""}`)
		}},
		{"wrong kind", dropKind, func(t *testing.T) (string, []byte) {
			return topic.PDAUp("P01"), []byte(`{"v":1,"pda":"P01","kind":"ack","id":"x","body":{},"tag":""}`)
		}},
		{"wrong topic", dropTopic, func(t *testing.T) (string, []byte) {
			_, p := envelope(t, "P01", sidP01, good)
			return topic.PDADown("P01"), p
		}},
		{"invalid records", dropBatch, func(t *testing.T) (string, []byte) {
			bad := rec(0, now) // seq 0
			bad.Channels[1].Channel = 1
			return envelope(t, "P01", sidP01, batch("H01-4", rec(2, now), bad))
		}},
		{"body not a batch", dropBatch, func(t *testing.T) (string, []byte) {
			return sealed(t, "P01", sidP01, "H01-5", []byte(`[1,2,3]`))
		}},
		{"empty batch", dropBatch, func(t *testing.T) (string, []byte) { return envelope(t, "P01", sidP01, batch("H01-6")) }},
		{"id mismatch", dropIDMismatch, func(t *testing.T) (string, []byte) { return sealed(t, "P01", sidP01, "other", goodBody) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newTestOps(t)
			tp, p := tt.msg(t)
			if err := o.HandleUp(context.Background(), tp, p); err != nil {
				t.Fatalf("HandleUp = %v, want nil (dropped and acknowledged)", err)
			}
			if rs := allReadings(t, o); len(rs) != 0 {
				t.Errorf("%d readings stored from bad input", len(rs))
			}
			if out := drain(o); len(out) != 0 {
				t.Errorf("bad input published %d messages", len(out))
			}
			if got := o.metrics.Value(metricDropped, "reason", tt.reason); got != 1 {
				t.Errorf("dropped{reason=%q} = %d, want 1", tt.reason, got)
			}
		})
	}
}

func TestHandleUpStoreFailureIsNotAcknowledged(t *testing.T) {
	o := newTestOps(t)
	tp, p := envelope(t, "P01", sidP01, batch("H01-7", rec(1, time.Now().UnixMilli())))
	o.st.Close()
	if err := o.HandleUp(context.Background(), tp, p); err == nil {
		t.Fatal("HandleUp with a closed store = nil, want an error (leave the message unacknowledged)")
	}
	if out := drain(o); len(out) != 0 {
		t.Errorf("a failed batch published %d messages", len(out))
	}
}

func TestHandleUpRetention(t *testing.T) {
	o := newTestOps(t)
	old := time.Now().Add(-500 * 24 * time.Hour).UnixMilli()
	tp, p := envelope(t, "P01", sidP01, batch("H01-8", rec(1, old)))
	if err := o.HandleUp(context.Background(), tp, p); err != nil {
		t.Fatal(err)
	}
	out := drain(o)
	if len(out) != 1 {
		t.Fatalf("%d publications, want the ack only", len(out))
	}
	if ack := openAck(t, "P01", sidP01, out[0].topic, out[0].payload); len(ack.Records) != 1 {
		t.Errorf("ack %+v, want the old record acknowledged", ack)
	}
	if rs := allReadings(t, o); len(rs) != 0 {
		t.Errorf("a record older than the retention was stored")
	}
}
