package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/meterlink/meterlink/bus"
	"github.com/meterlink/meterlink/demo"
	"github.com/meterlink/meterlink/lab"
	"github.com/meterlink/meterlink/noisehs"
	"github.com/meterlink/meterlink/topic"
)

// The SECLINK/1 end-to-end tests (security.md §15): the lab's PDA bridge and ops run the real
// handshake, rotation and sealed records through the real broker.

// secLabConfig is labConfig with every port chosen by the system.
func secLabConfig(t testing.TB) lab.Config {
	cfg := labConfig(t, 1)
	cfg.HHAddr = "127.0.0.1:0"
	return cfg
}

// apiPDA is a PDA as GET /api/v1/pdas/{id} shows it.
type apiPDA struct {
	ID              string `json:"id"`
	State           string `json:"state"`
	Epoch           uint32 `json:"epoch"`
	Bound           bool   `json:"bound"`
	RotationPending bool   `json:"rotation_pending"`
	LastHandshakeMS int64  `json:"last_handshake_ms"`
	LastRotationMS  int64  `json:"last_rotation_ms"`
	SID             string `json:"sid"` // never shown: must stay empty
}

func getPDA(t testing.TB, httpAddr, id string) apiPDA {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/api/v1/pdas/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var p apiPDA
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &p) != nil {
		t.Fatalf("GET pda %s: %s %s", id, resp.Status, b)
	}
	if p.SID != "" || bytes.Contains(b, []byte(`"sid"`)) || bytes.Contains(b, []byte("static")) {
		t.Fatalf("GET pda %s shows secrets: %s", id, b)
	}
	return p
}

