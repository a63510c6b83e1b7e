package broker

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/meterlink/meterlink/topic"
)

// Reasons a connection is refused, as logged in the "reason" attribute. Outside, every refusal
// looks the same: CONNACK "not authorised" (security.md §9).
const (
	reasonEmptyID       = "empty client id"
	reasonBadID         = "client id is not valid UTF-8 without control characters"
	reasonRateLimited   = "rate limited"
	reasonAnonymous     = "anonymous clients not allowed"
	reasonUnknownUser   = "unknown username"
	reasonBadPassword   = "wrong password"
	reasonPDAClientID   = "pda client id differs from username"
	reasonWillTopic     = "will topic not allowed"
	reasonWillFlags     = "pda will with retain or qos 2"
	reasonSessionInUse  = "client id belongs to another user's session"
	reasonNoPrincipal   = "no account for client"
	logThrottleInterval = time.Second
)

// principal is who a connected (or restored) client is: the role and own id its ACL uses.
type principal struct {
	username string
	role     topic.Role
	id       string
}

// counters backs [Stats]; every field is updated atomically.
type counters struct {
	refused, rateLimited, aclDenied, dropped, tooLarge, storeErrors atomic.Uint64
}

// authHook authenticates CONNECTs against the accounts and checks every subscription, publish
// and delivery against the topic registry ([topic.Allowed]). mochi drops hook errors other than
// a reject, so the hook logs each refusal itself before returning it.
type authHook struct {
	mqtt.HookBase
	log          *slog.Logger
	accounts     map[string]Account
	verifiers    map[string][][32]byte
	lookup       func(string) (Account, bool)
	allowViewers bool
	limit        *limiter
	c            *counters
	// sessionUser returns the username of the session mochi holds for a client id, if any.
	sessionUser func(clientID string) (string, bool)

	mu         sync.Mutex
	principals map[string]principal // by client id

	lastDropLog atomic.Int64 // unix nanoseconds of the last write-queue drop logged
}

// Interface guard.
var _ mqtt.Hook = (*authHook)(nil)

func newAuthHook(cfg Config, log *slog.Logger, c *counters, now func() time.Time) *authHook {
	h := &authHook{
		log:          log.With("component", "auth"),
		accounts:     map[string]Account{},
		verifiers:    map[string][][32]byte{},
		lookup:       cfg.Lookup,
		allowViewers: cfg.AllowViewers,
		limit:        newLimiter(now),
		c:            c,
		sessionUser:  func(string) (string, bool) { return "", false },
		principals:   map[string]principal{},
	}
	for _, a := range cfg.Accounts {
		h.verifiers[a.Username] = a.verifiers()
		a.Password, a.MoreSHA256, a.PasswordSHA256 = nil, nil, [32]byte{} // keep only the verifiers
		h.accounts[a.Username] = a
	}
	return h
}

// ID names the hook in mochi's logs.
func (h *authHook) ID() string { return "meterlink-auth" }

// Provides lists the hook methods mochi calls.
func (h *authHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPacketRead, mqtt.OnPacketEncode,
		mqtt.OnPublishDropped, mqtt.OnDisconnect, mqtt.OnClientExpired:
		return true
	}
	return false
}

// account finds username among the static accounts, then through Lookup.
func (h *authHook) account(username string) (Account, [][32]byte, bool) {
	if a, ok := h.accounts[username]; ok {
		return a, h.verifiers[username], true
	}
	if h.lookup != nil {
		if a, ok := h.lookup(username); ok && a.Username == username && a.validate() == nil {
			return a, a.verifiers(), true
		}
	}
	return Account{}, nil, false
}

// dummyVerifier keeps the time of a refusal for an unknown username like that of a wrong password.
var dummyVerifier = [][32]byte{sha256.Sum256([]byte("meterlink: no such account"))}

// checkPassword reports in constant time whether pw matches one of the verifiers.
func checkPassword(pw []byte, verifiers [][32]byte) bool {
	sum := sha256.Sum256(pw)
	ok := 0
	for _, v := range verifiers {
		ok |= subtle.ConstantTimeCompare(sum[:], v[:])
	}
	return ok == 1
}

