package dlt645

import (
	"errors"
	"io"
)

// scan finds the first complete, valid frame in buf. It returns how many
// leading bytes are garbage (preamble included) and may be dropped, and the
// frame's length (0 if no frame is complete yet).
//
// Frames are found by structure, as the standard's receivers do: a 68, a
// second 68 at offset 7, L, then 12+L bytes with a good CS and 16. A 68
// that fails these checks is garbage and the scan resumes at the next
// byte. While a candidate is still incomplete, a complete valid frame
// further on wins, so a stray 68 with a large L cannot stall the stream
// until more bytes come. At EOF an incomplete candidate is garbage.
func scan(buf []byte, atEOF bool) (skip, n int) {
	for i := 0; i < len(buf); i++ {
		if buf[i] != startByte {
			continue
		}
		m, err := frameLen(buf[i:])
		if err == nil {
			return i, m
		}
		if !errors.Is(err, ErrShort) {
			continue
		}
		for j := i + 1; j < len(buf); j++ {
			if buf[j] != startByte {
				continue
			}
			if m, err := frameLen(buf[j:]); err == nil {
				return j, m
			}
		}
		if atEOF {
			continue
		}
		return i, 0
	}
	return len(buf), 0
}

// Split is a [bufio.SplitFunc] that yields raw frames, from the first 68 to
// the 16, and drops preambles and garbage between them. Decode a token
// with [Decode]. Because a [bufio.Scanner] stops at the first read error,
// use [Reader] on links with read timeouts.
func Split(data []byte, atEOF bool) (advance int, token []byte, err error) {
	skip, n := scan(data, atEOF)
	if n == 0 {
		return skip, nil, nil
	}
	return skip + n, data[skip : skip+n], nil
}

// Reader reads frames from a byte stream, such as a serial port, framing
// them by structure and resynchronising after garbage, truncated frames
// and checksum errors (which are dropped silently, as meters do). It is not
// safe for concurrent use.
type Reader struct {
	r         io.Reader
	buf       []byte
	tmp       [256]byte
	discarded int64
}

// NewReader returns a Reader that reads from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: r}
}

// ReadFrame returns the next valid frame. Errors from the underlying
// reader are returned as they are, and bytes already read are kept, so a
// read that timed out can be retried. At the end of the stream it returns
// [io.EOF], or [io.ErrUnexpectedEOF] if an incomplete frame was pending.
func (r *Reader) ReadFrame() (Frame, error) {
	atEOF := false
	for {
		skip, n := scan(r.buf, atEOF)
		if n > 0 {
			r.drop(skip)
			f := decodeFrame(r.buf[:n])
			r.buf = append(r.buf[:0], r.buf[n:]...)
			return f, nil
		}
		if atEOF {
			return Frame{}, r.finish()
		}
		r.drop(skip)
		m, err := r.r.Read(r.tmp[:])
		r.buf = append(r.buf, r.tmp[:m]...)
		switch {
		case errors.Is(err, io.EOF):
			atEOF = true
		case err != nil:
			return Frame{}, err
		}
	}
}

// finish drops what is left at the end of the stream and tells whether
// it ended inside a frame.
func (r *Reader) finish() error {
	skip, _ := scan(r.buf, false)
	truncated := skip < len(r.buf)
	r.drop(len(r.buf))
	if truncated {
		return io.ErrUnexpectedEOF
	}
	return io.EOF
}

// drop discards the first k buffered bytes, counting those that are not
// preamble bytes as garbage.
func (r *Reader) drop(k int) {
	for _, b := range r.buf[:k] {
		if b != preambleByte {
			r.discarded++
		}
	}
	r.buf = append(r.buf[:0], r.buf[k:]...)
}

// Discarded returns how many bytes, other than FE preamble bytes, were
// dropped as garbage so far.
func (r *Reader) Discarded() int64 { return r.discarded }
