//go:build linux

package rs485

import (
	"os"
	"syscall"
	"testing"
)

func TestIsPTY(t *testing.T) {
	a, _ := ptyPair(t)
	f := openEnd(t, a)
	if pty, err := isPTY(f); err != nil || !pty {
		t.Errorf("isPTY(socat end) = %v, %v, want true", pty, err)
	}
	null, err := os.OpenFile("/dev/null", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if pty, err := isPTY(null); err != nil || pty {
		t.Errorf("isPTY(/dev/null) = %v, %v, want false", pty, err)
	}
}

// TestApplyTermios exercises the real-port path on a pty, which accepts
// and stores termios settings even though it ignores them. Linux's pty
// driver forces CS8 and clears PARENB (pty_set_termios), so parity is
// checked in TestRawTermios instead.
func TestApplyTermios(t *testing.T) {
	a, _ := ptyPair(t)
	f := openEnd(t, a)
	if err := applyTermios(f, lineSettings{Speed: 2400, Parity: "N", DataBits: 8, StopBits: 2}); err != nil {
		t.Fatalf("applyTermios: %v", err)
	}
	var got syscall.Termios
	if err := control(f, func(fd uintptr) error { return ioctl(fd, syscall.TCGETS, &got) }); err != nil {
		t.Fatal(err)
	}
	if got.Cflag&cbaud != syscall.B2400 || got.Cflag&syscall.CSIZE != syscall.CS8 || got.Cflag&syscall.CSTOPB == 0 ||
		got.Lflag&(syscall.ICANON|syscall.ECHO|syscall.ISIG) != 0 || got.Oflag&syscall.OPOST != 0 {
		t.Errorf("termios after 2400 8N2: cflag %#o lflag %#o oflag %#o", got.Cflag, got.Lflag, got.Oflag)
	}
	if err := applyTermios(f, lineSettings{Speed: 1234}); err == nil {
		t.Error("applyTermios(1234 baud): no error")
	}
}

func TestRawTermios(t *testing.T) {
	tests := []struct {
		s        lineSettings
		set, clr uint32
	}{
		{lineSettings{Speed: 9600, Parity: "N", DataBits: 8, StopBits: 1}, syscall.CS8 | syscall.CREAD | syscall.CLOCAL, syscall.PARENB | syscall.CSTOPB},
		{lineSettings{Speed: 9600, Parity: "O", DataBits: 7, StopBits: 2}, syscall.CS7 | syscall.PARENB | syscall.PARODD | syscall.CSTOPB, 0},
		{lineSettings{Speed: 2400, Parity: "E", DataBits: 8, StopBits: 1}, syscall.CS8 | syscall.PARENB, syscall.PARODD},
	}
	for _, tt := range tests {
		start := syscall.Termios{Cflag: syscall.CSTOPB | syscall.PARODD | syscall.B115200, Lflag: syscall.ICANON | syscall.ECHO}
		got := rawTermios(start, bauds[tt.s.Speed], tt.s)
		if got.Cflag&tt.set != tt.set || got.Cflag&tt.clr != 0 || got.Cflag&cbaud != bauds[tt.s.Speed] || got.Lflag != 0 {
			t.Errorf("rawTermios(%+v): cflag %#o lflag %#o", tt.s, got.Cflag, got.Lflag)
		}
		if got.Cc[syscall.VMIN] != 1 || got.Cc[syscall.VTIME] != 0 {
			t.Errorf("rawTermios(%+v): VMIN %d VTIME %d, want 1 0", tt.s, got.Cc[syscall.VMIN], got.Cc[syscall.VTIME])
		}
	}
}
