package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meterlink/meterlink/bus"
	"github.com/meterlink/meterlink/cmdline"
	"github.com/meterlink/meterlink/terminal"
	"github.com/meterlink/meterlink/topic"
)

// channelsPerRecord is what one terminal record carries: the demo terminals have 16 channels.
const channelsPerRecord = 16

type e2eConfig struct {
	Terminals   int           `json:"terminals"`
	Districts   int           `json:"districts"`
	Rate        float64       `json:"rate_records_per_s"` // records/s over all terminals
	Duration    time.Duration `json:"-"`
	Drain       time.Duration `json:"-"`
	ResendAfter time.Duration `json:"-"`
	DataDir     string        `json:"data_dir"`
	Knobs       chainKnobs    `json:"knobs"` // set: composed by bench, not lab
	DurationS   float64       `json:"duration_s"`
}

// E2EResult is what `meterlink bench e2e` measured.
type E2EResult struct {
	Mode    string    `json:"mode"`
	Machine Machine   `json:"machine"`
	Config  e2eConfig `json:"config"`

	RecordsMade  int `json:"records_made"`  // by the driver during the run (warm-up excluded)
	ReadingsMade int `json:"readings_made"` // RecordsMade × channels
	// OfferedReadingsPerS is what the driver achieved (a slow Collect holds it back).
	OfferedReadingsPerS float64 `json:"offered_readings_per_s"`
	// StoredReadingsPerS: readings made during the run / (run + time to drain every outbox).
	StoredReadingsPerS float64 `json:"stored_readings_per_s"`
	// DeliveredReadingsPerS: readings in ops' reading events received by a viewer, over the
	// same span.
	DeliveredReadingsPerS float64 `json:"delivered_readings_per_s"`
	Drained               bool    `json:"drained"`       // every outbox emptied within -drain
	DrainSeconds          float64 `json:"drain_seconds"` // after the driver stopped
	// Latency: terminal Collect → reading event from ops (stored) at the viewer.
	Latency Latency `json:"latency"`

	LostRecords       int `json:"lost_records"`       // made, not in ops' API
	LostReadings      int `json:"lost_readings"`      // channels of made records missing in ops' API
	DuplicateReadings int `json:"duplicate_readings"` // the same (terminal, seq, channel) twice in ops' API
	UnknownReadings   int `json:"unknown_readings"`   // in ops' API, never made by the driver
	// Redelivered counts records ops received again and ignored (its duplicate metric): the
	// price of resends, not a duplicate in the store.
	Redelivered     int `json:"redelivered"`
	EventsMissing   int `json:"events_missing"`   // stored records without a reading event at the viewer (QoS 0)
	EventsDuplicate int `json:"events_duplicate"` // reading events received twice

	Resources Resources `json:"resources"` // over the run and the drain
}

func runE2E(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg := e2eConfig{Terminals: 100, Rate: 625, Duration: 10 * time.Second, Drain: 60 * time.Second, ResendAfter: 15 * time.Second}
	var c common
	fs := cmdline.NewFlagSet("bench e2e", "Runs broker, ops, pda-bridge, handheld and N terminals in this process on 127.0.0.1\n"+
		"(lab), drives the terminals at -rate records/s (16 channel readings each) for -duration, waits\n"+
		"until every outbox is empty and reports readings/s, latency (Collect → ops' reading event),\n"+
		"loss and duplicates (what the terminals made vs what ops' API holds), CPU and memory.", stderr)
	fs.IntVar(&cfg.Terminals, "terminals", cfg.Terminals, "terminals, 1..9999")
	fs.IntVar(&cfg.Districts, "districts", 0, "districts the terminals are spread over (0: one per 50 terminals)")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "records/s over all terminals (×16 readings/s)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long the driver makes records")
	fs.DurationVar(&cfg.Drain, "drain", cfg.Drain, "how long to wait for the outboxes to empty afterwards")
	fs.DurationVar(&cfg.ResendAfter, "resend-after", cfg.ResendAfter, "handheld and pda-bridge resend unacknowledged batches after this")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "directory for the parts' stores (default: a temporary directory, removed)")
	fs.IntVar(&cfg.Knobs.BatchMax, "batch-max", 0, "handheld records per upstream batch (0: the handheld's default; set: bench composes the parts, not lab)")
	fs.BoolVar(&cfg.Knobs.NoCountSync, "no-counter-sync", false, "terminals do not fsync every pulse (set: bench makes the handheld and terminals)")
	c.addFlags(fs)
	if done, err := parse(fs, args, getenv); done {
		return err
	}
	if cfg.Districts == 0 {
		cfg.Districts = max(1, cfg.Terminals/50)
	}
	if cfg.Rate <= 0 || cfg.Duration <= 0 || cfg.Drain <= 0 {
		return errors.New("rate, duration and drain must be positive")
	}
	log, err := c.logger(stderr)
	if err != nil {
		return err
	}
	if cfg.DataDir == "" {
		dir, err := os.MkdirTemp("", "meterlink-bench-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg.DataDir = dir
	}
	cfg.DurationS = cfg.Duration.Seconds()
	res, err := e2e(ctx, cfg, &c, getenv, log, stderr)
	if err != nil {
		return err
	}
	return c.printResult(stdout, res)
}

