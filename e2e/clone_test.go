package e2e

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/meterlink/meterlink/lab"
	"github.com/meterlink/meterlink/noisehs"
	"github.com/meterlink/meterlink/topic"
)

// provisionPDA provisions a PDA through the ops API and returns its SID₀ and the S_ops public
// key it pins.
func provisionPDA(t *testing.T, httpAddr, id string) (noisehs.SID, [32]byte) {
	t.Helper()
	resp, err := http.Post("http://"+httpAddr+"/api/v1/pdas", "application/json", bytes.NewBufferString(`{"id":"`+id+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var prov struct {
		SID          string `json:"sid"`
		OpsPublicKey string `json:"ops_public_key"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&prov); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST pdas: %s %v", resp.Status, err)
	}
	var sid noisehs.SID
	var pub [32]byte
	k, _ := hex.DecodeString(prov.SID)
	copy(sid.Key[:], k)
	k, _ = hex.DecodeString(prov.OpsPublicKey)
	copy(pub[:], k)
	return sid, pub
}

// TestCloneWithOlderEpochIsLocked (security.md T12): a PDA rotates its SID; a clone made with
// a copy of the device's static key and its old SID₀ then handshakes. Ops sees an epoch older
// than the current one that matches nothing, locks the row and cuts the PDA off; the honest
// rotation before it raised nothing.
func TestCloneWithOlderEpochIsLocked(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end chain skipped under -short")
	}
	opsLab := startPart(t, secLabConfig(t), lab.PartBroker, lab.PartOps)
	addr, httpAddr := opsLab.cfg.MQTTAddr, opsLab.cfg.HTTPAddr
	sid0, opsPub := provisionPDA(t, httpAddr, "P07")
	pda, err := newRawPDA(t, addr, "P07", sid0.BrokerPassword(noisehs.PDAIDFromText("P07")))
	if err != nil {
		t.Fatal(err)
	}
	static, _ := noisehs.GenerateKeypair(nil)
	s, _ := pda.handshake(static, opsPub, sid0, 1, 20*time.Second)
	if s == nil {
		t.Fatal("the honest PDA got no session")
	}
	confirm, _ := s.Seal(topic.PDAUp("P07"), noisehs.Record{Kind: noisehs.KindConfirm})
	pda.publish(topic.PDAUp("P07"), confirm)
	waitFor(t, 20*time.Second, func() error {
		if row := getPDA(t, httpAddr, "P07"); row.Epoch != 1 || row.State != "enrolled" {
			return fmt.Errorf("row %+v, want epoch 1 committed and enrolled", row)
		}
		return nil
	})

	// The clone: same static key (copied), the old SID₀ at epoch 0, a fresh counter.
	idx, _ := noisehs.NewIndex()
	clone, err := noisehs.NewInitiator(noisehs.InitiatorConfig{Static: static, OpsStatic: opsPub, OpsKey: 1,
		PDAID: pda.pid, SID: sid0, HSCounter: 2, Now: time.Now(), SenderIdx: idx})
	if err != nil {
		t.Fatal(err)
	}
	pda.publish(topic.PDAHandshakeUp("P07"), clone.HSInit())
	waitFor(t, 20*time.Second, func() error {
		if row := getPDA(t, httpAddr, "P07"); row.State != "locked" {
			return fmt.Errorf("row %+v, want locked by the clone alarm", row)
		}
		return nil
	})
	select {
	case f := <-pda.hs:
		if _, err := clone.ReadHSResp(f); err == nil {
			t.Error("the clone completed a handshake")
		}
	default: // no answer at all, as it should be
	}
}
