package topic

import "testing"

// BenchmarkAllowed is the broker's ACL check on every PUBLISH and SUBSCRIBE.
func BenchmarkAllowed(b *testing.B) {
	cases := []struct {
		name    string
		role    Role
		id      string
		filter  string
		publish bool
		want    bool
	}{
		{"pda publishes its uplink", RolePDA, "P01", PDAUp("P01"), true, true},
		{"pda publishes another's uplink", RolePDA, "P01", PDAUp("P02"), true, false},
		{"ops shared subscription", RoleOps, "", "$share/ops/meterlink/v1/pda/+/up", false, true},
		{"viewer multi-level", RoleViewer, "", OpsReadingsAll, false, true},
		{"ops publishes a reading event", RoleOps, "", OpsReadings("D01", "T0001"), true, true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			if got := Allowed(c.role, c.id, c.filter, c.publish); got != c.want {
				b.Fatalf("Allowed(%s, %q, %q, %v) = %v, want %v", c.role, c.id, c.filter, c.publish, got, c.want)
			}
			b.ReportAllocs()
			for b.Loop() {
				Allowed(c.role, c.id, c.filter, c.publish)
			}
		})
	}
}
