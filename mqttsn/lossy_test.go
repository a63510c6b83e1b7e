package mqttsn

import (
	"context"
	"fmt"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/meterlink/meterlink/mqttsn/radiosim"
)

// TestLossyLinkExactlyOnce runs 20 clients publishing 50 QoS 1 messages
// each through a link that loses 20 % of datagrams in each direction,
// duplicates and reorders them: every payload reaches OnPublish exactly
// once.
func TestLossyLinkExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("lossy soak skipped in -short mode")
	}
	const (
		clients  = 20
		messages = 50
	)
	link := radiosim.Config{Loss: 0.2, Duplicate: 0.1, Reorder: 0.1, Jitter: 2 * time.Millisecond, ReorderDelay: 15 * time.Millisecond}
	var (
		mu   sync.Mutex
		seen = make(map[string]int)
	)
	gcfg := GatewayConfig{
		MaxRetries: 20,
		Predefined: func(id string) map[uint16]string { return map[uint16]string{1: "ml/rd/" + id} },
		OnPublish: func(_ context.Context, clientID, topic string, payload []byte) error {
			mu.Lock()
			defer mu.Unlock()
			seen[clientID+" "+topic+" "+string(payload)]++
			return nil
		},
	}
	var seed uint64
	var simsMu sync.Mutex
	var sims []*radiosim.Conn
	wrap := func(pc net.PacketConn) net.PacketConn {
		simsMu.Lock()
		defer simsMu.Unlock()
		seed++
		cfg := link
		cfg.Seed = seed
		sim := radiosim.New(pc, cfg)
		sims = append(sims, sim)
		return sim
	}
	_, gw, _ := startGateway(t, gcfg, wrap)

	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		id := fmt.Sprintf("mt-%04d", i)
		c := newTestClient(t, gw, ClientConfig{ClientID: id, MaxRetries: 20, CleanSession: true,
			Predefined: map[string]uint16{"ml/rd/" + id: 1}}, wrap)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := c.Connect(ctx); err != nil {
				errs <- fmt.Errorf("%s: connect: %w", id, err)
				return
			}
			for m := range messages {
				topic := "ml/ev/" + id // registered
				if m%2 == 0 {
					topic = "ml/rd/" + id // predefined
				}
				if err := c.Publish(ctx, topic, 1, fmt.Appendf(nil, "%d", m)); err != nil {
					errs <- fmt.Errorf("%s: publish %d: %w", id, m, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d clients x %d messages in %v", clients, messages, time.Since(start))

	mu.Lock()
	defer mu.Unlock()
	var dups []string
	for k, n := range seen {
		if n != 1 {
			dups = append(dups, fmt.Sprintf("%s x%d", k, n))
		}
	}
	sort.Strings(dups)
	if diff := cmp.Diff([]string(nil), dups); diff != "" {
		t.Errorf("payloads not delivered exactly once (-want +got):\n%s", diff)
	}
	if len(seen) != clients*messages {
		t.Errorf("%d distinct payloads delivered, want %d", len(seen), clients*messages)
	}
	var total radiosim.Stats
	simsMu.Lock()
	for _, s := range sims {
		st := s.Stats()
		total.Written += st.Written
		total.Dropped += st.Dropped
		total.Duplicated += st.Duplicated
		total.Reordered += st.Reordered
	}
	simsMu.Unlock()
	t.Logf("link: %+v", total)
	if total.Dropped == 0 || total.Duplicated == 0 || total.Reordered == 0 {
		t.Errorf("link stats %+v: faults not exercised", total)
	}
}
