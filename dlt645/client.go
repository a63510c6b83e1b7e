package dlt645

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// ErrTimeout is returned when a meter does not answer within the timeout
// on any attempt.
var ErrTimeout = errors.New("dlt645: no reply")

// ErrClosed is returned once the link's reader has failed or reached EOF;
// the client cannot be used any more.
var ErrClosed = errors.New("dlt645: link closed")

// ClientOptions configures a [Client]. The zero value gives the defaults.
type ClientOptions struct {
	Timeout  time.Duration // wait for a reply per attempt; default 1s (meters answer in 500 ms – 1 s)
	Retries  int           // extra attempts after a timeout; default 2, negative: none
	Preamble int           // FE wake-up bytes before each request; default 4, negative: none
	Logger   *slog.Logger  // default: discard
}

// Client is a DL/T 645 master on one half-duplex link: it sends a request
// and waits for the matching reply, one exchange at a time. Replies from
// other addresses, for other functions or for other DIs are ignored. It is
// safe for concurrent use; exchanges are serialised.
type Client struct {
	w        io.Writer
	timeout  time.Duration
	retries  int
	preamble int
	log      *slog.Logger

	sem     chan struct{} // holds one token while an exchange owns the link
	frames  chan Frame    // frames read from the link, oldest dropped when full
	done    chan struct{} // closed when the read loop ends
	readErr error         // why the read loop ended; read after done is closed
	buf     []byte        // request encoding, owned by the exchange holding sem
}

// NewClient returns a client that talks over rw. It starts one goroutine
// that reads frames from rw until rw returns EOF or a non-timeout error;
// close rw to stop it. Read timeouts reported by rw (errors with a
// Timeout() bool method returning true) are ignored.
func NewClient(rw io.ReadWriter, opts ClientOptions) *Client {
	c := &Client{
		w:        rw,
		timeout:  opts.Timeout,
		retries:  opts.Retries,
		preamble: opts.Preamble,
		log:      opts.Logger,
		sem:      make(chan struct{}, 1),
		frames:   make(chan Frame, 8),
		done:     make(chan struct{}),
	}
	if c.timeout <= 0 {
		c.timeout = time.Second
	}
	switch {
	case c.retries == 0:
		c.retries = 2
	case c.retries < 0:
		c.retries = 0
	}
	switch {
	case c.preamble == 0:
		c.preamble = 4
	case c.preamble < 0:
		c.preamble = 0
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("component", "dlt645-client")
	go c.readLoop(rw)
	return c
}

func (c *Client) readLoop(r io.Reader) {
	defer close(c.done)
	fr := NewReader(r)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			var te interface{ Timeout() bool }
			if errors.As(err, &te) && te.Timeout() {
				continue
			}
			c.readErr = err
			return
		}
		select {
		case c.frames <- f:
		default:
			// Nobody is waiting and the queue is full: drop the oldest
			// frame, a late reply nobody wants.
			select {
			case <-c.frames:
			default:
			}
			select {
			case c.frames <- f:
			default:
			}
		}
	}
}

// Do sends req and returns the meter's reply. For a broadcast it returns
// at once with a zero Frame, since meters never answer. For an error reply
// it returns the frame and a [*MeterError]. It retries on timeouts and
// returns an error wrapping [ErrTimeout] when no attempt got a reply.
func (c *Client) Do(ctx context.Context, req Frame) (Frame, error) {
	return c.exchange(ctx, req, nil)
}

// exchange runs one request with retries. accept, if set, filters replies
// beyond the address and function checks.
func (c *Client) exchange(ctx context.Context, req Frame, accept func(Frame) bool) (Frame, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return Frame{}, ctx.Err()
	}
	defer func() { <-c.sem }()

	c.buf = req.AppendPreamble(c.buf[:0], c.preamble)
	for attempt := 1; ; attempt++ {
		c.drain()
		if err := c.send(); err != nil {
			return Frame{}, fmt.Errorf("send %02x to %s: %w", req.Control, req.Addr, err)
		}
		if req.Addr.IsBroadcast() {
			return Frame{}, nil
		}
		f, err := c.await(ctx, req, accept)
		switch {
		case err == nil:
			return f, f.Err()
		case !errors.Is(err, ErrTimeout):
			return Frame{}, err
		case attempt > c.retries:
			return Frame{}, fmt.Errorf("request %02x to %s, %d attempts: %w", req.Control, req.Addr, attempt, err)
		}
		c.log.Debug("no reply, retrying", "meter", req.Addr.String(), "attempt", attempt)
	}
}

// send writes the encoded request, bounded by the timeout when the link
// supports write deadlines.
func (c *Client) send() error {
	if d, ok := c.w.(interface{ SetWriteDeadline(time.Time) error }); ok {
		_ = d.SetWriteDeadline(time.Now().Add(c.timeout))
	}
	_, err := c.w.Write(c.buf)
	return err
}

