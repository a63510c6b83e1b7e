package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/meterlink/meterlink/demo"
	"github.com/meterlink/meterlink/handheld"
	"github.com/meterlink/meterlink/wire"
)

// TestHandheldQueryAnswersOrSaysOffline: a real-time query goes up on hh-query, through the PDA
// to ops, and the answer comes down on hh-answer within the deadline; when nobody answers in
// time (ops stopped), or the PDA link is down, the handheld says offline and gives the cached
// answer with its age.
func TestHandheldQueryAnswersOrSaysOffline(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end chain skipped under -short")
	}
	c := startHHChain(t, 1)
	hh := startHH(t, c.handheldConfig())
	waitFor(t, 20*time.Second, func() error {
		if !hh.h.Outbox().PDAConnected {
			return errors.New("handheld not connected to the PDA")
		}
		if c.pda.lab.Bridge.Stats().Sessions == 0 {
			return errors.New("the PDA has no session with ops yet")
		}
		return nil
	})
	var want demo.Customer
	for _, cu := range demo.Customers(c.districts) {
		if cu.Meter == "T0001-01" {
			want = cu
		}
	}

	ctx := context.Background()
	deadline := 3 * time.Second
	start := time.Now()
	a, age, err := hh.h.Query(ctx, wire.Query{Meter: "T0001-01", DeadlineMS: start.Add(deadline).UnixMilli()})
	if err != nil {
		t.Fatalf("query with ops answering: %v", err)
	}
	if took := time.Since(start); took > deadline {
		t.Errorf("answer took %v, beyond its deadline %v", took, deadline)
	}
	if age != 0 || len(a.Customers) != 1 || a.Customers[0].Owner != want.Owner {
		t.Fatalf("answer %+v age %v, want %s's, fresh", a, age, want.Owner)
	}
	if a, _, err := hh.h.Query(ctx, wire.Query{Meter: "T9999-01"}); err != nil || a.Error != "not_found" {
		t.Errorf("query of an unknown meter: %+v, %v; want ops' not_found", a, err)
	}

	// Ops stops answering: the deadline passes and the cached answer comes back with its age.
	c.ops.stop()
	start = time.Now()
	a, age, err = hh.h.Query(ctx, wire.Query{Meter: "T0001-01", DeadlineMS: start.Add(300 * time.Millisecond).UnixMilli()})
	if !errors.Is(err, handheld.ErrOffline) {
		t.Fatalf("query without an answer: err %v, want offline", err)
	}
	if took := time.Since(start); took < 299*time.Millisecond || took > 3*time.Second { // deadline_ms is whole ms
		t.Errorf("offline answer after %v, want at the 300ms deadline", took)
	}
	if a.ID == "" || a.Customers[0].Owner != want.Owner || age <= 0 || age > time.Minute {
		t.Errorf("offline answer %+v age %v, want the cached one with its age", a, age)
	}
	// The cache also serves the account of that meter.
	if a, _, err := hh.h.Query(ctx, wire.Query{Account: want.Account, DeadlineMS: time.Now().Add(100 * time.Millisecond).UnixMilli()}); !errors.Is(err, handheld.ErrOffline) || a.ID == "" {
		t.Errorf("offline query by account: %+v, %v; want the cached answer", a, err)
	}

	// The PDA goes away: offline at once, cached answer with its age; nothing for the unknown.
	c.pda.stop()
	waitFor(t, 20*time.Second, func() error {
		if hh.h.Outbox().PDAConnected {
			return errors.New("handheld still sees the PDA")
		}
		return nil
	})
	start = time.Now()
	a, age, err = hh.h.Query(ctx, wire.Query{Meter: "T0001-01", DeadlineMS: start.Add(5 * time.Second).UnixMilli()})
	if !errors.Is(err, handheld.ErrOffline) || a.ID == "" || age <= 0 {
		t.Errorf("query with the link down: %+v age %v err %v, want offline with the cached answer", a, age, err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("offline answer with the link down took %v, want at once", took)
	}
	if a, _, err := hh.h.Query(ctx, wire.Query{Meter: "T0001-02"}); !errors.Is(err, handheld.ErrOffline) || a.ID != "" {
		t.Errorf("uncached query with the link down: %+v, %v; want offline, nothing cached", a, err)
	}
	c.pda.start()
	c.ops.start()
	waitFor(t, 30*time.Second, func() error {
		_, age, err := hh.h.Query(ctx, wire.Query{Meter: "T0001-01", DeadlineMS: time.Now().Add(time.Second).UnixMilli()})
		if err != nil || age != 0 {
			return fmt.Errorf("after the PDA came back: age %v err %v", age, err)
		}
		return nil
	})
}
