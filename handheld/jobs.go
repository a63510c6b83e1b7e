package handheld

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/meterlink/meterlink/mqttsn"
	"github.com/meterlink/meterlink/topic"
	"github.com/meterlink/meterlink/wire"
	"github.com/tidwall/buntdb"
)

// ErrUnknownJob is returned for a job id the handheld does not hold.
var ErrUnknownJob = errors.New("unknown job")

// The terminal operations a batch job can carry out (terminal/commands.go).
const (
	OpCollect    = "collect"
	OpReadClock  = "read_clock"
	OpSetClock   = "set_clock"
	OpSetFreeze  = "set_freeze"
	OpSetChannel = "set_channel"
	OpLive       = "live"
	OpFrozen     = "frozen"
)

const (
	prefixJob = "job:"
	// setClockLag is how late a clock setting may reach a terminal (asleep or out of range
	// when it was sent) before the handheld sets the clock again with a fresh time.
	setClockLag = 5 * time.Second
	// maxClockResends bounds those fresh settings per terminal and job.
	maxClockResends = 3
	// keepDoneJobs is how many finished jobs the store keeps for `meterlink hh jobs`.
	keepDoneJobs = 200
)

// JobSpec describes a batch job: one operation on a group or on some terminals.
type JobSpec struct {
	Op        string          // OpSetClock, OpSetFreeze, OpSetChannel, OpCollect, OpFrozen or OpReadClock
	Args      json.RawMessage // the operation's arguments, as the terminal takes them; set_clock: empty for "now at sending"
	Group     string          // a group name (a district); or
	Terminals []string        // terminals by id
	Within    time.Duration   // terminals without an answer by then fail; 0: Config.JobDeadline
}

// jobs runs batch jobs: it sends each terminal its command, retries those that do not answer
// (asleep, out of range) with backoff, records every answer, and keeps each job in the store
// so a restarted handheld resumes it.
type jobs struct {
	h  *Handheld
	db *buntdb.DB

	mu          sync.Mutex
	active      map[string]*wire.Job
	clockResent map[string]int // job/terminal: fresh clock settings sent
	kick        chan struct{}
}

func newJobs(h *Handheld, db *buntdb.DB) (*jobs, error) {
	j := &jobs{h: h, db: db, active: map[string]*wire.Job{}, clockResent: map[string]int{}, kick: make(chan struct{}, 1)}
	all, err := j.load()
	if err != nil {
		return nil, err
	}
	for _, job := range all {
		if job.State != wire.JobRunning {
			continue
		}
		// The gateway's queue went with the old process: send again what was under way.
		for i := range job.Terminals {
			if t := &job.Terminals[i]; t.State == wire.JobSent {
				t.State, t.NextMS, t.Delivered = wire.JobPending, 0, false
				t.Detail = "handheld restarted; sending again"
			}
		}
		job.Count()
		if err := j.save(job); err != nil {
			return nil, err
		}
		j.active[job.ID] = job
	}
	return j, nil
}

func (j *jobs) wake() {
	select {
	case j.kick <- struct{}{}:
	default:
	}
}

// StartJob starts a batch job and returns it as started. The job runs while the handheld runs;
// follow it with [Handheld.Job].
func (h *Handheld) StartJob(spec JobSpec) (wire.Job, error) {
	args, err := checkJobArgs(spec.Op, spec.Args)
	if err != nil {
		return wire.Job{}, err
	}
	terms, target, err := h.groups.selectTerminals(spec.Group, spec.Terminals)
	if err != nil {
		return wire.Job{}, err
	}
	within := spec.Within
	if within == 0 {
		within = h.cfg.JobDeadline
	}
	if within < time.Second || within > 7*24*time.Hour {
		return wire.Job{}, inputErrorf("within %v: want 1s..168h", within)
	}
	now := h.now()
	j := h.jobs
	j.mu.Lock()
	defer j.mu.Unlock()
	id := "J" + now.Format("20060102-150405")
	for n := 2; j.exists(id); n++ {
		id = fmt.Sprintf("J%s-%d", now.Format("20060102-150405"), n)
	}
	job := &wire.Job{
		ID: id, Handheld: wire.HandheldID(h.cfg.ID), Op: spec.Op, Args: args, Group: target,
		State: wire.JobRunning, CreatedMS: now.UnixMilli(), DeadlineMS: now.Add(within).UnixMilli(),
	}
	for _, t := range terms {
		job.Terminals = append(job.Terminals, wire.JobTerminal{Terminal: t, State: wire.JobPending})
	}
	job.Count()
	if err := j.save(job); err != nil {
		return wire.Job{}, err
	}
	j.active[id] = job
	h.log.Info("job started", "job_id", id, "op", spec.Op, "group", target, "terminals", len(terms))
	j.wake()
	return cloneJob(job), nil
}

