package dlt645

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in      string
		want    Address
		wantErr error
	}{
		{in: "000000000161", want: Address{0x61, 0x01, 0, 0, 0, 0}},
		{in: "558890213594", want: Address{0x94, 0x35, 0x21, 0x90, 0x88, 0x55}},
		{in: "999999999999", want: BroadcastAddress()},
		{in: "AAAAAAAAAAAA", want: WildcardAddress()},
		{in: "aaaaaaaaa123", want: Address{0x23, 0xA1, 0xAA, 0xAA, 0xAA, 0xAA}},
		{in: "00000000016", wantErr: ErrAddress},
		{in: "0000000001610", wantErr: ErrAddress},
		{in: "00000000016B", wantErr: ErrAddress},
		{in: "", wantErr: ErrAddress},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseAddress(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseAddress(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got != tt.want {
				t.Errorf("ParseAddress(%q) = % X, want % X", tt.in, got, tt.want)
			}
			if s := got.String(); s != bytesToUpper(tt.in) {
				t.Errorf("String() = %q, want %q", s, bytesToUpper(tt.in))
			}
		})
	}
}

func bytesToUpper(s string) string { return string(bytes.ToUpper([]byte(s))) }

func TestAddressMatches(t *testing.T) {
	meter := MustParseAddress("123456789123")
	tests := []struct {
		req  string
		want bool
	}{
		{"123456789123", true},
		{"123456789124", false},
		{"AAAAAAAAAAAA", true},
		{"AAAAAAAAA123", true}, // short addressing
		{"AAAAAAAAA124", false},
		{"999999999999", true},
	}
	for _, tt := range tests {
		t.Run(tt.req, func(t *testing.T) {
			if got := MustParseAddress(tt.req).Matches(meter); got != tt.want {
				t.Errorf("%s.Matches(%s) = %v, want %v", tt.req, meter, got, tt.want)
			}
		})
	}
	if !BroadcastAddress().IsBroadcast() || !WildcardAddress().IsWildcard() || meter.IsBroadcast() || meter.IsWildcard() {
		t.Error("IsBroadcast/IsWildcard wrong")
	}
}

func TestDecodeErrors(t *testing.T) {
	good := "68 61 01 00 00 00 00 68 91 08 33 33 34 33 59 33 33 33 8A 16"
	tests := []struct {
		name    string
		in      string
		wantErr error
	}{
		{"empty", "", ErrShort},
		{"only preamble", "FE FE FE", ErrShort},
		{"first byte not 68", "FE 67 61 01", ErrFraming},
		{"garbage before 68", "00 68 61 01 00 00 00 00 68 11 04 33 33 34 33 14 16", ErrFraming},
		{"second 68 missing", "68 61 01 00 00 00 00 69 91 08", ErrFraming},
		{"header cut", "68 61 01 00 00 00 00 68 91", ErrShort},
		{"data cut", "68 61 01 00 00 00 00 68 91 08 33 33 34 33 59", ErrShort},
		{"CS missing", "68 61 01 00 00 00 00 68 91 08 33 33 34 33 59 33 33 33", ErrShort},
		{"terminator missing", "68 61 01 00 00 00 00 68 91 08 33 33 34 33 59 33 33 33 8A", ErrShort},
		{"bad terminator", "68 61 01 00 00 00 00 68 91 08 33 33 34 33 59 33 33 33 8A 17", ErrFraming},
		{"bad checksum", "68 61 01 00 00 00 00 68 91 08 33 33 34 33 59 33 33 33 8B 16", ErrChecksum},
		{"flipped data bit", "68 61 01 00 00 00 00 68 91 08 33 33 34 33 58 33 33 33 8A 16", ErrChecksum},
		{"good", good, nil},
		{"good with trailing bytes", good + " 68 00", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := hx(t, tt.in)
			_, n, err := Decode(b)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Decode(% X) error = %v, want %v", b, err, tt.wantErr)
			}
			if err != nil && n != 0 {
				t.Errorf("Decode(% X) consumed %d on error, want 0", b, n)
			}
			if err == nil && n != 20 {
				t.Errorf("Decode(% X) consumed %d, want 20", b, n)
			}
		})
	}
}

func TestDecodeDoesNotAlias(t *testing.T) {
	b := hx(t, "68 61 01 00 00 00 00 68 91 08 33 33 34 33 59 33 33 33 8A 16")
	f := decodeAll(t, b)
	clear(b)
	if want := []byte{0, 0, 1, 0, 0x26, 0, 0, 0}; !cmp.Equal(want, f.Data) {
		t.Errorf("Data = % X after clearing input, want % X", f.Data, want)
	}
}

func TestAppendPanicsOnLongData(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Append with 256 data bytes did not panic")
		}
	}()
	Frame{Data: make([]byte, MaxData+1)}.Append(nil)
}

func TestAppendMaxData(t *testing.T) {
	f := Frame{Addr: addr161, Control: 0x91, Data: bytes.Repeat([]byte{0xCD}, MaxData)}
	b := f.Append([]byte{1, 2})
	if len(b) != 2+MinFrameLen+MaxData || b[0] != 1 {
		t.Fatalf("Append gave %d bytes", len(b))
	}
	if diff := cmp.Diff(f, decodeAll(t, b[2:])); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestControlBits(t *testing.T) {
	tests := []struct {
		control            byte
		reply, isErr, more bool
		function           byte
	}{
		{0x11, false, false, false, 0x11},
		{0x91, true, false, false, 0x11},
		{0xB1, true, false, true, 0x11},
		{0xD1, true, true, false, 0x11},
		{0x81, true, false, false, 0x01},
		{0xC1, true, true, false, 0x01},
		{0x51, false, false, false, 0x11}, // error bit without direction is not a reply
	}
	for _, tt := range tests {
		f := Frame{Control: tt.control}
		got := []any{f.IsReply(), f.IsError(), f.MoreFollows(), f.Function()}
		want := []any{tt.reply, tt.isErr, tt.more, tt.function}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("control %02x: IsReply, IsError, MoreFollows, Function (-want +got):\n%s", tt.control, diff)
		}
	}
}

