package store

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meterlink/meterlink/wire"
)

func open(t *testing.T) *DB {
	t.Helper()
	s, err := Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func sid(b byte) []byte {
	s := make([]byte, 32)
	for i := range s {
		s[i] = b
	}
	return s
}

// testDataset is two districts with a terminal each (two channels), meters and accounts.
func testDataset() Dataset {
	return Dataset{
		Districts: []District{{ID: "D01", Name: "文三新村1号变"}, {ID: "D02", Name: "湖墅花园2号变"}},
		Accounts: []Account{
			{ID: "A1", Owner: "张伟 Zhang Wei", Payment: Prepaid, BalanceFen: 12345, Tariff: "zj-res-tiered"},
			{ID: "A2", Owner: "王芳 Wang Fang", Payment: Postpaid, Tariff: "zj-res-tiered"},
		},
		Terminals: []Terminal{
			{ID: "T01", District: "D01", Channels: []Channel{
				{Channel: 1, Meter: "M1", Constant: 3200, BaseWh: 1000000, Multiplier: 1},
				{Channel: 2, Meter: "M2", Constant: 1600, Multiplier: 1},
			}},
			{ID: "T02", District: "D02", Channels: []Channel{{Channel: 1, Meter: "M3", Constant: 6400, Multiplier: 30}}},
		},
		Meters: []Meter{
			{ID: "M1", Terminal: "T01", Channel: 1, Account: "A1"},
			{ID: "M2", Terminal: "T01", Channel: 2, Account: "A2"},
			{ID: "M3", Terminal: "T02", Channel: 1},
		},
		PDAs: []PDA{{ID: "P01", SID: sid(7), State: PDAEnrolled, CreatedMS: 1}},
	}
}

func provisioned(t *testing.T) *DB {
	t.Helper()
	s := open(t)
	if err := s.Put(testDataset(), false); err != nil {
		t.Fatal(err)
	}
	return s
}

func reading(term wire.TerminalID, seq uint64, ts int64, wh ...int64) wire.Record {
	r := wire.Record{Terminal: term, Seq: seq, Kind: wire.KindReading, TimeMS: ts}
	meters := map[wire.TerminalID][]wire.MeterID{"T01": {"M1", "M2"}, "T02": {"M3"}, "T99": {"M9"}}[term]
	for i, e := range wh {
		r.Channels = append(r.Channels, wire.ChannelReading{Channel: uint8(i + 1), Meter: meters[i], EnergyWh: e, Constant: 3200, Multiplier: 1})
	}
	return r
}

func count(t *testing.T, s *DB, q Query) int {
	t.Helper()
	q.Limit = MaxTestLimit
	rs, err := s.Readings(q)
	if err != nil {
		t.Fatal(err)
	}
	return len(rs)
}

const MaxTestLimit = 100000

func TestApplyDeduplicates(t *testing.T) {
	s := provisioned(t)
	r1 := reading("T01", 1, 1000, 10, 20)

	// Twice in one transaction.
	a, err := s.Apply([]wire.Record{r1, r1}, 0, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Stored) != 1 || a.Duplicates != 1 {
		t.Errorf("one batch: stored %d, duplicates %d; want 1, 1", len(a.Stored), a.Duplicates)
	}
	if diff := cmp.Diff([]wire.RecordKey{{Terminal: "T01", Seq: 1}}, a.Held); diff != "" {
		t.Errorf("held (-want +got):\n%s", diff)
	}

	// Again in a second transaction, with a new record.
	r2 := reading("T01", 2, 2000, 11, 21)
	a, err = s.Apply([]wire.Record{r1, r2}, 0, 6)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Stored) != 1 || a.Stored[0].Record.Seq != 2 || a.Duplicates != 1 {
		t.Errorf("second batch: stored %v, duplicates %d; want seq 2 only, 1", a.Stored, a.Duplicates)
	}
	if diff := cmp.Diff([]wire.RecordKey{{Terminal: "T01", Seq: 1}, {Terminal: "T01", Seq: 2}}, a.Held); diff != "" {
		t.Errorf("held (-want +got):\n%s", diff)
	}
	if n := count(t, s, Query{Terminal: "T01"}); n != 4 {
		t.Errorf("T01 has %d meter readings, want 4 (2 records × 2 channels)", n)
	}
	if n := count(t, s, Query{Meter: "M1"}); n != 2 {
		t.Errorf("M1 has %d readings, want 2", n)
	}
}

