package noisehs

import (
	"bytes"
	"errors"
	"flag"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func TestPDAStateRules(t *testing.T) {
	a, b, c := SID{Epoch: 0, Key: seeded("A")}, SID{Epoch: 1, Key: seeded("B")}, SID{Epoch: 2, Key: seeded("C")}
	p := PDAState{Cur: a}
	p, psk, n := p.NextHandshake()
	if !psk.Equal(a) || n != 1 || p.HSCounter != 1 {
		t.Fatalf("NextHandshake = %d, psk epoch %d", n, psk.Epoch)
	}
	p = p.Completed(psk, b)
	if !p.Cur.Equal(a) || !p.Pending.Equal(b) || !p.Selected().Equal(b) {
		t.Fatal("Completed with cur did not set pending")
	}
	p, psk, _ = p.NextHandshake()
	if !psk.Equal(b) {
		t.Fatal("handshake does not name pending")
	}
	p = p.Completed(psk, c)
	if !p.Cur.Equal(b) || !p.Pending.Equal(c) {
		t.Fatal("Completed with pending did not commit it")
	}
	if q := p.OpsRecord(b); q != p {
		t.Fatal("record of an older session committed")
	}
	p = p.OpsRecord(c)
	if !p.Cur.Equal(c) || !p.Pending.IsZero() {
		t.Fatal("OpsRecord did not commit")
	}
}

// rotModel is T11's world: one honest PDA, ops' row, and a broker that
// loses, duplicates, reorders and replays, with crashes at persistence points.
type rotModel struct {
	t     *rapid.T
	f     fixture
	thief Keypair
	now   time.Time
	idx   uint32

	pda      PDAState // persisted
	inflight *Initiator
	inPSK    SID
	pdaSess  map[uint32]*modelSess
	newest   uint32

	row     OpsRow // persisted
	opsSess map[uint32]*modelSess

	up, down [][]byte // in flight
	history  []sent   // everything ever published, for replays
	seen     map[[2]uint64]bool
}

type sent struct {
	up    bool
	frame []byte
}

type modelSess struct {
	s         *Session
	candidate SID
}

func (m *rotModel) nextIdx() uint32 { m.idx++; return m.idx }

func (m *rotModel) publish(up bool, b []byte) {
	if up {
		m.up = append(m.up, b)
	} else {
		m.down = append(m.down, b)
	}
	m.history = append(m.history, sent{up: up, frame: b})
}

// take removes (or, duplicating, keeps) a random in-flight frame.
func take(t *rapid.T, pool *[][]byte, label string) []byte {
	if len(*pool) == 0 {
		t.Skip("nothing in flight")
	}
	i := rapid.IntRange(0, len(*pool)-1).Draw(t, label)
	b := (*pool)[i]
	if rapid.IntRange(0, 3).Draw(t, label+"_dup") != 0 {
		*pool = append((*pool)[:i:i], (*pool)[i+1:]...)
	}
	return b
}

func (m *rotModel) respConfig() ResponderConfig {
	return ResponderConfig{Static: m.f.ops, OpsKey: m.f.opsKey, PDAID: m.f.pdaID, SenderIdx: m.nextIdx()}
}

func (m *rotModel) accept(side uint64, s *Session, frame []byte) {
	d, _ := ParseData(frame)
	k := [2]uint64{side<<32 | uint64(s.LocalIdx()), d.Counter}
	if m.seen[k] {
		m.t.Fatalf("I3: side %d session %d counter %d accepted twice", side, s.LocalIdx(), d.Counter)
	}
	m.seen[k] = true
}

func (m *rotModel) pdaStart(t *rapid.T) {
	next, psk, n := m.pda.NextHandshake()
	m.pda = next // persisted before HS_INIT leaves
	if rapid.IntRange(0, 9).Draw(t, "crash_after_counter") == 0 {
		m.crashPDA(t)
		return
	}
	ic := InitiatorConfig{Static: m.f.pda, OpsStatic: m.f.ops.Public, OpsKey: m.f.opsKey, PDAID: m.f.pdaID,
		SID: psk, HSCounter: n, Now: m.now, SenderIdx: m.nextIdx()}
	i, err := NewInitiator(ic)
	if err != nil {
		t.Fatal(err)
	}
	m.inflight, m.inPSK = i, psk
	m.publish(true, i.HSInit())
}

func (m *rotModel) opsHSInit(t *rapid.T, frame []byte) {
	out := m.row.HandleHSInit(m.respConfig(), frame, m.now, m.f.payload2())
	switch out.Action {
	case ActCloneAlarm:
		t.Fatalf("I5: honest PDA tripped the clone alarm: %v", out.Err)
	case ActRepublish:
		m.publish(false, out.HSResp)
	case ActRespond:
		switch rapid.IntRange(0, 9).Draw(t, "ops_crash") {
		case 0: // crash before the transaction: nothing happened
			m.crashOps()
			return
		case 1: // crash after it, before publishing
			m.row = out.Row
			m.crashOps()
			return
		}
		m.row = out.Row
		s, err := NewSession(out.Session, m.clock)
		if err != nil {
			t.Fatal(err)
		}
		m.opsSess[s.LocalIdx()] = &modelSess{s: s, candidate: out.Session.Keys.NextSID}
		m.publish(false, out.HSResp)
	}
}

func (m *rotModel) opsData(t *rapid.T, frame []byte) {
	d, err := ParseData(frame)
	if err != nil {
		return
	}
	ms := m.opsSess[d.ReceiverIdx]
	if ms == nil {
		return
	}
	first := !ms.s.Confirmed()
	r, err := ms.s.Open(topicUp, m.f.pdaID, frame)
	if err != nil {
		return
	}
	m.accept(1, ms.s, frame)
	if first {
		if rapid.IntRange(0, 9).Draw(t, "ops_commit_crash") == 0 {
			m.crashOps()
			return
		}
		m.row = m.row.ConfirmedBy(ms.candidate)
	}
	if r.Kind == KindConfirm {
		b, err := ms.s.Seal(topicDown, Record{Kind: KindCommit})
		if err != nil {
			t.Fatal(err)
		}
		m.publish(false, b)
	}
}

func (m *rotModel) pdaHSResp(t *rapid.T, frame []byte) {
	if m.inflight == nil {
		return
	}
	e, err := m.inflight.ReadHSResp(frame)
	if err != nil {
		return
	}
	m.inflight = nil
	m.pda = m.pda.Completed(m.inPSK, e.Keys.NextSID) // persisted, then CONFIRM
	if rapid.IntRange(0, 9).Draw(t, "pda_crash_before_confirm") == 0 {
		m.crashPDA(t)
		return
	}
	s, err := NewSession(e, m.clock)
	if err != nil {
		t.Fatal(err)
	}
	m.pdaSess[s.LocalIdx()] = &modelSess{s: s, candidate: e.Keys.NextSID}
	m.newest = s.LocalIdx()
	b, err := s.Seal(topicUp, Record{Kind: KindConfirm})
	if err != nil {
		t.Fatal(err)
	}
	m.publish(true, b)
}

func (m *rotModel) pdaData(t *rapid.T, frame []byte) {
	d, err := ParseData(frame)
	if err != nil {
		return
	}
	ms := m.pdaSess[d.ReceiverIdx]
	if ms == nil {
		return
	}
	if _, err := ms.s.Open(topicDown, m.f.pdaID, frame); err != nil {
		return
	}
	m.accept(0, ms.s, frame)
	if d.ReceiverIdx == m.newest {
		m.pda = m.pda.OpsRecord(ms.candidate)
	}
}

func (m *rotModel) crashPDA(*rapid.T) {
	m.inflight, m.pdaSess, m.newest = nil, map[uint32]*modelSess{}, 0
}

func (m *rotModel) crashOps() { m.opsSess = map[uint32]*modelSess{} }

func (m *rotModel) clock() time.Time { return m.now }

// forge sends HS_INITs that must change nothing (I6): a wrong SID with the
// real static, and the real SID with a thief's static.
func (m *rotModel) forge(t *rapid.T) {
	sid := m.pda.Selected()
	static := m.f.pda
	if rapid.Bool().Draw(t, "forge_sid") {
		sid.Key[rapid.IntRange(0, 31).Draw(t, "forge_byte")] ^= 1
		sid.Epoch = max(sid.Epoch, m.row.Cur.Epoch) // older epochs are the clone alarm's business
	} else {
		static = m.thief
	}
	ic := InitiatorConfig{Static: static, OpsStatic: m.f.ops.Public, OpsKey: m.f.opsKey, PDAID: m.f.pdaID,
		SID: sid, HSCounter: m.pda.HSCounter + 1000, Now: m.now, SenderIdx: m.nextIdx()}
	i, err := NewInitiator(ic)
	if err != nil {
		t.Fatal(err)
	}
	before := m.row
	out := m.row.HandleHSInit(m.respConfig(), i.HSInit(), m.now, m.f.payload2())
	if out.Action != ActDrop || out.Session != nil || !rowEqual(out.Row, before) {
		t.Fatalf("I6: forged HS_INIT gave action %d (err %v)", out.Action, out.Err)
	}
}

// forgeData sends a record with a forged high counter ahead of a genuine
// one: the forgery fails and must not move the window (the "mark before tag
// check" mutant wedges the session here).
func (m *rotModel) forgeData(t *rapid.T) {
	ps := m.pdaSess[m.newest]
	if ps == nil {
		t.Skip("no PDA session")
	}
	os := m.opsSess[ps.s.PeerIdx()]
	if os == nil || os.s.Expired() {
		t.Skip("no live ops session")
	}
	g, err := ps.s.Seal(topicUp, Record{Kind: KindApp})
	if err != nil {
		t.Fatal(err)
	}
	forged := bytes.Clone(g)
	forged[13] ^= byte(rapid.IntRange(1, 255).Draw(t, "forge_ctr")) // +2^16..2^24, below the 2^40 limit
	if _, err := os.s.Open(topicUp, m.f.pdaID, forged); err == nil {
		t.Fatal("forged counter accepted")
	}
	d, _ := ParseData(g)
	if !os.s.window.check(d.Counter) {
		t.Fatal("forged counter moved the replay window")
	}
	m.publish(true, g)
}

func rowEqual(a, b OpsRow) bool {
	return a.Cur.Equal(b.Cur) && a.Pending.Equal(b.Pending) && a.LastHS == b.LastHS &&
		a.Locked == b.Locked && a.CachedHash == b.CachedHash
}

func (m *rotModel) check(t *rapid.T) {
	sel := m.pda.Selected()
	if !sel.Equal(m.row.Cur) && (m.row.Pending.IsZero() || !sel.Equal(m.row.Pending)) {
		t.Fatalf("I1: PDA's SID (epoch %d) is neither ops' cur (%d) nor pending (%d)", sel.Epoch, m.row.Cur.Epoch, m.row.Pending.Epoch)
	}
	if m.row.Cur.Epoch > sel.Epoch {
		t.Fatalf("I2: ops cur epoch %d > PDA's %d", m.row.Cur.Epoch, sel.Epoch)
	}
	if m.row.Locked {
		t.Fatal("I5: row locked")
	}
}

// cleanRound runs one fault-free handshake, CONFIRM and COMMIT.
func (m *rotModel) cleanRound(t *rapid.T) {
	m.up, m.down = nil, nil
	m.now = m.now.Add(2 * MsgDupCache)
	next, psk, n := m.pda.NextHandshake()
	m.pda = next
	i, err := NewInitiator(InitiatorConfig{Static: m.f.pda, OpsStatic: m.f.ops.Public, OpsKey: m.f.opsKey,
		PDAID: m.f.pdaID, SID: psk, HSCounter: n, Now: m.now, SenderIdx: m.nextIdx()})
	if err != nil {
		t.Fatal(err)
	}
	out := m.row.HandleHSInit(m.respConfig(), i.HSInit(), m.now, m.f.payload2())
	if out.Action != ActRespond {
		t.Fatalf("I4: clean HS_INIT: action %d, %v", out.Action, out.Err)
	}
	m.row = out.Row
	e, err := i.ReadHSResp(out.HSResp)
	if err != nil {
		t.Fatalf("I4: clean HS_RESP: %v", err)
	}
	m.pda = m.pda.Completed(psk, e.Keys.NextSID)
	ps, _ := NewSession(e, m.clock)
	os, _ := NewSession(out.Session, m.clock)
	c, _ := ps.Seal(topicUp, Record{Kind: KindConfirm})
	if _, err := os.Open(topicUp, m.f.pdaID, c); err != nil {
		t.Fatalf("I4: CONFIRM: %v", err)
	}
	m.row = m.row.ConfirmedBy(out.Session.Keys.NextSID)
	k, _ := os.Seal(topicDown, Record{Kind: KindCommit})
	if _, err := ps.Open(topicDown, m.f.pdaID, k); err != nil {
		t.Fatalf("I4: COMMIT: %v", err)
	}
	m.pda = m.pda.OpsRecord(e.Keys.NextSID)
	if !m.pda.Cur.Equal(m.row.Cur) || !m.pda.Pending.IsZero() || !m.row.Pending.IsZero() {
		t.Fatalf("I4: no convergence: PDA cur %d pending %d, ops cur %d pending %d",
			m.pda.Cur.Epoch, m.pda.Pending.Epoch, m.row.Cur.Epoch, m.row.Pending.Epoch)
	}
}

const (
	topicUp   = "meterlink/v1/pda/PTEST/up"
	topicDown = "meterlink/v1/pda/PTEST/down"
)

// T11: I1–I6 of §7.1 under loss, duplication, reordering, replay, forgery
// and crashes at every persistence point, including §7.3's lost-CONFIRM
// sequences. At least 200 runs (raise with -rapid.checks for nightly runs).
func TestRotationProperties(t *testing.T) {
	raiseFlag(t, "rapid.checks", "100", "200")
	raiseFlag(t, "rapid.steps", "30", "100")
	f := newFixture(t)
	thief := mustKeypair(t, "thief")
	rapid.Check(t, func(t *rapid.T) {
		m := &rotModel{
			t: t, f: f, thief: thief, now: testNow,
			pda:     PDAState{Cur: SID{Key: seeded("SID0")}},
			row:     OpsRow{Static: f.pda.Public, Cur: SID{Key: seeded("SID0")}},
			pdaSess: map[uint32]*modelSess{}, opsSess: map[uint32]*modelSess{},
			seen: map[[2]uint64]bool{},
		}
		opsReceive := func(t *rapid.T) {
			b := take(t, &m.up, "up")
			if h, err := ParseHeader(b); err == nil && h.Type == TypeHSInit {
				m.opsHSInit(t, b)
			} else {
				m.opsData(t, b)
			}
		}
		pdaReceive := func(t *rapid.T) {
			b := take(t, &m.down, "down")
			if h, err := ParseHeader(b); err == nil && h.Type == TypeHSResp {
				m.pdaHSResp(t, b)
			} else {
				m.pdaData(t, b)
			}
		}
		// Deliveries appear several times so that faults do not drown them.
		t.Repeat(map[string]func(*rapid.T){
			"pda_handshake": m.pdaStart,
			"ops_receive":   opsReceive,
			"ops_receive_2": opsReceive,
			"ops_receive_3": opsReceive,
			"pda_receive":   pdaReceive,
			"pda_receive_2": pdaReceive,
			"pda_receive_3": pdaReceive,
			"pda_uplink": func(t *rapid.T) {
				if ms := m.pdaSess[m.newest]; ms != nil {
					b, err := ms.s.Seal(topicUp, Record{Kind: KindApp})
					if err != nil {
						t.Fatal(err)
					}
					m.publish(true, b)
				}
			},
			"lose": func(t *rapid.T) {
				pool := &m.up
				if rapid.Bool().Draw(t, "lose_down") {
					pool = &m.down
				}
				if len(*pool) > 0 {
					i := rapid.IntRange(0, len(*pool)-1).Draw(t, "lose_i")
					*pool = append((*pool)[:i:i], (*pool)[i+1:]...)
				}
			},
			"replay": func(t *rapid.T) {
				if len(m.history) == 0 {
					t.Skip("no history")
				}
				r := m.history[rapid.IntRange(0, len(m.history)-1).Draw(t, "replay")]
				if r.up {
					m.up = append(m.up, r.frame)
				} else {
					m.down = append(m.down, r.frame)
				}
			},
			"forge_data": m.forgeData,
			"crash_pda":  m.crashPDA,
			"crash_ops":  func(*rapid.T) { m.crashOps() },
			"time":       func(*rapid.T) { m.now = m.now.Add(MsgDupCache + time.Second) },
			"forge":      m.forge,
			"":           m.check,
		})
		m.cleanRound(t)
	})
}

// raiseFlag sets a rapid flag still at its default for this test only, so
// plain go test meets T11's minimum while -rapid.checks=N still wins.
func raiseFlag(t *testing.T, name, def, v string) {
	f := flag.Lookup(name)
	if f == nil || f.Value.String() != def {
		return
	}
	if err := f.Value.Set(v); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Value.Set(def) })
}

