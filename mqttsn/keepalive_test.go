package mqttsn

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestKeepAliveToleranceSynctest checks the keep-alive at production
// durations on a fake clock: the client pings within each period, and a
// silent client is lost after keep-alive +10 % (over a minute) or +50 %
// (up to a minute), not before.
func TestKeepAliveToleranceSynctest(t *testing.T) {
	tests := []struct {
		name      string
		keepAlive time.Duration
		lostAfter time.Duration
	}{
		{"default 60s, +50%", 60 * time.Second, 90 * time.Second},
		{"30s, +50%", 30 * time.Second, 45 * time.Second},
		{"10min, +10%", 10 * time.Minute, 11 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := newMemNet()
				var (
					mu       sync.Mutex
					lastPing time.Time
					pings    int
					willAt   time.Time
				)
				n.sent = func(from, to memAddr, b []byte) {
					if p, err := Decode(b); err == nil && from == "c1" {
						if _, ok := p.(*Pingreq); ok {
							mu.Lock()
							lastPing, pings = time.Now(), pings+1
							mu.Unlock()
						}
					}
				}
				g, err := NewGateway(n.listen("gw"), GatewayConfig{
					Logger: testLogger(t),
					WillPublish: func(string, string, []byte) {
						mu.Lock()
						willAt = time.Now()
						mu.Unlock()
					},
				})
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(t.Context())
				runDone := make(chan error, 1)
				go func() { runDone <- g.Run(ctx) }()

				c, err := NewClient(n.listen("c1"), memAddr("gw"), ClientConfig{
					ClientID: "c1", KeepAlive: tt.keepAlive, Logger: testLogger(t),
					Will: &Will{Topic: "ml/will", Message: []byte("x")},
				})
				if err != nil {
					t.Fatal(err)
				}
				if err := c.Connect(ctx); err != nil {
					t.Fatal(err)
				}
				time.Sleep(5 * tt.keepAlive)
				synctest.Wait()
				mu.Lock()
				if pings < 4 || !willAt.IsZero() {
					t.Errorf("after 5 keep-alive periods: %d pings, will at %v; want >= 4 pings and no will", pings, willAt)
				}
				mu.Unlock()
				if err := wantState(g, "c1", StateActive); err != nil {
					t.Error(err)
				}

				c.Close() // silent from now on
				for range 2 * tt.lostAfter / time.Second {
					time.Sleep(time.Second)
					synctest.Wait()
					mu.Lock()
					done := !willAt.IsZero()
					mu.Unlock()
					if done {
						break
					}
				}
				mu.Lock()
				silent := willAt.Sub(lastPing)
				mu.Unlock()
				if silent <= tt.lostAfter || silent > tt.lostAfter+supervisePeriod+time.Second {
					t.Errorf("lost after %v of silence, want just over %v", silent, tt.lostAfter)
				}
				cancel()
				if err := <-runDone; err != nil {
					t.Errorf("Run() = %v", err)
				}
			})
		})
	}
}
