package ops

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterlink/meterlink/noisehs"
	"github.com/meterlink/meterlink/ops/internal/store"
	"github.com/meterlink/meterlink/topic"
	"github.com/meterlink/meterlink/wire"
)

var (
	sidP01 = fill(0x11)
	sidP02 = fill(0x22)
)

func fill(b byte) []byte {
	s := make([]byte, store.SIDSize)
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
			{ID: "P01", SID: sidP01, State: PDAEnrolled, CreatedMS: time.Now().UnixMilli()},
			{ID: "P02", SID: sidP02, State: PDARevoked, CreatedMS: time.Now().UnixMilli()},
			{ID: "P03", SID: fill(0x33), State: PDAEnrolled, CreatedMS: time.Now().UnixMilli()},
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

// testPDA is a PDA's end of SECLINK/1 as the pda-bridge runs it, driven by hand: it makes
// frames and reads ops' frames, whatever carries them (HandleUp directly, or a broker).
type testPDA struct {
	t    testing.TB
	id   string
	pid  noisehs.PDAID
	kp   noisehs.Keypair
	ops  [32]byte
	st   noisehs.PDAState
	init *noisehs.Initiator
	psk  noisehs.SID
	sess *noisehs.Session
	cand noisehs.SID
	n    int // msg_id source
}

func newTestPDA(t testing.TB, o *Ops, id string, sid0 []byte) *testPDA {
	t.Helper()
	kp, err := noisehs.GenerateKeypair(nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPDA{t: t, id: id, pid: noisehs.PDAIDFromText(id), kp: kp}
	_, p.ops = o.OpsPublicKey()
	copy(p.st.Cur.Key[:], sid0)
	return p
}

// hsInit starts a handshake and returns its HS_INIT.
func (p *testPDA) hsInit() (string, []byte) {
	p.t.Helper()
	next, psk, ctr := p.st.NextHandshake()
	p.st = next
	idx, _ := noisehs.NewIndex()
	i, err := noisehs.NewInitiator(noisehs.InitiatorConfig{Static: p.kp, OpsStatic: p.ops, OpsKey: OpsKeyID, PDAID: p.pid,
		SID: psk, HSCounter: ctr, Now: time.Now(), SenderIdx: idx})
	if err != nil {
		p.t.Fatal(err)
	}
	p.init, p.psk = i, psk
	return topic.PDAHandshakeUp(p.id), i.HSInit()
}

// hsResp completes the handshake and returns the session's CONFIRM.
func (p *testPDA) hsResp(frame []byte) (string, []byte) {
	p.t.Helper()
	est, err := p.init.ReadHSResp(frame)
	if err != nil {
		p.t.Fatalf("read hs_resp: %v", err)
	}
	p.st = p.st.Completed(p.psk, est.Keys.NextSID)
	p.cand = est.Keys.NextSID
	if p.sess, err = noisehs.NewSession(est, time.Now); err != nil {
		p.t.Fatal(err)
	}
	return p.seal(noisehs.KindConfirm, nil)
}

// seal makes a record of the current session with a fresh msg_id.
func (p *testPDA) seal(kind noisehs.Kind, body []byte) (string, []byte) {
	p.n++
	return p.sealID(kind, [16]byte{byte(p.n >> 8), byte(p.n), 0x70}, body)
}

func (p *testPDA) sealID(kind noisehs.Kind, id [16]byte, body []byte) (string, []byte) {
	p.t.Helper()
	tp, f, err := p.sealRaw(kind, id, body)
	if err != nil {
		p.t.Fatal(err)
	}
	return tp, f
}

// sealRaw seals without failing the test (fuzz targets must not use the F's helpers).
func (p *testPDA) sealRaw(kind noisehs.Kind, id [16]byte, body []byte) (string, []byte, error) {
	tp := topic.PDAUp(p.id)
	f, err := p.sess.Seal(tp, noisehs.Record{Kind: kind, MsgID: id, Body: body})
	return tp, f, err
}

// batch seals a batch record.
func (p *testPDA) batch(b wire.Batch) (string, []byte) {
	p.t.Helper()
	body, err := json.Marshal(b)
	if err != nil {
		p.t.Fatal(err)
	}
	return p.seal(noisehs.KindBatch, body)
}

// open opens a record from ops and applies its commit rule.
func (p *testPDA) open(tp string, frame []byte) noisehs.Record {
	p.t.Helper()
	if tp != topic.PDADown(p.id) {
		p.t.Fatalf("record on %s, want %s", tp, topic.PDADown(p.id))
	}
	r, err := p.sess.Open(tp, p.pid, frame)
	if err != nil {
		p.t.Fatalf("open ops record: %v", err)
	}
	p.st = p.st.OpsRecord(p.cand)
	return r
}

// ack opens an acknowledgement record.
func (p *testPDA) ack(tp string, frame []byte) wire.Ack {
	p.t.Helper()
	r := p.open(tp, frame)
	if r.Kind != noisehs.KindWireAck {
		p.t.Fatalf("record kind %#x, want an ack", r.Kind)
	}
	var a wire.Ack
	if err := json.Unmarshal(r.Body, &a); err != nil {
		p.t.Fatal(err)
	}
	return a
}

// connect runs a whole handshake through HandleUp: HS_INIT, HS_RESP, CONFIRM, COMMIT.
func (p *testPDA) connect(o *Ops) {
	p.t.Helper()
	ctx := context.Background()
	tp, f := p.hsInit()
	if err := o.HandleUp(ctx, tp, f); err != nil {
		p.t.Fatal(err)
	}
	out := drain(o)
	if len(out) != 1 || out[0].topic != topic.PDAHandshakeDown(p.id) {
		p.t.Fatalf("handshake: %d publications (%+v), want one hs_resp", len(out), out)
	}
	tp, f = p.hsResp(out[0].payload)
	if err := o.HandleUp(ctx, tp, f); err != nil {
		p.t.Fatal(err)
	}
	out = drain(o)
	if len(out) != 1 || p.open(out[0].topic, out[0].payload).Kind != noisehs.KindCommit {
		p.t.Fatalf("confirm: %d publications, want one commit", len(out))
	}
}

// connected is a PDA of o that completed a handshake with sid0.
func connected(t testing.TB, o *Ops, id string, sid0 []byte) *testPDA {
	t.Helper()
	p := newTestPDA(t, o, id, sid0)
	p.connect(o)
	return p
}

// drain returns the publications ingest has queued so far, except groups pushed to
// handhelds, which jobs_test.go checks with drainAll.
func drain(o *Ops) []outMsg {
	var out []outMsg
	for _, m := range drainAll(o) {
		if m.kind != "groups" {
			out = append(out, m)
		}
	}
	return out
}

func drainAll(o *Ops) []outMsg {
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
	p := connected(t, o, "P01", sidP01)
	tp, payload := p.batch(b)

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
	ack := p.ack(out[3].topic, out[3].payload)
	want := wire.Ack{V: wire.Version, ID: "H01-1", Records: []wire.RecordKey{{Terminal: "T0001", Seq: 1}, {Terminal: "T0001", Seq: 2}, {Terminal: "T0001", Seq: 3}}}
	if diff := cmp.Diff(want, ack); diff != "" {
		t.Errorf("ack (-want +got):\n%s", diff)
	}

	// The same frame again (a QoS 1 redelivery) is dropped by the replay window.
	if err := o.HandleUp(ctx, tp, payload); err != nil {
		t.Fatal(err)
	}
	if out := drain(o); len(out) != 0 || o.metrics.Value(metricDropped, "reason", dropReplay) != 1 {
		t.Errorf("redelivered frame: %d publications, replay drops %d; want none and 1", len(out), o.metrics.Value(metricDropped, "reason", dropReplay))
	}
	// The PDA resends the batch after a lost ack, sealed anew with the same msg_id: ops
	// answers it from its msg_id memory without applying it again.
	body, _ := json.Marshal(b)
	tp, payload = p.sealID(noisehs.KindBatch, [16]byte{0, 2, 0x70}, body) // the msg_id seal gave it
	if err := o.HandleUp(ctx, tp, payload); err != nil {
		t.Fatal(err)
	}
	out = drain(o)
	if len(out) != 1 {
		t.Fatalf("resend: %d publications, want the ack only", len(out))
	}
	if diff := cmp.Diff(want, p.ack(out[0].topic, out[0].payload)); diff != "" {
		t.Errorf("resend ack (-want +got):\n%s", diff)
	}
	if got := o.metrics.Value(metricRepeats); got != 1 {
		t.Errorf("msg_id repeats = %d, want 1", got)
	}
	// A new msg_id with the same records (a handheld that resends a batch): stored once.
	tp, payload = p.batch(b)
	if err := o.HandleUp(ctx, tp, payload); err != nil {
		t.Fatal(err)
	}
	out = drain(o)
	if len(out) != 1 {
		t.Fatalf("new msg_id: %d publications, want the ack only", len(out))
	}
	if diff := cmp.Diff(want, p.ack(out[0].topic, out[0].payload)); diff != "" {
		t.Errorf("ack (-want +got):\n%s", diff)
	}
	if n := len(allReadings(t, o)); n != 6 {
		t.Errorf("%d meter readings after resends, want 6", n)
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
	p := connected(t, o, "P01", sidP01)
	tp, payload := p.batch(batch("H01-2", stray, rec(1, now)))
	if err := o.HandleUp(context.Background(), tp, payload); err != nil {
		t.Fatal(err)
	}
	out := drain(o)
	ack := p.ack(out[len(out)-1].topic, out[len(out)-1].payload)
	want := wire.Ack{V: wire.Version, ID: "H01-2", Records: []wire.RecordKey{{Terminal: "T0001", Seq: 1}},
		Rejected: []wire.Rejection{{Key: wire.RecordKey{Terminal: "T9999", Seq: 7}, Reason: store.RejectUnknownTerminal}}}
	if diff := cmp.Diff(want, ack); diff != "" {
		t.Errorf("ack (-want +got):\n%s", diff)
	}
}

func TestHandleUpDropsBadInput(t *testing.T) {
	now := time.Now().UnixMilli()
	good := batch("H01-3", rec(1, now))
	tests := []struct {
		name   string
		reason string
		msg    func(t *testing.T, o *Ops) (string, []byte)
	}{
		{"no session", dropNoSession, func(t *testing.T, o *Ops) (string, []byte) {
			p := connected(t, o, "P01", sidP01)
			o.sec.Revoke("P03") // any PDA's revocation leaves P01 alone
			_, f := p.batch(good)
			f[4] ^= 1 // receiver_idx of no session
			return topic.PDAUp("P01"), f
		}},
		{"tampered record", dropRecord, func(t *testing.T, o *Ops) (string, []byte) {
			tp, f := connected(t, o, "P01", sidP01).batch(good)
			f[len(f)-1] ^= 1
			return tp, f
		}},
		{"moved to another pda", dropNoSession, func(t *testing.T, o *Ops) (string, []byte) {
			_, f := connected(t, o, "P01", sidP01).batch(good)
			return topic.PDAUp("P03"), f
		}},
		{"wrong sid", dropHandshake, func(t *testing.T, o *Ops) (string, []byte) { return newTestPDA(t, o, "P01", sidP02).hsInit() }},
		{"unknown pda", dropUnknownPDA, func(t *testing.T, o *Ops) (string, []byte) { return newTestPDA(t, o, "P77", sidP01).hsInit() }},
		{"revoked pda", dropRevokedPDA, func(t *testing.T, o *Ops) (string, []byte) { return newTestPDA(t, o, "P02", sidP02).hsInit() }},
		{"garbage", dropRecord, func(t *testing.T, o *Ops) (string, []byte) { return topic.PDAUp("P01"), []byte(`{"v":1,"pda":`) }},
		{"garbage handshake", dropHandshake, func(t *testing.T, o *Ops) (string, []byte) {
			return topic.PDAHandshakeUp("P01"), []byte{0xff, 0x00}
		}},
		{"wrong topic", dropTopic, func(t *testing.T, o *Ops) (string, []byte) {
			_, f := connected(t, o, "P01", sidP01).batch(good)
			return topic.PDADown("P01"), f
		}},
		{"reserved kind", dropKind, func(t *testing.T, o *Ops) (string, []byte) {
			return connected(t, o, "P01", sidP01).seal(noisehs.KindTicket, nil)
		}},
		{"invalid records", dropBatch, func(t *testing.T, o *Ops) (string, []byte) {
			bad := rec(0, now) // seq 0
			bad.Channels[1].Channel = 1
			return connected(t, o, "P01", sidP01).batch(batch("H01-4", rec(2, now), bad))
		}},
		{"body not a batch", dropBatch, func(t *testing.T, o *Ops) (string, []byte) {
			return connected(t, o, "P01", sidP01).seal(noisehs.KindBatch, []byte(`[1,2,3]`))
		}},
		{"empty batch", dropBatch, func(t *testing.T, o *Ops) (string, []byte) {
			return connected(t, o, "P01", sidP01).batch(batch("H01-6"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newTestOps(t)
			tp, p := tt.msg(t, o)
			drain(o)
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
	tp, p := connected(t, o, "P01", sidP01).batch(batch("H01-7", rec(1, time.Now().UnixMilli())))
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
	pda := connected(t, o, "P01", sidP01)
	tp, p := pda.batch(batch("H01-8", rec(1, old)))
	if err := o.HandleUp(context.Background(), tp, p); err != nil {
		t.Fatal(err)
	}
	out := drain(o)
	if len(out) != 1 {
		t.Fatalf("%d publications, want the ack only", len(out))
	}
	if ack := pda.ack(out[0].topic, out[0].payload); len(ack.Records) != 1 {
		t.Errorf("ack %+v, want the old record acknowledged", ack)
	}
	if rs := allReadings(t, o); len(rs) != 0 {
		t.Errorf("a record older than the retention was stored")
	}
}
