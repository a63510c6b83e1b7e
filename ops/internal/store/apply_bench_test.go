package store

import (
	"fmt"
	"testing"

	"github.com/meterlink/meterlink/wire"
)

func benchStore(b *testing.B, path string) *DB {
	b.Helper()
	s, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	ds := Dataset{Districts: []District{{ID: "D01", Name: "bench"}}}
	for i := range 10 {
		t := Terminal{ID: wire.TerminalID(fmt.Sprintf("B%04d", i)), District: "D01"}
		for ch := uint8(1); ch <= 16; ch++ {
			t.Channels = append(t.Channels, Channel{Channel: ch, Meter: wire.MeterID(fmt.Sprintf("%s-%02d", t.ID, ch)), Constant: 3200, Multiplier: 1})
		}
		ds.Terminals = append(ds.Terminals, t)
	}
	if err := s.Put(ds, true); err != nil {
		b.Fatal(err)
	}
	return s
}

func benchBatch(seq *uint64) []wire.Record {
	recs := make([]wire.Record, 0, 100)
	for range 10 {
		*seq++
		for i := range 10 {
			id := fmt.Sprintf("B%04d", i)
			r := wire.Record{Terminal: wire.TerminalID(id), Seq: *seq, Kind: wire.KindReading, TimeMS: 1_795_000_000_000 + int64(*seq)}
			for ch := uint8(1); ch <= 16; ch++ {
				r.Channels = append(r.Channels, wire.ChannelReading{Channel: ch, Meter: wire.MeterID(fmt.Sprintf("%s-%02d", id, ch)),
					Pulses: 3200 * *seq, EnergyWh: 1000 * int64(*seq), Constant: 3200, Multiplier: 1})
			}
			recs = append(recs, r)
		}
	}
	return recs
}

// BenchmarkApply100 stores a batch of 100 new 16-channel records in one transaction.
func BenchmarkApply100(b *testing.B) {
	for _, where := range []string{"memory", "file"} {
		b.Run(where, func(b *testing.B) {
			path := ":memory:"
			if where == "file" {
				path = b.TempDir() + "/ops.db" // fsync on every commit, as ops runs
			}
			s := benchStore(b, path)
			var seq uint64
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				recs := benchBatch(&seq)
				b.StartTimer()
				a, err := s.Apply(recs, 0, 1_795_000_000_000)
				if err != nil {
					b.Fatal(err)
				}
				if len(a.Stored) != 100 {
					b.Fatalf("stored %d, want 100", len(a.Stored))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/record")
		})
	}
}
