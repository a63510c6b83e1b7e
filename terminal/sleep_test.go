package terminal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meterlink/meterlink/mqttsn"
	"github.com/meterlink/meterlink/topic"
	"github.com/meterlink/meterlink/wire"
)

// TestSleepingTerminalGetsQueuedCommandsInOrder: commands sent while the terminal sleeps wait
// in the gateway; at its next wake-up the terminal takes them all, in order, and answers each.
func TestSleepingTerminalGetsQueuedCommandsInOrder(t *testing.T) {
	acks := make(chan wire.CommandAck, 8)
	gw, url := gateway(t, func(_, tp string, p []byte) error {
		if strings.HasSuffix(tp, "/ack") {
			var a wire.CommandAck
			if err := json.Unmarshal(p, &a); err != nil {
				t.Errorf("bad ack %q", p)
			}
			acks <- a
		}
		return nil
	})
	cfg := testConfig(t, ":memory:")
	cfg.Gateway = url
	cfg.Sleep = time.Second
	term, err := New(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- term.Run(ctx) }()
	defer func() { cancel(); <-done }()

	state := func() mqttsn.ClientState {
		for _, c := range gw.Clients() {
			if c.ClientID == "T0001" {
				return c.State
			}
		}
		return mqttsn.StateDisconnected
	}
	waitFor(t, 10*time.Second, func() error {
		if s := state(); s != mqttsn.StateAsleep {
			return fmt.Errorf("terminal is %v, want asleep", s)
		}
		return nil
	})
	want := []string{"s-1", "s-2", "s-3"}
	for _, id := range want {
		c, _ := json.Marshal(wire.Command{V: 1, ID: id, Terminal: "T0001", Op: OpReadClock})
		if err := gw.Publish(ctx, "T0001", topic.RadioCommands("T0001"), 1, c); err != nil {
			t.Fatalf("queue command %s for a sleeping terminal: %v", id, err)
		}
	}
	var got []string
	for len(got) < len(want) {
		select {
		case a := <-acks:
			if a.Code != wire.AckOK {
				t.Errorf("ack %+v, want OK", a)
			}
			got = append(got, a.ID)
		case <-time.After(15 * time.Second):
			t.Fatalf("answers so far %v, want %v", got, want)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("answers in order %v, want %v", got, want)
	}
	// And it goes back to sleep.
	waitFor(t, 10*time.Second, func() error {
		if s := state(); s != mqttsn.StateAsleep {
			return errors.New("terminal not asleep again")
		}
		return nil
	})
}
