package noisehs

import (
	"testing"
)

// BenchmarkHandshake is one full IK round trip: HS_INIT, ops reading it and
// writing HS_RESP, and the PDA reading HS_RESP, with both key schedules.
func BenchmarkHandshake(b *testing.B) {
	f := newFixture(b)
	b.ReportAllocs()
	for b.Loop() {
		ic := f.initConfig()
		ic.Rand = nil
		rc := f.respConfig()
		rc.Rand = nil
		i, err := NewInitiator(ic)
		if err != nil {
			b.Fatal(err)
		}
		r, err := ReadHSInit(rc, i.HSInit())
		if err != nil {
			b.Fatal(err)
		}
		resp, _, err := r.Respond(f.lookup, f.payload2())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := i.ReadHSResp(resp); err != nil {
			b.Fatal(err)
		}
	}
}

var benchBody = make([]byte, 256)

func BenchmarkSeal(b *testing.B) {
	f := newFixture(b)
	c := &clock{t: testNow}
	pda, _ := sessions(b, f, c)
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := pda.Seal(testTopicUp, Record{Kind: KindApp, Body: benchBody}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	f := newFixture(b)
	c := &clock{t: testNow}
	pda, ops := sessions(b, f, c)
	const n = 4096
	frames := make([][]byte, n)
	for i := range frames {
		frames[i], _ = pda.Seal(testTopicUp, Record{Kind: KindApp, Body: benchBody})
	}
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == n {
			// Fresh session state so the frames open again.
			b.StopTimer()
			_, ops = sessions(b, f, c)
			i = 0
			b.StartTimer()
		}
		if _, err := ops.Open(testTopicUp, f.pdaID, frames[i]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
