package store

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/meterlink/meterlink/wire"
)

// Key prefixes of handheld batch jobs: jev:{event id} holds an event (so a resend stores
// nothing twice), jei:{job}:{event id} lists a job's events, job:{job} holds the job as ops
// sees it, summed up from its events.
const (
	pfxJobEvent      = "jev:"
	pfxJobEventIndex = "jei:"
	pfxJob           = "job:"
)

// JobEvent is a job event as ops stored it: the handheld's event and who sent it.
type JobEvent struct {
	wire.JobEvent
	Handheld   wire.HandheldID `json:"handheld"`
	ReceivedMS int64           `json:"received_ms"`
}

// JobResult is one terminal's latest result in a job.
type JobResult struct {
	Terminal wire.TerminalID `json:"terminal"`
	State    string          `json:"state"` // acked or failed
	Code     wire.AckCode    `json:"code"`
	Detail   string          `json:"detail,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
	TimeMS   int64           `json:"ts_ms"`
}

// Job is a handheld's batch job as ops knows it from its job events: the latest result of
// each terminal that reported and, once the handheld said so, that it is done with its final
// progress. Terminals that have not reported are not listed: ops does not know the job's plan.
type Job struct {
	ID        string            `json:"id"`
	Handheld  wire.HandheldID   `json:"handheld"`
	Op        string            `json:"op"`
	Group     string            `json:"group,omitempty"`
	State     string            `json:"state"`              // running, or done once the job's end event came
	Progress  *wire.JobProgress `json:"progress,omitempty"` // from the job's end event
	Terminals []JobResult       `json:"terminals"`          // by terminal id
	Events    int               `json:"events"`             // events stored
	FirstMS   int64             `json:"first_ms"`           // when ops stored its first event
	UpdatedMS int64             `json:"updated_ms"`         // when ops stored its latest event
}

// ValidJobEvents reports every problem of a batch of job events: the envelope, ids that can
// be keys, and 1..maxEvents events.
func ValidJobEvents(je wire.JobEvents, maxEvents int) error {
	fe := map[string]string{}
	if je.V != wire.Version {
		fe["v"] = fmt.Sprintf("%d, want %d", je.V, wire.Version)
	}
	if je.ID == "" || len(je.ID) > 128 {
		fe["id"] = "must be 1..128 characters"
	}
	if !wire.ValidID(string(je.Handheld)) {
		fe["handheld"] = fmt.Sprintf("%q is not a valid id", je.Handheld)
	}
	if len(je.Events) == 0 || len(je.Events) > maxEvents {
		fe["events"] = fmt.Sprintf("%d events, want 1..%d", len(je.Events), maxEvents)
	}
	for i, ev := range je.Events {
		at := fmt.Sprintf("events[%d]", i)
		switch {
		case !wire.ValidID(ev.ID) || !wire.ValidID(ev.Job):
			fe[at] = fmt.Sprintf("id %q or job %q is not a valid id", ev.ID, ev.Job)
		case ev.Terminal != "" && !wire.ValidID(string(ev.Terminal)):
			fe[at] = fmt.Sprintf("terminal %q is not a valid id", ev.Terminal)
		case ev.Terminal == "" && ev.State != wire.JobDone:
			fe[at] = fmt.Sprintf("state %q without a terminal, want done", ev.State)
		}
	}
	if len(fe) > 0 {
		return &FieldError{Fields: fe}
	}
	return nil
}

// AddJobEvents stores the events of a batch (checked with [ValidJobEvents]) that are not
// stored yet, and updates their jobs, in one transaction. It returns the jobs that changed;
// none when every event was stored before.
func (s *DB) AddJobEvents(hh wire.HandheldID, evs []wire.JobEvent, nowMS int64) ([]Job, error) {
	var changed []Job
	err := s.Update(func(t *Tx) error {
		jobs := map[string]*Job{}
		var order []string
		for _, ev := range evs {
			ok, err := exists(t.tx, pfxJobEvent+ev.ID)
			if err != nil {
				return err
			}
			if ok {
				continue
			}
			if err := set(t.tx, pfxJobEvent+ev.ID, JobEvent{JobEvent: ev, Handheld: hh, ReceivedMS: nowMS}); err != nil {
				return err
			}
			k := pfxJobEventIndex + ev.Job + ":" + ev.ID
			if _, _, err := t.tx.Set(k, "", nil); err != nil {
				return fmt.Errorf("set %s: %w", k, err)
			}
			j := jobs[ev.Job]
			if j == nil {
				j = &Job{}
				found, err := get(t.tx, pfxJob+ev.Job, j)
				if err != nil {
					return err
				}
				if !found {
					*j = Job{ID: ev.Job, Handheld: hh, Op: ev.Op, Group: ev.Group, State: wire.JobRunning, Terminals: []JobResult{}, FirstMS: nowMS}
				}
				jobs[ev.Job] = j
				order = append(order, ev.Job)
			}
			j.apply(ev, nowMS)
		}
		for _, id := range order {
			if err := set(t.tx, pfxJob+id, jobs[id]); err != nil {
				return err
			}
			changed = append(changed, *jobs[id])
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store job events: %w", err)
	}
	return changed, nil
}

// apply folds a new event into the job: a terminal's result replaces an older one of that
// terminal; the job's end event sets it done.
func (j *Job) apply(ev wire.JobEvent, nowMS int64) {
	j.Events++
	j.UpdatedMS = nowMS
	if ev.Terminal == "" {
		j.State = wire.JobDone
		if ev.Progress != nil {
			p := *ev.Progress
			j.Progress = &p
		}
		return
	}
	r := JobResult{Terminal: ev.Terminal, State: ev.State, Code: ev.Code, Detail: ev.Detail, Result: ev.Result, TimeMS: ev.TimeMS}
	i, found := slices.BinarySearchFunc(j.Terminals, ev.Terminal, func(x JobResult, id wire.TerminalID) int { return cmp.Compare(x.Terminal, id) })
	switch {
	case !found:
		j.Terminals = slices.Insert(j.Terminals, i, r)
	case j.Terminals[i].TimeMS <= ev.TimeMS:
		j.Terminals[i] = r
	}
}

// Jobs returns every job ops knows, most recently updated first, at most limit.
func (s *DB) Jobs(limit int) ([]Job, error) {
	var out []Job
	err := s.View(func(t *Tx) error {
		var err error
		out, err = list[Job](t.tx, pfxJob)
		return err
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b Job) int { return cmp.Compare(b.UpdatedMS, a.UpdatedMS) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Job returns a job with its events, or [ErrNotFound].
func (s *DB) Job(id string) (Job, []JobEvent, error) {
	var j Job
	var evs []JobEvent
	err := s.View(func(t *Tx) error {
		var err error
		if j, err = getOne[Job](t, "job", pfxJob, id); err != nil {
			return err
		}
		p := pfxJobEventIndex + id + ":"
		var ids []string
		if err := t.tx.AscendRange("", p, prefixEnd(p), func(k, _ string) bool {
			ids = append(ids, k[len(p):])
			return true
		}); err != nil {
			return fmt.Errorf("scan %s: %w", p, err)
		}
		for _, eid := range ids {
			var ev JobEvent
			if ok, err := get(t.tx, pfxJobEvent+eid, &ev); err != nil || !ok {
				return err
			}
			evs = append(evs, ev)
		}
		return nil
	})
	slices.SortStableFunc(evs, func(a, b JobEvent) int { return cmp.Compare(a.TimeMS, b.TimeMS) })
	return j, evs, err
}
