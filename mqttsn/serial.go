package mqttsn

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// Serial radio framing (MeterLink link spec, docs/mqtt-sn.md §14.2):
//
//	FLAG(0x7E) DST(2) SRC(2) LEN(1) MSG(LEN) CRC(2)
//
// Addresses, LEN and CRC are big-endian. CRC is CRC-16/CCITT-FALSE (poly
// 0x1021, init 0xFFFF, no reflection, no final xor; check value 0x29B1
// over "123456789") computed over DST..MSG before stuffing. After the
// FLAG, the bytes 0x7E and 0x7D are sent as 0x7D followed by the byte xor
// 0x20. LEN must equal the MQTT-SN message's own Length (except for an
// Encapsulated message, whose Length covers only its header), so a message
// is at most 255 bytes on the radio.
const (
	frameFlag   = 0x7E
	frameEscape = 0x7D
	frameXOR    = 0x20
	// MaxFrameMsg is the largest MQTT-SN message a radio frame carries.
	MaxFrameMsg = 255
)

// ErrFrameTooLong is returned when a message does not fit in a frame.
var ErrFrameTooLong = errors.New("mqtt-sn message too long for a radio frame")

// NodeAddr is a 16-bit radio node address; it implements [net.Addr].
type NodeAddr uint16

// BroadcastNode is the radio broadcast address.
const BroadcastNode NodeAddr = 0xFFFF

// Network returns "mlradio".
func (NodeAddr) Network() string { return "mlradio" }

// String returns the address as "node:XXXX" in hex.
func (a NodeAddr) String() string { return fmt.Sprintf("node:%04x", uint16(a)) }

// Frame is one radio frame.
type Frame struct {
	Dst, Src NodeAddr
	Msg      []byte // one MQTT-SN message
}

// crc16 computes CRC-16/CCITT-FALSE.
func crc16(crc uint16, b []byte) uint16 {
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// AppendFrame appends the stuffed encoding of f to dst.
func AppendFrame(dst []byte, f Frame) ([]byte, error) {
	if len(f.Msg) > MaxFrameMsg {
		return dst, fmt.Errorf("%w: %d bytes", ErrFrameTooLong, len(f.Msg))
	}
	hdr := []byte{byte(f.Dst >> 8), byte(f.Dst), byte(f.Src >> 8), byte(f.Src), byte(len(f.Msg))}
	crc := crc16(crc16(0xFFFF, hdr), f.Msg)
	dst = append(dst, frameFlag)
	dst = appendStuffed(dst, hdr)
	dst = appendStuffed(dst, f.Msg)
	return appendStuffed(dst, []byte{byte(crc >> 8), byte(crc)}), nil
}

func appendStuffed(dst, b []byte) []byte {
	for _, c := range b {
		if c == frameFlag || c == frameEscape {
			dst = append(dst, frameEscape, c^frameXOR)
		} else {
			dst = append(dst, c)
		}
	}
	return dst
}

// Deframer recovers frames from a byte stream. It hunts for FLAG, unstuffs,
// checks the length bounds and the CRC, and silently drops bad frames; an
// unescaped FLAG inside a frame starts a new one. The zero value is ready.
type Deframer struct {
	in      bool   // inside a frame
	esc     bool   // the previous byte was ESC
	buf     []byte // unstuffed DST..CRC so far
	dropped int
}

// Dropped returns the number of frames dropped so far.
func (d *Deframer) Dropped() int { return d.dropped }

// Feed consumes stream bytes and calls emit for each good frame. The
// frame's Msg is a fresh copy.
func (d *Deframer) Feed(p []byte, emit func(Frame)) {
	for _, c := range p {
		if c == frameFlag {
			if d.in && len(d.buf) > 0 {
				d.dropped++ // truncated by a new FLAG
			}
			d.in, d.esc, d.buf = true, false, d.buf[:0]
			continue
		}
		if !d.in {
			continue // hunting
		}
		if d.esc {
			c ^= frameXOR
			d.esc = false
		} else if c == frameEscape {
			d.esc = true
			continue
		}
		d.buf = append(d.buf, c)
		if len(d.buf) == 5 && d.buf[4] < 2 {
			d.drop() // no MQTT-SN message is shorter than 2 bytes
			continue
		}
		if len(d.buf) >= 5 && len(d.buf) == 5+int(d.buf[4])+2 {
			if f, ok := d.check(); ok {
				emit(f)
			} else {
				d.dropped++
			}
			d.in, d.buf = false, d.buf[:0]
		}
	}
}

func (d *Deframer) drop() {
	d.dropped++
	d.in, d.esc, d.buf = false, false, d.buf[:0]
}

func (d *Deframer) check() (Frame, bool) {
	n := len(d.buf)
	body, sum := d.buf[:n-2], uint16(d.buf[n-2])<<8|uint16(d.buf[n-1])
	if crc16(0xFFFF, body) != sum {
		return Frame{}, false
	}
	msg := body[5:]
	if !msgLenMatches(msg) {
		return Frame{}, false
	}
	return Frame{
		Dst: NodeAddr(be16(body)),
		Src: NodeAddr(be16(body[2:])),
		Msg: append([]byte(nil), msg...),
	}, true
}

// msgLenMatches reports whether the MQTT-SN message's own Length agrees
// with the frame's LEN.
func msgLenMatches(msg []byte) bool {
	t, _, rest, err := splitHeader(msg)
	if err != nil {
		return false
	}
	return len(rest) == 0 || t == TypeEncapsulated
}

// SerialConn is a [net.PacketConn] of MQTT-SN messages in radio frames over
// a byte stream, such as a transparent radio modem on a serial port. Its
// addresses are [NodeAddr]s. It delivers frames addressed to its own node
// or to [BroadcastNode], and drops bad frames silently. It is safe for
// concurrent use and supports read deadlines (write deadlines are
// accepted and ignored: writes go straight to the stream).
type SerialConn struct {
	rw    io.ReadWriter
	local NodeAddr

	frames   chan Frame
	readDone chan struct{}
	readErr  error
	closed   chan struct{}
	once     sync.Once

	wmu sync.Mutex

	mu        sync.Mutex
	deadline  time.Time
	dlChanged chan struct{}
}

var _ net.PacketConn = (*SerialConn)(nil)

// NewSerialConn starts reading frames from rw for node local. Close closes
// rw if it is an [io.Closer]; that is also what stops the reading
// goroutine, so pass an io.ReadWriteCloser (a serial port) to release it.
func NewSerialConn(rw io.ReadWriter, local NodeAddr) *SerialConn {
	c := &SerialConn{
		rw:        rw,
		local:     local,
		frames:    make(chan Frame, 64),
		readDone:  make(chan struct{}),
		closed:    make(chan struct{}),
		dlChanged: make(chan struct{}),
	}
	go c.readLoop()
	return c
}

func (c *SerialConn) readLoop() {
	defer close(c.readDone)
	var d Deframer
	buf := make([]byte, 512)
	for {
		n, err := c.rw.Read(buf)
		d.Feed(buf[:n], func(f Frame) {
			if f.Dst != c.local && f.Dst != BroadcastNode {
				return
			}
			select {
			case c.frames <- f:
			default: // reader too slow: lost, as on the air
			}
		})
		if err != nil {
			c.readErr = err
			return
		}
	}
}

// ReadFrom returns the next message addressed to this node and its
// sender's [NodeAddr].
func (c *SerialConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		select {
		case <-c.closed:
			return 0, nil, net.ErrClosed
		default:
		}
		c.mu.Lock()
		dl, changed := c.deadline, c.dlChanged
		c.mu.Unlock()
		var (
			timer   *time.Timer
			timeout <-chan time.Time
		)
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return 0, nil, os.ErrDeadlineExceeded
			}
			timer = time.NewTimer(d)
			timeout = timer.C
		}
		n, addr, err, again := c.readOnce(b, timeout, changed)
		if timer != nil {
			timer.Stop()
		}
		if !again {
			return n, addr, err
		}
	}
}

