package mqttsn

import "testing"

func TestMatchTopic(t *testing.T) {
	tests := []struct {
		filter, name string
		want         bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/+/c", "a/b/c", true},
		{"a/#", "a/b/c", true},
		{"a/#", "a", true},
		{"#", "a/b", true},
		{"a/b/c", "a/b", false},
		{"a", "a/b", false},
		{"+", "a", true},
		{"ml/cmd/+", "ml/cmd/0001", true},
	}
	for _, tt := range tests {
		if got := matchTopic(tt.filter, tt.name); got != tt.want {
			t.Errorf("matchTopic(%q, %q) = %v, want %v", tt.filter, tt.name, got, tt.want)
		}
	}
}
