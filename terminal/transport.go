package terminal

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"

	"github.com/meterlink/meterlink/mqttsn"
)

// radioMTU is the largest PUBLISH payload a serial radio frame carries: a frame holds one
// MQTT-SN message of at most 255 bytes, and PUBLISH takes 7 of them.
const radioMTU = mqttsn.MaxFrameMsg - 7

// gatewayTarget is where a terminal's MQTT-SN gateway is: a UDP address, or a serial radio
// device with the node addresses of the terminal and of the gateway.
type gatewayTarget struct {
	udp     *net.UDPAddr
	device  string
	node    mqttsn.NodeAddr // this terminal on the radio
	gwNode  mqttsn.NodeAddr // the handheld on the radio
	payload int             // largest record payload the transport carries; 0 = no limit
}

// parseGateway reads udp://host:port or serial:///dev/ttyX?node=2&gateway=1 (node addresses
// in decimal or 0x hex; gateway defaults to 1).
func parseGateway(s string) (gatewayTarget, error) {
	u, err := url.Parse(s)
	if err != nil {
		return gatewayTarget{}, fmt.Errorf("gateway %q: want udp://host:port or serial:///dev/tty…?node=N", s)
	}
	switch u.Scheme {
	case "udp":
		if u.Host == "" || u.Port() == "" {
			return gatewayTarget{}, fmt.Errorf("gateway %q: want udp://host:port", s)
		}
		a, err := net.ResolveUDPAddr("udp", u.Host)
		if err != nil {
			return gatewayTarget{}, fmt.Errorf("gateway %q: %w", s, err)
		}
		return gatewayTarget{udp: a}, nil
	case "serial":
		if u.Path == "" {
			return gatewayTarget{}, fmt.Errorf("gateway %q: want serial:///dev/tty…?node=N", s)
		}
		node, err1 := parseNode(u.Query().Get("node"), 0)
		gw, err2 := parseNode(u.Query().Get("gateway"), 1)
		if err1 != nil || err2 != nil || node == 0 || node == mqttsn.BroadcastNode || node == gw {
			return gatewayTarget{}, fmt.Errorf("gateway %q: node must be a radio address 1..0xfffe other than the gateway's", s)
		}
		return gatewayTarget{device: u.Path, node: node, gwNode: gw, payload: radioMTU}, nil
	}
	return gatewayTarget{}, fmt.Errorf("gateway %q: want udp://host:port or serial:///dev/tty…?node=N", s)
}

func parseNode(s string, def mqttsn.NodeAddr) (mqttsn.NodeAddr, error) {
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseUint(s, 0, 16)
	return mqttsn.NodeAddr(v), err
}

// dial opens the transport: a fresh UDP socket, or the serial device as a radio node. Real
// serial ports need their line settings (baud, parity) made beforehand, e.g. with stty; a
// pseudo-terminal ignores them.
func (g gatewayTarget) dial() (net.PacketConn, net.Addr, error) {
	if g.udp != nil {
		c, err := net.ListenUDP("udp", nil)
		if err != nil {
			return nil, nil, fmt.Errorf("open radio socket: %w", err)
		}
		return c, g.udp, nil
	}
	f, err := os.OpenFile(g.device, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open radio device: %w", err)
	}
	return mqttsn.NewSerialConn(f, g.node), g.gwNode, nil
}

func (g gatewayTarget) String() string {
	if g.udp != nil {
		return g.udp.String()
	}
	return fmt.Sprintf("%s node %s → %s", g.device, g.node, g.gwNode)
}
