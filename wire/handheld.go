package wire

import (
	"encoding/json"
	"fmt"
)

// This file holds what the handheld exchanges with ops through the PDA (groups down, job
// events up) and the payloads of its local control API, which `meterlink hh` reads.

// The kinds of a [Group].
const (
	GroupKindDistrict  = "district"  // every terminal of a transformer district (台区), from ops
	GroupKindTerminals = "terminals" // a few terminals picked by ops
	GroupKindLocal     = "local"     // a narrowing the reader made on the handheld
)

// GroupMeter is a meter on a terminal's channel.
type GroupMeter struct {
	Channel uint8   `json:"ch"`
	Meter   MeterID `json:"meter"`
	Account string  `json:"account,omitempty"`
}

// GroupTerminal is a terminal of a group with the meters on its channels.
type GroupTerminal struct {
	ID       TerminalID   `json:"id"`
	District DistrictID   `json:"district,omitempty"`
	Meters   []GroupMeter `json:"meters,omitempty"`
}

// Group is a set of terminals the reader works on together: a district, a few terminals, or a
// local narrowing of another group.
type Group struct {
	Name      string          `json:"name"` // the district id (D01), or any id
	Kind      string          `json:"kind"` // GroupKindDistrict, GroupKindTerminals or GroupKindLocal
	Title     string          `json:"title,omitempty"`
	From      string          `json:"from,omitempty"` // local: the group narrowed
	Terminals []GroupTerminal `json:"terminals"`
}

// Validate reports every problem of the group.
func (g Group) Validate() error {
	var v validation
	g.validate(&v, "")
	return v.err()
}

func (g Group) validate(v *validation, at string) {
	if !ValidID(g.Name) {
		v.addf("%sname: %q is not a valid id", at, g.Name)
	}
	switch g.Kind {
	case GroupKindDistrict, GroupKindTerminals, GroupKindLocal:
	default:
		v.addf("%skind: %q, want district, terminals or local", at, g.Kind)
	}
	seen := map[TerminalID]bool{}
	for i, t := range g.Terminals {
		if !ValidID(string(t.ID)) || seen[t.ID] {
			v.addf("%sterminals[%d].id: %q is not a valid id or is repeated", at, i, t.ID)
		}
		seen[t.ID] = true
		for j, m := range t.Meters {
			if m.Channel < 1 || m.Channel > 16 || !ValidID(string(m.Meter)) {
				v.addf("%sterminals[%d].meters[%d]: channel %d meter %q", at, i, j, m.Channel, m.Meter)
			}
		}
	}
}

// Groups is what ops sends a handheld: the groups of the reader's districts. It replaces the
// groups ops sent before; the reader's local narrowings are kept.
type Groups struct {
	V        int        `json:"v"`
	Handheld HandheldID `json:"handheld"`
	Groups   []Group    `json:"groups"`
	AsOfMS   int64      `json:"as_of_ms,omitempty"`
}

// Validate reports every problem of the groups.
func (gs Groups) Validate() error {
	var v validation
	if gs.V != Version {
		v.addf("v: %d, want %d", gs.V, Version)
	}
	seen := map[string]bool{}
	for i, g := range gs.Groups {
		g.validate(&v, fmt.Sprintf("groups[%d].", i))
		if seen[g.Name] {
			v.addf("groups[%d].name: %q repeated", i, g.Name)
		}
		seen[g.Name] = true
	}
	return v.err()
}

// The states of a terminal in a [Job].
const (
	JobPending = "pending" // not sent yet, or waiting to be sent again
	JobSent    = "sent"    // sent, no answer yet
	JobAcked   = "acked"   // the terminal carried it out
	JobFailed  = "failed"  // the terminal refused it, or never answered by the job's deadline
)

// The states of a [Job].
const (
	JobRunning = "running"
	JobDone    = "done"
)

