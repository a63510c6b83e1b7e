package noisehs

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// ErrEpochExhausted is returned when a SID's epoch cannot be incremented.
var ErrEpochExhausted = errors.New("sid epoch exhausted")

// HKDF labels of §5.
const (
	labelUp     = "seclink/1 up"
	labelDown   = "seclink/1 down"
	labelSID    = "seclink/1 sid|"
	labelKID    = "seclink/1 kid"
	labelMQTTPw = "seclink/1 mqtt-pw|"
)

// PDAID is the opaque 16-byte identity of a PDA, taken by ops from the topic.
type PDAID [16]byte

// SID is a security identifier: the 32-byte PSK of the handshake and its
// epoch. It is a secret: compare with [SID.Equal], never log it, and call
// [SID.Zero] when it is no longer needed.
type SID struct {
	Epoch uint32
	Key   [32]byte
}

// Equal reports whether s and o are the same SID, in constant time.
func (s SID) Equal(o SID) bool {
	e := subtle.ConstantTimeEq(int32(s.Epoch), int32(o.Epoch))
	return e&subtle.ConstantTimeCompare(s.Key[:], o.Key[:]) == 1
}

// IsZero reports whether s is the zero SID (no SID), in constant time.
func (s SID) IsZero() bool {
	return s.Equal(SID{})
}

// Zero overwrites s.
func (s *SID) Zero() { *s = SID{} }

// KID returns kid(SID) = HKDF-Expand(SID, "seclink/1 kid", 8), which names
// the SID in payload1.
func (s SID) KID() [8]byte {
	var k [8]byte
	copy(k[:], expand(s.Key[:], labelKID, 8))
	return k
}

// MQTTPassword returns mqtt_pw = base64url(HKDF-Expand(SID,
// "seclink/1 mqtt-pw|" ‖ pda_id, 24)).
//
// The encoding is base64url without padding (RFC 4648 §5,
// [base64.RawURLEncoding]). 24 bytes are a multiple of 3, so padding would
// never appear anyway; the raw URL alphabet is chosen so the password stays
// free of '+', '/' and '=' whatever its length, characters that URL user-info,
// broker configuration files and shell environment quoting treat specially.
func (s SID) MQTTPassword(pda PDAID) string {
	return base64.RawURLEncoding.EncodeToString(expand(s.Key[:], labelMQTTPw+string(pda[:]), 24))
}

// BrokerPassword returns the MQTT CONNECT password of §11:
// "e" ‖ decimal epoch ‖ "." ‖ mqtt_pw.
func (s SID) BrokerPassword(pda PDAID) string {
	return "e" + strconv.FormatUint(uint64(s.Epoch), 10) + "." + s.MQTTPassword(pda)
}

// Keypair is an X25519 keypair. Private is secret; call [Keypair.Zero] when
// done.
type Keypair struct {
	Private [32]byte
	Public  [32]byte
}

// Zero overwrites the private key.
func (k *Keypair) Zero() { k.Private = [32]byte{} }

// GenerateKeypair returns a fresh X25519 keypair read from r, or from
// crypto/rand when r is nil.
func GenerateKeypair(r io.Reader) (Keypair, error) {
	if r == nil {
		r = rand.Reader
	}
	var k Keypair
	if _, err := io.ReadFull(r, k.Private[:]); err != nil {
		return Keypair{}, fmt.Errorf("generate keypair: %w", err)
	}
	return KeypairFromPrivate(k.Private)
}

// KeypairFromPrivate returns the keypair of an X25519 private key.
func KeypairFromPrivate(priv [32]byte) (Keypair, error) {
	sk, err := ecdh.X25519().NewPrivateKey(priv[:])
	if err != nil {
		return Keypair{}, fmt.Errorf("x25519 private key: %w", err)
	}
	k := Keypair{Private: priv}
	copy(k.Public[:], sk.PublicKey().Bytes())
	return k, nil
}

// NewIndex returns a random sender_idx from crypto/rand.
func NewIndex() (uint32, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("new index: %w", err)
	}
	return binary.BigEndian.Uint32(b[:]), nil
}

// Keys is the output of the key schedule (§5). It is secret; call
// [Keys.Zero] when done.
type Keys struct {
	Up            [32]byte // k_up, PDA → ops
	Down          [32]byte // k_down, ops → PDA
	NextSID       SID      // SIDₑ₊₁, the candidate both sides store
	HandshakeHash [32]byte // h, the final Noise handshake hash (not secret)
}

// Zero overwrites the secret keys.
func (k *Keys) Zero() {
	k.Up, k.Down = [32]byte{}, [32]byte{}
	k.NextSID.Zero()
}

// DeriveKeys runs the suite 0x01 key schedule of §5 from the Noise Split keys
// k1 (initiator → responder) and k2, the final handshake hash h, the PDA and
// the epoch e of the SID used as PSK.
func DeriveKeys(k1, k2, h [32]byte, pda PDAID, epoch uint32) (Keys, error) {
	if epoch == math.MaxUint32 {
		return Keys{}, ErrEpochExhausted
	}
	ikm := make([]byte, 0, 64)
	ikm = append(ikm, k1[:]...)
	ikm = append(ikm, k2[:]...)
	prk, err := hkdf.Extract(sha256.New, ikm, h[:])
	clear(ikm)
	if err != nil {
		return Keys{}, fmt.Errorf("derive keys: %w", err)
	}
	defer clear(prk)
	k := Keys{HandshakeHash: h, NextSID: SID{Epoch: epoch + 1}}
	copy(k.Up[:], expand(prk, labelUp, 32))
	copy(k.Down[:], expand(prk, labelDown, 32))
	var e [4]byte
	binary.BigEndian.PutUint32(e[:], epoch+1)
	copy(k.NextSID.Key[:], expand(prk, labelSID+string(pda[:])+string(e[:]), 32))
	return k, nil
}

// expand is HKDF-Expand-SHA256 for lengths far below its 8160-byte limit,
// where it cannot fail.
func expand(prk []byte, info string, n int) []byte {
	out, err := hkdf.Expand(sha256.New, prk, info, n)
	if err != nil {
		panic("noisehs: hkdf expand: " + err.Error()) // unreachable: n ≤ 32
	}
	return out
}

// randReader is the default randomness source. crypto/rand honours
// testing/cryptotest.SetGlobalRandom, which golden tests use.
func randReader() io.Reader { return rand.Reader }
