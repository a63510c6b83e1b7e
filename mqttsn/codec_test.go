package mqttsn

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// longPublish returns a QoS 1 PUBLISH with n data bytes and its encoding
// with the header given.
func longPublish(n int, header string) (Packet, string) {
	data := bytes.Repeat([]byte{0x55}, n)
	return &Publish{QoS: QoS1, TopicID: 1, MsgID: 2, Data: data},
		header + " 20 00 01 00 02" + strings.Repeat(" 55", n)
}

// goldenCases are the worked examples of docs/mqtt-sn.md §15, plus one
// case for every other message type.
func goldenCases() []struct {
	name string
	hex  string
	p    Packet
} {
	pub248, hex248 := longPublish(248, "FF 0C")
	pub249, hex249 := longPublish(249, "01 01 02 0C")
	return []struct {
		name string
		hex  string
		p    Packet
	}{
		{"SEARCHGW r=0", "03 01 00", &SearchGW{Radius: 0}},
		{"GWINFO GwId 1", "03 02 01", &GWInfo{GwID: 1}},
		{"ADVERTISE GwId 1 900s", "05 00 01 03 84", &Advertise{GwID: 1, Duration: 900}},
		{"CONNECT Will+Clean 60 mt-0001", "0D 04 0C 01 00 3C 6D 74 2D 30 30 30 31",
			&Connect{Will: true, CleanSession: true, Duration: 60, ClientID: "mt-0001"}},
		{"WILLTOPICREQ", "02 06", &WillTopicReq{}},
		{"WILLMSGREQ", "02 08", &WillMsgReq{}},
		{"empty WILLTOPIC", "02 07", &WillTopic{}},
		{"CONNACK ok", "03 05 00", &Connack{ReturnCode: Accepted}},
		{"REGISTER client", "10 0A 00 00 00 01 6D 6C 2F 72 64 2F 30 30 30 31",
			&Register{TopicID: 0, MsgID: 1, TopicName: "ml/rd/0001"}},
		{"REGACK id 1", "07 0B 00 01 00 01 00", &Regack{TopicID: 1, MsgID: 1}},
		{"PUBACK id 1", "07 0D 00 01 00 01 00", &Puback{TopicID: 1, MsgID: 1}},
		{"PUBLISH QoS 1", "11 0C 20 00 01 00 02 6B 57 68 3D 31 32 33 34 2E 35",
			&Publish{QoS: QoS1, TopicID: 1, MsgID: 2, Data: []byte("kWh=1234.5")}},
		{"PUBLISH QoS 0 short", "09 0C 02 72 64 00 00 34 32",
			&Publish{QoS: QoS0, TopicIDType: TopicShort, TopicID: 0x7264, Data: []byte("42")}},
		{"PUBLISH QoS -1 predefined", "09 0C 61 00 01 00 00 34 32",
			&Publish{QoS: QoSMinus1, TopicIDType: TopicPredefined, TopicID: 1, Data: []byte("42")}},
		{"PUBACK invalid topic id", "07 0D 00 09 00 00 02",
			&Puback{TopicID: 9, ReturnCode: RejectedInvalidTopicID}},
		{"PUBLISH QoS 2 DUP", "08 0C C0 00 01 00 07 78",
			&Publish{DUP: true, QoS: QoS2, TopicID: 1, MsgID: 7, Data: []byte("x")}},
		{"PUBREC", "04 0F 00 07", &Pubrec{MsgID: 7}},
		{"PUBREL", "04 10 00 07", &Pubrel{MsgID: 7}},
		{"PUBCOMP", "04 0E 00 07", &Pubcomp{MsgID: 7}},
		{"SUBSCRIBE QoS 1 wildcard", "0D 12 20 00 03 6D 6C 2F 63 6D 64 2F 2B",
			&Subscribe{QoS: QoS1, MsgID: 3, TopicName: "ml/cmd/+"}},
		{"SUBACK wildcard", "08 13 20 00 00 00 03 00", &Suback{QoS: QoS1, MsgID: 3}},
		{"REGISTER gateway", "11 0A 00 02 00 01 6D 6C 2F 63 6D 64 2F 30 30 30 31",
			&Register{TopicID: 2, MsgID: 1, TopicName: "ml/cmd/0001"}},
		{"SUBACK unknown predefined", "08 13 20 00 0A 00 05 02",
			&Suback{QoS: QoS1, TopicID: 10, MsgID: 5, ReturnCode: RejectedInvalidTopicID}},
		{"PINGREQ", "02 16", &Pingreq{}},
		{"PINGREQ wake-up", "09 16 6D 74 2D 30 30 30 31", &Pingreq{ClientID: "mt-0001"}},
		{"PINGRESP", "02 17", &Pingresp{}},
		{"DISCONNECT sleep 300", "04 18 01 2C", &Disconnect{HasDuration: true, Duration: 300}},
		{"DISCONNECT", "02 18", &Disconnect{}},
		{"Encapsulated CONNACK", "04 FE 00 37 03 05 00",
			&Encapsulated{NodeID: []byte{0x37}, Inner: &Connack{}}},
		{"PUBLISH 248 data bytes", hex248, pub248},
		{"PUBLISH 249 data bytes", hex249, pub249},
		// Not in §15: the remaining message types.
		{"GWINFO with GwAdd", "05 02 01 C0 A8", &GWInfo{GwID: 1, GwAdd: []byte{0xC0, 0xA8}}},
		{"CONNACK congestion", "03 05 01", &Connack{ReturnCode: RejectedCongestion}},
		{"WILLTOPIC QoS 1 retain", "06 07 30 6C 2F 77", &WillTopic{QoS: QoS1, Retain: true, Topic: "l/w"}},
		{"WILLMSG", "05 09 6F 66 66", &WillMsg{Msg: []byte("off")}},
		{"SUBSCRIBE predefined", "07 12 A1 00 04 00 0A",
			&Subscribe{DUP: true, QoS: QoS1, TopicIDType: TopicPredefined, MsgID: 4, TopicID: 10}},
		{"SUBSCRIBE short", "07 12 02 00 04 72 64",
			&Subscribe{TopicIDType: TopicShort, MsgID: 4, TopicID: 0x7264}},
		{"UNSUBSCRIBE name", "08 14 00 00 05 61 2F 62", &Unsubscribe{MsgID: 5, TopicName: "a/b"}},
		{"UNSUBSCRIBE predefined", "07 14 01 00 05 00 0A",
			&Unsubscribe{TopicIDType: TopicPredefined, MsgID: 5, TopicID: 10}},
		{"UNSUBACK", "04 15 00 05", &Unsuback{MsgID: 5}},
		{"WILLTOPICUPD", "05 1A 00 6C 2F", &WillTopicUpd{Topic: "l/"}},
		{"empty WILLTOPICUPD", "02 1A", &WillTopicUpd{}},
		{"WILLTOPICRESP", "03 1B 00", &WillTopicResp{}},
		{"WILLMSGUPD", "04 1C 6F 6E", &WillMsgUpd{Msg: []byte("on")}},
		{"WILLMSGRESP not supported", "03 1D 03", &WillMsgResp{ReturnCode: RejectedNotSupported}},
		{"Encapsulated radius 2 PUBLISH", "05 FE 02 00 37 09 0C 61 00 01 00 00 34 32",
			&Encapsulated{Radius: 2, NodeID: []byte{0x00, 0x37},
				Inner: &Publish{QoS: QoSMinus1, TopicIDType: TopicPredefined, TopicID: 1, Data: []byte("42")}}},
	}
}

