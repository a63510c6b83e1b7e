// Package terminal is the collection terminal: 16 channels that count meter pulses and turn
// them into readings (base reading + pulses / impulse constant), a clock that drifts and can
// be set, a daily freeze at a settable time, events, and a store that keeps counters, frozen
// days and unsent records across restarts. An MQTT-SN client sends every record to the
// handheld's gateway at QoS 1 and deletes it only after the PUBACK; commands come down the
// same way and each gets an acknowledgement with a result code.
//
// Topics (package topic): publishes radio-readings, radio-frozen, radio-events and
// radio-cmd-acks; subscribes to radio-commands.
// Stores (buntdb): channel states, the sequence counter, the outbox, frozen days (62 by
// default), the clock offset and the freeze time.
package terminal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/meterlink/meterlink/terminal/rs485"
	"github.com/meterlink/meterlink/wire"
)

// ErrUnknownChannel is returned for a pulse on a channel that is not commissioned.
var ErrUnknownChannel = errors.New("channel not commissioned")

// Event codes a terminal raises.
const (
	EventPowerLoss        = "power_loss"        // the terminal stopped without a clean shutdown
	EventPowerRestore     = "power_restore"     // and came back
	EventClockSet         = "clock_set"         // the clock was set further than ClockSetEvent
	EventReadingBackwards = "reading_backwards" // a new base reading is below the last reading
	EventMeterSilent      = "meter_silent"      // an RS485 meter did not answer
	EventCounterWrap      = "counter_wrap"      // a pulse counter passed 2^32 (a 32-bit counter would have wrapped)
)

// Terminal is one collection terminal.
type Terminal struct {
	cfg    Config
	log    *slog.Logger
	store  *store
	gw     gatewayTarget
	clock  *clock
	loc    *time.Location
	freeze int // minutes after midnight

	bus *rs485.Poller // channel 16 as the RS485 port, if configured

	mu        sync.Mutex
	channels  map[uint8]channelState
	busMeters map[string]busMeter // latest state of each RS485 meter
	acks      []wire.CommandAck   // command answers waiting to be sent

	kick chan struct{} // wakes the uplink when a record or answer is added
	once sync.Once
}

