package brokertest_test

import (
	"net"
	"strings"
	"testing"

	"github.com/meterlink/meterlink/broker"
	"github.com/meterlink/meterlink/broker/brokertest"
)

func TestStartRestart(t *testing.T) {
	b := brokertest.Start(t, broker.Config{WSAddr: "yes"})
	url, ws := b.URL(), b.WSURL()
	if !strings.HasPrefix(url, "tcp://127.0.0.1:") || strings.HasSuffix(url, ":0") {
		t.Fatalf("URL() = %q", url)
	}
	if !strings.HasPrefix(ws, "ws://127.0.0.1:") || !strings.HasSuffix(ws, "/mqtt") {
		t.Fatalf("WSURL() = %q", ws)
	}
	b.Restart(t)
	if b.URL() != url || b.WSURL() != ws {
		t.Fatalf("after Restart: %q %q, want %q %q", b.URL(), b.WSURL(), url, ws)
	}
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatalf("dial after Restart: %v", err)
	}
	_ = c.Close()

	if plain := brokertest.Start(t, broker.Config{}); plain.WSURL() != "" {
		t.Errorf("WSURL() = %q without WebSocket, want empty", plain.WSURL())
	}
}
