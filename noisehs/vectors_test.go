package noisehs

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"slices"
	"testing"

	"github.com/flynn/noise"
	"golang.org/x/crypto/chacha20poly1305"
)

func hasFlag(flags []string, f string) bool { return slices.Contains(flags, f) }

type xdhFile struct {
	TestGroups []struct {
		Tests []struct {
			TcID    int      `json:"tcId"`
			Comment string   `json:"comment"`
			Flags   []string `json:"flags"`
			Public  string   `json:"public"`
			Private string   `json:"private"`
			Shared  string   `json:"shared"`
			Result  string   `json:"result"`
		} `json:"tests"`
	} `json:"testGroups"`
}

// T1: Wycheproof X25519 with crypto/ecdh and with the DH the handshake uses.
func TestWycheproofX25519(t *testing.T) {
	var file xdhFile
	loadJSON(t, "wycheproof/x25519_test.json", &file)
	n := 0
	for _, g := range file.TestGroups {
		for _, tc := range g.Tests {
			n++
			priv, pub, want := unhex(t, tc.Private), unhex(t, tc.Public), unhex(t, tc.Shared)
			sk, err := ecdh.X25519().NewPrivateKey(priv)
			if err != nil {
				t.Fatalf("tc %d: private key: %v", tc.TcID, err)
			}
			pk, err := ecdh.X25519().NewPublicKey(pub)
			var got []byte
			if err == nil {
				got, err = sk.ECDH(pk)
			}
			zero := bytes.Equal(want, make([]byte, 32))
			switch {
			case tc.Result == "valid" && (err != nil || !bytes.Equal(got, want)):
				t.Errorf("tc %d (%s): ecdh = %x, %v, want %x", tc.TcID, tc.Comment, got, err, want)
			case zero && err == nil:
				t.Errorf("tc %d (%s): all-zero shared secret accepted", tc.TcID, tc.Comment)
			case tc.Result == "acceptable" && !zero && (err != nil || !bytes.Equal(got, want)):
				t.Errorf("tc %d (%s): ecdh = %x, %v, want %x", tc.TcID, tc.Comment, got, err, want)
			}
			// The handshake's DH must agree, and refuse low-order results.
			dh, err := noise.DH25519.DH(priv, pub)
			if zero != (err != nil) || (!zero && !bytes.Equal(dh, want)) {
				t.Errorf("tc %d (%s): noise DH = %x, %v, want %x", tc.TcID, tc.Comment, dh, err, want)
			}
		}
	}
	if n == 0 {
		t.Fatal("no X25519 vectors")
	}
}

type aeadFile struct {
	TestGroups []struct {
		Tests []struct {
			TcID   int      `json:"tcId"`
			Flags  []string `json:"flags"`
			Key    string   `json:"key"`
			IV     string   `json:"iv"`
			AAD    string   `json:"aad"`
			Msg    string   `json:"msg"`
			CT     string   `json:"ct"`
			Tag    string   `json:"tag"`
			Result string   `json:"result"`
		} `json:"tests"`
	} `json:"testGroups"`
}

// T2: Wycheproof ChaCha20-Poly1305; bad tags are rejected.
func TestWycheproofChaCha20Poly1305(t *testing.T) {
	var file aeadFile
	loadJSON(t, "wycheproof/chacha20_poly1305_test.json", &file)
	for _, g := range file.TestGroups {
		for _, tc := range g.Tests {
			key, iv, aad := unhex(t, tc.Key), unhex(t, tc.IV), unhex(t, tc.AAD)
			msg, ct := unhex(t, tc.Msg), append(unhex(t, tc.CT), unhex(t, tc.Tag)...)
			a, err := chacha20poly1305.New(key)
			if err != nil {
				t.Fatalf("tc %d: %v", tc.TcID, err)
			}
			if len(iv) != a.NonceSize() {
				if tc.Result == "valid" {
					t.Errorf("tc %d: valid vector with a %d-byte nonce", tc.TcID, len(iv))
				}
				continue // Seal/Open would panic; our nonces are always 12 bytes
			}
			got, err := a.Open(nil, iv, ct, aad)
			if tc.Result == "valid" {
				if err != nil || !bytes.Equal(got, msg) {
					t.Errorf("tc %d: Open = %x, %v, want %x", tc.TcID, got, err, msg)
				}
				if s := a.Seal(nil, iv, msg, aad); !bytes.Equal(s, ct) {
					t.Errorf("tc %d: Seal = %x, want %x", tc.TcID, s, ct)
				}
			} else if err == nil {
				t.Errorf("tc %d (%v): invalid vector opened", tc.TcID, tc.Flags)
			}
		}
	}
}

