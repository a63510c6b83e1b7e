package noisehs

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSessionSealOpen(t *testing.T) {
	f := newFixture(t)
	c := &clock{t: testNow}
	pda, ops := sessions(t, f, c)
	for i, body := range [][]byte{nil, []byte("reading"), bytes.Repeat([]byte{0xab}, 300), make([]byte, MaxBody)} {
		rec := Record{Kind: KindApp + 1, MsgID: [16]byte{byte(i)}, Flags: 0x5, Body: body}
		fr, err := pda.Seal(testTopicUp, rec)
		if err != nil {
			t.Fatalf("Seal body of %d: %v", len(body), err)
		}
		if want := dataFixed + PadLen(recordFixed+len(body)) + tagLen; len(fr) != want {
			t.Errorf("frame of %d-byte body is %d bytes, want %d", len(body), len(fr), want)
		}
		got, err := ops.Open(testTopicUp, f.pdaID, fr)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if len(got.Body) == 0 {
			got.Body = nil
		}
		if diff := cmp.Diff(rec, got); diff != "" {
			t.Errorf("record (-want +got):\n%s", diff)
		}
	}
	fr, err := ops.Seal(testTopicDown, Record{Kind: KindCommit})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := pda.Open(testTopicDown, f.pdaID, fr); err != nil || r.Kind != KindCommit {
		t.Fatalf("PDA Open COMMIT = %v, %v", r.Kind, err)
	}
	if _, err := pda.Seal(testTopicUp, Record{Body: make([]byte, MaxBody+1), Kind: KindApp}); !errors.Is(err, ErrBodyTooLong) {
		t.Errorf("Seal oversize body = %v, want ErrBodyTooLong", err)
	}
	if _, err := pda.Seal(testTopicUp, Record{Kind: 0x07}); !errors.Is(err, ErrKind) {
		t.Errorf("Seal reserved kind = %v, want ErrKind", err)
	}
}

func TestPadLen(t *testing.T) {
	tests := []struct{ n, want int }{
		{0, 64}, {20, 64}, {64, 64}, {65, 128}, {300, 512}, {16384, 16384},
		{16385, 32768}, {40000, 49152}, {50000, PadCeiling}, {PadCeiling + 1, PadCeiling + 1},
		{maxPlaintext, maxPlaintext}, {maxPlaintext - 10, maxPlaintext - 10},
	}
	for _, tt := range tests {
		if got := PadLen(tt.n); got != tt.want {
			t.Errorf("PadLen(%d) = %d, want %d", tt.n, got, tt.want)
		}
	}
}

// Rule 10: ops sends nothing before the PDA's first valid record.
func TestOpsSilentBeforeConfirmation(t *testing.T) {
	f := newFixture(t)
	tr := handshake(t, f)
	c := &clock{t: testNow}
	ops, _ := NewSession(tr.ops, c.now)
	pda, _ := NewSession(tr.pda, c.now)
	if _, err := ops.Seal(testTopicDown, Record{Kind: KindCommit}); !errors.Is(err, ErrNotConfirmed) {
		t.Fatalf("ops Seal before CONFIRM = %v, want ErrNotConfirmed", err)
	}
	bad, _ := pda.Seal(testTopicUp, Record{Kind: KindConfirm})
	bad[len(bad)-1] ^= 1
	if _, err := ops.Open(testTopicUp, f.pdaID, bad); err == nil || ops.Confirmed() {
		t.Fatalf("forged CONFIRM confirmed the session (err %v)", err)
	}
	good, _ := pda.Seal(testTopicUp, Record{Kind: KindConfirm})
	if _, err := ops.Open(testTopicUp, f.pdaID, good); err != nil || !ops.Confirmed() {
		t.Fatalf("CONFIRM: %v, confirmed %v", err, ops.Confirmed())
	}
	if _, err := ops.Seal(testTopicDown, Record{Kind: KindCommit}); err != nil {
		t.Fatalf("ops Seal after CONFIRM: %v", err)
	}
}

