package broker

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/meterlink/meterlink/topic"
)

// Limits that DefaultConfig fills in and Validate enforces.
const (
	DefaultTCPAddr                = "127.0.0.1:1883"
	DefaultMaxPacketSize          = 64 << 10 // security.md §11; mochi's own default is unlimited
	DefaultMaxInflight            = 2048     // QoS 1/2 messages held per client, sent or queued for an offline session
	DefaultMaxClientWritesPending = 8192     // packets queued per client for its write loop
	maxInflightLimit              = 65535    // mochi keeps the limit in a uint16
)

// Config configures a [Broker]. The zero value is not useful: start from [DefaultConfig].
type Config struct {
	TCPAddr   string // MQTT over TCP, host:port; default 127.0.0.1:1883; "" = off; port 0 picks a free port
	WSAddr    string // MQTT over WebSocket, host:port (any path); default "" = off; the lab uses 127.0.0.1:8083
	StorePath string // buntdb file for sessions, subscriptions, in-flight and retained messages; "" = memory only, lost on restart

	Accounts []Account // static accounts, e.g. ops, the pda-bridge, handhelds
	// Lookup optionally finds accounts not in Accounts, e.g. ops' PDAs. It is called on every
	// CONNECT of such a username and once for each session restored from the store, from many
	// goroutines at once: keep it fast and safe for concurrent use. An account it returns must
	// carry the asked username and pass the same checks as Accounts, or it is ignored.
	Lookup func(username string) (Account, bool)
	// AllowViewers lets clients without a username connect as [topic.RoleViewer]: they may only
	// subscribe to what the topic registry gives viewers (dashboards).
	AllowViewers bool

	// MaxPacketSize is the largest MQTT packet accepted, in bytes; default 64 KiB, 0 = unlimited
	// (not recommended: security.md §11). A larger packet closes the connection and is counted.
	MaxPacketSize uint32
	// MaxInflight is the number of QoS 1/2 messages the broker holds per client: sent and not yet
	// acknowledged, or queued for an offline persistent session. Beyond it a message for that
	// client is refused, counted ([Stats].MessagesRefused) and logged. Default 2048, 1–65535,
	// and below MaxClientWritesPending so that a QoS 1 message meets this counted refusal
	// before mochi's write queue could drop it.
	MaxInflight int
	// MaxClientWritesPending is the per-client queue of packets waiting for the connection; when
	// it is full a message is dropped, counted ([Stats].MessagesDropped) and logged. Default 8192.
	MaxClientWritesPending int

	Logger *slog.Logger // used when New is given no logger; nil = discard
}

// Account is one set of broker credentials and the role they grant.
type Account struct {
	Username string // MQTT username; for a PDA its id, e.g. "P01"
	// Password is the password in clear, for tests and the lab. Either Password or
	// PasswordSHA256 (or both) must be set. Never logged.
	Password []byte
	// PasswordSHA256 is SHA-256 of the password: the verifier ops keeps for a PDA
	// (security.md §11). Compared in constant time.
	PasswordSHA256 [32]byte
	// MoreSHA256 holds further accepted verifiers, e.g. a PDA's pending SID during rotation, so
	// that rotation never locks it out (security.md §11).
	MoreSHA256 [][32]byte
	Role       topic.Role // what the account may publish and subscribe to, from the topic registry
	// ID is the value the role's own topic placeholder must equal: "P01" for a PDA ({pda}),
	// "H01" for a handheld ({hh}). For a PDA it must equal Username, and the client id must too;
	// empty means Username. Unused for roles without an own placeholder (ops, bridge, viewer).
	ID string
}

// DefaultConfig returns the defaults: TCP on 127.0.0.1:1883, no WebSocket, no store, no
// accounts, 64 KiB packets, 2048 in-flight and 8192 pending writes per client.
func DefaultConfig() Config {
	return Config{
		TCPAddr:                DefaultTCPAddr,
		MaxPacketSize:          DefaultMaxPacketSize,
		MaxInflight:            DefaultMaxInflight,
		MaxClientWritesPending: DefaultMaxClientWritesPending,
	}
}

var knownRoles = map[topic.Role]bool{
	topic.RoleTerminal: true, topic.RoleHandheld: true, topic.RoleBridge: true,
	topic.RolePDA: true, topic.RoleOps: true, topic.RoleViewer: true,
}