// setChannelArgs mirrors the terminal's set_channel arguments, to check them before a job
// starts.
type setChannelArgs struct {
	Channel    uint8   `json:"ch"`
	Meter      *string `json:"meter,omitempty"`
	Constant   *uint32 `json:"constant,omitempty"`
	BaseWh     *int64  `json:"base_wh,omitempty"`
	Multiplier *uint32 `json:"multiplier,omitempty"`
}

// checkJobArgs refuses an operation or arguments the terminals would refuse, so a mistake fails
// at once rather than on every terminal; it returns the arguments to send.
func checkJobArgs(op string, raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		raw = nil
	}
	strict := func(v any) error {
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return inputErrorf("%s arguments: %v", op, err)
		}
		return nil
	}
	switch op {
	case OpCollect, OpReadClock:
		if raw != nil {
			return nil, inputErrorf("%s takes no arguments", op)
		}
		return nil, nil
	case OpSetClock:
		if raw == nil {
			return nil, nil // the time is taken when each command is sent
		}
		var a struct {
			TimeMS int64 `json:"ts_ms"`
		}
		if err := strict(&a); err != nil {
			return nil, err
		}
		if a.TimeMS < time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli() {
			return nil, inputErrorf("set_clock ts_ms %d is before 2000", a.TimeMS)
		}
		return raw, nil
	case OpSetFreeze:
		var a struct {
			At string `json:"at"`
		}
		if raw == nil {
			return nil, inputErrorf("set_freeze needs the freeze time HH:MM")
		}
		if err := strict(&a); err != nil {
			return nil, err
		}
		if _, err := time.Parse("15:04", a.At); err != nil || len(a.At) != 5 {
			return nil, inputErrorf("freeze time %q: want HH:MM, 00:00 to 23:59", a.At)
		}
		return raw, nil
	case OpSetChannel:
		var a setChannelArgs
		if raw == nil {
			return nil, inputErrorf("set_channel needs a channel and what to change")
		}
		if err := strict(&a); err != nil {
			return nil, err
		}
		var errs []string
		if a.Channel < 1 || a.Channel > 16 {
			errs = append(errs, fmt.Sprintf("channel %d: want 1..16", a.Channel))
		}
		if a.Meter == nil && a.Constant == nil && a.BaseWh == nil && a.Multiplier == nil {
			errs = append(errs, "name at least one of meter, constant, base_wh, multiplier")
		}
		if a.Meter != nil && !wire.ValidID(*a.Meter) {
			errs = append(errs, fmt.Sprintf("meter %q is not a valid id", *a.Meter))
		}
		if a.Constant != nil && (*a.Constant < 1 || *a.Constant > 100000) {
			errs = append(errs, fmt.Sprintf("constant %d: want 1..100000 imp/kWh", *a.Constant))
		}
		if a.BaseWh != nil && *a.BaseWh < 0 {
			errs = append(errs, fmt.Sprintf("base %d Wh is negative", *a.BaseWh))
		}
		if a.Multiplier != nil && *a.Multiplier < 1 {
			errs = append(errs, "multiplier must be at least 1")
		}
		if len(errs) > 0 {
			return nil, inputErrorf("set_channel: %s", strings.Join(errs, "; "))
		}
		return raw, nil
	case OpFrozen:
		var a struct {
			From string `json:"from"`
			To   string `json:"to"`
		}
		if raw == nil {
			return nil, inputErrorf("frozen needs a date range from, to")
		}
		if err := strict(&a); err != nil {
			return nil, err
		}
		from, e1 := time.Parse(time.DateOnly, a.From)
		to, e2 := time.Parse(time.DateOnly, a.To)
		if e1 != nil || e2 != nil || to.Before(from) {
			return nil, inputErrorf("frozen dates %q to %q: want from <= to, both YYYY-MM-DD", a.From, a.To)
		}
		return raw, nil
	}
	return nil, inputErrorf("operation %q: a job can %s", op, strings.Join([]string{OpSetClock, OpSetFreeze, OpSetChannel, OpCollect, OpFrozen, OpReadClock}, ", "))
}

