package terminal

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meterlink/meterlink/mqttsn"
	"github.com/meterlink/meterlink/topic"
	"github.com/meterlink/meterlink/wire"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

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

func testConfig(t testing.TB, store string) Config {
	cfg := DefaultConfig()
	cfg.ID = "T0001"
	cfg.StorePath = store
	cfg.Interval = time.Hour
	cfg.Retry = 50 * time.Millisecond
	cfg.Channels = []ChannelConfig{
		{Channel: 1, Meter: "M1", Constant: 3200, BaseWh: 1_000_000, Multiplier: 1},
		{Channel: 16, Meter: "M16", Constant: 1600, BaseWh: 0, Multiplier: 10},
	}
	return cfg
}

func TestReadingIsBasePlusPulsesOverConstant(t *testing.T) {
	term, err := New(testConfig(t, ":memory:"), discard())
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	if err := term.Pulse(1, 4800); err != nil {
		t.Fatal(err)
	}
	if err := term.Pulse(16, 800); err != nil {
		t.Fatal(err)
	}
	r, err := term.Collect()
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint8]int64{1: 1_000_000 + 1_500, 16: 500}
	if r.Seq != 1 || len(r.Channels) != 2 {
		t.Fatalf("record = %+v, want seq 1 with 2 channels", r)
	}
	for _, c := range r.Channels {
		if c.EnergyWh != want[c.Channel] {
			t.Errorf("channel %d: %d Wh, want %d", c.Channel, c.EnergyWh, want[c.Channel])
		}
	}
	if err := term.Pulse(7, 1); !errors.Is(err, ErrUnknownChannel) {
		t.Errorf("pulse on channel 7: err = %v, want ErrUnknownChannel", err)
	}
}

func TestCounterWrapIsSafe(t *testing.T) {
	st := channelState{Constant: 1000, BaseWh: 5000, CountBase: ^uint64(0) - 99, Count: 400}
	// 100 pulses before the wrap and 400 after: 500 pulses = 500 Wh at 1000 imp/kWh.
	if got := st.energyWh(); got != 5500 {
		t.Errorf("energy across a counter wrap = %d Wh, want 5500", got)
	}
}

func TestRestartKeepsCountersSeqAndOutbox(t *testing.T) {
	path := filepath.Join(t.TempDir(), "terminal.db")
	term, err := New(testConfig(t, path), discard())
	if err != nil {
		t.Fatal(err)
	}
	term.Pulse(1, 3200)
	if _, err := term.Collect(); err != nil {
		t.Fatal(err)
	}
	term.Pulse(1, 100) // counted after the last collection
	// Run without a gateway and stop: the counters are saved at stop.
	ctx, cancel := context.WithCancel(context.Background())
	cfgRun := make(chan error, 1)
	go func() { cfgRun <- term.Run(ctx) }()
	cancel()
	if err := <-cfgRun; err != nil {
		t.Fatal(err)
	}

	again, err := New(testConfig(t, path), discard())
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if n := again.Pending(); n != 1 {
		t.Errorf("outbox after restart holds %d records, want 1", n)
	}
	r, err := again.Collect()
	if err != nil {
		t.Fatal(err)
	}
	if r.Seq != 2 || r.Channels[0].Pulses != 3300 {
		t.Errorf("after restart: seq %d, %d pulses; want seq 2, 3300 pulses", r.Seq, r.Channels[0].Pulses)
	}
}

func TestConfigValidateNamesEveryProblem(t *testing.T) {
	cfg := testConfig(t, ":memory:")
	cfg.ID = "bad id"
	cfg.Gateway = "tcp://x"
	cfg.Interval = time.Millisecond
	cfg.Channels = append(cfg.Channels, ChannelConfig{Channel: 17, Meter: "", Constant: 0, BaseWh: -1})
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad config")
	}
	for _, want := range []string{"id", "gateway", "interval", "channel 17", "impulse constant", "meter id", "base reading"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %q, does not name %q", err, want)
		}
	}
}