// readOnce waits for a frame, the deadline, a deadline change (again) or
// the end of the stream.
func (c *SerialConn) readOnce(b []byte, timeout <-chan time.Time, changed chan struct{}) (n int, addr net.Addr, err error, again bool) {
	select {
	case f := <-c.frames:
		return copy(b, f.Msg), f.Src, nil, false
	case <-timeout:
		return 0, nil, os.ErrDeadlineExceeded, false
	case <-changed:
		return 0, nil, nil, true
	case <-c.closed:
		return 0, nil, net.ErrClosed, false
	case <-c.readDone:
		select {
		case f := <-c.frames:
			return copy(b, f.Msg), f.Src, nil, false
		default:
		}
		return 0, nil, fmt.Errorf("serial read: %w", c.readErr), false
	}
}

// WriteTo sends b in one frame to addr, which must be a [NodeAddr].
func (c *SerialConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	dst, ok := addr.(NodeAddr)
	if !ok {
		return 0, fmt.Errorf("serial write: address %v is not a NodeAddr", addr)
	}
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	frame, err := AppendFrame(nil, Frame{Dst: dst, Src: c.local, Msg: b})
	if err != nil {
		return 0, err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.rw.Write(frame); err != nil {
		return 0, fmt.Errorf("serial write: %w", err)
	}
	return len(b), nil
}

// Close closes the stream if it is an io.Closer. It is idempotent.
func (c *SerialConn) Close() error {
	var err error
	c.once.Do(func() {
		close(c.closed)
		if cl, ok := c.rw.(io.Closer); ok {
			err = cl.Close()
		}
	})
	return err
}

// LocalAddr returns this node's address.
func (c *SerialConn) LocalAddr() net.Addr { return c.local }

// SetDeadline sets the read deadline.
func (c *SerialConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadDeadline makes pending and future ReadFrom calls fail with
// [os.ErrDeadlineExceeded] after t; the zero time means no deadline.
func (c *SerialConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = t
	close(c.dlChanged)
	c.dlChanged = make(chan struct{})
	return nil
}

// SetWriteDeadline is accepted and ignored.
func (c *SerialConn) SetWriteDeadline(time.Time) error { return nil }
