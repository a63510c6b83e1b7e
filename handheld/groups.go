package handheld

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/meterlink/meterlink/wire"
	"github.com/tidwall/buntdb"
)

// ErrUnknownGroup is returned for a group the handheld does not hold.
var ErrUnknownGroup = errors.New("unknown group")

// ErrUnknownTerminal is returned for a terminal that is in none of the handheld's groups.
var ErrUnknownTerminal = errors.New("terminal in none of the handheld's groups")

// ErrUnknownMeter is returned for a meter that is on no terminal of the handheld's groups.
var ErrUnknownMeter = errors.New("meter on no terminal of the handheld's groups")

const prefixGroup = "grp:"

// groups keeps the reader's groups in the handheld's store: the districts (and picked
// terminals) ops sent, and the reader's local narrowings of them.
type groups struct {
	db *buntdb.DB
}

// SetGroups replaces the groups that came from ops (kinds district and terminal) with gs; the
// reader's local narrowings are kept. The lab calls it with its demo districts; ops sends them
// through the PDA on hh-groups.
func (h *Handheld) SetGroups(gs []wire.Group) error {
	names := map[string]bool{}
	for _, g := range gs {
		if err := g.Validate(); err != nil {
			return inputErrorf("group %s: %v", g.Name, err)
		}
		if g.Kind == wire.GroupKindLocal {
			return inputErrorf("group %s: ops groups are districts or terminals, not local", g.Name)
		}
		if names[g.Name] {
			return inputErrorf("group %s: given twice", g.Name)
		}
		names[g.Name] = true
	}
	return h.groups.db.Update(func(tx *buntdb.Tx) error {
		var old []string
		err := tx.AscendKeys(prefixGroup+"*", func(k, v string) bool {
			var g wire.Group
			if json.Unmarshal([]byte(v), &g) == nil && g.Kind != wire.GroupKindLocal {
				old = append(old, k)
			}
			return true
		})
		if err != nil {
			return err
		}
		for _, k := range old {
			if _, err := tx.Delete(k); err != nil && !errors.Is(err, buntdb.ErrNotFound) {
				return err
			}
		}
		for _, g := range gs {
			b, _ := json.Marshal(g)
			if _, _, err := tx.Set(prefixGroup+g.Name, string(b), nil); err != nil {
				return err
			}
		}
		return nil
	})
}

// Groups returns every group the handheld holds, ops' first, by name.
func (h *Handheld) Groups() ([]wire.Group, error) { return h.groups.all() }

func (g *groups) all() ([]wire.Group, error) {
	var out []wire.Group
	err := g.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendKeys(prefixGroup+"*", func(_, v string) bool {
			var gr wire.Group
			if json.Unmarshal([]byte(v), &gr) == nil {
				out = append(out, gr)
			}
			return true
		})
	})
	sort.SliceStable(out, func(i, j int) bool {
		if (out[i].Kind == wire.GroupKindLocal) != (out[j].Kind == wire.GroupKindLocal) {
			return out[j].Kind == wire.GroupKindLocal
		}
		return out[i].Name < out[j].Name
	})
	return out, err
}

func (g *groups) get(name string) (wire.Group, error) {
	var gr wire.Group
	err := g.db.View(func(tx *buntdb.Tx) error {
		v, err := tx.Get(prefixGroup + name)
		if err != nil {
			return err
		}
		return json.Unmarshal([]byte(v), &gr)
	})
	if errors.Is(err, buntdb.ErrNotFound) {
		return gr, fmt.Errorf("%w %q", ErrUnknownGroup, name)
	}
	return gr, err
}

