package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meterlink/meterlink/cmdline"
	"github.com/meterlink/meterlink/mqttsn"
	"github.com/meterlink/meterlink/topic"
	"github.com/meterlink/meterlink/wire"
)

// GatewayResult is what `meterlink bench gateway` measured.
type GatewayResult struct {
	Mode    string  `json:"mode"`
	Machine Machine `json:"machine"`
	// Throughput: QoS 1 PUBLISH → OnPublish → PUBACK through mqttsn.Client and the gateway on
	// UDP loopback, each client with one publish outstanding (as a terminal has).
	Clients        int     `json:"clients"`
	PayloadBytes   int     `json:"payload_bytes"` // a 16-channel record, radio encoding
	Published      int     `json:"published"`
	PublishesPerS  float64 `json:"publishes_per_s"`
	ReadingsPerS   float64 `json:"readings_per_s"` // publishes × 16
	PublishLatency Latency `json:"publish_latency"`
	// Memory: the gateway's heap per connected client (sessions idle after CONNECT/CONNACK).
	Memory    []GatewayMemory `json:"memory"`
	Resources Resources       `json:"resources"`
}

// GatewayMemory is the heap the gateway holds per connected client.
type GatewayMemory struct {
	Clients         int     `json:"clients"`
	Connected       int     `json:"connected"`
	HeapBytes       int64   `json:"heap_bytes"`       // HeapAlloc after − before, both after GC
	BytesPerClient  float64 `json:"bytes_per_client"` //
	GoroutinesAdded int     `json:"goroutines_added"` // goroutines left running per the sessions
}

func runGateway(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c common
	var clients int
	var duration time.Duration
	var memClients intList = []int{1000, 10000}
	fs := cmdline.NewFlagSet("bench gateway", "Measures the MQTT-SN gateway (package mqttsn) on UDP loopback: QoS 1 publishes/s from\n"+
		"-clients terminals' clients for -duration, then the gateway's heap per connected client for\n"+
		"each count in -memory (raw CONNECTs from that many UDP sockets, runtime.MemStats before and\n"+
		"after, both after a GC).", stderr)
	fs.IntVar(&clients, "clients", 100, "publishing clients for the throughput run (0: skip it)")
	fs.DurationVar(&duration, "duration", 5*time.Second, "length of the throughput run")
	fs.Var(&memClients, "memory", "comma-separated client counts for the memory runs (empty: skip them)")
	c.addFlags(fs)
	if done, err := parse(fs, args, getenv); done {
		return err
	}
	if clients < 0 || duration <= 0 {
		return errors.New("clients ≥ 0 and a positive duration, please")
	}
	res := GatewayResult{Mode: "gateway", Machine: machine(), Clients: clients}
	stopProfile, err := c.startProfile()
	if err != nil {
		return err
	}
	defer stopProfile()
	mt := startMeter()
	if clients > 0 {
		if err := gatewayThroughput(ctx, clients, duration, c.progress, &res, stderr); err != nil {
			return err
		}
	}
	for _, n := range memClients {
		m, err := gatewayMemory(ctx, n)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "bench gateway: %d clients: %.0f bytes each\n", n, m.BytesPerClient)
		res.Memory = append(res.Memory, m)
	}
	res.Resources = mt.stop()
	if err := stopProfile(); err != nil {
		return err
	}
	return c.printResult(stdout, res)
}

// benchRecord is a terminal's 16-channel reading record.
func benchRecord(terminal string, seq uint64) wire.Record {
	r := wire.Record{Terminal: wire.TerminalID(terminal), Seq: seq, Kind: wire.KindReading, TimeMS: time.Now().UnixMilli()}
	for ch := uint8(1); ch <= channelsPerRecord; ch++ {
		r.Channels = append(r.Channels, wire.ChannelReading{
			Channel: ch, Meter: wire.MeterID(fmt.Sprintf("%s-%02d", terminal, ch)), Pulses: 123456 + seq,
			EnergyWh: 1_000_000 + int64(seq), Constant: 3200, Multiplier: 1,
		})
	}
	return r
}

func startGateway(ctx context.Context, maxClients int, onPublish func(context.Context, string, string, []byte) error) (net.Addr, func(), error) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	if uc, ok := conn.(*net.UDPConn); ok {
		_ = uc.SetReadBuffer(4 << 20) // a burst of CONNECTs from 10,000 sockets
	}
	gw, err := mqttsn.NewGateway(conn, mqttsn.GatewayConfig{
		GatewayID: 1, MaxClients: maxClients, OnPublish: onPublish,
		Predefined: func(clientID string) map[uint16]string {
			out := map[uint16]string{}
			for name, id := range topic.RadioPredefined(clientID) {
				out[id] = name
			}
			return out
		},
	})
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	gctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gw.Run(gctx)
	}()
	return conn.LocalAddr(), func() {
		cancel()
		<-done
		conn.Close()
	}, nil
}

