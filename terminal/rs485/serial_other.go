//go:build !linux

package rs485

import (
	"log/slog"
	"os"
)

// openSerial opens a serial device for reading and writing.
func openSerial(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR, 0)
}

// configureSerialLine is the hook that applies line settings to a real
// serial port. Terminals run Linux (serial_linux.go); elsewhere the
// device keeps its settings, which suits a pty in development.
func configureSerialLine(f *os.File, s lineSettings, log *slog.Logger) error {
	log.Warn("serial settings not applied on this OS", "device", f.Name(), "speed", s.Speed, "parity", s.Parity)
	return nil
}
