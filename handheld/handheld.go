// Package handheld is the meter reader's handheld: it hosts the MQTT-SN gateway that the
// terminals talk to, keeps every record it receives in a buntdb outbox, and reports the
// records to ops through the PDA's local listener, deleting each only when ops has
// acknowledged it end to end. On top of that it is the reader's tool on site:
//
//   - groups: the terminals and meters of the reader's districts, from ops (or the lab), which
//     the reader can narrow locally;
//   - batch jobs on a group (set clock, set freeze time, set channel parameters, collect, read
//     frozen records), tracked per terminal, retried with backoff for terminals asleep or out
//     of range, resumed after a restart, their results queued for ops as job events;
//   - the live view of a terminal's or a meter's channels;
//   - real-time customer queries to ops with a deadline, and the cached answer with its age
//     when offline;
//   - on-site warnings (reverse running, spikes, zero consumption, clock drift, power loss, low
//     prepaid balance) flagged as records and answers arrive;
//   - a JSON control API on loopback for `meterlink hh` (control.go).
//
// Topics (package topic): on the radio it receives radio-readings, radio-frozen, radio-events
// and radio-cmd-acks and sends radio-commands; on the PDA listener it publishes hh-hs-up,
// hh-records, hh-query and hh-jobs and subscribes to hh-hs-down, hh-ack, hh-answer and
// hh-groups. Everything but the link handshake is sealed under its link with the PDA, which
// only a PDA holding an ops-issued ticket for this handheld can set up (hhlink.go, security.md
// §12). Stores (buntdb, one file): the outbox of records, groups, jobs, job events, cached
// answers, each meter's last reading, the on-site warnings and the ticket state
// (min_ticket_seq, clock floor, lockout).
package handheld

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/meterlink/meterlink/bus"
	"github.com/meterlink/meterlink/mqttsn"
	"github.com/meterlink/meterlink/topic"
	"github.com/meterlink/meterlink/wire"
)

// ErrCommandTimeout is returned when a terminal does not answer a command in time.
var ErrCommandTimeout = errors.New("terminal did not answer the command in time")

// Handheld is a running handheld.
type Handheld struct {
	cfg    Config
	log    *slog.Logger
	box    *outbox
	conn   net.PacketConn    // UDP
	serial net.PacketConn    // serial radio, if configured
	gws    []*mqttsn.Gateway // one per transport, sharing the outbox
	pda    *pdaLink          // the PDA listener with the link on top (hhlink.go)
	groups *groups
	jobs   *jobs
	events *jobEvents
	warn   *warnings
	ctl    *control // nil without Config.ControlAddr

	kick chan struct{}

	mu       sync.Mutex
	inflight map[wire.RecordKey]time.Time // sent upstream, not yet acknowledged
	waiters  map[string]chan wire.CommandAck
	answers  map[string]chan wire.Answer
	batchSeq uint64
	querySeq uint64
	liveSeq  uint64
	stats    Stats

	closeOnce sync.Once
}

// Stats counts what the handheld did since it started.
type Stats struct {
	Received   int // records received from terminals and stored
	Duplicates int // records a terminal sent again, already held
	Rejected   int // radio payloads that could not be decoded
	Uploaded   int // records ops acknowledged
	Batches    int // batches sent upstream
}

