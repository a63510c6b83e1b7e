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

// Handle returns the meter's reply to req and whether it replies at all.
// Replies, broadcasts and frames for other meters get no reply.
func (m *Meter) Handle(req Frame) (Frame, bool) {
	if req.IsReply() {
		return Frame{}, false
	}
	fn := req.Function()
	m.mu.Lock()
	defer m.mu.Unlock()
	if req.Addr.IsBroadcast() {
		switch fn {
		case CtrlBroadcastTime:
			m.broadcastTime(req.Data)
		case CtrlFreeze:
			m.freeze(req.Data)
		}
		return Frame{}, false
	}
	switch fn {
	case CtrlRead, Ctrl97Read:
		if !req.Addr.Matches(m.addr) {
			return Frame{}, false
		}
	case CtrlReadAddress:
		if !req.Addr.IsWildcard() && req.Addr != m.addr {
			return Frame{}, false
		}
	default:
		if req.Addr != m.addr {
			return Frame{}, false
		}
	}
	if m.log.Enabled(context.Background(), slog.LevelDebug) {
		m.log.Debug("request", "control", fmt.Sprintf("%02x", req.Control), "data", fmt.Sprintf("%x", req.Data))
	}
	var data []byte
	var code ErrorCode
	switch fn {
	case CtrlRead:
		data, code = m.read(req.Data)
	case Ctrl97Read:
		data, code = m.read97(req.Data)
	case CtrlReadAddress:
		data = append([]byte(nil), m.addr[:]...)
	case CtrlWrite:
		code = m.write(req.Data)
	case CtrlFreeze:
		code = m.freeze(req.Data)
	case CtrlRelay:
		code = m.relayControl(req.Data)
	case CtrlBroadcastTime:
		// Time sync addressed to one meter: accepted like a broadcast,
		// never answered.
		m.broadcastTime(req.Data)
		return Frame{}, false
	default:
		code = CodeOther
	}
	if code != 0 {
		m.log.Debug("error reply", "code", code.String())
		return req.ErrorReply(m.addr, code), true
	}
	return req.Reply(m.addr, data), true
}

// read answers a 2007 read: the DI, then its value.
func (m *Meter) read(req []byte) ([]byte, ErrorCode) {
	di, err := DecodeDI(req)
	if err != nil {
		return nil, CodeOther
	}
	v, err := m.value(di, di.Append(nil))
	if err != nil {
		return nil, CodeNoData
	}
	return v, 0
}

var errNoValue = errors.New("no such value")

// value appends the value of di to dst.
func (m *Meter) value(di DI, dst []byte) ([]byte, error) {
	di2, di1, di0 := byte(di>>16), byte(di>>8), byte(di)
	switch {
	case di == DICombinedActive:
		return FormatEnergySigned.Append(dst, m.forward[0]-m.reverse)
	case di&0xFFFF00FF == DIForwardActive && di1 <= 4:
		return FormatEnergy.Append(dst, m.forward[di1])
	case di == DIForwardActiveBlock:
		return appendAll(dst, FormatEnergy, m.forward[:])
	case di == DIReverseActive:
		return FormatEnergy.Append(dst, m.reverse)
	case di&0xFFFF00FF == DIVoltageA&0xFFFF00FF && di1 >= 1 && di1 <= 3:
		return FormatVoltage.Append(dst, m.voltage[di1-1])
	case di == DIVoltageBlock:
		return appendAll(dst, FormatVoltage, m.voltage[:])
	case di&0xFFFF00FF == DICurrentA&0xFFFF00FF && di1 >= 1 && di1 <= 3:
		return FormatCurrent.Append(dst, m.current[di1-1])
	case di == DICurrentBlock:
		return appendAll(dst, FormatCurrent, m.current[:])
	case di&0xFFFF00FF == DIActivePower && di1 <= 3:
		return FormatPower.Append(dst, m.power[di1])
	case di == DIPowerFactor:
		return FormatPF.Append(dst, m.pf)
	case di == DIFrequency:
		return FormatFrequency.Append(dst, m.frequency)
	case di == DIDate:
		return AppendDate(dst, m.clock()), nil
	case di == DITime:
		return AppendTime(dst, m.clock()), nil
	case di == DICommAddress:
		return append(dst, m.addr[:]...), nil
	case di == DIActiveConstant:
		return FormatConstant.Append(dst, m.constant)
	case di == DIRemainingMoney:
		return FormatMoney.Append(dst, m.balance)
	case di>>24 == 0x05 && (di2 == 0x06 || di2 == 0x01):
		recs := m.daily
		if di2 == 0x01 {
			recs = m.instant
		}
		if di0 < 1 || int(di0) > len(recs) {
			return nil, errNoValue
		}
		r := recs[di0-1]
		switch di1 {
		case 0x00:
			return AppendFreezeTime(dst, r.Time), nil
		case 0x01:
			return appendAll(dst, FormatEnergy, r.Forward[:])
		case 0x02:
			return appendAll(dst, FormatEnergy, []int64{r.Reverse, 0, 0, 0, 0})
		}
	}
	return nil, errNoValue
}