// New opens the terminal's store, restores its channels, clock and freeze time, and records a
// power loss if it was not stopped cleanly.
func New(cfg Config, log *slog.Logger) (*Terminal, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Location == nil {
		cfg.Location = chinaStandardTime
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	gw, err := parseGateway(cfg.Gateway)
	if err != nil {
		return nil, err
	}
	st, err := openStore(cfg.StorePath)
	if err != nil {
		return nil, err
	}
	t, err := restore(cfg, log.With("terminal_id", cfg.ID), st, gw)
	if err != nil {
		st.close()
		return nil, err
	}
	return t, nil
}

func restore(cfg Config, log *slog.Logger, st *store, gw gatewayTarget) (*Terminal, error) {
	chs, err := st.loadChannels()
	if err != nil {
		return nil, fmt.Errorf("load channels: %w", err)
	}
	fresh := len(chs) == 0
	for _, c := range cfg.Channels {
		if _, ok := chs[c.Channel]; ok {
			continue // the store's counters and parameters win over the start-up map
		}
		mult := c.Multiplier
		if mult == 0 {
			mult = 1
		}
		chs[c.Channel] = channelState{Meter: c.Meter, Constant: c.Constant, BaseWh: c.BaseWh, Multiplier: mult}
	}
	if err := st.saveChannels(chs); err != nil {
		return nil, fmt.Errorf("save channels: %w", err)
	}
	offset, _ := strconv.ParseInt(st.meta(keyClock), 10, 64)
	freezeAt := cfg.FreezeAt
	if v := st.meta(keyFreezeAt); v != "" {
		freezeAt = v // set by the handheld; wins over the start-up value
	}
	minutes, err := parseHHMM(freezeAt)
	if err != nil {
		return nil, fmt.Errorf("stored freeze time %q: %w", freezeAt, err)
	}
	t := &Terminal{
		cfg: cfg, log: log, store: st, gw: gw, loc: cfg.Location, freeze: minutes,
		clock:    newClock(cfg.Now, cfg.DriftPPM, time.Duration(offset)),
		channels: chs, busMeters: map[string]busMeter{}, kick: make(chan struct{}, 1),
	}
	if cfg.RS485 != nil {
		if t.bus, err = rs485.New(*cfg.RS485, log.With("ch", 16)); err != nil {
			return nil, fmt.Errorf("rs485 on channel 16: %w", err)
		}
	}
	if !fresh && st.meta(keyClean) == "" {
		last, _ := strconv.ParseInt(st.meta(keyLastSeen), 10, 64)
		detail := "stopped without a clean shutdown"
		if last > 0 {
			detail += "; last seen " + time.UnixMilli(last).In(t.loc).Format(time.DateTime)
		}
		if err := t.event(EventPowerLoss, 0, detail); err != nil {
			return nil, err
		}
		if err := t.event(EventPowerRestore, 0, ""); err != nil {
			return nil, err
		}
	}
	if err := st.setMeta(map[string]string{keyClean: ""}); err != nil {
		return nil, fmt.Errorf("mark running: %w", err)
	}
	return t, nil
}

// ID returns the terminal's id.
func (t *Terminal) ID() string { return t.cfg.ID }

// Now returns the terminal's clock.
func (t *Terminal) Now() time.Time { return t.clock.Now() }

// Pulse counts n pulses on a channel. With CounterSync the new count is stored before Pulse
// returns, so a crash loses no counted pulse. The counter is a u64 and readings use modular
// subtraction; passing 2^32 raises a counter_wrap event, as a 32-bit counter would have
// wrapped there.
func (t *Terminal) Pulse(ch uint8, n uint64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	st, ok := t.channels[ch]
	if !ok {
		return fmt.Errorf("pulse on channel %d: %w", ch, ErrUnknownChannel)
	}
	wrapped := st.Count>>32 != (st.Count+n)>>32
	st.Count += n
	if t.cfg.CounterSync {
		if err := t.store.saveChannels(map[uint8]channelState{ch: st}); err != nil {
			return fmt.Errorf("store pulse count of channel %d: %w", ch, err)
		}
	}
	t.channels[ch] = st
	if wrapped {
		return t.eventLocked(EventCounterWrap, ch, "pulse counter passed 2^32")
	}
	return nil
}

// energyWh is the channel's reading: base + (count − count at base) × 1000 / constant.
func (st channelState) energyWh() int64 {
	return st.BaseWh + int64((st.Count-st.CountBase)*1000/uint64(st.Constant))
}

// snapshotLocked returns the channels as readings.
func (t *Terminal) snapshotLocked(estimated bool) []wire.ChannelReading {
	var out []wire.ChannelReading
	for n := uint8(1); n <= 16; n++ {
		st, ok := t.channels[n]
		if !ok {
			continue
		}
		out = append(out, wire.ChannelReading{
			Channel: n, Meter: wire.MeterID(st.Meter), Pulses: st.Count, EnergyWh: st.energyWh(),
			Constant: st.Constant, Multiplier: st.Multiplier, Estimated: estimated,
		})
	}
	if t.bus != nil {
		for _, c := range t.busReadingsLocked() {
			c.Estimated = estimated
			out = append(out, c)
		}
	}
	return out
}

func (t *Terminal) copyChannelsLocked() map[uint8]channelState {
	out := make(map[uint8]channelState, len(t.channels))
	for k, v := range t.channels {
		out[k] = v
	}
	return out
}

// Collect reads every channel now and stores the reading in the outbox for sending.
func (t *Terminal) Collect() (wire.Record, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clock.Now()
	r := wire.Record{Terminal: wire.TerminalID(t.cfg.ID), Kind: wire.KindReading, TimeMS: now.UnixMilli(),
		Channels: t.snapshotLocked(false)}
	if len(r.Channels) == 0 {
		return wire.Record{}, errors.New("collect: no channel is commissioned")
	}
	var last wire.Record
	for _, part := range t.split(r) {
		stored, err := t.appendLocked(part, t.copyChannelsLocked(), map[string]string{keyLastSeen: strconv.FormatInt(r.TimeMS, 10)})
		if err != nil {
			return wire.Record{}, err
		}
		last = stored
	}
	return last, nil
}

// split divides a record's channels into records that each fit the transport's payload
// limit (a serial radio frame carries 248 bytes; 16 channels take about 350), each with its
// own sequence number. Over UDP a record is never split.
func (t *Terminal) split(r wire.Record) []wire.Record {
	if t.gw.payload == 0 {
		return []wire.Record{r}
	}
	var out []wire.Record
	rest := r.Channels
	for len(rest) > 0 {
		n := len(rest)
		for ; n > 1; n-- {
			part := r
			part.Channels = rest[:n]
			part.Seq = 1 << 62 // the widest sequence number the record may get
			if b, err := wire.MarshalRadio(part); err == nil && len(b) <= t.gw.payload {
				break
			}
		}
		part := r
		part.Channels = rest[:n]
		out = append(out, part)
		rest = rest[n:]
	}
	return out
}

// appendLocked stores a record in the outbox and wakes the uplink.
func (t *Terminal) appendLocked(r wire.Record, chs map[uint8]channelState, meta map[string]string) (wire.Record, error) {
	stored, err := t.store.appendRecord(r, chs, meta)
	if err != nil {
		return wire.Record{}, err
	}
	t.wake()
	return stored, nil
}

func (t *Terminal) wake() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// event records an event for sending.
func (t *Terminal) event(code string, ch uint8, detail string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.eventLocked(code, ch, detail)
}

func (t *Terminal) eventLocked(code string, ch uint8, detail string) error {
	r := wire.Record{Terminal: wire.TerminalID(t.cfg.ID), Kind: wire.KindEvent, TimeMS: t.clock.Now().UnixMilli(),
		Event: &wire.Event{Code: code, Channel: ch, Detail: detail}}
	if _, err := t.appendLocked(r, nil, nil); err != nil {
		return fmt.Errorf("record event %s: %w", code, err)
	}
	t.log.Info("terminal event", "code", code, "ch", ch, "detail", detail)
	return nil
}

// Pending returns how many records wait for the handheld's acknowledgement.
func (t *Terminal) Pending() int { return t.store.pendingCount() }

// Run collects at the configured interval, freezes daily, and sends records to the gateway
// until ctx is done. It reconnects after losing the gateway, keeping every unsent record.
func (t *Terminal) Run(ctx context.Context) error {
	defer t.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t.scheduleLoop(ctx)
	}()
	if t.bus != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.busLoop(ctx)
		}()
	}
	t.uplink(ctx)
	wg.Wait()
	t.mu.Lock()
	chs := t.copyChannelsLocked()
	t.mu.Unlock()
	// Keep the counters and mark the stop as clean: the next start raises no power loss.
	if err := t.store.saveChannels(chs); err != nil {
		return fmt.Errorf("save counters at stop: %w", err)
	}
	if err := t.store.setMeta(map[string]string{keyClean: "1"}); err != nil {
		return fmt.Errorf("mark clean stop: %w", err)
	}
	return nil
}

// scheduleLoop collects at the interval and checks the daily freeze every second.
func (t *Terminal) scheduleLoop(ctx context.Context) {
	collect := time.NewTicker(t.cfg.Interval)
	defer collect.Stop()
	freeze := time.NewTicker(time.Second)
	defer freeze.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-collect.C:
			if _, err := t.Collect(); err != nil {
				t.log.Error("collection failed", "err", err)
			}
		case <-freeze.C:
			if err := t.CheckFreeze(); err != nil {
				t.log.Error("daily freeze failed", "err", err)
			}
		}
	}
}

// Close releases the store. It is idempotent.
func (t *Terminal) Close() error {
	var err error
	t.once.Do(func() {
		if t.bus != nil {
			err = t.bus.Close()
		}
		err = errors.Join(err, t.store.close())
	})
	return err
}

// LastSeq returns the sequence number of the newest record the terminal made.
func (t *Terminal) LastSeq() uint64 {
	v, _ := strconv.ParseUint(t.store.meta(keySeq), 10, 64)
	return v
}
