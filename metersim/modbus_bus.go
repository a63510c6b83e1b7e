package metersim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"

	"github.com/simonvetter/modbus"
)

// ErrUnitInUse is returned when two meters on one bus share a unit id.
var ErrUnitInUse = errors.New("modbus unit id already on the bus")

// ModbusBus is a set of simulated Modbus meters sharing one link, as on
// an RS-485 line: each answers requests for its unit id. Serve it over an
// RTU byte stream with [ModbusBus.ServeRTU] (a pty, or a TCP connection
// for rtuovertcp://) or over Modbus TCP with [ModbusBus.ListenTCP]. It is
// safe for concurrent use.
type ModbusBus struct {
	mu     sync.RWMutex
	meters map[uint8]*ModbusMeter
}

// NewModbusBus returns a bus with the given meters.
func NewModbusBus(meters ...*ModbusMeter) (*ModbusBus, error) {
	b := &ModbusBus{meters: map[uint8]*ModbusMeter{}}
	for _, m := range meters {
		if err := b.Add(m); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Add connects a meter to the bus.
func (b *ModbusBus) Add(m *ModbusMeter) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, dup := b.meters[m.unit]; dup {
		return fmt.Errorf("add %s meter at unit %d: %w", m.regs.Name, m.unit, ErrUnitInUse)
	}
	b.meters[m.unit] = m
	return nil
}

// Meter returns the meter at unit id, or nil.
func (b *ModbusBus) Meter(unit uint8) *ModbusMeter {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.meters[unit]
}

// handlePDU answers one request PDU (function code and data) for unit.
// It returns the reply PDU, or ok false when nothing must be sent: no
// meter at unit, a silent meter, or a broadcast (unit 0, writes only).
func (b *ModbusBus) handlePDU(unit uint8, pdu []byte) (reply []byte, ok bool) {
	if unit == 0 {
		b.mu.RLock()
		ms := make([]*ModbusMeter, 0, len(b.meters))
		for _, m := range b.meters {
			ms = append(ms, m)
		}
		b.mu.RUnlock()
		for _, m := range ms {
			handleMeterPDU(m, pdu)
		}
		return nil, false
	}
	m := b.Meter(unit)
	if m == nil || m.isSilent() {
		return nil, false
	}
	return handleMeterPDU(m, pdu), true
}

// handleMeterPDU answers one request PDU for meter m.
func handleMeterPDU(m *ModbusMeter, pdu []byte) []byte {
	if len(pdu) == 0 {
		return nil
	}
	fc := pdu[0]
	exception := func(code byte) []byte { return []byte{fc | 0x80, code} }
	switch fc {
	case 0x03, 0x04:
		if len(pdu) != 5 {
			return exception(exIllegalValue)
		}
		addr, qty := binary.BigEndian.Uint16(pdu[1:]), binary.BigEndian.Uint16(pdu[3:])
		if qty < 1 || qty > 125 {
			return exception(exIllegalValue)
		}
		words, ex := m.readRegisters(fc, addr, qty)
		if ex != 0 {
			return exception(ex)
		}
		out := make([]byte, 2, 2+2*len(words))
		out[0], out[1] = fc, byte(2*len(words))
		for _, w := range words {
			out = binary.BigEndian.AppendUint16(out, w)
		}
		return out
	case 0x10:
		if len(pdu) < 6 {
			return exception(exIllegalValue)
		}
		addr, qty, n := binary.BigEndian.Uint16(pdu[1:]), binary.BigEndian.Uint16(pdu[3:]), int(pdu[5])
		if qty < 1 || qty > 123 || n != 2*int(qty) || len(pdu) != 6+n {
			return exception(exIllegalValue)
		}
		words := make([]uint16, qty)
		for i := range words {
			words[i] = binary.BigEndian.Uint16(pdu[6+2*i:])
		}
		if ex := m.writeRegisters(addr, words); ex != 0 {
			return exception(ex)
		}
		return append([]byte(nil), pdu[:5]...)
	}
	// FC06 included: the DDS238 rejects it (domain.md §3.2), and the other
	// models have nothing writable.
	return exception(exIllegalFunction)
}

// ModbusTCPServer is a [ModbusBus] served over Modbus TCP by
// simonvetter/modbus.
type ModbusTCPServer struct {
	srv  *modbus.ModbusServer
	addr string
	once sync.Once
}

// ListenTCP serves the bus over Modbus TCP on addr (host:port). Port 0
// picks a free port; the library's server does not report the port it
// bound, so a free one is found first and bound right after, with a few
// attempts in case another process takes it in between. log receives the
// library's messages at debug level.
func (b *ModbusBus) ListenTCP(addr string, log *slog.Logger) (*ModbusTCPServer, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("listen modbus tcp %q: %w", addr, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	libLog := slog.NewLogLogger(log.With("component", "modbus-server").Handler(), slog.LevelDebug)
	var lastErr error
	for range 5 {
		hp := addr
		if port == "0" {
			if hp, err = freePort(host); err != nil {
				return nil, err
			}
		}
		srv, err := modbus.NewServer(&modbus.ServerConfiguration{URL: "tcp://" + hp, Logger: libLog}, tcpHandler{b})
		if err != nil {
			return nil, fmt.Errorf("listen modbus tcp %s: %w", hp, err)
		}
		if lastErr = srv.Start(); lastErr == nil {
			log.Info("modbus tcp meters listening", "addr", hp)
			return &ModbusTCPServer{srv: srv, addr: hp}, nil
		}
		if port != "0" {
			break
		}
	}
	return nil, fmt.Errorf("listen modbus tcp %s: %w", addr, lastErr)
}

// freePort returns host:port with a port the kernel just handed out.
func freePort(host string) (string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return net.JoinHostPort(host, strconv.Itoa(l.Addr().(*net.TCPAddr).Port)), nil
}

// Addr returns the host:port the server listens on.
func (s *ModbusTCPServer) Addr() string { return s.addr }

// URL returns the server's address as a client URL, tcp://host:port.
func (s *ModbusTCPServer) URL() string { return "tcp://" + s.addr }

// Close stops the server and closes its connections. It is idempotent.
func (s *ModbusTCPServer) Close() error {
	var err error
	s.once.Do(func() { err = s.srv.Stop() })
	return err
}

// tcpHandler adapts a bus to the library's request handler.
type tcpHandler struct{ b *ModbusBus }

// Interface guard.
var _ modbus.RequestHandler = tcpHandler{}

// exceptionErrors maps our exception codes to the library's errors, which
// it turns back into the same codes.
var exceptionErrors = map[byte]error{
	exIllegalFunction: modbus.ErrIllegalFunction,
	exIllegalAddress:  modbus.ErrIllegalDataAddress,
	exIllegalValue:    modbus.ErrIllegalDataValue,
	exDeviceFailure:   modbus.ErrServerDeviceFailure,
	exGatewayNoReply:  modbus.ErrGWTargetFailedToRespond,
}

func (h tcpHandler) registers(unit uint8, pdu []byte) ([]uint16, error) {
	reply, ok := h.b.handlePDU(unit, pdu)
	switch {
	case !ok:
		return nil, modbus.ErrGWTargetFailedToRespond
	case reply[0]&0x80 != 0:
		return nil, exceptionErrors[reply[1]]
	case reply[0] == 0x10:
		return nil, nil
	}
	words := make([]uint16, (len(reply)-2)/2)
	for i := range words {
		words[i] = binary.BigEndian.Uint16(reply[2+2*i:])
	}
	return words, nil
}

// HandleCoils answers exception 01: meters have no coils.
func (tcpHandler) HandleCoils(*modbus.CoilsRequest) ([]bool, error) {
	return nil, modbus.ErrIllegalFunction
}

// HandleDiscreteInputs answers exception 01: meters have no discrete inputs.
func (tcpHandler) HandleDiscreteInputs(*modbus.DiscreteInputsRequest) ([]bool, error) {
	return nil, modbus.ErrIllegalFunction
}

// HandleHoldingRegisters answers FC03 and FC16. The library reports FC06
// as a one-register write, so over TCP FC06 is treated as FC16.
func (h tcpHandler) HandleHoldingRegisters(req *modbus.HoldingRegistersRequest) ([]uint16, error) {
	if !req.IsWrite {
		return h.registers(req.UnitId, readPDU(0x03, req.Addr, req.Quantity))
	}
	pdu := binary.BigEndian.AppendUint16([]byte{0x10}, req.Addr)
	pdu = binary.BigEndian.AppendUint16(pdu, req.Quantity)
	pdu = append(pdu, byte(2*len(req.Args)))
	for _, w := range req.Args {
		pdu = binary.BigEndian.AppendUint16(pdu, w)
	}
	return h.registers(req.UnitId, pdu)
}

// HandleInputRegisters answers FC04.
func (h tcpHandler) HandleInputRegisters(req *modbus.InputRegistersRequest) ([]uint16, error) {
	return h.registers(req.UnitId, readPDU(0x04, req.Addr, req.Quantity))
}

func readPDU(fc uint8, addr, qty uint16) []byte {
	pdu := binary.BigEndian.AppendUint16([]byte{fc}, addr)
	return binary.BigEndian.AppendUint16(pdu, qty)
}
