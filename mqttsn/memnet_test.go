package mqttsn

import (
	"net"
	"os"
	"sync"
	"time"
)

// memNet is an in-memory datagram network for tests under testing/synctest,
// where real sockets cannot be used.
type memNet struct {
	mu    sync.Mutex
	conns map[memAddr]*memConn
	sent  func(from, to memAddr, b []byte) // optional observer
}

type memAddr string

func (memAddr) Network() string  { return "mem" }
func (a memAddr) String() string { return string(a) }

type memPacket struct {
	from memAddr
	b    []byte
}

func newMemNet() *memNet { return &memNet{conns: make(map[memAddr]*memConn)} }

func (n *memNet) listen(addr string) *memConn {
	c := &memConn{net: n, addr: memAddr(addr), in: make(chan memPacket, 256), closed: make(chan struct{}), dlChanged: make(chan struct{})}
	n.mu.Lock()
	n.conns[c.addr] = c
	n.mu.Unlock()
	return c
}

type memConn struct {
	net    *memNet
	addr   memAddr
	in     chan memPacket
	closed chan struct{}
	once   sync.Once

	mu        sync.Mutex
	deadline  time.Time
	dlChanged chan struct{}
}

var _ net.PacketConn = (*memConn)(nil)

func (c *memConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		select {
		case <-c.closed:
			return 0, nil, net.ErrClosed
		default:
		}
		c.mu.Lock()
		dl, changed := c.deadline, c.dlChanged
		c.mu.Unlock()
		var timeout <-chan time.Time
		var t *time.Timer
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return 0, nil, os.ErrDeadlineExceeded
			}
			t = time.NewTimer(d)
			timeout = t.C
		}
		select {
		case p := <-c.in:
			if t != nil {
				t.Stop()
			}
			return copy(b, p.b), p.from, nil
		case <-timeout:
			return 0, nil, os.ErrDeadlineExceeded
		case <-changed:
		case <-c.closed:
		}
		if t != nil {
			t.Stop()
		}
	}
}

func (c *memConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	to := memAddr(addr.String())
	c.net.mu.Lock()
	dst := c.net.conns[to]
	obs := c.net.sent
	c.net.mu.Unlock()
	if obs != nil {
		obs(c.addr, to, b)
	}
	if dst != nil {
		select {
		case dst.in <- memPacket{from: c.addr, b: append([]byte(nil), b...)}:
		default:
		}
	}
	return len(b), nil
}

func (c *memConn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		c.net.mu.Lock()
		delete(c.net.conns, c.addr)
		c.net.mu.Unlock()
	})
	return nil
}

func (c *memConn) LocalAddr() net.Addr                { return c.addr }
func (c *memConn) SetDeadline(t time.Time) error      { return c.SetReadDeadline(t) }
func (c *memConn) SetWriteDeadline(t time.Time) error { return nil }

func (c *memConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = t
	close(c.dlChanged)
	c.dlChanged = make(chan struct{})
	return nil
}
