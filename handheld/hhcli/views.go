package hhcli

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/meterlink/meterlink/wire"
)

func noArgs(pos []string) error {
	if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q", pos[0])
	}
	return nil
}

func (e *env) table() *tabwriter.Writer { return tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0) }

func msTime(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).Format(time.DateTime)
}

func cmdTerminals(e *env, fs *flag.FlagSet, args []string) error {
	district := fs.String("district", "", "only the terminals of this district")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	var ts []wire.TerminalStatus
	if err := e.c.get(e.ctx, "/v1/terminals", &ts); err != nil {
		return fmt.Errorf("list terminals: %w", err)
	}
	if *district != "" {
		var keep []wire.TerminalStatus
		for _, t := range ts {
			if string(t.District) == *district {
				keep = append(keep, t)
			}
		}
		if len(keep) == 0 {
			return fmt.Errorf("no terminal in district %q", *district)
		}
		ts = keep
	}
	if e.json {
		if ts == nil {
			ts = []wire.TerminalStatus{}
		}
		return e.printJSON(ts)
	}
	tw := e.table()
	fmt.Fprintln(tw, "TERMINAL\tDISTRICT\tMETERS\tRADIO\tLAST SEEN\tQUEUED\tOUTBOX")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%d\n", t.ID, t.District, t.Meters, t.State, msTime(t.LastSeenMS), t.Queued, t.Pending)
	}
	return tw.Flush()
}

