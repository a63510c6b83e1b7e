package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/meterlink/meterlink/demo"
	"github.com/meterlink/meterlink/handheld"
	"github.com/meterlink/meterlink/lab"
	"github.com/meterlink/meterlink/wire"
)

// opsJob is a job as GET /api/v1/jobs/{id} shows it.
type opsJob struct {
	ID        string `json:"id"`
	Handheld  string `json:"handheld"`
	State     string `json:"state"`
	Events    int    `json:"events"`
	Terminals []struct {
		Terminal string          `json:"terminal"`
		State    string          `json:"state"`
		Result   json.RawMessage `json:"result"`
	} `json:"terminals"`
	EventList []struct {
		ID       string `json:"id"`
		Terminal string `json:"terminal"`
	} `json:"event_list"`
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s %s", url, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// opsJobDone waits until ops holds job id done, with a result for each of n terminals, and the
// handheld has no job events left to send. Each event must be stored once.
func opsJobDone(t *testing.T, httpAddr string, h *handheld.Handheld, id string, n int) opsJob {
	t.Helper()
	var j opsJob
	waitFor(t, 30*time.Second, func() error {
		j = opsJob{}
		if err := getJSON("http://"+httpAddr+"/api/v1/jobs/"+id, &j); err != nil {
			return err
		}
		if j.State != wire.JobDone || len(j.Terminals) != n {
			return fmt.Errorf("ops has job %s %s with %d terminals, want done with %d", id, j.State, len(j.Terminals), n)
		}
		if left := h.Outbox().JobEvents; left != 0 {
			return fmt.Errorf("%d job events still at the handheld", left)
		}
		return nil
	})
	seen := map[string]bool{}
	for _, e := range j.EventList {
		if seen[e.ID] {
			t.Errorf("event %s stored twice", e.ID)
		}
		seen[e.ID] = true
	}
	if j.Events != len(j.EventList) {
		t.Errorf("job counts %d events, lists %d", j.Events, len(j.EventList))
	}
	return j
}

// TestRelayQueryThroughPDA: a handheld's query for a demo meter goes through the PDA to ops
// and back within its deadline with the customer's owner, payment method and balance; with
// ops stopped the handheld answers offline with the cached answer and its age.
func TestRelayQueryThroughPDA(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end chain skipped under -short")
	}
	cfg := labConfig(t, 2)
	opsPart := startPart(t, cfg, lab.PartBroker, lab.PartOps)
	cfg.MQTTAddr, cfg.HTTPAddr = opsPart.cfg.MQTTAddr, opsPart.cfg.HTTPAddr
	field := startPart(t, cfg, lab.PartPDA, lab.PartHandheld, lab.PartTerminals)
	h := field.lab.Handheld

	meter := demo.MeterID("T0001", 1)
	var want demo.Customer
	for _, cu := range demo.Customers(demo.Dataset(cfg.Districts, cfg.Terminals)) {
		if cu.Meter == meter {
			want = cu
		}
	}
	ctx := context.Background()
	deadline := 3 * time.Second
	var a wire.Answer
	waitFor(t, 30*time.Second, func() error { // until the PDA's session with ops is up
		start := time.Now()
		var err error
		a, _, err = h.Query(ctx, wire.Query{Meter: wire.MeterID(meter), DeadlineMS: start.Add(deadline).UnixMilli()})
		if err != nil {
			return err
		}
		if took := time.Since(start); took > deadline {
			t.Errorf("answer took %v, beyond its deadline %v", took, deadline)
		}
		return nil
	})
	if a.Error != "" || len(a.Customers) != 1 {
		t.Fatalf("answer %+v, want %s's account", a, meter)
	}
	c := a.Customers[0]
	// No meters run in this lab: no consumption, so the balance is still the provisioned one.
	if c.Account != want.Account || c.Owner != want.Owner || c.Payment != want.Payment || c.BalanceFen != want.BalanceFen {
		t.Errorf("customer %+v, want %s %s %s balance %d", c, want.Account, want.Owner, want.Payment, want.BalanceFen)
	}
	if a, _, err := h.Query(ctx, wire.Query{Meter: "T9999-01"}); err != nil || a.Error != "not_found" {
		t.Errorf("query of an unknown meter: %+v, %v; want ops' not_found", a, err)
	}

	// Ops stops: the PDA has no session, drops the query, and the handheld answers offline at
	// the deadline with the cached answer and its age.
	opsPart.stop()
	start := time.Now()
	a, age, err := h.Query(ctx, wire.Query{Meter: wire.MeterID(meter), DeadlineMS: start.Add(500 * time.Millisecond).UnixMilli()})
	if !errors.Is(err, handheld.ErrOffline) {
		t.Fatalf("query with ops stopped: err %v, want offline", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("offline answer after %v, want at the 500ms deadline", took)
	}
	if len(a.Customers) != 1 || a.Customers[0].Owner != want.Owner || age <= 0 || age > time.Minute {
		t.Errorf("offline answer %+v age %v, want the cached one with its age", a, age)
	}
	if s := field.lab.Bridge.Stats(); s.Queries < 2 {
		t.Errorf("bridge stats %+v, want the queries relayed", s)
	}
}

// TestRelayJobEventsReachOpsOnce: a set-freeze job on district D01 reaches every terminal,
// and its job events reach ops once each (GET /api/v1/jobs shows every terminal's result) and
// leave the handheld's job outbox.
func TestRelayJobEventsReachOpsOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end chain skipped under -short")
	}
	const n = 3
	l := startLab(t, labConfig(t, n))
	h := l.Handheld
	waitFor(t, 20*time.Second, func() error {
		for _, term := range l.Terminals {
			if s := radioState(h, term.ID()); s != "active" {
				return fmt.Errorf("%s is %s", term.ID(), s)
			}
		}
		return nil
	})
	job, err := h.StartJob(handheld.JobSpec{Op: handheld.OpSetFreeze, Args: json.RawMessage(`{"at":"06:30"}`), Group: "D01", Within: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	done := waitJob(t, h, job.ID, 30*time.Second, func(j wire.Job) error {
		if j.State != wire.JobDone {
			return fmt.Errorf("job %s: %+v", j.State, j.Progress)
		}
		return nil
	})
	if done.Progress.Acked != n {
		t.Errorf("progress %+v, want %d acked", done.Progress, n)
	}
	j := opsJobDone(t, l.Config().HTTPAddr, h, job.ID, n)
	for _, tr := range j.Terminals {
		var res struct {
			At string `json:"at"`
		}
		if tr.State != wire.JobAcked || json.Unmarshal(tr.Result, &res) != nil || res.At != "06:30" {
			t.Errorf("ops has %s %s %s, want acked at 06:30", tr.Terminal, tr.State, tr.Result)
		}
	}
	if j.Handheld != "H01" || len(j.EventList) != n+1 {
		t.Errorf("job from %s with %d events, want H01's with %d (one per terminal, one for the end)", j.Handheld, len(j.EventList), n+1)
	}
	var list struct {
		Jobs []opsJob `json:"jobs"`
	}
	if err := getJSON("http://"+l.Config().HTTPAddr+"/api/v1/jobs", &list); err != nil || len(list.Jobs) != 1 || list.Jobs[0].ID != job.ID {
		t.Errorf("GET /api/v1/jobs: %+v, %v; want the job", list, err)
	}
}

// TestRelayGroupsFromOps: after the handheld's first upload, ops pushes it its groups, one
// per district with every terminal ops knows: the lab seeds the handheld with the terminals
// it runs only, so district D02's second terminal can only have come from ops.
func TestRelayGroupsFromOps(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end chain skipped under -short")
	}
	cfg := labConfig(t, 3)
	cfg.Districts = 2 // two terminals per district in ops, the lab runs three
	l := startLab(t, cfg)
	ds := demo.Dataset(2, 2)
	waitFor(t, 30*time.Second, func() error {
		gs, err := l.Handheld.Groups()
		if err != nil {
			return err
		}
		if len(gs) != 2 {
			return fmt.Errorf("%d groups", len(gs))
		}
		for i, g := range gs {
			if g.Name != ds[i].ID || g.Kind != wire.GroupKindDistrict || len(g.Terminals) != len(ds[i].Terminals) {
				return fmt.Errorf("group %s (%s) with %d terminals, want %s with %d", g.Name, g.Kind, len(g.Terminals), ds[i].ID, len(ds[i].Terminals))
			}
			for _, tm := range g.Terminals {
				if len(tm.Meters) == 0 || tm.Meters[0].Account == "" {
					return fmt.Errorf("terminal %s of %s without meters and accounts", tm.ID, g.Name)
				}
			}
		}
		return nil
	})
}
