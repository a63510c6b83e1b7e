package ops

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/meterlink/meterlink/noisehs"
	"github.com/meterlink/meterlink/topic"
	"github.com/meterlink/meterlink/wire"
)

// TestJobEventsStoredOnceAndAcked: job events are stored by id, each job change is published,
// the batch is acknowledged; a resend under a new msg_id stores nothing again but is
// acknowledged; groups are pushed once for the handheld.
func TestJobEventsStoredOnceAndAcked(t *testing.T) {
	o := newTestOps(t)
	pda := connected(t, o, "P01", sidP01)
	now := time.Now().UnixMilli()
	je := wire.JobEvents{V: wire.Version, ID: "H01-jev-batch-1", Handheld: "H01", Events: []wire.JobEvent{
		{ID: "H01-jev-1", Job: "J1", Op: "set_freeze", Group: "D01", Terminal: "T0001", State: wire.JobAcked, Result: json.RawMessage(`{"at":"06:30"}`), TimeMS: now},
		{ID: "H01-jev-2", Job: "J1", Op: "set_freeze", Group: "D01", State: wire.JobDone, Progress: &wire.JobProgress{Total: 1, Acked: 1}, TimeMS: now + 1},
	}}
	body, _ := json.Marshal(je)
	for round := range 2 {
		tp, f := pda.seal(noisehs.KindJobEvents, body) // a fresh msg_id: the PDA lost its outbox
		if err := o.HandleUp(context.Background(), tp, f); err != nil {
			t.Fatal(err)
		}
		var acks, jobs, groups int
		for _, m := range drainAll(o) {
			switch {
			case m.topic == topic.OpsJobs("J1"):
				jobs++
				var ev jobEvent
				if err := json.Unmarshal(m.payload, &ev); err != nil || ev.State != wire.JobDone || len(ev.Terminals) != 1 || ev.V != wire.Version {
					t.Errorf("job event %s", m.payload)
				}
			case m.topic == topic.PDADown("P01"):
				r := pda.open(m.topic, m.payload)
				switch r.Kind {
				case noisehs.KindWireAck:
					acks++
					var a wire.Ack
					if json.Unmarshal(r.Body, &a) != nil || a.ID != je.ID || a.Handheld != "H01" {
						t.Errorf("ack %s", r.Body)
					}
				case noisehs.KindGroups:
					groups++
					var gs wire.Groups
					if json.Unmarshal(r.Body, &gs) != nil || gs.Handheld != "H01" || len(gs.Groups) != 1 || gs.Groups[0].Name != "D01" ||
						len(gs.Groups[0].Terminals) != 1 || gs.Groups[0].Terminals[0].Meters[0].Account != "A1" {
						t.Errorf("groups %s", r.Body)
					}
				}
			}
		}
		wantJobs, wantGroups := 1, 1
		if round == 1 {
			wantJobs, wantGroups = 0, 0
		}
		if acks != 1 || jobs != wantJobs || groups != wantGroups {
			t.Errorf("round %d: %d acks, %d job events, %d groups; want 1, %d, %d", round, acks, jobs, groups, wantJobs, wantGroups)
		}
	}
	j, evs, err := o.db.Job("J1")
	if err != nil || j.Events != 2 || len(evs) != 2 || j.Progress == nil || j.Progress.Acked != 1 {
		t.Errorf("job %+v events %d err %v, want 2 events stored once, done", j, len(evs), err)
	}
}

// TestQueryAnswered: a query record is answered with the customer's data as KindAnswer.
func TestQueryAnswered(t *testing.T) {
	o := newTestOps(t)
	pda := connected(t, o, "P01", sidP01)
	q := wire.Query{V: wire.Version, ID: "H01-q-1", Handheld: "H01", Meter: "M000101", DeadlineMS: time.Now().Add(time.Second).UnixMilli()}
	body, _ := json.Marshal(q)
	tp, f := pda.seal(noisehs.KindQuery, body)
	if err := o.HandleUp(context.Background(), tp, f); err != nil {
		t.Fatal(err)
	}
	out := drain(o)
	if len(out) != 1 {
		t.Fatalf("%d publications, want the answer", len(out))
	}
	r := pda.open(out[0].topic, out[0].payload)
	var a wire.Answer
	if r.Kind != noisehs.KindAnswer || json.Unmarshal(r.Body, &a) != nil || a.ID != q.ID || len(a.Customers) != 1 || a.Customers[0].Account != "A1" {
		t.Errorf("answer kind %#x %s", r.Kind, r.Body)
	}
	// An invalid query is dropped unanswered.
	tp, f = pda.seal(noisehs.KindQuery, []byte(`{"v":1,"id":"x"}`))
	if err := o.HandleUp(context.Background(), tp, f); err != nil {
		t.Fatal(err)
	}
	if out := drain(o); len(out) != 0 {
		t.Errorf("invalid query answered: %d publications", len(out))
	}
}
