package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

func noEnv(string) string { return "" }

// TestComposeCommandsAreRealSubcommands parses every service's command in docker-compose.yml
// and runs it with -help: the subcommand must exist and accept every flag the file gives it.
func TestComposeCommandsAreRealSubcommands(t *testing.T) {
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^\s+command:\s*(\[.*\])\s*$`)
	found := re.FindAllStringSubmatch(string(b), -1)
	if len(found) < 5 {
		t.Fatalf("found %d service commands in docker-compose.yml, want at least 5 (broker+ops, pda-bridge, handheld, terminals, meter-sim)", len(found))
	}
	for _, m := range found {
		var args []string
		if err := json.Unmarshal([]byte(m[1]), &args); err != nil {
			t.Errorf("command %s: %v", m[1], err)
			continue
		}
		t.Run(args[0], func(t *testing.T) {
			if _, ok := commands[args[0]]; !ok {
				t.Fatalf("docker-compose.yml runs %q, which is not a subcommand", args[0])
			}
			var out, errOut bytes.Buffer
			if err := dispatch(context.Background(), append(args, "-help"), noEnv, &out, &errOut); err != nil {
				t.Errorf("meterlink %s -help: %v\n%s", strings.Join(args, " "), err, errOut.String())
			}
		})
	}
}

func TestDispatch(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := dispatch(context.Background(), []string{"nonsense"}, noEnv, &out, &errOut); err == nil || !strings.Contains(err.Error(), "nonsense") {
		t.Errorf("unknown subcommand: err = %v, want it named", err)
	}
	out.Reset()
	if err := dispatch(context.Background(), []string{"help"}, noEnv, &out, &errOut); err != nil || !strings.Contains(out.String(), "pda-bridge") {
		t.Errorf("help: err = %v, output %q", err, out.String())
	}
	for name := range commands {
		t.Run(name+" rejects a bad flag", func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := dispatch(context.Background(), []string{name, "-no-such-flag"}, noEnv, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), "no-such-flag") {
				t.Errorf("meterlink %s -no-such-flag: err = %v, want an error naming the flag", name, err)
			}
		})
		if name == "bench" || name == "dlt645" || name == "hh" {
			continue // tools whose first argument is a task; their flags are checked above
		}
		t.Run(name+" names a bad environment value", func(t *testing.T) {
			var out, errOut bytes.Buffer
			env := func(k string) string {
				if k == "METERLINK_LOG_LEVEL" {
					return "loud"
				}
				return ""
			}
			err := dispatch(context.Background(), []string{name}, env, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), "log-level") {
				t.Errorf("meterlink %s with METERLINK_LOG_LEVEL=loud: err = %v, want an error naming log-level", name, err)
			}
		})
	}
}
