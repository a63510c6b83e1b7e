package lab

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// secrets are the lab's generated credentials, kept in the data directory so that a restarted
// lab finds its PDA's identifier where ops stored it.
type secrets struct {
	SID         string `json:"sid"`          // the demo PDA's SID₀, hex: used once, on the PDA's first start
	OpsKey      string `json:"ops_key"`      // ops' S_ops private key, hex; the PDA pins its public key
	OpsPassword string `json:"ops_password"` // ops' account on the broker
	HandheldKey string `json:"handheld_key"` // the handheld's password on the PDA listener
	BridgeKey   string `json:"bridge_key"`   // the bridge's password on its own listener
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
		if s.OpsKey != "" {
			return s, nil
		}
		s.OpsKey = randomHex(32) // written by a lab from before SECLINK/1
	case errors.Is(err, os.ErrNotExist):
		s = secrets{SID: randomHex(32), OpsKey: randomHex(32), OpsPassword: randomHex(16), HandheldKey: randomHex(16), BridgeKey: randomHex(16)}
	default:
		return s, fmt.Errorf("read %s: %w", path, err)
	}
	b, _ = json.MarshalIndent(s, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return s, fmt.Errorf("write %s: %w", path, err)
	}
	return s, nil
}

// overrideFrom takes secrets from the environment where set (compose gives every container
// the same demo secrets).
func (s *secrets) overrideFrom(getenv func(string) string) {
	for env, field := range map[string]*string{
		"METERLINK_SID": &s.SID, "METERLINK_OPS_KEY": &s.OpsKey, "METERLINK_OPS_PASSWORD": &s.OpsPassword,
		"METERLINK_HANDHELD_KEY": &s.HandheldKey, "METERLINK_BRIDGE_KEY": &s.BridgeKey,
	} {
		if v := getenv(env); v != "" {
			*field = v
		}
	}
}