type hkdfFile struct {
	TestGroups []struct {
		Tests []struct {
			TcID   int    `json:"tcId"`
			IKM    string `json:"ikm"`
			Salt   string `json:"salt"`
			Info   string `json:"info"`
			Size   int    `json:"size"`
			OKM    string `json:"okm"`
			Result string `json:"result"`
		} `json:"tests"`
	} `json:"testGroups"`
}

// T2: Wycheproof HKDF-SHA256 through crypto/hkdf's Extract and Expand, the
// calls the key schedule makes.
func TestWycheproofHKDF(t *testing.T) {
	var file hkdfFile
	loadJSON(t, "wycheproof/hkdf_sha256_test.json", &file)
	for _, g := range file.TestGroups {
		for _, tc := range g.Tests {
			prk, err := hkdf.Extract(sha256.New, unhex(t, tc.IKM), unhex(t, tc.Salt))
			if err != nil {
				t.Fatalf("tc %d: extract: %v", tc.TcID, err)
			}
			okm, err := hkdf.Expand(sha256.New, prk, string(unhex(t, tc.Info)), tc.Size)
			switch {
			case tc.Result == "valid" && (err != nil || !bytes.Equal(okm, unhex(t, tc.OKM))):
				t.Errorf("tc %d: okm = %x, %v, want %s", tc.TcID, okm, err, tc.OKM)
			case tc.Result == "invalid" && err == nil:
				t.Errorf("tc %d: invalid size %d accepted", tc.TcID, tc.Size)
			}
		}
	}
}

type macFile struct {
	TestGroups []struct {
		TagSize int `json:"tagSize"`
		Tests   []struct {
			TcID   int    `json:"tcId"`
			Key    string `json:"key"`
			Msg    string `json:"msg"`
			Tag    string `json:"tag"`
			Result string `json:"result"`
		} `json:"tests"`
	} `json:"testGroups"`
}

// T2: Wycheproof HMAC-SHA256, compared with hmac.Equal as §9 requires.
func TestWycheproofHMAC(t *testing.T) {
	var file macFile
	loadJSON(t, "wycheproof/hmac_sha256_test.json", &file)
	for _, g := range file.TestGroups {
		for _, tc := range g.Tests {
			m := hmac.New(sha256.New, unhex(t, tc.Key))
			m.Write(unhex(t, tc.Msg))
			full := m.Sum(nil)
			got := full[:g.TagSize/8]
			ok := hmac.Equal(got, unhex(t, tc.Tag))
			if ok != (tc.Result == "valid") {
				t.Errorf("tc %d: tag match %v, result %s", tc.TcID, ok, tc.Result)
			}
		}
	}
}

type noiseVector struct {
	ProtocolName     string   `json:"protocol_name"`
	InitPrologue     string   `json:"init_prologue"`
	InitPSKs         []string `json:"init_psks"`
	InitStatic       string   `json:"init_static"`
	InitEphemeral    string   `json:"init_ephemeral"`
	InitRemoteStatic string   `json:"init_remote_static"`
	RespPrologue     string   `json:"resp_prologue"`
	RespPSKs         []string `json:"resp_psks"`
	RespStatic       string   `json:"resp_static"`
	RespEphemeral    string   `json:"resp_ephemeral"`
	HandshakeHash    string   `json:"handshake_hash"`
	Messages         []struct {
		Payload    string `json:"payload"`
		Ciphertext string `json:"ciphertext"`
	} `json:"messages"`
}

func dhKey(t testing.TB, priv string) noise.DHKey {
	if priv == "" {
		return noise.DHKey{}
	}
	var p [32]byte
	copy(p[:], unhex(t, priv))
	k, err := KeypairFromPrivate(p)
	if err != nil {
		t.Fatal(err)
	}
	return toDHKey(k)
}

