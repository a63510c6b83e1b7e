// Package bench is `meterlink bench`: load generators that measure MeterLink on the machine
// they run on and print what they measured, as text or as one JSON object (-json).
//
//	meterlink bench e2e      the whole chain in one process (lab): terminals → handheld →
//	                         pda-bridge → broker → ops, readings/s, latency, loss, CPU, memory
//	meterlink bench broker   MQTT pub/sub through bus against any broker, or the embedded
//	                         broker and mosquitto side by side
//	meterlink bench gateway  MQTT-SN publishes/s through the gateway, memory per client
//	meterlink bench ingest   ops' batched ingest (HandleUp) and its API queries
//
// Every mode does bounded work (a duration or a message count), prints progress lines on
// stderr during long runs and can write a CPU profile (-cpuprofile) for `go tool pprof`.
// docs/performance.md has the commands and the figures measured with them.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meterlink/meterlink/bus"
	"github.com/meterlink/meterlink/cmdline"
)

type mode struct {
	run     func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error
	summary string
}

var modes = map[string]mode{
	"e2e":     {runE2E, "the whole chain in one process: readings/s stored, latency, loss, CPU, memory"},
	"broker":  {runBroker, "MQTT pub/sub load through bus: any broker, or embedded vs mosquitto"},
	"gateway": {runGateway, "MQTT-SN publishes/s through the gateway and memory per connected client"},
	"ingest":  {runIngest, "ops ingest (HandleUp, batched) records/s and API query latency"},
}

// Main runs `meterlink bench <mode> [flags]`.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		usage(stderr)
		if len(args) == 0 {
			return errors.New("bench: name a mode")
		}
		return nil
	}
	m, ok := modes[args[0]]
	if !ok {
		usage(stderr)
		return fmt.Errorf("bench: unknown mode %q", args[0])
	}
	return m.run(ctx, args[1:], getenv, stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: meterlink bench <mode> [flags]   (meterlink bench <mode> -h lists the flags)")
	fmt.Fprintln(w)
	names := make([]string, 0, len(modes))
	for n := range modes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, modes[n].summary)
	}
}

// common holds the flags every mode has.
type common struct {
	json       bool
	cpuProfile string
	progress   time.Duration
	log        cmdline.LogConfig
}

func (c *common) addFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.json, "json", false, "print the result as one JSON object on stdout")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured part to this file")
	fs.DurationVar(&c.progress, "progress", 5*time.Second, "interval of progress lines on stderr (0: none)")
	c.log.AddFlags(fs)
	// The parts log at info on start and stop; a benchmark wants warnings only.
	if f := fs.Lookup("log-level"); f != nil {
		f.DefValue = "warn"
		_ = f.Value.Set("warn")
	}
}

// parse parses args, reporting flag.ErrHelp as a nil error with done true.
func parse(fs *flag.FlagSet, args []string, getenv func(string) string) (done bool, err error) {
	if err := cmdline.Parse(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return true, err
	}
	if fs.NArg() > 0 {
		return true, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return false, nil
}

func (c *common) logger(stderr io.Writer) (*slog.Logger, error) {
	log, err := c.log.Logger(stderr)
	if err != nil {
		return nil, err
	}
	bus.RouteLibraryLogs(log)
	return log, nil
}

// startProfile starts the CPU profile if asked for; stop ends it.
func (c *common) startProfile() (stop func() error, err error) {
	if c.cpuProfile == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(c.cpuProfile)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

// printResult writes r as JSON (one object) or as aligned "key value" lines.
func (c *common) printResult(w io.Writer, r any) error {
	if c.json {
		enc := json.NewEncoder(w)
		return enc.Encode(r)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	printFlat(w, "", m)
	return nil
}

func printFlat(w io.Writer, prefix string, m map[string]any) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch v := m[k].(type) {
		case map[string]any:
			printFlat(w, prefix+k+".", v)
		case []any:
			for i, x := range v {
				if xm, ok := x.(map[string]any); ok {
					printFlat(w, fmt.Sprintf("%s%s[%d].", prefix, k, i), xm)
				} else {
					fmt.Fprintf(w, "%-40s %v\n", fmt.Sprintf("%s%s[%d]", prefix, k, i), x)
				}
			}
		case float64:
			fmt.Fprintf(w, "%-40s %s\n", prefix+k, strconv.FormatFloat(v, 'f', -1, 64))
		default:
			fmt.Fprintf(w, "%-40s %v\n", prefix+k, v)
		}
	}
}

// Latency is a distribution of durations in milliseconds.
type Latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

func latencyOf(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return ms(s[max(0, min(i, len(s)-1))])
	}
	return Latency{Count: len(s), P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: ms(s[len(s)-1])}
}

func ms(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

func round1(f float64) float64 { return math.Round(f*10) / 10 }

// Resources is what the process used while measuring.
type Resources struct {
	CPUSeconds  float64 `json:"cpu_seconds"`  // user + system, this process
	CPUCores    float64 `json:"cpu_cores"`    // CPUSeconds / wall seconds
	PeakRSSMiB  float64 `json:"peak_rss_mib"` // VmHWM (getrusage maxrss)
	HeapMiB     float64 `json:"heap_mib"`     // Go heap in use at the end
	Goroutines  int     `json:"goroutines"`   // at the end
	GOMAXPROCS  int     `json:"gomaxprocs"`   //
	WallSeconds float64 `json:"wall_seconds"` //
}

type meter struct {
	start time.Time
	cpu   time.Duration
}

func startMeter() meter { return meter{start: time.Now(), cpu: cpuTime()} }

func (m meter) stop() Resources {
	wall := time.Since(m.start).Seconds()
	cpu := (cpuTime() - m.cpu).Seconds()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return Resources{
		CPUSeconds: round3(cpu), CPUCores: round3(cpu / wall), PeakRSSMiB: round1(float64(peakRSS()) / (1 << 20)),
		HeapMiB: round1(float64(ms.HeapInuse) / (1 << 20)), Goroutines: runtime.NumGoroutine(),
		GOMAXPROCS: runtime.GOMAXPROCS(0), WallSeconds: round3(wall),
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS returns the process's peak resident set in bytes: VmHWM from /proc/self/status,
// else getrusage's maxrss (KiB on Linux).
func peakRSS() int64 {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				f := strings.Fields(v)
				if n, err := strconv.ParseInt(f[0], 10, 64); err == nil && len(f) == 2 && f[1] == "kB" {
					return n << 10
				}
			}
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss << 10
}

// ticker calls f every d until ctx is done; d of 0 never calls it. stop waits for it to end.
func ticker(ctx context.Context, d time.Duration, f func(elapsed time.Duration)) (stop func()) {
	if d <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				f(time.Since(start).Round(time.Second))
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// Machine describes where the figures were measured.
type Machine struct {
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	CPUs      int    `json:"cpus"`
	Date      string `json:"date"`
}

func machine() Machine {
	return Machine{GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(),
		Date: time.Now().Format(time.DateOnly)}
}
