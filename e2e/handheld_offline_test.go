package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/meterlink/meterlink/demo"
	"github.com/meterlink/meterlink/terminal"
)

// fakeClock is a terminal clock the test moves forward.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestHandheldOfflineForADayUploadsOnce: the reader works a whole simulated day with no PDA in
// reach: the terminals read every 15 minutes (96 readings each) and the handheld keeps every
// record, through a restart of its own. When the PDA comes back, the whole outbox goes up and
// ops holds every reading exactly once.
func TestHandheldOfflineForADayUploadsOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end chain skipped under -short")
	}
	c := startHHChain(t, 2)
	c.pda.stop() // out of reach all day
	hc := c.handheldConfig()
	hc.BatchMax = 50
	hh := startHH(t, hc)
	gw := hh.h.GatewayAddr().String()
	clock := &fakeClock{t: time.Now().Add(-24 * time.Hour).Truncate(15 * time.Minute)}
	ids := []string{"T0001", "T0002"}
	var terms []*runningTerm
	for _, id := range ids {
		terms = append(terms, newTerm(t, id, gw, c.cfg.DataDir, func(tc *terminal.Config) { tc.Now = clock.now }).start())
	}
	const readingsPerDay = 96
	for i := 0; i < readingsPerDay; i++ {
		clock.add(15 * time.Minute)
		for _, rt := range terms {
			if err := rt.term.Pulse(1, uint64(100+i)); err != nil {
				t.Fatal(err)
			}
			if _, err := rt.term.Collect(); err != nil {
				t.Fatal(err)
			}
		}
		if i == readingsPerDay/2 {
			// Mid-day the handheld is switched off and on: its outbox is on disk.
			waitFor(t, 30*time.Second, func() error { return drained(terms) })
			hh.stop()
			hh.start()
		}
	}
	waitFor(t, 60*time.Second, func() error { return drained(terms) })
	held := hh.h.Pending()
	if held < readingsPerDay*len(ids) {
		t.Fatalf("handheld holds %d records after the day, want at least %d", held, readingsPerDay*len(ids))
	}
	if o := hh.h.Outbox(); o.PDAConnected || o.Uploaded != 0 {
		t.Fatalf("outbox %+v: want no link and nothing uploaded yet", o)
	}

	c.pda.start()
	waitFor(t, 90*time.Second, func() error {
		if n := hh.h.Pending(); n != 0 {
			return fmt.Errorf("%d records still in the handheld's outbox", n)
		}
		return nil
	})
	for _, id := range ids {
		waitFor(t, 60*time.Second, func() error {
			rs, err := readingsOfKind(c.cfg.HTTPAddr, "meter="+demo.MeterID(id, 1)+"&limit=1000", "reading")
			if err != nil {
				return err
			}
			if len(rs) < readingsPerDay {
				return fmt.Errorf("ops holds %d readings of %s, want %d", len(rs), id, readingsPerDay)
			}
			seen := map[uint64]bool{}
			for _, r := range rs {
				if seen[r.Seq] {
					return fmt.Errorf("%s seq %d stored twice", id, r.Seq)
				}
				seen[r.Seq] = true
			}
			if len(rs) != readingsPerDay {
				return fmt.Errorf("ops holds %d readings of %s, want exactly %d", len(rs), id, readingsPerDay)
			}
			return nil
		})
	}
}

// readingsOfKind returns ops' records of one kind (reading, frozen) from its readings API.
func readingsOfKind(httpAddr, query, kind string) ([]apiReading, error) {
	resp, err := http.Get("http://" + httpAddr + "/api/v1/readings?" + query)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET readings?%s: %s", query, resp.Status)
	}
	var body struct {
		Readings []struct {
			apiReading
			Kind string `json:"kind"`
		} `json:"readings"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	var out []apiReading
	for _, r := range body.Readings {
		if r.Kind == kind {
			out = append(out, r.apiReading)
		}
	}
	return out, nil
}

// drained reports whether every terminal has handed its records to the handheld.
func drained(terms []*runningTerm) error {
	for _, rt := range terms {
		if n := rt.term.Pending(); n != 0 {
			return fmt.Errorf("terminal %s still holds %d records", rt.cfg.ID, n)
		}
	}
	return nil
}
