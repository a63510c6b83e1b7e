package noisehs

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrPadding is returned for a record whose padding is not all zero.
var ErrPadding = errors.New("non-zero padding")

// ErrKind is returned for a record of a reserved kind (0x00, 0x07–0x3F).
var ErrKind = errors.New("reserved record kind")

// ErrBodyTooLong is returned when a body does not fit in one frame.
var ErrBodyTooLong = errors.New("record body too long")

// ErrAuth is returned when a DATA record fails authentication.
var ErrAuth = errors.New("record authentication failed")

const (
	recordFixed  = 1 + 16 + 1 + 2 // kind ‖ msg_id ‖ flags ‖ body_len
	maxPlaintext = MaxFrameLen - dataFixed - tagLen
	minBucket    = 64
	bigBucket    = 16384
)

// MaxBody is the largest record body that fits in a frame.
const MaxBody = maxPlaintext - recordFixed

// Kind is the first byte of a record's plaintext (§6).
type Kind byte

// Record kinds. 0x07–0x3F are reserved; 0x40–0xFF carry application payloads
// from the wire package.
const (
	KindConfirm       Kind = 0x01 // PDA, first record of a session
	KindCommit        Kind = 0x02 // ops' answer to every valid CONFIRM
	KindRekeyNow      Kind = 0x03 // ops asks for a new handshake
	KindTicketRequest Kind = 0x04 // PDA, body hh_id
	KindTicket        Kind = 0x05 // ops, §12
	KindAck           Kind = 0x06 // body msg_id
	KindApp           Kind = 0x40 // first application kind
)

// Record is the plaintext of a DATA frame.
type Record struct {
	Kind  Kind
	MsgID [16]byte // UUIDv7; repeats are re-ACKed, never re-applied
	Flags byte
	Body  []byte
}

// PadLen returns the padded plaintext length for a record of n bytes
// (kind to end of body): the next power of two from 64 to 16 KiB, then the
// next multiple of 16 KiB, never beyond [PadCeiling] (a record already longer
// is not padded). Buckets hide the exact size of readings and commands from
// the broker; the ceiling keeps padding from pushing a frame, its topic and
// the MQTT header past the broker's 64 KiB packet limit.
func PadLen(n int) int {
	p := minBucket
	for p < n && p < bigBucket {
		p *= 2
	}
	if n > p {
		p = (n + bigBucket - 1) / bigBucket * bigBucket
	}
	return max(min(p, PadCeiling), n)
}

// PadCeiling is the largest plaintext that padding produces: 64 KiB less
// 1 KiB for the DATA header, tag, topic and MQTT header.
const PadCeiling = 63 << 10

// appendRecord appends r's plaintext, zero-padded to PadLen when pad is set.
func appendRecord(b []byte, r Record, pad bool) ([]byte, error) {
	if len(r.Body) > MaxBody {
		return nil, fmt.Errorf("append record of %d bytes: %w", len(r.Body), ErrBodyTooLong)
	}
	if !validKind(r.Kind) {
		return nil, fmt.Errorf("append record kind 0x%02x: %w", byte(r.Kind), ErrKind)
	}
	at := len(b)
	b = append(b, byte(r.Kind))
	b = append(b, r.MsgID[:]...)
	b = append(b, r.Flags)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.Body)))
	b = append(b, r.Body...)
	if pad {
		n := len(b) - at
		b = append(b, make([]byte, PadLen(n)-n)...)
	}
	return b, nil
}

func validKind(k Kind) bool {
	return (k >= KindConfirm && k <= KindAck) || k >= KindApp
}

// ParseRecord parses a decrypted record plaintext: header, body and zero
// padding. Body aliases b.
func ParseRecord(b []byte) (Record, error) {
	if len(b) < recordFixed {
		return Record{}, fmt.Errorf("parse record: %w", ErrTruncated)
	}
	r := Record{Kind: Kind(b[0]), Flags: b[17]}
	copy(r.MsgID[:], b[1:17])
	if !validKind(r.Kind) {
		return Record{}, fmt.Errorf("parse record kind 0x%02x: %w", b[0], ErrKind)
	}
	n := int(binary.BigEndian.Uint16(b[18:20]))
	rest := b[recordFixed:]
	if len(rest) < n {
		return Record{}, fmt.Errorf("parse record body: %w", ErrTruncated)
	}
	r.Body = rest[:n:n]
	var nz byte
	for _, c := range rest[n:] {
		nz |= c
	}
	if nz != 0 {
		return Record{}, fmt.Errorf("parse record: %w", ErrPadding)
	}
	return r, nil
}

func dataNonce(counter uint64) [12]byte {
	var n [12]byte
	binary.LittleEndian.PutUint64(n[4:], counter)
	return n
}

// dataAD returns frame[0:16] ‖ topic ‖ pda_id.
func dataAD(frame16 []byte, topic string, pda PDAID) []byte {
	ad := make([]byte, 0, 16+len(topic)+len(pda))
	ad = append(ad, frame16[:16]...)
	ad = append(ad, topic...)
	return append(ad, pda[:]...)
}

// sealData appends a DATA frame carrying plaintext to dst.
func sealData(dst []byte, aead cipher.AEAD, h Header, receiverIdx uint32, counter uint64, topic string, pda PDAID, plaintext []byte) []byte {
	at := len(dst)
	hb := h.Bytes()
	dst = append(dst, hb[:]...)
	dst = binary.BigEndian.AppendUint32(dst, receiverIdx)
	dst = binary.BigEndian.AppendUint64(dst, counter)
	nonce := dataNonce(counter)
	return aead.Seal(dst, nonce[:], plaintext, dataAD(dst[at:], topic, pda))
}

// openData authenticates and decrypts a parsed DATA frame.
func openData(aead cipher.AEAD, frame []byte, d Data, topic string, pda PDAID) ([]byte, error) {
	nonce := dataNonce(d.Counter)
	pt, err := aead.Open(nil, nonce[:], d.Ciphertext, dataAD(frame, topic, pda))
	if err != nil {
		return nil, ErrAuth
	}
	return pt, nil
}
