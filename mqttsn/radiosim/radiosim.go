// Package radiosim wraps a [net.PacketConn] to behave like a poor radio
// link: datagrams written through it are lost, duplicated, delayed and
// reordered at random, from a seeded generator so that runs repeat.
// MeterLink's tests use it to exercise MQTT-SN retransmission and
// deduplication; wrap both ends to degrade both directions.
package radiosim

import (
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Config sets the link's faults. Probabilities are in [0, 1]; zero fields
// disable the fault.
type Config struct {
	Loss         float64       // probability that a datagram is dropped
	Duplicate    float64       // probability that a datagram is sent twice
	Reorder      float64       // probability that a datagram is held back by ReorderDelay
	Latency      time.Duration // added to every datagram
	Jitter       time.Duration // uniform random extra delay, 0..Jitter
	ReorderDelay time.Duration // extra delay of a reordered datagram; default 10ms
	Seed         uint64        // seed of the fault generator
}

// Stats counts what the link did to written datagrams.
type Stats struct {
	Written, Dropped, Duplicated, Reordered int64
}

// Conn is a [net.PacketConn] whose writes suffer the faults of its
// [Config]. Reads pass through unchanged. It is safe for concurrent use.
type Conn struct {
	net.PacketConn
	cfg Config

	mu     sync.Mutex
	rng    *rand.Rand
	closed atomic.Bool

	written, dropped, duplicated, reordered atomic.Int64
}

var _ net.PacketConn = (*Conn)(nil)

// New wraps conn. Closing the returned Conn closes conn.
func New(conn net.PacketConn, cfg Config) *Conn {
	if cfg.ReorderDelay == 0 {
		cfg.ReorderDelay = 10 * time.Millisecond
	}
	return &Conn{
		PacketConn: conn,
		cfg:        cfg,
		rng:        rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9E3779B97F4A7C15)),
	}
}

// WriteTo sends b to addr subject to the link's faults. A dropped
// datagram still reports success, as a radio would.
func (c *Conn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	c.written.Add(1)
	c.mu.Lock()
	drop := c.rng.Float64() < c.cfg.Loss
	copies := 1
	if c.rng.Float64() < c.cfg.Duplicate {
		copies = 2
	}
	delays := make([]time.Duration, copies)
	reordered := false
	for i := range delays {
		d := c.cfg.Latency
		if c.cfg.Jitter > 0 {
			d += time.Duration(c.rng.Int64N(int64(c.cfg.Jitter) + 1))
		}
		if c.rng.Float64() < c.cfg.Reorder {
			d += c.cfg.ReorderDelay
			reordered = true
		}
		delays[i] = d
	}
	c.mu.Unlock()
	if drop {
		c.dropped.Add(1)
		return len(b), nil
	}
	if copies > 1 {
		c.duplicated.Add(1)
	}
	if reordered {
		c.reordered.Add(1)
	}
	for _, d := range delays {
		if d <= 0 {
			if _, err := c.PacketConn.WriteTo(b, addr); err != nil {
				return 0, err
			}
			continue
		}
		buf := append([]byte(nil), b...)
		time.AfterFunc(d, func() {
			if !c.closed.Load() {
				_, _ = c.PacketConn.WriteTo(buf, addr) // lost, as on the air
			}
		})
	}
	return len(b), nil
}

// Close closes the underlying conn; delayed datagrams still pending are
// dropped.
func (c *Conn) Close() error {
	c.closed.Store(true)
	return c.PacketConn.Close()
}

// Stats returns the fault counters so far.
func (c *Conn) Stats() Stats {
	return Stats{
		Written:    c.written.Load(),
		Dropped:    c.dropped.Load(),
		Duplicated: c.duplicated.Load(),
		Reordered:  c.reordered.Load(),
	}
}
