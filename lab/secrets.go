package lab

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/meterlink/meterlink/noisehs"
)

// secrets are the lab's generated credentials, kept in the data directory so that a restarted
// lab finds its PDA's identifier where ops stored it.
type secrets struct {
	SID         string `json:"sid"`          // the demo PDA's SID₀, hex: used once, on the PDA's first start
	OpsKey      string `json:"ops_key"`      // ops' S_ops private key, hex; the PDA pins its public key
	OpsPassword string `json:"ops_password"` // ops' account on the broker
	HHMaster    string `json:"hh_master"`    // ops' K_master, hex, from which handhelds' depot keys derive (security.md §12)
	HandheldKey string `json:"handheld_key"` // the lab handheld's depot key K_hh, hex (its listener password derives from it)
	BridgeKey   string `json:"bridge_key"`   // the bridge's password on its own listener

	keyFromEnv bool // HandheldKey came from the environment
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// loadSecrets reads dir/lab-secrets.json, creating it (mode 0600) on the first run.
func loadSecrets(dir string) (secrets, error) {
	path := filepath.Join(dir, "lab-secrets.json")
	var s secrets
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &s); err != nil || len(s.SID) != 64 || s.OpsPassword == "" || s.HandheldKey == "" || s.BridgeKey == "" {
			return s, fmt.Errorf("%s is damaged; delete it together with the data directory to start afresh", path)
		}
		if s.OpsKey != "" && s.HHMaster != "" {
			return s, nil
		}
		if s.OpsKey == "" {
			s.OpsKey = randomHex(32) // written by a lab from before SECLINK/1
		}
		if s.HHMaster == "" {
			s.HHMaster = randomHex(32) // written by a lab from before the handheld binding
		}
	case errors.Is(err, os.ErrNotExist):
		s = secrets{SID: randomHex(32), OpsKey: randomHex(32), HHMaster: randomHex(32), OpsPassword: randomHex(16), HandheldKey: randomHex(16), BridgeKey: randomHex(16)}
	default:
		return s, fmt.Errorf("read %s: %w", path, err)
	}
	b, _ = json.MarshalIndent(s, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return s, fmt.Errorf("write %s: %w", path, err)
	}
	return s, nil
}

// depotKey sets the lab handheld's depot key K_hh, derived from K_master as ops derives it,
// unless the environment gave one (METERLINK_HANDHELD_KEY, 64 hex digits), and rewrites the
// secrets file when it changed: tests read the handheld's key from it.
func (s *secrets) depotKey(dir, hh string, keyVer byte) error {
	master, err := hex.DecodeString(s.HHMaster)
	if err != nil || len(master) != 32 {
		return errors.New("the lab's handheld master key: want 64 hex digits")
	}
	if k, err := hex.DecodeString(s.HandheldKey); err == nil && len(k) == 32 && s.keyFromEnv {
		return nil
	}
	k := noisehs.HandheldKey(master, noisehs.HHIDFromText(hh), keyVer)
	key := hex.EncodeToString(k[:])
	if key == s.HandheldKey {
		return nil
	}
	s.HandheldKey = key
	b, _ := json.MarshalIndent(s, "", "  ")
	path := filepath.Join(dir, "lab-secrets.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// overrideFrom takes secrets from the environment where set (compose gives every container
// the same demo secrets).
func (s *secrets) overrideFrom(getenv func(string) string) {
	for env, field := range map[string]*string{
		"METERLINK_SID": &s.SID, "METERLINK_OPS_KEY": &s.OpsKey, "METERLINK_OPS_PASSWORD": &s.OpsPassword,
		"METERLINK_HANDHELD_KEY": &s.HandheldKey, "METERLINK_BRIDGE_KEY": &s.BridgeKey, "METERLINK_HH_MASTER": &s.HHMaster,
	} {
		if v := getenv(env); v != "" {
			*field = v
		}
	}
	s.keyFromEnv = getenv("METERLINK_HANDHELD_KEY") != ""
}
