package metrics

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWrite(t *testing.T) {
	r := New()
	r.Counter("b_total", "B things.", true)
	r.Counter("a_total", "A things.", false)
	r.Add("b_total", 2, "reason", `bad "tag"`+"\n")
	r.Add("b_total", 1, "reason", "x")
	r.Add("b_total", 1, "reason", "x")
	var b strings.Builder
	if err := r.Write(&b); err != nil {
		t.Fatal(err)
	}
	want := `# HELP a_total A things.
# TYPE a_total counter
a_total 0
# HELP b_total B things.
# TYPE b_total counter
b_total{reason="bad \"tag\"\n"} 2
b_total{reason="x"} 2
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("Write (-want +got):\n%s", diff)
	}
	if got := r.Value("b_total", "reason", "x"); got != 2 {
		t.Errorf("Value = %d, want 2", got)
	}
}
