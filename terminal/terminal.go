// Package terminal is the collection terminal: 16 channels that count meter pulses and turn
// them into readings (base reading + pulses / impulse constant), a store that keeps counters
// and unsent records across restarts, and an MQTT-SN client that sends every record to the
// handheld's gateway at QoS 1 and deletes it only after the PUBACK.
//
// Topics (package topic): publishes radio-readings (t/{terminal}/rd) and radio-cmd-acks
// (t/{terminal}/ack); subscribes to radio-commands (t/{terminal}/cmd).
// Stores (buntdb): channel states, the sequence counter, the outbox.
package terminal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/meterlink/meterlink/mqttsn"
	"github.com/meterlink/meterlink/topic"
	"github.com/meterlink/meterlink/wire"
)

// ErrUnknownChannel is returned for a pulse on a channel that is not commissioned.
var ErrUnknownChannel = errors.New("channel not commissioned")

// Terminal is one collection terminal.
type Terminal struct {
	cfg   Config
	log   *slog.Logger
	store *store
	gw    *net.UDPAddr

	mu       sync.Mutex
	channels map[uint8]channelState

	kick chan struct{} // wakes the uplink when a record is added
	once sync.Once
}

// New opens the terminal's store and restores its channels.
func New(cfg Config, log *slog.Logger) (*Terminal, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	hostport, _ := gatewayAddr(cfg.Gateway)
	gw, err := net.ResolveUDPAddr("udp", hostport)
	if err != nil {
		return nil, fmt.Errorf("gateway %q: %w", cfg.Gateway, err)
	}
	st, err := openStore(cfg.StorePath)
	if err != nil {
		return nil, err
	}
	chs, err := st.loadChannels()
	if err != nil {
		st.close()
		return nil, fmt.Errorf("load channels: %w", err)
	}
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
		st.close()
		return nil, fmt.Errorf("save channels: %w", err)
	}
	return &Terminal{
		cfg: cfg, log: log.With("terminal_id", cfg.ID), store: st, gw: gw,
		channels: chs, kick: make(chan struct{}, 1),
	}, nil
}

// ID returns the terminal's id.
func (t *Terminal) ID() string { return t.cfg.ID }

// Pulse counts n pulses on a channel. The counter is a u64 and readings use modular
// subtraction, so it never wraps in practice and stays right if it does.
func (t *Terminal) Pulse(ch uint8, n uint64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	st, ok := t.channels[ch]
	if !ok {
		return fmt.Errorf("pulse on channel %d: %w", ch, ErrUnknownChannel)
	}
	st.Count += n
	t.channels[ch] = st
	return nil
}

// energyWh is the channel's reading: base + (count − count at base) × 1000 / constant.
func (st channelState) energyWh() int64 {
	return st.BaseWh + int64((st.Count-st.CountBase)*1000/uint64(st.Constant))
}

// Collect reads every channel now and stores the reading in the outbox for sending.
func (t *Terminal) Collect() (wire.Record, error) {
	t.mu.Lock()
	r := wire.Record{Terminal: wire.TerminalID(t.cfg.ID), Kind: wire.KindReading, TimeMS: t.cfg.Now().UnixMilli()}
	for n := uint8(1); n <= 16; n++ {
		st, ok := t.channels[n]
		if !ok {
			continue
		}
		r.Channels = append(r.Channels, wire.ChannelReading{
			Channel: n, Meter: wire.MeterID(st.Meter), Pulses: st.Count, EnergyWh: st.energyWh(),
			Constant: st.Constant, Multiplier: st.Multiplier,
		})
	}
	snapshot := make(map[uint8]channelState, len(t.channels))
	for k, v := range t.channels {
		snapshot[k] = v
	}
	t.mu.Unlock()
	if len(r.Channels) == 0 {
		return wire.Record{}, errors.New("collect: no channel is commissioned")
	}
	stored, err := t.store.appendRecord(r, snapshot)
	if err != nil {
		return wire.Record{}, err
	}
	select {
	case t.kick <- struct{}{}:
	default:
	}
	return stored, nil
}

// Pending returns how many records wait for the handheld's acknowledgement.
func (t *Terminal) Pending() int { return t.store.pendingCount() }

// Run collects at the configured interval and sends records to the gateway until ctx is done.
// It reconnects after losing the gateway, keeping every unsent record.
func (t *Terminal) Run(ctx context.Context) error {
	defer t.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t.collectLoop(ctx)
	}()
	t.uplink(ctx)
	wg.Wait()
	// Keep the counters counted since the last collection.
	t.mu.Lock()
	snapshot := make(map[uint8]channelState, len(t.channels))
	for k, v := range t.channels {
		snapshot[k] = v
	}
	t.mu.Unlock()
	if err := t.store.saveChannels(snapshot); err != nil {
		return fmt.Errorf("save counters at stop: %w", err)
	}
	return nil
}

