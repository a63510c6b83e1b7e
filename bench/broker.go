package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meterlink/meterlink/broker"
	"github.com/meterlink/meterlink/bus"
	"github.com/meterlink/meterlink/cmdline"
	"github.com/meterlink/meterlink/topic"
)

type brokerLoad struct {
	Publishers  int `json:"publishers"`
	Subscribers int `json:"subscribers"`
	QoS         int `json:"qos"`
	Messages    int `json:"messages"` // published in all
	Size        int `json:"size"`     // payload bytes
	Inflight    int `json:"inflight"` // publishes outstanding per publisher
	Timeout     time.Duration
}

// BrokerRun is one load run against one broker.
type BrokerRun struct {
	Broker        string  `json:"broker"`
	Published     int     `json:"published"`
	Delivered     int     `json:"delivered"` // over all subscribers
	Expected      int     `json:"expected"`  // published × subscribers
	Seconds       float64 `json:"seconds"`
	PublishPerS   float64 `json:"publish_per_s"`
	DeliveredPerS float64 `json:"delivered_per_s"`
	Latency       Latency `json:"latency"` // publish call → subscriber handler
}

// BrokerResult is what `meterlink bench broker` measured.
type BrokerResult struct {
	Mode    string      `json:"mode"`
	Machine Machine     `json:"machine"`
	Load    brokerLoad  `json:"load"`
	Runs    []BrokerRun `json:"runs"`
	// Ratio is the embedded broker's median delivered/s over mosquitto's (both compared).
	Ratio     float64   `json:"ratio_embedded_to_mosquitto,omitempty"`
	Resources Resources `json:"resources"`
}

func runBroker(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	load := brokerLoad{Publishers: 4, Subscribers: 1, QoS: 1, Messages: 20000, Size: 256, Inflight: 16, Timeout: time.Minute}
	var c common
	var addr, user, pass, mosq string
	var rounds int
	fs := cmdline.NewFlagSet("bench broker", "Publishes -messages messages of -size bytes from -publishers clients (each with up to\n"+
		"-inflight publishes outstanding) to -subscribers clients that each receive every message,\n"+
		"all through bus (paho). Topics are the PDA uplink's: publisher i sends on\n"+
		"meterlink/v1/pda/B<i>/up, subscribers take meterlink/v1/pda/+/up.\n\n"+
		"With -addr it loads that broker. Without, it starts the embedded broker (in memory, the\n"+
		"production ACL) and, when mosquitto is on PATH, mosquitto on a free loopback port, runs the\n"+
		"load on each in turn -rounds times and reports the ratio embedded/mosquitto.", stderr)
	fs.StringVar(&addr, "addr", "", "HOST:PORT of an MQTT broker to load (empty: embedded vs mosquitto)")
	fs.StringVar(&user, "username", "", "username for -addr (publishers use their client id when empty)")
	fs.StringVar(&pass, "password", "", "password for -addr")
	fs.StringVar(&mosq, "mosquitto", "mosquitto", "mosquitto binary for the comparison (empty: skip it)")
	fs.IntVar(&rounds, "rounds", 3, "runs per broker, alternating; the median counts")
	fs.IntVar(&load.Publishers, "publishers", load.Publishers, "publishing clients")
	fs.IntVar(&load.Subscribers, "subscribers", load.Subscribers, "subscribing clients, each receiving every message")
	fs.IntVar(&load.QoS, "qos", load.QoS, "QoS of publishes and subscriptions: 0 or 1")
	fs.IntVar(&load.Messages, "messages", load.Messages, "messages published in all")
	fs.IntVar(&load.Size, "size", load.Size, "payload bytes (at least 8: a timestamp)")
	fs.IntVar(&load.Inflight, "inflight", load.Inflight, "publishes outstanding per publisher")
	fs.DurationVar(&load.Timeout, "timeout", load.Timeout, "give up a run after this")
	c.addFlags(fs)
	if done, err := parse(fs, args, getenv); done {
		return err
	}
	if load.QoS < 0 || load.QoS > 1 || load.Publishers < 1 || load.Subscribers < 0 || load.Messages < 1 || load.Size < 8 || load.Inflight < 1 || rounds < 1 {
		return errors.New("want qos 0..1, publishers ≥ 1, subscribers ≥ 0, messages ≥ 1, size ≥ 8, inflight ≥ 1, rounds ≥ 1")
	}
	log, err := c.logger(stderr)
	if err != nil {
		return err
	}
	res := BrokerResult{Mode: "broker", Machine: machine(), Load: load}
	stopProfile, err := c.startProfile()
	if err != nil {
		return err
	}
	mt := startMeter()
	if addr != "" {
		r, err := brokerRun(ctx, addr, addr, func(string) (string, string) { return user, pass }, load, "", log)
		if err != nil {
			stopProfile()
			return err
		}
		res.Runs = append(res.Runs, r)
	} else {
		res.Runs, res.Ratio, err = compareBrokers(ctx, load, mosq, rounds, log, stderr)
		if err != nil {
			stopProfile()
			return err
		}
	}
	res.Resources = mt.stop()
	if err := stopProfile(); err != nil {
		return err
	}
	return c.printResult(stdout, res)
}

