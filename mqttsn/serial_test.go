package mqttsn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCRC16CheckValue(t *testing.T) {
	// CRC-16/CCITT-FALSE is pinned by its catalogue check value.
	if got := crc16(0xFFFF, []byte("123456789")); got != 0x29B1 {
		t.Errorf("crc16(\"123456789\") = %#04x, want 0x29B1", got)
	}
}

func TestAppendFrameGolden(t *testing.T) {
	tests := []struct {
		name string
		f    Frame
		hex  string
	}{
		{"PINGRESP to node 1", Frame{Dst: 1, Src: 0x42, Msg: []byte{0x02, 0x17}},
			"7E 00 01 00 42 02 02 17 5D 4E"},
		{"stuffed addresses", Frame{Dst: 0x7E7D, Src: 0x0001, Msg: []byte{0x03, 0x05, 0x00}},
			"7E 7D 5E 7D 5D 00 01 03 03 05 00 E6 60"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendFrame(nil, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, tt.hex); !bytes.Equal(got, want) {
				t.Errorf("AppendFrame = % X, want % X", got, want)
			}
		})
	}
	if _, err := AppendFrame(nil, Frame{Msg: make([]byte, 256)}); !errors.Is(err, ErrFrameTooLong) {
		t.Errorf("AppendFrame(256 bytes) = %v, want ErrFrameTooLong", err)
	}
}

func mustFrame(t testing.TB, f Frame) []byte {
	t.Helper()
	b, err := AppendFrame(nil, f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDeframerResync(t *testing.T) {
	good1 := Frame{Dst: 1, Src: 2, Msg: []byte{0x03, 0x05, 0x00}}
	good2 := Frame{Dst: 0x7E7E, Src: 0x7D7D, Msg: []byte{0x04, 0x7E, 0x7D, 0x7E}}
	corrupt := mustFrame(t, Frame{Dst: 1, Src: 2, Msg: []byte{0x02, 0x17}})
	corrupt[len(corrupt)-1] ^= 0x01
	truncated := mustFrame(t, good1)[:6]
	badLen := mustFrame(t, Frame{Dst: 1, Src: 2, Msg: []byte{0x05, 0x17}}) // Length 5 in a 2-byte message
	var stream []byte
	stream = append(stream, 0x00, 0x11, 0x7D, 0x22) // line noise before the first flag
	stream = append(stream, mustFrame(t, good1)...)
	stream = append(stream, corrupt...)
	stream = append(stream, truncated...)
	stream = append(stream, badLen...)
	stream = append(stream, mustFrame(t, good2)...)
	stream = append(stream, 0x7E, 0x00, 0x01, 0x00, 0x02, 0x01) // LEN 1: too short

	// Feed byte by byte and all at once: the same frames come out.
	for _, chunk := range []int{1, 7, len(stream)} {
		var d Deframer
		var got []Frame
		for i := 0; i < len(stream); i += chunk {
			d.Feed(stream[i:min(i+chunk, len(stream))], func(f Frame) { got = append(got, f) })
		}
		if diff := cmp.Diff([]Frame{good1, good2}, got); diff != "" {
			t.Errorf("chunk %d: frames (-want +got):\n%s", chunk, diff)
		}
		if d.Dropped() != 4 {
			t.Errorf("chunk %d: Dropped() = %d, want 4", chunk, d.Dropped())
		}
	}
}

// FuzzDeframe checks that the deframer never panics, that what it emits
// re-frames to a stream that yields the same frame, and that a good frame
// after any garbage is recovered. Seeds: testdata/fuzz/FuzzDeframe.
func FuzzDeframe(f *testing.F) {
	good := Frame{Dst: 0x0001, Src: 0x7E7D, Msg: []byte{0x03, 0x05, 0x00}}
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Deframer
		var got []Frame
		d.Feed(b, func(fr Frame) { got = append(got, fr) })
		for _, fr := range got {
			enc, err := AppendFrame(nil, fr)
			if err != nil {
				t.Fatalf("AppendFrame(%+v) = %v", fr, err)
			}
			var d2 Deframer
			var again []Frame
			d2.Feed(enc, func(fr Frame) { again = append(again, fr) })
			if diff := cmp.Diff([]Frame{fr}, again); diff != "" {
				t.Fatalf("re-framing mismatch (-want +got):\n%s", diff)
			}
		}
		got = nil
		d.Feed(mustFrame(t, good), func(fr Frame) { got = append(got, fr) })
		if len(got) == 0 || !cmp.Equal(got[len(got)-1], good) {
			t.Fatalf("good frame after garbage not recovered: %+v", got)
		}
	})
}

// serialLine returns the two ends of an in-memory serial line. Writes on
// one end pass through noise (if not nil) and are read at the other.
func serialLine(noise func([]byte) []byte) (a, b io.ReadWriteCloser) {
	ar, bw := io.Pipe()
	br, aw := io.Pipe()
	return &lineEnd{r: ar, w: aw, noise: noise}, &lineEnd{r: br, w: bw, noise: noise}
}

