// Package idcheck proves that a message between a PDA and ops was made by a holder of the
// PDA's security identifier (SID): every envelope carries an HMAC-SHA256 tag under a key
// derived from the SID, bound to the PDA id and the topic, so a frame moved to another PDA's
// topic or made without the SID fails.
//
// This is the spine's identifier check. The SECLINK/1 secure channel (security.md, package
// noisehs) replaces it with a mutually authenticated handshake, sealed records and rotation.
package idcheck

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
)

// SIDSize is the size of a security identifier in bytes.
const SIDSize = 32

// ErrBadSID is returned when a SID is not 32 bytes (64 hex digits).
var ErrBadSID = errors.New("security identifier must be 32 bytes (64 hex digits)")

// ParseSID decodes a SID given as 64 hex digits.
func ParseSID(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != SIDSize {
		return nil, ErrBadSID
	}
	return b, nil
}

// Key derives the tag key of a PDA from its SID.
func Key(sid []byte, pda string) ([]byte, error) {
	if len(sid) != SIDSize {
		return nil, ErrBadSID
	}
	k, err := hkdf.Key(sha256.New, sid, nil, "meterlink/v1 idcheck|"+pda, 32)
	if err != nil {
		return nil, fmt.Errorf("derive tag key: %w", err)
	}
	return k, nil
}

// Tag computes the tag of a message body sent on topic by (or to) pda.
func Tag(key []byte, pda, topic, kind, id string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, s := range []string{pda, topic, kind, id} {
		var n [2]byte
		n[0], n[1] = byte(len(s)>>8), byte(len(s))
		m.Write(n[:])
		m.Write([]byte(s))
	}
	m.Write(body)
	return m.Sum(nil)
}

// Verify reports, in constant time, whether tag is the right tag for the message.
func Verify(key []byte, pda, topic, kind, id string, body, tag []byte) bool {
	return hmac.Equal(tag, Tag(key, pda, topic, kind, id, body))
}

// BrokerPassword derives the PDA's MQTT password from its SID, as security.md §5 derives
// mqtt_pw: base64url(HKDF-Expand(SID, "seclink/1 mqtt-pw|" ‖ pda_id, 24)). The broker keeps
// only what it needs to check it; the SID itself never travels.
func BrokerPassword(sid []byte, pda string) (string, error) {
	if len(sid) != SIDSize {
		return "", ErrBadSID
	}
	k, err := hkdf.Expand(sha256.New, sid, "seclink/1 mqtt-pw|"+pda, 24)
	if err != nil {
		return "", fmt.Errorf("derive broker password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(k), nil
}
