package radiosim

import (
	"net"
	"testing"
	"time"
)

func TestLossAndDuplication(t *testing.T) {
	a, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sim := New(a, Config{Loss: 0.5, Duplicate: 0.5, Seed: 1})
	defer sim.Close()
	const n = 200
	for i := range n {
		if _, err := sim.WriteTo([]byte{byte(i)}, b.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	st := sim.Stats()
	if st.Written != n || st.Dropped < n/4 || st.Dropped > 3*n/4 || st.Duplicated < n/8 {
		t.Errorf("Stats() = %+v, want about half dropped and a quarter duplicated", st)
	}
	want := int(n - st.Dropped + st.Duplicated)
	buf := make([]byte, 10)
	for got := range want {
		_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := b.ReadFrom(buf); err != nil {
			t.Fatalf("read %d of %d datagrams: %v", got, want, err)
		}
	}
}

func TestSeedRepeats(t *testing.T) {
	run := func() Stats {
		a, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		sim := New(a, Config{Loss: 0.3, Duplicate: 0.2, Seed: 42})
		defer sim.Close()
		for range 100 {
			_, _ = sim.WriteTo([]byte{1}, a.LocalAddr())
		}
		return sim.Stats()
	}
	if s1, s2 := run(), run(); s1 != s2 {
		t.Errorf("same seed gave %+v and %+v", s1, s2)
	}
}
