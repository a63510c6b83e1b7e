package ops

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meterlink/meterlink/noisehs"
	"github.com/meterlink/meterlink/ops/internal/seclink"
	"github.com/meterlink/meterlink/ops/internal/store"
	"github.com/meterlink/meterlink/topic"
	"github.com/meterlink/meterlink/wire"
)

// This file handles what the handheld exchanges with ops through its PDA besides record
// batches (security.md §6 application kinds): real-time queries (noisehs.KindQuery, answered
// with KindAnswer), job events (KindJobEvents, stored and acknowledged with KindWireAck) and
// the handheld's groups (KindGroups, pushed by ops).

// Drop reasons of this file; labels of metricDropped.
const (
	dropQuery     = "bad_query"
	dropJobEvents = "bad_job_events"
)

// groupsEvery is how often ops pushes a handheld its groups through a PDA: on the first
// batch, job events or query it sees from (PDA, handheld), then at most once per period.
const groupsEvery = time.Hour

// maxGroupsBody keeps a wire.Groups, once sealed, under the broker's 64 KiB packet limit
// (security.md §11). Larger groups are not sent; see pushGroups.
const maxGroupsBody = 60 << 10

// relay is ops' in-memory state for the handheld relay: when groups were last pushed to
// each (PDA, handheld). A restart of ops pushes them again, which is harmless.
type relay struct {
	mu     sync.Mutex
	pushed map[string]time.Time // pda "/" handheld → last push
}

// handleQuery answers a handheld's real-time query within its deadline. The query is never
// stored: a repeat is answered again, which is as cheap as the first time.
func (o *Ops) handleQuery(ctx context.Context, pdaID string, rec noisehs.Record) error {
	var q wire.Query
	if err := json.Unmarshal(rec.Body, &q); err != nil {
		return drop(dropQuery, "decode query: %w", err)
	}
	if err := q.Validate(); err != nil {
		return drop(dropQuery, "query %s: %w", q.ID, err)
	}
	a := o.AnswerQuery(ctx, q)
	body, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode answer: %w", err)
	}
	o.reply(pdaID, noisehs.KindAnswer, body, "answer")
	o.maybePushGroups(pdaID, q.Handheld)
	return nil
}

// handleJobEvents stores a handheld's job events (each once, by event id), publishes every job
// they changed on topic.OpsJobs, and acknowledges the batch. A batch whose msg_id was answered
// before is acknowledged again without being looked at.
func (o *Ops) handleJobEvents(pdaID string, rec noisehs.Record) error {
	msgID := hex.EncodeToString(rec.MsgID[:])
	if ack, ok := o.st.MsgAnswer(wire.PDAID(pdaID), msgID); ok {
		o.metrics.Add(metricRepeats, 1)
		o.reply(pdaID, noisehs.KindWireAck, ack, "ack")
		return nil
	}
	var je wire.JobEvents
	if err := json.Unmarshal(rec.Body, &je); err != nil {
		return drop(dropJobEvents, "decode job events: %w", err)
	}
	if err := store.ValidJobEvents(je, wire.MaxBatchRecords); err != nil {
		return drop(dropJobEvents, "job events %s: %w", je.ID, err)
	}
	jobs, err := o.db.AddJobEvents(je.Handheld, je.Events, o.now().UnixMilli())
	if err != nil {
		return fmt.Errorf("job events %s from pda %s: %w", je.ID, pdaID, err)
	}
	for _, j := range jobs {
		b, err := json.Marshal(jobEvent{V: wire.Version, Job: j})
		if err != nil {
			return fmt.Errorf("encode job event: %w", err)
		}
		o.enqueue(outMsg{kind: "job", topic: topic.OpsJobs(j.ID), qos: 1, payload: b})
	}
	ack, err := json.Marshal(wire.Ack{V: wire.Version, ID: je.ID, Handheld: je.Handheld, Records: []wire.RecordKey{}})
	if err != nil {
		return fmt.Errorf("encode ack: %w", err)
	}
	if err := o.st.RememberMsg(wire.PDAID(pdaID), msgID, ack, seclink.MsgIDDedup); err != nil {
		o.log.Warn("msg_id not remembered", "pda", pdaID, "err", err) // events stay de-duplicated by id
	}
	o.reply(pdaID, noisehs.KindWireAck, ack, "ack")
	o.maybePushGroups(pdaID, je.Handheld)
	return nil
}

