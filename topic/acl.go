package topic

import "strings"

// Allowed reports whether a client of role, with its own id, may publish to topic (publish
// true) or subscribe with filter (publish false). The answer comes from the registry: a role
// may publish where it is a topic's publisher and subscribe where it is a subscriber, and a
// placeholder that names the role itself ({pda} for a PDA, {hh} for a handheld) must equal id.
// A shared subscription ($share/group/filter) is judged by its filter. PDAs may use exact
// topics only, never wildcards (security.md §11).
func Allowed(role Role, id, filter string, publish bool) bool {
	if !publish {
		if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
			_, f, found := strings.Cut(rest, "/")
			if !found || f == "" {
				return false
			}
			filter = f
		}
	}
	if filter == "" || strings.HasPrefix(filter, "$") {
		return false
	}
	hasWild := strings.ContainsAny(filter, "+#")
	if publish && hasWild {
		return false
	}
	if role == RolePDA && hasWild {
		return false
	}
	fl := strings.Split(filter, "/")
	if !publish && strings.HasSuffix(filter, "#") {
		return multiLevelAllowed(role, id, fl)
	}
	for _, s := range registry {
		if publish && s.Publisher != role {
			continue
		}
		if !publish && !hasRole(s.Subscribers, role) {
			continue
		}
		if covers(s.Pattern, selfPlaceholder[role], id, fl) {
			return true
		}
	}
	return false
}

func hasRole(rs []Role, r Role) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

// covers reports whether every topic that filter levels fl can match is an instance of
// pattern, where the placeholder named self must equal id and any other placeholder is one
// free level.
func covers(pattern, self, id string, fl []string) bool {
	pl := strings.Split(pattern, "/")
	for i, f := range fl {
		if f == "#" {
			return false // a multi-level wildcard reaches beyond any fixed-depth pattern
		}
		if i >= len(pl) {
			return false
		}
		p := pl[i]
		if strings.HasPrefix(p, "{") {
			name := p[1 : len(p)-1]
			if name == self {
				if f != id {
					return false
				}
				continue
			}
			if f != "+" && !ValidID(f) {
				return false
			}
			continue
		}
		if f != p {
			return false
		}
	}
	return len(fl) == len(pl)
}

// multiLevelAllowed judges a subscription ending in '#': every registry topic it can match must
// be one the role may subscribe to, and at least one must exist. Topics outside the registry
// cannot be published by anyone, so they leak nothing.
func multiLevelAllowed(role Role, id string, fl []string) bool {
	for i, f := range fl[:len(fl)-1] {
		if f == "#" || (f != "+" && !ValidID(f) && i > 0) {
			return false
		}
	}
	self := selfPlaceholder[role]
	matched := false
	for _, s := range registry {
		pl := strings.Split(s.Pattern, "/")
		if !overlaps(pl, fl) {
			continue
		}
		matched = true
		if !hasRole(s.Subscribers, role) {
			return false
		}
		for i, p := range pl {
			if p == "{"+self+"}" && (i >= len(fl)-1 || fl[i] != id) {
				return false
			}
		}
	}
	return matched
}

// overlaps reports whether some topic is an instance of pattern levels pl and matches filter
// levels fl.
func overlaps(pl, fl []string) bool {
	for i, f := range fl {
		if f == "#" {
			return true
		}
		if i >= len(pl) {
			return false
		}
		if f != "+" && !strings.HasPrefix(pl[i], "{") && f != pl[i] {
			return false
		}
	}
	return len(fl) == len(pl)
}
