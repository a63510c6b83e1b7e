package hhcli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/meterlink/meterlink/wire"
)

// selector holds the flags that pick what a batch job runs on.
type selector struct {
	district, group string
	terminals       listFlag
	within          time.Duration
	detach          bool
	poll            time.Duration
}

func (s *selector) add(fs *flag.FlagSet) {
	fs.StringVar(&s.district, "district", "", "run on every terminal of this transformer district (台区), e.g. D01")
	fs.StringVar(&s.group, "group", "", "run on a group, e.g. a local narrowing")
	fs.Var(&s.terminals, "terminal", "run on these terminals (comma-separated or repeated)")
	fs.DurationVar(&s.within, "within", 0, "give up on terminals that have not answered after this (default: the handheld's job deadline)")
	fs.BoolVar(&s.detach, "detach", false, "start the job and return; follow it with `meterlink hh jobs ID`")
	fs.DurationVar(&s.poll, "poll", 200*time.Millisecond, "how often to refresh the progress")
}

// request fills a job request's target, checking that exactly one was named.
func (s *selector) request(op string) (wire.JobRequest, error) {
	req := wire.JobRequest{Op: op, Terminals: s.terminals}
	n := 0
	for _, set := range []bool{s.district != "", s.group != "", len(s.terminals) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		return req, errors.New("name what to run on: exactly one of --district D, --group G, --terminal T")
	}
	req.Group = s.district
	if s.group != "" {
		req.Group = s.group
	}
	if s.within != 0 {
		req.Within = s.within.String()
	}
	return req, nil
}

// batch returns the command that starts a job of op and follows it.
func batch(op string) func(e *env, fs *flag.FlagSet, args []string) error {
	return func(e *env, fs *flag.FlagSet, args []string) error {
		var sel selector
		sel.add(fs)
		var (
			at                   string
			channel              uint
			meter                string
			constant, multiplier uint
			baseKWh              float64
			from, to             string
		)
		switch op {
		case "set_clock":
			fs.StringVar(&at, "time", "", "set this time (RFC 3339) instead of the handheld's clock at sending")
		case "set_channel":
			fs.UintVar(&channel, "channel", 0, "the channel to change, 1..16 (required)")
			fs.StringVar(&meter, "meter", "", "new meter id on the channel")
			fs.UintVar(&constant, "constant", 0, "new impulse constant, imp/kWh")
			fs.Float64Var(&baseKWh, "base-kwh", math.NaN(), "new base reading (底数), kWh")
			fs.UintVar(&multiplier, "multiplier", 0, "new multiplier (CT × PT)")
		case "frozen":
			fs.StringVar(&from, "from", "", "first freeze date, YYYY-MM-DD (required)")
			fs.StringVar(&to, "to", "", "last freeze date, YYYY-MM-DD (default: --from)")
		}
		pos, err := e.parse(fs, args)
		if err != nil {
			return err
		}
		req, err := sel.request(op)
		if err != nil {
			return err
		}
		var a any
		switch op {
		case "set_freeze":
			if len(pos) != 1 {
				return errors.New("set-freeze needs the freeze time: set-freeze HH:MM")
			}
			if _, err := time.Parse("15:04", pos[0]); err != nil || len(pos[0]) != 5 {
				return fmt.Errorf("freeze time %q: want HH:MM, 00:00 to 23:59", pos[0])
			}
			a = map[string]string{"at": pos[0]}
			pos = nil
		case "set_clock":
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return fmt.Errorf("time %q: want RFC 3339, e.g. 2026-11-24T08:00:00+08:00", at)
				}
				a = map[string]int64{"ts_ms": t.UnixMilli()}
			}
		case "set_channel":
			if channel < 1 || channel > 16 {
				return errors.New("set-channel needs --channel 1..16")
			}
			sc := map[string]any{"ch": channel}
			if meter != "" {
				sc["meter"] = meter
			}
			if constant != 0 {
				sc["constant"] = constant
			}
			if !math.IsNaN(baseKWh) {
				if baseKWh < 0 {
					return fmt.Errorf("base-kwh %v is negative", baseKWh)
				}
				sc["base_wh"] = int64(math.Round(baseKWh * 1000))
			}
			if multiplier != 0 {
				sc["multiplier"] = multiplier
			}
			if len(sc) == 1 {
				return errors.New("set-channel: name what to change: --meter, --constant, --base-kwh or --multiplier")
			}
			a = sc
		case "frozen":
			if from == "" {
				return errors.New("frozen needs --from YYYY-MM-DD (and --to for a range)")
			}
			if to == "" {
				to = from
			}
			f, e1 := time.Parse(time.DateOnly, from)
			t, e2 := time.Parse(time.DateOnly, to)
			if e1 != nil || e2 != nil || t.Before(f) {
				return fmt.Errorf("dates %q to %q: want --from <= --to, both YYYY-MM-DD", from, to)
			}
			a = map[string]string{"from": from, "to": to}
		}
		if len(pos) > 0 {
			return fmt.Errorf("unexpected argument %q", pos[0])
		}
		if a != nil {
			req.Args, _ = json.Marshal(a)
		}
		var job wire.Job
		if err := e.c.do(e.ctx, "POST", "/v1/jobs", req, &job, 0); err != nil {
			return fmt.Errorf("start %s: %w", op, err)
		}
		if sel.detach {
			if e.json {
				return e.printJSON(job)
			}
			fmt.Fprintf(e.stdout, "job %s started: %s on %s (%d terminals); follow it with `meterlink hh jobs %s`\n",
				job.ID, job.Op, job.Group, len(job.Terminals), job.ID)
			return nil
		}
		return e.follow(job, sel.poll)
	}
}

