//go:build linux

package rs485

import (
	"fmt"
	"log/slog"
	"os"
	"syscall"
	"unsafe"
)

// openSerial opens a serial device for reading and writing without making
// it the process's controlling terminal. The file is non-blocking under
// Go's poller, so read deadlines work on ttys and ptys alike.
func openSerial(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
}

// cbaud masks the baud bits of c_cflag (CBAUD | CBAUDEX; 0010017 on
// every Linux architecture Go supports except ppc64, which the terminal
// does not run on). The syscall package does not define it.
const cbaud = 0x100F

var bauds = map[int]uint32{
	300: syscall.B300, 600: syscall.B600, 1200: syscall.B1200, 2400: syscall.B2400, 4800: syscall.B4800,
	9600: syscall.B9600, 19200: syscall.B19200, 38400: syscall.B38400, 57600: syscall.B57600, 115200: syscall.B115200,
}

// configureSerialLine is the hook that applies speed, parity, data and
// stop bits to a real serial port (termios, raw mode: no echo, no line
// editing, no flow control, reads return as soon as a byte arrives).
//
// A pty ignores baud rate and parity (domain.md §8.3), so on a pty, such
// as either end of a socat null modem in tests, nothing is changed and
// the settings are only logged: a mismatch between meter and terminal
// cannot be seen there and is caught by Config.Validate instead.
func configureSerialLine(f *os.File, s lineSettings, log *slog.Logger) error {
	pty, err := isPTY(f)
	if err != nil {
		return err
	}
	if pty {
		log.Debug("pty: serial settings not applied", "device", f.Name(), "speed", s.Speed, "parity", s.Parity)
		return nil
	}
	return applyTermios(f, s)
}

// applyTermios sets raw mode and s on f with TCGETS/TCSETS.
func applyTermios(f *os.File, s lineSettings) error {
	baud, ok := bauds[s.Speed]
	if !ok {
		return fmt.Errorf("speed %d baud is not supported", s.Speed)
	}
	return control(f, func(fd uintptr) error {
		var t syscall.Termios
		if err := ioctl(fd, syscall.TCGETS, &t); err != nil {
			return fmt.Errorf("get termios of %s: %w", f.Name(), err)
		}
		t = rawTermios(t, baud, s)
		if err := ioctl(fd, syscall.TCSETS, &t); err != nil {
			return fmt.Errorf("set termios of %s: %w", f.Name(), err)
		}
		return nil
	})
}

// rawTermios returns t in raw mode with the line settings applied.
func rawTermios(t syscall.Termios, baud uint32, s lineSettings) syscall.Termios {
	t.Iflag &^= syscall.IGNBRK | syscall.BRKINT | syscall.PARMRK | syscall.ISTRIP | syscall.INLCR |
		syscall.IGNCR | syscall.ICRNL | syscall.IXON | syscall.IXOFF | syscall.IXANY | syscall.INPCK
	t.Oflag &^= syscall.OPOST
	t.Lflag &^= syscall.ECHO | syscall.ECHONL | syscall.ICANON | syscall.ISIG | syscall.IEXTEN
	t.Cflag &^= syscall.CSIZE | syscall.PARENB | syscall.PARODD | syscall.CSTOPB | cbaud
	t.Cflag |= syscall.CREAD | syscall.CLOCAL | baud
	if s.DataBits == 7 {
		t.Cflag |= syscall.CS7
	} else {
		t.Cflag |= syscall.CS8
	}
	switch s.Parity {
	case "E":
		t.Cflag |= syscall.PARENB
		t.Iflag |= syscall.INPCK
	case "O":
		t.Cflag |= syscall.PARENB | syscall.PARODD
		t.Iflag |= syscall.INPCK
	}
	if s.StopBits == 2 {
		t.Cflag |= syscall.CSTOPB
	}
	t.Cc[syscall.VMIN], t.Cc[syscall.VTIME] = 1, 0
	return t
}

// isPTY reports whether f is a pseudo-terminal: Unix98 pty slaves have
// major numbers 136..143, the master multiplexer 5:2.
func isPTY(f *os.File) (bool, error) {
	var st syscall.Stat_t
	err := control(f, func(fd uintptr) error { return syscall.Fstat(int(fd), &st) })
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	dev := uint64(st.Rdev)
	major := (dev>>8)&0xfff | (dev>>32)&^0xfff
	minor := dev&0xff | (dev>>12)&^0xff
	return major >= 136 && major <= 143 || major == 5 && minor == 2, nil
}

// control runs fn on f's descriptor without f.Fd(), which would switch the
// file to blocking mode and break read deadlines.
func control(f *os.File, fn func(fd uintptr) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var inner error
	if err := rc.Control(func(fd uintptr) { inner = fn(fd) }); err != nil {
		return err
	}
	return inner
}

func ioctl(fd, req uintptr, t *syscall.Termios) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(unsafe.Pointer(t))); errno != 0 {
		return errno
	}
	return nil
}
