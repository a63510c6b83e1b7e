package dlt645

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

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
