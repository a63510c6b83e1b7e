// Package ops is MeterLink's operations system: it takes the meter readings that field
// devices upload through their PDAs, keeps each exactly once, and serves them with the
// provisioning data that the field needs.
//
// Subscribes (QoS 1, persistent session, shared subscription group Config.Group, by default
// topic.OpsUpShared):
//   - pda-up (topic.PDAUp): a wire.Envelope tagged with the PDA's identifier (package
//     idcheck) carrying a wire.Batch of records. Envelopes from unknown or revoked PDAs, with
//     a bad tag or a bad batch are logged, counted and dropped; they never reach the store.
//
// Publishes:
//   - pda-down (topic.PDADown, QoS 1): the tagged wire.Ack of each batch, listing every record
//     ops holds (new or already held) and the records it rejects (unknown terminal).
//   - ops-readings (topic.OpsReadings, QoS 0): one wire.ReadingEvent per newly stored reading.
//   - ops-status (topic.OpsStatus("ops"), QoS 1, retained): wire.Status "up" on every
//     connect, "down" on a clean stop.
//
// Stores (buntdb, DataDir/ops.db, every commit fsynced; see internal/store): districts,
// terminals with their channel maps, meters, customer accounts, PDAs with their SIDs, and
// the records received, keyed (terminal, seq) so a record delivered twice is stored once,
// with indexes for a meter's readings over time and each meter's latest reading. Records
// older than Config.Retention are deleted.
//
// Serves on Config.HTTPAddr the JSON API under /api/v1/ (health, readings with CSV export,
// latest readings, districts, terminals, meters, accounts, PDAs) and Prometheus metrics at
// /metrics.
//
// Billing, tariffs, validation of readings (VEE), alerts, the handheld query responder and
// the dashboard are not here yet.
package ops
