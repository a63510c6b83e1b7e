package pdabridge

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/meterlink/meterlink/noisehs"
)

// TestUnitPersistsRotation: the security unit stores S_pda, the SIDs and hs_counter before
// they are used, and a restart finds them; SID₀ is used once and ignored afterwards.
func TestUnitPersistsRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pda.db")
	sid0 := make([]byte, 32)
	sid0[0] = 1
	ops := [32]byte{9}
	box, err := openOutbox(path)
	if err != nil {
		t.Fatal(err)
	}
	u, err := openUnit(box.db, sid0, ops, 1)
	if err != nil {
		t.Fatal(err)
	}
	psk, ctr, err := u.nextHandshake()
	if err != nil || ctr != 1 || psk.Epoch != 0 || psk.Key[0] != 1 {
		t.Fatalf("nextHandshake = epoch %d, counter %d, %v", psk.Epoch, ctr, err)
	}
	cand := noisehs.SID{Epoch: 1, Key: [32]byte{2}}
	if err := u.completed(psk, cand); err != nil {
		t.Fatal(err)
	}
	if s := u.selected(); !s.Equal(cand) {
		t.Fatal("the candidate is not selected after a completed handshake")
	}
	pub := u.initiator().Static.Public
	box.close()

	other := make([]byte, 32) // a different SID₀ must not replace the stored state
	box, err = openOutbox(path)
	if err != nil {
		t.Fatal(err)
	}
	defer box.close()
	u, err = openUnit(box.db, other, [32]byte{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	st := u.state()
	if !st.Pending.Equal(cand) || st.Cur.Key[0] != 1 || st.HSCounter != 1 || u.initiator().Static.Public != pub || u.initiator().OpsStatic != ops {
		t.Fatalf("state after reopen: %+v", st)
	}
	if changed, err := u.opsRecord(cand); err != nil || !changed || !u.state().Cur.Equal(cand) || !u.state().Pending.IsZero() {
		t.Fatalf("opsRecord: changed %v, %v", changed, err)
	}
}

// TestUnitNeedsSID0: without stored state and without SID₀ the bridge cannot start.
func TestUnitNeedsSID0(t *testing.T) {
	box, err := openOutbox(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer box.close()
	if _, err := openUnit(box.db, nil, [32]byte{1}, 1); err != errNoSID {
		t.Errorf("openUnit without SID₀ = %v, want errNoSID", err)
	}
}

// TestJitter: HANDSHAKE_RETRY is spread by ±20 % (security.md §8).
func TestJitter(t *testing.T) {
	for range 1000 {
		if d := jitter(5 * time.Second); d < 4*time.Second || d > 6*time.Second {
			t.Fatalf("jitter(5s) = %v", d)
		}
	}
}
