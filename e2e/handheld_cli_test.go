package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meterlink/meterlink/handheld/hhcli"
	"github.com/meterlink/meterlink/ops"
	"github.com/meterlink/meterlink/wire"
)

// hh runs `meterlink hh args...` against addr and returns its output and error.
func hh(t *testing.T, addr string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	getenv := func(k string) string {
		if k == "METERLINK_HANDHELD" {
			return addr
		}
		return ""
	}
	err := hhcli.Main(ctx, args, getenv, &out, &errOut)
	return out.String(), err
}

// hhJSON runs a command with --json and decodes its output into v.
func hhJSON(t *testing.T, addr string, v any, args ...string) {
	t.Helper()
	out, err := hh(t, addr, append(args, "--json")...)
	if err != nil {
		t.Fatalf("meterlink hh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("meterlink hh %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestHandheldCLI runs every `meterlink hh` command against a running handheld with two
// terminals, reading the JSON output, and checks that bad input fails naming what is wrong.
func TestHandheldCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end chain skipped under -short")
	}
	c := startHHChain(t, 2)
	run := startHH(t, c.handheldConfig())
	if err := run.h.SetGroups(c.groups()); err != nil {
		t.Fatal(err)
	}
	addr := run.h.ControlAddr()
	gw := run.h.GatewayAddr().String()
	for _, id := range []string{"T0001", "T0002"} {
		newTerm(t, id, gw, c.cfg.DataDir, nil).start()
	}
	// Ops answers queries through the PDA: meter T0001-01's customer is in arrears.
	if err := c.ops.lab.Ops.Provision(context.Background(), ops.Dataset{Accounts: []ops.Account{{
		ID: "AT0001-01", Owner: "李娜", Payment: ops.Postpaid, BalanceFen: -3000, Tariff: "zj-res-tiered",
	}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, func() error {
		var ts []wire.TerminalStatus
		hhJSON(t, addr, &ts, "terminals")
		if len(ts) != 2 || ts[0].State != "active" || ts[1].State != "active" {
			return fmt.Errorf("terminals %+v, want T0001 and T0002 active", ts)
		}
		if !run.h.Outbox().PDAConnected || c.pda.lab.Bridge.Stats().Sessions == 0 {
			return fmt.Errorf("no PDA link or no session with ops yet")
		}
		return nil
	})

	var gs []wire.Group
	hhJSON(t, addr, &gs, "groups")
	if len(gs) != 1 || gs[0].Name != "D01" || len(gs[0].Terminals) != 2 || len(gs[0].Terminals[0].Meters) != 16 {
		t.Fatalf("groups %+v, want D01 with 2 terminals of 16 meters", gs)
	}
	var g wire.Group
	hhJSON(t, addr, &g, "groups", "--narrow", "north", "--from", "D01", "--terminal", "T0002")
	if g.Kind != wire.GroupKindLocal || len(g.Terminals) != 1 || g.Terminals[0].ID != "T0002" {
		t.Fatalf("narrowed group %+v", g)
	}

	jobs := map[string][]string{
		"set-clock":   {"set-clock", "--district", "D01"},
		"set-freeze":  {"set-freeze", "07:15", "--district", "D01"},
		"set-channel": {"--json", "set-channel", "--terminal", "T0001", "--channel", "2", "--multiplier", "2"},
		"collect":     {"collect", "--group", "north"},
		"frozen":      {"frozen", "--terminal", "T0001,T0002", "--from", "2026-01-01", "--to", "2026-01-03"},
	}
	for name, args := range jobs {
		t.Run(name, func(t *testing.T) {
			var job wire.Job
			hhJSON(t, addr, &job, args...)
			if job.State != wire.JobDone || job.Progress.Failed != 0 || job.Progress.Acked != len(job.Terminals) || len(job.Terminals) == 0 {
				t.Errorf("job %+v", job)
			}
		})
	}
	// Without --json: the progress and a per-terminal summary.
	out, err := hh(t, addr, "set-freeze", "00:00", "--district", "D01")
	if err != nil || !strings.Contains(out, "progress 2/2 done: 2 acked") || !strings.Contains(out, "T0002") || !strings.Contains(out, "daily freeze at 00:00") {
		t.Errorf("set-freeze output (err %v):\n%s", err, out)
	}

	var lv wire.LiveView
	hhJSON(t, addr, &lv, "live", "--terminal", "T0001", "--channel", "2", "--once")
	if len(lv.Channels) != 1 || lv.Channels[0].Channel != 2 || lv.Channels[0].Multiplier != 2 {
		t.Errorf("live view %+v, want channel 2 with multiplier 2", lv)
	}
	hhJSON(t, addr, &lv, "live", "--meter", "T0002-05", "--once")
	if len(lv.Channels) != 1 || lv.Terminal != "T0002" || lv.Channels[0].Meter != "T0002-05" {
		t.Errorf("live view of a meter %+v", lv)
	}
	out, err = hh(t, addr, "live", "--terminal", "T0001", "--once")
	if err != nil || strings.Count(out, "T0001-") != 16 {
		t.Errorf("live output (err %v):\n%s", err, out)
	}

	var qr wire.QueryResult
	hhJSON(t, addr, &qr, "query", "--meter", "T0001-01")
	if qr.Offline || len(qr.Answer.Customers) != 1 || qr.Answer.Customers[0].Owner != "李娜" {
		t.Errorf("query %+v", qr)
	}
	if ws := qr.Answer.Customers[0].Warnings; len(ws) != 1 || ws[0].Code != "arrears" {
		t.Errorf("query warnings %+v, want arrears", ws)
	}
	out, err = hh(t, addr, "query", "--account", "AT0001-01")
	if err != nil || !strings.Contains(out, "李娜") || !strings.Contains(out, "-30.00 元") {
		t.Errorf("query output (err %v):\n%s", err, out)
	}

	var ob wire.OutboxStatus
	hhJSON(t, addr, &ob, "outbox")
	if ob.Handheld != "H01" || !ob.PDAConnected || ob.Received == 0 {
		t.Errorf("outbox %+v", ob)
	}
	var js []wire.Job
	hhJSON(t, addr, &js, "jobs")
	if len(js) != len(jobs)+1 {
		t.Fatalf("%d jobs listed, want %d", len(js), len(jobs)+1)
	}
	var one wire.Job
	hhJSON(t, addr, &one, "jobs", js[0].ID)
	if one.ID != js[0].ID {
		t.Errorf("jobs %s gave %s", js[0].ID, one.ID)
	}
	var ws []wire.SiteWarning
	hhJSON(t, addr, &ws, "warnings")
	found := false
	for _, w := range ws {
		found = found || (w.Code == "arrears" && w.Account == "AT0001-01")
	}
	if !found {
		t.Errorf("warnings %+v, want the arrears of AT0001-01", ws)
	}
	for _, args := range [][]string{{"terminals"}, {"groups"}, {"outbox"}, {"jobs"}, {"warnings"}} {
		if out, err := hh(t, addr, args...); err != nil || out == "" {
			t.Errorf("meterlink hh %s: %v\n%s", args[0], err, out)
		}
	}

	// Bad input fails, naming what is wrong.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"set-freeze", "25:00", "--district", "D01"}, `"25:00"`},
		{[]string{"set-freeze", "07:00"}, "--district"},
		{[]string{"set-freeze", "07:00", "--district", "D09"}, "D09"},
		{[]string{"collect", "--terminal", "T9999"}, "T9999"},
		{[]string{"set-channel", "--terminal", "T0001", "--channel", "2"}, "--multiplier"},
		{[]string{"frozen", "--district", "D01", "--from", "2026-02-01", "--to", "2026-01-01"}, "--from <= --to"},
		{[]string{"live"}, "--terminal"},
		{[]string{"live", "--meter", "X-1", "--once"}, "X-1"},
		{[]string{"query"}, "--meter"},
		{[]string{"jobs", "J-nope"}, "J-nope"},
		{[]string{"frobnicate"}, "frobnicate"},
		{[]string{"--handheld", "127.0.0.1:1", "outbox"}, "127.0.0.1:1"},
	} {
		out, err := hh(t, addr, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("meterlink hh %s: err %v, want one naming %s\n%s", strings.Join(tt.args, " "), err, tt.want, out)
		}
	}

	// With the PDA gone the query says offline and shows the cached answer's age.
	c.pda.stop()
	waitFor(t, 20*time.Second, func() error {
		if run.h.Outbox().PDAConnected {
			return fmt.Errorf("handheld still sees the PDA")
		}
		return nil
	})
	hhJSON(t, addr, &qr, "query", "--meter", "T0001-01")
	if !qr.Offline || !qr.Cached || qr.CachedAgeMS <= 0 || qr.Answer.Customers[0].Owner != "李娜" {
		t.Errorf("offline query %+v", qr)
	}
	out, err = hh(t, addr, "query", "--meter", "T0001-01")
	if err != nil || !strings.Contains(out, "OFFLINE") || !strings.Contains(out, "old") {
		t.Errorf("offline query output (err %v):\n%s", err, out)
	}
	if _, err := hh(t, addr, "query", "--meter", "T0002-09"); err == nil || !strings.Contains(err.Error(), "offline") {
		t.Errorf("offline query with nothing cached: err %v, want offline", err)
	}
}
