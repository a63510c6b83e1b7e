package ops

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/meterlink/meterlink/noisehs"
	"github.com/meterlink/meterlink/ops/internal/seclink"
	"github.com/meterlink/meterlink/ops/internal/store"
	"github.com/meterlink/meterlink/topic"
	"github.com/meterlink/meterlink/wire"
)

// Metric names. Each is documented in its HELP line (declareMetrics).
const (
	metricIngested   = "meterlink_ops_messages_ingested_total"
	metricDropped    = "meterlink_ops_messages_dropped_total"
	metricStored     = "meterlink_ops_records_stored_total"
	metricDuplicates = "meterlink_ops_records_duplicate_total"
	metricRejected   = "meterlink_ops_records_rejected_total"
	metricExpired    = "meterlink_ops_records_expired_total"
	metricPublished  = "meterlink_ops_published_total"
	metricPubFailed  = "meterlink_ops_publish_failed_total"
	metricPruned     = "meterlink_ops_records_pruned_total"
	metricRepeats    = "meterlink_ops_msg_repeats_total"
)

func (o *Ops) declareMetrics() {
	m := o.metrics
	m.Counter(metricIngested, "Uplink batches applied to the store.", false)
	m.Counter(metricDropped, "Uplink messages dropped unapplied, by reason.", true)
	m.Counter(metricStored, "Records stored, by kind (the reading kind counts readings stored).", true)
	m.Counter(metricDuplicates, "Records received again and acknowledged without storing.", false)
	m.Counter(metricRejected, "Records rejected in the acknowledgement, by reason.", true)
	m.Counter(metricExpired, "Records older than the retention, acknowledged without storing.", false)
	m.Counter(metricPublished, "Messages published, by kind (ack, reading, status).", true)
	m.Counter(metricPubFailed, "Messages that could not be published, by kind.", true)
	m.Counter(metricPruned, "Records deleted by the retention.", false)
	m.Counter(metricRepeats, "Sealed batches whose msg_id was answered before: acknowledged again, not applied.", false)
}

// Reasons for dropping an uplink message; each is a label of metricDropped. Nothing is sent
// back for any of them (security.md §9: all failures look the same outside).
const (
	dropTopic      = "bad_topic"
	dropUnknownPDA = "unknown_pda"
	dropRevokedPDA = "revoked_pda"
	dropHandshake  = "bad_handshake"   // HS_INIT failed rules 3–6
	dropStaleHS    = "stale_handshake" // HS_INIT replayed (rule 5)
	dropCloneAlarm = "clone_alarm"     // HS_INIT from S_pda with an old epoch: row locked
	dropRateLimit  = "handshake_rate_limited"
	dropLockedOut  = "handshake_locked_out"
	dropSID0       = "sid0_expired"
	dropSlotsFull  = "enrolment_slots_full"
	dropNoSession  = "no_session" // DATA for no live session (ops restarted, or forged)
	dropReplay     = "replay"     // DATA counter seen or below the window
	dropRecord     = "bad_record" // DATA failed to open
	dropKind       = "bad_kind"
	dropBatch      = "bad_batch"
)

