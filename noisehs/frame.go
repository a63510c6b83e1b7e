package noisehs

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrTruncated is returned when a frame or field is shorter than its layout.
var ErrTruncated = errors.New("truncated")

// ErrTrailing is returned when bytes follow the end of a fixed-size layout.
var ErrTrailing = errors.New("trailing bytes")

// ErrTooLong is returned for frames longer than [MaxFrameLen].
var ErrTooLong = errors.New("frame too long")

// ErrVersion is returned for a header whose version byte is not [Version].
var ErrVersion = errors.New("unsupported version")

// ErrFrameType is returned when a header names another frame type than expected.
var ErrFrameType = errors.New("unexpected frame type")

// ErrSuite is returned for suites other than [SuiteIKpsk2]; §4 says drop.
var ErrSuite = errors.New("unsupported suite")

// Version is the SECLINK version carried in byte 0 of every frame.
const Version byte = 0x01

// MaxFrameLen is the largest frame accepted or produced. It is Noise's
// maximum message length and keeps every frame below the broker's 64 KiB
// packet limit together with its topic.
const MaxFrameLen = 65535

// FrameType is byte 1 of the header.
type FrameType byte

// Frame types (§4).
const (
	TypeHSInit FrameType = 0x01 // PDA → ops, handshake message 1
	TypeHSResp FrameType = 0x02 // ops → PDA, handshake message 2
	TypeData   FrameType = 0x03 // sealed record, both directions
)

// Suite is byte 2 of the header: the cryptographic suite of the session.
type Suite byte

// Suites (§4, §13). Only SuiteIKpsk2 is implemented; the others are reserved
// and parse as [ErrSuite].
const (
	SuiteIKpsk2 Suite = 0x01 // Noise_IKpsk2_25519_ChaChaPoly_SHA256 (v1)
	SuiteHybrid Suite = 0x02 // X25519 + ML-KEM-768 (phase 2)
	SuiteP256   Suite = 0x03 // P-256 (reserved)
	SuiteGM     Suite = 0x81 // SM2/SM3/SM4 (reserved)
)

// Layout sizes.
const (
	headerLen     = 4
	hsInitFixed   = headerLen + 4 + 32 + 48 // up to payload1
	hsRespFixed   = headerLen + 4 + 4 + 32  // up to payload2
	dataFixed     = headerLen + 4 + 8       // up to ciphertext
	tagLen        = 16
	payload1Fixed = 32
	payload2Fixed = 16
)

// Frame sizes without TLVs in suite 0x01.
const (
	HSInitLen  = hsInitFixed + payload1Fixed + tagLen // 136
	HSRespLen  = hsRespFixed + payload2Fixed + tagLen // 76
	DataMinLen = dataFixed + recordFixed + tagLen     // 52: empty body, no padding
)

// Header is the 4-byte prefix of every frame: ver ‖ type ‖ suite ‖ opskey.
type Header struct {
	Type   FrameType
	Suite  Suite
	OpsKey byte // names the S_ops keypair the session uses
}

// Bytes returns the wire form of h with version [Version].
func (h Header) Bytes() [4]byte {
	return [4]byte{Version, byte(h.Type), byte(h.Suite), h.OpsKey}
}

// ParseHeader parses the first four bytes of b. It checks the version and the
// suite but not the type, and ignores any bytes after the header.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < headerLen {
		return Header{}, fmt.Errorf("parse header: %w", ErrTruncated)
	}
	if len(b) > MaxFrameLen {
		return Header{}, fmt.Errorf("parse header: %w", ErrTooLong)
	}
	if b[0] != Version {
		return Header{}, fmt.Errorf("parse header: %w", ErrVersion)
	}
	h := Header{Type: FrameType(b[1]), Suite: Suite(b[2]), OpsKey: b[3]}
	if h.Suite != SuiteIKpsk2 {
		return Header{}, fmt.Errorf("parse header: %w", ErrSuite)
	}
	return h, nil
}

func parseTyped(b []byte, t FrameType, op string) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return Header{}, fmt.Errorf("%s: %w", op, err)
	}
	if h.Type != t {
		return Header{}, fmt.Errorf("%s: %w", op, ErrFrameType)
	}
	return h, nil
}

// HSInit is the outer layout of an HS_INIT frame. Ephemeral, Static and
// Payload alias the parsed buffer; Static and Payload are still encrypted.
type HSInit struct {
	Header    Header
	SenderIdx uint32 // the PDA's handle, echoed as receiver_idx
	Ephemeral []byte // 32
	Static    []byte // 48: S_pda public, encrypted
	Payload   []byte // payload1, encrypted, ≥ 48
}

// ParseHSInit checks the outer layout of an HS_INIT frame. It cannot detect
// an extended payload (the AEAD tag does); it rejects frames too short to hold
// an empty payload1.
func ParseHSInit(b []byte) (HSInit, error) {
	const op = "parse hs_init"
	h, err := parseTyped(b, TypeHSInit, op)
	if err != nil {
		return HSInit{}, err
	}
	if len(b) < HSInitLen {
		return HSInit{}, fmt.Errorf("%s: %w", op, ErrTruncated)
	}
	return HSInit{
		Header:    h,
		SenderIdx: binary.BigEndian.Uint32(b[4:8]),
		Ephemeral: b[8:40],
		Static:    b[40:88],
		Payload:   b[88:],
	}, nil
}

// HSResp is the outer layout of an HS_RESP frame. Ephemeral and Payload alias
// the parsed buffer; Payload is still encrypted.
type HSResp struct {
	Header      Header
	ReceiverIdx uint32 // the PDA's sender_idx
	SenderIdx   uint32 // ops' handle
	Ephemeral   []byte // 32
	Payload     []byte // payload2, encrypted, ≥ 32
}

// ParseHSResp checks the outer layout of an HS_RESP frame.
func ParseHSResp(b []byte) (HSResp, error) {
	const op = "parse hs_resp"
	h, err := parseTyped(b, TypeHSResp, op)
	if err != nil {
		return HSResp{}, err
	}
	if len(b) < HSRespLen {
		return HSResp{}, fmt.Errorf("%s: %w", op, ErrTruncated)
	}
	return HSResp{
		Header:      h,
		ReceiverIdx: binary.BigEndian.Uint32(b[4:8]),
		SenderIdx:   binary.BigEndian.Uint32(b[8:12]),
		Ephemeral:   b[12:44],
		Payload:     b[44:],
	}, nil
}

// Data is the outer layout of a DATA frame. Ciphertext aliases the parsed
// buffer and includes the 16-byte tag.
type Data struct {
	Header      Header
	ReceiverIdx uint32 // the receiving side's sender_idx
	Counter     uint64 // per direction and session, from 0
	Ciphertext  []byte
}

// ParseData checks the outer layout of a DATA frame. Routing by
// ReceiverIdx is the only use of its fields before the record is opened.
func ParseData(b []byte) (Data, error) {
	const op = "parse data"
	h, err := parseTyped(b, TypeData, op)
	if err != nil {
		return Data{}, err
	}
	if len(b) < DataMinLen {
		return Data{}, fmt.Errorf("%s: %w", op, ErrTruncated)
	}
	return Data{
		Header:      h,
		ReceiverIdx: binary.BigEndian.Uint32(b[4:8]),
		Counter:     binary.BigEndian.Uint64(b[8:16]),
		Ciphertext:  b[16:],
	}, nil
}