func cmdGroups(e *env, fs *flag.FlagSet, args []string) error {
	var (
		narrow = fs.String("narrow", "", "make a local group of this name from --from, holding the --terminal terminals")
		from   = fs.String("from", "", "the group to narrow (e.g. a district)")
		del    = fs.String("delete", "", "delete this local group")
		terms  listFlag
	)
	fs.Var(&terms, "terminal", "terminals of the narrowed group (comma-separated or repeated)")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	switch {
	case *narrow != "" && *del != "":
		return errors.New("--narrow and --delete exclude each other")
	case *narrow != "":
		if *from == "" || len(terms) == 0 {
			return errors.New("--narrow NAME needs --from GROUP and --terminal T[,T...]")
		}
		var g wire.Group
		if err := e.c.do(e.ctx, "POST", "/v1/groups", wire.NarrowRequest{Name: *narrow, From: *from, Terminals: terms}, &g, 0); err != nil {
			return fmt.Errorf("narrow %s: %w", *from, err)
		}
		if e.json {
			return e.printJSON(g)
		}
		fmt.Fprintf(e.stdout, "group %s: %d terminals of %s\n", g.Name, len(g.Terminals), g.From)
		return nil
	case *del != "":
		if err := e.c.do(e.ctx, "DELETE", "/v1/groups/"+url.PathEscape(*del), nil, nil, 0); err != nil {
			return fmt.Errorf("delete group %s: %w", *del, err)
		}
		if e.json {
			return e.printJSON(map[string]string{"deleted": *del})
		}
		fmt.Fprintf(e.stdout, "group %s deleted\n", *del)
		return nil
	case *from != "" || len(terms) > 0:
		return errors.New("--from and --terminal go with --narrow NAME")
	}
	var gs []wire.Group
	if err := e.c.get(e.ctx, "/v1/groups", &gs); err != nil {
		return fmt.Errorf("list groups: %w", err)
	}
	if e.json {
		return e.printJSON(gs)
	}
	tw := e.table()
	fmt.Fprintln(tw, "GROUP\tKIND\tTITLE\tTERMINALS\tMETERS")
	for _, g := range gs {
		ids := make([]string, len(g.Terminals))
		meters := 0
		for i, t := range g.Terminals {
			ids[i] = string(t.ID)
			meters += len(t.Meters)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", g.Name, g.Kind, g.Title, strings.Join(ids, ","), meters)
	}
	return tw.Flush()
}

func cmdOutbox(e *env, fs *flag.FlagSet, args []string) error {
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	var o wire.OutboxStatus
	if err := e.c.get(e.ctx, "/v1/outbox", &o); err != nil {
		return fmt.Errorf("read the outbox: %w", err)
	}
	if e.json {
		return e.printJSON(o)
	}
	link := "down"
	if o.PDAConnected {
		link = "up"
	}
	fmt.Fprintf(e.stdout, "handheld %s, PDA link %s (%s)\n", o.Handheld, link, o.PDAURL)
	fmt.Fprintf(e.stdout, "records waiting for ops: %d (%d sent, awaiting acknowledgement)", o.Records, o.Inflight)
	if o.OldestMS != 0 {
		fmt.Fprintf(e.stdout, ", oldest from %s", msTime(o.OldestMS))
	}
	fmt.Fprintln(e.stdout)
	fmt.Fprintf(e.stdout, "job events waiting: %d; on-site warnings held: %d\n", o.JobEvents, o.Warnings)
	fmt.Fprintf(e.stdout, "since start: %d received, %d duplicates, %d rejected, %d uploaded in %d batches\n",
		o.Received, o.Duplicates, o.Rejected, o.Uploaded, o.Batches)
	if len(o.ByTerminal) > 0 {
		tw := e.table()
		fmt.Fprintln(tw, "TERMINAL\tWAITING")
		for _, id := range sortedKeys(o.ByTerminal) {
			fmt.Fprintf(tw, "%s\t%d\n", id, o.ByTerminal[id])
		}
		return tw.Flush()
	}
	return nil
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func cmdJobs(e *env, fs *flag.FlagSet, args []string) error {
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return fmt.Errorf("unexpected argument %q", pos[1])
	}
	if len(pos) == 1 {
		var job wire.Job
		if err := e.c.get(e.ctx, "/v1/jobs/"+url.PathEscape(pos[0]), &job); err != nil {
			return fmt.Errorf("job %s: %w", pos[0], err)
		}
		if e.json {
			return e.printJSON(job)
		}
		fmt.Fprintf(e.stdout, "job %s: %s on %s, started %s, deadline %s\n", job.ID, job.Op, job.Group, msTime(job.CreatedMS), msTime(job.DeadlineMS))
		e.printJobTerminals(job)
		return nil
	}
	var js []wire.Job
	if err := e.c.get(e.ctx, "/v1/jobs", &js); err != nil {
		return fmt.Errorf("list jobs: %w", err)
	}
	if e.json {
		return e.printJSON(js)
	}
	tw := e.table()
	fmt.Fprintln(tw, "JOB\tOP\tON\tSTATE\tACKED\tFAILED\tWAITING\tSTARTED")
	for _, j := range js {
		p := j.Progress
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", j.ID, j.Op, j.Group, j.State, p.Acked, p.Failed, p.Pending+p.Sent, msTime(j.CreatedMS))
	}
	return tw.Flush()
}

func cmdWarnings(e *env, fs *flag.FlagSet, args []string) error {
	terminal := fs.String("terminal", "", "only the warnings of this terminal")
	limit := fs.Int("limit", 50, "show at most this many, newest first (0: all)")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if *limit < 0 {
		return fmt.Errorf("limit %d is negative", *limit)
	}
	q := url.Values{"limit": {strconv.Itoa(*limit)}}
	if *terminal != "" {
		q.Set("terminal", *terminal)
	}
	var ws []wire.SiteWarning
	if err := e.c.get(e.ctx, "/v1/warnings?"+q.Encode(), &ws); err != nil {
		return fmt.Errorf("list warnings: %w", err)
	}
	if e.json {
		return e.printJSON(ws)
	}
	if len(ws) == 0 {
		fmt.Fprintln(e.stdout, "no on-site warnings")
		return nil
	}
	tw := e.table()
	fmt.Fprintln(tw, "TIME\tSEVERITY\tCODE\tERC\tTERMINAL\tMETER\tDETAIL")
	for _, w := range ws {
		erc := ""
		if w.ERC != 0 {
			erc = strconv.Itoa(w.ERC)
		}
		who := string(w.Terminal)
		if who == "" {
			who = w.Account
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", msTime(w.TimeMS), w.Severity, w.Code, erc, who, w.Meter, w.Detail)
	}
	return tw.Flush()
}

func cmdLive(e *env, fs *flag.FlagSet, args []string) error {
	var (
		terminal = fs.String("terminal", "", "the terminal to watch")
		channel  = fs.Uint("channel", 0, "only this channel, 1..16 (default: all)")
		meter    = fs.String("meter", "", "watch one meter (found through the groups) instead")
		once     = fs.Bool("once", false, "read once and exit")
		every    = fs.Duration("every", time.Second, "how often to read")
		timeout  = fs.Duration("timeout", 15*time.Second, "how long to wait for the terminal's answer")
	)
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	q := url.Values{"timeout": {timeout.String()}}
	switch {
	case (*terminal == "") == (*meter == ""):
		return errors.New("live needs --terminal T (with --channel N) or --meter M")
	case *meter != "" && *channel != 0:
		return errors.New("--channel goes with --terminal, not --meter")
	case *channel > 16:
		return fmt.Errorf("channel %d: want 1..16", *channel)
	case *every < 100*time.Millisecond:
		return fmt.Errorf("every %v is below 100ms", *every)
	case *terminal != "":
		q.Set("terminal", *terminal)
		if *channel != 0 {
			q.Set("channel", strconv.Itoa(int(*channel)))
		}
	default:
		q.Set("meter", *meter)
	}
	var last []wire.ChannelReading
	tick := time.NewTicker(*every)
	defer tick.Stop()
	for first := true; ; first = false {
		var v wire.LiveView
		if err := e.c.do(e.ctx, "GET", "/v1/live?"+q.Encode(), nil, &v, *timeout+5*time.Second); err != nil {
			if e.ctx.Err() != nil && !first {
				return nil // Ctrl-C ends watching
			}
			return fmt.Errorf("live view: %w", err)
		}
		if first || !reflect.DeepEqual(v.Channels, last) {
			last = v.Channels
			if err := e.printLive(v); err != nil {
				return err
			}
		}
		if *once {
			return nil
		}
		select {
		case <-e.ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (e *env) printLive(v wire.LiveView) error {
	if e.json {
		return e.printJSON(v)
	}
	fmt.Fprintf(e.stdout, "%s  terminal %s\n", msTime(v.TimeMS), v.Terminal)
	tw := e.table()
	fmt.Fprintln(tw, "CH\tMETER\tPULSES\tREADING kWh\tCONSTANT\tMULT")
	for _, c := range v.Channels {
		est := ""
		if c.Estimated {
			est = " (est.)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%.3f%s\t%d\t%d\n", c.Channel, c.Meter, c.Pulses, c.KWh(), est, c.Constant, c.Multiplier)
	}
	return tw.Flush()
}

func cmdQuery(e *env, fs *flag.FlagSet, args []string) error {
	var (
		meter    = fs.String("meter", "", "the customer's meter")
		account  = fs.String("account", "", "the customer's account")
		terminal = fs.String("terminal", "", "every customer on a terminal")
		timeout  = fs.Duration("timeout", 0, "deadline for ops' answer (default: the handheld's)")
	)
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	q := url.Values{}
	n := 0
	for k, v := range map[string]string{"meter": *meter, "account": *account, "terminal": *terminal} {
		if v != "" {
			q.Set(k, v)
			n++
		}
	}
	if n != 1 {
		return errors.New("query needs exactly one of --meter M, --account A, --terminal T")
	}
	wait := 0 * time.Second
	if *timeout != 0 {
		if *timeout < 0 || *timeout > time.Minute {
			return fmt.Errorf("timeout %v: want up to 1m", *timeout)
		}
		q.Set("timeout", timeout.String())
		wait = *timeout + 10*time.Second
	}
	var r wire.QueryResult
	if err := e.c.do(e.ctx, "GET", "/v1/query?"+q.Encode(), nil, &r, wait); err != nil {
		return fmt.Errorf("query: %w", err)
	}
	if e.json {
		if err := e.printJSON(r); err != nil {
			return err
		}
	} else {
		e.printAnswer(r)
	}
	switch {
	case r.Offline && !r.Cached:
		return fmt.Errorf("offline (%s) and nothing cached", r.Reason)
	case r.Answer.Error != "":
		return fmt.Errorf("ops answered: %s", r.Answer.Error)
	}
	return nil
}

func fen(f int64) string {
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	return fmt.Sprintf("%s%d.%02d 元", sign, f/100, f%100)
}

func (e *env) printAnswer(r wire.QueryResult) {
	w := e.stdout
	switch {
	case r.Offline && r.Cached:
		age := (time.Duration(r.CachedAgeMS) * time.Millisecond).Round(time.Second)
		fmt.Fprintf(w, "OFFLINE: %s. Cached answer, %v old (as of %s):\n", r.Reason, age, msTime(r.Answer.AsOfMS))
	case r.Offline:
		fmt.Fprintf(w, "OFFLINE: %s. Nothing cached.\n", r.Reason)
		return
	case r.Answer.Error != "":
		fmt.Fprintf(w, "ops: %s\n", r.Answer.Error)
		return
	default:
		fmt.Fprintf(w, "answer from ops in %v (as of %s):\n", time.Duration(r.ElapsedMS)*time.Millisecond, msTime(r.Answer.AsOfMS))
	}
	for _, c := range r.Answer.Customers {
		meters := make([]string, len(c.Meters))
		for i, m := range c.Meters {
			meters[i] = string(m)
		}
		fmt.Fprintf(w, "\n  account  %s   owner %s\n", c.Account, c.Owner)
		if c.Address != "" {
			fmt.Fprintf(w, "  address  %s\n", c.Address)
		}
		fmt.Fprintf(w, "  payment  %s, balance %s\n", c.Payment, fen(c.BalanceFen))
		fmt.Fprintf(w, "  period   since %s: %.3f kWh\n", c.PeriodStart, float64(c.PeriodWh)/1000)
		fmt.Fprintf(w, "  meters   %s\n", strings.Join(meters, ", "))
		if c.LastReadingMS != 0 {
			fmt.Fprintf(w, "  last reading %s\n", msTime(c.LastReadingMS))
		}
		for _, wr := range c.Warnings {
			fmt.Fprintf(w, "  ! %s %s: %s\n", strings.ToUpper(wr.Severity), wr.Code, wr.Detail)
		}
	}
}
