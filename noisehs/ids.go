package noisehs

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"io"
	"strings"
	"time"
)

// Application record kinds (§6: 0x40–0xFF carry payloads from package wire).
// pda-bridge and ops both use them, so they live here.
const (
	KindBatch   Kind = 0x40 // PDA → ops: a wire.Batch (JSON)
	KindWireAck Kind = 0x41 // ops → PDA: a wire.Ack (JSON), the end-to-end acknowledgement of a batch or of job events
	// KindQuery carries a handheld's real-time wire.Query (JSON), PDA → ops. It is never
	// stored or resent by the PDA: a query is useless after its deadline.
	KindQuery Kind = 0x42
	// KindAnswer carries ops' wire.Answer (JSON) to a KindQuery, ops → PDA.
	KindAnswer Kind = 0x43
	// KindJobEvents carries a handheld's wire.JobEvents (JSON), PDA → ops; held in the PDA's
	// outbox like a batch until ops' KindWireAck with its id comes back.
	KindJobEvents Kind = 0x44
	// KindGroups carries a wire.Groups (JSON) for one handheld, ops → PDA.
	KindGroups Kind = 0x45
)

// pdaText is the text encoding of a 16-byte pda_id after its "P" prefix
// (§3): unpadded base32, 26 characters.
var pdaText = base32.StdEncoding.WithPadding(base32.NoPadding)

// String returns the text form of p: "P" ‖ base32 (§3).
func (p PDAID) String() string { return "P" + pdaText.EncodeToString(p[:]) }

// PDAIDFromText returns the 16-byte pda_id named by a PDA's text id. A text
// id of the form "P" ‖ 26 base32 characters (§3, [PDAID.String]) decodes to
// its bytes; any other id (the short ids of the lab and the demo, "P01") maps
// to the first 16 bytes of SHA-256("seclink/1 pda-id|" ‖ id). Both ends
// derive the same value from the topic, so frames stay bound to the PDA.
func PDAIDFromText(id string) PDAID {
	var p PDAID
	if len(id) == 27 && id[0] == 'P' {
		if b, err := pdaText.DecodeString(strings.ToUpper(id[1:])); err == nil && len(b) == len(p) {
			copy(p[:], b)
			return p
		}
	}
	h := sha256.Sum256([]byte("seclink/1 pda-id|" + id))
	copy(p[:], h[:len(p)])
	return p
}

// NewMsgID returns a UUIDv7 (RFC 9562) for a record's msg_id: 48 bits of Unix
// milliseconds from now, then random bits from r (crypto/rand when nil).
func NewMsgID(now time.Time, r io.Reader) ([16]byte, error) {
	var id [16]byte
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, id[6:]); err != nil {
		return id, err
	}
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(now.UnixMilli()))
	copy(id[:6], ms[2:])
	id[6] = 0x70 | id[6]&0x0f // version 7
	id[8] = 0x80 | id[8]&0x3f // variant 10
	return id, nil
}
