package idcheck

import (
	"bytes"
	"testing"
)

func TestTagBindsEverything(t *testing.T) {
	sid := bytes.Repeat([]byte{7}, SIDSize)
	key, err := Key(sid, "P01")
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"v":1}`)
	tag := Tag(key, "P01", "meterlink/v1/pda/P01/up", "batch", "b1", body)
	if !Verify(key, "P01", "meterlink/v1/pda/P01/up", "batch", "b1", body, tag) {
		t.Fatal("a good tag does not verify")
	}
	otherSID := append([]byte{}, sid...)
	otherSID[31] ^= 1
	otherKey, _ := Key(otherSID, "P01")
	crossKey, _ := Key(sid, "P02")
	for name, ok := range map[string]bool{
		"wrong sid":   Verify(otherKey, "P01", "meterlink/v1/pda/P01/up", "batch", "b1", body, tag),
		"other pda":   Verify(crossKey, "P02", "meterlink/v1/pda/P01/up", "batch", "b1", body, tag),
		"moved topic": Verify(key, "P01", "meterlink/v1/pda/P02/up", "batch", "b1", body, tag),
		"kind":        Verify(key, "P01", "meterlink/v1/pda/P01/up", "ack", "b1", body, tag),
		"id":          Verify(key, "P01", "meterlink/v1/pda/P01/up", "batch", "b2", body, tag),
		"body":        Verify(key, "P01", "meterlink/v1/pda/P01/up", "batch", "b1", []byte(`{"v":2}`), tag),
		"short tag":   Verify(key, "P01", "meterlink/v1/pda/P01/up", "batch", "b1", body, tag[:31]),
		"no tag":      Verify(key, "P01", "meterlink/v1/pda/P01/up", "batch", "b1", body, nil),
	} {
		if ok {
			t.Errorf("%s: tag verified, want rejected", name)
		}
	}
}

func TestBadSIDs(t *testing.T) {
	for _, s := range []string{"", "zz", "00", string(bytes.Repeat([]byte("0"), 62))} {
		if _, err := ParseSID(s); err == nil {
			t.Errorf("ParseSID(%q) accepted", s)
		}
	}
	if _, err := Key(make([]byte, 31), "P01"); err == nil {
		t.Error("Key accepted a 31-byte SID")
	}
	p1, _ := BrokerPassword(make([]byte, 32), "P01")
	p2, _ := BrokerPassword(make([]byte, 32), "P02")
	if p1 == p2 || len(p1) != 32 {
		t.Errorf("broker passwords %q %q: want distinct 32-character values", p1, p2)
	}
}