// jobEvent is the payload on topic.OpsJobs: the job as ops holds it, with the wire version.
type jobEvent struct {
	V int `json:"v"`
	store.Job
}

// maybePushGroups pushes handheld hh its groups through pda unless that was done within
// groupsEvery.
func (o *Ops) maybePushGroups(pda string, hh wire.HandheldID) {
	if !wire.ValidID(string(hh)) {
		return
	}
	key := pda + "/" + string(hh)
	now := o.now()
	o.relay.mu.Lock()
	if o.relay.pushed == nil {
		o.relay.pushed = map[string]time.Time{}
	}
	last, ok := o.relay.pushed[key]
	if ok && now.Sub(last) < groupsEvery {
		o.relay.mu.Unlock()
		return
	}
	o.relay.pushed[key] = now
	for k, t := range o.relay.pushed { // forget pairs not seen for a period
		if now.Sub(t) >= groupsEvery {
			delete(o.relay.pushed, k)
		}
	}
	o.relay.mu.Unlock()
	o.pushGroups(pda, hh)
}

// pushGroups seals handheld hh's groups for pda: one group of kind district per district,
// with its terminals, their meters and the meters' accounts.
//
// Which districts a reader works on (reader-to-district assignment) is not modelled yet, so
// every district is sent. Groups too large for one sealed record (about 60 KiB of JSON, some
// hundreds of terminals) are not sent, with a warning: the handheld keeps the groups it has.
func (o *Ops) pushGroups(pda string, hh wire.HandheldID) {
	ds, err := o.db.Load()
	if err != nil {
		o.log.Error("groups not pushed: store read failed", "pda", pda, "handheld", hh, "err", err)
		return
	}
	gs := groupsOf(ds)
	gs.Handheld, gs.AsOfMS = hh, o.now().UnixMilli()
	if err := gs.Validate(); err != nil {
		o.log.Warn("groups not pushed: invalid", "pda", pda, "handheld", hh, "err", err)
		return
	}
	body, err := json.Marshal(gs)
	if err != nil {
		o.log.Error("encode groups", "err", err)
		return
	}
	if len(body) > maxGroupsBody {
		o.log.Warn("groups not pushed: too large for one record; assign readers to districts", "pda", pda,
			"handheld", hh, "bytes", len(body), "districts", len(gs.Groups))
		return
	}
	o.reply(pda, noisehs.KindGroups, body, "groups")
	o.log.Info("groups pushed", "pda", pda, "handheld", hh, "groups", len(gs.Groups))
}

// groupsOf turns the provisioned entities into one district group each, terminals and
// meters in id and channel order.
func groupsOf(ds store.Dataset) wire.Groups {
	account := map[wire.MeterID]string{}
	for _, m := range ds.Meters {
		account[m.ID] = string(m.Account)
	}
	byDistrict := map[wire.DistrictID][]wire.GroupTerminal{}
	for _, t := range ds.Terminals {
		gt := wire.GroupTerminal{ID: t.ID, District: t.District}
		for _, c := range t.Channels {
			gt.Meters = append(gt.Meters, wire.GroupMeter{Channel: c.Channel, Meter: c.Meter, Account: account[c.Meter]})
		}
		slices.SortFunc(gt.Meters, func(a, b wire.GroupMeter) int { return int(a.Channel) - int(b.Channel) })
		byDistrict[t.District] = append(byDistrict[t.District], gt)
	}
	gs := wire.Groups{V: wire.Version, Groups: []wire.Group{}}
	for _, d := range ds.Districts {
		ts := byDistrict[d.ID]
		slices.SortFunc(ts, func(a, b wire.GroupTerminal) int { return strings.Compare(string(a.ID), string(b.ID)) })
		if ts == nil {
			ts = []wire.GroupTerminal{}
		}
		gs.Groups = append(gs.Groups, wire.Group{Name: string(d.ID), Kind: wire.GroupKindDistrict, Title: d.Name, Terminals: ts})
	}
	slices.SortFunc(gs.Groups, func(a, b wire.Group) int { return strings.Compare(a.Name, b.Name) })
	return gs
}
