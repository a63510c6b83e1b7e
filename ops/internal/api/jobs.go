package api

import (
	"fmt"
	"net/http"

	"github.com/meterlink/meterlink/ops/internal/store"
)

// JobStore is what the job endpoints need: handheld batch jobs as ops knows them from their
// job events. A store without it answers 404.
type JobStore interface {
	Jobs(limit int) ([]store.Job, error)
	Job(id string) (store.Job, []store.JobEvent, error)
}

// Interface guard.
var _ JobStore = (*store.DB)(nil)

// JobWithEvents is the body of GET /api/v1/jobs/{id}: the job and every event stored for it,
// oldest first.
type JobWithEvents struct {
	store.Job
	EventList []store.JobEvent `json:"event_list"`
}

// listJobs lists jobs with their latest state and per-terminal results, most recently
// updated first (limit, default DefaultLimit).
func (a *API) listJobs(w http.ResponseWriter, r *http.Request) error {
	js, ok := a.st.(JobStore)
	if !ok {
		return fmt.Errorf("jobs: %w", store.ErrNotFound)
	}
	if err := onlyParams(r, "limit"); err != nil {
		return err
	}
	fe := map[string]string{}
	limit := limitParam(r, fe)
	if len(fe) > 0 {
		return &store.FieldError{Fields: fe}
	}
	jobs, err := js.Jobs(limit)
	if err != nil {
		return err
	}
	if jobs == nil {
		jobs = []store.Job{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": jobs})
	return nil
}

// getJob shows one job with its events.
func (a *API) getJob(w http.ResponseWriter, r *http.Request) error {
	js, ok := a.st.(JobStore)
	if !ok {
		return fmt.Errorf("jobs: %w", store.ErrNotFound)
	}
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if err := onlyParams(r); err != nil {
		return err
	}
	j, evs, err := js.Job(id)
	if err != nil {
		return err
	}
	if evs == nil {
		evs = []store.JobEvent{}
	}
	writeJSON(w, http.StatusOK, JobWithEvents{Job: j, EventList: evs})
	return nil
}