// Validate reports every problem with c, naming the flag or field at fault.
func (c Config) Validate() error {
	var errs []error
	if c.TCPAddr == "" && c.WSAddr == "" {
		errs = append(errs, errors.New("mqtt and ws are both off: need at least one listener"))
	}
	for _, a := range []struct{ name, v string }{{"mqtt", c.TCPAddr}, {"ws", c.WSAddr}} {
		if a.v == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			errs = append(errs, fmt.Errorf("%s address %q: want host:port", a.name, a.v))
		}
	}
	if c.TCPAddr != "" && c.TCPAddr == c.WSAddr && !strings.HasSuffix(c.TCPAddr, ":0") {
		errs = append(errs, fmt.Errorf("mqtt and ws share the address %q", c.TCPAddr))
	}
	if c.MaxInflight < 1 || c.MaxInflight > maxInflightLimit {
		errs = append(errs, fmt.Errorf("max inflight %d: want 1..%d", c.MaxInflight, maxInflightLimit))
	}
	if c.MaxClientWritesPending <= c.MaxInflight {
		errs = append(errs, fmt.Errorf("max client writes pending %d: must exceed max inflight %d, or QoS 1 messages could be dropped by the write queue",
			c.MaxClientWritesPending, c.MaxInflight))
	}
	seen := map[string]bool{}
	for i, a := range c.Accounts {
		if err := a.validate(); err != nil {
			errs = append(errs, fmt.Errorf("account %d (%q): %w", i, a.Username, err))
		}
		if seen[a.Username] {
			errs = append(errs, fmt.Errorf("account %d: duplicate username %q", i, a.Username))
		}
		seen[a.Username] = true
	}
	return errors.Join(errs...)
}

func (a Account) validate() error {
	var errs []error
	if a.Username == "" {
		errs = append(errs, errors.New("username is required"))
	}
	if len(a.Password) == 0 && a.PasswordSHA256 == ([32]byte{}) && len(a.MoreSHA256) == 0 {
		errs = append(errs, errors.New("password or password_sha256 is required"))
	}
	if !knownRoles[a.Role] {
		errs = append(errs, fmt.Errorf("role %q: want one of terminal, handheld, bridge, pda, ops, viewer", a.Role))
	}
	switch a.Role {
	case topic.RolePDA:
		if a.ID != "" && a.ID != a.Username {
			errs = append(errs, fmt.Errorf("pda id %q must equal the username (security.md §11)", a.ID))
		}
		if !topic.ValidID(a.Username) {
			errs = append(errs, fmt.Errorf("pda username %q is not a valid topic id", a.Username))
		}
	case topic.RoleHandheld, topic.RoleTerminal:
		if !topic.ValidID(a.ID) {
			errs = append(errs, fmt.Errorf("%s id %q: want a valid topic id (e.g. H01)", a.Role, a.ID))
		}
	}
	return errors.Join(errs...)
}

// selfID is the id the account's own topic placeholder must equal.
func (a Account) selfID() string {
	if a.Role == topic.RolePDA && a.ID == "" {
		return a.Username
	}
	return a.ID
}

// verifiers returns every accepted SHA-256 password verifier of a.
func (a Account) verifiers() [][32]byte {
	var v [][32]byte
	if len(a.Password) > 0 {
		v = append(v, sha256.Sum256(a.Password))
	}
	if a.PasswordSHA256 != ([32]byte{}) {
		v = append(v, a.PasswordSHA256)
	}
	for _, m := range a.MoreSHA256 {
		if m != ([32]byte{}) {
			v = append(v, m)
		}
	}
	return v
}

// LogValue logs c without secrets: accounts appear as username:role only.
func (c Config) LogValue() slog.Value {
	names := make([]string, len(c.Accounts))
	for i, a := range c.Accounts {
		names[i] = a.Username + ":" + string(a.Role)
	}
	return slog.GroupValue(
		slog.String("mqtt", c.TCPAddr),
		slog.String("ws", c.WSAddr),
		slog.String("store", c.StorePath),
		slog.String("accounts", strings.Join(names, ",")),
		slog.Bool("lookup", c.Lookup != nil),
		slog.Bool("allow_viewers", c.AllowViewers),
		slog.Uint64("max_packet_size", uint64(c.MaxPacketSize)),
		slog.Int("max_inflight", c.MaxInflight),
		slog.Int("max_client_writes_pending", c.MaxClientWritesPending),
	)
}

// LogValue logs a without its password or verifiers.
func (a Account) LogValue() slog.Value {
	return slog.GroupValue(slog.String("username", a.Username), slog.String("role", string(a.Role)), slog.String("id", a.ID))
}

// String formats a without its password or verifiers, so that %v never prints a secret.
func (a Account) String() string {
	return fmt.Sprintf("account{%s role=%s id=%s}", a.Username, a.Role, a.ID)
}
