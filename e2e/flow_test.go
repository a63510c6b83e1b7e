package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/meterlink/meterlink/bus"
	"github.com/meterlink/meterlink/demo"
	"github.com/meterlink/meterlink/lab"
	"github.com/meterlink/meterlink/terminal"
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

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("METERLINK_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// labConfig is a lab on free loopback ports in a temporary directory, without simulated
// meters (the tests make the pulses) and with automatic collection out of the way.
func labConfig(t testing.TB, terminals int) lab.Config {
	cfg := lab.DefaultConfig()
	cfg.MQTTAddr, cfg.WSAddr, cfg.HTTPAddr = "127.0.0.1:0", "", "127.0.0.1:0"
	cfg.PDAAddr, cfg.MQTTSNAddr, cfg.HHAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Terminals, cfg.Districts = terminals, 1
	cfg.Interval = time.Hour
	cfg.ResendAfter = time.Second
	cfg.Parts = []string{lab.PartBroker, lab.PartOps, lab.PartPDA, lab.PartHandheld, lab.PartTerminals}
	return cfg
}

// startLab starts a lab and stops it at the end of the test, checking it stopped cleanly.
func startLab(t testing.TB, cfg lab.Config) *lab.Lab {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l, err := lab.New(ctx, cfg, func(string) string { return "" }, testLogger(t))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("lab stopped with error: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("lab did not stop within 15s")
		}
	})
	return l
}

type apiReading struct {
	Kind     string `json:"kind"`
	Terminal string `json:"terminal"`
	Seq      uint64 `json:"seq"`
	Meter    string `json:"meter"`
	Channel  uint8  `json:"ch"`
	Pulses   uint64 `json:"pulses"`
	EnergyWh int64  `json:"energy_wh"`
	District string `json:"district"`
}

func readings(t testing.TB, httpAddr, query string) ([]apiReading, error) {
	resp, err := http.Get("http://" + httpAddr + "/api/v1/readings?" + query)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("GET readings?%s: %s %s", query, resp.Status, b)
	}
	var body struct {
		Readings []apiReading `json:"readings"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	// Only readings: terminals also make a daily frozen record (kind "frozen") when they start.
	var out []apiReading
	for _, r := range body.Readings {
		if r.Kind == "reading" {
			out = append(out, r)
		}
	}
	return out, nil
}

func terminalByID(t testing.TB, l *lab.Lab, id string) *terminal.Terminal {
	for _, term := range l.Terminals {
		if term.ID() == id {
			return term
		}
	}
	t.Fatalf("lab has no terminal %s", id)
	return nil
}

// TestPulsesArriveInOpsAsKWh is the spine: a meter's pulses, counted by a terminal, reach ops
// through MQTT-SN, the handheld, the PDA and the broker as base reading + pulses / constant,
// exactly once, and every outbox on the way is empty afterwards.
func TestPulsesArriveInOpsAsKWh(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end chain skipped under -short")
	}
	l := startLab(t, labConfig(t, 2))
	httpAddr := l.Config().HTTPAddr

	// A dashboard watches the ops events as an anonymous viewer.
	events := make(chan wire.ReadingEvent, 16)
	viewer, err := bus.New(bus.Config{URL: "tcp://" + l.Config().MQTTAddr, ClientID: "dashboard-test", CleanSession: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := viewer.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer viewer.Close()
	if err := viewer.Subscribe(ctx, topic.OpsReadingsAll, 0, func(_ context.Context, m bus.Message) error {
		var ev wire.ReadingEvent
		if json.Unmarshal(m.Payload, &ev) == nil {
			events <- ev
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	ch1 := demo.TerminalChannels("T0001")[0] // 3200 imp/kWh
	term := terminalByID(t, l, "T0001")
	const pulses = 4800 // 1.5 kWh at 3200 imp/kWh
	if err := term.Pulse(1, pulses); err != nil {
		t.Fatal(err)
	}
	rec, err := term.Collect()
	if err != nil {
		t.Fatal(err)
	}
	wantWh := ch1.BaseWh + pulses*1000/int64(ch1.Constant)

	var got []apiReading
	waitFor(t, 20*time.Second, func() error {
		rs, err := readings(t, httpAddr, "meter="+ch1.Meter)
		if err != nil {
			return err
		}
		if len(rs) == 0 {
			return fmt.Errorf("no reading of %s in ops yet", ch1.Meter)
		}
		got = rs
		return nil
	})
	if len(got) != 1 {
		t.Fatalf("ops holds %d readings of %s, want exactly 1: %+v", len(got), ch1.Meter, got)
	}
	if r := got[0]; r.Seq != rec.Seq || r.Pulses != pulses || r.EnergyWh != wantWh || r.District != "D01" {
		t.Errorf("ops reading = %+v, want seq %d, %d pulses, %d Wh (%.3f kWh) in D01", r, rec.Seq, pulses, wantWh, float64(wantWh)/1000)
	}

	select {
	case ev := <-events:
		if ev.Terminal != "T0001" || ev.Seq != rec.Seq || len(ev.Channels) != demo.ChannelsPerTerminal {
			t.Errorf("ops event = %+v, want T0001 seq %d with 16 channels", ev, rec.Seq)
		}
	case <-ctx.Done():
		t.Fatal("no ops event reached the dashboard")
	}

	// Every hop deletes only after the end-to-end acknowledgement: all outboxes drain.
	waitFor(t, 20*time.Second, func() error {
		if n, h, p := term.Pending(), l.Handheld.Pending(), l.Bridge.Pending(); n+h+p != 0 {
			return fmt.Errorf("pending: terminal %d, handheld %d, pda %d", n, h, p)
		}
		return nil
	})
	rs, err := readings(t, httpAddr, "terminal=T0001")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != demo.ChannelsPerTerminal {
		t.Errorf("ops holds %d channel readings of T0001, want %d (one record, stored once)", len(rs), demo.ChannelsPerTerminal)
	}
}

// TestCommandIsAcknowledged sends a "collect" command from the handheld to a terminal over
// MQTT-SN: the terminal answers with an ack, and the reading it made reaches ops.
func TestCommandIsAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end chain skipped under -short")
	}
	l := startLab(t, labConfig(t, 2))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ack wire.CommandAck
	waitFor(t, 20*time.Second, func() error {
		cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
		defer ccancel()
		var err error
		ack, err = l.Handheld.SendCommand(cctx, wire.Command{ID: fmt.Sprint("c-", time.Now().UnixNano()), Terminal: "T0002", Op: "collect"})
		return err
	})
	if ack.Code != wire.AckOK || ack.Terminal != "T0002" {
		t.Fatalf("ack = %+v, want code 0 from T0002", ack)
	}
	var res struct{ Seq uint64 }
	if err := json.Unmarshal(ack.Result, &res); err != nil || res.Seq == 0 {
		t.Fatalf("ack result %s: want the new record's seq", ack.Result)
	}
	waitFor(t, 20*time.Second, func() error {
		rs, err := readings(t, l.Config().HTTPAddr, "terminal=T0002")
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.Seq == res.Seq {
				return nil
			}
		}
		return fmt.Errorf("reading seq %d of T0002 not in ops yet", res.Seq)
	})
	bad, err := l.Handheld.SendCommand(ctx, wire.Command{ID: "c-bad", Terminal: "T0002", Op: "self_destruct"})
	if err != nil {
		t.Fatal(err)
	}
	if bad.Code != wire.AckUnsupported {
		t.Errorf("unknown op: ack code %d, want %d (unsupported)", bad.Code, wire.AckUnsupported)
	}
}
