package handheld

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/meterlink/meterlink/wire"
)

func testHandheld(t *testing.T) *Handheld {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ID, cfg.MQTTSNAddr = "H01", "127.0.0.1:0"
	h, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func district(name string, terms ...string) wire.Group {
	g := wire.Group{Name: name, Kind: wire.GroupKindDistrict}
	for _, id := range terms {
		g.Terminals = append(g.Terminals, wire.GroupTerminal{ID: wire.TerminalID(id), District: wire.DistrictID(name),
			Meters: []wire.GroupMeter{{Channel: 1, Meter: wire.MeterID(id + "-01")}}})
	}
	return g
}

// TestGroupsFromOpsAndLocalNarrowing: groups from ops replace the previous ones, local
// narrowings survive, and jobs and lookups resolve through them.
func TestGroupsFromOpsAndLocalNarrowing(t *testing.T) {
	h := testHandheld(t)
	if err := h.SetGroups([]wire.Group{district("D01", "T1", "T2", "T3"), district("D02", "T4")}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.NarrowGroup("mine", "D01", []string{"T1", "T3"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{{"T4"}, {}} {
		if _, err := h.NarrowGroup("x", "D01", bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("NarrowGroup(D01, %v) = %v, want invalid", bad, err)
		}
	}
	if _, err := h.NarrowGroup("D02", "D01", []string{"T1"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("narrowing over an ops group: %v, want invalid", err)
	}
	if err := h.SetGroups([]wire.Group{district("D01", "T1", "T2", "T3")}); err != nil {
		t.Fatal(err)
	}
	gs, _ := h.Groups()
	var names []string
	for _, g := range gs {
		names = append(names, g.Name)
	}
	if strings.Join(names, ",") != "D01,mine" {
		t.Errorf("groups %v, want D01,mine (D02 gone, the local one kept)", names)
	}
	terms, _, err := h.groups.selectTerminals("mine", nil)
	if err != nil || len(terms) != 2 || terms[1] != "T3" {
		t.Errorf("select mine: %v, %v", terms, err)
	}
	if _, _, err := h.groups.selectTerminals("", []string{"T4"}); !errors.Is(err, ErrUnknownTerminal) {
		t.Errorf("select T4 (gone with D02): %v, want unknown terminal", err)
	}
	if gt, ch, err := h.groups.meter("T2-01"); err != nil || gt.ID != "T2" || ch != 1 {
		t.Errorf("meter T2-01: %v %d %v", gt.ID, ch, err)
	}
	if err := h.DeleteGroup("D01"); !errors.Is(err, ErrInvalid) {
		t.Errorf("delete an ops group: %v, want invalid", err)
	}
	if err := h.DeleteGroup("mine"); err != nil {
		t.Errorf("delete mine: %v", err)
	}
}

// TestControlErrors: the control API maps errors to statuses and names what is wrong.
func TestControlErrors(t *testing.T) {
	h := testHandheld(t)
	if err := h.SetGroups([]wire.Group{district("D01", "T1")}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&control{h: h}).routes())
	defer srv.Close()
	for _, tt := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", "/v1/jobs", `{"op":"set_freeze","args":{"at":"99:00"},"group":"D01"}`, 400, "99:00"},
		{"POST", "/v1/jobs", `{"op":"collect","group":"D07"}`, 404, "D07"},
		{"POST", "/v1/jobs", `{"op":"collect","group":"D01","bogus":1}`, 400, "bogus"},
		{"POST", "/v1/jobs", `{"op":"collect","group":"D01","within":"soon"}`, 400, "soon"},
		{"GET", "/v1/jobs/J1", "", 404, "J1"},
		{"GET", "/v1/live", "", 400, "terminal"},
		{"GET", "/v1/live?meter=Z-9", "", 404, "Z-9"},
		{"GET", "/v1/query?meter=a&account=b", "", 400, "exactly one"},
		{"GET", "/v1/nothing", "", 404, "/v1/nothing"},
		{"POST", "/v1/jobs", `{"op":"collect","group":"D01"}`, 201, `"state": "running"`},
	} {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || !strings.Contains(string(b), tt.want) {
			t.Errorf("%s %s: %d %s, want %d naming %s", tt.method, tt.path, resp.StatusCode, b, tt.status, tt.want)
		}
	}
}