// OnConnectAuthenticate admits a client whose credentials match an account (or an anonymous
// viewer when allowed) and whose client id and will respect its role.
func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	pw := pk.Connect.Password
	defer clear(pw) // the password is not needed after this call (security.md §14)
	user := string(pk.Connect.Username)
	id := pk.Connect.ClientIdentifier
	ip := remoteIP(cl.Net.Remote)
	refuse := func(reason string, credentials bool) bool {
		h.c.refused.Add(1)
		if credentials {
			blockIP := h.limit.fail("ip:" + ip)
			blockUser := user != "" && h.limit.fail("u:"+user)
			if blockIP || blockUser {
				h.log.Warn("authentication failures: blocking", "username", user, "remote", cl.Net.Remote,
					"block_username", blockUser, "block_ip", blockIP)
			}
		}
		h.log.Warn("connection refused", "client_id", id, "username", user, "remote", cl.Net.Remote, "reason", reason)
		return false
	}

	if id == "" {
		return refuse(reasonEmptyID, false)
	}
	if !validClientID(id) {
		return refuse(reasonBadID, false)
	}
	if h.limit.blocked("ip:"+ip) || (user != "" && h.limit.blocked("u:"+user)) {
		h.c.rateLimited.Add(1)
		return refuse(reasonRateLimited, false)
	}
	var p principal
	if user == "" {
		if !h.allowViewers {
			return refuse(reasonAnonymous, true)
		}
		p = principal{role: topic.RoleViewer}
	} else {
		a, verifiers, ok := h.account(user)
		if !ok {
			checkPassword(pw, dummyVerifier)
			return refuse(reasonUnknownUser, true)
		}
		if !checkPassword(pw, verifiers) {
			return refuse(reasonBadPassword, true)
		}
		p = principal{username: user, role: a.Role, id: a.selfID()}
	}
	if p.role == topic.RolePDA && id != user {
		return refuse(reasonPDAClientID, false)
	}
	if pk.Connect.WillFlag {
		// A will is published by the broker on the client's behalf, past OnACLCheck.
		if !topic.Allowed(p.role, p.id, pk.Connect.WillTopic, true) {
			return refuse(reasonWillTopic, false)
		}
		if p.role == topic.RolePDA && (pk.Connect.WillRetain || pk.Connect.WillQos > 1) {
			return refuse(reasonWillFlags, false)
		}
	}
	// Taking over another user's session would inherit its subscriptions and queued messages.
	if owner, ok := h.sessionUser(id); ok && owner != user {
		return refuse(reasonSessionInUse, false)
	}
	if user != "" {
		h.limit.reset("u:" + user)
	}
	h.mu.Lock()
	h.principals[id] = p
	h.mu.Unlock()
	h.log.Debug("client authenticated", "client_id", id, "username", user, "role", p.role, "remote", cl.Net.Remote)
	return true
}

