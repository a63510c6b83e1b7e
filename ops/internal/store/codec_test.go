package store

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tidwall/buntdb"

	"github.com/meterlink/meterlink/wire"
)

func TestRowsRoundTrip(t *testing.T) {
	readings := []Reading{
		{},
		{TimeMS: 1_795_000_000_123, District: "D01", Terminal: "T01", Seq: 1 << 40, Kind: wire.KindReading, Channel: 16,
			Meter: "M1", Pulses: 1<<64 - 1, EnergyWh: -5, Constant: 3200, Multiplier: 1<<32 - 1, Estimated: true},
		{TimeMS: -1, Kind: KindManual, Meter: "M2", FreezeDate: "2026-11-24", Reader: "张伟"},
	}
	for _, want := range readings {
		var got Reading
		if err := parseReading(string(appendReading(nil, &want)), &got); err != nil {
			t.Fatalf("parseReading(%+v): %v", want, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("reading round trip (-want +got):\n%s", diff)
		}
	}

	helds := []Held{
		{Record: wire.Record{Terminal: "T01", Seq: 7, Kind: wire.KindReading, TimeMS: 1000, Channels: []wire.ChannelReading{
			{Channel: 1, Meter: "M1", Pulses: 3200, EnergyWh: 1000, Constant: 3200, Multiplier: 1},
			{Channel: 2, Meter: "M2", EnergyWh: 5, Multiplier: 30, Estimated: true},
		}}, District: "D01", ReceivedMS: 2000},
		{Record: wire.Record{Terminal: "T01", Seq: 8, Kind: wire.KindFrozen, TimeMS: 1000, FreezeDate: "2026-11-23",
			Channels: []wire.ChannelReading{{Channel: 1, Meter: "M1"}}}},
		{Record: wire.Record{Terminal: "T01", Seq: 9, Kind: wire.KindEvent, TimeMS: 1,
			Event: &wire.Event{Code: "power_loss", Channel: 3, Detail: "mains off"}}, District: "D02"},
		{Record: wire.Record{Terminal: "T02", Seq: 10, Kind: wire.KindCmdAck, TimeMS: 1,
			CmdAck: &wire.CommandAck{V: 2, ID: "c1", Terminal: "T02", Code: wire.AckFailed, Detail: "relay stuck", Result: json.RawMessage(`{"a":1}`)}}},
	}
	for _, want := range helds {
		b, err := appendHeld(nil, &want)
		if err != nil {
			t.Fatal(err)
		}
		var got Held
		if err := parseHeld(string(b), &got); err != nil {
			t.Fatalf("parseHeld(%+v): %v", want, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("held round trip (-want +got):\n%s", diff)
		}
	}

	for _, want := range []Meter{{}, {ID: "M1", Terminal: "T01", Channel: 16, Account: "A1"}} {
		var got Meter
		if err := parseMeter(string(appendMeter(nil, &want)), &got); err != nil || got != want {
			t.Errorf("meter round trip: got %+v, %v; want %+v", got, err, want)
		}
	}
	for _, want := range []Terminal{{ID: "T01", District: "D01"}, {ID: "T02", Channels: []Channel{}},
		{ID: "T03", District: "D01", Channels: []Channel{{Channel: 1, Meter: "M1", Constant: 3200, BaseWh: -1, Multiplier: 30}}}} {
		var got Terminal
		if err := parseTerminal(string(appendTerminal(nil, &want)), &got); err != nil {
			t.Fatal(err)
		}
		// JSON tells a null channel list from an empty one; so must the row.
		wj, _ := json.Marshal(want)
		gj, _ := json.Marshal(got)
		if string(wj) != string(gj) {
			t.Errorf("terminal round trip: got %s, want %s", gj, wj)
		}
	}
}

func TestRowsCorrupt(t *testing.T) {
	r := Reading{TimeMS: 5, Terminal: "T01", Meter: "M1", Reader: "x"}
	row := string(appendReading(nil, &r))
	for _, bad := range []string{row[:len(row)-1], row + "x", string([]byte{rowV1, 0xff})} {
		var got Reading
		if err := parseReading(bad, &got); err == nil {
			t.Errorf("parseReading(%q) = nil error, want one", bad)
		}
	}
	var h Held
	if err := parseHeld(string([]byte{rowV1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0x7f}), &h); err == nil {
		t.Error("parseHeld of a row claiming 16383 channels: nil error, want one")
	}
}

// toJSON rewrites every row that has a binary form as JSON, as a store written before the
// binary rows holds them.
func toJSON(t *testing.T, s *DB) {
	t.Helper()
	n := 0
	err := s.db.Update(func(tx *buntdb.Tx) error {
		type row struct{ k, v string }
		var rows []row
		err := tx.Ascend("", func(k, v string) bool {
			if len(v) > 0 && v[0] == rowV1 {
				rows = append(rows, row{k, v})
			}
			return true
		})
		if err != nil {
			return err
		}
		for _, r := range rows {
			var v any
			switch {
			case strings.HasPrefix(r.k, pfxRecord):
				v = new(Held)
			case strings.HasPrefix(r.k, pfxMeterRd), strings.HasPrefix(r.k, pfxLatest):
				v = new(Reading)
			case strings.HasPrefix(r.k, pfxMeter):
				v = new(Meter)
			case strings.HasPrefix(r.k, pfxTerminal):
				v = new(Terminal)
			default:
				continue // states: their owners test them
			}
			if err := decode(r.v, v); err != nil {
				return err
			}
			j, err := json.Marshal(v)
			if err != nil {
				return err
			}
			if _, _, err := tx.Set(r.k, string(j), nil); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if n < 10 { // 2 terminals, 3 meters, 3 records, 5 meter readings, 3 latest
		t.Fatalf("%d rows rewritten as JSON, want at least 10", n)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestJSONRowsStillRead: a store whose rows are JSON answers as one with binary rows, and
// Apply on it de-duplicates and keeps the latest readings the same way.
func TestJSONRowsStillRead(t *testing.T) {
	type answers struct {
		All, M1, T01, D02 []Reading
		Latest            []Reading
		Dataset           Dataset
		Applied           Applied
		AfterApply        []Reading
	}
	run := func(jsonRows bool) answers {
		s := provisioned(t)
		if _, err := s.Apply([]wire.Record{reading("T01", 1, 1000, 10, 20), reading("T02", 1, 1500, 7),
			reading("T01", 2, 3000, 12, 25)}, 0, 5); err != nil {
			t.Fatal(err)
		}
		if jsonRows {
			toJSON(t, s)
		}
		var a answers
		var err error
		q := func(q Query) []Reading {
			q.Limit = MaxTestLimit
			rs, err := s.Readings(q)
			if err != nil {
				t.Fatal(err)
			}
			return rs
		}
		a.All, a.M1, a.T01, a.D02 = q(Query{}), q(Query{Meter: "M1"}), q(Query{Terminal: "T01"}), q(Query{District: "D02"})
		if a.Latest, err = s.Latest(Query{Limit: MaxTestLimit}); err != nil {
			t.Fatal(err)
		}
		if a.Dataset, err = s.Load(); err != nil {
			t.Fatal(err)
		}
		// A repeat, an older record (not the latest) and a newer one.
		if a.Applied, err = s.Apply([]wire.Record{reading("T01", 2, 3000, 12, 25), reading("T01", 3, 2000, 11, 22),
			reading("T02", 2, 2500, 9)}, 0, 6); err != nil {
			t.Fatal(err)
		}
		if a.AfterApply, err = s.Latest(Query{Limit: MaxTestLimit}); err != nil {
			t.Fatal(err)
		}
		return a
	}
	want, got := run(false), run(true)
	if len(want.All) != 5 || len(want.Latest) != 3 {
		t.Fatalf("binary store: %d readings, %d latest; want 5, 3", len(want.All), len(want.Latest))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("JSON rows answer differently (-binary +json):\n%s", diff)
	}
}
