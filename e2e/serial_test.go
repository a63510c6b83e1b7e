package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/meterlink/meterlink/demo"
	"github.com/meterlink/meterlink/handheld"
	"github.com/meterlink/meterlink/serialtest"
	"github.com/meterlink/meterlink/terminal"
)

// TestTerminalOverSerialRadio: a terminal and the handheld talk MQTT-SN in radio frames over
// a real serial line (a socat pty pair). A 16-channel reading is larger than a radio frame,
// so the terminal splits it into records that fit; all of them reach the handheld.
func TestTerminalOverSerialRadio(t *testing.T) {
	if testing.Short() {
		t.Skip("serial radio test skipped under -short")
	}
	devHH, devTerm := serialtest.Pair(t)
	log := testLogger(t)
	hc := handheld.DefaultConfig()
	hc.ID, hc.MQTTSNAddr, hc.Serial, hc.PDAURL = "H01", "127.0.0.1:0", devHH, "tcp://127.0.0.1:1"
	hc.Retry = 200 * time.Millisecond
	hh, err := handheld.New(hc, log)
	if err != nil {
		t.Fatal(err)
	}
	tc := terminal.DefaultConfig()
	tc.ID, tc.Gateway, tc.Interval, tc.Retry = "T0001", "serial://"+devTerm+"?node=2&gateway=1", time.Hour, 200*time.Millisecond
	for _, c := range demo.TerminalChannels("T0001") {
		tc.Channels = append(tc.Channels, terminal.ChannelConfig(c))
	}
	term, err := terminal.New(tc, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { hh.Run(ctx); done <- struct{}{} }()
	go func() { term.Run(ctx); done <- struct{}{} }()
	defer func() { cancel(); <-done; <-done }()

	term.Pulse(3, 777)
	if _, err := term.Collect(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() error {
		if n := term.Pending(); n != 0 {
			return fmt.Errorf("%d records not yet acknowledged over the radio", n)
		}
		return nil
	})
	made := int(term.LastSeq())
	if made < 2 { // the reading, split in two or more
		t.Errorf("terminal made %d records; a 16-channel reading should not fit one radio frame", made)
	}
	if got := hh.Stats().Received; got != made {
		t.Errorf("handheld received %d records over the radio, want %d", got, made)
	}
}
