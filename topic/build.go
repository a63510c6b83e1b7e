package topic

import (
	"errors"
	"strings"
)

// ErrInvalidID is returned by builders and parsers when an id is empty or holds a character
// that MQTT gives a meaning ('/', '+', '#') or that no id of ours uses.
var ErrInvalidID = errors.New("invalid id in topic")

// ValidID reports whether s can stand as one topic level: 1–64 characters of letters,
// digits, '-', '_' and '.'.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// RadioReadings is t/{terminal}/rd.
func RadioReadings(terminal string) string { return "t/" + terminal + "/rd" }

// RadioFrozen is t/{terminal}/fz.
func RadioFrozen(terminal string) string { return "t/" + terminal + "/fz" }

// RadioEvents is t/{terminal}/ev.
func RadioEvents(terminal string) string { return "t/" + terminal + "/ev" }

// RadioCommands is t/{terminal}/cmd.
func RadioCommands(terminal string) string { return "t/" + terminal + "/cmd" }

// RadioCmdAcks is t/{terminal}/ack.
func RadioCmdAcks(terminal string) string { return "t/" + terminal + "/ack" }

// RadioPredefined returns the MQTT-SN predefined topic ids of one terminal, by topic name.
// Both the terminal (client) and the handheld (gateway) use it.
func RadioPredefined(terminal string) map[string]uint16 {
	return map[string]uint16{
		RadioReadings(terminal): PredefReadings,
		RadioFrozen(terminal):   PredefFrozen,
		RadioEvents(terminal):   PredefEvents,
		RadioCommands(terminal): PredefCommands,
		RadioCmdAcks(terminal):  PredefCmdAcks,
	}
}

// ParseRadio splits a radio topic into the terminal id and its kind ("rd", "fz", "ev", "cmd",
// "ack").
func ParseRadio(t string) (terminal, kind string, err error) {
	p := strings.Split(t, "/")
	if len(p) != 3 || p[0] != "t" || !ValidID(p[1]) {
		return "", "", ErrInvalidID
	}
	switch p[2] {
	case "rd", "fz", "ev", "cmd", "ack":
		return p[1], p[2], nil
	}
	return "", "", ErrInvalidID
}

// HHRecords is meterlink/v1/hh/{hh}/up/records.
func HHRecords(hh string) string { return "meterlink/v1/hh/" + hh + "/up/records" }

// HHAck is meterlink/v1/hh/{hh}/down/ack.
func HHAck(hh string) string { return "meterlink/v1/hh/" + hh + "/down/ack" }

// HHQuery is meterlink/v1/hh/{hh}/up/query.
func HHQuery(hh string) string { return "meterlink/v1/hh/" + hh + "/up/query" }

// HHAnswer is meterlink/v1/hh/{hh}/down/answer.
func HHAnswer(hh string) string { return "meterlink/v1/hh/" + hh + "/down/answer" }

// HHJobs is meterlink/v1/hh/{hh}/up/jobs.
func HHJobs(hh string) string { return "meterlink/v1/hh/" + hh + "/up/jobs" }

// HHGroups is meterlink/v1/hh/{hh}/down/groups.
func HHGroups(hh string) string { return "meterlink/v1/hh/" + hh + "/down/groups" }

// HHHandshakeDown is meterlink/v1/hh/{hh}/down/hs.
func HHHandshakeDown(hh string) string { return "meterlink/v1/hh/" + hh + "/down/hs" }

// HHHandshakeUp is meterlink/v1/hh/{hh}/up/hs.
func HHHandshakeUp(hh string) string { return "meterlink/v1/hh/" + hh + "/up/hs" }

// HHHandshakeUpAll is the filter the pda-bridge subscribes to for every handheld's link handshakes.
const HHHandshakeUpAll = "meterlink/v1/hh/+/up/hs"

// HHQueryAll is the filter the pda-bridge subscribes to for every handheld's queries.
const HHQueryAll = "meterlink/v1/hh/+/up/query"

// HHJobsAll is the filter the pda-bridge subscribes to for every handheld's job events.
const HHJobsAll = "meterlink/v1/hh/+/up/jobs"

// HHRecordsAll is the filter the pda-bridge subscribes to for every handheld's records.
const HHRecordsAll = "meterlink/v1/hh/+/up/records"

// ParseHH splits a handheld topic into the handheld id, the direction ("up" or "down") and
// the kind.
func ParseHH(t string) (hh, dir, kind string, err error) {
	p := strings.Split(t, "/")
	if len(p) != 6 || p[0] != "meterlink" || p[1] != "v1" || p[2] != "hh" || !ValidID(p[3]) ||
		(p[4] != "up" && p[4] != "down") || !ValidID(p[5]) {
		return "", "", "", ErrInvalidID
	}
	return p[3], p[4], p[5], nil
}

// PDAUp is meterlink/v1/pda/{pda}/up.
func PDAUp(pda string) string { return "meterlink/v1/pda/" + pda + "/up" }

// PDADown is meterlink/v1/pda/{pda}/down.
func PDADown(pda string) string { return "meterlink/v1/pda/" + pda + "/down" }

// PDAHandshakeUp is meterlink/v1/pda/{pda}/hs/up.
func PDAHandshakeUp(pda string) string { return "meterlink/v1/pda/" + pda + "/hs/up" }

// PDAHandshakeDown is meterlink/v1/pda/{pda}/hs/down.
func PDAHandshakeDown(pda string) string { return "meterlink/v1/pda/" + pda + "/hs/down" }

// OpsUpShared is the shared-subscription filter through which ops replicas split the PDAs'
// uplink between them, in the default group "ops".
const OpsUpShared = "$share/ops/" + pdaUpAll

const pdaUpAll = "meterlink/v1/pda/+/up"

// OpsUpSharedGroup is [OpsUpShared] for another group of ops replicas.
func OpsUpSharedGroup(group string) string { return "$share/" + group + "/" + pdaUpAll }

// ParsePDA splits a PDA upstream topic into the PDA id and the rest ("up", "down", "hs/up",
// "hs/down").
func ParsePDA(t string) (pda, rest string, err error) {
	p := strings.SplitN(t, "/", 5)
	if len(p) != 5 || p[0] != "meterlink" || p[1] != "v1" || p[2] != "pda" || !ValidID(p[3]) {
		return "", "", ErrInvalidID
	}
	switch p[4] {
	case "up", "down", "hs/up", "hs/down":
		return p[3], p[4], nil
	}
	return "", "", ErrInvalidID
}

// OpsReadings is meterlink/v1/ops/readings/{district}/{terminal}.
func OpsReadings(district, terminal string) string {
	return "meterlink/v1/ops/readings/" + district + "/" + terminal
}

// OpsReadingsAll is the filter a dashboard uses for every stored reading.
const OpsReadingsAll = "meterlink/v1/ops/readings/#"

// OpsAlerts is meterlink/v1/ops/alerts/{district}.
func OpsAlerts(district string) string { return "meterlink/v1/ops/alerts/" + district }

// OpsAlertsAll is the filter a dashboard uses for every alert.
const OpsAlertsAll = "meterlink/v1/ops/alerts/#"

// OpsJobs is meterlink/v1/ops/jobs/{job}.
func OpsJobs(job string) string { return "meterlink/v1/ops/jobs/" + job }

// OpsJobsAll is the filter a dashboard uses for every job change.
const OpsJobsAll = "meterlink/v1/ops/jobs/+"

// OpsStatus is meterlink/v1/ops/status/{part}.
func OpsStatus(part string) string { return "meterlink/v1/ops/status/" + part }
