package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/meterlink/meterlink/broker"
	"github.com/meterlink/meterlink/broker/brokertest"
	"github.com/meterlink/meterlink/bus"
	"github.com/meterlink/meterlink/noisehs"
	"github.com/meterlink/meterlink/topic"
	"github.com/meterlink/meterlink/wire"
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

// run starts o.Run and returns a function that stops it and checks that it stopped cleanly.
func run(t *testing.T, o *Ops) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	return func() {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v, want nil after cancel", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	}
}

func TestNewPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig()
	cfg.HTTPAddr = ln.Addr().String()
	o, err := New(cfg, testLog())
	if err == nil {
		o.Close()
		t.Fatal("New on a port in use succeeded")
	}
	if !strings.Contains(err.Error(), cfg.HTTPAddr) {
		t.Errorf("New error %q does not name %s", err, cfg.HTTPAddr)
	}
}

func TestRunWithoutBrokerStopsCleanly(t *testing.T) {
	base := runtime.NumGoroutine()
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "tcp://" + dead.Addr().String()
	dead.Close() // nothing listens there now: every connect fails

	cfg := testConfig()
	cfg.BrokerURL = deadURL
	cfg.DataDir = t.TempDir()
	o, err := New(cfg, testLog())
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, o)
	client := &http.Client{Transport: &http.Transport{}}
	var h struct {
		Status          string `json:"status"`
		BrokerConnected bool   `json:"broker_connected"`
	}
	waitFor(t, 5*time.Second, func() error {
		resp, err := client.Get("http://" + o.HTTPAddr() + "/api/v1/health")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(&h)
	})
	if h.Status != "ok" || h.BrokerConnected {
		t.Errorf("health = %+v, want ok and not connected", h)
	}
	client.CloseIdleConnections()
	stop()
	if err := o.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if err := o.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	waitFor(t, 5*time.Second, func() error {
		if n := runtime.NumGoroutine(); n > base {
			return fmt.Errorf("%d goroutines, %d before New", n, base)
		}
		return nil
	})
}

func TestThroughBroker(t *testing.T) {
	b := brokertest.Start(t, broker.Config{
		AllowViewers: true,
		Accounts: []broker.Account{
			{Username: "ops", Password: []byte("ops-secret"), Role: topic.RoleOps},
			{Username: "P01", Password: []byte("p01-secret"), Role: topic.RolePDA},
		},
	})
	cfg := testConfig()
	cfg.BrokerURL = b.URL()
	cfg.Password = "ops-secret"
	o, err := New(cfg, testLog())
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if err := o.Provision(context.Background(), testDataset()); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := func(id, user, pw string) *bus.Client {
		c, err := bus.New(bus.Config{URL: b.URL(), ClientID: id, Username: user, CleanSession: true, Logger: testLog(),
			Password: func() string { return pw }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Connect(ctx); err != nil {
			t.Fatalf("connect %s: %v", id, err)
		}
		return c
	}
	collect := func(c *bus.Client, filter string) chan bus.Message {
		ch := make(chan bus.Message, 16)
		if err := c.Subscribe(ctx, filter, 1, func(_ context.Context, m bus.Message) error { ch <- m; return nil }); err != nil {
			t.Fatalf("subscribe %s: %v", filter, err)
		}
		return ch
	}
	next := func(ch chan bus.Message, what string) bus.Message {
		t.Helper()
		select {
		case m := <-ch:
			return m
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s within 10s", what)
		}
		return bus.Message{}
	}

	viewer := client("dash-1", "", "")
	status := collect(viewer, topic.OpsStatus("ops"))
	events := collect(viewer, topic.OpsReadingsAll)
	pda := client("P01", "P01", "p01-secret")
	acks := collect(pda, topic.PDADown("P01"))

	stop := run(t, o)
	var st wire.Status
	if m := next(status, "status"); json.Unmarshal(m.Payload, &st) != nil || st.State != "up" {
		t.Fatalf("status %s, want up", m.Payload)
	}

	// The PDA's SECLINK/1 handshake through the broker: HS_INIT, HS_RESP, CONFIRM, COMMIT.
	hs := collect(pda, topic.PDAHandshakeDown("P01"))
	sp := newTestPDA(t, o, "P01", sidP01)
	send := func(tp string, f []byte) {
		t.Helper()
		if err := pda.Publish(ctx, tp, 1, false, f); err != nil {
			t.Fatal(err)
		}
	}
	send(sp.hsInit())
	send(sp.hsResp(next(hs, "hs_resp").Payload))
	if m := next(acks, "commit"); sp.open(m.Topic, m.Payload).Kind != noisehs.KindCommit {
		t.Fatal("no commit after confirm")
	}
	now := time.Now().UnixMilli()
	hb := batch("H01-9", rec(1, now), rec(2, now+1))
	send(sp.batch(hb))
	m := next(acks, "ack")
	ack := sp.ack(m.Topic, m.Payload)
	if len(ack.Records) != 2 || ack.ID != "H01-9" {
		t.Errorf("ack = %+v, want both records of H01-9", ack)
	}
	// The handheld's first upload also brings it its groups (jobs.go).
	if m := next(acks, "groups"); sp.open(m.Topic, m.Payload).Kind != noisehs.KindGroups {
		t.Error("no groups pushed after the handheld's first batch")
	}
	for seq := uint64(1); seq <= 2; seq++ {
		var ev wire.ReadingEvent
		m := next(events, "reading event")
		if json.Unmarshal(m.Payload, &ev) != nil || ev.Seq != seq || m.Topic != topic.OpsReadings("D01", "T0001") {
			t.Errorf("event on %s = %s, want seq %d", m.Topic, m.Payload, seq)
		}
	}

	// A resend (the PDA missed the ack) is acknowledged again and stored once.
	send(sp.batch(hb))
	m = next(acks, "second ack")
	if ack := sp.ack(m.Topic, m.Payload); len(ack.Records) != 2 {
		t.Errorf("second ack = %+v", ack)
	}
	if n := len(allReadings(t, o)); n != 4 {
		t.Errorf("%d meter readings stored, want 4", n)
	}

	resp, err := http.Get("http://" + o.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"meterlink_ops_messages_ingested_total 2", "meterlink_ops_records_duplicate_total 2",
		`meterlink_ops_records_stored_total{kind="reading"} 2`, `meterlink_ops_published_total{kind="ack"} 2`, `meterlink_ops_published_total{kind="hs_resp"} 1`} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("metrics lack %q", want)
		}
	}

	stop()
	if m := next(status, "status down"); json.Unmarshal(m.Payload, &st) != nil || st.State != "down" {
		t.Errorf("status %s after stop, want down", m.Payload)
	}
}

