package broker_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meterlink/meterlink/broker"
	"github.com/meterlink/meterlink/topic"
)

func writeAccounts(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "accounts.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestMainHelp(t *testing.T) {
	var out, errw strings.Builder
	if err := broker.Main(t.Context(), []string{"-help"}, env(nil), &out, &errw); err != nil {
		t.Fatalf("Main -help = %v", err)
	}
	for _, want := range []string{"-mqtt", "-ws", "-store", "-accounts-file", "-allow-viewers", "-log-level", "-log-format", "METERLINK_", "password_sha256"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
}

func TestMainBadValues(t *testing.T) {
	good := writeAccounts(t, `[{"username":"ops","password_sha256":"`+sha("ops-pw")+`","role":"ops"}]`)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"mqtt flag", []string{"-mqtt", "nonsense"}, nil, "mqtt"},
		{"mqtt env", nil, map[string]string{"METERLINK_MQTT": "nonsense"}, "mqtt"},
		{"ws flag", []string{"-ws", "8083"}, nil, "ws"},
		{"log level", []string{"-log-level", "loud"}, nil, "log-level"},
		{"log format", []string{"-log-format", "xml"}, nil, "log-format"},
		{"max packet size", []string{"-max-packet-size", "big"}, nil, "max-packet-size"},
		{"allow viewers", []string{"-allow-viewers=perhaps"}, nil, "allow-viewers"},
		{"unknown flag", []string{"-port", "1883"}, nil, "port"},
		{"missing accounts file", []string{"-accounts-file", "/nonexistent/accounts.json"}, nil, "accounts-file"},
		{"unknown account field", []string{"-accounts-file", writeAccounts(t, `[{"username":"ops","password":"x","role":"ops"}]`)}, nil, "accounts-file"},
		{"bad verifier", []string{"-accounts-file", writeAccounts(t, `[{"username":"ops","password_sha256":"abc","role":"ops"}]`)}, nil, "password_sha256"},
		{"bad role", []string{"-accounts-file", writeAccounts(t, `[{"username":"ops","password_sha256":"`+sha("x")+`","role":"root"}]`)}, nil, `role "root"`},
		{"stray argument", []string{"-accounts-file", good, "extra"}, nil, "extra"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errw strings.Builder
			err := broker.Main(t.Context(), tt.args, env(tt.env), &out, &errw)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Main(%q) = %v, want an error naming %q", tt.args, err, tt.want)
			}
		})
	}
}

func TestMainCheckConfig(t *testing.T) {
	p := writeAccounts(t, `[{"username":"P01","password_sha256":"`+sha("P01-pw")+`","role":"pda"},
		{"username":"hh1","password_sha256":"`+sha("hh1-pw")+`","more_sha256":["`+sha("next")+`"],"role":"handheld","id":"H01"}]`)
	var out, errw strings.Builder
	err := broker.Main(t.Context(), []string{"-check-config", "-accounts-file", p}, env(map[string]string{"METERLINK_WS": "127.0.0.1:8083"}), &out, &errw)
	if err != nil || !strings.Contains(out.String(), "ok") {
		t.Fatalf("Main -check-config = %v, output %q", err, out.String())
	}
	accts, err := broker.LoadAccounts(strings.NewReader(`[{"username":"hh1","password_sha256":"` + sha("hh1-pw") + `","role":"handheld","id":"H01"}]`))
	if err != nil || len(accts) != 1 || accts[0].Role != topic.RoleHandheld || accts[0].ID != "H01" || accts[0].PasswordSHA256 != sha256.Sum256([]byte("hh1-pw")) {
		t.Fatalf("LoadAccounts = %v, %v", accts, err)
	}
}

// TestMainServes runs `meterlink broker` with an accounts file and a store until its context
// ends.
func TestMainServes(t *testing.T) {
	p := writeAccounts(t, `[{"username":"ops","password_sha256":"`+sha("ops-pw")+`","role":"ops"}]`)
	store := filepath.Join(t.TempDir(), "broker.db")
	ctx, cancel := context.WithCancel(t.Context())
	var out, errw strings.Builder
	done := make(chan error, 1)
	go func() {
		done <- broker.Main(ctx, []string{"-mqtt", "127.0.0.1:0", "-accounts-file", p, "-store", store, "-log-level", "error"},
			env(nil), &out, &errw)
	}()
	waitFor(t, 5*time.Second, func() error {
		_, err := os.Stat(store)
		return err
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Main = %v, want nil after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Main did not return after cancel")
	}
}
