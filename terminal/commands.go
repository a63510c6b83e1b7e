package terminal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/meterlink/meterlink/wire"
)

// Command arguments, as JSON in wire.Command.Args.
type (
	// SetClockArgs sets the terminal's clock.
	SetClockArgs struct {
		TimeMS int64 `json:"ts_ms"`
	}
	// SetFreezeArgs sets the daily freeze time.
	SetFreezeArgs struct {
		At string `json:"at"` // HH:MM
	}
	// SetChannelArgs changes a channel's parameters; omitted fields keep their value. A new
	// base reading starts a new segment at the current pulse count.
	SetChannelArgs struct {
		Channel    uint8   `json:"ch"`
		Meter      *string `json:"meter,omitempty"`
		Constant   *uint32 `json:"constant,omitempty"`
		BaseWh     *int64  `json:"base_wh,omitempty"`
		Multiplier *uint32 `json:"multiplier,omitempty"`
	}
	// LiveArgs asks for the live values of one channel (0: all).
	LiveArgs struct {
		Channel uint8 `json:"ch,omitempty"`
	}
	// FrozenArgs asks the terminal to send its frozen records of a date range again.
	FrozenArgs struct {
		From string `json:"from"` // YYYY-MM-DD
		To   string `json:"to"`
	}
)

// The operations a terminal carries out.
const (
	OpCollect    = "collect"
	OpReadClock  = "read_clock"
	OpSetClock   = "set_clock"
	OpSetFreeze  = "set_freeze"
	OpSetChannel = "set_channel"
	OpLive       = "live"
	OpFrozen     = "frozen"
)

// errInvalid marks a command whose arguments are wrong; nothing was changed.
var errInvalid = errors.New("invalid arguments")

// command parses and carries out one command and queues its answer.
func (t *Terminal) command(payload []byte) {
	ack := t.Execute(payload)
	t.mu.Lock()
	t.acks = append(t.acks, ack)
	t.mu.Unlock()
	t.wake()
}

// Execute carries out a command given as JSON and returns its answer. An invalid, expired or
// unknown command changes nothing.
func (t *Terminal) Execute(payload []byte) wire.CommandAck {
	ack := wire.CommandAck{V: wire.Version, Terminal: wire.TerminalID(t.cfg.ID)}
	var cmd wire.Command
	if err := json.Unmarshal(payload, &cmd); err != nil {
		ack.Code, ack.Detail = wire.AckInvalid, "malformed command: "+err.Error()
		return ack
	}
	ack.ID = cmd.ID
	switch {
	case cmd.Terminal != wire.TerminalID(t.cfg.ID):
		ack.Code, ack.Detail = wire.AckInvalid, "command for terminal "+string(cmd.Terminal)
		return ack
	case cmd.ExpiresMS != 0 && t.clock.Now().UnixMilli() > cmd.ExpiresMS:
		ack.Code, ack.Detail = wire.AckExpired, "command expired"
		return ack
	}
	result, err := t.execute(cmd)
	switch {
	case errors.Is(err, errInvalid):
		ack.Code, ack.Detail = wire.AckInvalid, err.Error()
	case errors.Is(err, errUnsupported):
		ack.Code, ack.Detail = wire.AckUnsupported, err.Error()
	case err != nil:
		ack.Code, ack.Detail = wire.AckFailed, err.Error()
	default:
		ack.Result, _ = json.Marshal(result)
	}
	t.log.Info("command", "command_id", cmd.ID, "op", cmd.Op, "code", int(ack.Code), "detail", ack.Detail)
	return ack
}

var errUnsupported = errors.New("unsupported operation")