// run drives the active jobs until ctx is done.
func (j *jobs) run(ctx context.Context) {
	every := min(max(j.h.cfg.JobRetry/4, 10*time.Millisecond), time.Second)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		j.step(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-j.kick:
		}
	}
}

type jobSend struct {
	job *wire.Job
	i   int
	cmd wire.Command
}

// step sends what is due, gives up on what passed its deadline, and finishes jobs.
func (j *jobs) step(ctx context.Context) {
	now := j.h.now()
	ms := now.UnixMilli()
	var sends []jobSend
	j.mu.Lock()
	for _, job := range j.sorted() {
		changed := false
		for i := range job.Terminals {
			t := &job.Terminals[i]
			switch {
			case t.State == wire.JobPending && ms >= job.DeadlineMS:
			case t.State == wire.JobPending && ms >= t.NextMS:
				t.Attempts++
				cmd := wire.Command{V: wire.Version, ID: fmt.Sprintf("%s/%s/%d", job.ID, t.Terminal, t.Attempts), Terminal: t.Terminal, Op: job.Op, Args: job.Args}
				if job.Op == OpSetClock && len(job.Args) == 0 {
					cmd.Args, _ = json.Marshal(map[string]int64{"ts_ms": ms})
				}
				t.State, t.CommandID, t.SentMS, t.Delivered = wire.JobSent, cmd.ID, ms, false
				t.Detail = "queued at the gateway"
				sends = append(sends, jobSend{job, i, cmd})
				changed = true
			case t.State == wire.JobSent && t.Delivered && now.Sub(time.UnixMilli(t.SentMS)) > j.h.cfg.AckWait:
				j.retryLocked(t, now, fmt.Sprintf("took the command but did not answer within %v", j.h.cfg.AckWait))
				changed = true
			}
		}
		if ms >= job.DeadlineMS {
			for i := range job.Terminals {
				if t := &job.Terminals[i]; t.State == wire.JobPending || t.State == wire.JobSent {
					t.State, t.DoneMS = wire.JobFailed, ms
					t.Detail = fmt.Sprintf("no answer within %v (%d tries; terminal %s)",
						time.Duration(job.DeadlineMS-job.CreatedMS)*time.Millisecond, t.Attempts, j.h.radioState(string(t.Terminal)))
					j.eventLocked(job, t)
					changed = true
				}
			}
		}
		if changed {
			j.finishLocked(job, ms)
			j.saveLogged(job)
		}
	}
	j.mu.Unlock()
	for _, s := range sends {
		if err := j.h.publishCommand(ctx, s.cmd); err != nil {
			reason := "radio: " + err.Error()
			if errors.Is(err, mqttsn.ErrUnknownClient) {
				reason = "not heard since the handheld started (asleep, out of range or off)"
			}
			j.mu.Lock()
			if t := &s.job.Terminals[s.i]; t.State == wire.JobSent && t.CommandID == s.cmd.ID {
				j.retryLocked(t, now, reason)
				j.saveLogged(s.job)
			}
			j.mu.Unlock()
		}
	}
}

// retryLocked puts a terminal back to pending, to be tried again after its backoff.
func (j *jobs) retryLocked(t *wire.JobTerminal, now time.Time, reason string) {
	wait := j.h.cfg.JobRetry
	for n := 1; n < t.Attempts && wait < j.h.cfg.JobRetryMax; n++ {
		wait *= 2
	}
	wait = min(wait, j.h.cfg.JobRetryMax)
	t.State, t.Delivered, t.NextMS = wire.JobPending, false, now.Add(wait).UnixMilli()
	t.Detail = fmt.Sprintf("%s; next try in %v", reason, wait)
}

// finishLocked recounts a job and marks it done when every terminal has a result.
func (j *jobs) finishLocked(job *wire.Job, ms int64) {
	job.Count()
	if job.State != wire.JobRunning || job.Progress.Done() < job.Progress.Total {
		return
	}
	job.State, job.DoneMS = wire.JobDone, ms
	delete(j.active, job.ID)
	for k := range j.clockResent {
		if strings.HasPrefix(k, job.ID+"/") {
			delete(j.clockResent, k)
		}
	}
	p := job.Progress
	j.h.events.queue(wire.JobEvent{Job: job.ID, Op: job.Op, Group: job.Group, State: wire.JobDone, Progress: &p, TimeMS: ms})
	j.h.log.Info("job done", "job_id", job.ID, "op", job.Op, "acked", p.Acked, "failed", p.Failed)
}