// reasonOf names the drop reason of a secure-channel error; fallback if none fits.
func reasonOf(err error, fallback string) string {
	for _, r := range []struct {
		err    error
		reason string
	}{
		{seclink.ErrUnknownPDA, dropUnknownPDA}, {seclink.ErrRevoked, dropRevokedPDA}, {noisehs.ErrLocked, dropRevokedPDA},
		{seclink.ErrRateLimit, dropRateLimit}, {seclink.ErrLockedOut, dropLockedOut}, {seclink.ErrSID0, dropSID0},
		{seclink.ErrSlotsFull, dropSlotsFull}, {seclink.ErrNoSession, dropNoSession}, {noisehs.ErrReplay, dropReplay},
		{noisehs.ErrStaleCounter, dropStaleHS}, {noisehs.ErrCloneAlarm, dropCloneAlarm},
	} {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return fallback
}

// dropError is bad input: the message is logged, counted and acknowledged, never retried.
type dropError struct {
	reason string
	err    error
}

func (e *dropError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *dropError) Unwrap() error { return e.err }

func drop(reason string, format string, args ...any) error {
	return &dropError{reason: reason, err: fmt.Errorf(format, args...)}
}

// outMsg is a publication queued by ingest for Run's publisher.
type outMsg struct {
	kind     string // "ack", "reading": the metric label
	topic    string
	qos      byte
	retained bool
	payload  []byte
}

// outQueue bounds the publications waiting for the broker. The MQTT handler never waits for
// the broker (paho with ordered delivery deadlocks when a handler blocks on a PUBACK), so a
// full queue drops: an ack is sent again when the field resends, readings events are QoS 0.
const outQueue = 4096

// HandleUp handles one message from a PDA's topics (SECLINK/1, security.md): an HS_INIT on
// topic.PDAHandshakeUp is answered with an HS_RESP queued for topic.PDAHandshakeDown; a DATA
// record on topic.PDAUp is opened with the PDA's session. A CONFIRM is answered with a COMMIT;
// a batch (noisehs.KindBatch carrying a wire.Batch) is applied in one store transaction, and
// its wire.Ack is sealed and queued for topic.PDADown, with one wire.ReadingEvent per stored
// reading for topic.OpsReadings. A batch whose msg_id was answered before is answered again,
// never applied again. Job events (KindJobEvents) are stored and acknowledged the same way,
// each job they change published on topic.OpsJobs; a query (KindQuery) is answered with
// KindAnswer. The first uplink from a handheld in an hour also pushes it its groups
// (KindGroups, jobs.go). Bad input is logged, counted and dropped with a nil error (acknowledge
// it: redelivery cannot help); it never changes the store. An error means the store failed and
// the message must stay unacknowledged so that the broker delivers it again.
func (o *Ops) HandleUp(ctx context.Context, t string, payload []byte) error {
	err := o.handleUp(ctx, t, payload)
	var de *dropError
	if errors.As(err, &de) {
		o.metrics.Add(metricDropped, 1, "reason", de.reason)
		o.log.Warn("uplink message dropped", "topic", t, "reason", de.reason, "err", de.err)
		return nil
	}
	return err
}

func (o *Ops) handleUp(ctx context.Context, t string, payload []byte) error {
	pdaID, rest, err := topic.ParsePDA(t)
	if err != nil || (rest != "up" && rest != "hs/up") {
		return drop(dropTopic, "not a pda uplink or handshake topic")
	}
	if rest == "hs/up" {
		resp, err := o.sec.HandleHSInit(pdaID, payload)
		if err != nil {
			return drop(reasonOf(err, dropHandshake), "hs_init: %w", err)
		}
		o.enqueue(outMsg{kind: "hs_resp", topic: topic.PDAHandshakeDown(pdaID), qos: 1, payload: resp})
		return nil
	}
	rec, err := o.sec.Open(pdaID, t, payload)
	if err != nil {
		return drop(reasonOf(err, dropRecord), "open record: %w", err)
	}
	switch rec.Kind {
	case noisehs.KindConfirm:
		o.reply(pdaID, noisehs.KindCommit, nil, "commit")
		return nil
	case noisehs.KindBatch:
		return o.handleBatch(ctx, t, pdaID, rec)
	case noisehs.KindQuery:
		return o.handleQuery(ctx, pdaID, rec)
	case noisehs.KindJobEvents:
		return o.handleJobEvents(pdaID, rec)
	case noisehs.KindTicketRequest:
		return o.handleTicketRequest(pdaID, rec)
	}
	return drop(dropKind, "record kind %#02x", byte(rec.Kind))
}

// reply seals a record for the PDA's newest session and queues it for topic.PDADown. Without a
// confirmed session it is dropped and counted: the PDA sends again.
func (o *Ops) reply(pda string, kind noisehs.Kind, body []byte, label string) {
	frame, err := o.sec.Seal(pda, kind, body)
	if err != nil {
		o.metrics.Add(metricPubFailed, 1, "kind", label)
		o.log.Warn("reply not sealed", "pda", pda, "kind", label, "err", err)
		return
	}
	o.enqueue(outMsg{kind: label, topic: topic.PDADown(pda), qos: 1, payload: frame})
}

// handleBatch applies a batch record and answers it with its sealed acknowledgement.
func (o *Ops) handleBatch(ctx context.Context, t, pdaID string, rec noisehs.Record) error {
	msgID := hex.EncodeToString(rec.MsgID[:])
	if ack, ok := o.st.MsgAnswer(wire.PDAID(pdaID), msgID); ok {
		o.metrics.Add(metricRepeats, 1)
		o.reply(pdaID, noisehs.KindWireAck, ack, "ack")
		return nil
	}
	var b wire.Batch
	if err := json.Unmarshal(rec.Body, &b); err != nil {
		return drop(dropBatch, "decode batch: %w", err)
	}
	if err := b.Validate(); err != nil {
		return drop(dropBatch, "%w", err)
	}

	a, err := o.st.Apply(b.Records, o.notBeforeMS(), o.now().UnixMilli())
	if err != nil {
		return fmt.Errorf("batch %s from pda %s: %w", b.ID, pdaID, err)
	}
	o.count(a)
	o.afterStore(ctx, a)
	if len(a.Rejected) > 0 {
		o.log.Warn("records rejected", "topic", t, "batch", b.ID, "rejected", len(a.Rejected),
			"first_key", a.Rejected[0].Key.String(), "reason", a.Rejected[0].Reason)
	}
	if o.log.Enabled(ctx, slog.LevelDebug) {
		o.log.Debug("batch applied", "topic", t, "batch", b.ID, "handheld", b.Handheld, "records", len(b.Records),
			"stored", len(a.Stored), "duplicates", a.Duplicates, "expired", a.Expired)
	}

	for _, h := range a.Stored {
		if h.Record.Kind != wire.KindReading {
			continue
		}
		ev, err := json.Marshal(wire.ReadingEvent{V: wire.Version, District: h.District, Terminal: h.Record.Terminal,
			Seq: h.Record.Seq, TimeMS: h.Record.TimeMS, Channels: h.Record.Channels})
		if err != nil {
			return fmt.Errorf("encode reading event: %w", err)
		}
		o.enqueue(outMsg{kind: "reading", topic: topic.OpsReadings(string(h.District), string(h.Record.Terminal)), payload: ev})
	}
	ack, err := ackBody(b.ID, a)
	if err != nil {
		return err
	}
	if err := o.st.RememberMsg(wire.PDAID(pdaID), msgID, ack, seclink.MsgIDDedup); err != nil {
		o.log.Warn("msg_id not remembered", "pda", pdaID, "err", err) // records stay de-duplicated by (terminal, seq)
	}
	o.reply(pdaID, noisehs.KindWireAck, ack, "ack")
	o.maybePushGroups(pdaID, b.Handheld)
	return nil
}

// ackBody encodes the acknowledgement of a batch: the records ops holds and those it rejected.
func ackBody(batchID string, a store.Applied) ([]byte, error) {
	ack := wire.Ack{V: wire.Version, ID: batchID, Records: a.Held, Rejected: a.Rejected}
	if ack.Records == nil {
		ack.Records = []wire.RecordKey{}
	}
	body, err := json.Marshal(ack)
	if err != nil {
		return nil, fmt.Errorf("encode ack: %w", err)
	}
	return body, nil
}

func (o *Ops) count(a store.Applied) {
	o.metrics.Add(metricIngested, 1)
	kinds := map[wire.Kind]uint64{}
	for _, h := range a.Stored {
		kinds[h.Record.Kind]++
	}
	for k, n := range kinds {
		o.metrics.Add(metricStored, n, "kind", string(k))
	}
	o.metrics.Add(metricDuplicates, uint64(a.Duplicates))
	o.metrics.Add(metricExpired, uint64(a.Expired))
	for _, r := range a.Rejected {
		o.metrics.Add(metricRejected, 1, "reason", r.Reason)
	}
}

// enqueue hands a publication to Run's publisher without waiting; a full queue drops it.
func (o *Ops) enqueue(m outMsg) {
	select {
	case o.out <- m:
	default:
		o.metrics.Add(metricPubFailed, 1, "kind", m.kind)
		o.log.Warn("publication dropped: queue full", "topic", m.topic, "queue", outQueue)
	}
}