// NarrowGroup makes a local group name holding the given terminals of group from (a district or
// another group), for batch work on part of it. An existing local group of that name is
// replaced; a group from ops cannot be.
func (h *Handheld) NarrowGroup(name, from string, terminals []string) (wire.Group, error) {
	if !wire.ValidID(name) {
		return wire.Group{}, inputErrorf("group name %q: use letters, digits, '-', '_' or '.'", name)
	}
	if len(terminals) == 0 {
		return wire.Group{}, inputErrorf("narrow %s: name at least one terminal", from)
	}
	src, err := h.groups.get(from)
	if err != nil {
		return wire.Group{}, err
	}
	if cur, err := h.groups.get(name); err == nil && cur.Kind != wire.GroupKindLocal {
		return wire.Group{}, inputErrorf("group %s came from ops; pick another name", name)
	}
	out := wire.Group{Name: name, Kind: wire.GroupKindLocal, From: from, Title: "narrowed from " + from}
	for _, id := range terminals {
		i := slices.IndexFunc(src.Terminals, func(t wire.GroupTerminal) bool { return string(t.ID) == id })
		if i < 0 {
			return wire.Group{}, inputErrorf("terminal %s is not in group %s", id, from)
		}
		if slices.ContainsFunc(out.Terminals, func(t wire.GroupTerminal) bool { return string(t.ID) == id }) {
			continue
		}
		out.Terminals = append(out.Terminals, src.Terminals[i])
	}
	b, _ := json.Marshal(out)
	err = h.groups.db.Update(func(tx *buntdb.Tx) error {
		_, _, err := tx.Set(prefixGroup+name, string(b), nil)
		return err
	})
	return out, err
}

// DeleteGroup removes a local group.
func (h *Handheld) DeleteGroup(name string) error {
	g, err := h.groups.get(name)
	if err != nil {
		return err
	}
	if g.Kind != wire.GroupKindLocal {
		return inputErrorf("group %s came from ops; only local groups can be deleted", name)
	}
	return h.groups.db.Update(func(tx *buntdb.Tx) error {
		_, err := tx.Delete(prefixGroup + name)
		return err
	})
}

// terminal finds a terminal in the groups from ops (else in local ones).
func (g *groups) terminal(id string) (wire.GroupTerminal, []string, error) {
	all, err := g.all()
	if err != nil {
		return wire.GroupTerminal{}, nil, err
	}
	var found *wire.GroupTerminal
	var in []string
	for _, gr := range all {
		for _, t := range gr.Terminals {
			if string(t.ID) == id {
				if found == nil {
					t := t
					found = &t
				}
				in = append(in, gr.Name)
			}
		}
	}
	if found == nil {
		return wire.GroupTerminal{}, nil, fmt.Errorf("%w: %s", ErrUnknownTerminal, id)
	}
	return *found, in, nil
}

// meter finds the terminal and channel of a meter.
func (g *groups) meter(id string) (wire.GroupTerminal, uint8, error) {
	all, err := g.all()
	if err != nil {
		return wire.GroupTerminal{}, 0, err
	}
	for _, gr := range all {
		for _, t := range gr.Terminals {
			for _, m := range t.Meters {
				if string(m.Meter) == id {
					return t, m.Channel, nil
				}
			}
		}
	}
	return wire.GroupTerminal{}, 0, fmt.Errorf("%w: %s", ErrUnknownMeter, id)
}

// selectTerminals resolves a job's target: a group by name, or terminals by id. Terminals not
// in any group are refused, so a typo does not start a job that can never finish.
func (g *groups) selectTerminals(group string, terminals []string) ([]wire.TerminalID, string, error) {
	switch {
	case group != "" && len(terminals) > 0:
		return nil, "", inputErrorf("name a group or terminals, not both")
	case group != "":
		gr, err := g.get(group)
		if err != nil {
			return nil, "", err
		}
		if len(gr.Terminals) == 0 {
			return nil, "", inputErrorf("group %s has no terminals", group)
		}
		out := make([]wire.TerminalID, len(gr.Terminals))
		for i, t := range gr.Terminals {
			out[i] = t.ID
		}
		return out, group, nil
	case len(terminals) > 0:
		var out []wire.TerminalID
		for _, id := range terminals {
			if _, _, err := g.terminal(id); err != nil {
				return nil, "", err
			}
			if !slices.Contains(out, wire.TerminalID(id)) {
				out = append(out, wire.TerminalID(id))
			}
		}
		return out, strings.Join(terminals, ","), nil
	}
	return nil, "", inputErrorf("name a group (district) or terminals")
}
