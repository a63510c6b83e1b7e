package mqttsn

import (
	"bytes"
	"testing"
)

// benchPublish is a terminal's QoS 1 reading: a predefined topic and a ~250-byte radio record.
func benchPublish() *Publish {
	return &Publish{QoS: QoS1, TopicIDType: TopicPredefined, TopicID: 1, MsgID: 42, Data: bytes.Repeat([]byte{0x5A}, 250)}
}

func BenchmarkDecodePublish(b *testing.B) {
	p, err := Append(nil, benchPublish())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendPublish(b *testing.B) {
	pk := benchPublish()
	buf := make([]byte, 0, 512)
	b.SetBytes(int64(Len(pk)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = Append(buf[:0], pk); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodePuback(b *testing.B) {
	p, err := Append(nil, &Puback{TopicID: 1, MsgID: 42})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeConnect(b *testing.B) {
	p, err := Append(nil, &Connect{CleanSession: true, Duration: 60, ClientID: "T0001"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(p); err != nil {
			b.Fatal(err)
		}
	}
}