func (j *jobs) eventLocked(job *wire.Job, t *wire.JobTerminal) {
	j.h.events.queue(wire.JobEvent{Job: job.ID, Op: job.Op, Group: job.Group, Terminal: t.Terminal, State: t.State,
		Code: t.Code, Detail: t.Detail, Result: t.Result, TimeMS: t.DoneMS})
}

// parseCommandID splits a job command id job/terminal/attempt.
func parseCommandID(id string) (job, terminal string, ok bool) {
	p := strings.Split(id, "/")
	if len(p) != 3 || !strings.HasPrefix(p[0], "J") {
		return "", "", false
	}
	return p[0], p[1], true
}

func (j *jobs) findLocked(cmdID string) (*wire.Job, *wire.JobTerminal) {
	jid, term, ok := parseCommandID(cmdID)
	if !ok {
		return nil, nil
	}
	job := j.active[jid]
	if job == nil {
		return nil, nil
	}
	for i := range job.Terminals {
		if string(job.Terminals[i].Terminal) == term {
			return job, &job.Terminals[i]
		}
	}
	return nil, nil
}

// onDelivered learns that the radio delivered (or gave up on) a job's command.
func (j *jobs) onDelivered(d mqttsn.Delivery) {
	var cmd struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(d.Payload, &cmd) != nil {
		return
	}
	now := j.h.now()
	j.mu.Lock()
	defer j.mu.Unlock()
	job, t := j.findLocked(cmd.ID)
	if t == nil || t.State != wire.JobSent || t.CommandID != cmd.ID {
		return
	}
	if d.Err != nil {
		j.retryLocked(t, now, "the radio gave up: "+d.Err.Error())
		j.saveLogged(job)
		return
	}
	t.Delivered = true
	t.Detail = "the terminal took the command"
	lag := now.Sub(time.UnixMilli(t.SentMS))
	key := job.ID + "/" + string(t.Terminal)
	if job.Op == OpSetClock && len(job.Args) == 0 && lag > setClockLag && j.clockResent[key] < maxClockResends {
		// The time in the command is lag old: send a fresh one now the terminal is awake.
		j.clockResent[key]++
		t.State, t.NextMS, t.Delivered = wire.JobPending, 0, false
		t.Detail = fmt.Sprintf("clock setting reached the terminal %v late; setting it again", lag.Round(time.Millisecond))
		j.wake()
	}
	j.saveLogged(job)
}

// onAck records a terminal's answer to a job's command; it reports whether the answer
// belonged to a job.
func (j *jobs) onAck(ack wire.CommandAck) bool {
	if _, _, ok := parseCommandID(ack.ID); !ok {
		return false
	}
	now := j.h.now()
	j.mu.Lock()
	defer j.mu.Unlock()
	job, t := j.findLocked(ack.ID)
	if t == nil || t.State == wire.JobAcked || t.State == wire.JobFailed {
		return true // a late or repeated answer
	}
	if job.Op == OpSetClock && ack.ID != t.CommandID {
		return true // an older, stale clock setting: the fresh one's answer counts
	}
	switch ack.Code {
	case wire.AckOK:
		t.State, t.Code, t.Result, t.DoneMS = wire.JobAcked, ack.Code, ack.Result, now.UnixMilli()
		t.Detail = resultNote(job.Op, ack.Result, now.Sub(time.UnixMilli(t.SentMS)))
	case wire.AckExpired:
		j.retryLocked(t, now, "the command expired on the way")
		j.saveLogged(job)
		j.wake()
		return true
	default:
		t.State, t.Code, t.Result, t.DoneMS = wire.JobFailed, ack.Code, ack.Result, now.UnixMilli()
		t.Detail = fmt.Sprintf("terminal refused (code %d): %s", ack.Code, ack.Detail)
	}
	j.eventLocked(job, t)
	j.finishLocked(job, now.UnixMilli())
	j.saveLogged(job)
	return true
}

// resultNote says in words what a terminal's answer means.
func resultNote(op string, result json.RawMessage, took time.Duration) string {
	var r map[string]any
	_ = json.Unmarshal(result, &r)
	switch op {
	case OpSetClock:
		if v, ok := r["moved_ms"].(float64); ok {
			return fmt.Sprintf("clock moved by %v; answered %v after sending", (time.Duration(v) * time.Millisecond).Round(time.Millisecond), took.Round(time.Millisecond))
		}
	case OpSetFreeze:
		if v, ok := r["at"].(string); ok {
			return "daily freeze at " + v
		}
	case OpCollect:
		if v, ok := r["seq"].(float64); ok {
			return fmt.Sprintf("reading made, seq %d", uint64(v))
		}
	case OpFrozen:
		if v, ok := r["records"].(float64); ok {
			return fmt.Sprintf("%d frozen records sent again", int(v))
		}
	case OpReadClock:
		if v, ok := r["ts_ms"].(float64); ok {
			return "terminal clock " + time.UnixMilli(int64(v)).Format(time.DateTime)
		}
	}
	return ""
}

