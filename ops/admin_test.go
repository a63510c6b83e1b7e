package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAdminTasksThroughTheAPI runs `meterlink ops pda|provision|import|alerts|bill` against a
// running ops, as an operator would from a shell.
func TestAdminTasksThroughTheAPI(t *testing.T) {
	cfg := DefaultConfig()
	cfg.BrokerURL, cfg.HTTPAddr, cfg.DataDir = "tcp://127.0.0.1:1", "127.0.0.1:0", MemoryDataDir
	o, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	defer func() { cancel(); <-done; o.Close() }()
	env := func(k string) string {
		if k == "METERLINK_API" {
			return "http://" + o.HTTPAddr()
		}
		return ""
	}
	run := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := Main(ctx, args, env, &out, &errb)
		return out.String(), err
	}

	out, err := run("pda", "add", "P09")
	if err != nil || !strings.Contains(out, `"sid"`) {
		t.Fatalf("pda add: %v\n%s", err, out)
	}
	if out, err := run("pda", "list", "-api", env("METERLINK_API")); err != nil || !strings.Contains(out, "P09") || strings.Contains(out, `"sid"`) {
		t.Errorf("pda list: %v\n%s (want P09, never the SID)", err, out)
	}

	dir := t.TempDir()
	ds := filepath.Join(dir, "ds.json")
	os.WriteFile(ds, []byte(`{"districts":[{"id":"D09","name":"九号台区"}],
		"terminals":[{"id":"T0900","district":"D09","channels":[{"ch":1,"meter":"M0900","constant":3200,"base_wh":0,"multiplier":1}]}]}`), 0o644)
	if _, err := run("provision", ds); err != nil {
		t.Fatalf("provision: %v", err)
	}
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("id,name\nD10,ok\nbad id,x\n"), 0o644)
	if _, err := run("import", "districts", bad); err == nil || !strings.Contains(err.Error(), "row") {
		t.Errorf("import of a bad CSV: err = %v, want the row named", err)
	}
	if out, err := run("alerts"); err != nil || !strings.Contains(out, "alerts") {
		t.Errorf("alerts: %v\n%s", err, out)
	}
	if _, err := run("bill", "no-such-account"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("bill of an unknown account: err = %v, want 404", err)
	}
	if _, err := run("pda", "frobnicate", "x"); err == nil {
		t.Error("pda frobnicate accepted")
	}

	// Every change, refused ones included, is in the audit log: who, what, when, outcome.
	resp, err := http.Get("http://" + o.HTTPAddr() + "/api/v1/audit?limit=100")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Audit []struct {
			Who, Method, Path string
			Status            int
			TimeMS            int64 `json:"ts_ms"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range body.Audit {
		seen[e.Method+" "+e.Path] = e.Status
		if e.TimeMS == 0 || !strings.HasPrefix(e.Who, "anonymous@127.0.0.1") {
			t.Errorf("audit entry %+v lacks who or when", e)
		}
	}
	for path, status := range map[string]int{"POST /api/v1/pdas": 201, "POST /api/v1/districts": 201, "POST /api/v1/import/districts": 400} {
		if got, ok := seen[path]; !ok || got != status {
			t.Errorf("audit of %s: status %d (present %v), want %d; log %+v", path, got, ok, status, body.Audit)
		}
	}
}
