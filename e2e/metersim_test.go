package e2e

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/meterlink/meterlink/metersim"
	"github.com/meterlink/meterlink/serialtest"
	"github.com/meterlink/meterlink/terminal/rs485"
)

// TestMeterSimServesSerialMeters runs `meterlink meter-sim` with Modbus RTU and DL/T 645
// meters on serial lines (socat pty pairs) and reads them with the terminal's RS485 poller,
// as a field engineer would commission channel 16 against a simulator.
func TestMeterSimServesSerialMeters(t *testing.T) {
	rtuSim, rtuTerm := serialtest.Pair(t)
	dltSim, dltTerm := serialtest.Pair(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var errb bytes.Buffer
	go func() {
		done <- metersim.Main(ctx, []string{"-pulse-addr", "", "-modbus-rtu", rtuSim, "-modbus-meters", "1:sdm120,2:dds238-2",
			"-dlt645-port", dltSim, "-dlt645-addr", "000000000161", "-tick", "50ms", "-speed", "36000"},
			func(string) string { return "" }, &bytes.Buffer{}, &errb)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("meter-sim: %v\n%s", err, errb.String())
		}
	}()
	for _, tc := range []rs485.Config{
		{Protocol: rs485.Modbus, URL: "rtu://" + rtuTerm, Meters: []rs485.MeterConfig{{ID: "SDM", Address: "1", Map: "sdm120"}, {ID: "DDS", Address: "2", Map: "dds238-2"}}},
		{Protocol: rs485.DLT645, URL: dltTerm, Meters: []rs485.MeterConfig{{ID: "DLT", Address: "000000000161"}}},
	} {
		tc.Timeout = 300 * time.Millisecond
		p, err := rs485.New(tc, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, func() error {
			for _, r := range p.Poll(ctx) {
				if r.Err != nil {
					return r.Err
				}
				if r.EnergyWh <= 0 {
					return errorf("%s: energy %d Wh, want it growing with the load", r.Meter, r.EnergyWh)
				}
			}
			return nil
		})
		p.Close()
	}
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