// New opens the store, binds the gateway's UDP socket and the control API's listener, and
// resumes the jobs a previous run left unfinished.
func New(cfg Config, log *slog.Logger) (*Handheld, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log = log.With("handheld_id", cfg.ID)
	box, err := openOutbox(cfg.StorePath)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenPacket("udp", cfg.MQTTSNAddr)
	if err != nil {
		box.close()
		return nil, fmt.Errorf("listen for MQTT-SN on udp %s: %w", cfg.MQTTSNAddr, err)
	}
	if cfg.Radio != nil {
		conn = cfg.Radio(conn)
	}
	h := &Handheld{
		cfg: cfg, log: log, box: box, conn: conn, kick: make(chan struct{}, 1),
		inflight: map[wire.RecordKey]time.Time{}, waiters: map[string]chan wire.CommandAck{},
		answers:  map[string]chan wire.Answer{},
		batchSeq: uint64(time.Now().UnixNano()),
	}
	h.groups = &groups{db: box.db}
	h.warn = newWarnings(box.db, cfg)
	h.events = newJobEvents(h, box.db)
	if h.jobs, err = newJobs(h, box.db); err != nil {
		h.Close()
		return nil, fmt.Errorf("resume jobs: %w", err)
	}
	conns := []net.PacketConn{conn}
	if cfg.Serial != "" {
		f, err := os.OpenFile(cfg.Serial, os.O_RDWR, 0)
		if err != nil {
			h.Close()
			return nil, fmt.Errorf("open serial radio %s: %w", cfg.Serial, err)
		}
		// Real serial ports need their line settings made beforehand (stty); a pty ignores them.
		h.serial = mqttsn.NewSerialConn(f, mqttsn.NodeAddr(cfg.RadioNode))
		conns = append(conns, h.serial)
	}
	for _, c := range conns {
		gw, err := mqttsn.NewGateway(c, mqttsn.GatewayConfig{
			GatewayID:     1,
			Predefined:    predefinedIDs,
			OnPublish:     h.onRadio,
			OnDelivered:   h.onDelivered,
			RetryInterval: cfg.Retry,
			Logger:        log.With("component", "mqttsn-gateway", "transport", c.LocalAddr().Network()),
		})
		if err != nil {
			h.Close()
			return nil, err
		}
		h.gws = append(h.gws, gw)
	}
	pw := listenerPassword(cfg.ID, cfg.Key)
	c, err := bus.New(bus.Config{
		URL: cfg.PDAURL, ClientID: cfg.ID, Username: cfg.ID,
		Password: func() string { return pw }, CleanSession: false, Logger: log,
		OnConnect: h.wake,
	})
	if err != nil {
		h.Close()
		return nil, err
	}
	if h.pda, err = newPDALink(h, c); err != nil {
		c.Close()
		h.Close()
		return nil, err
	}
	if cfg.ControlAddr != "" {
		if h.ctl, err = newControl(h, cfg.ControlAddr); err != nil {
			h.Close()
			return nil, err
		}
	}
	return h, nil
}

func (h *Handheld) now() time.Time { return h.cfg.Now() }

// ControlAddr returns the bound address of the control API, or "" without one.
func (h *Handheld) ControlAddr() string {
	if h.ctl == nil {
		return ""
	}
	return h.ctl.addr()
}

// predefinedIDs gives each terminal its predefined topic ids (topic.RadioPredefined).
func predefinedIDs(clientID string) map[uint16]string {
	out := map[uint16]string{}
	for name, id := range topic.RadioPredefined(clientID) {
		out[id] = name
	}
	return out
}

// GatewayAddr returns the bound UDP address of the MQTT-SN gateway.
func (h *Handheld) GatewayAddr() net.Addr { return h.conn.LocalAddr() }

// Pending returns the number of records waiting for ops' acknowledgement.
func (h *Handheld) Pending() int { return h.box.count() }

// Stats returns the handheld's counters.
func (h *Handheld) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stats
}

func (h *Handheld) wake() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// onRadio handles a PUBLISH from a terminal. Returning nil lets the gateway PUBACK it, so a
// record is stored before the terminal may delete it.
func (h *Handheld) onRadio(_ context.Context, clientID, t string, payload []byte) error {
	terminal, kind, err := topic.ParseRadio(t)
	if err != nil || terminal != clientID {
		h.count(func(s *Stats) { s.Rejected++ })
		h.log.Warn("radio message dropped", "topic", t, "client_id", clientID, "err", "topic does not belong to the client")
		return nil
	}
	switch kind {
	case "ack":
		var ack wire.CommandAck
		if err := json.Unmarshal(payload, &ack); err != nil || ack.Terminal != wire.TerminalID(terminal) {
			h.count(func(s *Stats) { s.Rejected++ })
			h.log.Warn("command ack dropped", "topic", t, "err", err)
			return nil
		}
		h.noteAck(ack)
		h.mu.Lock()
		ch := h.waiters[ack.ID]
		h.mu.Unlock()
		if ch != nil {
			select {
			case ch <- ack:
			default:
			}
			return nil
		}
		if h.jobs.onAck(ack) {
			h.jobs.wake()
		}
		return nil
	case "rd", "fz", "ev":
		r, err := wire.UnmarshalRadio(payload)
		if err != nil || r.Terminal != wire.TerminalID(terminal) {
			h.count(func(s *Stats) { s.Rejected++ })
			h.log.Warn("radio record dropped", "topic", t, "terminal_id", terminal, "err", err)
			return nil // acknowledged: sending it again cannot make it valid
		}
		added, err := h.box.put(r)
		if err != nil {
			return fmt.Errorf("store record %s: %w", r.Key(), err) // no PUBACK: the terminal retries
		}
		if added {
			h.count(func(s *Stats) { s.Received++ })
			h.wake()
			ws, err := h.warn.checkRecord(r)
			if err != nil {
				h.log.Warn("on-site checks failed", "record", r.Key().String(), "err", err)
			}
			for _, w := range ws {
				h.log.Warn("on-site warning", "code", w.Code, "terminal_id", terminal, "meter", w.Meter, "detail", w.Detail)
			}
		} else {
			h.count(func(s *Stats) { s.Duplicates++ })
		}
		return nil
	}
	h.log.Warn("radio message dropped", "topic", t, "err", "handheld does not take this kind")
	return nil
}

