package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meterlink/meterlink/bus"
	"github.com/meterlink/meterlink/demo"
	"github.com/meterlink/meterlink/noisehs"
	"github.com/meterlink/meterlink/topic"
)

// The handheld binding (security.md §12) through the real lab: ops issues a ticket only to the
// PDA the handheld is assigned to, the PDA links the handheld with it, and nothing from the
// handheld crosses the PDA without that link.

// listenerClient connects to the PDA's local listener as user with password.
func listenerClient(t *testing.T, addr, clientID, user, password string) *bus.Client {
	t.Helper()
	c, err := bus.New(bus.Config{URL: "tcp://" + addr, ClientID: clientID, Username: user,
		Password: func() string { return password }, CleanSession: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("connect to the pda listener as %s: %v", user, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// T15 and T14 (tickets): the link comes up only with an ops-issued ticket; forged hellos (a
// genuine-looking ticket without its k_bind, an expired one) and unsealed handheld traffic are
// refused; revoking the PDA stops its tickets and raises min_ticket_seq.
func TestHandheldBindingAndRevocation(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e test skipped under -short")
	}
	cfg := secLabConfig(t)
	l := startLab(t, cfg)
	cfg = l.Config()
	waitFor(t, 20*time.Second, func() error {
		if !l.Handheld.Link().Up || !l.Bridge.HandheldLinked(cfg.HandheldID) {
			return fmt.Errorf("handheld link not up: handheld %+v, bridge stats %+v", l.Handheld.Link(), l.Bridge.Stats())
		}
		return nil
	})
	pda, last, minSeq, err := l.Ops.HandheldTickets(cfg.HandheldID)
	if err != nil || pda != cfg.PDAID || last < 1 || minSeq != 0 {
		t.Fatalf("ops' ticket state: pda %q last %d min %d err %v", pda, last, minSeq, err)
	}
	if got := l.Handheld.Link().MinTicketSeq; got != 0 {
		t.Errorf("handheld min_ticket_seq = %d, want 0", got)
	}

	// A PDA that never got the TICKET: it holds a genuine ticket (even a newer one), but not
	// its k_bind, and cannot link. The handheld counts the failure and keeps its link.
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, "lab-secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sec struct {
		BridgeKey   string `json:"bridge_key"`
		HandheldKey string `json:"handheld_key"`
	}
	if err := json.Unmarshal(b, &sec); err != nil {
		t.Fatal(err)
	}
	evil := listenerClient(t, cfg.PDAAddr, cfg.PDAID+"-bridge-evil", cfg.PDAID+"-bridge", sec.BridgeKey)
	kHH, keyVer := l.Ops.HandheldKey(cfg.HandheldID)
	now := time.Now()
	fields := noisehs.TicketFields{KeyVer: keyVer, HH: noisehs.HHIDFromText(cfg.HandheldID), ID: [16]byte{9}, Seq: last + 10,
		PDA: noisehs.PDAIDFromText(cfg.PDAID), NotBefore: uint64(now.UnixMilli()), NotAfter: uint64(now.Add(time.Hour).UnixMilli()), MaxOps: 10}
	hello := func(f noisehs.TicketFields, kBind [32]byte) []byte {
		sealed, err := noisehs.SealTicket(kHH, f, [32]byte{1})
		if err != nil {
			t.Fatal(err)
		}
		i, err := noisehs.NewHHInitiator(f.PDA, sealed, kBind, time.Time{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return i.Hello()
	}
	expired := fields
	expired.ID, expired.NotBefore, expired.NotAfter = [16]byte{10}, uint64(now.Add(-3*time.Hour).UnixMilli()), uint64(now.Add(-2*time.Hour).UnixMilli())
	for i, frame := range [][]byte{hello(fields, [32]byte{2}), hello(expired, [32]byte{1})} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := evil.Publish(ctx, topic.HHHandshakeDown(cfg.HandheldID), 1, false, frame); err != nil {
			t.Fatal(err)
		}
		cancel()
		waitFor(t, 10*time.Second, func() error {
			if got := l.Handheld.Link().Failures; got != i+1 {
				return fmt.Errorf("handheld link failures %d, want %d", got, i+1)
			}
			return nil
		})
	}
	if st := l.Handheld.Link(); !st.Up || st.Locked {
		t.Errorf("after two forged hellos the handheld link is %+v, want up and unlocked", st)
	}

	// The handheld's own credentials without its link: plain traffic does not cross the PDA.
	kb, _ := hex.DecodeString(sec.HandheldKey)
	pw := noisehs.HHListenerPassword([32]byte(kb), noisehs.HHIDFromText(cfg.HandheldID))
	plain := listenerClient(t, cfg.PDAAddr, cfg.HandheldID+"-plain", cfg.HandheldID, pw)
	before := l.Bridge.Stats()
	batch := `{"v":1,"id":"H01-forged","handheld":"H01","records":[{"terminal":"T0001","seq":999,"kind":"reading","ts_ms":1700000000000,"channels":[{"ch":1,"meter":"T0001-01","pulses":1,"energy_wh":1,"constant":3200,"multiplier":1}]}]}`
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := plain.Publish(ctx, topic.HHRecords(cfg.HandheldID), 1, false, []byte(batch)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		if st := l.Bridge.Stats(); st.Unlinked <= before.Unlinked {
			return fmt.Errorf("bridge stats %+v: the plain batch was not refused yet", st)
		}
		return nil
	})
	// The refusal above is this message's; ops never sees its record either.
	rs, err := readings(t, cfg.HTTPAddr, "meter="+demo.MeterID("T0001", 1)+"&limit=1000")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Seq == 999 {
			t.Errorf("ops stored the unsealed batch's reading %+v", r)
		}
	}

	// T14: revocation stops tickets and raises min_ticket_seq above every ticket issued.
	_, lastBefore, _, _ := l.Ops.HandheldTickets(cfg.HandheldID)
	resp, err := http.Post("http://"+cfg.HTTPAddr+"/api/v1/pdas/"+cfg.PDAID+"/revoke", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %s", resp.Status)
	}
	pda, _, minSeq, err = l.Ops.HandheldTickets(cfg.HandheldID)
	if err != nil || pda != "" || minSeq <= lastBefore {
		t.Errorf("after revoke: pda %q min_ticket_seq %d (last issued %d): want no pda and min above every ticket", pda, minSeq, lastBefore)
	}
}