// made is one record the driver made at a terminal.
type made struct {
	seq    uint64
	timeMS int64
	at     time.Time
}

func e2e(ctx context.Context, cfg e2eConfig, c *common, getenv func(string) string, log *slog.Logger, stderr io.Writer) (E2EResult, error) {
	var ch *chain
	var err error
	if cfg.Knobs.set() {
		ch, err = ownChain(ctx, cfg, cfg.Knobs, getenv, log)
	} else {
		ch, err = labChain(ctx, cfg, getenv, log)
	}
	if err != nil {
		return E2EResult{}, err
	}
	lctx, stopLab := context.WithCancel(ctx)
	labDone := make(chan error, 1)
	go func() { labDone <- ch.run(lctx) }()
	defer func() {
		stopLab()
		if err := <-labDone; err != nil {
			log.Warn("chain stopped with error", "err", err)
		}
	}()
	httpAddr := ch.httpAddr

	// The viewer: every reading event ops publishes after storing a record.
	type event struct {
		terminal string
		seq      uint64
		at       time.Time
	}
	var (
		evMu   sync.Mutex
		events []event
		nEv    atomic.Int64
	)
	viewer, err := bus.New(bus.Config{URL: "tcp://" + ch.mqttAddr, ClientID: "bench-viewer", CleanSession: true, Logger: log})
	if err != nil {
		return E2EResult{}, err
	}
	defer viewer.Close()
	if err := viewer.Subscribe(ctx, topic.OpsReadingsAll, 0, func(_ context.Context, m bus.Message) error {
		at := time.Now()
		var ev struct {
			Terminal string `json:"terminal"`
			Seq      uint64 `json:"seq"`
		}
		if err := json.Unmarshal(m.Payload, &ev); err != nil {
			return nil
		}
		evMu.Lock()
		events = append(events, event{ev.Terminal, ev.Seq, at})
		evMu.Unlock()
		nEv.Add(1)
		return nil
	}); err != nil {
		return E2EResult{}, err
	}
	if err := retry(ctx, 10*time.Second, func() error { return viewer.Connect(ctx) }); err != nil {
		return E2EResult{}, fmt.Errorf("viewer: %w", err)
	}

	terms := ch.terminals
	mades := make([][]made, len(terms))
	// Warm-up: one record per terminal through the whole chain, so that every link is up
	// before the clock starts. These records count in the loss check, not in the figures.
	for i, t := range terms {
		r, err := t.Collect()
		if err != nil {
			return E2EResult{}, fmt.Errorf("warm-up collect at %s: %w", t.ID(), err)
		}
		mades[i] = append(mades[i], made{seq: r.Seq, timeMS: r.TimeMS, at: time.Now()})
	}
	fmt.Fprintf(stderr, "bench e2e: %d terminals up, warming up\n", len(terms))
	if err := waitUntil(ctx, 60*time.Second, func() bool { return nEv.Load() >= int64(len(terms)) }); err != nil {
		return E2EResult{}, fmt.Errorf("warm-up: %d of %d reading events within 60s: %w", nEv.Load(), len(terms), err)
	}
	warm := make([]int, len(terms))
	for i := range mades {
		warm[i] = len(mades[i])
	}

	stopProfile, err := c.startProfile()
	if err != nil {
		return E2EResult{}, err
	}
	mt := startMeter()
	start := time.Now()
	end := start.Add(cfg.Duration)
	var nMade atomic.Int64
	pending := func() (term, hh, br int) {
		for _, t := range terms {
			term += t.Pending()
		}
		return term, ch.hhPending(), ch.brPending()
	}
	stopProgress := ticker(ctx, c.progress, func(el time.Duration) {
		tp, hp, bp := pending()
		fmt.Fprintf(stderr, "bench e2e: %v made %d records, %d reading events; pending: terminals %d, handheld %d, pda-bridge %d\n",
			el, nMade.Load(), nEv.Load()-int64(len(terms)), tp, hp, bp)
	})
	defer stopProgress()

	// The driver: each terminal makes records at rate/terminals, evenly spaced and staggered.
	var wg sync.WaitGroup
	errc := make(chan error, len(terms))
	every := time.Duration(float64(time.Second) * float64(len(terms)) / cfg.Rate)
	for i, t := range terms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := drive(ctx, t, start.Add(every*time.Duration(i)/time.Duration(len(terms))), every, end, &mades[i], &nMade); err != nil {
				errc <- err
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		stopProfile()
		return E2EResult{}, err
	}
	driven := time.Since(start)
	drained := waitUntil(ctx, cfg.Drain, func() bool {
		tp, hp, bp := pending()
		return tp == 0 && hp == 0 && bp == 0
	}) == nil
	drainedAt := time.Since(start)
	// Reading events are QoS 0 and published after the ack: give the last ones a moment.
	total := 0
	for i := range mades {
		total += len(mades[i])
	}
	_ = waitUntil(ctx, 2*time.Second, func() bool { return nEv.Load() >= int64(total) })
	res := E2EResult{Mode: "e2e", Machine: machine(), Config: cfg}
	res.Resources = mt.stop()
	if err := stopProfile(); err != nil {
		return E2EResult{}, err
	}
	stopProgress()

	for i := range mades {
		res.RecordsMade += len(mades[i]) - warm[i]
	}
	res.ReadingsMade = res.RecordsMade * channelsPerRecord
	res.OfferedReadingsPerS = round1(float64(res.ReadingsMade) / driven.Seconds())
	res.Drained, res.DrainSeconds = drained, round3((drainedAt - driven).Seconds())
	if drained {
		res.StoredReadingsPerS = round1(float64(res.ReadingsMade) / drainedAt.Seconds())
	}

	// Latency and event counts, by (terminal, seq).
	type key struct {
		terminal string
		seq      uint64
	}
	madeAt := map[key]time.Time{}
	isWarm := map[key]bool{}
	for i, t := range terms {
		for j, m := range mades[i] {
			k := key{t.ID(), m.seq}
			madeAt[k] = m.at
			if j < warm[i] {
				isWarm[k] = true
			}
		}
	}
	evMu.Lock()
	seen := map[key]bool{}
	var lat []time.Duration
	var lastEv time.Time
	for _, e := range events {
		k := key{e.terminal, e.seq}
		if seen[k] {
			res.EventsDuplicate++
			continue
		}
		seen[k] = true
		if at, ok := madeAt[k]; ok && !isWarm[k] {
			lat = append(lat, e.at.Sub(at))
			if e.at.After(lastEv) {
				lastEv = e.at
			}
		}
	}
	evMu.Unlock()
	res.Latency = latencyOf(lat)
	if !lastEv.IsZero() {
		res.DeliveredReadingsPerS = round1(float64(len(lat)*channelsPerRecord) / lastEv.Sub(start).Seconds())
	}
	for k := range madeAt {
		if !seen[k] {
			res.EventsMissing++
		}
	}

	// Loss and duplicates: what ops' API holds against what the terminals made.
	fmt.Fprintf(stderr, "bench e2e: checking %d records in ops' API\n", len(madeAt))
	for i, t := range terms {
		lost, lostR, dup, unknown, err := checkTerminal(ctx, httpAddr, t.ID(), mades[i])
		if err != nil {
			return E2EResult{}, err
		}
		res.LostRecords += lost
		res.LostReadings += lostR
		res.DuplicateReadings += dup
		res.UnknownReadings += unknown
	}
	if n, err := metricSum(ctx, httpAddr, "meterlink_ops_records_duplicate_total"); err == nil {
		res.Redelivered = int(n)
	}
	return res, nil
}

