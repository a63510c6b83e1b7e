package terminal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
)

// PulseInput accepts pulses from meter simulators over TCP, one line per event:
//
//	<terminal id> <channel> <pulses>\n
//
// It stands in for the terminal's pulse input hardware when the meters run in another
// process (compose's meter-sim service). A malformed line is logged and skipped; the
// connection stays open.
type PulseInput struct {
	ln        net.Listener
	log       *slog.Logger
	terminals map[string]*Terminal
}

// NewPulseInput listens on addr for pulse lines addressed to terminals.
func NewPulseInput(addr string, terminals []*Terminal, log *slog.Logger) (*PulseInput, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for pulses on %s: %w", addr, err)
	}
	m := make(map[string]*Terminal, len(terminals))
	for _, t := range terminals {
		m[t.ID()] = t
	}
	return &PulseInput{ln: ln, log: log.With("component", "pulse-input"), terminals: m}, nil
}

// Addr returns the bound address.
func (p *PulseInput) Addr() net.Addr { return p.ln.Addr() }

// Run serves connections until ctx is done.
func (p *PulseInput) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	stop := context.AfterFunc(ctx, func() {
		p.ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("accept pulse connection: %w", err)
		}
		mu.Lock()
		conns[c] = true
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				c.Close()
			}()
			p.serve(c)
		}()
	}
}

func (p *PulseInput) serve(c net.Conn) {
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 256), 256)
	for sc.Scan() {
		if err := p.line(sc.Text()); err != nil {
			p.log.Warn("pulse line dropped", "remote", c.RemoteAddr().String(), "err", err)
		}
	}
}

// line applies one pulse line.
func (p *PulseInput) line(s string) error {
	f := strings.Fields(s)
	if len(f) != 3 {
		return fmt.Errorf("line %q: want <terminal> <channel> <pulses>", s)
	}
	t, ok := p.terminals[f[0]]
	if !ok {
		return fmt.Errorf("line %q: unknown terminal", s)
	}
	ch, err := strconv.ParseUint(f[1], 10, 8)
	if err != nil {
		return fmt.Errorf("line %q: bad channel", s)
	}
	n, err := strconv.ParseUint(f[2], 10, 32)
	if err != nil {
		return fmt.Errorf("line %q: bad pulse count", s)
	}
	return t.Pulse(uint8(ch), n)
}