// drain drops frames that arrived before the request, such as late
// replies to an earlier attempt.
func (c *Client) drain() {
	for {
		select {
		case f := <-c.frames:
			c.log.Debug("stale frame dropped", "frame", f.String())
		default:
			return
		}
	}
}

func (c *Client) await(ctx context.Context, req Frame, accept func(Frame) bool) (Frame, error) {
	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return Frame{}, ctx.Err()
		case <-timer.C:
			return Frame{}, ErrTimeout
		case f := <-c.frames:
			if !answers(req, f) || (accept != nil && !f.IsError() && !accept(f)) {
				c.log.Debug("frame ignored", "frame", f.String())
				continue
			}
			return f, nil
		case <-c.done:
			return Frame{}, fmt.Errorf("%w: %w", ErrClosed, c.readErr)
		}
	}
}

// answers reports whether f is a reply to req: same function, from the
// addressed meter (any meter for wildcard bytes).
func answers(req, f Frame) bool {
	return f.IsReply() && f.Function() == req.Function() && req.Addr.Matches(f.Addr)
}

// Read reads di from the meter at addr and returns the value bytes (the
// reply data after the DI). Only the first frame of a multi-frame reply
// is returned; use [Client.Do] with follow-up requests for the rest.
func (c *Client) Read(ctx context.Context, addr Address, di DI) ([]byte, error) {
	f, err := c.exchange(ctx, ReadData(addr, di), func(f Frame) bool {
		got, err := DecodeDI(f.Data)
		return err == nil && got == di
	})
	if err != nil {
		return nil, fmt.Errorf("read %s from %s: %w", di, addr, err)
	}
	return f.Data[4:], nil
}

// ReadValue reads di from the meter at addr and decodes it with
// [DecodeValue].
func (c *Client) ReadValue(ctx context.Context, addr Address, di DI) (Value, error) {
	b, err := c.Read(ctx, addr, di)
	if err != nil {
		return Value{}, err
	}
	return DecodeValue(di, b)
}

// ReadEnergy reads forward active energy (00010000) from the meter at
// addr, in units of 0.01 kWh.
func (c *Client) ReadEnergy(ctx context.Context, addr Address) (int64, error) {
	v, err := c.ReadValue(ctx, addr, DIForwardActive)
	if err != nil {
		return 0, err
	}
	return v.Int, nil
}

// Read1997 reads a DL/T 645-1997 di (C = 0x01) from the meter at addr and
// returns the value bytes after the DI.
func (c *Client) Read1997(ctx context.Context, addr Address, di DI97) ([]byte, error) {
	f, err := c.exchange(ctx, ReadData1997(addr, di), func(f Frame) bool {
		got, err := DecodeDI97(f.Data)
		return err == nil && got == di
	})
	if err != nil {
		return nil, fmt.Errorf("read %s from %s: %w", di, addr, err)
	}
	return f.Data[2:], nil
}

// ReadAddress asks the only meter on the link for its address (C = 0x13
// to AA…AA).
func (c *Client) ReadAddress(ctx context.Context) (Address, error) {
	f, err := c.exchange(ctx, ReadAddress(), func(f Frame) bool { return len(f.Data) == len(Address{}) })
	if err != nil {
		return Address{}, fmt.Errorf("read address: %w", err)
	}
	return Address(f.Data), nil
}

// Write writes data (decoded bytes, wire order) to di on the meter at addr.
func (c *Client) Write(ctx context.Context, addr Address, di DI, pw Password, op Operator, data []byte) error {
	req, err := WriteData(addr, di, pw, op, data)
	if err != nil {
		return err
	}
	if _, err := c.exchange(ctx, req, nil); err != nil {
		return fmt.Errorf("write %s to %s: %w", di, addr, err)
	}
	return nil
}

// Freeze sends a freeze command to addr, which may be the broadcast
// address (then nothing is awaited).
func (c *Client) Freeze(ctx context.Context, addr Address, p FreezePattern) error {
	if _, err := c.exchange(ctx, Freeze(addr, p), nil); err != nil {
		return fmt.Errorf("freeze %s at %s: %w", addr, p, err)
	}
	return nil
}

// RelayControl sends a relay command to the meter at addr, valid until
// validUntil on the meter's clock.
func (c *Client) RelayControl(ctx context.Context, addr Address, pw Password, op Operator, cmd RelayCommand, validUntil time.Time) error {
	if _, err := c.exchange(ctx, RelayControl(addr, pw, op, cmd, validUntil), nil); err != nil {
		return fmt.Errorf("relay %02x to %s: %w", byte(cmd), addr, err)
	}
	return nil
}

// BroadcastTime broadcasts t as the time. Nothing is awaited; meters
// accept only small corrections.
func (c *Client) BroadcastTime(ctx context.Context, t time.Time) error {
	_, err := c.exchange(ctx, BroadcastTime(t), nil)
	return err
}
