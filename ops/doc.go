// Package ops is MeterLink's operations system: it takes the meter readings that field
// devices upload through their PDAs, keeps each exactly once, and serves them with the
// provisioning data that the field needs.
//
// Subscribes (QoS 1, persistent session, shared subscription group Config.Group, by default
// topic.OpsUpShared):
//   - pda-hs-up (topic.PDAHandshakeUp): SECLINK/1 handshakes (internal/seclink, security.md):
//     a PDA proves its SID and static key, and a new SID is negotiated each time.
//   - pda-up (topic.PDAUp): SECLINK/1 DATA records carrying a handheld's wire.Batch of records,
//     its wire.JobEvents (batch job results) or a wire.Query (the real-time customer query).
//     Records from unknown, locked or revoked PDAs, that do not open, that were seen before,
//     or with a bad payload are logged, counted and dropped; they never reach the store.
//
// Publishes:
//   - pda-hs-down (topic.PDAHandshakeDown, QoS 1): handshake answers.
//   - pda-down (topic.PDADown, QoS 1): the sealed wire.Ack of each batch, listing every record
//     ops holds (new or already held) and the records it rejects (unknown terminal); the
//     wire.Answer to each query, within its deadline; and wire.Groups (the districts with their
//     terminals and meters) for each handheld it hears from, at most hourly.
//   - ops-jobs (topic.OpsJobs(job), QoS 1): a job's state as its results arrive, for dashboards.
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
// After each batch is stored, ops validates it (internal/vee: reverse running with the
// rollover rule, spikes against the meter's history, zero consumption for N cycles, clock
// drift, seq gaps, terminal events) and charges prepaid accounts for the new readings at
// their tariff (internal/billing: tiered annual or monthly, time of use at 15-minute
// granularity, fixed; money in integer fen), in one store transaction whose per-meter
// cursors make a replay charge nothing. Each finding is an alert, stored once, listed at
// /api/v1/alerts and published:
//   - ops-alerts (topic.OpsAlerts(district), QoS 1): the alert as JSON with the version v.
//
// The business API: GET /api/v1/tariffs, GET /api/v1/accounts/{id}/bill, GET and POST
// /api/v1/accounts/{id}/payments (idempotent by payment id), POST /api/v1/readings (manual
// readings, actual or estimated), GET /api/v1/alerts, GET /api/v1/terminals/{id}/gaps,
// POST /api/v1/query (the handheld query, also [Ops.AnswerQuery]), POST
// /api/v1/import/{districts,terminals,meters,accounts} (CSV, all or nothing). The web
// dashboard (internal/dashboard, embedded) is served at /.
package ops
