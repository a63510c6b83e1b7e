package dlt645

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// MeterOptions configures a [Meter]. The zero value is usable.
type MeterOptions struct {
	Now        func() time.Time // wall clock the meter's clock runs on; default time.Now
	Location   *time.Location   // zone of the meter's clock; default time.Local
	Preamble   int              // FE bytes before each reply; default 0, at most 4 on real meters
	Password   Password         // password for writes and relay control; default level 02, 000000
	SyncWindow time.Duration    // largest broadcast time correction accepted; default 5 min, negative: any
	Logger     *slog.Logger     // default: discard
}

// FreezeRecord is one stored freeze: when it was taken and the energy
// registers at that moment, in units of 0.01 kWh.
type FreezeRecord struct {
	Time    time.Time // freeze time, minute resolution
	Forward [5]int64  // forward active total, T1..T4
	Reverse int64     // reverse active total
}

// Meter is a simulated DL/T 645-2007 meter (with 1997 reads of the main
// registers). It answers strictly by DI: an unknown DI gets an error reply
// with [CodeNoData]. It never answers broadcasts, and accepts the wildcard
// address only for reads (0x11, 0x01) and read address (0x13). All
// methods are safe for concurrent use.
type Meter struct {
	addr       Address
	now        func() time.Time
	loc        *time.Location
	preamble   int
	password   Password
	syncWindow time.Duration
	log        *slog.Logger

	mu        sync.Mutex
	forward   [5]int64 // 0.01 kWh: total, T1..T4
	reverse   int64    // 0.01 kWh
	voltage   [3]int64 // 0.1 V
	current   [3]int64 // 0.001 A
	power     [4]int64 // 0.0001 kW: total, A, B, C
	pf        int64    // 0.001
	frequency int64    // 0.01 Hz
	constant  int64    // imp/kWh
	balance   int64    // 0.01 yuan
	offset    time.Duration
	lastSync  time.Time // meter date of the last accepted broadcast sync
	freezeAt  FreezePattern
	daily     []FreezeRecord // newest first, at most 62
	instant   []FreezeRecord // newest first, at most 3
	relay     RelayCommand
}

const (
	maxDailyFreezes   = 62
	maxInstantFreezes = 3
)

// NewMeter returns a meter at addr with plausible readings: 220.0 V on
// every phase, 50.00 Hz, PF 1.000, 1200 imp/kWh and no energy.
func NewMeter(addr Address, opts MeterOptions) *Meter {
	m := &Meter{
		addr:       addr,
		now:        opts.Now,
		loc:        opts.Location,
		preamble:   opts.Preamble,
		password:   opts.Password,
		syncWindow: opts.SyncWindow,
		log:        opts.Logger,
		voltage:    [3]int64{2200, 2200, 2200},
		pf:         1000,
		frequency:  5000,
		constant:   1200,
		freezeAt:   FreezePattern{0x00, 0x00, wild, wild},
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.loc == nil {
		m.loc = time.Local
	}
	if m.password == (Password{}) {
		m.password = Password{Level: 0x02}
	}
	if m.syncWindow == 0 {
		m.syncWindow = 5 * time.Minute
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.log = m.log.With("component", "dlt645-meter", "meter", addr.String())
	return m
}

// Addr returns the meter's address.
func (m *Meter) Addr() Address { return m.addr }

// Energy returns forward active energy in units of 0.01 kWh.
func (m *Meter) Energy() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.forward[0]
}

// SetEnergy sets forward active energy in units of 0.01 kWh.
func (m *Meter) SetEnergy(v int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.forward[0] = v
}

// AddEnergy adds delta (0.01 kWh) to forward active energy and, when
// tariff is 1..4, to that tariff's register too. It returns the new total.
func (m *Meter) AddEnergy(delta int64, tariff int) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.forward[0] += delta
	if tariff >= 1 && tariff <= 4 {
		m.forward[tariff] += delta
	}
	return m.forward[0]
}

