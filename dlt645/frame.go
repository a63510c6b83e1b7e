package dlt645

import (
	"errors"
	"fmt"
)

// Codec errors. Decode wraps them with details; test with [errors.Is].
var (
	// ErrShort means the input ends before the frame does: read more bytes.
	ErrShort = errors.New("dlt645: short frame, need more bytes")
	// ErrFraming means a start byte (68 at offsets 0 and 7) or the 16
	// terminator is missing.
	ErrFraming = errors.New("dlt645: bad framing")
	// ErrChecksum means the CS byte does not match the frame's byte sum.
	ErrChecksum = errors.New("dlt645: bad checksum")
)

const (
	startByte    = 0x68
	endByte      = 0x16
	preambleByte = 0xFE
	dataOffset   = 0x33

	headerLen = 10 // 68 A0..A5 68 C L
	// MinFrameLen is the length of a frame with no data, from the first 68 to 16.
	MinFrameLen = headerLen + 2
	// MaxData is the largest data length one frame can carry (L is one byte).
	MaxData = 255
)

// Frame is one DL/T 645 frame. Data holds the decoded data bytes (with
// 0x33 already subtracted); the codec adds and removes the offset.
type Frame struct {
	Addr    Address // meter address, A0 first
	Control byte    // C: direction, error and follow-up bits and the function
	Data    []byte  // decoded data, at most MaxData bytes
}

// Append appends the encoded frame, from the first 68 to the 16, to dst.
// It panics if f.Data is longer than [MaxData], which is a programmer
// error; the request builders check lengths.
func (f Frame) Append(dst []byte) []byte {
	return f.AppendPreamble(dst, 0)
}

// AppendPreamble appends n wake-up bytes (FE) and then the frame to dst.
// Masters usually send 1–4 of them.
func (f Frame) AppendPreamble(dst []byte, n int) []byte {
	if len(f.Data) > MaxData {
		panic(fmt.Sprintf("dlt645: frame data of %d bytes exceeds %d", len(f.Data), MaxData))
	}
	for range n {
		dst = append(dst, preambleByte)
	}
	start := len(dst)
	dst = append(dst, startByte)
	dst = append(dst, f.Addr[:]...)
	dst = append(dst, startByte, f.Control, byte(len(f.Data)))
	for _, b := range f.Data {
		dst = append(dst, b+dataOffset)
	}
	dst = append(dst, checksum(dst[start:]), endByte)
	return dst
}

// String formats f for logs, for example "000000000161 c=11 data=00000100".
func (f Frame) String() string {
	return fmt.Sprintf("%s c=%02x data=%x", f.Addr, f.Control, f.Data)
}

func checksum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return s
}

// Decode decodes the frame at the start of b. It skips any number of FE
// bytes, then expects 68 at offsets 0 and 7, the length L, the data, a
// correct CS and the 16 terminator. It returns the frame and the number of
// bytes consumed, preamble included. The frame's Data does not alias b.
//
// On error it returns n = 0 and an error wrapping [ErrShort] when b is a
// prefix of a possibly valid frame, [ErrFraming] or [ErrChecksum]. Decode
// does not hunt for a frame after garbage; [Reader] does.
func Decode(b []byte) (Frame, int, error) {
	pre := 0
	for pre < len(b) && b[pre] == preambleByte {
		pre++
	}
	n, err := frameLen(b[pre:])
	if err != nil {
		return Frame{}, 0, err
	}
	return decodeFrame(b[pre : pre+n]), pre + n, nil
}

// frameLen checks the frame at the start of b (which starts at the first
// 68) and returns its length.
func frameLen(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, ErrShort
	}
	if b[0] != startByte {
		return 0, fmt.Errorf("%w: start byte %02x, want 68", ErrFraming, b[0])
	}
	if len(b) > 7 && b[7] != startByte {
		return 0, fmt.Errorf("%w: byte 7 is %02x, want 68", ErrFraming, b[7])
	}
	if len(b) < headerLen {
		return 0, ErrShort
	}
	n := MinFrameLen + int(b[9])
	if len(b) < n {
		return 0, fmt.Errorf("%w: have %d of %d bytes", ErrShort, len(b), n)
	}
	if b[n-1] != endByte {
		return 0, fmt.Errorf("%w: end byte %02x, want 16", ErrFraming, b[n-1])
	}
	if cs := checksum(b[:n-2]); cs != b[n-2] {
		return 0, fmt.Errorf("%w: got %02x, computed %02x", ErrChecksum, b[n-2], cs)
	}
	return n, nil
}

// decodeFrame decodes a frame already checked by frameLen.
func decodeFrame(b []byte) Frame {
	var f Frame
	copy(f.Addr[:], b[1:7])
	f.Control = b[8]
	l := int(b[9])
	if l > 0 {
		f.Data = make([]byte, l)
		for i := range l {
			f.Data[i] = b[headerLen+i] - dataOffset
		}
	}
	return f
}
