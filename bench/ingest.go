package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meterlink/meterlink/bus"
	"github.com/meterlink/meterlink/cmdline"
	"github.com/meterlink/meterlink/demo"
	"github.com/meterlink/meterlink/lab"
	"github.com/meterlink/meterlink/topic"
	"github.com/meterlink/meterlink/wire"
)

// IngestResult is what `meterlink bench ingest` measured.
type IngestResult struct {
	Mode      string  `json:"mode"`
	Machine   Machine `json:"machine"`
	Meters    int     `json:"meters"`    // provisioned in ops (terminals × 16)
	Terminals int     `json:"terminals"` //
	Batch     int     `json:"batch"`     // records per handheld batch
	Window    int     `json:"window"`    // batches outstanding
	Records   int     `json:"records"`   // acknowledged by ops
	// RecordsPerS: the upstream half of the chain, the bench acting as the handheld: batches
	// on the PDA listener → pda-bridge (sealed, SECLINK) → broker → ops (HandleUp, one store
	// transaction with fsync per batch) → sealed ack back → the handheld's ack.
	RecordsPerS  float64 `json:"records_per_s"`
	ReadingsPerS float64 `json:"readings_per_s"`
	BatchLatency Latency `json:"batch_latency"` // publish → ack
	// Queries over HTTP to ops' API on the store just filled, one at a time.
	Queries   []QueryResult `json:"queries,omitempty"`
	Resources Resources     `json:"resources"`
}

// QueryResult is the latency of one API query, asked many times with varying ids.
type QueryResult struct {
	Query   string  `json:"query"`
	Latency Latency `json:"latency"`
}

