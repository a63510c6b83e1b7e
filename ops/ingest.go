package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/meterlink/meterlink/idcheck"
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
}

// Reasons for dropping an uplink message; each is a label of metricDropped.
const (
	dropTopic       = "bad_topic"
	dropJSON        = "bad_envelope"
	dropVersion     = "bad_version"
	dropKind        = "bad_kind"
	dropPDAMismatch = "pda_mismatch"
	dropUnknownPDA  = "unknown_pda"
	dropRevokedPDA  = "revoked_pda"
	dropTag         = "bad_tag"
	dropBatch       = "bad_batch"
	dropIDMismatch  = "id_mismatch"
)

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

// HandleUp handles one message from a PDA's uplink topic (topic.PDAUp): it checks the
// envelope and its identifier tag, applies the batch in one store transaction and queues the
// tagged acknowledgement for topic.PDADown and one wire.ReadingEvent per stored reading for
// topic.OpsReadings. Bad input is logged, counted and dropped with a nil error (acknowledge
// it: redelivery cannot help); it never changes the store. An error means the store failed
// and the message must stay unacknowledged so that the broker delivers it again.
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
	if err != nil || rest != "up" {
		return drop(dropTopic, "not a pda uplink topic")
	}
	var env wire.Envelope
	if err := json.Unmarshal(payload, &env); err != nil {
		return drop(dropJSON, "decode envelope: %w", err)
	}
	if env.V != wire.Version {
		return drop(dropVersion, "envelope v %d: %w", env.V, wire.ErrVersion)
	}
	if string(env.PDA) != pdaID {
		return drop(dropPDAMismatch, "envelope pda %q on the topic of %q", env.PDA, pdaID)
	}
	if env.Kind != wire.EnvelopeBatch {
		return drop(dropKind, "envelope kind %q, want %q", env.Kind, wire.EnvelopeBatch)
	}
	pda, err := o.st.PDA(env.PDA)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return drop(dropUnknownPDA, "pda %s is not provisioned", env.PDA)
	case err != nil:
		return fmt.Errorf("look up pda %s: %w", env.PDA, err)
	case pda.State != store.PDAEnrolled:
		return drop(dropRevokedPDA, "pda %s is %s", env.PDA, pda.State)
	}
	key, err := idcheck.Key(pda.SID, pdaID)
	if err != nil {
		return fmt.Errorf("derive tag key of pda %s: %w", pdaID, err)
	}
	if !idcheck.Verify(key, pdaID, t, env.Kind, env.ID, env.Body, env.Tag) {
		return drop(dropTag, "identifier tag does not verify")
	}

	var b wire.Batch
	if err := json.Unmarshal(env.Body, &b); err != nil {
		return drop(dropBatch, "decode batch: %w", err)
	}
	if err := b.Validate(); err != nil {
		return drop(dropBatch, "%w", err)
	}
	if b.ID != env.ID {
		return drop(dropIDMismatch, "batch id %q in envelope %q", b.ID, env.ID)
	}

	a, err := o.st.Apply(b.Records, o.notBeforeMS(), o.now().UnixMilli())
	if err != nil {
		return fmt.Errorf("batch %s from pda %s: %w", b.ID, pdaID, err)
	}
	o.count(a)
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
	ack, err := ackEnvelope(key, pdaID, b.ID, a)
	if err != nil {
		return err
	}
	o.enqueue(outMsg{kind: "ack", topic: topic.PDADown(pdaID), qos: 1, payload: ack})
	return nil
}

// ackEnvelope builds the tagged acknowledgement of a batch for topic.PDADown(pda).
func ackEnvelope(key []byte, pda, batchID string, a store.Applied) ([]byte, error) {
	ack := wire.Ack{V: wire.Version, ID: batchID, Records: a.Held, Rejected: a.Rejected}
	if ack.Records == nil {
		ack.Records = []wire.RecordKey{}
	}
	body, err := json.Marshal(ack)
	if err != nil {
		return nil, fmt.Errorf("encode ack: %w", err)
	}
	env := wire.Envelope{V: wire.Version, PDA: wire.PDAID(pda), Kind: wire.EnvelopeAck, ID: batchID, Body: body,
		Tag: idcheck.Tag(key, pda, topic.PDADown(pda), wire.EnvelopeAck, batchID, body)}
	out, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("encode ack envelope: %w", err)
	}
	return out, nil
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
