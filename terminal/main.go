package terminal

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/meterlink/meterlink/cmdline"
	"github.com/meterlink/meterlink/demo"
	"github.com/meterlink/meterlink/terminal/rs485"
)

// Main runs `meterlink terminal`: one or more terminals (ids T0001.. with the demo channel
// maps) sending to an MQTT-SN gateway, with an optional TCP pulse input for meter simulators.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	def := DefaultConfig()
	fs := cmdline.NewFlagSet("terminal", "Runs collection terminals: 16 channels each, counting pulses into readings\n"+
		"(base + pulses / impulse constant) and sending them to the handheld's MQTT-SN gateway.", stderr)
	var (
		lc         cmdline.LogConfig
		count      = fs.Int("terminals", 1, "how many terminals to run in this process (ids T0001, T0002, ...)")
		first      = fs.Int("first", 1, "number of the first terminal (T0001 is 1)")
		gateway    = fs.String("gateway", def.Gateway, "MQTT-SN gateway, udp://host:port")
		dataDir    = fs.String("data-dir", "./meterlink-data", "directory for the terminals' stores")
		interval   = fs.Duration("interval", def.Interval, "collection interval")
		pulseInput = fs.String("pulse-listen", "", "TCP address to accept pulses from meter-sim on (empty: none)")
		freezeAt   = fs.String("freeze-at", def.FreezeAt, "daily freeze time HH:MM (the handheld can change it)")
		drift      = fs.Float64("drift-ppm", 0, "simulated clock drift in parts per million")
		sleep      = fs.Duration("sleep", 0, "sleep between contacts with the gateway (0: always connected)")
		busProto   = fs.String("rs485-protocol", "", "channel 16 as the RS485 port: modbus, dlt645-2007 or dlt645-1997 (empty: a pulse input)")
		busURL     = fs.String("rs485-url", "", "RS485 link: rtu:///dev/ttyUSB0, rtuovertcp://host:port, tcp://host:port (Modbus) or a serial device (DL/T 645)")
		busMeters  = fs.String("rs485-meters", "", "meters on the bus: id:address[:map],... (map for Modbus: sdm120, sdm630, ddsu666, dtsu666, dds238-2)")
	)
	lc.AddFlags(fs)
	if err := cmdline.Parse(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var errs []error
	if *count < 1 || *count > 100000 {
		errs = append(errs, fmt.Errorf("terminals %d: want 1..100000", *count))
	}
	if *first < 1 || *first > 9999 {
		errs = append(errs, fmt.Errorf("first %d: want 1..9999", *first))
	}
	var bus *rs485.Config
	if *busProto != "" {
		bus = &rs485.Config{Protocol: *busProto, URL: *busURL}
		for _, spec := range strings.Split(*busMeters, ",") {
			f := strings.Split(strings.TrimSpace(spec), ":")
			if len(f) < 2 || len(f) > 3 {
				errs = append(errs, fmt.Errorf("rs485-meters %q: want id:address[:map]", spec))
				continue
			}
			m := rs485.MeterConfig{ID: f[0], Address: f[1]}
			if len(f) == 3 {
				m.Map = f[2]
			}
			bus.Meters = append(bus.Meters, m)
		}
		if *count != 1 {
			errs = append(errs, errors.New("rs485-protocol: an RS485 bus belongs to one terminal; run with -terminals 1"))
		}
	}
	errs = append(errs, lc.Validate())
	if err := errors.Join(errs...); err != nil {
		return err
	}
	log, _ := lc.Logger(stderr)
	log = log.With("part", "terminal")
	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		return fmt.Errorf("data-dir %s: %w", *dataDir, err)
	}
	var terms []*Terminal
	closeAll := func() {
		for _, t := range terms {
			t.Close()
		}
	}
	for i := 0; i < *count; i++ {
		id := demo.TerminalID(*first + i)
		cfg := def
		cfg.ID, cfg.Gateway, cfg.Interval = id, *gateway, *interval
		cfg.FreezeAt, cfg.DriftPPM, cfg.Sleep = *freezeAt, *drift, *sleep
		cfg.StorePath = filepath.Join(*dataDir, "terminal-"+id+".db")
		for _, c := range demo.TerminalChannels(id) {
			if bus != nil && c.Channel == 16 {
				continue // channel 16 is the RS485 port
			}
			cfg.Channels = append(cfg.Channels, ChannelConfig(c))
		}
		cfg.RS485 = bus
		t, err := New(cfg, log)
		if err != nil {
			closeAll()
			return fmt.Errorf("terminal %s: %w", id, err)
		}
		terms = append(terms, t)
	}
	var wg sync.WaitGroup
	if *pulseInput != "" {
		pin, err := NewPulseInput(*pulseInput, terms, log)
		if err != nil {
			closeAll()
			return err
		}
		log.Info("pulse input listening", "addr", pin.Addr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := pin.Run(ctx); err != nil {
				log.Error("pulse input stopped", "err", err)
			}
		}()
	}
	log.Info("terminals running", "terminals", len(terms), "gateway", *gateway)
	for _, t := range terms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := t.Run(ctx); err != nil {
				log.Error("terminal stopped", "terminal_id", t.ID(), "err", err)
			}
		}()
	}
	wg.Wait()
	return nil
}