// JobTerminal is one terminal's part of a batch job.
type JobTerminal struct {
	Terminal  TerminalID      `json:"terminal"`
	State     string          `json:"state"` // JobPending, JobSent, JobAcked, JobFailed
	Attempts  int             `json:"attempts"`
	CommandID string          `json:"command_id,omitempty"` // the attempt under way
	SentMS    int64           `json:"sent_ms,omitempty"`
	Delivered bool            `json:"delivered,omitempty"` // the terminal took the last attempt (radio PUBACK)
	NextMS    int64           `json:"next_ms,omitempty"`   // pending: not before
	DoneMS    int64           `json:"done_ms,omitempty"`
	Code      AckCode         `json:"code"`
	Detail    string          `json:"detail,omitempty"` // why it failed or waits, or a note on the result
	Result    json.RawMessage `json:"result,omitempty"`
}

// JobProgress counts a job's terminals by state.
type JobProgress struct {
	Total   int `json:"total"`
	Pending int `json:"pending"`
	Sent    int `json:"sent"`
	Acked   int `json:"acked"`
	Failed  int `json:"failed"`
}

// Done is the number of terminals with a final result.
func (p JobProgress) Done() int { return p.Acked + p.Failed }

// Job is a batch job: one terminal operation (set clock, set freeze time, set channel, collect,
// read frozen records) carried out on every terminal of a group.
type Job struct {
	ID         string          `json:"id"`
	Handheld   HandheldID      `json:"handheld"`
	Op         string          `json:"op"` // a terminal operation, as in Command.Op
	Args       json.RawMessage `json:"args,omitempty"`
	Group      string          `json:"group,omitempty"` // what it runs on: a group name or a terminal
	State      string          `json:"state"`           // JobRunning or JobDone
	CreatedMS  int64           `json:"created_ms"`
	DeadlineMS int64           `json:"deadline_ms"` // terminals without an answer by then fail
	DoneMS     int64           `json:"done_ms,omitempty"`
	Progress   JobProgress     `json:"progress"`
	Terminals  []JobTerminal   `json:"terminals"`
}

// Count recomputes Progress from the terminals.
func (j *Job) Count() {
	p := JobProgress{Total: len(j.Terminals)}
	for _, t := range j.Terminals {
		switch t.State {
		case JobPending:
			p.Pending++
		case JobSent:
			p.Sent++
		case JobAcked:
			p.Acked++
		case JobFailed:
			p.Failed++
		}
	}
	j.Progress = p
}