// follow polls a job until it is done, showing its progress, then prints the summary.
func (e *env) follow(job wire.Job, poll time.Duration) error {
	tty := !e.json && isTerminal(e.stdout)
	if !e.json {
		fmt.Fprintf(e.stdout, "job %s: %s on %s, %d terminals\n", job.ID, job.Op, job.Group, len(job.Terminals))
	}
	last := ""
	show := func(j wire.Job) {
		if e.json {
			return
		}
		line := progressLine(j.Progress, tty)
		if line == last {
			return
		}
		last = line
		if tty {
			fmt.Fprintf(e.stdout, "\r%s\x1b[K", line)
		} else {
			fmt.Fprintln(e.stdout, line)
		}
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		show(job)
		if job.State == wire.JobDone {
			break
		}
		select {
		case <-e.ctx.Done():
			if tty {
				fmt.Fprintln(e.stdout)
			}
			return fmt.Errorf("stopped following job %s; it goes on in the handheld (meterlink hh jobs %s)", job.ID, job.ID)
		case <-tick.C:
		}
		if err := e.c.get(e.ctx, "/v1/jobs/"+url.PathEscape(job.ID), &job); err != nil {
			if e.ctx.Err() != nil {
				continue
			}
			return fmt.Errorf("follow job %s: %w", job.ID, err)
		}
	}
	if tty {
		fmt.Fprintln(e.stdout)
	}
	if e.json {
		if err := e.printJSON(job); err != nil {
			return err
		}
	} else {
		e.printJobTerminals(job)
	}
	if job.Progress.Failed > 0 {
		return fmt.Errorf("job %s: %d of %d terminals failed", job.ID, job.Progress.Failed, job.Progress.Total)
	}
	return nil
}

// progressLine draws a bar on an interactive terminal, plain counts otherwise.
func progressLine(p wire.JobProgress, bar bool) string {
	counts := fmt.Sprintf("%d/%d done: %d acked, %d failed, %d waiting", p.Done(), p.Total, p.Acked, p.Failed, p.Pending+p.Sent)
	if !bar {
		return "progress " + counts
	}
	const width = 30
	n := 0
	if p.Total > 0 {
		n = p.Done() * width / p.Total
	}
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "] " + counts
}

func (e *env) printJobTerminals(job wire.Job) {
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TERMINAL\tSTATE\tTRIES\tDETAIL")
	for _, t := range job.Terminals {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", t.Terminal, t.State, t.Attempts, t.Detail)
	}
	tw.Flush()
	p := job.Progress
	fmt.Fprintf(e.stdout, "%s: %d acked, %d failed, %d waiting of %d\n", job.State, p.Acked, p.Failed, p.Pending+p.Sent, p.Total)
}
