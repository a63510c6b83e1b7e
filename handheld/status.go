package handheld

import (
	"encoding/json"
	"sort"
	"strings"

	"github.com/meterlink/meterlink/wire"
	"github.com/tidwall/buntdb"
)

// Terminals lists the terminals of the handheld's groups, and any other terminal its gateways
// know, with their radio sessions and their records waiting in the outbox.
func (h *Handheld) Terminals() ([]wire.TerminalStatus, error) {
	all, err := h.groups.all()
	if err != nil {
		return nil, err
	}
	byID := map[wire.TerminalID]*wire.TerminalStatus{}
	var order []wire.TerminalID
	for _, g := range all {
		for _, t := range g.Terminals {
			ts := byID[t.ID]
			if ts == nil {
				ts = &wire.TerminalStatus{ID: t.ID, District: t.District, Meters: len(t.Meters), State: "unknown"}
				if ts.District == "" && g.Kind == wire.GroupKindDistrict {
					ts.District = wire.DistrictID(g.Name)
				}
				byID[t.ID] = ts
				order = append(order, t.ID)
			}
			ts.Groups = append(ts.Groups, g.Name)
		}
	}
	for _, c := range h.Clients() {
		id := wire.TerminalID(c.ClientID)
		ts := byID[id]
		if ts == nil {
			ts = &wire.TerminalStatus{ID: id}
			byID[id] = ts
			order = append(order, id)
		}
		ts.State, ts.Queued = c.State.String(), c.Queued
		if !c.LastSeen.IsZero() && c.LastSeen.Unix() > 0 {
			ts.LastSeenMS = c.LastSeen.UnixMilli()
		}
	}
	for id, n := range h.box.countByTerminal() {
		if ts := byID[wire.TerminalID(id)]; ts != nil {
			ts.Pending = n
		}
	}
	sort.Slice(order, func(i, j int) bool { return order[i] < order[j] })
	out := make([]wire.TerminalStatus, len(order))
	for i, id := range order {
		out[i] = *byID[id]
	}
	return out, nil
}

// Outbox says what waits in the handheld for ops, and what it did since it started.
func (h *Handheld) Outbox() wire.OutboxStatus {
	st := h.Stats()
	by := h.box.countByTerminal()
	n := 0
	for _, c := range by {
		n += c
	}
	h.mu.Lock()
	inflight := len(h.inflight)
	h.mu.Unlock()
	out := wire.OutboxStatus{
		Records: n, ByTerminal: by, Inflight: inflight, JobEvents: h.events.count(),
		Uploaded: st.Uploaded, Batches: st.Batches, PDAConnected: h.pda.IsConnected(),
		Received: st.Received, Duplicates: st.Duplicates, Rejected: st.Rejected, Warnings: h.warn.count(),
		Handheld: wire.HandheldID(h.cfg.ID), Gateway: h.GatewayAddr().String(), PDAURL: h.cfg.PDAURL, ControlAt: h.ControlAddr(),
	}
	if n > 0 {
		out.OldestMS = h.box.oldest()
	}
	return out
}

// countByTerminal counts the held records per terminal.
func (o *outbox) countByTerminal() map[string]int {
	out := map[string]int{}
	_ = o.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendKeys(prefixRecord+"*", func(k, _ string) bool {
			rest := strings.TrimPrefix(k, prefixRecord)
			if i := strings.LastIndexByte(rest, ':'); i > 0 {
				out[rest[:i]]++
			}
			return true
		})
	})
	return out
}

// oldest returns the time of the oldest held record (terminal clock), 0 if none.
func (o *outbox) oldest() int64 {
	var min int64
	_ = o.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendKeys(prefixRecord+"*", func(_, v string) bool {
			var r struct {
				TimeMS int64 `json:"ts_ms"`
			}
			if json.Unmarshal([]byte(v), &r) == nil && r.TimeMS > 0 && (min == 0 || r.TimeMS < min) {
				min = r.TimeMS
			}
			return true
		})
	})
	return min
}