func TestOpsRowCloneAlarm(t *testing.T) {
	f := newFixture(t)
	old := SID{Epoch: 2, Key: seeded("SID2")}
	row := OpsRow{Static: f.pda.Public, Cur: f.sid, LastHS: 10}
	ic := f.initConfig()
	ic.SID = old
	i, _ := NewInitiator(ic)
	out := row.HandleHSInit(f.respConfig(), i.HSInit(), testNow, f.payload2())
	if out.Action != ActCloneAlarm || !out.Row.Locked || !errors.Is(out.Err, ErrCloneAlarm) {
		t.Fatalf("older epoch: action %d, err %v", out.Action, out.Err)
	}
	// Replays of the same frame fail rule 5 first: no DoS lever.
	row.LastHS = ic.HSCounter
	if out := row.HandleHSInit(f.respConfig(), i.HSInit(), testNow, f.payload2()); out.Action != ActDrop || !errors.Is(out.Err, ErrStaleCounter) {
		t.Fatalf("replayed clone HS_INIT: action %d, err %v", out.Action, out.Err)
	}
}

// T6 (ops side): a duplicate within 60 s is answered from the cache with no
// second session; a later copy fails rule 5.
func TestOpsRowDuplicate(t *testing.T) {
	f := newFixture(t)
	row := OpsRow{Static: f.pda.Public, Cur: f.sid}
	i, _ := NewInitiator(f.initConfig())
	out := row.HandleHSInit(f.respConfig(), i.HSInit(), testNow, f.payload2())
	if out.Action != ActRespond {
		t.Fatalf("first: action %d, err %v", out.Action, out.Err)
	}
	row = out.Row
	dup := row.HandleHSInit(f.respConfig(), i.HSInit(), testNow.Add(30*time.Second), f.payload2())
	if dup.Action != ActRepublish || dup.Session != nil || string(dup.HSResp) != string(out.HSResp) {
		t.Fatalf("duplicate: action %d, err %v", dup.Action, dup.Err)
	}
	late := row.HandleHSInit(f.respConfig(), i.HSInit(), testNow.Add(MsgDupCache), f.payload2())
	if late.Action != ActDrop || !errors.Is(late.Err, ErrStaleCounter) {
		t.Fatalf("late copy: action %d, err %v", late.Action, late.Err)
	}
}