// T5 for DATA: every bit flip, truncation and extension is rejected and
// leaves the window unchanged, so the genuine frame still opens once.
func TestDataTamper(t *testing.T) {
	f := newFixture(t)
	c := &clock{t: testNow}
	pda, ops := sessions(t, f, c)
	good, _ := pda.Seal(testTopicUp, Record{Kind: KindApp, Body: []byte("kWh 1234")})
	before := ops.window
	for bit := range len(good) * 8 {
		b := bytes.Clone(good)
		b[bit/8] ^= 1 << (bit % 8)
		if _, err := ops.Open(testTopicUp, f.pdaID, b); err == nil {
			t.Fatalf("flip of bit %d accepted", bit)
		}
	}
	for n := range len(good) {
		if _, err := ops.Open(testTopicUp, f.pdaID, good[:n]); err == nil {
			t.Fatalf("truncation to %d accepted", n)
		}
	}
	if _, err := ops.Open(testTopicUp, f.pdaID, append(bytes.Clone(good), 0)); err == nil {
		t.Fatal("extension accepted")
	}
	if ops.window != before {
		t.Fatal("rejected frames changed the replay window")
	}
	if _, err := ops.Open(testTopicUp, f.pdaID, good); err != nil {
		t.Fatalf("genuine frame after forgeries: %v", err)
	}
}

// T8: no counter accepted twice, old and over-limit counters rejected, and a
// forged high counter never moves the window.
func TestReplayWindow(t *testing.T) {
	f := newFixture(t)
	c := &clock{t: testNow}
	pda, ops := sessions(t, f, c) // counter 0 (CONFIRM) is used
	seal := func(ctr uint64) []byte {
		pt, _ := appendRecord(nil, Record{Kind: KindApp}, false)
		return sealData(nil, pda.send, pda.hdr, pda.peerIdx, ctr, testTopicUp, f.pdaID, pt)
	}
	open := func(fr []byte) error {
		_, err := ops.Open(testTopicUp, f.pdaID, fr)
		return err
	}
	// Out of order within the window, each exactly once.
	for _, ctr := range []uint64{5, 3, 4, 1, 2, 1500, 1000, 477} {
		if err := open(seal(ctr)); err != nil {
			t.Fatalf("counter %d: %v", ctr, err)
		}
		if err := open(seal(ctr)); !errors.Is(err, ErrReplay) {
			t.Fatalf("replay of counter %d = %v, want ErrReplay", ctr, err)
		}
	}
	if err := open(seal(476)); !errors.Is(err, ErrReplay) {
		t.Errorf("counter 476 (1024 below 1500) = %v, want ErrReplay", err)
	}
	if err := open(seal(477 + 1)); err != nil {
		t.Errorf("counter 478 (inside the window): %v", err)
	}
	if err := open(seal(RejectAfterMessages)); !errors.Is(err, ErrCounterLimit) {
		t.Errorf("counter 2^40 = %v, want ErrCounterLimit", err)
	}
	// A forged frame with a huge counter fails the tag and moves nothing.
	forged := seal(1 << 39)
	forged[len(forged)-1] ^= 1
	before := ops.window
	if err := open(forged); !errors.Is(err, ErrAuth) {
		t.Fatalf("forged high counter = %v, want ErrAuth", err)
	}
	if ops.window != before {
		t.Fatal("forged high counter moved the window")
	}
	if err := open(seal(1501)); err != nil {
		t.Errorf("counter 1501 after the forgery: %v", err)
	}
}

// Exhaustive check of the window against a set of accepted counters.
func TestReplayWindowModel(t *testing.T) {
	var w replayWindow
	seen := map[uint64]bool{}
	var top uint64
	seq := []uint64{0, 3000, 1977, 1976, 2500, 64, 4100, 4099, 3077, 3076, 9000, 8000, 7977, 9001, 9000}
	for x := uint64(0); x < 3000; x++ {
		seq = append(seq, 9001+x*7%1500, 12000-x%1100)
	}
	for _, c := range seq {
		want := !seen[c] && (c > top || top-c < ReplayWindow)
		if got := w.check(c); got != want {
			t.Fatalf("check(%d) with top %d = %v, want %v", c, top, got, want)
		}
		if want {
			w.mark(c)
			seen[c] = true
			top = max(top, c)
		}
	}
}

