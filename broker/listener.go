package broker

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// listener serves MQTT on a socket bound by New, over plain TCP or WebSocket. mochi's own
// listeners bind in Init (TCP) or only in Serve (WebSocket), so they cannot report a port in use
// from New nor the port picked for 127.0.0.1:0; and on Close they can miss a connection accepted
// but not yet attached, which then holds mochi's shutdown. This one tracks every connection.
type listener struct {
	id       string
	ln       net.Listener
	ws       bool
	log      *slog.Logger
	maxSize  uint32
	tooLarge func() // counts a connection closed for an oversize packet

	mu      sync.Mutex
	closed  bool
	serving bool
	served  chan struct{} // closed when Serve returns
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup // one per tracked connection
	httpSrv *http.Server
}

// Interface guard.
var _ listeners.Listener = (*listener)(nil)

func newListener(id, addr string, ws bool, log *slog.Logger, maxSize uint32, tooLarge func()) (*listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &listener{
		id: id, ln: ln, ws: ws, log: log.With("listener", id), maxSize: maxSize, tooLarge: tooLarge,
		served: make(chan struct{}), conns: map[net.Conn]struct{}{},
	}, nil
}

// ID returns the listener's id.
func (l *listener) ID() string { return l.id }

// Address returns the bound address.
func (l *listener) Address() string { return l.ln.Addr().String() }

// Protocol returns "tcp" or "ws".
func (l *listener) Protocol() string {
	if l.ws {
		return "ws"
	}
	return "tcp"
}

// Init does nothing: New bound the socket already.
func (l *listener) Init(*slog.Logger) error { return nil }

// Serve accepts connections until Close, handing each to establish.
func (l *listener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	if l.closed || l.serving {
		l.mu.Unlock()
		return
	}
	l.serving = true
	l.mu.Unlock()
	defer close(l.served)
	if l.ws {
		l.serveWS(establish)
		return
	}
	backoff := 5 * time.Millisecond
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.isClosed() {
				return
			}
			// Like net/http: a failing Accept (out of file descriptors) is retried, not fatal.
			l.log.Error("accept failed", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if !l.track(c) {
			continue
		}
		go func() {
			defer l.untrack(c)
			l.handle(establish, c)
		}()
	}
}

func (l *listener) serveWS(establish listeners.EstablishFn) {
	up := &websocket.Upgrader{
		Subprotocols: []string{"mqtt"},
		// Dashboards are served from any origin; credentials travel in CONNECT, not cookies.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(l.log.Handler(), slog.LevelDebug),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			wc, err := up.Upgrade(w, r, nil)
			if err != nil {
				return // Upgrade has answered with an HTTP error
			}
			c := &wsConn{Conn: wc.NetConn(), ws: wc}
			if !l.track(c) {
				return
			}
			defer l.untrack(c)
			l.handle(establish, c)
		}),
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.httpSrv = srv
	l.mu.Unlock()
	if err := srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !l.isClosed() {
		l.log.Error("websocket listener stopped", "err", err)
	}
}

func (l *listener) handle(establish listeners.EstablishFn, c net.Conn) {
	err := establish(l.id, c)
	switch {
	case err == nil:
	case errors.Is(err, packets.ErrPacketTooLarge):
		l.tooLarge()
		l.log.Warn("connection closed", "remote", c.RemoteAddr().String(), "reason", "packet too large",
			"max_packet_size", l.maxSize)
	default:
		l.log.Debug("connection ended", "remote", c.RemoteAddr().String(), "err", err)
	}
}

func (l *listener) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// track registers c, or closes it and reports false when the listener is closing.
func (l *listener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		_ = c.Close()
		return false
	}
	l.conns[c] = struct{}{}
	l.wg.Add(1)
	return true
}

func (l *listener) untrack(c net.Conn) {
	_ = c.Close()
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	l.wg.Done()
}

// Close stops accepting, closes every connection, lets mochi stop this listener's clients and
// waits until each connection has been let go.
func (l *listener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	serving, srv := l.serving, l.httpSrv
	l.mu.Unlock()

	if srv != nil {
		_ = srv.Close() // closes l.ln; upgraded connections are ours, closed below
	}
	_ = l.ln.Close()
	if serving {
		<-l.served
	}
	// Connections are closed before mochi disconnects its clients: mochi writes its DISCONNECT
	// under the client's lock, which a write blocked on a consumer that stopped reading holds
	// until the keep-alive deadline. MQTT 3.1.1 clients see the same either way: a closed
	// connection.
	l.mu.Lock()
	for c := range l.conns {
		_ = c.Close()
	}
	l.mu.Unlock()
	closeClients(l.id)
	l.wg.Wait()
}

// wsConn carries MQTT over binary WebSocket messages. mochi writes to a connection from one
// goroutine at a time (under the client's lock), as gorilla/websocket requires.
type wsConn struct {
	net.Conn // the underlying connection: addresses, deadlines, Close
	ws       *websocket.Conn
	r        io.Reader // the message being read, nil between messages
}

// Read reads the MQTT byte stream across WebSocket message boundaries.
func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errors.New("websocket: MQTT needs binary messages")
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// Write sends p as one binary WebSocket message.
func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
