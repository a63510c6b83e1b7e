package noisehs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testdataDir is shared/testdata beside the repository (style.md §9).
const testdataDir = "../../shared/testdata"

// loadJSON decodes a shared test-vector file, skipping when it is absent.
func loadJSON(t testing.TB, rel string, v any) {
	t.Helper()
	path := filepath.Join(testdataDir, rel)
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		t.Skipf("test vectors %s not found", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

// seeded returns deterministic bytes derived from label: test keys only.
func seeded(label string) [32]byte { return sha256.Sum256([]byte("noisehs test|" + label)) }

func seededReader(label string) *bytes.Reader {
	b := seeded(label)
	return bytes.NewReader(b[:])
}

func mustKeypair(t testing.TB, label string) Keypair {
	t.Helper()
	k, err := KeypairFromPrivate(seeded(label))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var (
	testTopicUp   = "meterlink/v1/pda/PTEST/up"
	testTopicDown = "meterlink/v1/pda/PTEST/down"
	testNow       = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
)

// fixture holds one PDA, one ops key and the SID they share.
type fixture struct {
	pda    Keypair
	ops    Keypair
	opsKey byte
	pdaID  PDAID
	sid    SID
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	f := fixture{pda: mustKeypair(t, "S_pda"), ops: mustKeypair(t, "S_ops"), opsKey: 7}
	id := seeded("pda_id")
	copy(f.pdaID[:], id[:])
	f.sid = SID{Epoch: 3, Key: seeded("SID3")}
	return f
}

func (f fixture) initConfig() InitiatorConfig {
	return InitiatorConfig{
		Static:    f.pda,
		OpsStatic: f.ops.Public,
		OpsKey:    f.opsKey,
		PDAID:     f.pdaID,
		SID:       f.sid,
		HSCounter: 42,
		Now:       testNow,
		SenderIdx: 0x11223344,
		Rand:      seededReader("e_pda"),
	}
}

func (f fixture) respConfig() ResponderConfig {
	return ResponderConfig{
		Static:    f.ops,
		OpsKey:    f.opsKey,
		PDAID:     f.pdaID,
		SenderIdx: 0x55667788,
		Rand:      seededReader("e_ops"),
	}
}

func (f fixture) lookup(epoch uint32, kid [8]byte) (SID, bool) {
	if k := f.sid.KID(); epoch == f.sid.Epoch && kid == k {
		return f.sid, true
	}
	return SID{}, false
}

func (f fixture) payload2() Payload2 {
	return Payload2{OpsTimeMs: uint64(testNow.UnixMilli()), RekeyAfterMin: 60, RejectAfterMin: 75}
}

// transcript is a full handshake's frames and results.
type transcript struct {
	init, resp []byte
	pda, ops   *Established
}

func handshake(t testing.TB, f fixture) transcript {
	t.Helper()
	i, err := NewInitiator(f.initConfig())
	if err != nil {
		t.Fatalf("NewInitiator: %v", err)
	}
	tr := transcript{init: i.HSInit()}
	r, err := ReadHSInit(f.respConfig(), tr.init)
	if err != nil {
		t.Fatalf("ReadHSInit: %v", err)
	}
	tr.resp, tr.ops, err = r.Respond(f.lookup, f.payload2())
	if err != nil {
		t.Fatalf("Respond: %v", err)
	}
	tr.pda, err = i.ReadHSResp(tr.resp)
	if err != nil {
		t.Fatalf("ReadHSResp: %v", err)
	}
	return tr
}

// clock is a settable fake clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// sessions returns the PDA's and ops' sessions of one handshake, with ops
// already confirmed by a CONFIRM record.
func sessions(t testing.TB, f fixture, c *clock) (pda, ops *Session) {
	t.Helper()
	tr := handshake(t, f)
	pda, err := NewSession(tr.pda, c.now)
	if err != nil {
		t.Fatal(err)
	}
	ops, err = NewSession(tr.ops, c.now)
	if err != nil {
		t.Fatal(err)
	}
	fr, err := pda.Seal(testTopicUp, Record{Kind: KindConfirm})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ops.Open(testTopicUp, f.pdaID, fr); err != nil {
		t.Fatalf("open CONFIRM: %v", err)
	}
	return pda, ops
}