func (h *Handheld) count(f func(*Stats)) {
	h.mu.Lock()
	f(&h.stats)
	h.mu.Unlock()
}

// noteAck feeds the on-site clock check from command answers: a read_clock answer gives the
// terminal's time now, a collect answer names the record just made.
func (h *Handheld) noteAck(ack wire.CommandAck) {
	if ack.Code != wire.AckOK || len(ack.Result) == 0 || ack.Result[0] != '{' {
		return
	}
	var r struct {
		Seq    *uint64 `json:"seq"`
		TimeMS *int64  `json:"ts_ms"`
	}
	if json.Unmarshal(ack.Result, &r) != nil {
		return
	}
	switch {
	case r.Seq != nil:
		h.warn.noteCollect(ack.Terminal, *r.Seq, h.now())
	case r.TimeMS != nil:
		if err := h.warn.checkClock(ack.Terminal, *r.TimeMS); err != nil {
			h.log.Warn("clock check not kept", "terminal_id", ack.Terminal, "err", err)
		}
	}
}

// onDelivered learns the radio's outcome of each command sent to a terminal.
func (h *Handheld) onDelivered(d mqttsn.Delivery) {
	if _, kind, err := topic.ParseRadio(d.Topic); err == nil && kind == "cmd" {
		h.jobs.onDelivered(d)
	}
}

// SendCommand sends a command to a terminal and waits for its acknowledgement or ctx.
func (h *Handheld) SendCommand(ctx context.Context, cmd wire.Command) (wire.CommandAck, error) {
	cmd.V = wire.Version
	if cmd.ID == "" || !wire.ValidID(string(cmd.Terminal)) || cmd.Op == "" {
		return wire.CommandAck{}, errors.New("command needs an id, a valid terminal and an op")
	}
	b, err := json.Marshal(cmd)
	if err != nil {
		return wire.CommandAck{}, err
	}
	ch := make(chan wire.CommandAck, 1)
	h.mu.Lock()
	h.waiters[cmd.ID] = ch
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.waiters, cmd.ID)
		h.mu.Unlock()
	}()
	if err := h.gatewayOf(string(cmd.Terminal)).Publish(ctx, string(cmd.Terminal), topic.RadioCommands(string(cmd.Terminal)), 1, b); err != nil {
		return wire.CommandAck{}, fmt.Errorf("send command %s to %s: %w", cmd.ID, cmd.Terminal, err)
	}
	select {
	case ack := <-ch:
		return ack, nil
	case <-ctx.Done():
		return wire.CommandAck{}, fmt.Errorf("command %s to %s: %w", cmd.ID, cmd.Terminal, ErrCommandTimeout)
	}
}

// gatewayOf returns the gateway that has a session for the terminal: the serial radio's if
// the terminal talks over it, else UDP's (which queues for terminals not yet seen).
func (h *Handheld) gatewayOf(terminal string) *mqttsn.Gateway {
	for _, gw := range h.gws[1:] {
		for _, c := range gw.Clients() {
			if c.ClientID == terminal {
				return gw
			}
		}
	}
	return h.gws[0]
}

// Clients lists the terminals the gateways know, with their state.
func (h *Handheld) Clients() []mqttsn.ClientInfo {
	var out []mqttsn.ClientInfo
	for _, gw := range h.gws {
		out = append(out, gw.Clients()...)
	}
	return out
}

// Run serves the gateway and the upstream link until ctx is done.
func (h *Handheld) Run(ctx context.Context) error {
	defer h.Close()
	var wg sync.WaitGroup
	errc := make(chan error, len(h.gws)+1)
	for _, gw := range h.gws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := gw.Run(ctx); err != nil {
				errc <- fmt.Errorf("mqttsn gateway: %w", err)
			}
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		h.uplink(ctx)
	}()
	go func() {
		defer wg.Done()
		h.jobs.run(ctx)
	}()
	if h.ctl != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.ctl.run(ctx); err != nil {
				errc <- fmt.Errorf("control API: %w", err)
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// uplink connects to the PDA and sends the outbox in batches, again after ResendAfter when
// ops has not acknowledged them.
func (h *Handheld) uplink(ctx context.Context) {
	// Registered before connecting: acknowledgements queued in our session while we were
	// away find their handler at once.
	for _, s := range []struct {
		topic string
		h     bus.Handler
	}{{topic.HHAck(h.cfg.ID), h.onAck}, {topic.HHAnswer(h.cfg.ID), h.onAnswer}, {topic.HHGroups(h.cfg.ID), h.onGroups}} {
		if err := h.pda.Subscribe(ctx, s.topic, 1, s.h); err != nil {
			h.log.Error("subscribe failed", "topic", s.topic, "err", err)
		}
	}
	if err := h.pda.subscribeHS(ctx); err != nil {
		h.log.Error("subscribe failed", "topic", topic.HHHandshakeDown(h.cfg.ID), "err", err)
	}
	backoff := 200 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := h.pda.Connect(cctx)
		cancel()
		if err == nil {
			break
		}
		h.log.Warn("pda not reachable", "pda_url", h.cfg.PDAURL, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
	h.log.Info("pda link up", "pda_url", h.cfg.PDAURL)
	resend := time.NewTicker(h.cfg.ResendAfter / 2)
	defer resend.Stop()
	linkTick := time.NewTicker(askFirst / 2)
	defer linkTick.Stop()
	h.pda.maintain(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-linkTick.C:
			h.pda.maintain(ctx)
			continue
		case <-h.kick:
			if h.cfg.BatchWait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(h.cfg.BatchWait):
				}
			}
		case <-resend.C:
		}
		for h.sendBatch(ctx) {
		}
		for h.events.send(ctx) {
		}
	}
}

