// Package topic owns every MQTT and MQTT-SN topic string of MeterLink.
//
// It holds the registry ([All]) that topics.md documents and that the broker's ACL and the
// pda-bridge's allow-list are built from, plus builders and parsers for each topic. Nothing
// else in MeterLink builds a topic string by hand.
package topic

import (
	"fmt"
	"strings"
)

// Role is the kind of client a topic's publisher or subscriber is.
type Role string

// The roles of MeterLink's clients. A role decides what a client may publish and subscribe to.
const (
	RoleTerminal Role = "terminal" // collection terminal, on the radio (MQTT-SN)
	RoleHandheld Role = "handheld" // handheld, on the PDA's local listener
	RoleBridge   Role = "bridge"   // the pda-bridge's own client on its local listener
	RolePDA      Role = "pda"      // the pda-bridge upstream, on the ops broker: its own topics only
	RoleOps      Role = "ops"      // ops consumers and publishers
	RoleViewer   Role = "viewer"   // dashboards: read-only ops events
)

// Layer is the link a topic travels on.
type Layer string

// The links of the chain, from the meter side up.
const (
	LayerRadio    Layer = "radio"    // MQTT-SN between terminals and the handheld's gateway
	LayerLocal    Layer = "local"    // MQTT between the handheld and the PDA's local listener
	LayerUpstream Layer = "upstream" // MQTT between the PDA and ops, through the ops broker
	LayerOps      Layer = "ops"      // MQTT events that ops publishes for dashboards
)

// Spec describes one topic of the contract.
type Spec struct {
	Name         string // short stable name, e.g. "radio-readings"
	Pattern      string // topic with {placeholders}, e.g. "t/{terminal}/rd"
	Layer        Layer
	Publisher    Role
	Subscribers  []Role
	QoS          byte
	Retained     bool
	Payload      string // wire type carried, e.g. "wire.Batch (JSON)"
	PredefinedID uint16 // MQTT-SN predefined topic id (radio only), 0 if none
	Doc          string // one sentence: what flows here and why
	Example      string // example payload
}

// Placeholder values that name the client itself: a client of that role may only use topics
// where this placeholder equals its own id.
var selfPlaceholder = map[Role]string{
	RolePDA:      "pda",
	RoleHandheld: "hh",
	RoleTerminal: "terminal",
}

// The MQTT-SN predefined topic ids. Each is per client: id 1 on terminal T means t/T/rd.
const (
	PredefReadings = 1
	PredefFrozen   = 2
	PredefEvents   = 3
	PredefCommands = 4
	PredefCmdAcks  = 5
)

// Record kinds carried on the handheld's up/records topic are listed in the wire package.

// All returns the registry: every topic MeterLink uses, in documentation order.
func All() []Spec {
	return append([]Spec(nil), registry...)
}