// Accounts of the embedded broker for the load: publishers are PDAs (their own uplink topic),
// subscribers are ops (every PDA's uplink).
const benchOpsUser, benchPass = "bench-ops", "bench-password"

// subPrefix starts every subscriber's client id.
const subPrefix = "bench-sub-"

func compareBrokers(ctx context.Context, load brokerLoad, mosq string, rounds int, log *slog.Logger, stderr io.Writer) ([]BrokerRun, float64, error) {
	bc := broker.DefaultConfig()
	bc.TCPAddr = "127.0.0.1:0"
	bc.Accounts = []broker.Account{{Username: benchOpsUser, Password: []byte(benchPass), Role: topic.RoleOps}}
	bc.Lookup = func(u string) (broker.Account, bool) {
		return broker.Account{Username: u, Password: []byte(benchPass), Role: topic.RolePDA, ID: u}, topic.ValidID(u)
	}
	b, err := broker.New(bc, log.With("part", "broker"))
	if err != nil {
		return nil, 0, err
	}
	bctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Run(bctx) }()
	defer func() {
		stop()
		<-done
	}()
	targets := []struct{ name, addr string }{{"embedded", b.Addr()}}
	if mosq != "" {
		if path, err := exec.LookPath(mosq); err != nil {
			fmt.Fprintf(stderr, "bench broker: %s not found, embedded broker only\n", mosq)
		} else {
			maddr, stopM, err := startMosquitto(ctx, path)
			if err != nil {
				return nil, 0, err
			}
			defer stopM()
			targets = append(targets, struct{ name, addr string }{"mosquitto", maddr})
		}
	}
	creds := func(clientID string) (string, string) {
		if strings.HasPrefix(clientID, subPrefix) {
			return benchOpsUser, benchPass
		}
		return clientID, benchPass
	}
	var runs []BrokerRun
	per := map[string][]float64{}
	for round := 1; round <= rounds; round++ {
		for _, t := range targets {
			r, err := brokerRun(ctx, t.name, t.addr, creds, load, fmt.Sprintf("r%d", round), log)
			if err != nil {
				return nil, 0, fmt.Errorf("%s, round %d: %w", t.name, round, err)
			}
			fmt.Fprintf(stderr, "bench broker: round %d %s: %.0f delivered/s, p99 %.1f ms\n", round, t.name, r.DeliveredPerS, r.Latency.P99)
			runs = append(runs, r)
			per[t.name] = append(per[t.name], r.DeliveredPerS)
		}
	}
	var ratio float64
	if m := median(per["mosquitto"]); m > 0 {
		ratio = round3(median(per["embedded"]) / m)
	}
	return runs, ratio, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// startMosquitto runs mosquitto on a free loopback port with a temporary configuration.
func startMosquitto(ctx context.Context, path string) (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir, err := os.MkdirTemp("", "meterlink-mosquitto-*")
	if err != nil {
		return "", nil, err
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	// max_queued_messages 0: no limit, like the embedded broker's in-flight store for this load.
	body := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nmax_inflight_messages 0\nlog_dest none\n", port)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	cmd := exec.CommandContext(ctx, path, "-c", conf)
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("start mosquitto: %w", err)
	}
	stop = func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		os.RemoveAll(dir)
	}
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	if err := retry(ctx, 5*time.Second, func() error {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		stop()
		return "", nil, fmt.Errorf("mosquitto did not listen on %s: %w", addr, err)
	}
	return addr, stop, nil
}

