package broker_test

import (
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/meterlink/meterlink/broker"
	"github.com/meterlink/meterlink/bus"
	"github.com/meterlink/meterlink/topic"
)

// TestRefusedIsSeenAsRefused is the paho issue #789 trap of DESIGN §5: every refusal must
// reach bus.Connect as bus.ErrRefused, never as a connection.
func TestRefusedIsSeenAsRefused(t *testing.T) {
	cfg := testConfig()
	cfg.AllowViewers = false
	tests := []struct {
		name string
		o    clientOpts
	}{
		{"wrong password", clientOpts{clientID: "ops-1", username: "ops", password: "guess"}},
		{"unknown username", clientOpts{clientID: "x-1", username: "nobody", password: "nobody-pw"}},
		{"empty password", clientOpts{clientID: "ops-1", username: "ops"}},
		{"another account's password", clientOpts{clientID: "ops-1", username: "ops", password: "P01-pw"}},
		{"anonymous without viewers", clientOpts{clientID: "dash-1"}},
		{"pda client id differs from username", clientOpts{clientID: "P01-x", username: "P01", password: "P01-pw"}},
		{"pda with another pda's client id", clientOpts{clientID: "P02", username: "P01", password: "P01-pw"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startBroker(t, cfg) // one per case: the rate limit is per IP, and all come from 127.0.0.1
			tt.o.url = b.URL()
			c, err := connect(t, tt.o)
			if !errors.Is(err, bus.ErrRefused) {
				t.Fatalf("Connect = %v, want bus.ErrRefused", err)
			}
			if c.IsConnected() {
				t.Error("client reports a live connection after a refusal")
			}
			// paho v1.5.1 retries a refused 3.1.1 CONNECT as MQTT 3.1 unless the version is set,
			// so one bus.Connect may be two refusals.
			if s := b.Stats(); s.ConnectionsRefused == 0 || s.ClientsConnected != 0 {
				t.Errorf("stats = %+v, want refusals and no client connected", s)
			}
			// The right credentials still work: a couple of failures do not block.
			login(t, b.URL(), "ops", "ops-2")
		})
	}
}

// TestRawRefusals checks the CONNACK codes a 3.1.1 client gets for an empty client id: mochi
// itself answers 0x80 (undefined in 3.1.1) for a persistent session, which the broker maps to
// 0x02 "identifier rejected".
func TestRawRefusals(t *testing.T) {
	b := startBroker(t, testConfig())
	for _, tc := range []struct {
		name  string
		clean bool
		want  byte
	}{
		{"persistent", false, packets.Err3ClientIdentifierNotValid.Code},
		{"clean", true, packets.Err3NotAuthorized.Code},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, b.Addr())
			if ack := rc.connect("", "ops", tc.clean); ack.ReasonCode != tc.want {
				t.Errorf("CONNACK code = %#x, want %#x", ack.ReasonCode, tc.want)
			}
		})
	}
	if got := b.Stats().ConnectionsRefused; got != 2 {
		t.Errorf("ConnectionsRefused = %d, want 2", got)
	}
}

func TestRateLimit(t *testing.T) {
	b := startBroker(t, testConfig())
	for i := range 5 {
		_, err := connect(t, clientOpts{url: b.URL(), clientID: "P01", username: "P01", password: "wrong"})
		if !errors.Is(err, bus.ErrRefused) {
			t.Fatalf("attempt %d: %v, want bus.ErrRefused", i+1, err)
		}
	}
	// 5 failed CONNECTs (bus speaks MQTT 3.1.1 only, so one per Connect) block the username
	// and the IP.
	if s := b.Stats(); s.ConnectionsRefused != 5 || s.RateLimited != 0 {
		t.Fatalf("after 5 failed logins: stats = %+v, want 5 refused, none rate limited yet", s)
	}
	before := b.Stats()
	// Blocked now: the right password is refused unchecked, and so is every username from this
	// IP, for a minute.
	for _, o := range []clientOpts{
		{clientID: "P01", username: "P01", password: "P01-pw"},
		{clientID: "ops-1", username: "ops", password: "ops-pw"},
	} {
		o.url = b.URL()
		if _, err := connect(t, o); !errors.Is(err, bus.ErrRefused) {
			t.Errorf("%s while blocked: %v, want bus.ErrRefused", o.username, err)
		}
	}
	if s := b.Stats(); s.RateLimited-before.RateLimited < 2 || s.RateLimited-before.RateLimited != s.ConnectionsRefused-before.ConnectionsRefused {
		t.Errorf("while blocked: stats = %+v (before %+v), want only rate-limited refusals", s, before)
	}
}

