package ops

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meterlink/meterlink/ops/internal/store"
)

func TestDemoDatasetProvisions(t *testing.T) {
	ds := DemoDataset(3, 4, 42)
	if err := ds.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(ds.Districts) != 3 || len(ds.Terminals) != 12 || len(ds.PDAs) != 3 || len(ds.Meters) < 12*8 {
		t.Errorf("demo has %d districts, %d terminals, %d pdas, %d meters", len(ds.Districts), len(ds.Terminals), len(ds.PDAs), len(ds.Meters))
	}
	if diff := cmp.Diff(ds, DemoDataset(3, 4, 42)); diff != "" {
		t.Errorf("same seed, different dataset (-first +second):\n%s", diff)
	}
	payments := map[PaymentMethod]int{}
	for _, a := range ds.Accounts {
		payments[a.Payment]++
	}
	if payments[Prepaid] == 0 || payments[Postpaid] == 0 {
		t.Errorf("payment methods %v, want both", payments)
	}

	o := newTestOps(t)
	if err := o.Provision(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
	// Provisioning is an upsert, so the lab can provision again after a restart.
	if err := o.Provision(context.Background(), ds); err != nil {
		t.Fatalf("second Provision = %v", err)
	}
	sid, ok := o.LookupPDA("P02")
	if !ok || !cmp.Equal(sid, DemoSID(42, "P02")) {
		t.Errorf("LookupPDA(P02) = %x, %v; want the demo SID", sid, ok)
	}
	if _, ok := o.LookupPDA("P99"); ok {
		t.Error("LookupPDA(P99) found an unknown PDA")
	}
}

func TestLookupPDARevoked(t *testing.T) {
	o := newTestOps(t)
	if _, ok := o.LookupPDA("P02"); ok {
		t.Error("LookupPDA found a revoked PDA")
	}
	if sid, ok := o.LookupPDA("P01"); !ok || !cmp.Equal(sid, sidP01) {
		t.Errorf("LookupPDA(P01) = %x, %v", sid, ok)
	}
}

func TestProvisionNamesBadFields(t *testing.T) {
	o := newTestOps(t)
	err := o.Provision(context.Background(), Dataset{Terminals: []Terminal{{ID: "T0002", District: "D404"}}})
	var fe *store.FieldError
	if !errors.As(err, &fe) || fe.Fields["terminals[0].district"] == "" {
		t.Errorf("Provision = %v, want a FieldError naming terminals[0].district", err)
	}
}
