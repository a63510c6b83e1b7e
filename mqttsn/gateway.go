package mqttsn

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Gateway errors.
var (
	// ErrUnknownClient is returned by [Gateway.Publish] for a ClientId that
	// never connected (or was evicted).
	ErrUnknownClient = errors.New("mqtt-sn client unknown")
	// ErrBufferFull is returned by [Gateway.Publish] when MaxBuffered
	// messages already wait for the client.
	ErrBufferFull = errors.New("mqtt-sn downlink buffer full")
)

// GatewayConfig configures a [Gateway]. Zero fields take their defaults.
type GatewayConfig struct {
	GatewayID byte // GwId in ADVERTISE and GWINFO
	// Predefined returns a client's predefined topic ids (id -> topic name);
	// nil means none. It is called at each CONNECT, and with "" for QoS −1
	// publications from senders without a session.
	Predefined func(clientID string) map[uint16]string
	// OnPublish receives every accepted publication (clientID is "" for a
	// QoS −1 publication from a sender without a session). For QoS 1 a nil
	// return sends PUBACK; an error sends nothing, so the client
	// retransmits. It runs on the client's session goroutine: a slow call
	// delays that client only. It must not call Gateway methods that wait
	// for the same client. nil accepts and drops everything.
	OnPublish func(ctx context.Context, clientID, topic string, payload []byte) error
	// OnConnect is called when a CONNECT is accepted; optional.
	OnConnect func(clientID string)
	// OnLost is called when a client is lost (keep-alive or sleep timeout,
	// or unanswered retransmissions); optional.
	OnLost func(clientID string)
	// WillPublish receives the Will of a lost client; optional. It is never
	// called after a DISCONNECT.
	WillPublish func(clientID, topic string, payload []byte)
	// OnDelivered reports the outcome of each message queued by
	// [Gateway.Publish]: Err is nil once a QoS 1 message was acknowledged
	// (a QoS 0 one sent), non-nil when it was given up; optional.
	OnDelivered   func(Delivery)
	RetryInterval time.Duration // Tretry for downlink REGISTER and PUBLISH; default 10s
	MaxRetries    int           // Nretry; default 4
	MaxClients    int           // sessions kept; default 10000
	MaxBuffered   int           // downlink messages queued per client; default 64
	MaxTopics     int           // normal topic ids and subscriptions per client; default 1024
	// AdvertiseInterval is the ADVERTISE period; 0 disables it. Keep it
	// above 15 min on the radio.
	AdvertiseInterval time.Duration
	// AdvertiseAddr is where ADVERTISE goes (a broadcast address);
	// required when AdvertiseInterval is set.
	AdvertiseAddr net.Addr
	Logger        *slog.Logger // default: discard
}

// Delivery is the outcome of a downlink message, reported through
// GatewayConfig.OnDelivered.
type Delivery struct {
	ClientID string
	Topic    string
	QoS      int
	Payload  []byte
	Err      error // nil: acknowledged (QoS 1) or sent (QoS 0)
}

// ClientState is a client's state as the gateway sees it.
type ClientState int32

// Client states (spec §6.14).
const (
	StateDisconnected ClientState = iota
	StateConnecting               // CONNECT received, Will prompts under way
	StateActive
	StateAsleep
	StateAwake
	StateLost
)

// String returns the state's lowercase name.
func (s ClientState) String() string {
	switch s {
	case StateDisconnected:
		return "disconnected"
	case StateConnecting:
		return "connecting"
	case StateActive:
		return "active"
	case StateAsleep:
		return "asleep"
	case StateAwake:
		return "awake"
	case StateLost:
		return "lost"
	}
	return fmt.Sprintf("ClientState(%d)", int32(s))
}

// ClientInfo describes one client session.
type ClientInfo struct {
	ClientID string
	Addr     net.Addr // nil if another client took its address
	NodeID   []byte   // forwarder's WirelessNodeId, nil when direct
	State    ClientState
	LastSeen time.Time
	Queued   int // downlink messages waiting or in flight
}

// Gateway is the MQTT-SN gateway core run by the handheld. It serves many
// clients over one [net.PacketConn] (UDP, or [NewSerialConn] on the radio),
// keyed by source address (and WirelessNodeId behind a forwarder). The
// conn must be safe for concurrent WriteTo calls and support
// SetReadDeadline; the caller closes it after Run returns.
//
// Each client has its own session: topic tables keyed on (type, id),
// deduplication of QoS 1 publications, keep-alive and sleep supervision
// with the spec's tolerance, Will, and a downlink queue with one message
// in flight. Packets of one client are handled in order on a goroutine
// that exists while it has work, so a slow OnPublish delays only its own
// client.
type Gateway struct {
	conn net.PacketConn
	cfg  GatewayConfig
	log  *slog.Logger

	mu      sync.Mutex
	byAddr  map[string]*session
	byID    map[string]*session
	anon    *session // QoS -1 from senders without a session
	running bool

	runMu   sync.Mutex // guards stopped and wg.Add
	stopped bool
	wg      sync.WaitGroup
	runCtx  context.Context
}

