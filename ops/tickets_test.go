package ops

import (
	"context"
	"testing"
	"time"

	"github.com/meterlink/meterlink/noisehs"
)

func ticketRequest(hh string) []byte {
	id := noisehs.HHIDFromText(hh)
	return append(id[:], hh...)
}

// Ops issues a ticket only to the PDA a handheld is assigned to; the handheld's K_hh opens it.
// Revocation (T14) stops tickets and raises min_ticket_seq above every ticket issued.
func TestTickets(t *testing.T) {
	o := newTestOps(t)
	p := connected(t, o, "P01", sidP01)
	p3 := connected(t, o, "P03", fill(0x33))
	if err := o.AssignHandheld("H01", "P01"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	tp, f := p.seal(noisehs.KindTicketRequest, ticketRequest("H01"))
	if err := o.HandleUp(ctx, tp, f); err != nil {
		t.Fatal(err)
	}
	out := drain(o)
	if len(out) != 1 {
		t.Fatalf("ticket request: %d publications, want one ticket", len(out))
	}
	r := p.open(out[0].topic, out[0].payload)
	if r.Kind != noisehs.KindTicket {
		t.Fatalf("record kind %#x, want TICKET", r.Kind)
	}
	g, err := noisehs.ParseTicketGrant(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	k, ver := o.HandheldKey("H01")
	tk, err := noisehs.OpenTicket(map[byte][32]byte{ver: k}, g.Sealed)
	if err != nil {
		t.Fatalf("the handheld's K_hh does not open the ticket: %v", err)
	}
	if tk.Seq != 1 || tk.KBind != g.KBind || tk.PDA != noisehs.PDAIDFromText("P01") || tk.MinTicketSeq != 0 ||
		tk.NotAfter-tk.NotBefore != uint64(noisehs.HHTicketLifetime.Milliseconds()) || tk.HH != noisehs.HHIDFromText("H01") {
		t.Errorf("ticket %+v (grant seq %d)", tk.TicketFields, g.Seq)
	}
	if err := (noisehs.HHGuard{}).Check(tk, noisehs.HHIDFromText("H01"), time.Now()); err != nil {
		t.Errorf("handheld check of a fresh ticket: %v", err)
	}

	// Refused, nothing sent: another PDA, an unassigned handheld, an hh_id not matching the id.
	for name, req := range map[string]func() (string, []byte){
		"other pda":  func() (string, []byte) { return p3.seal(noisehs.KindTicketRequest, ticketRequest("H01")) },
		"unassigned": func() (string, []byte) { return p.seal(noisehs.KindTicketRequest, ticketRequest("H02")) },
		"mismatch": func() (string, []byte) {
			b := ticketRequest("H01")
			b[0] ^= 1
			return p.seal(noisehs.KindTicketRequest, b)
		},
		"short": func() (string, []byte) { return p.seal(noisehs.KindTicketRequest, []byte("H01")) },
	} {
		tp, f := req()
		if err := o.HandleUp(ctx, tp, f); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if out := drain(o); len(out) != 0 {
			t.Errorf("%s: %d publications, want none", name, len(out))
		}
	}

	if err := (pdaAdmin{o}).RevokePDA("P01"); err != nil {
		t.Fatal(err)
	}
	pda, last, minSeq, err := o.HandheldTickets("H01")
	if err != nil || pda != "" || minSeq <= 1 || last < minSeq {
		t.Errorf("after revoke: pda %q last %d min %d err %v; want unassigned, min above ticket 1", pda, last, minSeq, err)
	}
	tp, f = p.seal(noisehs.KindTicketRequest, ticketRequest("H01"))
	if err := o.HandleUp(ctx, tp, f); err != nil {
		t.Fatal(err)
	}
	if out := drain(o); len(out) != 0 {
		t.Errorf("revoked pda got %d publications", len(out))
	}
	// Assigned again (to P03), the next ticket carries the raised min_ticket_seq: a handheld
	// that takes it refuses every ticket the revoked PDA still holds.
	if err := o.AssignHandheld("H01", "P03"); err != nil {
		t.Fatal(err)
	}
	tp, f = p3.seal(noisehs.KindTicketRequest, ticketRequest("H01"))
	if err := o.HandleUp(ctx, tp, f); err != nil {
		t.Fatal(err)
	}
	out = drain(o)
	if len(out) != 1 {
		t.Fatalf("ticket for P03: %d publications", len(out))
	}
	g3, _ := noisehs.ParseTicketGrant(p3.open(out[0].topic, out[0].payload).Body)
	tk3, err := noisehs.OpenTicket(map[byte][32]byte{ver: k}, g3.Sealed)
	if err != nil || tk3.MinTicketSeq <= tk.Seq || tk3.Seq < tk3.MinTicketSeq {
		t.Fatalf("new ticket seq %d min %d, err %v", tk3.Seq, tk3.MinTicketSeq, err)
	}
	guard := noisehs.HHGuard{}.Accepted(tk3)
	if err := guard.Check(tk, noisehs.HHIDFromText("H01"), time.Now()); err == nil {
		t.Error("the revoked PDA's old ticket passes after the newer one was taken")
	}
}
