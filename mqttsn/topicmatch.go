package mqttsn

import "strings"

// matchTopic reports whether an MQTT topic name matches a filter with the
// wildcards + (one level) and # (this level and all below, last only).
func matchTopic(filter, name string) bool {
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		nl, nrest, nmore := strings.Cut(name, "/")
		switch {
		case fl == "#":
			return !fmore
		case fl != "+" && fl != nl:
			return false
		case !fmore && !nmore:
			return true
		case !fmore:
			return false
		case !nmore:
			// "a/#" matches "a".
			return frest == "#"
		}
		filter, name = frest, nrest
	}
}

// hasWildcard reports whether a topic filter contains + or #.
func hasWildcard(s string) bool { return strings.ContainsAny(s, "+#") }
