package metersim

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"sync"

	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/meterlink/meterlink/dlt645"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/meterlink/meterlink/cmdline"
	"github.com/meterlink/meterlink/demo"
)

// DemoBank wires a household pulse meter to every channel of the demo terminals first ..
// first+n−1, seeded by meter id, so every run of the lab behaves alike.
func DemoBank(first, n int) *Bank {
	b := &Bank{}
	for i := 0; i < n; i++ {
		id := demo.TerminalID(first + i)
		for j, c := range demo.TerminalChannels(id) {
			scale := 1.0
			if c.Multiplier > 1 {
				scale = 1 / float64(c.Multiplier) // a CT meter sees a tenth of the current
			}
			b.Add(id, c.Channel, NewPulseMeter(c.Constant, Household, scale, uint64(first+i)<<8|uint64(j)))
		}
	}
	return b
}

// Main runs `meterlink meter-sim`: pulse meters for the demo terminals, sending their pulses
// to a terminal process's pulse input (`meterlink terminal -pulse-listen`); and, on request,
// Modbus meters (TCP) and DL/T 645-2007 meters (on a serial device) for a terminal's channel 16.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cmdline.NewFlagSet("meter-sim", "Simulates meters: pulse-output meters with a household load profile on every channel\n"+
		"of the demo terminals, sent to a terminal process's pulse input; Modbus meters on a\n"+
		"Modbus TCP server; DL/T 645-2007 meters on a serial device (e.g. one end of a socat pty pair).", stderr)
	var (
		lc         cmdline.LogConfig
		addr       = fs.String("pulse-addr", "127.0.0.1:1886", "pulse input of the terminal process, host:port (empty: no pulse meters)")
		count      = fs.Int("terminals", 1, "how many demo terminals to drive (T0001, ...)")
		first      = fs.Int("first", 1, "number of the first terminal")
		speed      = fs.Float64("speed", 60, "simulated seconds of consumption per real second")
		tick       = fs.Duration("tick", time.Second, "how often pulses are sent and meters advance")
		modbusAt   = fs.String("modbus-listen", "", "serve Modbus meters over TCP on host:port (empty: none)")
		modbusRTU  = fs.String("modbus-rtu", "", "serve the Modbus meters over RTU on this serial device too (empty: none)")
		modbusMtrs = fs.String("modbus-meters", "1:sdm120,2:ddsu666,3:dtsu666,4:dds238-2,5:sdm630", "Modbus meters, unit:map,...")
		dltPort    = fs.String("dlt645-port", "", "serve DL/T 645-2007 meters on this serial device (empty: none)")
		dltAddr    = fs.String("dlt645-addr", "000000000161", "address of the DL/T 645 meter on that line")
	)
	lc.AddFlags(fs)
	if err := cmdline.Parse(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var errs []error
	if *addr != "" {
		if _, _, err := net.SplitHostPort(*addr); err != nil {
			errs = append(errs, fmt.Errorf("pulse-addr %q: want host:port", *addr))
		}
	}
	if *count < 1 || *count > 100000 {
		errs = append(errs, fmt.Errorf("terminals %d: want 1..100000", *count))
	}
	if *speed <= 0 || *speed > 100000 {
		errs = append(errs, fmt.Errorf("speed %v: want 0 < speed <= 100000", *speed))
	}
	if *tick < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("tick %v is below 10ms", *tick))
	}
	var modbus []*ModbusMeter
	if *modbusAt != "" || *modbusRTU != "" {
		for _, spec := range strings.Split(*modbusMtrs, ",") {
			unit, name, ok := strings.Cut(strings.TrimSpace(spec), ":")
			u, err := strconv.ParseUint(unit, 10, 8)
			if !ok || err != nil || u < 1 || u > 247 {
				errs = append(errs, fmt.Errorf("modbus-meters %q: want unit:map with unit 1..247", spec))
				continue
			}
			m, err := NewModbusMeter(name, uint8(u))
			if err != nil {
				errs = append(errs, fmt.Errorf("modbus-meters %q: %w", spec, err))
				continue
			}
			m.SetProfile(Household)
			modbus = append(modbus, m)
		}
	}
	var dlt *dlt645.Meter
	if *dltPort != "" {
		ad, err := dlt645.ParseAddress(*dltAddr)
		if err != nil {
			errs = append(errs, fmt.Errorf("dlt645-addr %q: %w", *dltAddr, err))
		} else {
			dlt = dlt645.NewMeter(ad, dlt645.MeterOptions{Preamble: 4})
			dlt.SetVoltage(2200, 2200, 2200)
			dlt.SetFrequency(5000)
		}
	}
	if *addr == "" && *modbusAt == "" && *modbusRTU == "" && *dltPort == "" {
		errs = append(errs, errors.New("nothing to simulate: set pulse-addr, modbus-listen, modbus-rtu or dlt645-port"))
	}
	errs = append(errs, lc.Validate())
	if err := errors.Join(errs...); err != nil {
		return err
	}
	log, _ := lc.Logger(stderr)
	log = log.With("part", "meter-sim")

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var runErr []error
	run := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				mu.Lock()
				runErr = append(runErr, fmt.Errorf("%s: %w", name, err))
				mu.Unlock()
				cancel()
			}
		}()
	}
	if len(modbus) > 0 {
		bus, err := NewModbusBus(modbus...)
		if err != nil {
			return err
		}
		if *modbusAt != "" {
			srv, err := bus.ListenTCP(*modbusAt, log)
			if err != nil {
				return fmt.Errorf("modbus-listen %s: %w", *modbusAt, err)
			}
			defer srv.Close()
			log.Info("modbus meters serving", "url", srv.URL(), "meters", *modbusMtrs)
		}
		if *modbusRTU != "" {
			f, err := os.OpenFile(*modbusRTU, os.O_RDWR, 0)
			if err != nil {
				return fmt.Errorf("modbus-rtu: %w", err)
			}
			defer f.Close()
			log.Info("modbus meters serving over rtu", "device", *modbusRTU, "meters", *modbusMtrs)
			run("modbus rtu", func() error { return bus.ServeRTU(ctx, f) })
		}
		run("modbus load", func() error {
			t := time.NewTicker(*tick)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case now := <-t.C:
					for _, m := range modbus {
						m.Advance(now, time.Duration(float64(*tick)**speed))
					}
				}
			}
		})
	}
	if dlt != nil {
		f, err := os.OpenFile(*dltPort, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("dlt645-port: %w", err)
		}
		defer f.Close()
		log.Info("dl/t 645 meter serving", "port", *dltPort, "addr", *dltAddr)
		run("dlt645 meter", func() error { return dlt.Serve(ctx, f) })
		// Its register grows with the household profile, in 0.01 kWh.
		pm := NewPulseMeter(100, Household, 1, 645)
		run("dlt645 load", func() error {
			t := time.NewTicker(*tick)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case now := <-t.C:
					dlt.AddEnergy(int64(pm.Advance(now, time.Duration(float64(*tick)**speed))), 0)
				}
			}
		})
	}
	if *addr != "" {
		link := &pulseLink{addr: *addr, log: log, owed: map[[2]string]uint64{}}
		defer link.close()
		log.Info("pulse meters running", "terminals", *count, "pulse_addr", *addr, "speed", *speed)
		run("pulse meters", func() error { return DemoBank(*first, *count).Run(ctx, *tick, *speed, link.send) })
	}
	wg.Wait()
	return errors.Join(runErr...)
}

// pulseLink writes pulse lines to a terminal process, reconnecting as needed. Pulses that
// cannot be sent are owed and sent after the next connect, as a meter's own register would
// keep counting.
type pulseLink struct {
	addr string
	log  *slog.Logger
	c    net.Conn
	w    *bufio.Writer
	owed map[[2]string]uint64
}

func (l *pulseLink) send(terminal string, ch uint8, n uint64) error {
	l.owed[[2]string{terminal, fmt.Sprint(ch)}] += n
	if l.c == nil {
		c, err := net.DialTimeout("tcp", l.addr, 2*time.Second)
		if err != nil {
			return nil // keep owing; try again next tick
		}
		l.c, l.w = c, bufio.NewWriter(c)
		l.log.Info("pulse link up", "pulse_addr", l.addr)
	}
	for k, v := range l.owed {
		fmt.Fprintf(l.w, "%s %s %d\n", k[0], k[1], v)
	}
	if err := l.w.Flush(); err != nil {
		l.log.Warn("pulse link lost", "err", err)
		l.close()
		return nil
	}
	clear(l.owed)
	return nil
}

func (l *pulseLink) close() {
	if l.c != nil {
		l.c.Close()
		l.c, l.w = nil, nil
	}
}