// labSecrets reads what the lab generated in its data directory.
func labSecrets(t testing.TB, dir string) (sid0 []byte, opsPassword string, opsKey []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "lab-secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		SID         string `json:"sid"`
		OpsPassword string `json:"ops_password"`
		OpsKey      string `json:"ops_key"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	sid0, _ = hex.DecodeString(s.SID)
	opsKey, _ = hex.DecodeString(s.OpsKey)
	return sid0, s.OpsPassword, opsKey
}

// metric returns the value of one metric line of ops' /metrics, 0 when absent.
func metric(t testing.TB, httpAddr, line string) int {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(l, []byte(line+" ")); ok {
			var n int
			fmt.Sscan(string(v), &n)
			return n
		}
	}
	return 0
}

// rawPDA is a hand-driven PDA (or an attacker holding some of a PDA's secrets) on the broker.
type rawPDA struct {
	t    *testing.T
	id   string
	pid  noisehs.PDAID
	c    *bus.Client
	hs   chan []byte
	down chan []byte
}

func newRawPDA(t *testing.T, brokerAddr, id, password string) (*rawPDA, error) {
	p := &rawPDA{t: t, id: id, pid: noisehs.PDAIDFromText(id), hs: make(chan []byte, 16), down: make(chan []byte, 64)}
	c, err := bus.New(bus.Config{URL: "tcp://" + brokerAddr, ClientID: id, Username: id, CleanSession: true,
		Password: func() string { return password }, Logger: testLogger(t)})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for tp, ch := range map[string]chan []byte{topic.PDAHandshakeDown(id): p.hs, topic.PDADown(id): p.down} {
		if err := c.Subscribe(ctx, tp, 1, func(_ context.Context, m bus.Message) error { ch <- m.Payload; return nil }); err != nil {
			return nil, err
		}
	}
	if err := c.Connect(ctx); err != nil {
		c.Close()
		return nil, err
	}
	p.c = c
	t.Cleanup(func() { c.Close() })
	return p, nil
}

func (p *rawPDA) publish(tp string, b []byte) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.c.Publish(ctx, tp, 1, false, b); err != nil {
		p.t.Fatal(err)
	}
}

// handshake runs a handshake with psk and hsCounter; it returns the session, or nil when ops
// did not answer within wait.
func (p *rawPDA) handshake(static noisehs.Keypair, opsPub [32]byte, psk noisehs.SID, hsCounter uint64, wait time.Duration) (*noisehs.Session, noisehs.SID) {
	p.t.Helper()
	idx, _ := noisehs.NewIndex()
	i, err := noisehs.NewInitiator(noisehs.InitiatorConfig{Static: static, OpsStatic: opsPub, OpsKey: 1, PDAID: p.pid,
		SID: psk, HSCounter: hsCounter, Now: time.Now(), SenderIdx: idx})
	if err != nil {
		p.t.Fatal(err)
	}
	p.publish(topic.PDAHandshakeUp(p.id), i.HSInit())
	deadline := time.After(wait)
	// Like a real PDA (HANDSHAKE_RETRY), send the same HS_INIT again while no answer comes:
	// ops answers a repeat from its cache (security.md §4.1 rule 2).
	retry := time.NewTicker(3 * time.Second)
	defer retry.Stop()
	for {
		select {
		case <-retry.C:
			p.publish(topic.PDAHandshakeUp(p.id), i.HSInit())
		case f := <-p.hs:
			est, err := i.ReadHSResp(f)
			if err != nil {
				continue
			}
			s, err := noisehs.NewSession(est, time.Now)
			if err != nil {
				p.t.Fatal(err)
			}
			return s, est.Keys.NextSID
		case <-deadline:
			return nil, noisehs.SID{}
		}
	}
}

// TestNoRecordWithoutSID (T7, I6): a PDA without the right SID gets no session and ops stores
// nothing, even with valid broker credentials; a bridge with a wrong SID cannot even connect.
func TestNoRecordWithoutSID(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end chain skipped under -short")
	}
	cfg := secLabConfig(t)
	opsLab := startPart(t, cfg, lab.PartBroker, lab.PartOps)
	addr, httpAddr := opsLab.cfg.MQTTAddr, opsLab.cfg.HTTPAddr
	sid0, _, opsKey := labSecrets(t, cfg.DataDir)
	opsKP, _ := noisehs.KeypairFromPrivate([32]byte(opsKey))
	pid := noisehs.PDAIDFromText("P01")

	// A wrong SID gives a wrong broker password: refused.
	var wrong noisehs.SID
	copy(wrong.Key[:], sid0)
	wrong.Key[0] ^= 1
	if _, err := newRawPDA(t, addr, "P01", wrong.BrokerPassword(pid)); err == nil {
		t.Fatal("broker accepted a password derived from a wrong SID")
	}

	// An insider with the broker password but not the SID itself (the broker keeps only
	// verifiers; say the password leaked): no handshake completes, and forged records store nothing.
	var good noisehs.SID
	copy(good.Key[:], sid0)
	p, err := newRawPDA(t, addr, "P01", good.BrokerPassword(pid))
	if err != nil {
		t.Fatal(err)
	}
	static, _ := noisehs.GenerateKeypair(nil)
	for i := range 3 {
		if s, _ := p.handshake(static, opsKP.Public, wrong, uint64(i+1), time.Second); s != nil {
			t.Fatal("ops answered a handshake made with a wrong SID")
		}
	}
	forged := append([]byte{1, 3, 1, 1}, make([]byte, 60)...)
	p.publish(topic.PDAUp("P01"), forged)
	waitFor(t, 5*time.Second, func() error {
		if n := metric(t, httpAddr, `meterlink_ops_messages_dropped_total{reason="no_session"}`); n < 1 {
			return fmt.Errorf("forged record not dropped yet")
		}
		return nil
	})
	if n := metric(t, httpAddr, `meterlink_ops_messages_dropped_total{reason="bad_handshake"}`); n != 3 {
		t.Errorf("%d handshakes dropped as bad, want 3", n)
	}
	if rs, err := readings(t, httpAddr, "terminal=T0001"); err != nil || len(rs) != 0 {
		t.Errorf("ops holds %d readings (%v), want none", len(rs), err)
	}
	if got := getPDA(t, httpAddr, "P01"); got.Bound || got.Epoch != 0 || got.State != "enrolled" || got.LastHandshakeMS != 0 {
		t.Errorf("pda row changed by failed handshakes: %+v", got)
	}
}

// TestRotationAndOfflinePDA (T11 end to end, I1, I4): every handshake rotates the SID, so the
// epoch advances with restarts; a PDA that was offline while ops restarted, and one that
// restarts with a handshake in flight, is never locked out; records flow exactly once.
func TestRotationAndOfflinePDA(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end chain skipped under -short")
	}
	cfg := secLabConfig(t)
	cfg.ResendAfter = 500 * time.Millisecond
	opsLab := startPart(t, cfg, lab.PartBroker, lab.PartOps)
	cfg.MQTTAddr, cfg.HTTPAddr = opsLab.cfg.MQTTAddr, opsLab.cfg.HTTPAddr
	pdaLab := startPart(t, cfg, lab.PartPDA)
	cfg.PDAAddr = pdaLab.cfg.PDAAddr
	hhLab := startPart(t, cfg, lab.PartHandheld)
	cfg.MQTTSNAddr = hhLab.cfg.MQTTSNAddr
	termLab := startPart(t, cfg, lab.PartTerminals)
	term := termLab.lab.Terminals[0]
	meter := demo.MeterID(term.ID(), 1)

	records := 0
	collect := func() {
		t.Helper()
		if err := term.Pulse(1, 100); err != nil {
			t.Fatal(err)
		}
		if _, err := term.Collect(); err != nil {
			t.Fatal(err)
		}
		records++
	}
	arrived := func() {
		t.Helper()
		waitFor(t, 30*time.Second, func() error {
			rs, err := readings(t, cfg.HTTPAddr, "meter="+meter+"&limit=1000")
			if err != nil {
				return err
			}
			seqs := map[uint64]bool{}
			for _, r := range rs {
				if r.Pulses > 0 { // freeze records carry no new pulses in this test
					seqs[r.Seq] = true
				}
			}
			if len(seqs) < records {
				return fmt.Errorf("ops holds %d collected readings of %s, want %d", len(seqs), meter, records)
			}
			return nil
		})
	}
	epochAtLeast := func(min uint32) apiPDA {
		t.Helper()
		var p apiPDA
		waitFor(t, 20*time.Second, func() error {
			p = getPDA(t, cfg.HTTPAddr, "P01")
			if !p.Bound || p.Epoch < min || p.State != "enrolled" {
				return fmt.Errorf("pda row %+v, want bound at epoch ≥ %d", p, min)
			}
			return nil
		})
		return p
	}

	collect()
	arrived()
	first := epochAtLeast(1) // enrolled: SID₀ replaced by SID₁ or later
	for i := range 3 {       // each restart handshakes again and rotates
		pdaLab.restart()
		collect()
		arrived()
		epochAtLeast(first.Epoch + uint32(i) + 1)
	}

	// Offline: the PDA is down while ops and its broker restart, records pile up meanwhile.
	pdaLab.stop()
	collect()
	opsLab.restart()
	collect()
	pdaLab.start()
	arrived()
	last := epochAtLeast(first.Epoch + 4)
	if last.State != "enrolled" || last.LastRotationMS == 0 || last.LastHandshakeMS == 0 {
		t.Errorf("pda row after offline period: %+v", last)
	}
	if e := pdaLab.lab.Bridge.Epoch(); e < last.Epoch {
		t.Errorf("pda would use epoch %d, ops is at %d (I2 broken)", e, last.Epoch)
	}
	waitFor(t, 20*time.Second, func() error {
		if n := pdaLab.lab.Bridge.Pending() + hhLab.lab.Handheld.Pending() + term.Pending(); n != 0 {
			return fmt.Errorf("%d batches or records pending", n)
		}
		return nil
	})
}

// TestRevocationIsImmediate (T14 without handhelds): revoking a PDA drops its sessions at ops,
// disconnects it from the broker and refuses its reconnects, and no later record is stored.
func TestRevocationIsImmediate(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end chain skipped under -short")
	}
	cfg := secLabConfig(t)
	cfg.ResendAfter = 500 * time.Millisecond
	l := startLab(t, cfg)
	httpAddr := l.Config().HTTPAddr
	term := l.Terminals[0]
	if err := term.Pulse(1, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := term.Collect(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, func() error {
		if n := l.Bridge.Pending() + l.Handheld.Pending() + term.Pending(); n != 0 || l.Bridge.Stats().Acked == 0 {
			return fmt.Errorf("%d pending", n)
		}
		return nil
	})
	stored := func() int {
		rs, err := readings(t, httpAddr, "terminal="+term.ID()+"&limit=1000")
		if err != nil {
			t.Fatal(err)
		}
		return len(rs)
	}
	before := stored()
	refusedBefore := l.Broker.Stats().ConnectionsRefused

	resp, err := http.Post("http://"+httpAddr+"/api/v1/pdas/P01/revoke", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %s", resp.Status)
	}
	if p := getPDA(t, httpAddr, "P01"); p.State != "revoked" {
		t.Errorf("after revoke the row is %+v", p)
	}
	if _, _, ok := l.Ops.PDAVerifiers("P01"); ok {
		t.Error("the broker still finds verifiers of a revoked PDA")
	}
	// The bridge was disconnected; its reconnects are refused.
	waitFor(t, 20*time.Second, func() error {
		if n := l.Broker.Stats().ConnectionsRefused; n == refusedBefore {
			return fmt.Errorf("no refused reconnect yet")
		}
		return nil
	})
	if err := term.Pulse(1, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := term.Collect(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // nothing may arrive: give it every chance
	if n := stored(); n != before {
		t.Errorf("ops stored %d readings after revocation, had %d", n, before)
	}
	if l.Bridge.Pending() == 0 && l.Handheld.Pending() == 0 {
		t.Error("the record after revocation left the field as if acknowledged")
	}
}

// TestEvilBroker (T17): a broker that replays, duplicates and re-routes frames between two
// PDAs, and injects ops' frames of one PDA into the other's downlink, gets nothing accepted:
// no record stored twice or for the wrong PDA, no row changed or locked; after the faults stop
// both PDAs converge and records flow again.
func TestEvilBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end chain skipped under -short")
	}
	cfg := secLabConfig(t)
	cfg.ResendAfter = 500 * time.Millisecond
	l := startLab(t, cfg)
	httpAddr, addr := l.Config().HTTPAddr, l.Config().MQTTAddr
	_, opsPassword, _ := labSecrets(t, cfg.DataDir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The broker sees every frame: an ops-role client records the uplink and handshakes.
	var mu sync.Mutex
	var captured []bus.Message
	spy, err := bus.New(bus.Config{URL: "tcp://" + addr, ClientID: "evil", Username: "ops", CleanSession: true,
		Password: func() string { return opsPassword }, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer spy.Close()
	for _, f := range []string{topic.PDAUp("+"), topic.PDAHandshakeUp("+")} {
		if err := spy.Subscribe(ctx, f, 1, func(_ context.Context, m bus.Message) error {
			mu.Lock()
			captured = append(captured, m)
			mu.Unlock()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := spy.Connect(ctx); err != nil {
		t.Fatal(err)
	}

	// A second PDA, provisioned through the API, run by hand.
	sid0, opsPub := provisionPDA(t, httpAddr, "P02")
	p2, err := newRawPDA(t, addr, "P02", sid0.BrokerPassword(noisehs.PDAIDFromText("P02")))
	if err != nil {
		t.Fatal(err)
	}
	static2, _ := noisehs.GenerateKeypair(nil)
	s2, cand2 := p2.handshake(static2, opsPub, sid0, 1, 20*time.Second)
	if s2 == nil {
		t.Fatal("P02 got no session")
	}
	confirm2, _ := s2.Seal(topic.PDAUp("P02"), noisehs.Record{Kind: noisehs.KindConfirm})
	p2.publish(topic.PDAUp("P02"), confirm2)
	var opsFrames [][]byte // ops' frames to P02, for re-routing to P01
	select {
	case f := <-p2.down:
		opsFrames = append(opsFrames, f)
		if r, err := s2.Open(topic.PDADown("P02"), p2.pid, f); err != nil || r.Kind != noisehs.KindCommit {
			t.Fatalf("P02 commit: %v %v", r.Kind, err)
		}
	case <-ctx.Done():
		t.Fatal("no commit for P02")
	}
	_ = cand2

	// P01 uploads a record so that the capture holds real batches.
	term := l.Terminals[0]
	if err := term.Pulse(1, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := term.Collect(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, func() error {
		if n := l.Bridge.Pending() + l.Handheld.Pending() + term.Pending(); n != 0 {
			return fmt.Errorf("%d pending", n)
		}
		return nil
	})
	rowsBefore := map[string]apiPDA{"P01": getPDA(t, httpAddr, "P01"), "P02": getPDA(t, httpAddr, "P02")}
	readingsBefore, _ := readings(t, httpAddr, "limit=10000")
	droppedBefore := l.Bridge.Stats().Dropped

	// The attack: every captured frame delivered again to ops, on its own topic and on the other
	// PDA's, twice; and ops' frames to P02 pushed into P01's downlink.
	mu.Lock()
	frames := append([]bus.Message(nil), captured...)
	mu.Unlock()
	if len(frames) < 4 {
		t.Fatalf("captured %d frames, want handshakes and records of both PDAs", len(frames))
	}
	other := map[string]string{"P01": "P02", "P02": "P01"}
	injected := 0
	for _, m := range frames {
		pda, rest, err := topic.ParsePDA(m.Topic)
		if err != nil {
			t.Fatal(err)
		}
		moved := "meterlink/v1/pda/" + other[pda] + "/" + rest
		for _, tp := range []string{m.Topic, m.Topic, moved} {
			if err := l.Ops.HandleUp(ctx, tp, m.Payload); err != nil {
				t.Fatalf("HandleUp(%s) = %v", tp, err)
			}
			injected++
		}
	}
	evil, err := bus.New(bus.Config{URL: "tcp://" + addr, ClientID: "evil-2", Username: "ops", CleanSession: true,
		Password: func() string { return opsPassword }, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer evil.Close()
	if err := evil.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range opsFrames {
		if err := evil.Publish(ctx, topic.PDADown("P01"), 1, false, f); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, func() error {
		if d := l.Bridge.Stats().Dropped; d <= droppedBefore {
			return fmt.Errorf("P01 has not dropped the injected downlink yet")
		}
		return nil
	})

	readingsAfter, _ := readings(t, httpAddr, "limit=10000")
	if len(readingsAfter) != len(readingsBefore) {
		t.Errorf("%d injected frames changed the readings: %d → %d", injected, len(readingsBefore), len(readingsAfter))
	}
	for id, before := range rowsBefore {
		after := getPDA(t, httpAddr, id)
		if after.State != "enrolled" || after.Epoch != before.Epoch || after.Bound != before.Bound {
			t.Errorf("row %s changed by injected frames: %+v → %+v", id, before, after)
		}
	}

	// Convergence: P01 keeps uploading (exactly once), P02 handshakes again and commits.
	if err := term.Pulse(1, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := term.Collect(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, func() error {
		rs, _ := readings(t, httpAddr, "limit=10000")
		if len(rs) != len(readingsBefore)+demo.ChannelsPerTerminal {
			return fmt.Errorf("ops holds %d readings, want %d", len(rs), len(readingsBefore)+demo.ChannelsPerTerminal)
		}
		if n := l.Bridge.Pending() + l.Handheld.Pending() + term.Pending(); n != 0 {
			return fmt.Errorf("%d pending", n)
		}
		return nil
	})
	st2 := noisehs.PDAState{Cur: sid0, Pending: cand2, HSCounter: 1}
	next, psk, ctr := st2.NextHandshake()
	if s, _ := p2.handshake(static2, opsPub, psk, ctr, 10*time.Second); s == nil {
		t.Fatal("P02 locked out after the attack")
	}
	_ = next
	if p := getPDA(t, httpAddr, "P02"); !p.Bound || p.State != "enrolled" {
		t.Errorf("P02 after the attack: %+v", p)
	}
}
