package broker_test

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/meterlink/meterlink/broker"
	"github.com/meterlink/meterlink/topic"
)

func TestDefaultConfigValid(t *testing.T) {
	if err := broker.DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	if err := testConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	cfg := broker.Config{
		TCPAddr:                "no-port",
		WSAddr:                 "127.0.0.1",
		MaxInflight:            70000,
		MaxClientWritesPending: 10,
		Accounts: []broker.Account{
			{Username: "", Role: "admin"},
			{Username: "P01", Password: []byte("x"), Role: topic.RolePDA, ID: "P02"},
			{Username: "hh1", Password: []byte("x"), Role: topic.RoleHandheld},
			{Username: "ops", Password: []byte("x"), Role: topic.RoleOps},
			{Username: "ops", PasswordSHA256: sha256.Sum256([]byte("y")), Role: topic.RoleOps},
		},
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate = nil")
	}
	for _, want := range []string{
		`mqtt address "no-port"`, `ws address "127.0.0.1"`, "max inflight 70000", "max client writes pending 10",
		"username is required", "password or password_sha256 is required", `role "admin"`,
		`pda id "P02" must equal the username`, `handheld id ""`, `duplicate username "ops"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error lacks %q:\n%v", want, err)
		}
	}
	if err := (broker.Config{MaxInflight: 1, MaxClientWritesPending: 2}).Validate(); err == nil || !strings.Contains(err.Error(), "both off") {
		t.Errorf("no listeners: Validate = %v", err)
	}
}

func TestSecretsNeverFormatted(t *testing.T) {
	a := broker.Account{Username: "ops", Password: []byte("hunter2-secret"), Role: topic.RoleOps}
	cfg := testConfig()
	cfg.Accounts = append(cfg.Accounts, a)
	var sb strings.Builder
	log := slog.New(slog.NewTextHandler(&sb, nil))
	log.Info("x", "config", cfg, "account", a)
	fmt.Fprintf(&sb, "%v %+v %s", a, a, a)
	if strings.Contains(sb.String(), "hunter2") || strings.Contains(sb.String(), "ops-pw") {
		t.Errorf("a password was formatted: %s", sb.String())
	}
}
