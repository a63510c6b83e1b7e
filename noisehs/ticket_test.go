package noisehs

import (
	"bytes"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// ticketFixture is a handheld H01 with K_hh from a fixed K_master and a ticket valid at t0.
type ticketFixture struct {
	kHH  [32]byte
	keys map[byte][32]byte
	hh   HHID
	t0   time.Time
	f    TicketFields
	kb   [32]byte
}

func newTicketFixture() ticketFixture {
	master := bytes.Repeat([]byte{0x42}, 32)
	hh := HHIDFromText("H01")
	k := HandheldKey(master, hh, 1)
	t0 := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	return ticketFixture{
		kHH: k, keys: map[byte][32]byte{1: k}, hh: hh, t0: t0, kb: [32]byte{7, 7, 7},
		f: TicketFields{KeyVer: 1, HH: hh, ID: [16]byte{1, 2, 3}, Seq: 5, PDA: PDAIDFromText("P01"),
			NotBefore: uint64(t0.UnixMilli()), NotAfter: uint64(t0.Add(12 * time.Hour).UnixMilli()),
			MaxOps: 100, MinTicketSeq: 3},
	}
}

func (x ticketFixture) seal(t testing.TB, mod func(*TicketFields)) []byte {
	t.Helper()
	f := x.f
	if mod != nil {
		mod(&f)
	}
	b, err := SealTicket(x.kHH, f, x.kb)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTicketRoundTrip(t *testing.T) {
	x := newTicketFixture()
	b := x.seal(t, nil)
	if len(b) != TicketLen || TicketLen != 130 {
		t.Fatalf("sealed ticket is %d bytes, TicketLen %d, want 130", len(b), TicketLen)
	}
	got, err := OpenTicket(x.keys, b)
	if err != nil {
		t.Fatal(err)
	}
	if got.TicketFields != x.f || got.KBind != x.kb {
		t.Errorf("OpenTicket = %+v, want %+v", got, x.f)
	}
	if err := (HHGuard{}).Check(got, x.hh, x.t0.Add(time.Hour)); err != nil {
		t.Errorf("Check of a good ticket: %v", err)
	}
}

// T5 for tickets: every bit flip, truncation and extension is rejected.
func TestTicketTamperRejected(t *testing.T) {
	x := newTicketFixture()
	b := x.seal(t, nil)
	for i := range b {
		for bit := range 8 {
			c := bytes.Clone(b)
			c[i] ^= 1 << bit
			if _, err := OpenTicket(x.keys, c); err == nil {
				t.Fatalf("ticket with bit %d of byte %d flipped opened", bit, i)
			}
		}
	}
	if _, err := OpenTicket(x.keys, b[:len(b)-1]); err == nil {
		t.Error("truncated ticket opened")
	}
	if _, err := OpenTicket(x.keys, append(bytes.Clone(b), 0)); err == nil {
		t.Error("extended ticket opened")
	}
	other := HandheldKey(bytes.Repeat([]byte{0x43}, 32), x.hh, 1)
	if _, err := OpenTicket(map[byte][32]byte{1: other}, b); !errors.Is(err, ErrTicket) {
		t.Errorf("ticket under another K_master: %v, want ErrTicket", err)
	}
}

// T15: expired, foreign, early, rolled-back, wrong key_ver and clock-rollback tickets are refused.
func TestTicketRefusals(t *testing.T) {
	x := newTicketFixture()
	in := x.t0.Add(time.Hour)
	tests := []struct {
		name  string
		mod   func(*TicketFields)
		guard HHGuard
		now   time.Time
		want  error
	}{
		{"good", nil, HHGuard{}, in, nil},
		{"expired", nil, HHGuard{}, x.t0.Add(12*time.Hour + TicketSkew + time.Second), ErrTicketTime},
		{"expired within skew", nil, HHGuard{}, x.t0.Add(12*time.Hour + TicketSkew - time.Second), nil},
		{"not yet valid", nil, HHGuard{}, x.t0.Add(-TicketSkew - time.Second), ErrTicketTime},
		{"early within skew", nil, HHGuard{}, x.t0.Add(-TicketSkew + time.Second), nil},
		{"foreign", func(f *TicketFields) { f.HH = HHIDFromText("H02") }, HHGuard{}, in, ErrTicketForeign},
		{"rolled back", nil, HHGuard{MinTicketSeq: 6}, in, ErrTicketSeq},
		{"seq equal to min", nil, HHGuard{MinTicketSeq: 5}, in, nil},
		{"clock rollback", nil, HHGuard{MaxNotBefore: uint64(x.t0.Add(13 * time.Hour).UnixMilli())}, in, ErrTicketTime},
		{"too long", func(f *TicketFields) { f.NotAfter += uint64(time.Hour.Milliseconds()) }, HHGuard{}, in, ErrTicketTime},
		{"no operations", func(f *TicketFields) { f.MaxOps = 0 }, HHGuard{}, in, ErrTicketOps},
		{"locked, same seq", nil, HHGuard{Locked: true, LockSeq: 5}, in, ErrTicketSeq},
		{"locked, newer seq", nil, HHGuard{Locked: true, LockSeq: 4}, in, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tk, err := OpenTicket(x.keys, x.seal(t, tt.mod))
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.guard.Check(tk, x.hh, tt.now); !errors.Is(err, tt.want) {
				t.Errorf("Check = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("wrong key_ver", func(t *testing.T) {
		b := x.seal(t, func(f *TicketFields) { f.KeyVer = 2 })
		if _, err := OpenTicket(x.keys, b); !errors.Is(err, ErrTicketKeyVer) {
			t.Errorf("OpenTicket = %v, want ErrTicketKeyVer", err)
		}
	})
}

func TestTicketGrantRoundTrip(t *testing.T) {
	x := newTicketFixture()
	g := TicketGrant{KBind: x.kb, Seq: 9, NotBefore: 1, NotAfter: 2, Sealed: x.seal(t, nil)}
	b, err := g.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseTicketGrant(b)
	if err != nil || got.KBind != g.KBind || got.Seq != 9 || got.NotAfter != 2 || !bytes.Equal(got.Sealed, g.Sealed) {
		t.Fatalf("ParseTicketGrant = %+v, %v", got, err)
	}
	if _, err := ParseTicketGrant(b[:len(b)-1]); err == nil {
		t.Error("truncated grant parsed")
	}
}

// T15 lockout (§9): 5 failures → exponential delay, 20 → refuse until a newer ticket.
func TestHHGuardLockout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g HHGuard
		for i := 1; i < HHLinkDelayAfter; i++ {
			g = g.Failed(time.Now(), 5)
			if err := g.Admit(time.Now()); err != nil {
				t.Fatalf("after %d failures Admit = %v, want nil", i, err)
			}
		}
		g = g.Failed(time.Now(), 5) // the 5th
		if err := g.Admit(time.Now()); !errors.Is(err, ErrLinkDelayed) {
			t.Fatalf("after 5 failures Admit = %v, want ErrLinkDelayed", err)
		}
		time.Sleep(HHLinkDelayFirst)
		if err := g.Admit(time.Now()); err != nil {
			t.Fatalf("after the first delay Admit = %v", err)
		}
		g = g.Failed(time.Now(), 5) // the 6th: twice the delay
		time.Sleep(HHLinkDelayFirst)
		if err := g.Admit(time.Now()); !errors.Is(err, ErrLinkDelayed) {
			t.Fatalf("6th failure: Admit after 1 s = %v, want ErrLinkDelayed", err)
		}
		time.Sleep(HHLinkDelayFirst)
		if err := g.Admit(time.Now()); err != nil {
			t.Fatalf("6th failure: Admit after 2 s = %v", err)
		}
		for g.Failures < HHLinkLockAfter {
			time.Sleep(HHLinkDelayMax)
			if err := g.Admit(time.Now()); err != nil {
				t.Fatalf("after %d failures and the longest delay Admit = %v", g.Failures, err)
			}
			g = g.Failed(time.Now(), 5)
		}
		if !g.Locked || g.LockSeq != 5 {
			t.Fatalf("after %d failures: locked %v lock_seq %d, want locked at 5", g.Failures, g.Locked, g.LockSeq)
		}
		x := newTicketFixture()
		old, _ := OpenTicket(x.keys, x.seal(t, nil))
		time.Sleep(HHLinkDelayMax)
		if err := g.Check(old, x.hh, x.t0.Add(time.Hour)); !errors.Is(err, ErrTicketSeq) {
			t.Errorf("locked: the same ticket: %v, want ErrTicketSeq", err)
		}
		newer, _ := OpenTicket(x.keys, x.seal(t, func(f *TicketFields) { f.Seq = 6 }))
		if err := g.Check(newer, x.hh, x.t0.Add(time.Hour)); err != nil {
			t.Errorf("locked: a newer ticket: %v", err)
		}
		g = g.Accepted(newer)
		if g.Locked || g.Failures != 0 || g.MinTicketSeq != 3 || g.Admit(time.Now()) != nil {
			t.Errorf("after a link with a newer ticket: %+v", g)
		}
	})
}