func TestMeterErrorString(t *testing.T) {
	e := &MeterError{Addr: addr161, Control: 0xD4, Code: CodeUnauthorized | CodeOther}
	want := "dlt645: meter 000000000161 replied d4: other error, wrong password or unauthorised"
	if got := e.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(e, ErrUnauthorized) || errors.Is(e, ErrNoData) {
		t.Error("errors.Is on named bits is wrong")
	}
	if (Frame{Control: 0x91}).Err() != nil {
		t.Error("Err() of a normal reply is not nil")
	}
}

// stream concatenates vectors with garbage between them.
func stream(t *testing.T, parts ...string) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, hx(t, p)...)
	}
	return b
}

func TestReaderResync(t *testing.T) {
	v2 := "68 61 01 00 00 00 00 68 91 08 33 33 34 33 59 33 33 33 8A 16"
	v8 := "FE FE FE FE 68 94 35 21 90 88 55 68 93 06 C7 68 54 C3 BB 88 49 16"
	badCS := "68 01 72 00 72 00 00 68 91 08 33 33 34 33 33 33 33 33 E8 16"
	v13 := "68 01 72 00 72 00 00 68 91 08 33 33 34 33 33 33 33 33 E7 16"
	tests := []struct {
		name  string
		in    []byte
		want  []string // vectors expected, in order
		trail error
	}{
		{"back to back", stream(t, v2, v8, v13), []string{v2, v8, v13}, io.EOF},
		{"leading garbage", stream(t, "00 11 22 68 68 16", v2), []string{v2}, io.EOF},
		{"bad checksum dropped", stream(t, badCS, v13), []string{v13}, io.EOF},
		{"stray 68 with huge L before frame", stream(t, "68 00 00 00 00 00 00 68 11 FF", v8), []string{v8}, io.EOF},
		{"truncated frame then frame", stream(t, "68 61 01 00 00 00 00 68 91 08 33", v2), []string{v2}, io.EOF},
		{"truncated at end", stream(t, v2, "FE FE 68 61 01 00"), []string{v2}, io.ErrUnexpectedEOF},
		{"garbage only", stream(t, "01 02 03 16 16"), nil, io.EOF},
		{"preamble at end", stream(t, v2, "FE FE"), []string{v2}, io.EOF},
	}
	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"data+EOF": iotest.DataErrReader,
	}
	for _, tt := range tests {
		for rname, wrap := range readers {
			t.Run(tt.name+"/"+rname, func(t *testing.T) {
				r := NewReader(wrap(bytes.NewReader(tt.in)))
				var got []Frame
				var err error
				for {
					var f Frame
					if f, err = r.ReadFrame(); err != nil {
						break
					}
					got = append(got, f)
				}
				if !errors.Is(err, tt.trail) {
					t.Errorf("final error = %v, want %v", err, tt.trail)
				}
				var want []Frame
				for _, v := range tt.want {
					want = append(want, decodeAll(t, hx(t, v)))
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("frames (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestReaderDiscarded(t *testing.T) {
	in := stream(t, "FE FE 01 02", "68 61 01 00 00 00 00 68 91 08 33 33 34 33 59 33 33 33 8A 16")
	r := NewReader(bytes.NewReader(in))
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if got := r.Discarded(); got != 2 {
		t.Errorf("Discarded() = %d, want 2 (FE preamble is not garbage)", got)
	}
}

func TestReaderKeepsBytesAcrossErrors(t *testing.T) {
	v2 := hx(t, "68 61 01 00 00 00 00 68 91 08 33 33 34 33 59 33 33 33 8A 16")
	r := NewReader(iotest.TimeoutReader(bytes.NewReader(v2[:5])))
	if _, err := r.ReadFrame(); !errors.Is(err, iotest.ErrTimeout) {
		t.Fatalf("ReadFrame error = %v, want timeout", err)
	}
	r.r = bytes.NewReader(v2[5:])
	f, err := r.ReadFrame()
	if err != nil {
		t.Fatalf("ReadFrame after timeout: %v", err)
	}
	if diff := cmp.Diff(decodeAll(t, v2), f); diff != "" {
		t.Errorf("frame (-want +got):\n%s", diff)
	}
}

func TestSplitScanner(t *testing.T) {
	v2 := "68 61 01 00 00 00 00 68 91 08 33 33 34 33 59 33 33 33 8A 16"
	v8 := "FE FE FE FE 68 94 35 21 90 88 55 68 93 06 C7 68 54 C3 BB 88 49 16"
	s := bufio.NewScanner(bytes.NewReader(stream(t, "00 68 01", v2, "16", v8, "68 01")))
	s.Split(Split)
	var got []Frame
	for s.Scan() {
		got = append(got, decodeAll(t, s.Bytes()))
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	want := []Frame{decodeAll(t, hx(t, v2)), decodeAll(t, hx(t, v8))}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("frames (-want +got):\n%s", diff)
	}
}
