package terminal

import (
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkPulse counts pulses over 10,000 channels (625 terminals × 16) in one process, as
// `meterlink terminal -terminals 625` would: in memory (CounterSync off, counters saved at
// each collection) and with every pulse stored before Pulse returns (CounterSync on).
func BenchmarkPulse(b *testing.B) {
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync=%v", sync), func(b *testing.B) {
			n := 625
			if sync {
				n = 4 // each pulse is an fsync'd transaction: the store, not the channel count, bounds it
			}
			terms := make([]*Terminal, n)
			for i := range terms {
				cfg := testConfig(b, ":memory:")
				cfg.ID = fmt.Sprintf("T%04d", i+1)
				cfg.CounterSync = sync
				if sync {
					cfg.StorePath = filepath.Join(b.TempDir(), cfg.ID+".db")
				}
				cfg.Channels = nil
				for ch := uint8(1); ch <= 16; ch++ {
					cfg.Channels = append(cfg.Channels, ChannelConfig{Channel: ch, Meter: fmt.Sprintf("M%d", ch), Constant: 3200})
				}
				t, err := New(cfg, discard())
				if err != nil {
					b.Fatal(err)
				}
				defer t.Close()
				terms[i] = t
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t := terms[i%len(terms)]
				if err := t.Pulse(uint8(i%16)+1, 1); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pulses/s")
		})
	}
}
