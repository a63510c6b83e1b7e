package rs485

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/meterlink/meterlink/regmap"
	"github.com/simonvetter/modbus"
)

// modbusLine reads Modbus meters through one simonvetter/modbus client.
// The client is opened at start for rtu:// and on demand for TCP URLs,
// and closed and reopened after a link error.
type modbusLine struct {
	log     *slog.Logger
	client  *modbus.ModbusClient
	serial  bool
	open    bool
	timeout time.Duration
	retries int
}

func openModbus(cfg Config, log *slog.Logger) (*modbusLine, error) {
	parity := map[string]uint{"N": modbus.PARITY_NONE, "E": modbus.PARITY_EVEN, "O": modbus.PARITY_ODD}[cfg.Parity]
	client, err := modbus.NewClient(&modbus.ClientConfiguration{
		URL:      cfg.URL,
		Speed:    uint(cfg.Speed),
		DataBits: uint(cfg.DataBits),
		Parity:   parity,
		StopBits: uint(cfg.StopBits),
		Timeout:  cfg.Timeout,
		// The library logs with the standard logger (to stdout when nil);
		// route it to slog at debug level.
		Logger: slog.NewLogLogger(log.With("component", "modbus-client").Handler(), slog.LevelDebug),
	})
	if err != nil {
		return nil, fmt.Errorf("modbus client for %s: %w: %w", cfg.URL, ErrLink, err)
	}
	l := &modbusLine{
		log: log, client: client, serial: strings.HasPrefix(cfg.URL, "rtu://"),
		timeout: cfg.Timeout, retries: cfg.Retries,
	}
	if l.serial {
		if err := client.Open(); err != nil {
			return nil, fmt.Errorf("open %s: %w: %w", cfg.URL, ErrLink, err)
		}
		l.open = true
	}
	return l, nil
}

// read reads import energy with retries, then the optional quantities
// with one attempt each.
func (l *modbusLine) read(ctx context.Context, m meter) Result {
	var r Result
	reg, _ := m.regs.Register(regmap.ImportEnergy) // every valid map has it
	kwh, err := l.readValue(ctx, m, reg, l.retries)
	if err != nil {
		r.Err = err
		return r
	}
	if r.EnergyWh, err = whFromKWh(kwh); err != nil {
		r.Err = fmt.Errorf("%s: %w", reg.Quantity, err)
		return r
	}
	silent := false // after one silent optional read, skip the rest
	optional := func(quantities ...string) *float64 {
		for _, q := range quantities {
			reg, ok := m.regs.Register(q)
			if !ok || silent {
				continue
			}
			v, err := l.readValue(ctx, m, reg, 0)
			if err != nil {
				silent = errors.Is(err, ErrMeterSilent) || errors.Is(err, ErrLink)
				l.log.Debug("optional quantity not read", "meter", m.id, "quantity", q, "err", err)
				return nil
			}
			return &v
		}
		return nil
	}
	if v := optional(regmap.ExportEnergy); v != nil {
		if wh, err := whFromKWh(*v); err == nil {
			r.ExportWh = &wh
		}
	}
	r.PowerW = optional(regmap.Power)
	r.VoltageV = optional(regmap.Voltage, regmap.VoltageL1)
	r.CurrentA = optional(regmap.Current, regmap.CurrentL1)
	return r
}

// readValue reads and decodes one register, trying 1 + retries times
// while the meter is silent or the link fails.
func (l *modbusLine) readValue(ctx context.Context, m meter, reg regmap.Register, retries int) (float64, error) {
	regType := modbus.HOLDING_REGISTER
	if m.regs.Function == regmap.ReadInput {
		regType = modbus.INPUT_REGISTER
	}
	what := fmt.Sprintf("read %s (%d regs at 0x%04X, FC%02d) from unit %d", reg.Quantity, reg.Words, uint16(reg.Address), m.regs.Function, m.unit)
	for attempt := 1; ; attempt++ {
		words, err := l.readOnce(m.unit, uint16(reg.Address), uint16(reg.Words), regType)
		if err == nil {
			v, err := reg.Decode(words)
			if err != nil {
				return 0, fmt.Errorf("%s: %w: %w", what, ErrLink, err)
			}
			return v, nil
		}
		if errors.Is(err, ErrMeterError) {
			return 0, fmt.Errorf("%s: %w", what, err)
		}
		if attempt > retries || ctx.Err() != nil {
			return 0, fmt.Errorf("%s, %d attempts: %w", what, attempt, err)
		}
		l.log.Debug("no reply, retrying", "meter", m.id, "attempt", attempt, "err", err)
	}
}

// readOnce runs one request and sorts its failure into ErrMeterSilent,
// ErrMeterError or ErrLink.
func (l *modbusLine) readOnce(unit uint8, addr, n uint16, regType modbus.RegType) ([]uint16, error) {
	if !l.open {
		if err := l.client.Open(); err != nil {
			return nil, fmt.Errorf("%w: open: %w", ErrLink, err)
		}
		l.open = true
	}
	if err := l.client.SetUnitId(unit); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLink, err)
	}
	words, err := l.client.ReadRegisters(addr, n, regType)
	switch {
	case err == nil:
		return words, nil
	case errors.Is(err, modbus.ErrRequestTimedOut),
		errors.Is(err, modbus.ErrGWTargetFailedToRespond), errors.Is(err, modbus.ErrGWPathUnavailable):
		return nil, fmt.Errorf("%w: %w", ErrMeterSilent, err)
	case isException(err):
		return nil, fmt.Errorf("%w: %w", ErrMeterError, err)
	}
	// Garbled reply, wrong unit, broken connection: on TCP start afresh
	// with a new connection, which also drops any late reply.
	if !l.serial {
		_ = l.client.Close()
		l.open = false
	}
	return nil, fmt.Errorf("%w: %w", ErrLink, err)
}

// isException reports whether err is the library's error for a Modbus
// exception reply from the meter (other than the gateway ones).
func isException(err error) bool {
	for _, e := range []error{
		modbus.ErrIllegalFunction, modbus.ErrIllegalDataAddress, modbus.ErrIllegalDataValue,
		modbus.ErrServerDeviceFailure, modbus.ErrAcknowledge, modbus.ErrServerDeviceBusy,
		modbus.ErrMemoryParityError,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (l *modbusLine) close() error {
	if !l.open {
		return nil
	}
	l.open = false
	return l.client.Close()
}
