package dlt645

import "testing"

// benchReply is a meter's reply to a read of total forward active energy: DI + 4 BCD bytes.
func benchReply() Frame {
	addr := MustParseAddress("000000123456")
	di := EnergyDI(0x01, 0x00, 0x00)
	req := ReadData(addr, di)
	return req.Reply(addr, append(di.Append(nil), 0x78, 0x56, 0x34, 0x12))
}

func BenchmarkDecode(b *testing.B) {
	p := benchReply().AppendPreamble(nil, 4)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Decode(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppend(b *testing.B) {
	f := benchReply()
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = f.Append(buf[:0])
	}
}

// BenchmarkReadReply decodes a reply frame and its energy value, as the terminal's poller does.
func BenchmarkReadReply(b *testing.B) {
	p := benchReply().Append(nil)
	b.ReportAllocs()
	for b.Loop() {
		f, _, err := Decode(p)
		if err != nil {
			b.Fatal(err)
		}
		di, data, err := ParseReadReply(f)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecodeValue(di, data); err != nil {
			b.Fatal(err)
		}
	}
}