// drive makes records at t every interval from first until end: pulses on every channel,
// then Collect. Behind schedule it catches up without sleeping.
func drive(ctx context.Context, t *terminal.Terminal, first time.Time, every time.Duration, end time.Time, out *[]made, n *atomic.Int64) error {
	var pulses uint64
	for next := first; next.Before(end); next = next.Add(every) {
		if d := time.Until(next); d > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d):
			}
		}
		// One channel moves per record (each Pulse may fsync: CounterSync); Collect reads all 16.
		pulses++
		if err := t.Pulse(uint8(pulses%channelsPerRecord)+1, pulses%7+1); err != nil && !errors.Is(err, terminal.ErrUnknownChannel) {
			return fmt.Errorf("pulse at %s: %w", t.ID(), err)
		}
		at := time.Now()
		r, err := t.Collect()
		if err != nil {
			return fmt.Errorf("collect at %s: %w", t.ID(), err)
		}
		*out = append(*out, made{seq: r.Seq, timeMS: r.TimeMS, at: at})
		n.Add(1)
	}
	return nil
}

// checkTerminal reads the terminal's readings from ops' API in time windows of at most 500
// records and compares them with what the driver made.
func checkTerminal(ctx context.Context, httpAddr, id string, ms []made) (lost, lostReadings, dup, unknown int, err error) {
	ms = slices.Clone(ms)
	slices.SortFunc(ms, func(a, b made) int { return int(a.timeMS - b.timeMS) })
	type rk struct {
		seq uint64
		ch  uint8
	}
	got := map[rk]int{}
	bySeq := map[uint64]bool{}
	for _, m := range ms {
		bySeq[m.seq] = true
	}
	for i := 0; i < len(ms); {
		j := min(i+500, len(ms))
		for j < len(ms) && ms[j].timeMS == ms[j-1].timeMS {
			j++ // a window never splits a millisecond
		}
		from, to := ms[i].timeMS, ms[j-1].timeMS+1
		rs, err := apiReadings(ctx, httpAddr, url.Values{
			"terminal": {id}, "limit": {"10000"},
			"from": {time.UnixMilli(from).UTC().Format(time.RFC3339Nano)}, "to": {time.UnixMilli(to).UTC().Format(time.RFC3339Nano)},
		})
		if err != nil {
			return 0, 0, 0, 0, err
		}
		for _, r := range rs {
			if r.Kind != "reading" {
				continue // the terminal's own frozen records
			}
			got[rk{r.Seq, r.Channel}]++
		}
		i = j
	}
	for k, n := range got {
		if n > 1 {
			dup += n - 1
		}
		if !bySeq[k.seq] {
			unknown += n
		}
	}
	for _, m := range ms {
		have := 0
		for ch := uint8(1); ch <= channelsPerRecord; ch++ {
			if got[rk{m.seq, ch}] > 0 {
				have++
			}
		}
		if have == 0 {
			lost++
		}
		lostReadings += channelsPerRecord - have
	}
	return lost, lostReadings, dup, unknown, nil
}

type apiReading struct {
	Terminal string `json:"terminal"`
	Seq      uint64 `json:"seq"`
	Channel  uint8  `json:"ch"`
	Kind     string `json:"kind"`
}

func apiReadings(ctx context.Context, httpAddr string, q url.Values) ([]apiReading, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/api/v1/readings?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET readings?%s: %s %s", q.Encode(), resp.Status, b)
	}
	var body struct {
		Readings []apiReading `json:"readings"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("GET readings: %w", err)
	}
	return body.Readings, nil
}

// metricSum adds up every series of a metric in ops' /metrics.
func metricSum(ctx context.Context, httpAddr, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum, sc.Err()
}

// waitUntil polls cond every 100 ms (cond may scan outboxes: keep it cheap) until it holds, within or ctx runs out.
func waitUntil(ctx context.Context, within time.Duration, cond func() bool) error {
	end := time.Now().Add(within)
	for !cond() {
		if time.Now().After(end) {
			return fmt.Errorf("not reached within %v", within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// retry calls f until it succeeds, within or ctx runs out.
func retry(ctx context.Context, within time.Duration, f func() error) error {
	end := time.Now().Add(within)
	for {
		err := f()
		if err == nil || time.Now().After(end) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