// JobEvent reports a job's result for one terminal, or (Terminal empty) the job's end.
type JobEvent struct {
	ID       string          `json:"id"` // unique per event, chosen by the handheld
	Job      string          `json:"job"`
	Op       string          `json:"op"`
	Group    string          `json:"group,omitempty"`
	Terminal TerminalID      `json:"terminal,omitempty"`
	State    string          `json:"state"` // acked or failed for a terminal, done for the job
	Code     AckCode         `json:"code"`
	Detail   string          `json:"detail,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
	Progress *JobProgress    `json:"progress,omitempty"` // the job's end
	TimeMS   int64           `json:"ts_ms"`
}

// JobEvents carries job events from the handheld upstream. Ops acknowledges a batch with an
// [Ack] of the same ID (and no records); until then the handheld keeps and resends it.
type JobEvents struct {
	V        int        `json:"v"`
	ID       string     `json:"id"`
	Handheld HandheldID `json:"handheld"`
	Events   []JobEvent `json:"events"`
}

// SiteWarning is an on-site warning (现场预警): something the handheld saw in a terminal's
// records or in an answer from ops, flagged before ops sees it. ERC is the Q/GDW 1376.1 event
// code it corresponds to, where there is one.
type SiteWarning struct {
	ID       string     `json:"id"`
	Code     string     `json:"code"` // reverse_running, spike, zero_consumption, clock_drift, power_loss, low_balance, arrears
	ERC      int        `json:"erc,omitempty"`
	Severity string     `json:"severity"` // info, warning, critical
	Terminal TerminalID `json:"terminal,omitempty"`
	Channel  uint8      `json:"ch,omitempty"`
	Meter    MeterID    `json:"meter,omitempty"`
	Account  string     `json:"account,omitempty"`
	Seq      uint64     `json:"seq,omitempty"`       // the record that showed it
	RecordMS int64      `json:"record_ms,omitempty"` // the record's time (terminal clock)
	PrevWh   int64      `json:"prev_wh,omitempty"`
	CurrWh   int64      `json:"curr_wh,omitempty"`
	Detail   string     `json:"detail"`
	TimeMS   int64      `json:"ts_ms"` // when the handheld flagged it
}

// TerminalStatus is a terminal as the handheld sees it: its group and its radio session.
type TerminalStatus struct {
	ID         TerminalID `json:"id"`
	District   DistrictID `json:"district,omitempty"`
	Groups     []string   `json:"groups,omitempty"`
	Meters     int        `json:"meters"`
	State      string     `json:"state"` // the radio session: active, asleep, awake, lost, disconnected, unknown
	LastSeenMS int64      `json:"last_seen_ms,omitempty"`
	Queued     int        `json:"queued"`  // commands waiting at the gateway
	Pending    int        `json:"pending"` // its records in the outbox, not yet acknowledged by ops
}

// LiveView is a terminal's live channel values, read with the terminal's live operation.
type LiveView struct {
	Terminal TerminalID       `json:"terminal"`
	Channel  uint8            `json:"ch,omitempty"` // 0: all channels
	Channels []ChannelReading `json:"channels"`
	TimeMS   int64            `json:"ts_ms"`
}

// QueryResult is the handheld's answer to a real-time query: ops' answer when it came within
// the deadline, else (Offline) the last answer cached for the same subject with its age.
type QueryResult struct {
	Query       Query  `json:"query"`
	Answer      Answer `json:"answer"`
	Offline     bool   `json:"offline"`
	Cached      bool   `json:"cached"`                  // Answer comes from the cache
	CachedAgeMS int64  `json:"cached_age_ms,omitempty"` // how old the cached answer is
	Reason      string `json:"reason,omitempty"`        // why offline
	ElapsedMS   int64  `json:"elapsed_ms"`
}

// OutboxStatus is what waits in the handheld for ops.
type OutboxStatus struct {
	Records      int            `json:"records"`              // records not yet acknowledged by ops
	ByTerminal   map[string]int `json:"by_terminal"`          // of which, per terminal
	Inflight     int            `json:"inflight"`             // sent, awaiting the acknowledgement
	JobEvents    int            `json:"job_events"`           // job events not yet acknowledged
	Uploaded     int            `json:"uploaded"`             // records acknowledged since start
	Batches      int            `json:"batches"`              // batches sent since start
	PDAConnected bool           `json:"pda_connected"`        // the link to the PDA is up
	OldestMS     int64          `json:"oldest_ms,omitempty"`  // time of the oldest waiting record
	Received     int            `json:"received"`             // records received since start
	Duplicates   int            `json:"duplicates"`           // records a terminal sent again
	Rejected     int            `json:"rejected"`             // radio payloads dropped
	Warnings     int            `json:"warnings"`             // on-site warnings held
	Handheld     HandheldID     `json:"handheld"`             // this handheld
	Gateway      string         `json:"gateway,omitempty"`    // MQTT-SN gateway address
	PDAURL       string         `json:"pda_url,omitempty"`    // the PDA's local listener
	ControlAt    string         `json:"control_at,omitempty"` // this API
}

// JobRequest asks the handheld's control API for a batch job on a group or on terminals.
type JobRequest struct {
	Op        string          `json:"op"`
	Args      json.RawMessage `json:"args,omitempty"`
	Group     string          `json:"group,omitempty"`
	Terminals []string        `json:"terminals,omitempty"`
	Within    string          `json:"within,omitempty"` // Go duration, e.g. "30m"; default: the handheld's job deadline
}

// NarrowRequest asks the handheld's control API for a local group made of some terminals of
// another group.
type NarrowRequest struct {
	Name      string   `json:"name"`
	From      string   `json:"from"`
	Terminals []string `json:"terminals"`
}