// validClientID rejects ids that are not valid UTF-8 or hold control characters (MQTT forbids
// U+0000; the others have no use and make logs and store keys ambiguous).
func validClientID(id string) bool {
	if !utf8.ValidString(id) {
		return false
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func remoteIP(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}

// principalOf returns the principal of cl: the one recorded at authentication or, for a session
// restored from the store after a restart, the one its username resolves to now.
func (h *authHook) principalOf(cl *mqtt.Client) (principal, bool) {
	user := string(cl.Properties.Username)
	h.mu.Lock()
	p, ok := h.principals[cl.ID]
	h.mu.Unlock()
	if ok && p.username == user {
		return p, true
	}
	switch {
	case user == "" && h.allowViewers:
		p = principal{role: topic.RoleViewer}
	case user != "":
		a, _, ok := h.account(user)
		if !ok {
			return principal{}, false
		}
		p = principal{username: user, role: a.Role, id: a.selfID()}
	default:
		return principal{}, false
	}
	h.mu.Lock()
	h.principals[cl.ID] = p
	h.mu.Unlock()
	return p, true
}

// forget drops the cached principal of a client id.
func (h *authHook) forget(clientID string) {
	h.mu.Lock()
	delete(h.principals, clientID)
	h.mu.Unlock()
}

// OnACLCheck allows a subscription (write false, filter), publish (write true) or delivery
// (write false, topic name) when the topic registry allows it for the client's role.
func (h *authHook) OnACLCheck(cl *mqtt.Client, filter string, write bool) bool {
	p, ok := h.principalOf(cl)
	if !ok {
		h.c.aclDenied.Add(1)
		h.log.Warn("acl denied", "client_id", cl.ID, "username", string(cl.Properties.Username),
			"remote", cl.Net.Remote, "topic", filter, "publish", write, "reason", reasonNoPrincipal)
		return false
	}
	if topic.Allowed(p.role, p.id, filter, write) {
		return true
	}
	h.c.aclDenied.Add(1)
	h.log.Warn("acl denied", "client_id", cl.ID, "username", p.username, "role", p.role,
		"remote", cl.Net.Remote, "topic", filter, "publish", write, "reason", "not allowed by the topic registry")
	return false
}

// OnPacketRead refuses retained and QoS 2 publishes from PDAs (security.md §11) by closing the
// connection: OnACLCheck does not see these flags, and mochi would ignore any other error.
func (h *authHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish || (!pk.FixedHeader.Retain && pk.FixedHeader.Qos < 2) {
		return pk, nil
	}
	p, ok := h.principalOf(cl)
	if !ok || p.role != topic.RolePDA {
		return pk, nil
	}
	h.c.aclDenied.Add(1)
	h.log.Warn("acl denied", "client_id", cl.ID, "username", p.username, "role", p.role, "remote", cl.Net.Remote,
		"topic", pk.TopicName, "publish", true, "retain", pk.FixedHeader.Retain, "qos", pk.FixedHeader.Qos,
		"reason", "pda publish with retain or qos 2")
	return pk, packets.ErrRejectPacket
}

// v311Codes are the CONNACK return codes MQTT 3.1.1 defines.
var v311Codes = map[byte]bool{0: true, 1: true, 2: true, 3: true, 4: true, 5: true}

// OnPacketEncode makes sure an MQTT 3.1.1 client never receives a CONNACK refusal code that
// 3.1.1 does not define (mochi sends 0x80 for an empty client id with a persistent session,
// which paho v1.5.1 reads as success: paho issue #789, DESIGN §5), and logs and counts the
// CONNECT refusals that mochi makes before OnConnectAuthenticate.
func (h *authHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type != packets.Connack || pk.ReasonCode == 0 {
		return pk
	}
	v5 := cl.Properties.ProtocolVersion >= 5
	if (!v5 && pk.ReasonCode == packets.Err3NotAuthorized.Code) || (v5 && pk.ReasonCode == packets.ErrBadUsernameOrPassword.Code) {
		return pk // refused by OnConnectAuthenticate, already logged and counted
	}
	orig := pk.ReasonCode
	if !v5 && !v311Codes[pk.ReasonCode] {
		pk.ReasonCode = packets.Err3NotAuthorized.Code
		if cl.Properties.Props.AssignedClientID != "" {
			pk.ReasonCode = packets.Err3ClientIdentifierNotValid.Code
		}
	}
	clientID := cl.ID
	if cl.Properties.Props.AssignedClientID != "" {
		clientID = "" // mochi made one up for the log; the client sent none
	}
	h.c.refused.Add(1)
	h.log.Warn("connection refused", "client_id", clientID, "username", string(cl.Properties.Username),
		"remote", cl.Net.Remote, "reason", "invalid connect", "mochi_code", orig, "sent_code", pk.ReasonCode)
	return pk
}

// OnPublishDropped counts and logs a message dropped because the client's write queue was full.
func (h *authHook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	n := h.c.dropped.Add(1)
	now := time.Now().UnixNano()
	last := h.lastDropLog.Load()
	if now-last < int64(logThrottleInterval) || !h.lastDropLog.CompareAndSwap(last, now) {
		return // a slow consumer can drop thousands a second: one line a second carries the total
	}
	h.log.Warn("message dropped", "client_id", cl.ID, "topic", pk.TopicName, "qos", pk.FixedHeader.Qos,
		"reason", "client write queue full", "dropped_total", n)
}

// OnDisconnect forgets the principal of a client whose session ends with the connection.
func (h *authHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if expire && !cl.IsTakenOver() {
		h.forget(cl.ID)
	}
}

// OnClientExpired forgets the principal of an expired session.
func (h *authHook) OnClientExpired(cl *mqtt.Client) { h.forget(cl.ID) }