func TestMain_(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	tests := []struct {
		name    string
		args    []string
		getenv  func(string) string
		wantErr string // "" for success
		wantOut string
	}{
		{"help", []string{"-help"}, env(), "", "Usage: meterlink ops"},
		{"check config", []string{"-check-config", "-data-dir", ":memory:"}, env(), "", "configuration ok"},
		{"bad retention", []string{"-retention", "soon"}, env(), "retention", ""},
		{"bad http", []string{"-check-config", "-http", "8080"}, env(), "http", ""},
		{"bad broker url from env", []string{"-check-config"}, env("METERLINK_BROKER_URL", "localhost"), "broker-url", ""},
		{"bad log level", []string{"-check-config", "-log-level", "loud"}, env(), "log-level", ""},
		{"bad group", []string{"-check-config", "-group", "a/b"}, env(), "group", ""},
		{"stray argument", []string{"run"}, env(), "unexpected arguments", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := Main(context.Background(), tt.args, tt.getenv, &out, &errOut)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Main(%q) = %v", tt.args, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Main(%q) = %v, want an error naming %q", tt.args, err, tt.wantErr)
			}
			if !strings.Contains(out.String()+errOut.String(), tt.wantOut) {
				t.Errorf("Main(%q) output %q lacks %q", tt.args, out.String()+errOut.String(), tt.wantOut)
			}
		})
	}
}

func TestMainRuns(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var errOut bytes.Buffer
	dir := t.TempDir()
	go func() {
		done <- Main(ctx, []string{"-http", "127.0.0.1:0", "-data-dir", dir, "-broker-url", "tcp://127.0.0.1:1", "-log-level", "error"},
			func(string) string { return "" }, io.Discard, &errOut)
	}()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Main = %v, want nil on cancel", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Main did not return after cancel")
	}
}

func TestConfigLogValueHidesPassword(t *testing.T) {
	c := testConfig()
	c.Password = "hunter2"
	if s := c.LogValue().String(); strings.Contains(s, "hunter2") {
		t.Errorf("LogValue shows the password: %s", s)
	}
}

func TestUpFilter(t *testing.T) {
	c := testConfig()
	if got := c.upFilter(); got != topic.OpsUpShared {
		t.Errorf("upFilter(ops) = %q, want %q", got, topic.OpsUpShared)
	}
	c.Group = "ops-b"
	if got, want := c.upFilter(), "$share/ops-b/meterlink/v1/pda/+/up"; got != want {
		t.Errorf("upFilter(ops-b) = %q, want %q", got, want)
	}
}