func (t *Terminal) collectLoop(ctx context.Context) {
	tick := time.NewTicker(t.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if _, err := t.Collect(); err != nil {
				t.log.Error("collection failed", "err", err)
			}
		}
	}
}

// uplink keeps a session with the gateway and drains the outbox through it.
func (t *Terminal) uplink(ctx context.Context) {
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		err := t.session(ctx)
		if ctx.Err() != nil {
			return
		}
		t.log.Warn("gateway session ended", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

func (t *Terminal) session(ctx context.Context) error {
	udp, err := net.ListenUDP("udp", nil)
	if err != nil {
		return fmt.Errorf("open radio socket: %w", err)
	}
	var conn net.PacketConn = udp
	if t.cfg.Radio != nil {
		conn = t.cfg.Radio(conn)
	}
	c, err := mqttsn.NewClient(conn, t.gw, mqttsn.ClientConfig{
		ClientID: t.cfg.ID, KeepAlive: t.cfg.KeepAlive, RetryInterval: t.cfg.Retry,
		Predefined: topic.RadioPredefined(t.cfg.ID), Logger: t.log,
	})
	if err != nil {
		conn.Close()
		return err
	}
	defer func() {
		c.Close()
		conn.Close()
	}()
	if err := c.Connect(ctx); err != nil {
		return fmt.Errorf("connect to gateway %s: %w", t.gw, err)
	}
	if err := c.Subscribe(ctx, topic.RadioCommands(t.cfg.ID), 1, func(_ string, payload []byte) error {
		t.command(ctx, c, payload)
		return nil
	}); err != nil {
		return fmt.Errorf("subscribe to commands: %w", err)
	}
	t.log.Info("gateway session up", "gateway", t.gw.String())
	for {
		recs, err := t.store.pending(64)
		if err != nil {
			return fmt.Errorf("read outbox: %w", err)
		}
		for _, r := range recs {
			b, err := wire.MarshalRadio(r)
			if err != nil {
				// A record that cannot be encoded can never be sent; keeping it would block the
				// outbox for ever.
				t.log.Error("record dropped: cannot encode", "seq", r.Seq, "err", err)
				_ = t.store.remove(r.Seq)
				continue
			}
			if err := c.Publish(ctx, topic.RadioReadings(t.cfg.ID), 1, b); err != nil {
				return fmt.Errorf("publish record %d: %w", r.Seq, err)
			}
			if err := t.store.remove(r.Seq); err != nil {
				return fmt.Errorf("remove acknowledged record %d: %w", r.Seq, err)
			}
		}
		if len(recs) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			// A clean DISCONNECT tells the gateway not to publish our Will; do not wait long
			// for a gateway that may be gone.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 500*time.Millisecond)
			_ = c.Disconnect(dctx)
			cancel()
			return nil
		case <-t.kick:
		}
	}
}

// command carries out one command from the handheld and sends its acknowledgement.
func (t *Terminal) command(ctx context.Context, c *mqttsn.Client, payload []byte) {
	var cmd wire.Command
	ack := wire.CommandAck{V: wire.Version, Terminal: wire.TerminalID(t.cfg.ID)}
	switch err := json.Unmarshal(payload, &cmd); {
	case err != nil:
		ack.Code, ack.Detail = wire.AckInvalid, "malformed command: "+err.Error()
	case cmd.Terminal != wire.TerminalID(t.cfg.ID):
		ack.ID, ack.Code, ack.Detail = cmd.ID, wire.AckInvalid, "command for terminal "+string(cmd.Terminal)
	case cmd.ExpiresMS != 0 && t.cfg.Now().UnixMilli() > cmd.ExpiresMS:
		ack.ID, ack.Code, ack.Detail = cmd.ID, wire.AckExpired, "command expired"
	default:
		ack.ID = cmd.ID
		switch cmd.Op {
		case "collect":
			r, err := t.Collect()
			if err != nil {
				ack.Code, ack.Detail = wire.AckFailed, err.Error()
			} else {
				ack.Result, _ = json.Marshal(map[string]uint64{"seq": r.Seq})
			}
		case "read_clock":
			ack.Result, _ = json.Marshal(map[string]int64{"ts_ms": t.cfg.Now().UnixMilli()})
		default:
			ack.Code, ack.Detail = wire.AckUnsupported, "unsupported operation "+cmd.Op
		}
	}
	b, _ := json.Marshal(ack)
	// Sent from a goroutine: the client serialises QoS 1 exchanges, and this handler runs on
	// the client's receive path.
	go func() {
		if err := c.Publish(ctx, topic.RadioCmdAcks(t.cfg.ID), 1, b); err != nil {
			t.log.Warn("command ack not sent", "command_id", ack.ID, "err", err)
		}
	}()
}

// Close releases the store. It is idempotent.
func (t *Terminal) Close() error {
	var err error
	t.once.Do(func() { err = t.store.close() })
	return err
}