// gateway runs a real MQTT-SN gateway on loopback whose OnPublish is f.
func gateway(t *testing.T, f func(clientID, topic string, payload []byte) error) (*mqttsn.Gateway, string) {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gw, err := mqttsn.NewGateway(conn, mqttsn.GatewayConfig{
		Predefined: func(id string) map[uint16]string {
			out := map[uint16]string{}
			for name, n := range topic.RadioPredefined(id) {
				out[n] = name
			}
			return out
		},
		OnPublish:     func(_ context.Context, id, tp string, p []byte) error { return f(id, tp, p) },
		RetryInterval: 50 * time.Millisecond,
		Logger:        discard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); gw.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; conn.Close() })
	return gw, "udp://" + conn.LocalAddr().String()
}

// TestRecordLeavesOnlyAfterPUBACK: while the gateway refuses to acknowledge, the record stays
// in the terminal's outbox; once it acknowledges, the outbox drains, in order.
func TestRecordLeavesOnlyAfterPUBACK(t *testing.T) {
	var accept atomic.Bool
	var refused atomic.Int32
	var mu sync.Mutex
	var got []uint64
	_, url := gateway(t, func(_, tp string, p []byte) error {
		if !accept.Load() {
			refused.Add(1)
			return errors.New("store full")
		}
		r, err := wire.UnmarshalRadio(p)
		if err != nil {
			t.Errorf("gateway got a bad payload on %s: %v", tp, err)
			return nil
		}
		mu.Lock()
		got = append(got, r.Seq)
		mu.Unlock()
		return nil
	})
	cfg := testConfig(t, ":memory:")
	cfg.Gateway = url
	term, err := New(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- term.Run(ctx) }()
	defer func() { cancel(); <-done }()

	for i := 0; i < 3; i++ {
		if _, err := term.Collect(); err != nil {
			t.Fatal(err)
		}
	}
	// Let the terminal meet several refusals (retransmissions of the first record).
	waitFor(t, 10*time.Second, func() error {
		if refused.Load() < 3 {
			return errors.New("fewer than 3 refusals so far")
		}
		return nil
	})
	if n := term.Pending(); n != 3 {
		t.Fatalf("pending while the gateway refuses = %d, want 3", n)
	}
	accept.Store(true)
	waitFor(t, 20*time.Second, func() error {
		if n := term.Pending(); n != 0 {
			return errors.New("outbox not drained")
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if len(got) < 3 || got[0] != 1 || got[len(got)-1] != 3 {
		t.Errorf("gateway received seqs %v, want 1, 2, 3 in order", got)
	}
}

func TestCommandsAreCheckedBeforeAnythingChanges(t *testing.T) {
	acks := make(chan wire.CommandAck, 4)
	gw, url := gateway(t, func(_, tp string, p []byte) error {
		if strings.HasSuffix(tp, "/ack") {
			var a wire.CommandAck
			json.Unmarshal(p, &a)
			acks <- a
		}
		return nil
	})
	cfg := testConfig(t, ":memory:")
	cfg.Gateway = url
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	cfg.Now = func() time.Time { return now }
	term, err := New(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- term.Run(ctx) }()
	defer func() { cancel(); <-done }()

	tests := []struct {
		name    string
		payload string
		code    wire.AckCode
	}{
		{"malformed", `{"v":1,`, wire.AckInvalid},
		{"other terminal", `{"v":1,"id":"c1","terminal":"T0002","op":"collect"}`, wire.AckInvalid},
		{"expired", `{"v":1,"id":"c2","terminal":"T0001","op":"collect","expires_ms":1}`, wire.AckExpired},
		{"unsupported", `{"v":1,"id":"c3","terminal":"T0001","op":"format_disk"}`, wire.AckUnsupported},
		{"read clock", `{"v":1,"id":"c4","terminal":"T0001","op":"read_clock"}`, wire.AckOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			waitFor(t, 10*time.Second, func() error {
				pctx, pcancel := context.WithTimeout(ctx, time.Second)
				defer pcancel()
				return gw.Publish(pctx, "T0001", topic.RadioCommands("T0001"), 1, []byte(tt.payload))
			})
			select {
			case a := <-acks:
				if a.Code != tt.code {
					t.Errorf("ack code %d (%s), want %d", a.Code, a.Detail, tt.code)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no ack")
			}
		})
	}
	if n := term.Pending(); n != 0 {
		t.Errorf("refused commands made %d records", n)
	}
}