type lineEnd struct {
	r     *io.PipeReader
	w     *io.PipeWriter
	noise func([]byte) []byte
}

func (l *lineEnd) Read(p []byte) (int, error) { return l.r.Read(p) }

func (l *lineEnd) Write(p []byte) (int, error) {
	q := p
	if l.noise != nil {
		q = l.noise(append([]byte(nil), p...))
	}
	if _, err := l.w.Write(q); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (l *lineEnd) Close() error {
	l.r.Close()
	return l.w.Close()
}

func TestSerialConnDeadlineAndFiltering(t *testing.T) {
	a, b := serialLine(nil)
	ca, cb := NewSerialConn(a, 1), NewSerialConn(b, 2)
	defer ca.Close()
	defer cb.Close()
	if err := cb.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 300)
	if _, _, err := cb.ReadFrom(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadFrom past deadline = %v, want os.ErrDeadlineExceeded", err)
	}
	var ne net.Error
	if _, _, err := cb.ReadFrom(buf); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("ReadFrom error %v is not a net.Error timeout", err)
	}
	_ = cb.SetReadDeadline(time.Time{})
	for _, dst := range []NodeAddr{3, BroadcastNode, 2} { // node 3's frame is filtered out
		if _, err := ca.WriteTo([]byte{0x03, 0x05, byte(dst & 1)}, dst); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []byte{1, 0} {
		n, from, err := cb.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		if from != NodeAddr(1) || !bytes.Equal(buf[:n], []byte{0x03, 0x05, want}) {
			t.Errorf("ReadFrom = % X from %v", buf[:n], from)
		}
	}
	// A deadline set while ReadFrom waits wakes it.
	errc := make(chan error, 1)
	go func() {
		_, _, err := cb.ReadFrom(buf)
		errc <- err
	}()
	_ = cb.SetReadDeadline(time.Now())
	if err := <-errc; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("ReadFrom after SetReadDeadline(now) = %v", err)
	}
	if err := cb.Close(); err != nil {
		t.Error(err)
	}
	if _, _, err := cb.ReadFrom(buf); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadFrom after Close = %v, want net.ErrClosed", err)
	}
}

// TestClientGatewayOverNoisySerial runs the real client and gateway over
// radio framing on a line that corrupts one write in five.
func TestClientGatewayOverNoisySerial(t *testing.T) {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(7, 7))
	noise := func(p []byte) []byte {
		mu.Lock()
		defer mu.Unlock()
		if rng.Float64() < 0.2 {
			p[rng.IntN(len(p))] ^= byte(1 << rng.IntN(8))
		}
		return p
	}
	a, b := serialLine(noise)
	gwConn := NewSerialConn(a, 0x0001)
	var rec recorder
	cfg := GatewayConfig{RetryInterval: 50 * time.Millisecond, MaxRetries: 20, Logger: testLogger(t),
		Predefined: func(string) map[uint16]string { return map[uint16]string{1: "ml/rd/0042"} }}
	rec.hooks(&cfg)
	g, err := NewGateway(gwConn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- g.Run(ctx) }()
	var c *Client
	defer func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("Run() = %v", err)
		}
		gwConn.Close()
		if c != nil {
			c.Close()
		}
	}()

	c, err = NewClient(NewSerialConn(b, 0x0042), NodeAddr(0x0001), ClientConfig{
		ClientID: "mt-0042", RetryInterval: 50 * time.Millisecond, MaxRetries: 20, Logger: testLogger(t),
		Predefined: map[string]uint16{"ml/rd/0042": 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	connect(t, c)
	got := make(chan string, 10)
	if err := c.Subscribe(ctxT(t), "ml/cmd/0042", 1, func(_ string, p []byte) error {
		got <- string(p)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := c.Publish(ctxT(t), "ml/rd/0042", 1, fmt.Appendf(nil, "r%d", i)); err != nil {
			t.Fatalf("Publish %d = %v", i, err)
		}
	}
	if err := g.Publish(ctxT(t), "mt-0042", "ml/cmd/0042", 1, []byte("open")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m != "open" {
			t.Errorf("command %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("command not delivered")
	}
	pubs, _, _, _ := rec.snapshot()
	want := make([]string, 10)
	for i := range want {
		want[i] = fmt.Sprintf("mt-0042 ml/rd/0042 r%d", i)
	}
	if diff := cmp.Diff(want, pubs); diff != "" {
		t.Errorf("publications (-want +got):\n%s", diff)
	}
	for _, ci := range g.Clients() {
		if ci.Addr != NodeAddr(0x0042) {
			t.Errorf("client address %v, want node 0042", ci.Addr)
		}
	}
}
