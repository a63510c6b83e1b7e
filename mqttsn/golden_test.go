package mqttsn

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestPacketTableGolden renders every golden case as a table, so that a
// change in any encoding shows up as a reviewable diff of
// testdata/packets.golden. Regenerate with go test ./mqttsn -update.
func TestPacketTableGolden(t *testing.T) {
	var buf bytes.Buffer
	for _, tt := range goldenCases() {
		b, err := Append(nil, tt.p)
		if err != nil {
			t.Fatal(err)
		}
		hexs := fmt.Sprintf("% X", b)
		if len(b) > 24 {
			hexs = fmt.Sprintf("% X ... (%d bytes)", b[:24], len(b))
		}
		fmt.Fprintf(&buf, "%-34s %-13v %s\n", tt.name, tt.p.Type(), hexs)
	}
	path := filepath.Join("testdata", "packets.golden")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(want, buf.Bytes()) {
		t.Errorf("packet table differs from %s (run with -update):\n%s", path, buf.String())
	}
}