// brokerRun runs the load once against addr. Subscribers connect and subscribe first; the run
// ends when every subscriber has every message or load.Timeout passes.
func brokerRun(ctx context.Context, name, addr string, creds func(clientID string) (user, pass string), load brokerLoad, tag string, log *slog.Logger) (BrokerRun, error) {
	ctx, cancel := context.WithTimeout(ctx, load.Timeout)
	defer cancel()
	log = log.With("broker", name)
	newClient := func(id string) (*bus.Client, error) {
		u, p := creds(id)
		cfg := bus.Config{URL: "tcp://" + addr, ClientID: id, Username: u, CleanSession: true, Logger: log}
		if p != "" {
			cfg.Password = func() string { return p }
		}
		return bus.New(cfg)
	}
	var (
		delivered atomic.Int64
		latMu     sync.Mutex
		lat       = make([]time.Duration, 0, load.Messages*max(1, load.Subscribers))
		allIn     = make(chan struct{})
		allOnce   sync.Once
	)
	expected := int64(load.Messages * load.Subscribers)
	var clients []*bus.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for i := range load.Subscribers {
		c, err := newClient(fmt.Sprintf("%s%s-%d", subPrefix, tag, i))
		if err != nil {
			return BrokerRun{}, err
		}
		clients = append(clients, c)
		if err := c.Connect(ctx); err != nil {
			return BrokerRun{}, fmt.Errorf("subscriber: %w", err)
		}
		// Subscribed after Connect, Subscribe waits for the SUBACK.
		if err := c.Subscribe(ctx, "meterlink/v1/pda/+/up", byte(load.QoS), func(_ context.Context, m bus.Message) error {
			if len(m.Payload) >= 8 {
				d := time.Duration(time.Now().UnixNano() - int64(binary.BigEndian.Uint64(m.Payload)))
				latMu.Lock()
				lat = append(lat, d)
				latMu.Unlock()
			}
			if delivered.Add(1) == expected {
				allOnce.Do(func() { close(allIn) })
			}
			return nil
		}); err != nil {
			return BrokerRun{}, err
		}
	}
	pubs := make([]*bus.Client, load.Publishers)
	for i := range pubs {
		c, err := newClient(fmt.Sprintf("B%s%03d", tag, i))
		if err != nil {
			return BrokerRun{}, err
		}
		clients = append(clients, c)
		if err := c.Connect(ctx); err != nil {
			return BrokerRun{}, fmt.Errorf("publisher: %w", err)
		}
		pubs[i] = c
	}
	var next atomic.Int64
	var published atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, load.Publishers*load.Inflight)
	start := time.Now()
	for i, p := range pubs {
		t := topic.PDAUp(fmt.Sprintf("B%s%03d", tag, i))
		for range load.Inflight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				payload := make([]byte, load.Size)
				for next.Add(1) <= int64(load.Messages) {
					binary.BigEndian.PutUint64(payload, uint64(time.Now().UnixNano()))
					if err := p.Publish(ctx, t, byte(load.QoS), false, payload); err != nil {
						errc <- err
						return
					}
					published.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	pubDone := time.Since(start)
	close(errc)
	if err := <-errc; err != nil {
		return BrokerRun{}, fmt.Errorf("publish: %w", err)
	}
	if expected > 0 {
		select {
		case <-allIn:
		case <-ctx.Done():
		}
	}
	el := time.Since(start)
	if expected == 0 {
		el = pubDone
	}
	latMu.Lock()
	defer latMu.Unlock()
	return BrokerRun{
		Broker: name, Published: int(published.Load()), Delivered: int(delivered.Load()), Expected: int(expected),
		Seconds: round3(el.Seconds()), PublishPerS: round1(float64(published.Load()) / pubDone.Seconds()),
		DeliveredPerS: round1(float64(delivered.Load()) / el.Seconds()), Latency: latencyOf(lat),
	}, nil
}
