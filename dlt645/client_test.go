package dlt645

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// serveMeter runs m on one end of a net.Pipe and returns a client on the
// other end. Cleanup stops the meter and checks that Serve returned nil.
func serveMeter(t *testing.T, m *Meter, opts ClientOptions) *Client {
	t.Helper()
	a, b := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- m.Serve(ctx, b) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Serve: %v", err)
		}
		a.Close()
		b.Close()
	})
	return NewClient(a, opts)
}

func TestClientWithMeter(t *testing.T) {
	m := NewMeter(addr161, MeterOptions{Location: time.UTC, Now: fixedClock(), Preamble: 2})
	m.SetEnergy(123456)
	m.SetVoltage(2248, 2250, 2251)
	c := serveMeter(t, m, ClientOptions{})
	ctx := context.Background()

	t.Run("ReadEnergy", func(t *testing.T) {
		got, err := c.ReadEnergy(ctx, addr161)
		if err != nil || got != 123456 {
			t.Errorf("ReadEnergy = %d, %v, want 123456", got, err)
		}
	})
	t.Run("ReadValue voltage", func(t *testing.T) {
		got, err := c.ReadValue(ctx, addr161, DIVoltageB)
		if diff := cmp.Diff(Value{2250, 1, "V"}, got); err != nil || diff != "" {
			t.Errorf("ReadValue = %v, %v (-want +got):\n%s", got, err, diff)
		}
	})
	t.Run("Read1997", func(t *testing.T) {
		got, err := c.Read1997(ctx, addr161, DI97ForwardActive)
		if want := []byte{0x56, 0x34, 0x12, 0x00}; err != nil || !cmp.Equal(want, got) {
			t.Errorf("Read1997 = % X, %v, want % X", got, err, want)
		}
	})
	t.Run("ReadAddress", func(t *testing.T) {
		got, err := c.ReadAddress(ctx)
		if err != nil || got != addr161 {
			t.Errorf("ReadAddress = %s, %v, want %s", got, err, addr161)
		}
	})
	t.Run("unknown DI", func(t *testing.T) {
		_, err := c.Read(ctx, addr161, 0x04000C01)
		var me *MeterError
		if !errors.As(err, &me) || me.Code != CodeNoData || me.Control != 0xD1 || !errors.Is(err, ErrNoData) {
			t.Errorf("Read(unknown) error = %v, want *MeterError with CodeNoData", err)
		}
	})
	t.Run("Write time", func(t *testing.T) {
		err := c.Write(ctx, addr161, DITime, Password{Level: 2}, Operator{}, AppendTime(nil, utc(2024, 5, 6, 9, 0, 0)))
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Clock(); !got.Equal(utc(2024, 5, 6, 9, 0, 0)) {
			t.Errorf("meter clock = %v, want 09:00:00", got)
		}
	})
	t.Run("Write wrong password", func(t *testing.T) {
		err := c.Write(ctx, addr161, DITime, Password{Level: 4}, Operator{}, []byte{0, 0, 0})
		if !errors.Is(err, ErrUnauthorized) {
			t.Errorf("Write error = %v, want ErrUnauthorized", err)
		}
	})
	t.Run("Freeze and RelayControl", func(t *testing.T) {
		p, _ := FreezeDaily(0, 5)
		if err := c.Freeze(ctx, addr161, p); err != nil {
			t.Fatal(err)
		}
		if err := c.RelayControl(ctx, addr161, Password{Level: 2}, Operator{}, RelayTrip, utc(2030, 1, 1, 0, 0, 0)); err != nil {
			t.Fatal(err)
		}
		if m.DailyFreezeTime() != p || m.Relay() != RelayTrip {
			t.Errorf("meter freeze %s relay %02x, want %s 1a", m.DailyFreezeTime(), m.Relay(), p)
		}
	})
	t.Run("broadcasts return at once", func(t *testing.T) {
		if err := c.Freeze(ctx, BroadcastAddress(), FreezeNow()); err != nil {
			t.Fatal(err)
		}
		if err := c.BroadcastTime(ctx, m.Clock().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		// The meter answers the read after it has handled both broadcasts.
		b, err := c.Read(ctx, addr161, 0x05010001)
		if err != nil {
			t.Fatalf("read instant freeze time: %v", err)
		}
		if _, err := DecodeFreezeTime(b, time.UTC); err != nil {
			t.Errorf("instant freeze time % X: %v", b, err)
		}
		if got, want := m.Clock(), utc(2024, 5, 6, 9, 1, 0); !got.Equal(want) {
			t.Errorf("clock after broadcast = %v, want %v", got, want)
		}
	})
	t.Run("concurrent reads are serialised", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 10 {
					if _, err := c.ReadEnergy(ctx, addr161); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Go(func() {
			for range 10 {
				m.AddEnergy(1, 0)
			}
		})
		wg.Wait()
	})
}

// fakeBus answers every request read from conn with handle until conn
// is closed. It stands in for meters that misbehave.
func fakeBus(conn net.Conn, handle func(n int, req Frame) [][]byte) {
	go func() {
		r := NewReader(conn)
		for n := 1; ; n++ {
			req, err := r.ReadFrame()
			if err != nil {
				return
			}
			for _, b := range handle(n, req) {
				if _, err := conn.Write(b); err != nil {
					return
				}
			}
		}
	}()
}

func encode(f Frame) []byte { return f.AppendPreamble(nil, 2) }

// TestClientFaults uses synctest, so the 1 s timeouts take no real time.
func TestClientFaults(t *testing.T) {
	other := MustParseAddress("000000000162")
	energy := func(addr Address, di DI, v byte) []byte {
		return encode(ReadData(addr, di).Reply(addr, append(di.Append(nil), v, 0, 0, 0)))
	}
	tests := []struct {
		name      string
		handle    func(n int, req Frame) [][]byte
		wantErr   error
		want      int64
		wantCalls int32
	}{
		{
			name:      "silent meter times out after 3 attempts",
			handle:    func(int, Frame) [][]byte { return nil },
			wantErr:   ErrTimeout,
			wantCalls: 3,
		},
		{
			name: "answer on the second attempt",
			handle: func(n int, req Frame) [][]byte {
				if n == 1 {
					return nil
				}
				return [][]byte{energy(addr161, DIForwardActive, 0x42)}
			},
			want:      42,
			wantCalls: 2,
		},
		{
			name: "other address, wrong DI, garbage and bad CS ignored",
			handle: func(int, Frame) [][]byte {
				bad := energy(addr161, DIForwardActive, 0x99)
				bad[len(bad)-2]++
				return [][]byte{
					energy(other, DIForwardActive, 0x11),
					energy(addr161, DIReverseActive, 0x22),
					{0x68, 0x00, 0x16, 0x68},
					bad,
					encode(Frame{Addr: addr161, Control: CtrlRead, Data: DIForwardActive.Append(nil)}),
					energy(addr161, DIForwardActive, 0x33),
				}
			},
			want:      33,
			wantCalls: 1,
		},
		{
			name: "error reply is not retried",
			handle: func(_ int, req Frame) [][]byte {
				return [][]byte{encode(req.ErrorReply(addr161, CodeNoData))}
			},
			wantErr:   ErrNoData,
			wantCalls: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				a, b := net.Pipe()
				defer a.Close()
				defer b.Close()
				var calls atomic.Int32
				fakeBus(b, func(n int, req Frame) [][]byte {
					calls.Add(1)
					return tt.handle(n, req)
				})
				c := NewClient(a, ClientOptions{})
				start := time.Now()
				got, err := c.ReadEnergy(context.Background(), addr161)
				if !errors.Is(err, tt.wantErr) || got != tt.want {
					t.Errorf("ReadEnergy = %d, %v, want %d, %v", got, err, tt.want, tt.wantErr)
				}
				if n := calls.Load(); n != tt.wantCalls {
					t.Errorf("meter saw %d requests, want %d", n, tt.wantCalls)
				}
				if elapsed, limit := time.Since(start), time.Duration(tt.wantCalls)*time.Second; elapsed > limit {
					t.Errorf("took %v, want at most %v", elapsed, limit)
				}
			})
		})
	}
}

