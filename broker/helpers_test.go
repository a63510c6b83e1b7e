package broker_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/meterlink/meterlink/broker"
	"github.com/meterlink/meterlink/broker/brokertest"
	"github.com/meterlink/meterlink/bus"
	"github.com/meterlink/meterlink/topic"
)

func waitFor(t testing.TB, within time.Duration, cond func() error) {
	t.Helper()
	end := time.Now().Add(within)
	for err := cond(); err != nil; err = cond() {
		if time.Now().After(end) {
			t.Fatalf("still failing after %v: %v", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Passwords of the test accounts are "<username>-pw".
func testAccounts() []broker.Account {
	acct := func(user string, role topic.Role, id string) broker.Account {
		return broker.Account{Username: user, Password: []byte(user + "-pw"), Role: role, ID: id}
	}
	return []broker.Account{
		acct("ops", topic.RoleOps, ""),
		acct("bridge", topic.RoleBridge, ""),
		acct("P01", topic.RolePDA, ""),
		acct("P02", topic.RolePDA, "P02"),
		acct("hh1", topic.RoleHandheld, "H01"),
		acct("hh2", topic.RoleHandheld, "H02"),
	}
}

func testConfig() broker.Config {
	cfg := broker.DefaultConfig()
	cfg.Accounts = testAccounts()
	cfg.AllowViewers = true
	return cfg
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

type clientOpts struct {
	url, clientID, username, password string
	persistent                        bool
	onLost                            func(error)
}

// connect connects a bus client and closes it when the test ends.
func connect(t testing.TB, o clientOpts) (*bus.Client, error) {
	t.Helper()
	cfg := bus.Config{URL: o.url, ClientID: o.clientID, Username: o.username, CleanSession: !o.persistent,
		Logger: discard, OnLost: o.onLost, MaxReconnect: 200 * time.Millisecond}
	if o.password != "" {
		pw := o.password
		cfg.Password = func() string { return pw }
	}
	c, err := bus.New(cfg)
	if err != nil {
		t.Fatalf("bus.New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c, c.Connect(ctx)
}

// login connects as username (password "<username>-pw", or anonymous when username is "")
// and fails the test if the broker refuses.
func login(t testing.TB, url, username, clientID string) *bus.Client {
	t.Helper()
	o := clientOpts{url: url, clientID: clientID, username: username}
	if username != "" {
		o.password = username + "-pw"
	}
	c, err := connect(t, o)
	if err != nil {
		t.Fatalf("connect %s as %q: %v", clientID, username, err)
	}
	return c
}

func ctx5(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// inbox collects received messages.
type inbox struct {
	ch chan bus.Message
}

func newInbox() *inbox { return &inbox{ch: make(chan bus.Message, 100)} }

func (in *inbox) handle(_ context.Context, m bus.Message) error {
	in.ch <- m
	return nil
}

func (in *inbox) next(t testing.TB) bus.Message {
	t.Helper()
	select {
	case m := <-in.ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
		return bus.Message{}
	}
}

// lostSignal returns an OnLost callback and a channel closed on the first connection loss.
func lostSignal() (func(error), <-chan struct{}) {
	ch := make(chan struct{})
	var once sync.Once
	return func(error) { once.Do(func() { close(ch) }) }, ch
}

func startBroker(t testing.TB, cfg broker.Config) *brokertest.Broker {
	t.Helper()
	return brokertest.Start(t, cfg)
}

// rawConn is a bare MQTT 3.1.1 client built on mochi's packet codec, for what paho cannot do or
// hides: an empty client id, reading the packets a broker sends right after CONNACK.
type rawConn struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rawConn{t: t, c: c, r: newReader(c)}
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

func (rc *rawConn) send(pk packets.Packet) {
	rc.t.Helper()
	pk.ProtocolVersion = 4
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		err = fmt.Errorf("rawConn cannot send packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		rc.t.Fatalf("encode: %v", err)
	}
	if _, err := rc.c.Write(buf.Bytes()); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// read returns the next packet from the broker, or an error (io.EOF when it closed the
// connection) within 5s.
func (rc *rawConn) read() (packets.Packet, error) {
	_ = rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var pk packets.Packet
	pk.ProtocolVersion = 4
	b, err := rc.r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(rc.r)
	if err != nil {
		return pk, err
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(rc.r, body); err != nil {
		return pk, err
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Pingresp:
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	default:
		err = fmt.Errorf("unexpected packet type %d", pk.FixedHeader.Type)
	}
	return pk, err
}

func (rc *rawConn) mustRead(want byte) packets.Packet {
	rc.t.Helper()
	pk, err := rc.read()
	if err != nil {
		rc.t.Fatalf("read packet type %d: %v", want, err)
	}
	if pk.FixedHeader.Type != want {
		rc.t.Fatalf("read packet type %d (%s), want %d", pk.FixedHeader.Type, strings.TrimSpace(fmt.Sprint(pk.TopicName, " ", string(pk.Payload))), want)
	}
	return pk
}

// connect sends CONNECT and returns the CONNACK.
func (rc *rawConn) connect(clientID, username string, clean bool) packets.Packet {
	rc.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}}
	pk.Connect = packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: clientID, Clean: clean, Keepalive: 30}
	if username != "" {
		pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte(username)
		pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte(username+"-pw")
	}
	rc.send(pk)
	return rc.mustRead(packets.Connack)
}

func (rc *rawConn) subscribe(id uint16, filter string, qos byte) []byte {
	rc.t.Helper()
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: id,
		Filters: packets.Subscriptions{{Filter: filter, Qos: qos}}})
	return rc.mustRead(packets.Suback).ReasonCodes
}

func (rc *rawConn) puback(id uint16) {
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: id})
}

func (rc *rawConn) disconnect() {
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	_ = rc.c.Close()
}
