package metersim

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
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
// to a terminal process's pulse input (`meterlink terminal -pulse-listen`).
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cmdline.NewFlagSet("meter-sim", "Simulates pulse-output meters with a household load profile on every channel\n"+
		"of the demo terminals and sends their pulses to a terminal process's pulse input.", stderr)
	var (
		lc    cmdline.LogConfig
		addr  = fs.String("pulse-addr", "127.0.0.1:1886", "pulse input of the terminal process (host:port)")
		count = fs.Int("terminals", 1, "how many demo terminals to drive (T0001, ...)")
		first = fs.Int("first", 1, "number of the first terminal")
		speed = fs.Float64("speed", 60, "simulated seconds of consumption per real second")
		tick  = fs.Duration("tick", time.Second, "how often pulses are sent")
	)
	lc.AddFlags(fs)
	if err := cmdline.Parse(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var errs []error
	if _, _, err := net.SplitHostPort(*addr); err != nil {
		errs = append(errs, fmt.Errorf("pulse-addr %q: want host:port", *addr))
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
	errs = append(errs, lc.Validate())
	if err := errors.Join(errs...); err != nil {
		return err
	}
	log, _ := lc.Logger(stderr)
	log = log.With("part", "meter-sim")
	link := &pulseLink{addr: *addr, log: log, owed: map[[2]string]uint64{}}
	defer link.close()
	log.Info("meter simulator running", "terminals", *count, "pulse_addr", *addr, "speed", *speed)
	return DemoBank(*first, *count).Run(ctx, *tick, *speed, link.send)
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