func TestClientDropsStaleReplies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		fakeBus(b, func(n int, req Frame) [][]byte {
			v := byte(0x07)
			if n == 1 {
				time.Sleep(1500 * time.Millisecond) // answer after the client gave up
				v = 0x99
			}
			return [][]byte{encode(req.Reply(addr161, append(DIForwardActive.Append(nil), v, 0, 0, 0)))}
		})
		c := NewClient(a, ClientOptions{Retries: -1})
		ctx := context.Background()
		if _, err := c.ReadEnergy(ctx, addr161); !errors.Is(err, ErrTimeout) {
			t.Fatalf("first ReadEnergy error = %v, want ErrTimeout", err)
		}
		time.Sleep(time.Second) // the late reply arrives between exchanges
		synctest.Wait()
		got, err := c.ReadEnergy(ctx, addr161)
		if err != nil || got != 7 {
			t.Errorf("second ReadEnergy = %d, %v, want 7 (not the stale 99)", got, err)
		}
	})
}

func TestClientOptions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		var mu sync.Mutex
		var raw [][]byte
		go func() {
			buf := make([]byte, 64)
			for {
				n, err := b.Read(buf)
				if err != nil {
					return
				}
				mu.Lock()
				raw = append(raw, append([]byte(nil), buf[:n]...))
				mu.Unlock()
			}
		}()
		c := NewClient(a, ClientOptions{Timeout: 300 * time.Millisecond, Retries: -1, Preamble: -1})
		start := time.Now()
		_, err := c.ReadEnergy(context.Background(), addr161)
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("error = %v, want ErrTimeout", err)
		}
		if d := time.Since(start); d != 300*time.Millisecond {
			t.Errorf("gave up after %v, want 300ms", d)
		}
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		want := [][]byte{hx(t, "68 61 01 00 00 00 00 68 11 04 33 33 34 33 14 16")}
		if diff := cmp.Diff(want, raw); diff != "" {
			t.Errorf("sent (-want +got):\n%s", diff)
		}
	})
}

func TestClientContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		fakeBus(b, func(int, Frame) [][]byte { return nil })
		c := NewClient(a, ClientOptions{Timeout: 10 * time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := c.Read(ctx, addr161, DIForwardActive)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error = %v, want context.DeadlineExceeded", err)
		}
	})
}

func TestClientClosedLink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		go func() {
			buf := make([]byte, 64)
			b.Read(buf)
			b.Close()
		}()
		c := NewClient(a, ClientOptions{})
		_, err := c.Read(context.Background(), addr161, DIForwardActive)
		if !errors.Is(err, ErrClosed) || !errors.Is(err, io.EOF) {
			t.Errorf("error = %v, want ErrClosed wrapping io.EOF", err)
		}
	})
}

func TestMeterServeStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- newTestMeter().Serve(ctx, b) }()
		synctest.Wait()
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Serve after cancel = %v, want nil", err)
		}
	})
}
