package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meterlink/meterlink/ops"
)

const chromiumPath = "/usr/bin/chromium"

// chromium runs headless Chromium on url with extra flags and returns its stdout.
func chromium(t *testing.T, url string, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=5000"}, extra...)
	cmd := exec.CommandContext(ctx, chromiumPath, append(args, url)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", url, err, stderr.String())
	}
	return stdout.String()
}

// startDashboardOps runs ops on 127.0.0.1:0 without a broker, with a demo district and
// manual readings: meter readings a month apart, and one that goes backwards.
func startDashboardOps(t *testing.T) (base string, ds ops.Dataset) {
	t.Helper()
	cfg := ops.DefaultConfig()
	cfg.HTTPAddr, cfg.DataDir, cfg.ClientID = "127.0.0.1:0", ops.MemoryDataDir, "ops-dashboard-test"
	cfg.BrokerURL = "tcp://127.0.0.1:1" // nothing listens: ops keeps retrying, the HTTP side works
	o, err := ops.New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ops Run = %v", err)
		}
		o.Close()
	})
	ds = ops.DemoDataset(1, 2, 7)
	if err := o.Provision(ctx, ds); err != nil {
		t.Fatal(err)
	}
	base = "http://" + o.HTTPAddr()
	now := time.Now()
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.FixedZone("CST", 8*3600))
	post := func(body map[string]any) {
		b, _ := json.Marshal(body)
		resp, err := http.Post(base+"/api/v1/readings", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST /api/v1/readings %s: %s", b, resp.Status)
		}
	}
	for i, m := range ds.Meters[:4] {
		post(map[string]any{"meter": m.ID, "energy_wh": 1_000_000, "ts_ms": month.UnixMilli(), "reader": "R01"})
		post(map[string]any{"meter": m.ID, "energy_wh": 1_000_000 + int64(i+1)*100_000, "ts_ms": now.Add(-time.Minute).UnixMilli(), "reader": "R01"})
	}
	post(map[string]any{"meter": ds.Meters[3].ID, "energy_wh": 900_000, "ts_ms": now.UnixMilli(), "reader": "R01"})
	return base, ds
}

func TestDashboardInChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("%s not found (apt-get install -y chromium): dashboard not tested in a browser", chromiumPath)
	}
	if testing.Short() {
		t.Skip("headless browser skipped under -short")
	}
	base, ds := startDashboardOps(t)

	acct := ds.Meters[0].Account
	dom := chromium(t, base+"/#bill="+string(acct), "--dump-dom")
	checks := map[string]string{
		"district card":         `data-id="` + string(ds.Districts[0].ID) + `"`,
		"terminal row":          `data-id="` + string(ds.Terminals[0].ID) + `"`,
		"live reading row":      `data-meter="` + string(ds.Meters[1].ID) + `"`,
		"reading value":         "1200.000",
		"reverse running alert": `data-code="reverse_running"`,
		"account row":           `data-id="` + string(acct) + `"`,
		"owner":                 ds.Accounts[0].Owner,
		"pda row":               `data-id="` + string(ds.PDAs[0].ID) + `"`,
		"bill total":            `id="bill-total"`,
		"broker status":         "broker not connected",
	}
	for what, s := range checks {
		if !strings.Contains(dom, s) {
			t.Errorf("rendered dashboard lacks the %s (%q)", what, s)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}

	shot := filepath.Join(t.TempDir(), "dashboard.png")
	if p := os.Getenv("METERLINK_DASHBOARD_SCREENSHOT"); p != "" {
		shot = p // keep it for a human to look at
	}
	chromium(t, base+"/#bill="+string(acct), "--screenshot="+shot, "--window-size=1280,900", "--hide-scrollbars")
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 10_000 {
		t.Errorf("screenshot %s: %v (size %d), want a PNG", shot, err, sizeOf(fi))
	}
}

func sizeOf(fi os.FileInfo) int64 {
	if fi == nil {
		return 0
	}
	return fi.Size()
}
