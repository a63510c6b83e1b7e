package rs485

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/meterlink/meterlink/dlt645"
	"github.com/meterlink/meterlink/regmap"
)

// ErrMeterSilent is wrapped by a [Result.Err] when the meter did not
// answer any attempt (timeouts, or an RS-485 gateway reporting that the
// target did not respond). The terminal reports it as "meter_silent".
var ErrMeterSilent = errors.New("meter silent")

// ErrMeterError is wrapped when the meter answered with an error: a
// Modbus exception (such as 02 for a register its map does not have) or
// a DL/T 645 error reply. It usually means a wrong register map or DI.
var ErrMeterError = errors.New("meter answered with an error")

// ErrBadValue is wrapped when the meter answered with an unusable
// energy: negative, NaN or infinite.
var ErrBadValue = errors.New("meter sent an unusable value")

// ErrLink is wrapped when the line itself failed: the serial device or
// TCP gateway cannot be opened, the connection broke, or replies arrive
// garbled (bad CRC, wrong unit).
var ErrLink = errors.New("meter line failed")

// ErrClosed is returned for a poll after [Poller.Close].
var ErrClosed = errors.New("poller closed")

// Result is one meter's reading from one poll. Only EnergyWh is always
// set on success; the optional fields are nil when the meter (or its
// register map) does not have the quantity or did not answer for it.
//
// EnergyWh and ExportWh are the meter's kWh × 1000, rounded half away
// from zero to a whole Wh:
//
//   - DL/T 645 sends BCD in 0.01 kWh, so Wh = value × 10 exactly.
//   - Integer Modbus registers (DDS238: uint32 × 0.01 kWh) give
//     raw × scale × 1000 in float64, whose error stays far below 0.5 Wh
//     for every 32-bit raw value, so the result is exact (raw × 10 Wh on
//     the DDS238).
//   - float32 registers (SDM, DDSU, DTSU) are widened to float64 and
//     multiplied by 1000 without rounding error (24 + 10 bits fit in 53),
//     so the result is the float32's own value rounded to the nearest Wh.
//     Below 8,192 kWh a float32's spacing (0.98 Wh) is under 1 Wh, so
//     every whole Wh the meter meant comes back exactly; from 8,192 kWh
//     the spacing is 1.95 Wh and doubles at each power of two (7.8 Wh at
//     100,000 kWh): the meter's own resolution, not ours.
type Result struct {
	Meter    string    // MeterConfig.ID
	Time     time.Time // when the meter was read (Config.Now); zero when Err is set
	EnergyWh int64     // import (forward active) energy, Wh
	ExportWh *int64    // export (reverse active) energy, Wh
	PowerW   *float64  // total active power, W
	VoltageV *float64  // voltage (phase 1 on three-phase meters), V
	CurrentA *float64  // current (phase 1), A
	Err      error     // nil on success; wraps ErrMeterSilent, ErrMeterError, ErrBadValue or ErrLink
}

// whFromKWh converts an energy in kWh to whole Wh as [Result] describes.
func whFromKWh(kwh float64) (int64, error) {
	wh := kwh * 1000
	if math.IsNaN(wh) || math.IsInf(wh, 0) || wh < 0 || wh > 1<<62 {
		return 0, fmt.Errorf("energy %v kWh: %w", kwh, ErrBadValue)
	}
	return int64(math.Round(wh)), nil
}

// Poller reads the meters of one channel-16 line. Polls are serialised:
// the line is half duplex. It is safe for concurrent use.
type Poller struct {
	log     *slog.Logger
	now     func() time.Time
	timeout time.Duration
	retries int
	meters  []meter

	mu     sync.Mutex // held for a whole poll; guards line and closed
	line   line
	closed bool
}

// meter is a MeterConfig parsed for its protocol.
type meter struct {
	id     string
	unit   uint8          // Modbus
	regs   regmap.Map     // Modbus
	addr   dlt645.Address // DL/T 645
	is1997 bool
}

// line is one protocol's way to read a meter.
type line interface {
	read(ctx context.Context, m meter) Result
	close() error
}

// New validates cfg and opens the line: a serial device at once (so a
// wrong path fails here), a TCP gateway on the first poll and again after
// it drops. log may be nil.
func New(cfg Config, log *slog.Logger) (*Poller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("rs485 config: %w", err)
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Poller{
		log: log.With("component", "rs485", "protocol", cfg.Protocol), now: cfg.Now,
		timeout: cfg.Timeout, retries: cfg.Retries,
	}
	maps := map[string]regmap.Map{}
	for _, m := range cfg.Maps {
		maps[m.Name] = m
	}
	for _, mc := range cfg.Meters {
		m := meter{id: mc.ID, is1997: cfg.Protocol == DLT645v97}
		if cfg.Protocol == Modbus {
			n, _ := strconv.Atoi(mc.Address) // checked by Validate
			m.unit = uint8(n)
			var ok bool
			if m.regs, ok = maps[mc.Map]; !ok {
				m.regs, _ = regmap.Lookup(mc.Map) // checked by Validate
			}
		} else {
			m.addr, _ = dlt645.ParseAddress(mc.Address)
		}
		p.meters = append(p.meters, m)
	}
	var err error
	if cfg.Protocol == Modbus {
		p.line, err = openModbus(cfg, p.log)
	} else {
		p.line, err = openDLT645(cfg, p.log)
	}
	if err != nil {
		return nil, err
	}
	p.log.Info("meter line open", "url", cfg.URL, "meters", len(p.meters), "speed", cfg.Speed, "parity", cfg.Parity)
	return p, nil
}

// Poll reads every meter once, in configuration order, and returns one
// Result per meter. A meter that does not answer costs at most
// Timeout × (Retries + 1) for its energy; its optional quantities are
// then skipped. If ctx ends, the meters not yet read get ctx's error.
func (p *Poller) Poll(ctx context.Context) []Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Result, 0, len(p.meters))
	for _, m := range p.meters {
		var r Result
		switch {
		case p.closed:
			r = Result{Meter: m.id, Err: ErrClosed}
		case ctx.Err() != nil:
			r = Result{Meter: m.id, Err: ctx.Err()}
		default:
			r = p.line.read(ctx, m)
			r.Meter = m.id
			if r.Err == nil {
				r.Time = p.now()
			}
		}
		if r.Err != nil {
			p.log.Debug("meter not read", "meter", m.id, "err", r.Err)
		} else {
			p.log.Debug("meter read", "meter", m.id, "energy_wh", r.EnergyWh)
		}
		out = append(out, r)
	}
	return out
}

// Close closes the line. It is idempotent.
func (p *Poller) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	return p.line.close()
}

func ptr[T any](v T) *T { return &v }
