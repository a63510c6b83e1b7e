package wire

import (
	"encoding/json"
	"fmt"
	"testing"
)

// benchRecord is a terminal's reading record with all 16 channels, the payload of every
// radio-readings message.
func benchRecord() Record {
	r := Record{Terminal: "T0001", Seq: 123456, Kind: KindReading, TimeMS: 1_795_000_000_000}
	for ch := uint8(1); ch <= 16; ch++ {
		r.Channels = append(r.Channels, ChannelReading{
			Channel: ch, Meter: MeterID(fmt.Sprintf("T0001-%02d", ch)), Pulses: 987_654 + uint64(ch),
			EnergyWh: 12_345_678, Constant: 3200, Multiplier: 1,
		})
	}
	return r
}

func BenchmarkMarshalRadio(b *testing.B) {
	r := benchRecord()
	p, err := MarshalRadio(r)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := MarshalRadio(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalRadio(b *testing.B) {
	p, err := MarshalRadio(benchRecord())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := UnmarshalRadio(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBatchJSON encodes a handheld batch of 100 16-channel records as the handheld sends
// it upstream; bytes/record shows how many records fit in a broker's 64 KiB packet.
func BenchmarkBatchJSON(b *testing.B) {
	bt := Batch{V: Version, ID: "H01-1", Handheld: "H01"}
	for i := range 100 {
		r := benchRecord()
		r.Seq += uint64(i)
		bt.Records = append(bt.Records, r)
	}
	p, err := json.Marshal(bt)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(bt); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(p))/100, "bytes/record")
}
