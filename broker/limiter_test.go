package broker

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiter(func() time.Time { return now })
	failN := func(n int) (blocked bool) {
		for range n {
			blocked = l.fail("k")
			now = now.Add(time.Second)
		}
		return blocked
	}

	if failN(4) || l.blocked("k") {
		t.Fatal("blocked after 4 failures")
	}
	if !failN(1) || !l.blocked("k") {
		t.Fatal("not blocked after 5 failures")
	}
	if l.blocked("other") {
		t.Fatal("another key is blocked")
	}
	// Each block doubles: 1, 2, 4, ... 32 min, then 1 h at most, never permanent.
	for _, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute,
		16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour} {
		if want > time.Minute {
			if !failN(5) {
				t.Fatalf("no block after 5 more failures (want %v)", want)
			}
		}
		// failN advanced the clock 1s past the block's start.
		now = now.Add(want - 2*time.Second)
		if !l.blocked("k") {
			t.Fatalf("block of %v ended early", want)
		}
		if l.fail("k") {
			t.Fatal("a failure while blocked started a new block")
		}
		now = now.Add(2 * time.Second)
		if l.blocked("k") {
			t.Fatalf("block of %v still on after %v", want, want)
		}
	}
	l.reset("k")
	if failN(4) {
		t.Fatal("blocked after reset and 4 failures")
	}
}

func TestLimiterWindow(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiter(func() time.Time { return now })
	// 5 failures spread over more than 5 minutes never block.
	for range 20 {
		if l.fail("k") {
			t.Fatal("blocked by failures spread over more than 5 minutes")
		}
		now = now.Add(80 * time.Second)
	}
}

func TestLimiterForgets(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiter(func() time.Time { return now })
	for range 10 {
		l.fail("k")
	}
	for i := range 1000 {
		l.fail(string(rune('a'+i%26)) + string(rune(i)))
	}
	now = now.Add(3 * time.Hour)
	l.fail("fresh") // sweeps
	l.mu.Lock()
	n := len(l.keys)
	l.mu.Unlock()
	if n != 1 {
		t.Errorf("%d keys kept after 3 quiet hours, want 1", n)
	}
	// The forgotten key's next block starts at 1 minute again.
	for range 5 {
		l.fail("k")
	}
	now = now.Add(61 * time.Second)
	if l.blocked("k") {
		t.Error("block after forgetting is longer than 1 minute")
	}
}
