package store

import (
	"encoding/json"
	"fmt"
	"sync/atomic"

	"github.com/tidwall/buntdb"
)

// pfxAudit keys the audit log: audit:<ts_ms, 20 digits>:<sequence, 10 digits>.
const pfxAudit = "audit:"

// AuditEntry is one change made through the API: who, what, when and how it ended.
type AuditEntry struct {
	TimeMS int64  `json:"ts_ms"`
	Who    string `json:"who"`    // the X-MeterLink-User header or basic-auth user, else "anonymous"; with the client address
	Method string `json:"method"` // POST, PUT, DELETE…
	Path   string `json:"path"`   // with the query
	Status int    `json:"status"` // HTTP status of the answer
}

var auditSeq atomic.Uint64

// Audit appends an entry to the audit log.
func (s *DB) Audit(e AuditEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	key := fmt.Sprintf("%s%020d:%010d", pfxAudit, e.TimeMS, auditSeq.Add(1)%1e10)
	return s.db.Update(func(tx *buntdb.Tx) error {
		_, _, err := tx.Set(key, string(b), nil)
		return err
	})
}

// AuditLog returns up to limit entries, newest first.
func (s *DB) AuditLog(limit int) ([]AuditEntry, error) {
	var out []AuditEntry
	err := s.db.View(func(tx *buntdb.Tx) error {
		return tx.DescendRange("", prefixEnd(pfxAudit), pfxAudit, func(_, v string) bool {
			var e AuditEntry
			if json.Unmarshal([]byte(v), &e) == nil {
				out = append(out, e)
			}
			return len(out) < limit
		})
	})
	return out, err
}