func appendAll(dst []byte, f Format, vs []int64) ([]byte, error) {
	for _, v := range vs {
		var err error
		if dst, err = f.Append(dst, v); err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// read97 answers a 1997 read from the same registers.
func (m *Meter) read97(req []byte) ([]byte, ErrorCode) {
	di, err := DecodeDI97(req)
	if err != nil {
		return nil, CodeOther
	}
	dst := di.Append(nil)
	switch {
	case di >= DI97ForwardActive && di <= DI97ForwardActiveT4:
		dst, err = FormatEnergy.Append(dst, m.forward[di-DI97ForwardActive])
	case di == DI97ForwardActiveBlock:
		dst, err = appendAll(dst, FormatEnergy, m.forward[:])
	case di == DI97ReverseActive:
		dst, err = FormatEnergy.Append(dst, m.reverse)
	case di >= DI97VoltageA && di <= DI97VoltageC:
		dst, err = FormatVoltage97.Append(dst, m.voltage[di-DI97VoltageA]/10)
	case di >= DI97CurrentA && di <= DI97CurrentC:
		dst, err = FormatCurrent97.Append(dst, abs(m.current[di-DI97CurrentA])/10)
	case di == DI97ActivePower:
		dst, err = FormatPower.Append(dst, m.power[0])
	case di == DI97Date:
		dst = AppendDate(dst, m.clock())
	case di == DI97Time:
		dst = AppendTime(dst, m.clock())
	default:
		err = errNoValue
	}
	if err != nil {
		return nil, CodeNoData
	}
	return dst, 0
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// write handles 0x14: DI, password, operator, value. Only the clock
// (04000101 date, 04000102 time) is writable.
func (m *Meter) write(req []byte) ErrorCode {
	if len(req) < 12 {
		return CodeOther
	}
	di, _ := DecodeDI(req)
	var pw Password
	pw.Level = req[4]
	copy(pw.Code[:], req[5:8])
	if pw != m.password {
		return CodeUnauthorized
	}
	val := req[12:]
	c := m.clock()
	switch di {
	case DIDate:
		d, err := DecodeDate(val)
		if err != nil {
			return CodeOther
		}
		t := time.Date(d.Year, d.Month, d.Day, c.Hour(), c.Minute(), c.Second(), c.Nanosecond(), m.loc)
		m.offset += t.Sub(c)
	case DITime:
		tod, err := DecodeTime(val)
		if err != nil {
			return CodeOther
		}
		t := time.Date(c.Year(), c.Month(), c.Day(), tod.Hour, tod.Minute, tod.Second, 0, m.loc)
		m.offset += t.Sub(c)
	default:
		return CodeNoData
	}
	m.log.Info("clock written", "di", di.String(), "clock", m.clock())
	return 0
}

// broadcastTime applies a broadcast time sync: a correction within the
// sync window, at most once per meter day. It is never answered.
func (m *Meter) broadcastTime(data []byte) {
	t, err := DecodeDateTime(data, m.loc)
	if err != nil {
		m.log.Debug("broadcast time ignored", "err", err)
		return
	}
	c := m.clock()
	diff := t.Sub(c)
	if m.syncWindow > 0 && (diff > m.syncWindow || diff < -m.syncWindow) {
		m.log.Debug("broadcast time ignored", "reason", "outside window", "diff", diff)
		return
	}
	day := time.Date(c.Year(), c.Month(), c.Day(), 0, 0, 0, 0, m.loc)
	if m.lastSync.Equal(day) {
		m.log.Debug("broadcast time ignored", "reason", "already synced today")
		return
	}
	m.offset += diff
	m.lastSync = day
	m.log.Debug("broadcast time applied", "diff", diff)
}

// freeze handles 0x16: 99999999 takes an instant freeze, other patterns
// set the scheduled freeze time.
func (m *Meter) freeze(data []byte) ErrorCode {
	if len(data) != 4 {
		return CodeOther
	}
	p := FreezePattern(data)
	if p.IsInstant() {
		m.instant = pushRecord(m.instant, m.record(m.clock()), maxInstantFreezes)
		return 0
	}
	m.freezeAt = p
	return 0
}

// relayControl handles 0x1C: password, operator, N1 command, N2, and the
// time N3..N8 after which the command is void.
func (m *Meter) relayControl(data []byte) ErrorCode {
	if len(data) != 16 {
		return CodeOther
	}
	pw := Password{Level: data[0]}
	copy(pw.Code[:], data[1:4])
	if pw != m.password {
		return CodeUnauthorized
	}
	until, err := DecodeDateTime(data[10:16], m.loc)
	if err != nil || m.clock().After(until) {
		return CodeOther
	}
	switch cmd := RelayCommand(data[8]); cmd {
	case RelayTrip, RelayCloseAllowed, RelayCloseNow, RelayAlarm, RelayAlarmOff, RelayKeepOn, RelayKeepOff:
		m.relay = cmd
		m.log.Info("relay command", "command", fmt.Sprintf("%02x", byte(cmd)))
		return 0
	}
	return CodeOther
}