var registry = []Spec{
	{
		Name: "radio-readings", Pattern: "t/{terminal}/rd", Layer: LayerRadio,
		Publisher: RoleTerminal, Subscribers: []Role{RoleHandheld}, QoS: 1,
		Payload: "wire.Record, radio binary encoding (wire.MarshalRadio)", PredefinedID: PredefReadings,
		Doc:     "A terminal's reading of all its channels; deleted from the terminal only after the PUBACK.",
		Example: "01 01 2a ... (kind 1 = reading, seq 42, channels)",
	},
	{
		Name: "radio-frozen", Pattern: "t/{terminal}/fz", Layer: LayerRadio,
		Publisher: RoleTerminal, Subscribers: []Role{RoleHandheld}, QoS: 1,
		Payload: "wire.Record kind frozen, radio binary encoding", PredefinedID: PredefFrozen,
		Doc:     "A daily frozen record of all channels, keyed (meter, freeze date).",
		Example: "01 02 2b ... (kind 2 = frozen)",
	},
	{
		Name: "radio-events", Pattern: "t/{terminal}/ev", Layer: LayerRadio,
		Publisher: RoleTerminal, Subscribers: []Role{RoleHandheld}, QoS: 1,
		Payload: "wire.Record kind event, radio binary encoding", PredefinedID: PredefEvents,
		Doc:     "A terminal event (power loss, clock set, reading backwards, meter silent, counter wrap).",
		Example: "01 03 2c ... (kind 3 = event)",
	},
	{
		Name: "radio-commands", Pattern: "t/{terminal}/cmd", Layer: LayerRadio,
		Publisher: RoleHandheld, Subscribers: []Role{RoleTerminal}, QoS: 1,
		Payload: "wire.Command (JSON)", PredefinedID: PredefCommands,
		Doc:     "A command for one terminal from the handheld; buffered by the gateway while the terminal sleeps.",
		Example: `{"v":1,"id":"c-1","terminal":"T0001","op":"collect"}`,
	},
	{
		Name: "radio-cmd-acks", Pattern: "t/{terminal}/ack", Layer: LayerRadio,
		Publisher: RoleTerminal, Subscribers: []Role{RoleHandheld}, QoS: 1,
		Payload: "wire.CommandAck (JSON)", PredefinedID: PredefCmdAcks,
		Doc:     "The terminal's answer to a command, with a result code.",
		Example: `{"v":1,"id":"c-1","terminal":"T0001","code":0}`,
	},
	{
		Name: "hh-records", Pattern: "meterlink/v1/hh/{hh}/up/records", Layer: LayerLocal,
		Publisher: RoleHandheld, Subscribers: []Role{RoleBridge}, QoS: 1,
		Payload: "wire.Batch (JSON)",
		Doc:     "A batch of records from the handheld's outbox; they stay there until ops acknowledges them.",
		Example: `{"v":1,"id":"H01-1","handheld":"H01","records":[{"terminal":"T0001","seq":1,"kind":"reading","ts_ms":1700000000000,"channels":[{"ch":1,"meter":"M000101","pulses":3200,"energy_wh":1001000,"constant":3200,"multiplier":1}]}]}`,
	},
	{
		Name: "hh-ack", Pattern: "meterlink/v1/hh/{hh}/down/ack", Layer: LayerLocal,
		Publisher: RoleBridge, Subscribers: []Role{RoleHandheld}, QoS: 1,
		Payload: "wire.Ack (JSON)",
		Doc:     "Ops' end-to-end acknowledgement of records, relayed by the PDA; the handheld then deletes them.",
		Example: `{"v":1,"id":"H01-1","records":[{"terminal":"T0001","seq":1}]}`,
	},
	{
		Name: "hh-query", Pattern: "meterlink/v1/hh/{hh}/up/query", Layer: LayerLocal,
		Publisher: RoleHandheld, Subscribers: []Role{RoleBridge}, QoS: 1,
		Payload: "wire.Query (JSON)",
		Doc:     "A real-time customer query from the reader on site, for the PDA to relay to ops; useless after its deadline_ms.",
		Example: `{"v":1,"id":"H01-q-1","handheld":"H01","meter":"T0001-01","deadline_ms":1700000003000}`,
	},
	{
		Name: "hh-answer", Pattern: "meterlink/v1/hh/{hh}/down/answer", Layer: LayerLocal,
		Publisher: RoleBridge, Subscribers: []Role{RoleHandheld}, QoS: 1,
		Payload: "wire.Answer (JSON)",
		Doc:     "Ops' answer to a query, relayed by the PDA; the handheld caches it for offline use.",
		Example: `{"v":1,"id":"H01-q-1","customers":[{"account":"AT0001-01","owner":"王伟","payment":"prepaid","balance_fen":1250,"meters":["T0001-01"],"period_start":"2026-11-01","period_wh":84000}],"as_of_ms":1700000001000}`,
	},
	{
		Name: "hh-jobs", Pattern: "meterlink/v1/hh/{hh}/up/jobs", Layer: LayerLocal,
		Publisher: RoleHandheld, Subscribers: []Role{RoleBridge}, QoS: 1,
		Payload: "wire.JobEvents (JSON)",
		Doc:     "Results of the handheld's batch jobs, per terminal and per job; kept and resent until ops acknowledges the batch id on hh-ack.",
		Example: `{"v":1,"id":"H01-jev-1","handheld":"H01","events":[{"id":"H01-jev-1-1","job":"J1","op":"set_freeze","group":"D01","terminal":"T0001","state":"acked","code":0,"ts_ms":1700000000000}]}`,
	},
	{
		Name: "hh-groups", Pattern: "meterlink/v1/hh/{hh}/down/groups", Layer: LayerLocal,
		Publisher: RoleBridge, Subscribers: []Role{RoleHandheld}, QoS: 1,
		Payload: "wire.Groups (JSON)",
		Doc:     "The reader's groups (districts with their terminals and meters) from ops, relayed by the PDA; they replace the groups ops sent before.",
		Example: `{"v":1,"handheld":"H01","groups":[{"name":"D01","kind":"district","title":"1号台区","terminals":[{"id":"T0001","district":"D01","meters":[{"ch":1,"meter":"T0001-01","account":"AT0001-01"}]}]}]}`,
	},
	{
		Name: "hh-hs-down", Pattern: "meterlink/v1/hh/{hh}/down/hs", Layer: LayerLocal,
		Publisher: RoleBridge, Subscribers: []Role{RoleHandheld}, QoS: 1,
		Payload: "SECLINK-HH/1 hello (0x01 0x11 ‖ sealed ticket ‖ NNpsk0 message 1) or link record (type 0x13, binary, security.md §12)",
		Doc:     "The PDA's link handshake with a handheld, carrying the ops-issued ticket, then its link CONFIRM; until the link is up nothing else flows to or from the handheld.",
		Example: "01 11 01 01 <hh_id 8> <ticket_id 16> <sealed 104> <e 32> <tag 16>",
	},
	{
		Name: "hh-hs-up", Pattern: "meterlink/v1/hh/{hh}/up/hs", Layer: LayerLocal,
		Publisher: RoleHandheld, Subscribers: []Role{RoleBridge}, QoS: 1,
		Payload: "SECLINK-HH/1 reply (0x01 0x12 ‖ NNpsk0 message 2), link record (type 0x13) or a hello request (0x01 0x10)",
		Doc:     "The handheld's answer to the PDA's link handshake and its link CONFIRM; a bare 0x01 0x10 asks the PDA for a new handshake after a restart.",
		Example: "01 12 <e 32> <tag 16>",
	},
	{
		Name: "pda-hs-up", Pattern: "meterlink/v1/pda/{pda}/hs/up", Layer: LayerUpstream,
		Publisher: RolePDA, Subscribers: []Role{RoleOps}, QoS: 1,
		Payload: "SECLINK/1 HS_INIT frame (binary, security.md)",
		Doc:     "The PDA's handshake (Noise IKpsk2 message 1, keyed by its SID); a new SID is negotiated in every handshake.",
		Example: "01 01 01 01 ... (136 bytes)",
	},
	{
		Name: "pda-hs-down", Pattern: "meterlink/v1/pda/{pda}/hs/down", Layer: LayerUpstream,
		Publisher: RoleOps, Subscribers: []Role{RolePDA}, QoS: 1,
		Payload: "SECLINK/1 HS_RESP frame (binary, security.md)",
		Doc:     "Ops' handshake answer (Noise message 2), sent only for a PDA that proved its SID and static key.",
		Example: "01 02 01 01 ... (76 bytes)",
	},
	{
		Name: "pda-up", Pattern: "meterlink/v1/pda/{pda}/up", Layer: LayerUpstream,
		Publisher: RolePDA, Subscribers: []Role{RoleOps}, QoS: 1,
		Payload: "SECLINK/1 DATA record (binary, security.md §6) sealed under the session's k_up: CONFIRM, or as application kinds a wire.Batch (0x40), wire.Query (0x42) or wire.JobEvents (0x44), JSON",
		Doc:     "Records from the field, sealed; ops drops any record that does not open under a live session of this PDA, or that it has seen.",
		Example: "01 03 01 01 <receiver_idx 4> <counter 8> <ciphertext+tag>",
	},
	{
		Name: "pda-down", Pattern: "meterlink/v1/pda/{pda}/down", Layer: LayerUpstream,
		Publisher: RoleOps, Subscribers: []Role{RolePDA}, QoS: 1,
		Payload: "SECLINK/1 DATA record sealed under k_down: COMMIT, REKEY_NOW, or as application kinds a wire.Ack (0x41), wire.Answer (0x43) or wire.Groups (0x45), JSON",
		Doc:     "Acknowledgements, query answers and handheld groups from ops to one PDA, sealed.",
		Example: "01 03 01 01 <receiver_idx 4> <counter 8> <ciphertext+tag>",
	},
	{
		Name: "ops-readings", Pattern: "meterlink/v1/ops/readings/{district}/{terminal}", Layer: LayerOps,
		Publisher: RoleOps, Subscribers: []Role{RoleViewer}, QoS: 0,
		Payload: "wire.ReadingEvent (JSON)",
		Doc:     "A reading ops has stored, once, for dashboards.",
		Example: `{"v":1,"district":"D01","terminal":"T0001","seq":1,"ts_ms":1700000000000,"channels":[{"ch":1,"meter":"M000101","pulses":3200,"energy_wh":1001000,"constant":3200,"multiplier":1}]}`,
	},
	{
		Name: "ops-alerts", Pattern: "meterlink/v1/ops/alerts/{district}", Layer: LayerOps,
		Publisher: RoleOps, Subscribers: []Role{RoleViewer}, QoS: 1,
		Payload: "alert (JSON): ops' store.Alert with the wire version v",
		Doc:     "A validation or prepaid-balance finding (reverse running, spike, zero consumption, clock drift, seq gap, terminal event, low balance), once per finding.",
		Example: `{"v":1,"id":"reverse_running-1f2e3d4c5b6a79880716","code":"reverse_running","severity":"critical","district":"D01","terminal":"T0001","meter":"M000101","seq":42,"ts_ms":1700000000000,"raised_ms":1700000000500,"detail":"reading 999.000 kWh is below the previous 1001.000 kWh (ERC27); not billed","value_wh":999000}`,
	},
	{
		Name: "ops-jobs", Pattern: "meterlink/v1/ops/jobs/{job}", Layer: LayerOps,
		Publisher: RoleOps, Subscribers: []Role{RoleViewer}, QoS: 1,
		Payload: "job (JSON): ops' store.Job with the wire version v",
		Doc:     "A handheld batch job as ops holds it (latest state and per-terminal results), once per change that job events brought.",
		Example: `{"v":1,"id":"J20261101-083000-1","handheld":"H01","op":"set_freeze","group":"D01","state":"done","progress":{"total":1,"pending":0,"sent":0,"acked":1,"failed":0},"terminals":[{"terminal":"T0001","state":"acked","code":0,"result":{"at":"06:30"},"ts_ms":1700000000000}],"events":2,"updated_ms":1700000000500}`,
	},
	{
		Name: "ops-status", Pattern: "meterlink/v1/ops/status/{part}", Layer: LayerOps,
		Publisher: RoleOps, Subscribers: []Role{RoleViewer}, QoS: 1, Retained: true,
		Payload: "wire.Status (JSON)",
		Doc:     "Liveness of an ops process: retained, so a new dashboard sees it at once.",
		Example: `{"v":1,"part":"ops","state":"up","ts_ms":1700000000000}`,
	},
}

func init() {
	// Programmer errors in the registry are found at start-up (style.md §6).
	seen := map[string]bool{}
	for _, s := range registry {
		if seen[s.Name] || seen[s.Pattern] {
			panic(fmt.Sprintf("topic: duplicate registry entry %q", s.Name))
		}
		seen[s.Name], seen[s.Pattern] = true, true
		if _, err := levels(s.Pattern); err != nil {
			panic(err)
		}
	}
}

// levels splits a pattern into levels and checks that placeholders fill whole levels.
func levels(pattern string) ([]string, error) {
	parts := strings.Split(pattern, "/")
	for _, p := range parts {
		if strings.ContainsAny(p, "{}") && !(strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}")) {
			return nil, fmt.Errorf("topic: placeholder must fill a level in %q", pattern)
		}
	}
	return parts, nil
}
