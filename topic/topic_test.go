package topic

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite topics.md from the registry")

// TestTopicsMarkdownMatchesRegistry keeps the published contract and the code in step.
func TestTopicsMarkdownMatchesRegistry(t *testing.T) {
	const path = "../topics.md"
	want := Markdown()
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v (run go test ./topic -update)", path, err)
	}
	if string(got) != want {
		t.Errorf("topics.md and the registry disagree; run go test ./topic -update and review the diff")
	}
	// Both ways: every registry pattern is documented, and every documented topic is registered.
	for _, s := range All() {
		if !strings.Contains(string(got), "`"+s.Pattern+"`") {
			t.Errorf("registry topic %s missing from topics.md", s.Pattern)
		}
	}
	for _, line := range strings.Split(string(got), "\n") {
		if !strings.HasPrefix(line, "### `") {
			continue
		}
		pat := strings.SplitN(strings.TrimPrefix(line, "### `"), "`", 2)[0]
		found := false
		for _, s := range All() {
			found = found || s.Pattern == pat
		}
		if !found {
			t.Errorf("topics.md documents %s, which the registry does not have", pat)
		}
	}
}

func TestBuildersMatchPatterns(t *testing.T) {
	built := map[string]string{
		"radio-readings": RadioReadings("T1"), "radio-frozen": RadioFrozen("T1"),
		"radio-events": RadioEvents("T1"), "radio-commands": RadioCommands("T1"),
		"radio-cmd-acks": RadioCmdAcks("T1"), "hh-records": HHRecords("H1"), "hh-ack": HHAck("H1"),
		"hh-query": HHQuery("H1"), "hh-answer": HHAnswer("H1"), "hh-jobs": HHJobs("H1"), "hh-groups": HHGroups("H1"),
		"hh-hs-down": HHHandshakeDown("H1"), "hh-hs-up": HHHandshakeUp("H1"),
		"pda-hs-up": PDAHandshakeUp("P1"), "pda-hs-down": PDAHandshakeDown("P1"),
		"pda-up": PDAUp("P1"), "pda-down": PDADown("P1"),
		"ops-readings": OpsReadings("D1", "T1"), "ops-status": OpsStatus("ops"), "ops-alerts": OpsAlerts("D1"),
		"ops-jobs": OpsJobs("J1"),
	}
	for _, s := range All() {
		got, ok := built[s.Name]
		if !ok {
			t.Errorf("no builder tested for %s", s.Name)
			continue
		}
		if !instanceOf(s.Pattern, got) {
			t.Errorf("builder for %s = %q, not an instance of %s", s.Name, got, s.Pattern)
		}
	}
}

func instanceOf(pattern, t string) bool {
	pl, tl := strings.Split(pattern, "/"), strings.Split(t, "/")
	if len(pl) != len(tl) {
		return false
	}
	for i := range pl {
		if !strings.HasPrefix(pl[i], "{") && pl[i] != tl[i] {
			return false
		}
	}
	return true
}

func TestParsers(t *testing.T) {
	if term, kind, err := ParseRadio(RadioReadings("T0001")); err != nil || term != "T0001" || kind != "rd" {
		t.Errorf("ParseRadio = %q %q %v", term, kind, err)
	}
	if hh, dir, kind, err := ParseHH(HHRecords("H01")); err != nil || hh != "H01" || dir != "up" || kind != "records" {
		t.Errorf("ParseHH = %q %q %q %v", hh, dir, kind, err)
	}
	if pda, rest, err := ParsePDA(PDAHandshakeUp("P01")); err != nil || pda != "P01" || rest != "hs/up" {
		t.Errorf("ParsePDA = %q %q %v", pda, rest, err)
	}
	for _, bad := range []string{"", "t//rd", "t/T1/xx", "t/+/rd", "meterlink/v1/pda/P1/other", "meterlink/v1/pda/#/up",
		"meterlink/v1/hh/H1/sideways/records", "meterlink/v2/hh/H1/up/records"} {
		_, _, e1 := ParseRadio(bad)
		_, _, _, e2 := ParseHH(bad)
		_, _, e3 := ParsePDA(bad)
		if e1 == nil || e2 == nil || e3 == nil {
			t.Errorf("parsers accepted %q", bad)
		}
	}
}

