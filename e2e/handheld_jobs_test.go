package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meterlink/meterlink/demo"
	"github.com/meterlink/meterlink/handheld"
	"github.com/meterlink/meterlink/terminal"
	"github.com/meterlink/meterlink/wire"
)

// waitJob polls a job until cond holds.
func waitJob(t *testing.T, h *handheld.Handheld, id string, within time.Duration, cond func(wire.Job) error) wire.Job {
	t.Helper()
	var job wire.Job
	waitFor(t, within, func() error {
		var err error
		if job, err = h.Job(id); err != nil {
			return err
		}
		return cond(job)
	})
	return job
}

func termState(job wire.Job, id string) wire.JobTerminal {
	for _, t := range job.Terminals {
		if string(t.Terminal) == id {
			return t
		}
	}
	return wire.JobTerminal{}
}

// TestHandheldDistrictFreezeReachesEveryTerminal changes the freeze time of a whole district.
// One terminal is awake, one sleeps between contacts, one is out of range when the job starts
// (its radio loses everything for a while), one is switched off and on again, and one is not
// heard at all until after the job started. Every one of them gets the new freeze time, and
// the job reports a result per terminal.
func TestHandheldDistrictFreezeReachesEveryTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end chain skipped under -short")
	}
	c := startHHChain(t, 5)
	hh := startHH(t, c.handheldConfig())
	if err := hh.h.SetGroups(c.groups()); err != nil {
		t.Fatal(err)
	}
	gw := hh.h.GatewayAddr().String()
	dir := c.cfg.DataDir
	var outOfRange atomic.Bool
	newTerm(t, "T0001", gw, dir, nil).start()
	newTerm(t, "T0002", gw, dir, func(tc *terminal.Config) { tc.Sleep = time.Second }).start()
	newTerm(t, "T0003", gw, dir, func(tc *terminal.Config) {
		tc.Radio = func(pc net.PacketConn) net.PacketConn { return switchRadio{pc, &outOfRange} }
	}).start()
	off := newTerm(t, "T0004", gw, dir, nil).start()
	late := newTerm(t, "T0005", gw, dir, nil) // not started yet
	waitFor(t, 20*time.Second, func() error {
		for _, want := range []struct{ id, state string }{{"T0001", "active"}, {"T0002", "asleep"}, {"T0003", "active"}, {"T0004", "active"}} {
			if got := radioState(hh.h, want.id); got != want.state {
				return fmt.Errorf("%s is %s, want %s", want.id, got, want.state)
			}
		}
		return nil
	})
	outOfRange.Store(true)
	off.stop()

	job, err := hh.h.StartJob(handheld.JobSpec{Op: handheld.OpSetFreeze, Args: json.RawMessage(`{"at":"06:30"}`), Group: "D01", Within: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(job.Terminals) != 5 || job.Group != "D01" {
		t.Fatalf("job on %s with %d terminals, want D01 with 5", job.Group, len(job.Terminals))
	}
	// The awake and the sleeping terminal answer; the others are waited for.
	waitJob(t, hh.h, job.ID, 20*time.Second, func(j wire.Job) error {
		for _, id := range []string{"T0001", "T0002"} {
			if s := termState(j, id).State; s != wire.JobAcked {
				return fmt.Errorf("%s is %s", id, s)
			}
		}
		if s := termState(j, "T0005"); s.State == wire.JobAcked || s.Attempts < 2 {
			return fmt.Errorf("T0005 (never heard) is %s after %d tries, want retried", s.State, s.Attempts)
		}
		if s := termState(j, "T0003"); s.State != wire.JobSent || radioState(hh.h, "T0003") != "lost" {
			return fmt.Errorf("T0003 is %s (%s), radio %s, want sent and lost", s.State, s.Detail, radioState(hh.h, "T0003"))
		}
		return nil
	})
	outOfRange.Store(false) // back in range
	off.start()             // switched on again
	late.start()            // heard for the first time

	done := waitJob(t, hh.h, job.ID, 60*time.Second, func(j wire.Job) error {
		if j.State != wire.JobDone {
			return fmt.Errorf("job %s: %+v", j.State, j.Progress)
		}
		return nil
	})
	if done.Progress.Acked != 5 || done.Progress.Failed != 0 {
		t.Errorf("progress %+v, want 5 acked", done.Progress)
	}
	for _, tr := range done.Terminals {
		var res struct {
			At string `json:"at"`
		}
		if err := json.Unmarshal(tr.Result, &res); err != nil || tr.State != wire.JobAcked || res.At != "06:30" || tr.Code != wire.AckOK {
			t.Errorf("%s: state %s code %d result %s (%s), want acked with at 06:30", tr.Terminal, tr.State, tr.Code, tr.Result, tr.Detail)
		}
	}
	// The results reach ops as job events, each once, and leave the handheld (relay_test.go).
	opsJobDone(t, c.cfg.HTTPAddr, hh.h, job.ID, 5)
}

func radioState(h *handheld.Handheld, id string) string {
	for _, c := range h.Clients() {
		if c.ClientID == id {
			return c.State.String()
		}
	}
	return "unknown"
}

// TestHandheldJobSurvivesRestart: a job half done when the handheld stops is resumed by the
// next start from its store: terminals that answered keep their result and are not asked
// again, the rest get the command after the restart.
func TestHandheldJobSurvivesRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end chain skipped under -short")
	}
	c := startHHChain(t, 2)
	hh := startHH(t, c.handheldConfig())
	if err := hh.h.SetGroups(c.groups()); err != nil {
		t.Fatal(err)
	}
	gw := hh.h.GatewayAddr().String()
	newTerm(t, "T0001", gw, c.cfg.DataDir, nil).start()
	t2 := newTerm(t, "T0002", gw, c.cfg.DataDir, nil)
	waitFor(t, 20*time.Second, func() error {
		if s := radioState(hh.h, "T0001"); s != "active" {
			return fmt.Errorf("T0001 is %s", s)
		}
		return nil
	})
	job, err := hh.h.StartJob(handheld.JobSpec{Op: handheld.OpCollect, Group: "D01"})
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, hh.h, job.ID, 20*time.Second, func(j wire.Job) error {
		if s := termState(j, "T0001").State; s != wire.JobAcked {
			return fmt.Errorf("T0001 is %s", s)
		}
		return nil
	})

	hh.stop()
	hh.start()
	resumed, err := hh.h.Job(job.ID)
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if resumed.State != wire.JobRunning || termState(resumed, "T0001").State != wire.JobAcked || termState(resumed, "T0002").State != wire.JobPending {
		t.Fatalf("after restart: job %s, T0001 %s, T0002 %s; want running, acked, pending",
			resumed.State, termState(resumed, "T0001").State, termState(resumed, "T0002").State)
	}
	t2.start()
	done := waitJob(t, hh.h, job.ID, 30*time.Second, func(j wire.Job) error {
		if j.State != wire.JobDone {
			return fmt.Errorf("job %s: %+v", j.State, j.Progress)
		}
		return nil
	})
	if done.Progress.Acked != 2 {
		t.Errorf("progress %+v, want 2 acked", done.Progress)
	}
	if a := termState(done, "T0001").Attempts; a != 1 {
		t.Errorf("T0001 was asked %d times, want once (its answer was kept across the restart)", a)
	}
	// The readings the job made reach ops.
	waitFor(t, 30*time.Second, func() error {
		for _, id := range []string{"T0001", "T0002"} {
			rs, err := readings(t, c.cfg.HTTPAddr, "meter="+demo.MeterID(id, 1))
			if err != nil {
				return err
			}
			if len(rs) != 1 {
				return fmt.Errorf("ops holds %d readings of %s, want 1", len(rs), id)
			}
		}
		return nil
	})
}
