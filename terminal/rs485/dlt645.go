package rs485

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/meterlink/meterlink/dlt645"
)

// dltLine reads DL/T 645 meters over a serial device with a
// [dlt645.Client].
type dltLine struct {
	f       *os.File
	client  *dlt645.Client
	log     *slog.Logger
	timeout time.Duration // per attempt
}

func openDLT645(cfg Config, log *slog.Logger) (*dltLine, error) {
	f, err := openSerial(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w: %w", cfg.URL, ErrLink, err)
	}
	if err := configureSerialLine(f, lineSettings{Speed: cfg.Speed, Parity: cfg.Parity, DataBits: cfg.DataBits, StopBits: cfg.StopBits}, log); err != nil {
		f.Close()
		return nil, fmt.Errorf("set up %s: %w: %w", cfg.URL, ErrLink, err)
	}
	retries := cfg.Retries
	if retries == 0 {
		retries = -1 // the dlt645 client reads 0 as its default of 2
	}
	c := dlt645.NewClient(f, dlt645.ClientOptions{Timeout: cfg.Timeout, Retries: retries, Logger: log})
	return &dltLine{f: f, client: c, log: log, timeout: cfg.Timeout}, nil
}

func (l *dltLine) read(ctx context.Context, m meter) Result {
	var r Result
	energy, err := l.value(ctx, m, dlt645.DIForwardActive, dlt645.DI97ForwardActive)
	if err != nil {
		r.Err = err
		return r
	}
	if energy.Int < 0 {
		r.Err = fmt.Errorf("forward active energy %s: %w", energy, ErrBadValue)
		return r
	}
	r.EnergyWh = energy.Int * 10 // 0.01 kWh
	// Optional quantities: one attempt each, stopping at the first that
	// gets no reply.
	silent := false
	optional := func(di dlt645.DI, di97 dlt645.DI97) (dlt645.Value, bool) {
		if silent {
			return dlt645.Value{}, false
		}
		// Slightly under the client's own timeout, so the client never
		// starts a second attempt.
		octx, cancel := context.WithTimeout(ctx, l.timeout*9/10)
		defer cancel()
		v, err := l.value(octx, m, di, di97)
		if err != nil {
			silent = errors.Is(err, ErrMeterSilent) || errors.Is(err, ErrLink) || errors.Is(err, context.DeadlineExceeded)
			l.log.Debug("optional quantity not read", "meter", m.id, "di", fmt.Sprint(di), "err", err)
			return dlt645.Value{}, false
		}
		return v, true
	}
	if v, ok := optional(dlt645.DIReverseActive, dlt645.DI97ReverseActive); ok && v.Int >= 0 {
		r.ExportWh = ptr(v.Int * 10)
	}
	if v, ok := optional(dlt645.DIActivePower, dlt645.DI97ActivePower); ok {
		r.PowerW = ptr(v.Float64() * 1000) // kW
	}
	if v, ok := optional(dlt645.DIVoltageA, dlt645.DI97VoltageA); ok {
		r.VoltageV = ptr(v.Float64())
	}
	if v, ok := optional(dlt645.DICurrentA, dlt645.DI97CurrentA); ok {
		r.CurrentA = ptr(v.Float64())
	}
	return r
}

// value reads one DI (di97 on a 1997 line) and sorts failures into
// ErrMeterSilent, ErrMeterError and ErrLink.
func (l *dltLine) value(ctx context.Context, m meter, di dlt645.DI, di97 dlt645.DI97) (dlt645.Value, error) {
	var (
		v   dlt645.Value
		err error
	)
	if m.is1997 {
		var b []byte
		if b, err = l.client.Read1997(ctx, m.addr, di97); err == nil {
			v, err = dlt645.DecodeValue97(di97, b)
		}
	} else {
		v, err = l.client.ReadValue(ctx, m.addr, di)
	}
	var me *dlt645.MeterError
	switch {
	case err == nil:
		return v, nil
	case errors.Is(err, dlt645.ErrTimeout):
		return v, fmt.Errorf("%w: %w", ErrMeterSilent, err)
	case errors.As(err, &me):
		return v, fmt.Errorf("%w: %w", ErrMeterError, err)
	case errors.Is(err, dlt645.ErrClosed):
		return v, fmt.Errorf("%w: %w", ErrLink, err)
	}
	return v, err // ctx's error, or an undecodable value
}

func (l *dltLine) close() error { return l.f.Close() }