// T9: a record reflected back to its sender (k_up used for down) is rejected.
func TestReflectedRecord(t *testing.T) {
	f := newFixture(t)
	c := &clock{t: testNow}
	pda, ops := sessions(t, f, c)
	up, _ := pda.Seal(testTopicUp, Record{Kind: KindApp})
	if _, err := pda.Open(testTopicUp, f.pdaID, up); err == nil {
		t.Fatal("PDA accepted its own record")
	}
	// Even addressed to the PDA's index on its downlink topic, k_up fails.
	pt, _ := appendRecord(nil, Record{Kind: KindApp}, true)
	fake := sealData(nil, pda.send, pda.hdr, pda.localIdx, 7, testTopicDown, f.pdaID, pt)
	if _, err := pda.Open(testTopicDown, f.pdaID, fake); !errors.Is(err, ErrAuth) {
		t.Fatalf("record sealed with k_up opened by the PDA: %v", err)
	}
	down, _ := ops.Seal(testTopicDown, Record{Kind: KindApp})
	if _, err := ops.Open(testTopicDown, f.pdaID, down); err == nil {
		t.Fatal("ops accepted its own record")
	}
}

// T10: a record moved to another PDA's topic or another topic is rejected.
func TestMovedRecord(t *testing.T) {
	f := newFixture(t)
	c := &clock{t: testNow}
	pda, ops := sessions(t, f, c)
	fr, _ := pda.Seal(testTopicUp, Record{Kind: KindApp})
	other := f.pdaID
	other[0] ^= 0x80
	if _, err := ops.Open("meterlink/v1/pda/POTHER/up", other, fr); !errors.Is(err, ErrWrongPDA) {
		t.Errorf("record on another PDA's topic = %v, want ErrWrongPDA", err)
	}
	if _, err := ops.Open(testTopicUp+"x", f.pdaID, fr); !errors.Is(err, ErrAuth) {
		t.Errorf("record on another topic = %v, want ErrAuth", err)
	}
	// Ops with a session table keyed by index would also miss: the other
	// PDA's session has another index and other keys.
	g := f
	g.pdaID = other
	_, ops2 := sessions(t, g, c)
	ops2.localIdx = ops.localIdx
	if _, err := ops2.Open("meterlink/v1/pda/POTHER/up", other, fr); !errors.Is(err, ErrAuth) {
		t.Errorf("record replayed into another PDA's session = %v, want ErrAuth", err)
	}
	if _, err := ops.Open(testTopicUp, f.pdaID, fr); err != nil {
		t.Errorf("record on its own topic: %v", err)
	}
}

// §8: REKEY at 60 min, REJECT at 75 min, on both sides.
func TestSessionTimers(t *testing.T) {
	f := newFixture(t)
	c := &clock{t: testNow}
	pda, ops := sessions(t, f, c)
	c.t = testNow.Add(RekeyAfterTime - time.Second)
	if pda.NeedsRekey() {
		t.Error("rekey before 60 min")
	}
	c.t = testNow.Add(RekeyAfterTime)
	if !pda.NeedsRekey() || pda.Expired() {
		t.Error("want rekey, not expired, at 60 min")
	}
	fr, err := pda.Seal(testTopicUp, Record{Kind: KindApp})
	if err != nil {
		t.Fatalf("Seal at 60 min: %v", err)
	}
	c.t = testNow.Add(RejectAfterTime)
	if !pda.Expired() {
		t.Error("not expired at 75 min")
	}
	if _, err := ops.Open(testTopicUp, f.pdaID, fr); !errors.Is(err, ErrExpired) {
		t.Errorf("Open at 75 min = %v, want ErrExpired", err)
	}
	if _, err := pda.Seal(testTopicUp, Record{Kind: KindApp}); !errors.Is(err, ErrExpired) {
		t.Errorf("Seal at 75 min = %v, want ErrExpired", err)
	}
	pda.Close()
	if _, err := pda.Seal(testTopicUp, Record{Kind: KindApp}); !errors.Is(err, ErrClosed) {
		t.Errorf("Seal after Close = %v, want ErrClosed", err)
	}
}

func TestSessionSendCounterLimit(t *testing.T) {
	f := newFixture(t)
	c := &clock{t: testNow}
	pda, _ := sessions(t, f, c)
	pda.sendCtr = RekeyAfterMessages
	if !pda.NeedsRekey() {
		t.Error("no rekey at 2^32 records")
	}
	pda.sendCtr = RejectAfterMessages
	if _, err := pda.Seal(testTopicUp, Record{Kind: KindApp}); !errors.Is(err, ErrCounterLimit) {
		t.Errorf("Seal at 2^40 = %v, want ErrCounterLimit", err)
	}
}
