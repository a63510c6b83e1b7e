package noisehs

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrTLV is returned for a malformed TLV list: a truncated TLV, a wrong
// length for a known type, or a known type given twice.
var ErrTLV = errors.New("malformed tlv")

// ErrCriticalTLV is returned for an unknown TLV type ≥ 0x80, which §4 makes
// fatal; unknown types below 0x80 are skipped.
var ErrCriticalTLV = errors.New("unknown critical tlv")

// ErrExtLen is returned when ext_len disagrees with the bytes that follow.
var ErrExtLen = errors.New("ext_len mismatch")

// TLV types (§4).
const (
	TLVOpsKeyNext  byte = 0x01 // opskey ‖ X25519 public
	TLVBrokerToken byte = 0x02 // phase 2
	tlvCritical    byte = 0x80 // types from here on are fatal when unknown
)

// OpsKeyNext announces the next S_ops key during an S_ops roll (§7.2).
type OpsKeyNext struct {
	OpsKey byte
	Public [32]byte
}

// Extensions holds the TLVs of payload1 or payload2 that v1 understands.
// Unknown non-critical TLVs are dropped when parsing, so a parse-marshal
// round trip keeps the meaning, not the bytes.
type Extensions struct {
	OpsKeyNext  *OpsKeyNext // TLV 0x01, nil when absent
	BrokerToken []byte      // TLV 0x02 (phase 2), nil when absent
}

func (e Extensions) appendTLVs(b []byte) ([]byte, error) {
	if k := e.OpsKeyNext; k != nil {
		b = append(b, TLVOpsKeyNext, 0, 33, k.OpsKey)
		b = append(b, k.Public[:]...)
	}
	if e.BrokerToken != nil {
		if len(e.BrokerToken) > 0xffff {
			return nil, fmt.Errorf("broker token of %d bytes: %w", len(e.BrokerToken), ErrTLV)
		}
		b = append(b, TLVBrokerToken)
		b = binary.BigEndian.AppendUint16(b, uint16(len(e.BrokerToken)))
		b = append(b, e.BrokerToken...)
	}
	return b, nil
}

// ParseTLVs parses a TLV list (type u8 ‖ len u16 ‖ value) that fills b
// exactly. Returned values do not alias b.
func ParseTLVs(b []byte) (Extensions, error) {
	var e Extensions
	for len(b) > 0 {
		if len(b) < 3 {
			return Extensions{}, fmt.Errorf("parse tlv header: %w", ErrTLV)
		}
		t, n := b[0], int(binary.BigEndian.Uint16(b[1:3]))
		if len(b)-3 < n {
			return Extensions{}, fmt.Errorf("parse tlv 0x%02x value: %w", t, ErrTLV)
		}
		v := b[3 : 3+n]
		b = b[3+n:]
		switch {
		case t == TLVOpsKeyNext:
			if n != 33 || e.OpsKeyNext != nil {
				return Extensions{}, fmt.Errorf("parse tlv ops_key_next: %w", ErrTLV)
			}
			k := &OpsKeyNext{OpsKey: v[0]}
			copy(k.Public[:], v[1:])
			e.OpsKeyNext = k
		case t == TLVBrokerToken:
			if e.BrokerToken != nil {
				return Extensions{}, fmt.Errorf("parse tlv broker_token: %w", ErrTLV)
			}
			e.BrokerToken = append([]byte{}, v...)
		case t >= tlvCritical:
			return Extensions{}, fmt.Errorf("parse tlv 0x%02x: %w", t, ErrCriticalTLV)
		}
	}
	return e, nil
}

// Payload1 is the plaintext of HS_INIT's encrypted payload (§4).
type Payload1 struct {
	Epoch     uint32  // epoch of the SID used as PSK
	KID       [8]byte // kid(SID), names the SID without revealing it
	HSCounter uint64  // strictly increasing per PDA; ops keeps last_hs
	PDATimeMs uint64  // PDA clock, Unix milliseconds, informational
	Caps      uint16  // 0 in v1
	Ext       Extensions
}