// SetTariffEnergy sets the forward active register of tariff 1..4
// (0.01 kWh); tariff 0 is the total.
func (m *Meter) SetTariffEnergy(tariff int, v int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if tariff >= 0 && tariff < len(m.forward) {
		m.forward[tariff] = v
	}
}

// SetReverseEnergy sets reverse active energy in units of 0.01 kWh.
func (m *Meter) SetReverseEnergy(v int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reverse = v
}

// SetVoltage sets the phase voltages in units of 0.1 V.
func (m *Meter) SetVoltage(a, b, c int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.voltage = [3]int64{a, b, c}
}

// SetCurrent sets the phase currents in units of 0.001 A.
func (m *Meter) SetCurrent(a, b, c int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.current = [3]int64{a, b, c}
}

// SetPower sets active power, total and per phase, in units of 0.0001 kW.
func (m *Meter) SetPower(total, a, b, c int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.power = [4]int64{total, a, b, c}
}

// SetPowerFactor sets the total power factor in units of 0.001.
func (m *Meter) SetPowerFactor(v int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pf = v
}

// SetFrequency sets the grid frequency in units of 0.01 Hz.
func (m *Meter) SetFrequency(v int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.frequency = v
}

// SetConstant sets the active constant in imp/kWh.
func (m *Meter) SetConstant(v int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.constant = v
}

// SetBalance sets the prepaid remaining balance in units of 0.01 yuan.
func (m *Meter) SetBalance(v int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.balance = v
}

// Clock returns the meter's clock, which runs at the rate of
// MeterOptions.Now with its own offset.
func (m *Meter) Clock() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.clock()
}

func (m *Meter) clock() time.Time { return m.now().Add(m.offset).In(m.loc) }

// SetClock sets the meter's clock to t.
func (m *Meter) SetClock(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.offset = t.Sub(m.now())
}

// Relay returns the last relay command accepted, or 0 if none.
func (m *Meter) Relay() RelayCommand {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.relay
}

// DailyFreezeTime returns the freeze pattern last set with a freeze
// command; the default is 9999 0000, daily at 00:00.
func (m *Meter) DailyFreezeTime() FreezePattern {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.freezeAt
}

// RecordDailyFreeze stores a daily freeze taken at t (truncated to the
// minute) with the current registers, as the meter does at its freeze
// time. The simulator does not freeze on its own; its owner calls this.
func (m *Meter) RecordDailyFreeze(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.daily = pushRecord(m.daily, m.record(t), maxDailyFreezes)
}

// DailyFreezes returns the stored daily freezes, newest first.
func (m *Meter) DailyFreezes() []FreezeRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]FreezeRecord(nil), m.daily...)
}

func (m *Meter) record(t time.Time) FreezeRecord {
	return FreezeRecord{Time: t.In(m.loc).Truncate(time.Minute), Forward: m.forward, Reverse: m.reverse}
}

func pushRecord(rs []FreezeRecord, r FreezeRecord, limit int) []FreezeRecord {
	rs = append([]FreezeRecord{r}, rs...)
	if len(rs) > limit {
		rs = rs[:limit]
	}
	return rs
}

// Serve answers requests read from rw until ctx is done or rw fails. It
// returns nil when ctx is cancelled or rw reaches EOF. If rw has
// SetReadDeadline (net.Conn, *os.File on a pty or serial port),
// cancelling ctx interrupts a pending read; otherwise close rw to stop it.
func (m *Meter) Serve(ctx context.Context, rw io.ReadWriter) error {
	if d, ok := rw.(interface{ SetReadDeadline(time.Time) error }); ok {
		stop := context.AfterFunc(ctx, func() { _ = d.SetReadDeadline(time.Now()) })
		defer stop()
	}
	r := NewReader(rw)
	var out []byte
	for {
		req, err := r.ReadFrame()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return nil
		case err != nil:
			return fmt.Errorf("serve meter %s: %w", m.addr, err)
		}
		reply, ok := m.Handle(req)
		if !ok {
			continue
		}
		out = reply.AppendPreamble(out[:0], m.preamble)
		if _, err := rw.Write(out); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("serve meter %s: write reply: %w", m.addr, err)
		}
	}
}