func TestSessionOfAnotherUserRefused(t *testing.T) {
	b := startBroker(t, testConfig())
	login(t, b.URL(), "ops", "consumer-1")
	_, err := connect(t, clientOpts{url: b.URL(), clientID: "consumer-1", username: "hh1", password: "hh1-pw"})
	if !errors.Is(err, bus.ErrRefused) {
		t.Fatalf("taking over ops' session as hh1: %v, want bus.ErrRefused", err)
	}
	_, err = connect(t, clientOpts{url: b.URL(), clientID: "consumer-1"})
	if !errors.Is(err, bus.ErrRefused) {
		t.Fatalf("taking over ops' session anonymously: %v, want bus.ErrRefused", err)
	}
}

func TestWillMustBeAllowed(t *testing.T) {
	b := startBroker(t, testConfig())
	rc := dialRaw(t, b.Addr())
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}}
	pk.Connect = packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: "P01", Clean: true, Keepalive: 30,
		UsernameFlag: true, Username: []byte("P01"), PasswordFlag: true, Password: []byte("P01-pw"),
		WillFlag: true, WillTopic: topic.PDADown("P02"), WillPayload: []byte("forged")}
	rc.send(pk)
	if ack := rc.mustRead(packets.Connack); ack.ReasonCode != packets.Err3NotAuthorized.Code {
		t.Errorf("CONNACK code = %#x, want %#x", ack.ReasonCode, packets.Err3NotAuthorized.Code)
	}
}

// TestLookupAccounts: accounts from Lookup (ops' PDAs) with a current and a pending verifier,
// so that SID rotation never locks a PDA out (security.md §11).
func TestLookupAccounts(t *testing.T) {
	cfg := testConfig()
	cfg.Lookup = func(user string) (broker.Account, bool) {
		if user != "P77" {
			return broker.Account{}, false
		}
		return broker.Account{Username: "P77", Role: topic.RolePDA,
			PasswordSHA256: sha256.Sum256([]byte("e1.cur")), MoreSHA256: [][32]byte{sha256.Sum256([]byte("e2.pending"))}}, true
	}
	b := startBroker(t, cfg)
	for _, pw := range []string{"e1.cur", "e2.pending"} {
		c, err := connect(t, clientOpts{url: b.URL(), clientID: "P77", username: "P77", password: pw})
		if err != nil {
			t.Fatalf("P77 with %s: %v", pw, err)
		}
		if err := c.Subscribe(ctx5(t), topic.PDADown("P77"), 1, newInbox().handle); err != nil {
			t.Errorf("P77 subscribe own down: %v", err)
		}
		if err := c.Subscribe(ctx5(t), topic.PDADown("P01"), 1, newInbox().handle); !errors.Is(err, bus.ErrRefused) {
			t.Errorf("P77 subscribe P01's down: %v, want bus.ErrRefused", err)
		}
		_ = c.Close()
	}
	if _, err := connect(t, clientOpts{url: b.URL(), clientID: "P77", username: "P77", password: "e0.old"}); !errors.Is(err, bus.ErrRefused) {
		t.Errorf("P77 with a stale password: %v, want bus.ErrRefused", err)
	}
}

func TestDisconnect(t *testing.T) {
	b := startBroker(t, testConfig())
	onLost, lost := lostSignal()
	if _, err := connect(t, clientOpts{url: b.URL(), clientID: "P01", username: "P01", password: "P01-pw", onLost: onLost}); err != nil {
		t.Fatal(err)
	}
	if !b.Disconnect("P01") {
		t.Fatal("Disconnect(P01) = false, want true")
	}
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("client not disconnected within 5s")
	}
	if b.Disconnect("nobody") {
		t.Error("Disconnect(nobody) = true, want false")
	}
}