// AppendBinary appends the wire form of p to b.
func (p Payload1) AppendBinary(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint32(b, p.Epoch)
	b = append(b, p.KID[:]...)
	b = binary.BigEndian.AppendUint64(b, p.HSCounter)
	b = binary.BigEndian.AppendUint64(b, p.PDATimeMs)
	b = binary.BigEndian.AppendUint16(b, p.Caps)
	return appendExt(b, p.Ext)
}

func appendExt(b []byte, e Extensions) ([]byte, error) {
	at := len(b)
	b = append(b, 0, 0)
	b, err := e.appendTLVs(b)
	if err != nil {
		return nil, err
	}
	n := len(b) - at - 2
	if n > 0xffff {
		return nil, fmt.Errorf("extensions of %d bytes: %w", n, ErrTLV)
	}
	binary.BigEndian.PutUint16(b[at:], uint16(n))
	return b, nil
}

func parseExt(b []byte) (Extensions, error) {
	n := int(binary.BigEndian.Uint16(b))
	switch rest := b[2:]; {
	case len(rest) < n:
		return Extensions{}, fmt.Errorf("%w: %w", ErrExtLen, ErrTruncated)
	case len(rest) > n:
		return Extensions{}, fmt.Errorf("%w: %w", ErrExtLen, ErrTrailing)
	default:
		return ParseTLVs(rest)
	}
}

// ParsePayload1 parses a decrypted payload1 that fills b exactly.
func ParsePayload1(b []byte) (Payload1, error) {
	if len(b) < payload1Fixed {
		return Payload1{}, fmt.Errorf("parse payload1: %w", ErrTruncated)
	}
	p := Payload1{
		Epoch:     binary.BigEndian.Uint32(b[0:4]),
		HSCounter: binary.BigEndian.Uint64(b[12:20]),
		PDATimeMs: binary.BigEndian.Uint64(b[20:28]),
		Caps:      binary.BigEndian.Uint16(b[28:30]),
	}
	copy(p.KID[:], b[4:12])
	ext, err := parseExt(b[30:])
	if err != nil {
		return Payload1{}, fmt.Errorf("parse payload1: %w", err)
	}
	p.Ext = ext
	return p, nil
}

// Payload2 is the plaintext of HS_RESP's encrypted payload (§4).
type Payload2 struct {
	OpsTimeMs      uint64 // ops clock, Unix milliseconds, informational
	RekeyAfterMin  uint16 // ops' REKEY_AFTER_TIME in minutes; the PDA applies the smaller
	RejectAfterMin uint16 // ops' REJECT_AFTER_TIME in minutes; the PDA applies the smaller
	Flags          uint16 // 0 in v1
	Ext            Extensions
}

// AppendBinary appends the wire form of p to b.
func (p Payload2) AppendBinary(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint64(b, p.OpsTimeMs)
	b = binary.BigEndian.AppendUint16(b, p.RekeyAfterMin)
	b = binary.BigEndian.AppendUint16(b, p.RejectAfterMin)
	b = binary.BigEndian.AppendUint16(b, p.Flags)
	return appendExt(b, p.Ext)
}

// ParsePayload2 parses a decrypted payload2 that fills b exactly.
func ParsePayload2(b []byte) (Payload2, error) {
	if len(b) < payload2Fixed {
		return Payload2{}, fmt.Errorf("parse payload2: %w", ErrTruncated)
	}
	p := Payload2{
		OpsTimeMs:      binary.BigEndian.Uint64(b[0:8]),
		RekeyAfterMin:  binary.BigEndian.Uint16(b[8:10]),
		RejectAfterMin: binary.BigEndian.Uint16(b[10:12]),
		Flags:          binary.BigEndian.Uint16(b[12:14]),
	}
	ext, err := parseExt(b[14:])
	if err != nil {
		return Payload2{}, fmt.Errorf("parse payload2: %w", err)
	}
	p.Ext = ext
	return p, nil
}
