package handheld

import (
	"fmt"
	"testing"

	"github.com/meterlink/meterlink/wire"
)

// BenchmarkOutboxPut stores one 16-channel record received from a terminal, as onRadio does
// before the PUBACK: in memory, and in a file with fsync on every commit (the handheld's
// setting).
func BenchmarkOutboxPut(b *testing.B) {
	for _, where := range []string{"memory", "file"} {
		b.Run(where, func(b *testing.B) {
			path := ":memory:"
			if where == "file" {
				path = b.TempDir() + "/outbox.db"
			}
			o, err := openOutbox(path)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { o.close() })
			r := wire.Record{Terminal: "T0001", Kind: wire.KindReading, TimeMS: 1_795_000_000_000}
			for ch := uint8(1); ch <= 16; ch++ {
				r.Channels = append(r.Channels, wire.ChannelReading{Channel: ch, Meter: wire.MeterID(fmt.Sprintf("T0001-%02d", ch)),
					Pulses: 3200, EnergyWh: 1000, Constant: 3200, Multiplier: 1})
			}
			b.ReportAllocs()
			for b.Loop() {
				r.Seq++
				if added, err := o.put(r); err != nil || !added {
					b.Fatalf("put = %v, %v", added, err)
				}
			}
		})
	}
}
