package metersim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// rtuGap is how long a partial frame may sit without a new byte before
// it is dropped. RTU frames end after 3.5 character times of silence, but
// a pty has no character timing (domain.md §8.3), so frames are cut by
// structure and this timeout is only the fallback for a broken frame.
const rtuGap = 100 * time.Millisecond

// maxRTUFrame is the longest RTU frame: unit, 253-byte PDU, CRC.
const maxRTUFrame = 256

// maxNoise bounds how far past an unknown function code scanRequest looks
// for a known frame; longer noise waits for maxRTUFrame bytes or rtuGap.
const maxNoise = 32

// crc16 returns the CRC-16/MODBUS of b: initial value 0xFFFF, reflected
// polynomial 0xA001. It is sent low byte first.
func crc16(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, c := range b {
		crc = crcAdd(crc, c)
	}
	return crc
}

// crcAdd feeds one byte to a running CRC-16/MODBUS.
func crcAdd(crc uint16, c byte) uint16 {
	crc ^= uint16(c)
	for range 8 {
		if crc&1 != 0 {
			crc = crc>>1 ^ 0xA001
		} else {
			crc >>= 1
		}
	}
	return crc
}

// appendCRC appends the CRC of b, low byte first.
func appendCRC(b []byte) []byte {
	c := crc16(b)
	return append(b, byte(c), byte(c>>8))
}

// crcOK reports whether frame ends with the CRC of the bytes before it.
func crcOK(frame []byte) bool {
	n := len(frame)
	return n >= 4 && crc16(frame[:n-2]) == uint16(frame[n-2])|uint16(frame[n-1])<<8
}

// requestLen returns the length of the request frame starting at b from
// its structure (unit id, function code, byte count), 0 if b is too short
// to tell, or -1 for a function code whose length cannot be derived.
func requestLen(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x08: // address/sub-function + quantity/value
		return 8
	case 0x07, 0x0B, 0x0C, 0x11: // no data
		return 4
	case 0x0F, 0x10: // address, quantity, byte count, values
		if len(b) < 7 {
			return 0
		}
		return 9 + int(b[6])
	case 0x16: // mask write: address, AND mask, OR mask
		return 10
	case 0x17: // read/write: read address+qty, write address+qty, byte count, values
		if len(b) < 11 {
			return 0
		}
		return 13 + int(b[10])
	}
	return -1
}

// scanRequest finds the request frame at the start of buf. It returns
// n > 0 for a whole frame of n bytes with a good CRC, 0 when more bytes
// are needed, and -1 when buf[0] cannot start a frame (bad CRC, or no CRC
// match within the longest frame) and must be dropped to resynchronise.
// A function code it does not know is framed by the shortest prefix of at
// least 4 bytes whose CRC matches; while none matches, it is taken for
// noise once a whole frame of a known function code follows it.
func scanRequest(buf []byte) int {
	n := requestLen(buf)
	switch {
	case n == 0:
		return 0
	case n > maxRTUFrame:
		return -1
	case n > 0:
		if len(buf) < n {
			return 0
		}
		if !crcOK(buf[:n]) {
			return -1
		}
		return n
	}
	crc := uint16(0xFFFF) // of buf[:k-2], grown one byte per step
	for k := 4; k <= len(buf) && k <= maxRTUFrame; k++ {
		if k == 4 {
			crc = crc16(buf[:2])
		} else {
			crc = crcAdd(crc, buf[k-3])
		}
		if crc == uint16(buf[k-2])|uint16(buf[k-1])<<8 {
			return k
		}
	}
	if len(buf) >= maxRTUFrame {
		return -1
	}
	// Line noise looks like an unknown function code. Give up on it as
	// soon as a whole known frame follows, rather than waiting for the
	// longest frame or the idle timeout.
	for i := 1; i+4 <= len(buf) && i <= maxNoise; i++ {
		if k := requestLen(buf[i:]); k > 0 && k <= len(buf)-i && crcOK(buf[i:i+k]) {
			return -1
		}
	}
	return 0
}

// handleFrame answers one request frame (with CRC) and returns the reply
// frame, or nil when nothing must be sent.
func (b *ModbusBus) handleFrame(frame []byte) []byte {
	if len(frame) < 4 {
		return nil
	}
	pdu, ok := b.handlePDU(frame[0], frame[1:len(frame)-2])
	if !ok || pdu == nil {
		return nil
	}
	return appendCRC(append([]byte{frame[0]}, pdu...))
}

// ServeRTU answers Modbus RTU requests read from rw, for every meter on
// the bus, until ctx is done or rw fails: rw is one end of a pty pair from
// socat, a serial port, or a TCP connection of an rtuovertcp:// client.
// Frames are cut by structure (function code, byte count, CRC), since a
// pty has no character timing; bytes that cannot start a frame are
// skipped, and a partial frame idle for 100 ms is dropped when rw has read
// deadlines. Requests for absent or silent meters get no reply, nor do
// broadcasts (unit 0).
//
// It returns nil when ctx is cancelled or rw reaches EOF. If rw has
// SetReadDeadline (net.Conn, *os.File on a pty) cancelling ctx interrupts
// a pending read; otherwise close rw to stop it.
func (b *ModbusBus) ServeRTU(ctx context.Context, rw io.ReadWriter) error {
	d, _ := rw.(interface{ SetReadDeadline(time.Time) error })
	// stopped and the deadline are changed under mu, so cancellation's
	// "deadline now" is never overwritten by the loop's idle deadline.
	var (
		mu      sync.Mutex
		stopped bool
	)
	if d != nil {
		stop := context.AfterFunc(ctx, func() {
			mu.Lock()
			stopped = true
			_ = d.SetReadDeadline(time.Now())
			mu.Unlock()
		})
		defer stop()
	}
	buf := make([]byte, 0, 2*maxRTUFrame)
	chunk := make([]byte, maxRTUFrame)
	for {
		if d != nil {
			mu.Lock()
			if !stopped {
				var dl time.Time // no deadline while idle
				if len(buf) > 0 {
					dl = time.Now().Add(rtuGap)
				}
				_ = d.SetReadDeadline(dl)
			}
			mu.Unlock()
		}
		n, err := rw.Read(chunk)
		buf = append(buf, chunk[:n]...)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			buf = buf[:0] // a broken frame went quiet
			continue
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return fmt.Errorf("serve modbus rtu: %w", err)
		}
		for len(buf) > 0 {
			k := scanRequest(buf)
			if k == 0 {
				break
			}
			if k < 0 {
				buf = buf[:copy(buf, buf[1:])]
				continue
			}
			reply := b.handleFrame(buf[:k])
			buf = buf[:copy(buf, buf[k:])]
			if reply == nil {
				continue
			}
			if _, err := rw.Write(reply); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("serve modbus rtu: write reply: %w", err)
			}
		}
	}
}