// NewGateway returns a gateway serving conn. It sends and reads nothing
// until Run.
func NewGateway(conn net.PacketConn, cfg GatewayConfig) (*Gateway, error) {
	if conn == nil {
		return nil, errors.New("new mqtt-sn gateway: nil conn")
	}
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = 10 * time.Second
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = 4
	}
	if cfg.MaxClients == 0 {
		cfg.MaxClients = 10000
	}
	if cfg.MaxBuffered == 0 {
		cfg.MaxBuffered = 64
	}
	if cfg.MaxTopics == 0 {
		cfg.MaxTopics = 1024
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var errs []error
	if cfg.RetryInterval < 0 || cfg.MaxRetries < 0 || cfg.MaxClients < 0 || cfg.MaxBuffered < 0 || cfg.MaxTopics < 0 {
		errs = append(errs, errors.New("negative limit"))
	}
	if cfg.AdvertiseInterval < 0 || cfg.AdvertiseInterval > 65535*time.Second {
		errs = append(errs, fmt.Errorf("advertise interval %v outside 0..65535s", cfg.AdvertiseInterval))
	}
	if cfg.AdvertiseInterval > 0 && cfg.AdvertiseAddr == nil {
		errs = append(errs, errors.New("advertise interval set without advertise address"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("new mqtt-sn gateway: %w", err)
	}
	g := &Gateway{
		conn:   conn,
		cfg:    cfg,
		log:    cfg.Logger.With("component", "mqttsn-gateway"),
		byAddr: make(map[string]*session),
		byID:   make(map[string]*session),
		runCtx: context.Background(),
	}
	g.anon = newSession(g, "")
	g.anon.state.Store(int32(StateActive))
	return g, nil
}

// Run serves clients until ctx is done, then stops every goroutine it
// started and returns nil. It returns an error if the conn fails. Run may
// be called once.
func (g *Gateway) Run(ctx context.Context) error {
	g.mu.Lock()
	if g.running {
		g.mu.Unlock()
		return errors.New("mqtt-sn gateway: run called twice")
	}
	g.running = true
	g.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g.runMu.Lock()
	g.runCtx = ctx
	g.runMu.Unlock()

	stopRead := context.AfterFunc(ctx, func() { _ = g.conn.SetReadDeadline(time.Now()) })
	defer stopRead()
	g.spawn(func() { g.superviseLoop(ctx) })
	if g.cfg.AdvertiseInterval > 0 {
		g.spawn(func() { g.advertiseLoop(ctx) })
	}
	g.log.Info("mqtt-sn gateway running", "addr", g.conn.LocalAddr(), "gw_id", g.cfg.GatewayID)
	err := g.readLoop(ctx)
	cancel() // stops the supervisor, the advertiser and slow OnPublish calls

	g.runMu.Lock()
	g.stopped = true
	g.runMu.Unlock()
	g.wg.Wait()
	g.mu.Lock()
	for _, s := range g.byID {
		s.stopTimer()
	}
	g.mu.Unlock()
	g.log.Info("mqtt-sn gateway stopped")
	return err
}

// spawn runs f on a goroutine owned by Run; it reports false once Run
// is stopping.
func (g *Gateway) spawn(f func()) bool {
	g.runMu.Lock()
	defer g.runMu.Unlock()
	if g.stopped {
		return false
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		f()
	}()
	return true
}

func (g *Gateway) context() context.Context {
	g.runMu.Lock()
	defer g.runMu.Unlock()
	return g.runCtx
}

func (g *Gateway) readLoop(ctx context.Context) error {
	buf := make([]byte, MaxLen)
	for {
		n, addr, err := g.conn.ReadFrom(buf)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("mqtt-sn gateway read: %w", err)
		}
		p, err := Decode(buf[:n])
		if err != nil {
			g.reject(g.clientIDAt(addr), addr, err)
			continue
		}
		pr := peer{addr: addr}
		if e, ok := p.(*Encapsulated); ok {
			pr.node, p = e.NodeID, e.Inner
		}
		g.dispatch(pr, p)
	}
}

// reject logs a rejected packet.
func (g *Gateway) reject(clientID string, addr net.Addr, err error) {
	a := ""
	if addr != nil {
		a = addr.String()
	}
	g.log.Warn("packet rejected", "client_id", clientID, "addr", a, "err", err)
}

// peer is where a client's packets come from: an address, plus the
// WirelessNodeId when a forwarder encapsulates them.
type peer struct {
	addr net.Addr
	node []byte
}

func (p peer) key() string {
	if p.node == nil {
		return p.addr.String()
	}
	return p.addr.String() + "#" + hex.EncodeToString(p.node)
}

// send encodes p, encapsulating it for a forwarder's node.
func (g *Gateway) send(pr peer, p Packet) {
	if pr.node != nil {
		p = &Encapsulated{NodeID: pr.node, Inner: p}
	}
	b, err := Append(nil, p)
	if err == nil {
		_, err = g.conn.WriteTo(b, pr.addr)
	}
	if err != nil {
		g.log.Debug("send failed", "addr", pr.addr, "type", p.Type(), "err", err)
	}
}

func (g *Gateway) dispatch(pr peer, p Packet) {
	switch p := p.(type) {
	case *SearchGW:
		// Answered to the searcher; on the radio its broadcast reaches all.
		g.send(pr, &GWInfo{GwID: g.cfg.GatewayID})
		return
	case *Advertise, *GWInfo:
		return // another gateway
	case *Connect:
		g.routeConnect(pr, p)
		return
	case *Pingreq:
		if p.ClientID != "" {
			g.routeWake(pr, p)
			return
		}
	}
	g.mu.Lock()
	s := g.byAddr[pr.key()]
	g.mu.Unlock()
	if s == nil {
		if pub, ok := p.(*Publish); ok && pub.QoS == QoSMinus1 {
			g.anon.postPacket(pr, p)
			return
		}
		g.reject("", pr.addr, fmt.Errorf("%v from unknown sender", p.Type()))
		if _, ok := p.(*Pingresp); !ok {
			g.send(pr, &Disconnect{})
		}
		return
	}
	s.touch()
	s.postPacket(pr, p)
}

func (g *Gateway) routeConnect(pr peer, p *Connect) {
	if n := len(p.ClientID); n < 1 || n > 23 {
		g.reject(p.ClientID, pr.addr, fmt.Errorf("client id length %d outside 1..23", n))
		g.send(pr, &Connack{ReturnCode: RejectedNotSupported})
		return
	}
	g.mu.Lock()
	s := g.byID[p.ClientID]
	if s == nil {
		if len(g.byID) >= g.cfg.MaxClients && !g.evictLocked() {
			g.mu.Unlock()
			g.reject(p.ClientID, pr.addr, fmt.Errorf("%d clients, the maximum", g.cfg.MaxClients))
			g.send(pr, &Connack{ReturnCode: RejectedCongestion})
			return
		}
		s = newSession(g, p.ClientID)
		g.byID[p.ClientID] = s
	}
	g.bindLocked(s, pr)
	g.mu.Unlock()
	s.touch()
	s.postPacket(pr, p)
}

func (g *Gateway) routeWake(pr peer, p *Pingreq) {
	g.mu.Lock()
	s := g.byID[p.ClientID]
	if s != nil {
		switch s.State() {
		case StateAsleep, StateAwake, StateActive:
			g.bindLocked(s, pr)
		default:
			s = nil
		}
	}
	g.mu.Unlock()
	if s == nil {
		g.reject(p.ClientID, pr.addr, errors.New("wake-up pingreq from a client that is not asleep"))
		g.send(pr, &Disconnect{})
		return
	}
	s.touch()
	s.postPacket(pr, p)
}

// bindLocked maps pr to s, unmapping s's old address and whichever session
// held pr before. g.mu is held.
func (g *Gateway) bindLocked(s *session, pr peer) {
	key := pr.key()
	if old := s.peer.Load(); old != nil && old.key() != key && g.byAddr[old.key()] == s {
		delete(g.byAddr, old.key())
	}
	if t := g.byAddr[key]; t != nil && t != s {
		t.peer.Store(nil) // never send t's messages to s's address
		t.post(t.displaced)
	}
	g.byAddr[key] = s
	s.peer.Store(&pr)
}

// evictLocked drops one disconnected or lost session with nothing queued.
func (g *Gateway) evictLocked() bool {
	for id, s := range g.byID {
		if st := s.State(); (st == StateDisconnected || st == StateLost) && s.queued.Load() == 0 {
			delete(g.byID, id)
			if pr := s.peer.Load(); pr != nil && g.byAddr[pr.key()] == s {
				delete(g.byAddr, pr.key())
			}
			return true
		}
	}
	return false
}
