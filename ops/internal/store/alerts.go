package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/tidwall/buntdb"

	"github.com/meterlink/meterlink/wire"
)

// Alert severities, as in [wire.Warning].
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// Alert is a finding of validation (VEE) or of prepaid charging, kept for the operators.
type Alert struct {
	ID       string          `json:"id"`       // deterministic from what was found, so a finding is stored once
	Code     string          `json:"code"`     // e.g. "reverse_running", "spike", "zero_consumption", "clock_drift", "seq_gap", "low_balance"
	Severity string          `json:"severity"` // info, warning, critical
	District wire.DistrictID `json:"district,omitempty"`
	Terminal wire.TerminalID `json:"terminal,omitempty"`
	Meter    wire.MeterID    `json:"meter,omitempty"`
	Account  AccountID       `json:"account,omitempty"`
	Seq      uint64          `json:"seq,omitempty"`     // the record that showed it, if any
	TimeMS   int64           `json:"ts_ms"`             // the reading's or record's time
	RaisedMS int64           `json:"raised_ms"`         // when ops raised it
	Detail   string          `json:"detail"`            // human-readable
	ValueWh  int64           `json:"value_wh,omitzero"` // the reading or advance concerned
	FromSeq  uint64          `json:"from_seq,omitzero"` // seq_gap: first missing
	ToSeq    uint64          `json:"to_seq,omitzero"`   // seq_gap: last missing
}

// Key prefixes of alerts: al:{id} holds the alert, ai:{raised}:{id} orders them.
const (
	pfxAlert      = "al:"
	pfxAlertIndex = "ai:"
)

// AddAlert stores an alert unless one with its ID is already stored; added is false then.
func (t *Tx) AddAlert(a Alert) (added bool, err error) {
	if a.ID == "" || !wire.ValidID(a.ID) {
		return false, fmt.Errorf("alert id %q: not a valid id", a.ID)
	}
	ok, err := exists(t.tx, pfxAlert+a.ID)
	if err != nil || ok {
		return false, err
	}
	if err := set(t.tx, pfxAlert+a.ID, a); err != nil {
		return false, err
	}
	k := pfxAlertIndex + num(uint64(max(a.RaisedMS, 0))) + ":" + a.ID
	if _, _, err := t.tx.Set(k, "", nil); err != nil {
		return false, fmt.Errorf("set %s: %w", k, err)
	}
	return true, nil
}

// AlertQuery selects alerts. Empty fields do not filter.
type AlertQuery struct {
	District wire.DistrictID
	Terminal wire.TerminalID
	Meter    wire.MeterID
	Account  AccountID
	Severity string
	Code     string
	Limit    int // at most this many; must be positive
}

func (q AlertQuery) match(a Alert) bool {
	return (q.District == "" || a.District == q.District) && (q.Terminal == "" || a.Terminal == q.Terminal) &&
		(q.Meter == "" || a.Meter == q.Meter) && (q.Account == "" || a.Account == q.Account) &&
		(q.Severity == "" || a.Severity == q.Severity) && (q.Code == "" || a.Code == q.Code)
}

// Alerts returns the alerts that match q, newest raised first.
func (s *DB) Alerts(q AlertQuery) ([]Alert, error) {
	if q.Limit <= 0 {
		return nil, nil
	}
	var out []Alert
	err := s.db.View(func(tx *buntdb.Tx) error {
		var derr error
		err := tx.DescendRange("", prefixEnd(pfxAlertIndex), pfxAlertIndex, func(k, _ string) bool {
			parts := splitKey(k)
			var a Alert
			ok, err := get(tx, pfxAlert+parts[len(parts)-1], &a)
			if err != nil || !ok {
				derr = errors.Join(err, fmt.Errorf("alert index %s: alert missing", k))
				return false
			}
			if q.match(a) {
				out = append(out, a)
			}
			return len(out) < q.Limit
		})
		return errors.Join(err, derr)
	})
	return out, err
}

// AlertID makes a deterministic alert id from the code and what identifies a finding, so
// that the same finding raised twice is stored once.
func AlertID(code string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return code + "-" + hex.EncodeToString(h.Sum(nil)[:10])
}
