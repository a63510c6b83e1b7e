// Package noisehs implements SECLINK/1, the sealed link between a PDA and ops
// (docs/security.md): the frame formats of §4 and §6, the
// Noise_IKpsk2_25519_ChaChaPoly_SHA256 handshake (suite 0x01) on top of
// github.com/flynn/noise, the key schedule of §5, DATA records with a
// 1024-record anti-replay window, sessions with the timers of §8, and the SID
// rotation state machines of §7.
//
// The package is pure and deterministic: it does no I/O, starts no goroutines,
// reads the clock only through an injected now func() time.Time and takes
// randomness from an injected io.Reader (crypto/rand when nil). pda-bridge and
// ops publish and subscribe the frames it builds on the topics
// meterlink/v1/pda/{pda}/hs/up (HS_INIT), …/hs/down (HS_RESP), …/up and
// …/down (DATA); it stores nothing.
//
// flynn/noise is used for the handshake only; its transport CipherStates are
// never used, because MQTT QoS 1 duplicates and reorders and Noise transport
// needs in-order nonces. Errors returned by this package never contain key
// material; callers must treat every failure the same on the wire (drop).
package noisehs