func TestDecodeGolden(t *testing.T) {
	for _, tt := range goldenCases() {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(unhex(t, tt.hex))
			if err != nil {
				t.Fatalf("Decode(%s) error: %v", tt.hex, err)
			}
			if diff := cmp.Diff(tt.p, got); diff != "" {
				t.Errorf("Decode(%s) mismatch (-want +got):\n%s", tt.hex, diff)
			}
		})
	}
}

func TestAppendGolden(t *testing.T) {
	for _, tt := range goldenCases() {
		t.Run(tt.name, func(t *testing.T) {
			want := unhex(t, tt.hex)
			got, err := Append(nil, tt.p)
			if err != nil {
				t.Fatalf("Append(%#v) error: %v", tt.p, err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Append(%#v) =\n% X\nwant\n% X", tt.p, got, want)
			}
			if n := Len(tt.p); n != len(want) {
				t.Errorf("Len = %d, want %d", n, len(want))
			}
		})
	}
}

func TestAppendKeepsPrefix(t *testing.T) {
	got, err := Append([]byte{0xAA}, &Pingresp{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0xAA, 0x02, 0x17}; !bytes.Equal(got, want) {
		t.Errorf("Append = % X, want % X", got, want)
	}
}

// TestAppendLengthForms checks pitfall 1: never the short form at 256
// bytes or more, so 256 and 257 are never emitted.
func TestAppendLengthForms(t *testing.T) {
	for n := 240; n <= 260; n++ {
		b, err := Append(nil, &Publish{QoS: QoS1, TopicID: 1, MsgID: 1, Data: make([]byte, n)})
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case len(b) == 256 || len(b) == 257:
			t.Errorf("data %d: emitted %d bytes", n, len(b))
		case len(b) <= 255 && int(b[0]) != len(b):
			t.Errorf("data %d: short length %d, message %d", n, b[0], len(b))
		case len(b) > 255 && (b[0] != 0x01 || int(be16(b[1:])) != len(b)):
			t.Errorf("data %d: long header % X, message %d", n, b[:3], len(b))
		}
		if _, err := Decode(b); err != nil {
			t.Errorf("data %d: Decode(Append) error: %v", n, err)
		}
	}
}

func TestDecodeLongFormAnySize(t *testing.T) {
	tests := []struct {
		name string
		hex  string
		want Packet
	}{
		{"CONNACK", "01 00 05 05 00", &Connack{}},
		{"PINGRESP", "01 00 04 17", &Pingresp{}},
		{"PUBLISH", "01 00 0B 0C 02 72 64 00 00 34 32",
			&Publish{TopicIDType: TopicShort, TopicID: 0x7264, Data: []byte("42")}},
		{"Encapsulated", "01 00 06 FE 00 37 03 05 00", &Encapsulated{NodeID: []byte{0x37}, Inner: &Connack{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(unhex(t, tt.hex))
			if err != nil {
				t.Fatalf("Decode(%s) error: %v", tt.hex, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decode(%s) mismatch (-want +got):\n%s", tt.hex, diff)
			}
		})
	}
}

func TestDecodeIgnoresMsgIDAtQoS0(t *testing.T) {
	got, err := Decode(unhex(t, "09 0C 02 72 64 12 34 34 32"))
	if err != nil {
		t.Fatal(err)
	}
	if id := got.(*Publish).MsgID; id != 0 {
		t.Errorf("MsgID = %#x, want 0", id)
	}
	b, err := Append(nil, &Publish{TopicIDType: TopicShort, TopicID: 0x7264, MsgID: 0x1234})
	if err != nil {
		t.Fatal(err)
	}
	if want := unhex(t, "07 0C 02 72 64 00 00"); !bytes.Equal(b, want) {
		t.Errorf("Append QoS 0 with MsgID = % X, want % X", b, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		hex  string
		want error
	}{
		{"empty", "", ErrTruncated},
		{"one byte", "02", ErrTruncated},
		{"length longer than datagram", "03 17", ErrLength},
		{"length shorter than datagram", "02 17 00", ErrLength},
		{"length zero", "00 17", ErrLength},
		{"short length one byte", "01 17", ErrTruncated},
		{"long truncated", "01 00 04", ErrTruncated},
		{"long length below header", "01 00 03 17", ErrLength},
		{"long length mismatch", "01 00 05 17", ErrLength},
		{"reserved 0x03", "02 03", ErrReservedType},
		{"reserved 0x11", "02 11", ErrReservedType},
		{"reserved 0x19", "02 19", ErrReservedType},
		{"reserved 0x1E", "02 1E", ErrReservedType},
		{"reserved 0xFD", "02 FD", ErrReservedType},
		{"reserved 0xFF", "02 FF", ErrReservedType},
		{"PUBLISH reserved topic id type", "07 0C 03 00 01 00 00", ErrReservedTopicIDType},
		{"SUBSCRIBE reserved topic id type", "07 12 03 00 01 00 01", ErrReservedTopicIDType},
		{"UNSUBSCRIBE reserved topic id type", "07 14 03 00 01 00 01", ErrReservedTopicIDType},
		{"PUBLISH truncated", "06 0C 20 00 01 00", ErrTruncated},
		{"PUBLISH QoS -1 normal id", "07 0C 60 00 01 00 00", ErrMalformed},
		{"CONNACK reserved rc", "03 05 04", ErrReservedReturnCode},
		{"PUBACK reserved rc", "07 0D 00 01 00 01 FF", ErrReservedReturnCode},
		{"PUBACK short", "06 0D 00 01 00 01", ErrLength},
		{"CONNACK empty", "02 05", ErrLength},
		{"CONNECT protocol id", "08 04 04 02 00 3C 61 62", ErrMalformed},
		{"CONNECT truncated", "05 04 04 01 00", ErrTruncated},
		{"DISCONNECT 3 bytes", "03 18 01", ErrLength},
		{"PINGRESP with body", "03 17 00", ErrLength},
		{"SUBSCRIBE predefined 3-byte id", "08 12 21 00 01 00 01 02", ErrLength},
		{"SUBACK short", "07 13 20 00 00 00 03", ErrLength},
		{"ADVERTISE short", "04 00 01 03", ErrLength},
		{"GWINFO empty", "02 02", ErrTruncated},
		{"Encapsulated without inner", "04 FE 00 37", ErrTruncated},
		{"Encapsulated without ctrl", "02 FE 03 05 00", ErrTruncated},
		{"Encapsulated nested", "03 FE 00 04 FE 00 37 03 05 00", ErrMalformed},
		{"Encapsulated bad inner", "03 FE 00 03 05 09", ErrReservedReturnCode},
		{"Encapsulated inner length", "03 FE 00 04 05 00", ErrLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Decode(unhex(t, tt.hex))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode(%s) = %#v, %v; want error %v", tt.hex, p, err, tt.want)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("Decode(%s) error %v does not wrap ErrMalformed", tt.hex, err)
			}
		})
	}
}

func TestAppendErrors(t *testing.T) {
	tests := []struct {
		name string
		p    Packet
		want error
	}{
		{"nil", nil, ErrInvalidPacket},
		{"QoS 3", &Publish{QoS: 3}, ErrInvalidPacket},
		{"reserved topic id type", &Publish{TopicIDType: 3}, ErrInvalidPacket},
		{"QoS -1 normal topic", &Publish{QoS: QoSMinus1, TopicIDType: TopicNormal, TopicID: 1}, ErrInvalidPacket},
		{"reserved rc", &Puback{ReturnCode: 4}, ErrInvalidPacket},
		{"subscribe reserved type", &Subscribe{TopicIDType: 3}, ErrInvalidPacket},
		{"encapsulated nil inner", &Encapsulated{}, ErrInvalidPacket},
		{"encapsulated nested", &Encapsulated{Inner: &Encapsulated{Inner: &Pingreq{}}}, ErrInvalidPacket},
		{"too long", &Publish{Data: make([]byte, MaxLen)}, ErrTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Append(nil, tt.p); !errors.Is(err, tt.want) {
				t.Errorf("Append(%#v) error = %v, want %v", tt.p, err, tt.want)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	for _, tt := range goldenCases() {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Append(nil, tt.p)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode(Append(p)) error: %v", err)
			}
			if diff := cmp.Diff(tt.p, got); diff != "" {
				t.Errorf("round trip mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMsgTypeString(t *testing.T) {
	for _, tt := range []struct {
		t    MsgType
		want string
	}{{TypePubcomp, "PUBCOMP"}, {TypePubrec, "PUBREC"}, {0x03, "MsgType(0x03)"}} {
		if got := tt.t.String(); got != tt.want {
			t.Errorf("MsgType(%#x).String() = %q, want %q", byte(tt.t), got, tt.want)
		}
	}
}

// FuzzDecode checks that Decode never panics, and that whatever it accepts
// re-encodes and decodes to the same value. Seeds: testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode error %v does not wrap ErrMalformed", err)
			}
			return
		}
		enc, err := Append(nil, p)
		if err != nil {
			t.Fatalf("Append(Decode(% X)) error: %v", b, err)
		}
		if len(enc) > len(b) {
			t.Fatalf("re-encoding grew from %d to %d bytes", len(b), len(enc))
		}
		p2, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode(Append(Decode(% X))) error: %v", b, err)
		}
		if diff := cmp.Diff(p, p2); diff != "" {
			t.Fatalf("round trip of % X mismatch (-first +second):\n%s", b, diff)
		}
	})
}