func runIngest(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c common
	var meters, batch, window, records, queries int
	fs := cmdline.NewFlagSet("bench ingest", "Runs broker, ops (with -meters meters provisioned) and pda-bridge from lab, acts as the\n"+
		"handheld on the PDA listener and sends -records 16-channel records in batches of -batch with\n"+
		"-window batches awaiting ops' acknowledgement; then asks ops' readings API -queries times per\n"+
		"query kind.", stderr)
	fs.IntVar(&meters, "meters", 16000, "meters to provision, 16 per terminal (≤ 159,984)")
	fs.IntVar(&batch, "batch", 10, "records per batch (a 16-channel record is ~1.7 KB of JSON; the listeners take 64 KiB packets)")
	fs.IntVar(&window, "window", 4, "batches outstanding")
	fs.IntVar(&records, "records", 20000, "records to send")
	fs.IntVar(&queries, "queries", 1000, "queries per kind afterwards (0: none)")
	c.addFlags(fs)
	if done, err := parse(fs, args, getenv); done {
		return err
	}
	terminals := (meters + channelsPerRecord - 1) / channelsPerRecord
	if terminals < 1 || terminals > 9999 || batch < 1 || batch > wire.MaxBatchRecords || records < batch || queries < 0 || window < 1 {
		return fmt.Errorf("want 1 ≤ meters ≤ 159984, 1 ≤ batch ≤ %d, records ≥ batch, window ≥ 1, queries ≥ 0", wire.MaxBatchRecords)
	}
	log, err := c.logger(stderr)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "meterlink-bench-ingest-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	const hhID = "H01"
	hhKey := randHex()
	lc := lab.DefaultConfig()
	lc.MQTTAddr, lc.WSAddr, lc.HTTPAddr, lc.PDAAddr, lc.MQTTSNAddr = "127.0.0.1:0", "", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	lc.DataDir, lc.Terminals, lc.Districts, lc.HandheldID = dir, terminals, max(1, terminals/50), hhID
	lc.Parts = []string{lab.PartBroker, lab.PartOps, lab.PartPDA}
	t0 := time.Now()
	l, err := lab.New(ctx, lc, func(k string) string {
		if k == "METERLINK_HANDHELD_KEY" {
			return hhKey
		}
		return getenv(k)
	}, log)
	if err != nil {
		return err
	}
	lctx, stopLab := context.WithCancel(ctx)
	labDone := make(chan error, 1)
	go func() { labDone <- l.Run(lctx) }()
	defer func() {
		stopLab()
		<-labDone
	}()
	lcfg := l.Config()
	res := IngestResult{Mode: "ingest", Machine: machine(), Terminals: terminals, Meters: terminals * channelsPerRecord, Batch: batch, Window: window}
	fmt.Fprintf(stderr, "bench ingest: %d meters on %d terminals provisioned in %v\n", res.Meters, terminals, time.Since(t0).Round(time.Millisecond))

	// The bench is the handheld: batches up, acknowledgements down.
	var (
		mu      sync.Mutex
		sentAt  = map[string]time.Time{}
		lat     []time.Duration
		acked   atomic.Int64
		slots   = make(chan struct{}, window)
		allDone = make(chan struct{})
	)
	nBatches := (records + batch - 1) / batch
	hh, err := bus.New(bus.Config{URL: "tcp://" + lcfg.PDAAddr, ClientID: hhID, Username: hhID,
		Password: func() string { return hhKey }, CleanSession: true, Logger: log})
	if err != nil {
		return err
	}
	defer hh.Close()
	if err := retry(ctx, 10*time.Second, func() error { return hh.Connect(ctx) }); err != nil {
		return fmt.Errorf("handheld: %w", err)
	}
	if err := hh.Subscribe(ctx, topic.HHAck(hhID), 1, func(_ context.Context, m bus.Message) error {
		var a wire.Ack
		if err := json.Unmarshal(m.Payload, &a); err != nil {
			return nil
		}
		mu.Lock()
		t, ok := sentAt[a.ID]
		delete(sentAt, a.ID)
		if ok {
			lat = append(lat, time.Since(t))
		}
		n := len(lat)
		mu.Unlock()
		if ok {
			acked.Add(int64(len(a.Records)))
			<-slots
			if n == nBatches {
				close(allDone)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	// Batches are encoded before the clock starts: the field's work, not ops'.
	var msgs []wire.Batch
	seqs := make([]uint64, terminals)
	for n := 0; n < records; n += batch {
		b := wire.Batch{V: wire.Version, ID: fmt.Sprintf("%s-bench-%d", hhID, n), Handheld: hhID}
		for i := n; i < min(n+batch, records); i++ {
			t := i % terminals
			seqs[t]++
			b.Records = append(b.Records, benchRecord(demo.TerminalID(t+1), seqs[t]))
		}
		msgs = append(msgs, b)
	}
	payloads := make([][]byte, len(msgs))
	for i, b := range msgs {
		if payloads[i], err = json.Marshal(b); err != nil {
			return err
		}
	}

	stopProfile, err := c.startProfile()
	if err != nil {
		return err
	}
	defer stopProfile()
	mt := startMeter()
	stopProgress := ticker(ctx, c.progress, func(el time.Duration) {
		fmt.Fprintf(stderr, "bench ingest: %v %d records acknowledged\n", el, acked.Load())
	})
	start := time.Now()
	for i, p := range payloads {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			stopProgress()
			return ctx.Err()
		}
		mu.Lock()
		sentAt[msgs[i].ID] = time.Now()
		mu.Unlock()
		if err := hh.Publish(ctx, topic.HHRecords(hhID), 1, false, p); err != nil {
			stopProgress()
			return err
		}
	}
	select {
	case <-allDone:
	case <-time.After(2 * time.Minute):
		stopProgress()
		return fmt.Errorf("only %d of %d records acknowledged within 2m after the last batch", acked.Load(), records)
	case <-ctx.Done():
		stopProgress()
		return ctx.Err()
	}
	el := time.Since(start)
	stopProgress()
	res.Records = int(acked.Load())
	res.RecordsPerS = round1(float64(res.Records) / el.Seconds())
	res.ReadingsPerS = round1(res.RecordsPerS * channelsPerRecord)
	mu.Lock()
	res.BatchLatency = latencyOf(lat)
	mu.Unlock()

	if queries > 0 {
		terminalOf := func(i int) string { return demo.TerminalID(i%terminals + 1) }
		kinds := []struct {
			name string
			url  func(i int) string
		}{
			{"readings/latest?meter=M", func(i int) string {
				return "/api/v1/readings/latest?meter=" + demo.MeterID(terminalOf(i), i%channelsPerRecord+1)
			}},
			{"readings?meter=M&limit=100", func(i int) string {
				return "/api/v1/readings?limit=100&meter=" + demo.MeterID(terminalOf(i), i%channelsPerRecord+1)
			}},
			{"readings?terminal=T&limit=100", func(i int) string { return "/api/v1/readings?limit=100&terminal=" + terminalOf(i) }},
			{"readings?district=D&limit=100", func(i int) string {
				return fmt.Sprintf("/api/v1/readings?limit=100&district=D%02d", i%lc.Districts+1)
			}},
		}
		for _, k := range kinds {
			var ql []time.Duration
			for i := range queries {
				u := "http://" + lcfg.HTTPAddr + k.url(i*7919)
				q0 := time.Now()
				resp, err := http.Get(u)
				if err != nil {
					return err
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ql = append(ql, time.Since(q0))
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("GET %s: %s", u, resp.Status)
				}
			}
			res.Queries = append(res.Queries, QueryResult{Query: k.name, Latency: latencyOf(ql)})
		}
	}
	res.Resources = mt.stop()
	if err := stopProfile(); err != nil {
		return err
	}
	return c.printResult(stdout, res)
}

// intList is a flag of comma-separated whole numbers.
type intList []int

func (l *intList) String() string {
	s := make([]string, len(*l))
	for i, n := range *l {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func (l *intList) Set(v string) error {
	*l = nil
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return errors.New("want whole numbers ≥ 1, comma-separated")
		}
		*l = append(*l, n)
	}
	return nil
}
