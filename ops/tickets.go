package ops

import (
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/meterlink/meterlink/noisehs"
	"github.com/meterlink/meterlink/ops/internal/store"
	"github.com/meterlink/meterlink/wire"
)

// This file issues handheld tickets (security.md §12). A PDA asks for a handheld's ticket with
// TICKET_REQUEST (hh_id ‖ the handheld's text id) on its session; ops checks that the handheld
// is assigned to that PDA, persists the next ticket seq, and answers TICKET: a fresh k_bind and
// the ticket sealed under k_ticket = HKDF(K_hh, salt = ticket_id), K_hh being derived from
// K_master. Revoking a PDA stops its tickets and raises min_ticket_seq for its handhelds (§10).

// HHKeyVer is the key version of the handheld keys ops derives (security.md §12 key_ver).
const HHKeyVer byte = 1

// Ticket parameters.
const (
	ticketLifetime = noisehs.HHTicketLifetime
	ticketMaxOps   = 1 << 20 // link records a handheld may send under one ticket
)

const (
	metricTickets = "meterlink_ops_hh_tickets_total"
	dropTicket    = "ticket_refused"
)

// tickets is ops' handheld ticket issuer.
type tickets struct {
	master []byte // K_master (secret; an HSM would hold it)
}

// newTickets loads K_master (from the configuration, else generated once and kept in the store).
func newTickets(cfg Config, st *store.DB, o *Ops) (tickets, error) {
	o.metrics.Counter(metricTickets, "Handheld tickets issued to PDAs.", false)
	m := cfg.HHMasterKey
	if len(m) == 0 {
		var err error
		m, err = st.HHMasterKey(func() ([]byte, error) {
			k := make([]byte, 32)
			_, err := rand.Read(k)
			return k, err
		})
		if err != nil {
			return tickets{}, err
		}
	}
	return tickets{master: m}, nil
}

// HandheldKey returns a handheld's depot key K_hh and its key version, to be injected into the
// handheld at the depot (security.md §12). It is secret.
func (o *Ops) HandheldKey(hh string) ([32]byte, byte) {
	return noisehs.HandheldKey(o.tickets.master, noisehs.HHIDFromText(hh), HHKeyVer), HHKeyVer
}

// AssignHandheld assigns a handheld to the PDA that may ask for its tickets.
func (o *Ops) AssignHandheld(hh, pda string) error {
	if !wire.ValidID(hh) || !wire.ValidID(pda) {
		return fmt.Errorf("assign handheld %q to pda %q: invalid id", hh, pda)
	}
	return o.db.AssignHandheld(wire.HandheldID(hh), wire.PDAID(pda), HHKeyVer)
}

// HandheldTickets returns a handheld's ticket state: its PDA ("" once revoked), the seq of the
// newest ticket issued and min_ticket_seq.
func (o *Ops) HandheldTickets(hh string) (pda string, lastSeq, minSeq uint64, err error) {
	b, err := o.db.HandheldBinding(wire.HandheldID(hh))
	return string(b.PDA), b.LastSeq, b.MinSeq, err
}

// handleTicketRequest answers a PDA's TICKET_REQUEST with a TICKET, or drops it.
func (o *Ops) handleTicketRequest(pdaID string, rec noisehs.Record) error {
	if len(rec.Body) < 9 {
		return drop(dropTicket, "ticket request of %d bytes", len(rec.Body))
	}
	var hhID noisehs.HHID
	copy(hhID[:], rec.Body[:8])
	hh := string(rec.Body[8:])
	if !wire.ValidID(hh) || noisehs.HHIDFromText(hh) != hhID {
		return drop(dropTicket, "ticket request: hh_id does not match handheld %q", hh)
	}
	b, err := o.db.NextTicket(wire.HandheldID(hh), wire.PDAID(pdaID))
	if errors.Is(err, store.ErrNotAssigned) {
		return drop(dropTicket, "ticket request for handheld %s: %w", hh, err)
	}
	if err != nil {
		return fmt.Errorf("ticket for handheld %s: %w", hh, err)
	}
	now := o.now()
	f := noisehs.TicketFields{
		KeyVer: b.KeyVer, HH: hhID, Seq: b.LastSeq, PDA: noisehs.PDAIDFromText(pdaID),
		NotBefore: uint64(now.UnixMilli()), NotAfter: uint64(now.Add(ticketLifetime).UnixMilli()),
		MaxOps: ticketMaxOps, MinTicketSeq: b.MinSeq,
	}
	var kBind [32]byte
	if _, err := rand.Read(f.ID[:]); err != nil {
		return fmt.Errorf("ticket id: %w", err)
	}
	if _, err := rand.Read(kBind[:]); err != nil {
		return fmt.Errorf("k_bind: %w", err)
	}
	kHH := noisehs.HandheldKey(o.tickets.master, hhID, b.KeyVer)
	sealed, err := noisehs.SealTicket(kHH, f, kBind)
	clear(kHH[:])
	if err != nil {
		return fmt.Errorf("seal ticket: %w", err)
	}
	body, err := noisehs.TicketGrant{KBind: kBind, Seq: f.Seq, NotBefore: f.NotBefore, NotAfter: f.NotAfter, Sealed: sealed}.AppendBinary(nil)
	clear(kBind[:])
	if err != nil {
		return fmt.Errorf("ticket grant: %w", err)
	}
	o.reply(pdaID, noisehs.KindTicket, body, "ticket")
	clear(body)
	o.metrics.Add(metricTickets, 1)
	o.log.Info("handheld ticket issued", "pda", pdaID, "handheld", hh, "seq", f.Seq, "not_after", time.UnixMilli(int64(f.NotAfter)))
	return nil
}

// pdaAdmin is what the API's PDA endpoints call: revocation also stops the PDA's handheld
// tickets and raises their min_ticket_seq (security.md §10), before its SIDs go.
type pdaAdmin struct{ o *Ops }

func (a pdaAdmin) OpsPublicKey() (byte, [32]byte) { return a.o.OpsPublicKey() }

func (a pdaAdmin) RevokePDA(id string) error {
	hhs, err := a.o.db.RevokeTickets(wire.PDAID(id))
	if err != nil {
		return fmt.Errorf("stop tickets of pda %s: %w", id, err)
	}
	if len(hhs) > 0 {
		a.o.log.Info("handheld tickets stopped", "pda", id, "handhelds", len(hhs))
	}
	return a.o.RevokePDA(id)
}