func TestAllowed(t *testing.T) {
	tests := []struct {
		name    string
		role    Role
		id      string
		filter  string
		publish bool
		want    bool
	}{
		{"pda publishes its own uplink", RolePDA, "P01", "meterlink/v1/pda/P01/up", true, true},
		{"pda publishes its handshake", RolePDA, "P01", "meterlink/v1/pda/P01/hs/up", true, true},
		{"pda cannot publish another pda's uplink", RolePDA, "P01", "meterlink/v1/pda/P02/up", true, false},
		{"pda cannot publish downlink", RolePDA, "P01", "meterlink/v1/pda/P01/down", true, false},
		{"pda subscribes its own downlink", RolePDA, "P01", "meterlink/v1/pda/P01/down", false, true},
		{"pda may not use wildcards", RolePDA, "P01", "meterlink/v1/pda/+/down", false, false},
		{"pda may not subscribe #", RolePDA, "P01", "meterlink/v1/pda/P01/#", false, false},
		{"ops shared subscription", RoleOps, "", "$share/ops/meterlink/v1/pda/+/up", false, true},
		{"ops publishes downlink", RoleOps, "", "meterlink/v1/pda/P07/down", true, true},
		{"ops cannot publish uplink", RoleOps, "", "meterlink/v1/pda/P07/up", true, false},
		{"viewer reads ops events", RoleViewer, "", "meterlink/v1/ops/readings/#", false, true},
		{"viewer reads all ops", RoleViewer, "", "meterlink/v1/ops/#", false, true},
		{"viewer cannot read pda traffic", RoleViewer, "", "meterlink/v1/#", false, false},
		{"viewer cannot publish", RoleViewer, "", "meterlink/v1/ops/readings/D1/T1", true, false},
		{"handheld publishes own records", RoleHandheld, "H01", "meterlink/v1/hh/H01/up/records", true, true},
		{"handheld cannot publish as another", RoleHandheld, "H01", "meterlink/v1/hh/H02/up/records", true, false},
		{"handheld reads own acks", RoleHandheld, "H01", "meterlink/v1/hh/H01/down/ack", false, true},
		{"handheld cannot read others", RoleHandheld, "H01", "meterlink/v1/hh/+/down/ack", false, false},
		{"bridge reads all handhelds", RoleBridge, "", "meterlink/v1/hh/+/up/records", false, true},
		{"bridge acks a handheld", RoleBridge, "", "meterlink/v1/hh/H01/down/ack", true, true},
		{"nobody touches $SYS", RoleOps, "", "$SYS/broker/uptime", false, false},
		{"publish with wildcard refused", RoleOps, "", "meterlink/v1/pda/+/down", true, false},
		{"empty filter refused", RoleOps, "", "", false, false},
		{"bad share refused", RoleOps, "", "$share/ops", false, false},
		{"unregistered topic refused", RoleOps, "", "meterlink/v1/elsewhere", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Allowed(tt.role, tt.id, tt.filter, tt.publish); got != tt.want {
				t.Errorf("Allowed(%s, %q, %q, publish=%v) = %v, want %v", tt.role, tt.id, tt.filter, tt.publish, got, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range All() {
		f.Add(s.Pattern)
	}
	f.Add("meterlink/v1/hh/H01/up/records")
	f.Fuzz(func(t *testing.T, s string) {
		if term, kind, err := ParseRadio(s); err == nil {
			if RadioPredefined(term) == nil || kind == "" {
				t.Fatal("parsed radio topic without parts")
			}
		}
		if hh, dir, kind, err := ParseHH(s); err == nil && "meterlink/v1/hh/"+hh+"/"+dir+"/"+kind != s {
			t.Fatalf("ParseHH(%q) does not round-trip", s)
		}
		if pda, rest, err := ParsePDA(s); err == nil && "meterlink/v1/pda/"+pda+"/"+rest != s {
			t.Fatalf("ParsePDA(%q) does not round-trip", s)
		}
		for _, r := range []Role{RolePDA, RoleViewer, RoleHandheld, RoleOps, RoleBridge} {
			Allowed(r, "P01", s, true)
			Allowed(r, "P01", s, false)
		}
	})
}
