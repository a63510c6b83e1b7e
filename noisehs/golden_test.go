package noisehs

import (
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// T4: a full transcript with fixed keys, ephemerals and clock: HS_INIT,
// HS_RESP, the key schedule and the first DATA record each way. A change
// here breaks every deployed PDA and any non-Go implementation.
func TestGoldenTranscript(t *testing.T) {
	f := newFixture(t)
	tr := handshake(t, f)
	c := &clock{t: testNow}
	pda, err := NewSession(tr.pda, c.now)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := NewSession(tr.ops, c.now)
	if err != nil {
		t.Fatal(err)
	}
	confirm, err := pda.Seal(testTopicUp, Record{Kind: KindConfirm, MsgID: [16]byte{0x01, 0x93}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ops.Open(testTopicUp, f.pdaID, confirm); err != nil {
		t.Fatal(err)
	}
	commit, err := ops.Seal(testTopicDown, Record{Kind: KindCommit, MsgID: [16]byte{0x01, 0x94}})
	if err != nil {
		t.Fatal(err)
	}
	k := tr.pda.Keys
	var b strings.Builder
	line := func(name string, v []byte) { fmt.Fprintf(&b, "%s %s\n", name, hex.EncodeToString(v)) }
	fmt.Fprintf(&b, "# SECLINK/1 suite 0x01 transcript; inputs in helpers_test.go (seeded keys, epoch 3)\n")
	line("s_pda_public", f.pda.Public[:])
	line("s_ops_public", f.ops.Public[:])
	line("pda_id", f.pdaID[:])
	line("sid", f.sid.Key[:])
	kid := f.sid.KID()
	line("kid", kid[:])
	fmt.Fprintf(&b, "mqtt_pw %s\n", f.sid.MQTTPassword(f.pdaID))
	fmt.Fprintf(&b, "broker_password %s\n", f.sid.BrokerPassword(f.pdaID))
	line("hs_init", tr.init)
	line("hs_resp", tr.resp)
	line("handshake_hash", k.HandshakeHash[:])
	line("k_up", k.Up[:])
	line("k_down", k.Down[:])
	fmt.Fprintf(&b, "next_sid_epoch %d\n", k.NextSID.Epoch)
	line("next_sid", k.NextSID.Key[:])
	fmt.Fprintf(&b, "topic_up %s\n", testTopicUp)
	line("data_confirm", confirm)
	fmt.Fprintf(&b, "topic_down %s\n", testTopicDown)
	line("data_commit", commit)
	got := b.String()

	path := filepath.Join("testdata", "transcript.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./noisehs -update)", err)
	}
	if got != string(want) {
		t.Errorf("transcript differs from %s (-update rewrites it):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}