// radioState describes a terminal's radio session for a failure reason.
func (h *Handheld) radioState(id string) string {
	for _, c := range h.Clients() {
		if c.ClientID == id {
			switch c.State {
			case mqttsn.StateAsleep:
				return "asleep"
			case mqttsn.StateLost:
				return "lost: out of range or off"
			}
			return c.State.String()
		}
	}
	return "never heard since the handheld started"
}

// publishCommand queues a command for a terminal at its gateway.
func (h *Handheld) publishCommand(ctx context.Context, cmd wire.Command) error {
	b, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	return h.gatewayOf(string(cmd.Terminal)).Publish(ctx, string(cmd.Terminal), topic.RadioCommands(string(cmd.Terminal)), 1, b)
}

func (j *jobs) exists(id string) bool {
	if _, ok := j.active[id]; ok {
		return true
	}
	err := j.db.View(func(tx *buntdb.Tx) error {
		_, err := tx.Get(prefixJob + id)
		return err
	})
	return err == nil
}

// sorted returns the active jobs, oldest first.
func (j *jobs) sorted() []*wire.Job {
	out := make([]*wire.Job, 0, len(j.active))
	for _, job := range j.active {
		out = append(out, job)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}

func (j *jobs) save(job *wire.Job) error {
	b, err := json.Marshal(job)
	if err != nil {
		return err
	}
	return j.db.Update(func(tx *buntdb.Tx) error {
		_, _, err := tx.Set(prefixJob+job.ID, string(b), nil)
		return err
	})
}

func (j *jobs) saveLogged(job *wire.Job) {
	if err := j.save(job); err != nil {
		j.h.log.Error("job not saved", "job_id", job.ID, "err", err)
	}
}

// load reads every stored job, oldest first, and drops the oldest finished ones beyond
// keepDoneJobs.
func (j *jobs) load() ([]*wire.Job, error) {
	var out []*wire.Job
	err := j.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendKeys(prefixJob+"*", func(_, v string) bool {
			job := &wire.Job{}
			if json.Unmarshal([]byte(v), job) == nil {
				out = append(out, job)
			}
			return true
		})
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].CreatedMS < out[b].CreatedMS })
	var done []string
	for _, job := range out {
		if job.State == wire.JobDone {
			done = append(done, job.ID)
		}
	}
	if len(done) > keepDoneJobs {
		drop := done[:len(done)-keepDoneJobs]
		err = j.db.Update(func(tx *buntdb.Tx) error {
			for _, id := range drop {
				if _, err := tx.Delete(prefixJob + id); err != nil && !errors.Is(err, buntdb.ErrNotFound) {
					return err
				}
			}
			return nil
		})
	}
	return out, err
}

// Jobs returns the jobs held, newest first.
func (h *Handheld) Jobs() ([]wire.Job, error) {
	h.jobs.mu.Lock()
	defer h.jobs.mu.Unlock()
	all, err := h.jobs.load()
	if err != nil {
		return nil, err
	}
	out := make([]wire.Job, 0, len(all))
	for i := len(all) - 1; i >= 0; i-- {
		job := all[i]
		if a, ok := h.jobs.active[job.ID]; ok {
			job = a
		}
		out = append(out, cloneJob(job))
	}
	return out, nil
}

// Job returns one job.
func (h *Handheld) Job(id string) (wire.Job, error) {
	h.jobs.mu.Lock()
	defer h.jobs.mu.Unlock()
	if a, ok := h.jobs.active[id]; ok {
		return cloneJob(a), nil
	}
	var job wire.Job
	err := h.jobs.db.View(func(tx *buntdb.Tx) error {
		v, err := tx.Get(prefixJob + id)
		if err != nil {
			return err
		}
		return json.Unmarshal([]byte(v), &job)
	})
	if errors.Is(err, buntdb.ErrNotFound) {
		return job, fmt.Errorf("%w %q", ErrUnknownJob, id)
	}
	return job, err
}

func cloneJob(j *wire.Job) wire.Job {
	c := *j
	c.Terminals = append([]wire.JobTerminal(nil), j.Terminals...)
	return c
}