func args[T any](raw json.RawMessage) (T, error) {
	var v T
	if len(raw) == 0 {
		return v, fmt.Errorf("%w: arguments missing", errInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, fmt.Errorf("%w: %v", errInvalid, err)
	}
	return v, nil
}

func (t *Terminal) execute(cmd wire.Command) (any, error) {
	switch cmd.Op {
	case OpCollect:
		r, err := t.Collect()
		if err != nil {
			return nil, err
		}
		return map[string]uint64{"seq": r.Seq}, nil
	case OpReadClock:
		return map[string]int64{"ts_ms": t.clock.Now().UnixMilli()}, nil
	case OpSetClock:
		a, err := args[SetClockArgs](cmd.Args)
		if err != nil {
			return nil, err
		}
		if a.TimeMS < time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli() {
			return nil, fmt.Errorf("%w: ts_ms %d is before 2000", errInvalid, a.TimeMS)
		}
		return t.setClock(time.UnixMilli(a.TimeMS))
	case OpSetFreeze:
		a, err := args[SetFreezeArgs](cmd.Args)
		if err != nil {
			return nil, err
		}
		m, err := parseHHMM(a.At)
		if err != nil {
			return nil, fmt.Errorf("%w: at %q: %v", errInvalid, a.At, err)
		}
		if err := t.store.setMeta(map[string]string{keyFreezeAt: a.At}); err != nil {
			return nil, err
		}
		t.mu.Lock()
		t.freeze = m
		t.mu.Unlock()
		return map[string]string{"at": a.At}, nil
	case OpSetChannel:
		a, err := args[SetChannelArgs](cmd.Args)
		if err != nil {
			return nil, err
		}
		return t.setChannel(a)
	case OpLive:
		a := LiveArgs{}
		if len(cmd.Args) > 0 {
			var err error
			if a, err = args[LiveArgs](cmd.Args); err != nil {
				return nil, err
			}
		}
		return t.Live(a.Channel)
	case OpFrozen:
		a, err := args[FrozenArgs](cmd.Args)
		if err != nil {
			return nil, err
		}
		from, e1 := time.Parse(time.DateOnly, a.From)
		to, e2 := time.Parse(time.DateOnly, a.To)
		if e1 != nil || e2 != nil || to.Before(from) {
			return nil, fmt.Errorf("%w: want from <= to, both YYYY-MM-DD", errInvalid)
		}
		rs, err := t.store.frozen(a.From, a.To)
		if err != nil {
			return nil, err
		}
		if err := t.store.resend(rs); err != nil {
			return nil, err
		}
		t.wake()
		return map[string]int{"records": len(rs)}, nil
	}
	return nil, fmt.Errorf("%w %q", errUnsupported, cmd.Op)
}

func (t *Terminal) setClock(to time.Time) (any, error) {
	moved := t.clock.Set(to)
	if err := t.store.setMeta(map[string]string{keyClock: strconv.FormatInt(int64(t.clock.Offset()), 10)}); err != nil {
		return nil, err
	}
	if moved > t.cfg.ClockSetEvent || moved < -t.cfg.ClockSetEvent {
		if err := t.event(EventClockSet, 0, "clock moved by "+moved.Round(time.Millisecond).String()); err != nil {
			return nil, err
		}
	}
	return map[string]int64{"moved_ms": moved.Milliseconds()}, nil
}

func (t *Terminal) setChannel(a SetChannelArgs) (any, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st, ok := t.channels[a.Channel]
	if !ok {
		return nil, fmt.Errorf("%w: channel %d is not commissioned", errInvalid, a.Channel)
	}
	old := st
	if a.Meter != nil {
		if !validID(*a.Meter) {
			return nil, fmt.Errorf("%w: meter id %q", errInvalid, *a.Meter)
		}
		st.Meter = *a.Meter
	}
	if a.Multiplier != nil {
		if *a.Multiplier < 1 {
			return nil, fmt.Errorf("%w: multiplier must be at least 1", errInvalid)
		}
		st.Multiplier = *a.Multiplier
	}
	if a.Constant != nil || a.BaseWh != nil {
		// A new constant or base opens a new segment at the current count; history is kept.
		base := old.energyWh()
		if a.BaseWh != nil {
			if *a.BaseWh < 0 {
				return nil, fmt.Errorf("%w: base_wh is negative", errInvalid)
			}
			base = *a.BaseWh
		}
		if a.Constant != nil {
			if *a.Constant < 1 || *a.Constant > 100000 {
				return nil, fmt.Errorf("%w: constant %d out of 1..100000", errInvalid, *a.Constant)
			}
			st.Constant = *a.Constant
		}
		st.BaseWh, st.CountBase = base, st.Count
	}
	if err := t.store.saveChannels(map[uint8]channelState{a.Channel: st}); err != nil {
		return nil, err
	}
	t.channels[a.Channel] = st
	if st.energyWh() < old.energyWh() {
		if err := t.eventLocked(EventReadingBackwards, a.Channel,
			fmt.Sprintf("new base %d Wh is below the last reading %d Wh", st.energyWh(), old.energyWh())); err != nil {
			return nil, err
		}
	}
	return t.snapshotOneLocked(a.Channel), nil
}

func (t *Terminal) snapshotOneLocked(ch uint8) wire.ChannelReading {
	for _, c := range t.snapshotLocked(false) {
		if c.Channel == ch {
			return c
		}
	}
	return wire.ChannelReading{}
}

// Live returns the live values of one channel, or of all with channel 0, without making a
// record: what the handheld shows while commissioning.
func (t *Terminal) Live(channel uint8) ([]wire.ChannelReading, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if channel == 0 {
		return t.snapshotLocked(false), nil
	}
	if _, ok := t.channels[channel]; !ok {
		return nil, fmt.Errorf("%w: channel %d is not commissioned", errInvalid, channel)
	}
	return []wire.ChannelReading{t.snapshotOneLocked(channel)}, nil
}