// sendBatch sends one batch of records not in flight; it reports whether it sent a full batch
// (so more may wait).
func (h *Handheld) sendBatch(ctx context.Context) bool {
	if !h.pda.IsConnected() {
		return false
	}
	now := time.Now()
	h.mu.Lock()
	recs, err := h.box.list(h.cfg.BatchMax, func(k wire.RecordKey) bool {
		sent, ok := h.inflight[k]
		return ok && now.Sub(sent) < h.cfg.ResendAfter
	})
	h.batchSeq++
	id := fmt.Sprintf("%s-%d", h.cfg.ID, h.batchSeq)
	h.mu.Unlock()
	if err != nil {
		h.log.Error("read outbox failed", "err", err)
		return false
	}
	if len(recs) == 0 {
		return false
	}
	full := len(recs) == h.cfg.BatchMax
	var b []byte
	for {
		b, err = json.Marshal(wire.Batch{V: wire.Version, ID: id, Handheld: wire.HandheldID(h.cfg.ID), Records: recs})
		if err != nil {
			h.log.Error("encode batch failed", "err", err)
			return false
		}
		// Brokers refuse packets over 64 KiB and the PDA seals one batch per record: keep
		// batches well under both by halving until the batch fits.
		if len(b) <= maxBatchBytes || len(recs) == 1 {
			break
		}
		recs, full = recs[:len(recs)/2], true
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := h.pda.Publish(pctx, topic.HHRecords(h.cfg.ID), 1, false, b); err != nil {
		h.log.Warn("batch not sent", "batch_id", id, "err", err)
		return false
	}
	h.mu.Lock()
	for _, r := range recs {
		h.inflight[r.Key()] = now
	}
	h.stats.Batches++
	h.mu.Unlock()
	h.log.Debug("batch sent", "batch_id", id, "records", len(recs), "bytes", len(b))
	return full
}

// maxBatchBytes bounds an upstream batch's JSON: a 16-channel record takes about 1.6 KB.
const maxBatchBytes = 24 << 10

// onAck deletes the records ops acknowledged.
func (h *Handheld) onAck(_ context.Context, m bus.Message) error {
	var ack wire.Ack
	if err := json.Unmarshal(m.Payload, &ack); err != nil || ack.V != wire.Version {
		h.log.Warn("acknowledgement dropped", "topic", m.Topic, "err", err)
		return nil
	}
	if ok, err := h.events.onAck(ack.ID); ok {
		if err != nil {
			return fmt.Errorf("remove acknowledged job events: %w", err)
		}
		if len(ack.Records) == 0 {
			return nil
		}
	}
	keys := ack.Records
	for _, rj := range ack.Rejected {
		h.log.Warn("ops rejected a record", "record", rj.Key.String(), "reason", rj.Reason)
		keys = append(keys, rj.Key)
	}
	n, err := h.box.remove(keys)
	if err != nil {
		return fmt.Errorf("remove acknowledged records: %w", err)
	}
	h.mu.Lock()
	for _, k := range keys {
		delete(h.inflight, k)
	}
	h.stats.Uploaded += n
	h.mu.Unlock()
	h.wake()
	return nil
}

// Close releases the socket, the PDA client and the outbox. It is idempotent.
func (h *Handheld) Close() error {
	var err error
	h.closeOnce.Do(func() {
		if h.pda != nil {
			h.pda.Close()
		}
		if h.ctl != nil {
			h.ctl.close()
		}
		err = errors.Join(h.conn.Close(), h.box.close())
		if h.serial != nil {
			err = errors.Join(err, h.serial.Close())
		}
	})
	return err
}
