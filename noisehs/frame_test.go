package noisehs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseHeader(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want Header
		err  error
	}{
		{"hs_init", []byte{1, 1, 1, 9}, Header{TypeHSInit, SuiteIKpsk2, 9}, nil},
		{"data with body", []byte{1, 3, 1, 0, 0xff}, Header{TypeData, SuiteIKpsk2, 0}, nil},
		{"unknown type parses", []byte{1, 0x7f, 1, 0}, Header{0x7f, SuiteIKpsk2, 0}, nil},
		{"empty", nil, Header{}, ErrTruncated},
		{"short", []byte{1, 1, 1}, Header{}, ErrTruncated},
		{"version 2", []byte{2, 1, 1, 0}, Header{}, ErrVersion},
		{"hybrid suite", []byte{1, 1, 2, 0}, Header{}, ErrSuite},
		{"gm suite", []byte{1, 1, 0x81, 0}, Header{}, ErrSuite},
		{"too long", append([]byte{1, 3, 1, 0}, make([]byte, MaxFrameLen)...), Header{}, ErrTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHeader(tt.in)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Errorf("ParseHeader(%x) = %v, %v, want %v, %v", tt.in, got, err, tt.want, tt.err)
			}
			if err == nil {
				if b := got.Bytes(); !bytes.Equal(b[:], tt.in[:4]) {
					t.Errorf("Bytes() = %x, want %x", b, tt.in[:4])
				}
			}
		})
	}
}

func TestParseFrames(t *testing.T) {
	f := newFixture(t)
	tr := handshake(t, f)
	hi, err := ParseHSInit(tr.init)
	if err != nil {
		t.Fatal(err)
	}
	if hi.SenderIdx != 0x11223344 || len(hi.Ephemeral) != 32 || len(hi.Static) != 48 || len(hi.Payload) != 48 {
		t.Errorf("ParseHSInit = %+v", hi)
	}
	hr, err := ParseHSResp(tr.resp)
	if err != nil {
		t.Fatal(err)
	}
	if hr.ReceiverIdx != 0x11223344 || hr.SenderIdx != 0x55667788 || len(hr.Payload) != 32 {
		t.Errorf("ParseHSResp = %+v", hr)
	}
	tests := []struct {
		name  string
		parse func([]byte) error
		in    []byte
		err   error
	}{
		{"hs_init short", func(b []byte) error { _, err := ParseHSInit(b); return err }, tr.init[:HSInitLen-1], ErrTruncated},
		{"hs_init as resp", func(b []byte) error { _, err := ParseHSResp(b); return err }, tr.init, ErrFrameType},
		{"hs_resp short", func(b []byte) error { _, err := ParseHSResp(b); return err }, tr.resp[:HSRespLen-1], ErrTruncated},
		{"hs_resp as data", func(b []byte) error { _, err := ParseData(b); return err }, tr.resp, ErrFrameType},
		{"data short", func(b []byte) error { _, err := ParseData(b); return err }, append([]byte{1, 3, 1, 0}, make([]byte, DataMinLen-5)...), ErrTruncated},
		{"data as hs_init", func(b []byte) error { _, err := ParseHSInit(b); return err }, append([]byte{1, 3, 1, 0}, make([]byte, 200)...), ErrFrameType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.parse(tt.in); !errors.Is(err, tt.err) {
				t.Errorf("parse = %v, want %v", err, tt.err)
			}
		})
	}
}