func gatewayThroughput(ctx context.Context, n int, d time.Duration, progress time.Duration, res *GatewayResult, stderr io.Writer) error {
	var received atomic.Int64
	addr, stop, err := startGateway(ctx, n+10, func(context.Context, string, string, []byte) error {
		received.Add(1)
		return nil
	})
	if err != nil {
		return err
	}
	defer stop()
	cls := make([]*mqttsn.Client, n)
	ids := make([]string, n)
	for i := range cls {
		ids[i] = fmt.Sprintf("T%05d", i+1)
		conn, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		c, err := mqttsn.NewClient(conn, addr, mqttsn.ClientConfig{ClientID: ids[i], Predefined: topic.RadioPredefined(ids[i]), RetryInterval: 2 * time.Second})
		if err != nil {
			conn.Close()
			return err
		}
		defer c.Close()
		if err := c.Connect(ctx); err != nil {
			return fmt.Errorf("client %s: %w", ids[i], err)
		}
		cls[i] = c
	}
	payload, err := wire.MarshalRadio(benchRecord("T00001", 1))
	if err != nil {
		return err
	}
	res.PayloadBytes = len(payload)
	stopProgress := ticker(ctx, progress, func(el time.Duration) {
		fmt.Fprintf(stderr, "bench gateway: %v %d publishes\n", el, received.Load())
	})
	defer stopProgress()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var lat []time.Duration
	errc := make(chan error, n)
	start := time.Now()
	end := start.Add(d)
	var published atomic.Int64
	for i, c := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := topic.RadioReadings(ids[i])
			var mine []time.Duration
			for time.Now().Before(end) {
				t0 := time.Now()
				if err := c.Publish(ctx, t, 1, payload); err != nil {
					errc <- err
					return
				}
				mine = append(mine, time.Since(t0))
				published.Add(1)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	close(errc)
	if err := <-errc; err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	res.Published = int(published.Load())
	res.PublishesPerS = round1(float64(res.Published) / el.Seconds())
	res.ReadingsPerS = round1(res.PublishesPerS * channelsPerRecord)
	res.PublishLatency = latencyOf(lat)
	return nil
}

// gatewayMemory connects n clients with raw CONNECT packets from n UDP sockets and measures
// the gateway's heap growth. The sockets are open before the first measurement, so only the
// gateway's sessions count.
func gatewayMemory(ctx context.Context, n int) (GatewayMemory, error) {
	addr, stop, err := startGateway(ctx, n+10, nil)
	if err != nil {
		return GatewayMemory{}, err
	}
	defer stop()
	socks := make([]net.PacketConn, n)
	defer func() {
		for _, s := range socks {
			if s != nil {
				s.Close()
			}
		}
	}()
	pkts := make([][]byte, n)
	for i := range socks {
		if socks[i], err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			return GatewayMemory{}, fmt.Errorf("socket %d of %d: %w", i+1, n, err)
		}
		if pkts[i], err = mqttsn.Append(nil, &mqttsn.Connect{CleanSession: true, Duration: 3600, ClientID: fmt.Sprintf("T%05d", i+1)}); err != nil {
			return GatewayMemory{}, err
		}
	}
	before, g0 := heapAfterGC()
	connected := 0
	buf := make([]byte, 64)
	// In windows of 256, so that the gateway's socket buffer never overflows.
	for lo := 0; lo < n; lo += 256 {
		hi := min(lo+256, n)
		for i := lo; i < hi; i++ {
			if _, err := socks[i].WriteTo(pkts[i], addr); err != nil {
				return GatewayMemory{}, err
			}
		}
		for i := lo; i < hi; i++ {
			_ = socks[i].SetReadDeadline(time.Now().Add(5 * time.Second))
			k, _, err := socks[i].ReadFrom(buf)
			if err != nil {
				continue
			}
			if p, err := mqttsn.Decode(buf[:k]); err == nil {
				if ca, ok := p.(*mqttsn.Connack); ok && ca.ReturnCode == mqttsn.Accepted {
					connected++
				}
			}
		}
	}
	after, g1 := heapAfterGC()
	m := GatewayMemory{Clients: n, Connected: connected, HeapBytes: int64(after) - int64(before), GoroutinesAdded: g1 - g0}
	if connected > 0 {
		m.BytesPerClient = round1(float64(m.HeapBytes) / float64(connected))
	}
	return m, nil
}

func heapAfterGC() (uint64, int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, runtime.NumGoroutine()
}
