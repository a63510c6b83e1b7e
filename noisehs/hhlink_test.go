package noisehs

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// linkUp runs the link handshake for fixture x's ticket and returns both ends.
func linkUp(t *testing.T, x ticketFixture, guard HHGuard) (pda, hh *HHLink, tk Ticket) {
	t.Helper()
	sealed := x.seal(t, nil)
	i, err := NewHHInitiator(x.f.PDA, sealed, x.kb, time.Time{}, nil) // the fixture's times are not the wall clock
	if err != nil {
		t.Fatal(err)
	}
	hello := i.Hello()
	if len(hello) != HHHelloLen {
		t.Fatalf("hello is %d bytes, want %d", len(hello), HHHelloLen)
	}
	reply, hl, tk, err := AcceptHHHello(HHResponderConfig{HH: x.hh, Keys: x.keys, Guard: guard, Now: x.t0.Add(time.Minute)}, hello)
	if err != nil {
		t.Fatalf("AcceptHHHello: %v", err)
	}
	pl, err := i.ReadReply(reply, time.Now)
	if err != nil {
		t.Fatalf("ReadReply: %v", err)
	}
	return pl, hl, tk
}

func TestHHLinkRecords(t *testing.T) {
	x := newTicketFixture()
	pl, hl, tk := linkUp(t, x, HHGuard{})
	if tk.Seq != 5 || tk.KBind != x.kb {
		t.Errorf("ticket seen by the handheld: seq %d", tk.Seq)
	}
	const up, down = "meterlink/v1/hh/H01/up/records", "meterlink/v1/hh/H01/down/ack"
	f, err := hl.Seal(up, Record{Kind: KindBatch, Body: []byte(`{"id":"b1"}`)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := pl.Open(up, f)
	if err != nil || string(r.Body) != `{"id":"b1"}` {
		t.Fatalf("PDA Open = %q, %v", r.Body, err)
	}
	if _, err := pl.Open(up, f); !errors.Is(err, ErrReplay) {
		t.Errorf("replayed record: %v, want ErrReplay", err)
	}
	f2, _ := hl.Seal(up, Record{Kind: KindBatch, Body: []byte("x")})
	if _, err := pl.Open("meterlink/v1/hh/H01/up/query", f2); !errors.Is(err, ErrAuth) {
		t.Errorf("record moved to another topic: %v, want ErrAuth", err)
	}
	if _, err := hl.Open(up, f2); err == nil {
		t.Error("reflected record opened on its sender")
	}
	d, _ := pl.Seal(down, Record{Kind: KindWireAck, Body: []byte("ack")})
	if r, err := hl.Open(down, d); err != nil || string(r.Body) != "ack" {
		t.Errorf("handheld Open = %q, %v", r.Body, err)
	}
	for i := range d {
		c := bytes.Clone(d)
		c[i] ^= 0x01
		if _, err := hl.Open(down, c); err == nil {
			t.Fatalf("record with byte %d flipped opened", i)
		}
	}
}

// T15: no link without k_bind. A PDA holding a genuine ticket but not its k_bind (it never got
// the TICKET from ops) cannot complete the link.
func TestHHLinkNeedsKBind(t *testing.T) {
	x := newTicketFixture()
	sealed := x.seal(t, nil)
	i, err := NewHHInitiator(x.f.PDA, sealed, [32]byte{0xee}, time.Time{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _, tk, err := AcceptHHHello(HHResponderConfig{HH: x.hh, Keys: x.keys, Now: x.t0}, i.Hello())
	if !errors.Is(err, ErrHandshake) {
		t.Fatalf("hello without k_bind: %v, want ErrHandshake", err)
	}
	if tk.Seq != 5 {
		t.Errorf("the failure names ticket seq %d, want 5 (for the lockout)", tk.Seq)
	}
	// A ticket moved to another PDA's hello: the prologue names the ticket's PDA.
	j, _ := NewHHInitiator(PDAIDFromText("P02"), sealed, x.kb, time.Time{}, nil)
	if _, _, _, err := AcceptHHHello(HHResponderConfig{HH: x.hh, Keys: x.keys, Now: x.t0}, j.Hello()); !errors.Is(err, ErrHandshake) {
		t.Errorf("hello from another PDA with the ticket: %v, want ErrHandshake", err)
	}
	// A forged reply does not spoil the initiator for the genuine one.
	k, _ := NewHHInitiator(x.f.PDA, sealed, x.kb, time.Time{}, nil)
	reply, _, _, err := AcceptHHHello(HHResponderConfig{HH: x.hh, Keys: x.keys, Now: x.t0}, k.Hello())
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(reply)
	bad[5] ^= 1
	if _, err := k.ReadReply(bad, time.Now); err == nil {
		t.Fatal("forged reply accepted")
	}
	if _, err := k.ReadReply(reply, time.Now); err != nil {
		t.Errorf("genuine reply after a forged one: %v", err)
	}
}

func TestHHLinkRefusesBadTickets(t *testing.T) {
	x := newTicketFixture()
	i, _ := NewHHInitiator(x.f.PDA, x.seal(t, nil), x.kb, time.Time{}, nil)
	for name, c := range map[string]HHResponderConfig{
		"expired":     {HH: x.hh, Keys: x.keys, Now: x.t0.Add(13 * time.Hour)},
		"foreign":     {HH: HHIDFromText("H02"), Keys: x.keys, Now: x.t0},
		"rolled back": {HH: x.hh, Keys: x.keys, Guard: HHGuard{MinTicketSeq: 9}, Now: x.t0},
		"delayed":     {HH: x.hh, Keys: x.keys, Guard: HHGuard{RetryAt: x.t0.Add(time.Minute).UnixMilli()}, Now: x.t0},
		"ops used up": {HH: x.hh, Keys: x.keys, Guard: HHGuard{OpsTicket: x.f.ID, OpsUsed: x.f.MaxOps}, Now: x.t0},
	} {
		if _, l, _, err := AcceptHHHello(c, i.Hello()); err == nil || l != nil {
			t.Errorf("%s: AcceptHHHello = %v", name, err)
		}
	}
}

func TestHHLinkMaxOps(t *testing.T) {
	x := newTicketFixture()
	x.f.MaxOps = 2
	_, hl, tk := linkUp(t, x, HHGuard{})
	const up = "meterlink/v1/hh/H01/up/records"
	for range 2 {
		if _, err := hl.Seal(up, Record{Kind: KindBatch}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := hl.Seal(up, Record{Kind: KindBatch}); !errors.Is(err, ErrTicketOps) {
		t.Errorf("third operation: %v, want ErrTicketOps", err)
	}
	if hl.Usable() {
		t.Error("link still usable after max_ops")
	}
	// A new link with the same ticket continues the count kept in the guard.
	g := HHGuard{}.Accepted(tk)
	g.OpsUsed = 1
	_, hl2, _ := linkUp(t, x, g)
	if hl2.Ops() != 1 {
		t.Errorf("relinked with the same ticket: ops %d, want 1", hl2.Ops())
	}
	if _, err := hl2.Seal(up, Record{Kind: KindBatch}); err != nil {
		t.Fatal(err)
	}
	if _, err := hl2.Seal(up, Record{Kind: KindBatch}); !errors.Is(err, ErrTicketOps) {
		t.Errorf("relinked: operation beyond max_ops: %v", err)
	}
}

func TestHHListenerPasswordDiffersFromKey(t *testing.T) {
	x := newTicketFixture()
	pw := HHListenerPassword(x.kHH, x.hh)
	if len(pw) != 32 || pw == HHListenerPassword(x.kHH, HHIDFromText("H02")) {
		t.Errorf("listener password %q", pw)
	}
}