// runNoiseVector replays a cacophony vector through flynn/noise, the
// handshake messages with the configured PSKs and the transport messages
// with the Split CipherStates. It returns the first mismatch or failure.
func runNoiseVector(t testing.TB, v noiseVector, respPSK []byte) error {
	var pattern noise.HandshakePattern
	var place int
	switch v.ProtocolName {
	case "Noise_IKpsk2_25519_ChaChaPoly_SHA256":
		pattern, place = noise.HandshakeIK, 2
	case "Noise_NNpsk0_25519_ChaChaPoly_SHA256":
		pattern, place = noise.HandshakeNN, 0
	default:
		return fmt.Errorf("unsupported protocol %s", v.ProtocolName)
	}
	mk := func(initiator bool, prologue, psk, static, eph, remote string) (*noise.HandshakeState, error) {
		c := noise.Config{
			CipherSuite:           suiteIKpsk2,
			Random:                bytes.NewReader(unhex(t, eph)),
			Pattern:               pattern,
			Initiator:             initiator,
			Prologue:              unhex(t, prologue),
			PresharedKey:          unhex(t, psk),
			PresharedKeyPlacement: place,
			StaticKeypair:         dhKey(t, static),
		}
		if remote != "" {
			c.PeerStatic = unhex(t, remote)
		}
		return noise.NewHandshakeState(c)
	}
	init, err := mk(true, v.InitPrologue, v.InitPSKs[0], v.InitStatic, v.InitEphemeral, v.InitRemoteStatic)
	if err != nil {
		return err
	}
	resp, err := mk(false, v.RespPrologue, v.RespPSKs[0], v.RespStatic, v.RespEphemeral, "")
	if err != nil {
		return err
	}
	if respPSK != nil {
		if err := resp.SetPresharedKey(respPSK); err != nil {
			return err
		}
	}
	var send, recv [2]*noise.CipherState // [0] initiator's, [1] responder's
	for n, m := range v.Messages {
		payload, want := unhex(t, m.Payload), unhex(t, m.Ciphertext)
		var ct, pt []byte
		if n < 2 {
			w, r := init, resp
			if n == 1 {
				w, r = resp, init
			}
			var cs1, cs2 *noise.CipherState
			ct, cs1, cs2, err = w.WriteMessage(nil, payload)
			if err != nil {
				return fmt.Errorf("message %d: write: %w", n, err)
			}
			var rc1, rc2 *noise.CipherState
			pt, rc1, rc2, err = r.ReadMessage(nil, ct)
			if err != nil {
				return fmt.Errorf("message %d: read: %w", n, err)
			}
			if n == 1 {
				if cs1 == nil || rc1 == nil {
					return fmt.Errorf("handshake not complete after 2 messages")
				}
				send, recv = [2]*noise.CipherState{rc1, cs2}, [2]*noise.CipherState{cs1, rc2}
				if h := unhex(t, v.HandshakeHash); !bytes.Equal(init.ChannelBinding(), h) || !bytes.Equal(resp.ChannelBinding(), h) {
					return fmt.Errorf("handshake hash mismatch")
				}
			}
		} else {
			side := (n - 2) % 2 // even: initiator sends
			ct, err = send[side].Encrypt(nil, nil, payload)
			if err != nil {
				return err
			}
			pt, err = recv[side].Decrypt(nil, nil, ct)
			if err != nil {
				return fmt.Errorf("message %d: decrypt: %w", n, err)
			}
		}
		if !bytes.Equal(ct, want) || !bytes.Equal(pt, payload) {
			return fmt.Errorf("message %d: ciphertext %x, want %x", n, ct, want)
		}
	}
	return nil
}

// T3: cacophony IKpsk2 and NNpsk0 vectors match flynn/noise; a wrong PSK
// fails.
func TestCacophony(t *testing.T) {
	var file struct {
		Vectors []noiseVector `json:"vectors"`
	}
	loadJSON(t, "noise/cacophony-ikpsk2-nnpsk0.json", &file)
	seen := map[string]bool{}
	for _, v := range file.Vectors {
		t.Run(v.ProtocolName, func(t *testing.T) {
			seen[v.ProtocolName] = true
			if err := runNoiseVector(t, v, nil); err != nil {
				t.Fatal(err)
			}
			wrong := unhex(t, v.RespPSKs[0])
			wrong[31] ^= 1
			if err := runNoiseVector(t, v, wrong); err == nil {
				t.Fatal("wrong responder PSK accepted")
			}
		})
	}
	for _, p := range []string{"Noise_IKpsk2_25519_ChaChaPoly_SHA256", "Noise_NNpsk0_25519_ChaChaPoly_SHA256"} {
		if !seen[p] {
			t.Errorf("no vector for %s", p)
		}
	}
}