func TestApplyRejectsUnknownTerminal(t *testing.T) {
	s := provisioned(t)
	bad := reading("T99", 1, 1000, 5)
	a, err := s.Apply([]wire.Record{bad, reading("T01", 1, 1000, 1, 2), bad}, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []wire.Rejection{{Key: wire.RecordKey{Terminal: "T99", Seq: 1}, Reason: RejectUnknownTerminal}}
	if diff := cmp.Diff(want, a.Rejected); diff != "" {
		t.Errorf("rejected (-want +got):\n%s", diff)
	}
	if len(a.Held) != 1 || len(a.Stored) != 1 {
		t.Errorf("held %v, stored %d; want T01/1 only", a.Held, len(a.Stored))
	}
	if n := count(t, s, Query{}); n != 2 {
		t.Errorf("%d readings stored, want 2", n)
	}
}

func TestApplyInvalidChangesNothing(t *testing.T) {
	s := provisioned(t)
	bad := reading("T01", 0, 1000, 1) // seq 0 is invalid
	if _, err := s.Apply([]wire.Record{reading("T01", 1, 1000, 1, 2), bad}, 0, 1); err == nil {
		t.Fatal("Apply with an invalid record succeeded")
	}
	if n := count(t, s, Query{}); n != 0 {
		t.Errorf("%d readings stored after a failed batch, want 0", n)
	}
}

func TestReadingsQueries(t *testing.T) {
	s := provisioned(t)
	_, err := s.Apply([]wire.Record{
		reading("T01", 1, 1000, 10, 20),
		reading("T02", 1, 1500, 30),
		reading("T01", 2, 2000, 11, 21),
		reading("T02", 2, 2500, 31),
		{Terminal: "T01", Seq: 3, Kind: wire.KindEvent, TimeMS: 2600, Event: &wire.Event{Code: "power_loss"}},
		reading("T01", 4, 3000, 12, 22),
	}, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		T   wire.TerminalID
		Seq uint64
		M   wire.MeterID
	}
	keys := func(rs []Reading) []key {
		var out []key
		for _, r := range rs {
			out = append(out, key{r.Terminal, r.Seq, r.Meter})
		}
		return out
	}
	tests := []struct {
		name string
		q    Query
		want []key
	}{
		{"meter", Query{Meter: "M1", Limit: 10}, []key{{"T01", 1, "M1"}, {"T01", 2, "M1"}, {"T01", 4, "M1"}}},
		{"meter range", Query{Meter: "M1", FromMS: 1000, ToMS: 3000, Limit: 10}, []key{{"T01", 1, "M1"}, {"T01", 2, "M1"}}},
		{"meter limit", Query{Meter: "M2", Limit: 1}, []key{{"T01", 1, "M2"}}},
		{"terminal", Query{Terminal: "T02", Limit: 10}, []key{{"T02", 1, "M3"}, {"T02", 2, "M3"}}},
		{"district range", Query{District: "D01", FromMS: 1500, Limit: 10}, []key{{"T01", 2, "M1"}, {"T01", 2, "M2"}, {"T01", 4, "M1"}, {"T01", 4, "M2"}}},
		{"all by time", Query{FromMS: 1500, ToMS: 2600, Limit: 10}, []key{{"T02", 1, "M3"}, {"T01", 2, "M1"}, {"T01", 2, "M2"}, {"T02", 2, "M3"}}},
		{"all limit", Query{Limit: 3}, []key{{"T01", 1, "M1"}, {"T01", 1, "M2"}, {"T02", 1, "M3"}}},
		{"meter and wrong terminal", Query{Meter: "M1", Terminal: "T02", Limit: 10}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := s.Readings(tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, keys(rs)); diff != "" {
				t.Errorf("Readings(%+v) (-want +got):\n%s", tt.q, diff)
			}
		})
	}

	latest, err := s.Latest(Query{District: "D01", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]key{{"T01", 4, "M1"}, {"T01", 4, "M2"}}, keys(latest)); diff != "" {
		t.Errorf("Latest(D01) (-want +got):\n%s", diff)
	}
	// An older record arriving late does not move the latest reading back.
	if _, err := s.Apply([]wire.Record{reading("T01", 9, 500, 1, 1)}, 0, 1); err != nil {
		t.Fatal(err)
	}
	latest, err = s.Latest(Query{Meter: "M1", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(latest) != 1 || latest[0].Seq != 4 || latest[0].EnergyWh != 12 {
		t.Errorf("Latest(M1) = %+v, want seq 4, 12 Wh", latest)
	}
}

func TestPruneAndRetention(t *testing.T) {
	s := provisioned(t)
	var recs []wire.Record
	for i := uint64(1); i <= 2500; i++ {
		recs = append(recs, reading("T02", i, int64(i)*1000, int64(i)))
	}
	for i := 0; i < len(recs); i += 500 {
		if _, err := s.Apply(recs[i:i+500], 0, 1); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.Prune(2001 * 1000) // seq 1..2000
	if err != nil {
		t.Fatal(err)
	}
	if n != 2000 {
		t.Errorf("Prune deleted %d records, want 2000", n)
	}
	if got := count(t, s, Query{Meter: "M3"}); got != 500 {
		t.Errorf("M3 has %d readings after prune, want 500", got)
	}
	if got := count(t, s, Query{District: "D02"}); got != 500 {
		t.Errorf("D02 has %d readings after prune, want 500", got)
	}
	// A pruned record sent again is held but not stored when older than the retention.
	a, err := s.Apply([]wire.Record{recs[0]}, 2001*1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	if a.Expired != 1 || len(a.Stored) != 0 || len(a.Held) != 1 {
		t.Errorf("Apply(pruned record) = %+v, want held and expired, not stored", a)
	}
}

func TestPutValidatesAndRefuses(t *testing.T) {
	s := provisioned(t)
	tests := []struct {
		name   string
		ds     Dataset
		fields []string // the FieldError's fields, or nil for ErrExists
	}{
		{"exists", Dataset{Districts: []District{{ID: "D01"}}}, nil},
		{"bad fields", Dataset{Terminals: []Terminal{{ID: "T 9", District: "D01", Channels: []Channel{{Channel: 17, Meter: "M9", Constant: 1234, Multiplier: 0}}}}},
			[]string{"terminals[0].id", "terminals[0].channels[0].ch", "terminals[0].channels[0].constant", "terminals[0].channels[0].multiplier"}},
		{"unknown district", Dataset{Terminals: []Terminal{{ID: "T9", District: "D9"}}}, []string{"terminals[0].district"}},
		{"meter not on channel", Dataset{Meters: []Meter{{ID: "M9", Terminal: "T01", Channel: 1, Account: "A9"}}}, []string{"meters[0].ch", "meters[0].account"}},
		{"duplicate ids", Dataset{Districts: []District{{ID: "D5"}, {ID: "D5"}}}, []string{"districts[1].id"}},
		{"bad account", Dataset{Accounts: []Account{{ID: "A9", Owner: " ", Payment: "cash", Tariff: ""}}}, []string{"accounts[0].owner", "accounts[0].payment", "accounts[0].tariff"}},
		{"bad pda", Dataset{PDAs: []PDA{{ID: "P9", SID: []byte{1}, State: "x"}}}, []string{"pdas[0].sid", "pdas[0].state", "pdas[0].created_ms"}},
	}
	before, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A valid district first shows that a failed dataset rolls back entirely.
			ds := tt.ds
			ds.Districts = append([]District{{ID: "D77"}}, ds.Districts...)
			if tt.fields != nil {
				for i := range tt.fields {
					tt.fields[i] = shiftDistrict(tt.fields[i])
				}
			}
			err := s.Put(ds, false)
			var fe *FieldError
			switch {
			case tt.fields == nil:
				if !errors.Is(err, ErrExists) {
					t.Fatalf("Put = %v, want ErrExists", err)
				}
			case !errors.As(err, &fe):
				t.Fatalf("Put = %v, want a FieldError", err)
			default:
				var got []string
				for k := range fe.Fields {
					got = append(got, k)
				}
				if diff := cmp.Diff(tt.fields, got, cmpSorted); diff != "" {
					t.Errorf("fields (-want +got):\n%s\n%v", diff, fe)
				}
			}
			after, err := s.Load()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(before, after); diff != "" {
				t.Errorf("store changed (-before +after):\n%s", diff)
			}
		})
	}
}

// shiftDistrict accounts for the extra district the test puts first.
func shiftDistrict(f string) string {
	if f == "districts[1].id" {
		return "districts[2].id"
	}
	return f
}

var cmpSorted = cmp.Transformer("sort", func(in []string) []string {
	out := append([]string(nil), in...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
})

func TestPDAAndPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ops.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(testDataset(), false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply([]wire.Record{reading("T01", 1, 1000, 1, 2)}, 0, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetPDAState("P01", PDARevoked); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetPDAState("P99", PDARevoked); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetPDAState(P99) = %v, want ErrNotFound", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := s.PDA("P01")
	if err != nil {
		t.Fatal(err)
	}
	// Revocation deleted the SIDs (security.md §10); the row and its state persist.
	if diff := cmp.Diff(PDA{ID: "P01", State: PDARevoked, CreatedMS: 1}, p); diff != "" {
		t.Errorf("PDA after reopen (-want +got):\n%s", diff)
	}
	a, err := s.Apply([]wire.Record{reading("T01", 1, 1000, 1, 2)}, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if a.Duplicates != 1 || len(a.Stored) != 0 {
		t.Errorf("replay after reopen: %+v, want a duplicate", a)
	}
}