func tlv(typ byte, v []byte) []byte {
	b := []byte{typ}
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

func TestParseTLVs(t *testing.T) {
	next := append([]byte{9}, bytes.Repeat([]byte{0xee}, 32)...)
	wantNext := &OpsKeyNext{OpsKey: 9}
	copy(wantNext.Public[:], next[1:])
	tests := []struct {
		name string
		in   []byte
		want Extensions
		err  error
	}{
		{"empty", nil, Extensions{}, nil},
		{"ops key next", tlv(1, next), Extensions{OpsKeyNext: wantNext}, nil},
		{"broker token", tlv(2, []byte("tok")), Extensions{BrokerToken: []byte("tok")}, nil},
		{"empty broker token", tlv(2, nil), Extensions{BrokerToken: []byte{}}, nil},
		{"unknown ignored", append(tlv(0x7f, []byte("x")), tlv(1, next)...), Extensions{OpsKeyNext: wantNext}, nil},
		{"unknown critical", tlv(0x80, nil), Extensions{}, ErrCriticalTLV},
		{"unknown critical ff", tlv(0xff, []byte{1}), Extensions{}, ErrCriticalTLV},
		{"short header", []byte{1, 0}, Extensions{}, ErrTLV},
		{"short value", tlv(1, next)[:20], Extensions{}, ErrTLV},
		{"wrong length", tlv(1, next[:32]), Extensions{}, ErrTLV},
		{"duplicate", append(tlv(1, next), tlv(1, next)...), Extensions{}, ErrTLV},
		{"duplicate token", append(tlv(2, nil), tlv(2, nil)...), Extensions{}, ErrTLV},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTLVs(tt.in)
			if !errors.Is(err, tt.err) {
				t.Fatalf("ParseTLVs(%x) error = %v, want %v", tt.in, err, tt.err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseTLVs(%x) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	k := &OpsKeyNext{OpsKey: 2, Public: [32]byte{1, 2, 3}}
	p1 := Payload1{Epoch: 7, KID: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, HSCounter: 1 << 40, PDATimeMs: 1700000000000, Caps: 0, Ext: Extensions{OpsKeyNext: k}}
	b1, err := p1.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(b1) != payload1Fixed+36 {
		t.Errorf("payload1 is %d bytes, want %d", len(b1), payload1Fixed+36)
	}
	got1, err := ParsePayload1(b1)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p1, got1); diff != "" {
		t.Errorf("payload1 (-want +got):\n%s", diff)
	}
	p2 := Payload2{OpsTimeMs: 99, RekeyAfterMin: 60, RejectAfterMin: 75, Ext: Extensions{BrokerToken: []byte("t")}}
	b2, _ := p2.AppendBinary(nil)
	got2, err := ParsePayload2(b2)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p2, got2); diff != "" {
		t.Errorf("payload2 (-want +got):\n%s", diff)
	}
	// Truncation and extension of either payload are rejected.
	for _, b := range [][]byte{b1, b2} {
		parse := func(x []byte) error { _, err := ParsePayload1(x); return err }
		if len(b) == len(b2) {
			parse = func(x []byte) error { _, err := ParsePayload2(x); return err }
		}
		for n := range len(b) {
			if err := parse(b[:n]); err == nil {
				t.Errorf("truncation to %d of %x accepted", n, b)
			}
		}
		if err := parse(append(bytes.Clone(b), 0)); !errors.Is(err, ErrTrailing) {
			t.Errorf("extension = %v, want ErrTrailing", err)
		}
	}
}

func TestParseRecord(t *testing.T) {
	good, _ := appendRecord(nil, Record{Kind: KindAck, MsgID: [16]byte{1}, Body: []byte("abc")}, true)
	tests := []struct {
		name string
		in   []byte
		err  error
	}{
		{"padded", good, nil},
		{"unpadded", good[:recordFixed+3], nil},
		{"short", good[:recordFixed-1], ErrTruncated},
		{"body cut", good[:recordFixed+2], ErrTruncated},
		{"padding", append(bytes.Clone(good), 1), ErrPadding},
		{"kind 0", append([]byte{0}, good[1:]...), ErrKind},
		{"kind 0x3f", append([]byte{0x3f}, good[1:]...), ErrKind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRecord(tt.in)
			if !errors.Is(err, tt.err) {
				t.Fatalf("ParseRecord = %v, want %v", err, tt.err)
			}
			if err == nil && string(r.Body) != "abc" {
				t.Errorf("body %q, want abc", r.Body)
			}
		})
	}
}

// Fuzz targets (T19). Seeds live in testdata/fuzz/ and run on every go test.

func FuzzParseHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err == nil {
			if hb := h.Bytes(); !bytes.Equal(hb[:], b[:4]) {
				t.Fatalf("Bytes() = %x, want %x", hb, b[:4])
			}
		}
	})
}

func FuzzParseFrame(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := ParseHSInit(b); err == nil && len(h.Ephemeral)+len(h.Static)+len(h.Payload)+8 != len(b) {
			t.Fatal("hs_init fields do not cover the frame")
		}
		if h, err := ParseHSResp(b); err == nil && len(h.Ephemeral)+len(h.Payload)+12 != len(b) {
			t.Fatal("hs_resp fields do not cover the frame")
		}
		if d, err := ParseData(b); err == nil && len(d.Ciphertext)+16 != len(b) {
			t.Fatal("data fields do not cover the frame")
		}
	})
}

func FuzzParseTLVs(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseTLVs(b)
		if err != nil {
			return
		}
		out, err := e.appendTLVs(nil)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseTLVs(out)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if diff := cmp.Diff(e, again); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

func FuzzParsePayload1(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePayload1(b)
		if err != nil {
			return
		}
		out, err := p.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParsePayload1(out)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if diff := cmp.Diff(p, again); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

func FuzzParsePayload2(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePayload2(b)
		if err != nil {
			return
		}
		out, err := p.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParsePayload2(out)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if diff := cmp.Diff(p, again); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

func FuzzParseRecord(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRecord(b)
		if err != nil {
			return
		}
		out, err := appendRecord(nil, r, false)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, b[:len(out)]) {
			t.Fatalf("re-encoded %x, want prefix of %x", out, b)
		}
	})
}

// FuzzReadHSInit drives ops' HS_INIT handler with arbitrary frames.
func FuzzReadHSInit(f *testing.F) {
	fx := newFixture(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ReadHSInit(fx.respConfig(), b)
		if err != nil {
			return
		}
		// Only frames made with S_ops public can get here; answer them.
		if _, _, err := r.Respond(fx.lookup, fx.payload2()); err != nil && !errors.Is(err, ErrUnknownSID) {
			t.Fatalf("Respond: %v", err)
		}
	})
}

// FuzzReadHSResp drives the PDA's HS_RESP handler with arbitrary frames.
func FuzzReadHSResp(f *testing.F) {
	fx := newFixture(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		i, err := NewInitiator(fx.initConfig())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = i.ReadHSResp(b) // must not panic
	})
}

// FuzzOpen drives a session's DATA handler with arbitrary frames. Only
// frames sealed under the session's keys open (seed0 is one), and never twice.
func FuzzOpen(f *testing.F) {
	fx := newFixture(f)
	c := &clock{t: testNow}
	_, ops := sessions(f, fx, c)
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := ops.Open(testTopicUp, fx.pdaID, b); err != nil {
			return
		}
		if _, err := ops.Open(testTopicUp, fx.pdaID, b); !errors.Is(err, ErrReplay) {
			t.Fatalf("frame %x opened twice (%v)", b, err)
		}
	})
}
