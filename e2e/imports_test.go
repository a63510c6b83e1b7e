package e2e

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/meterlink/meterlink"

type pkg struct {
	ImportPath  string
	Imports     []string
	TestImports []string
}

// listPackages runs `go list -json ./...` from the module root.
func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// part returns the part a package belongs to, or "".
func part(path string) string {
	rel := strings.TrimPrefix(path, module+"/")
	for _, p := range []string{"broker", "terminal", "handheld", "pda-bridge", "ops", "metersim"} {
		if rel == p || strings.HasPrefix(rel, p+"/") {
			return p
		}
	}
	return ""
}

// TestImportRules checks style.md §3: parts never import each other, nothing imports cmd or
// e2e, each library has one home, and the shared leaves use the standard library only.
func TestImportRules(t *testing.T) {
	homes := map[string][]string{
		"github.com/mochi-mqtt/server/v2":     {"broker"},
		"github.com/eclipse/paho.mqtt.golang": {"bus"},
		"github.com/simonvetter/modbus":       {"terminal", "metersim"},
		"github.com/flynn/noise":              {"noisehs"},
		"github.com/tidwall/buntdb":           {"broker", "terminal", "handheld", "pda-bridge", "ops/internal/store"},
	}
	stdOnly := []string{"wire", "topic", "mqttsn", "cmdline", "demo", "dlt645", "serialtest", "regmap"}
	pkgs := listPackages(t)
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages; is the module root right?", len(pkgs))
	}
	for _, p := range pkgs {
		rel := strings.TrimPrefix(p.ImportPath, module+"/")
		from := part(p.ImportPath)
		check := func(imp string, test bool) {
			irel := strings.TrimPrefix(imp, module+"/")
			if strings.HasPrefix(imp, module) {
				if strings.HasPrefix(irel, "cmd/") || strings.HasPrefix(irel, "e2e") {
					t.Errorf("%s imports %s: nothing imports cmd or e2e", rel, irel)
				}
				to := part(imp)
				allowedInTests := test && (irel == "broker/brokertest" || irel == "metersim" || strings.HasPrefix(irel, "broker"))
				if from != "" && to != "" && from != to && !allowedInTests {
					t.Errorf("%s imports %s: parts never import each other", rel, irel)
				}
			}
			for lib, where := range homes {
				if imp != lib && !strings.HasPrefix(imp, lib+"/") {
					continue
				}
				ok := false
				for _, w := range where {
					ok = ok || rel == w || strings.HasPrefix(rel, w+"/")
				}
				if !ok && !test {
					t.Errorf("%s imports %s: its only home is %v", rel, lib, where)
				}
			}
			isLeaf := func(r string) bool {
				for _, leaf := range stdOnly {
					if r == leaf || strings.HasPrefix(r, leaf+"/") {
						return true
					}
				}
				return false
			}
			if isLeaf(rel) && !test && strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") &&
				!(strings.HasPrefix(imp, module+"/") && isLeaf(irel)) {
				t.Errorf("%s imports %s: the shared leaves use the standard library only", rel, imp)
			}
		}
		for _, imp := range p.Imports {
			check(imp, false)
		}
		for _, imp := range p.TestImports {
			check(imp, true)
		}
	}
}
