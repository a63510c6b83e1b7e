package seclink

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/meterlink/meterlink/noisehs"
	"github.com/meterlink/meterlink/ops/internal/store"
	"github.com/meterlink/meterlink/topic"
	"github.com/meterlink/meterlink/wire"
)

// pda is a hand-driven PDA for the link's tests.
type pda struct {
	t    *testing.T
	id   string
	kp   noisehs.Keypair
	ops  [32]byte
	st   noisehs.PDAState
	init *noisehs.Initiator
	psk  noisehs.SID
}

func newPDA(t *testing.T, l *Link, id string, sid0 [32]byte) *pda {
	kp, err := noisehs.GenerateKeypair(nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &pda{t: t, id: id, kp: kp}
	_, p.ops = l.OpsPublic()
	p.st.Cur.Key = sid0
	return p
}

func (p *pda) hsInit(now time.Time) []byte {
	p.t.Helper()
	next, psk, ctr := p.st.NextHandshake()
	p.st, p.psk = next, psk
	idx, _ := noisehs.NewIndex()
	i, err := noisehs.NewInitiator(noisehs.InitiatorConfig{Static: p.kp, OpsStatic: p.ops, OpsKey: 1,
		PDAID: noisehs.PDAIDFromText(p.id), SID: psk, HSCounter: ctr, Now: now, SenderIdx: idx})
	if err != nil {
		p.t.Fatal(err)
	}
	p.init = i
	return i.HSInit()
}

// complete reads HS_RESP and returns a session and its CONFIRM.
func (p *pda) complete(resp []byte) (*noisehs.Session, []byte) {
	p.t.Helper()
	est, err := p.init.ReadHSResp(resp)
	if err != nil {
		p.t.Fatal(err)
	}
	p.st = p.st.Completed(p.psk, est.Keys.NextSID)
	s, err := noisehs.NewSession(est, time.Now)
	if err != nil {
		p.t.Fatal(err)
	}
	f, err := s.Seal(topic.PDAUp(p.id), noisehs.Record{Kind: noisehs.KindConfirm})
	if err != nil {
		p.t.Fatal(err)
	}
	p.st = p.st.OpsRecord(est.Keys.NextSID) // as if COMMIT arrived
	return s, f
}

func newLink(t *testing.T, now func() time.Time) (*Link, *store.DB, [32]byte) {
	t.Helper()
	db, err := store.Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var sid0 [32]byte
	sid0[0] = 7
	if _, err := db.EnsurePDA(store.PDA{ID: "P01", SID: sid0[:], State: store.PDAEnrolled, CreatedMS: now().UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	kp, _ := noisehs.GenerateKeypair(nil)
	return New(Config{Store: db, Key: kp, OpsKey: 1, Now: now}), db, sid0
}

// memStore is a [Store] in a map, for synctest bubbles (buntdb runs a background goroutine).
type memStore struct{ rows map[wire.PDAID]store.PDARow }

func (m *memStore) PDARow(id wire.PDAID) (store.PDARow, error) {
	r, ok := m.rows[id]
	if !ok {
		return r, store.ErrNotFound
	}
	return r, nil
}

func (m *memStore) UpdatePDARow(id wire.PDAID, fn func(*store.PDARow) error) (store.PDARow, error) {
	r, err := m.PDARow(id)
	if err != nil {
		return r, err
	}
	if err := fn(&r); err != nil {
		return r, err
	}
	m.rows[id] = r
	return r, nil
}

func (m *memStore) SetPDAState(id wire.PDAID, s store.PDAState) (store.PDA, error) {
	r, err := m.UpdatePDARow(id, func(r *store.PDARow) error { r.State = s; return nil })
	return r.View(), err
}

// memLink is a link over a memStore with P01 provisioned.
func memLink(t *testing.T) (*Link, [32]byte) {
	var sid0 [32]byte
	sid0[0] = 7
	st := &memStore{rows: map[wire.PDAID]store.PDARow{"P01": {ID: "P01", State: store.PDAEnrolled,
		CreatedMS: time.Now().UnixMilli(), Cur: store.StoredSID{Key: sid0[:]}}}}
	kp, _ := noisehs.GenerateKeypair(nil)
	return New(Config{Store: st, Key: kp, OpsKey: 1}), sid0
}

// connect runs a full handshake and CONFIRM through the link.
func connect(t *testing.T, l *Link, p *pda, now time.Time) {
	t.Helper()
	resp, err := l.HandleHSInit(p.id, p.hsInit(now))
	if err != nil {
		t.Fatalf("HandleHSInit = %v", err)
	}
	_, confirm := p.complete(resp)
	if _, err := l.Open(p.id, topic.PDAUp(p.id), confirm); err != nil {
		t.Fatalf("Open(confirm) = %v", err)
	}
}

func row(t *testing.T, db *store.DB) store.PDARow {
	t.Helper()
	r, err := db.PDARow("P01")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestEnrolmentAndRotation: the first session binds S_pda and replaces SID₀; every later
// handshake and confirmation advances the epoch; the broker verifiers follow.
func TestEnrolmentAndRotation(t *testing.T) {
	now := time.Now()
	l, db, sid0 := newLink(t, func() time.Time { return now })
	p := newPDA(t, l, "P01", sid0)
	connect(t, l, p, now)
	r := row(t, db)
	if len(r.Static) != 32 || r.Cur.Epoch != 1 || !r.Pending.IsZero() || len(r.Slots) != 0 {
		t.Fatalf("after enrolment: static %d bytes, epoch %d, pending %v, %d slots", len(r.Static), r.Cur.Epoch, !r.Pending.IsZero(), len(r.Slots))
	}
	for want := uint32(2); want <= 4; want++ {
		connect(t, l, p, now)
		if r := row(t, db); r.Cur.Epoch != want || !p.st.Cur.Equal(toSID(r.Cur)) {
			t.Fatalf("epoch %d, pda agrees %v; want %d", r.Cur.Epoch, p.st.Cur.Equal(toSID(r.Cur)), want)
		}
	}
	cur, more, ok := l.Verifiers("P01")
	if !ok || len(more) != 0 || cur == ([32]byte{}) {
		t.Errorf("Verifiers = %x, %d more, %v", cur, len(more), ok)
	}
}

// TestEnrolmentSlots (§4.3, T6): injected pre-enrolment handshakes take slots but change
// neither SID₀ nor the real PDA's slot; a ninth static is dropped.
func TestEnrolmentSlots(t *testing.T) {
	now := time.Now()
	l, db, sid0 := newLink(t, func() time.Time { return now })
	l.cfg.HSBurst = 100
	for i := range maxSlots {
		if _, err := l.HandleHSInit("P01", newPDA(t, l, "P01", sid0).hsInit(now)); err != nil {
			t.Fatalf("injector %d: %v", i, err)
		}
	}
	if _, err := l.HandleHSInit("P01", newPDA(t, l, "P01", sid0).hsInit(now)); !errors.Is(err, ErrSlotsFull) {
		t.Errorf("ninth static: %v, want ErrSlotsFull", err)
	}
	if r := row(t, db); len(r.Static) != 0 || r.Cur.Epoch != 0 || len(r.Slots) != maxSlots {
		t.Errorf("row after injections: bound %v, epoch %d, %d slots", len(r.Static) > 0, r.Cur.Epoch, len(r.Slots))
	}
}

// TestCloneAlarm (§9, T12): a fresh HS_INIT from S_pda naming an epoch older than cur locks
// the row; the honest PDA then gets nothing until re-provisioning.
func TestCloneAlarm(t *testing.T) {
	now := time.Now()
	l, db, sid0 := newLink(t, func() time.Time { return now })
	p := newPDA(t, l, "P01", sid0)
	connect(t, l, p, now)
	clone := *p // copied before the next rotation
	connect(t, l, p, now)
	connect(t, l, p, now)
	clone.st.HSCounter = p.st.HSCounter + 10 // fresh, so rule 5 passes
	if _, err := l.HandleHSInit("P01", clone.hsInit(now)); !errors.Is(err, noisehs.ErrCloneAlarm) {
		t.Fatalf("clone's HS_INIT: %v, want ErrCloneAlarm", err)
	}
	if r := row(t, db); r.State != store.PDALocked || r.LockedMS == 0 {
		t.Errorf("row state %s, want locked", r.State)
	}
	if _, err := l.HandleHSInit("P01", p.hsInit(now)); !errors.Is(err, ErrRevoked) {
		t.Errorf("honest PDA after the alarm: %v, want a drop", err)
	}
	if _, _, ok := l.Verifiers("P01"); ok {
		t.Error("a locked PDA keeps broker verifiers")
	}
}

// TestRateLimitAndLockout (§9, T18, synctest): HS_INIT burst 5 then 1/min; 10 failures in a
// row lock the PDA out for 15 min, doubling; all of it invisible on the wire.
func TestRateLimitAndLockout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, sid0 := memLink(t)
		p := newPDA(t, l, "P01", sid0)
		for i := range 5 {
			if _, err := l.HandleHSInit("P01", p.hsInit(time.Now())); err != nil {
				t.Fatalf("handshake %d: %v", i, err)
			}
		}
		if _, err := l.HandleHSInit("P01", p.hsInit(time.Now())); !errors.Is(err, ErrRateLimit) {
			t.Fatalf("sixth handshake: %v, want ErrRateLimit", err)
		}
		time.Sleep(time.Minute)
		if _, err := l.HandleHSInit("P01", p.hsInit(time.Now())); err != nil {
			t.Fatalf("after a minute: %v", err)
		}

		l.cfg.HSBurst = 1000
		time.Sleep(time.Hour) // refill
		var wrong [32]byte
		bad := newPDA(t, l, "P01", wrong)
		for i := range 10 {
			if _, err := l.HandleHSInit("P01", bad.hsInit(time.Now())); err == nil || errors.Is(err, ErrLockedOut) {
				t.Fatalf("bad handshake %d: %v", i, err)
			}
		}
		if _, err := l.HandleHSInit("P01", p.hsInit(time.Now())); !errors.Is(err, ErrLockedOut) {
			t.Fatalf("after 10 failures: %v, want ErrLockedOut", err)
		}
		time.Sleep(15 * time.Minute)
		if _, err := l.HandleHSInit("P01", p.hsInit(time.Now())); err != nil {
			t.Fatalf("after the lockout: %v", err)
		}
	})
}

// TestRevoke (§10, T14): rows cleared, sessions dropped, the broker told, records refused.
func TestRevoke(t *testing.T) {
	now := time.Now()
	l, db, sid0 := newLink(t, func() time.Time { return now })
	var disconnected []string
	l.SetDisconnect(func(id string) { disconnected = append(disconnected, id) })
	p := newPDA(t, l, "P01", sid0)
	resp, err := l.HandleHSInit("P01", p.hsInit(now))
	if err != nil {
		t.Fatal(err)
	}
	s, confirm := p.complete(resp)
	if _, err := l.Open("P01", topic.PDAUp("P01"), confirm); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Revoke(wire.PDAID("P01")); err != nil {
		t.Fatal(err)
	}
	rec, _ := s.Seal(topic.PDAUp("P01"), noisehs.Record{Kind: noisehs.KindBatch, Body: []byte("{}")})
	if _, err := l.Open("P01", topic.PDAUp("P01"), rec); !errors.Is(err, ErrNoSession) {
		t.Errorf("record after revocation: %v, want ErrNoSession", err)
	}
	if r := row(t, db); r.State != store.PDARevoked || !r.Cur.IsZero() || !r.Pending.IsZero() {
		t.Errorf("row after revocation: %+v", r.View())
	}
	if len(disconnected) != 1 || disconnected[0] != "P01" || l.Sessions("P01") != 0 {
		t.Errorf("disconnected %v, %d sessions", disconnected, l.Sessions("P01"))
	}
	if _, err := l.HandleHSInit("P01", p.hsInit(now)); !errors.Is(err, ErrRevoked) {
		t.Errorf("handshake after revocation: %v", err)
	}
}
