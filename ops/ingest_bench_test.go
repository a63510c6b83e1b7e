package ops

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/meterlink/meterlink/wire"
)

// benchTerminal has all 16 channels, as the demo terminals do.
func benchTerminal(id string) (Terminal, []Meter) {
	t := Terminal{ID: wire.TerminalID(id), District: "D01"}
	var ms []Meter
	for ch := uint8(1); ch <= 16; ch++ {
		m := wire.MeterID(fmt.Sprintf("%s-%02d", id, ch))
		t.Channels = append(t.Channels, Channel{Channel: ch, Meter: m, Constant: 3200, Multiplier: 1})
		ms = append(ms, Meter{ID: m, Terminal: t.ID, Channel: ch})
	}
	return t, ms
}

func benchReadings(id string, seq uint64, ts int64) wire.Record {
	r := wire.Record{Terminal: wire.TerminalID(id), Seq: seq, Kind: wire.KindReading, TimeMS: ts}
	for ch := uint8(1); ch <= 16; ch++ {
		r.Channels = append(r.Channels, wire.ChannelReading{Channel: ch, Meter: wire.MeterID(fmt.Sprintf("%s-%02d", id, ch)),
			Pulses: 3200 * seq, EnergyWh: 1000 * int64(seq), Constant: 3200, Multiplier: 1})
	}
	return r
}

// BenchmarkHandleUp40 is ops' ingest of one sealed batch of 40 new 16-channel records from
// 10 terminals: open, decode, one store transaction (in memory: no fsync), the sealed ack and
// 40 reading events queued (and drained here, as Run's publisher would). 40 records (~62 KB
// of JSON) is about the most one SECLINK record carries (noisehs.MaxBody); a batch of 100 is
// refused by the PDA's seal (docs/performance.md).
func BenchmarkHandleUp40(b *testing.B) {
	o, err := New(testConfig(), testLog())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { o.Close() })
	ds := testDataset()
	for i := range 10 {
		t, ms := benchTerminal(fmt.Sprintf("B%04d", i))
		ds.Terminals = append(ds.Terminals, t)
		ds.Meters = append(ds.Meters, ms...)
	}
	if err := o.Provision(context.Background(), ds); err != nil {
		b.Fatal(err)
	}
	p := connected(b, o, "P01", sidP01)
	ctx := context.Background()
	ts := time.Now().UnixMilli()
	var seq uint64
	b.ReportAllocs()
	for b.Loop() {
		bt := batch(fmt.Sprintf("H01-%d", seq), nil...)
		for range 4 {
			seq++
			for i := range 10 {
				bt.Records = append(bt.Records, benchReadings(fmt.Sprintf("B%04d", i), seq, ts))
			}
		}
		tp, f := p.batch(bt)
		if err := o.HandleUp(ctx, tp, f); err != nil {
			b.Fatal(err)
		}
		if out := drain(o); len(out) != 41 {
			b.Fatalf("%d publications, want 40 reading events and an ack", len(out))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/40, "ns/record")
}
