package handheld

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/meterlink/meterlink/mqttsn"
	"github.com/meterlink/meterlink/wire"
)

// The control API: JSON over HTTP on a loopback address, for `meterlink hh`. It has no
// authentication, which is why Config.Validate insists on loopback.
//
//	GET    /v1/outbox               wire.OutboxStatus
//	GET    /v1/terminals            []wire.TerminalStatus
//	GET    /v1/groups               []wire.Group
//	PUT    /v1/groups               wire.Groups → replace the groups from ops
//	POST   /v1/groups               wire.NarrowRequest → wire.Group (a local narrowing)
//	DELETE /v1/groups/{name}        remove a local group
//	POST   /v1/jobs                 wire.JobRequest → wire.Job (201)
//	GET    /v1/jobs                 []wire.Job, newest first
//	GET    /v1/jobs/{id}            wire.Job
//	GET    /v1/live?terminal=T[&channel=N] | ?meter=M [&timeout=10s]   wire.LiveView
//	GET    /v1/query?meter=M | account=A | terminal=T [&timeout=5s]    wire.QueryResult
//	GET    /v1/warnings[?terminal=T][&limit=N]                         []wire.SiteWarning
//
// Errors are {"error": "..."} with 400 (bad request), 404 (unknown group, terminal, meter,
// job), 422 (the terminal refused), 504 (the terminal did not answer in time) or 500.

type control struct {
	h   *Handheld
	ln  net.Listener
	srv *http.Server
}

func newControl(h *Handheld, addr string) (*control, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for the control API on %s: %w", addr, err)
	}
	c := &control{h: h, ln: ln}
	c.srv = &http.Server{Handler: c.routes(), ReadHeaderTimeout: 5 * time.Second}
	return c, nil
}

func (c *control) addr() string { return c.ln.Addr().String() }

func (c *control) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/outbox", func(w http.ResponseWriter, r *http.Request) { c.reply(w, r, c.h.Outbox(), nil) })
	mux.HandleFunc("GET /v1/terminals", func(w http.ResponseWriter, r *http.Request) {
		ts, err := c.h.Terminals()
		c.reply(w, r, ts, err)
	})
	mux.HandleFunc("GET /v1/groups", func(w http.ResponseWriter, r *http.Request) {
		gs, err := c.h.Groups()
		if gs == nil {
			gs = []wire.Group{}
		}
		c.reply(w, r, gs, err)
	})
	mux.HandleFunc("PUT /v1/groups", func(w http.ResponseWriter, r *http.Request) {
		var gs wire.Groups
		if err := decode(r, &gs); err != nil {
			c.reply(w, r, nil, err)
			return
		}
		if err := c.h.SetGroups(gs.Groups); err != nil {
			c.reply(w, r, nil, err)
			return
		}
		all, err := c.h.Groups()
		c.reply(w, r, all, err)
	})
	mux.HandleFunc("POST /v1/groups", func(w http.ResponseWriter, r *http.Request) {
		var nr wire.NarrowRequest
		if err := decode(r, &nr); err != nil {
			c.reply(w, r, nil, err)
			return
		}
		g, err := c.h.NarrowGroup(nr.Name, nr.From, nr.Terminals)
		c.replyStatus(w, r, http.StatusCreated, g, err)
	})
	mux.HandleFunc("DELETE /v1/groups/{name}", func(w http.ResponseWriter, r *http.Request) {
		err := c.h.DeleteGroup(r.PathValue("name"))
		c.reply(w, r, map[string]string{"deleted": r.PathValue("name")}, err)
	})
	mux.HandleFunc("POST /v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		var jr wire.JobRequest
		if err := decode(r, &jr); err != nil {
			c.reply(w, r, nil, err)
			return
		}
		spec := JobSpec{Op: jr.Op, Args: jr.Args, Group: jr.Group, Terminals: jr.Terminals}
		if jr.Within != "" {
			d, err := time.ParseDuration(jr.Within)
			if err != nil {
				c.reply(w, r, nil, inputErrorf("within %q: want a duration such as 30m", jr.Within))
				return
			}
			spec.Within = d
		}
		job, err := c.h.StartJob(spec)
		c.replyStatus(w, r, http.StatusCreated, job, err)
	})
	mux.HandleFunc("GET /v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		js, err := c.h.Jobs()
		c.reply(w, r, js, err)
	})
	mux.HandleFunc("GET /v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		job, err := c.h.Job(r.PathValue("id"))
		c.reply(w, r, job, err)
	})
	mux.HandleFunc("GET /v1/live", c.live)
	mux.HandleFunc("GET /v1/query", c.query)
	mux.HandleFunc("GET /v1/warnings", func(w http.ResponseWriter, r *http.Request) {
		limit := 0
		if s := r.URL.Query().Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				c.reply(w, r, nil, inputErrorf("limit %q: want a count", s))
				return
			}
			limit = n
		}
		ws, err := c.h.Warnings(r.URL.Query().Get("terminal"), limit)
		if ws == nil {
			ws = []wire.SiteWarning{}
		}
		c.reply(w, r, ws, err)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.replyStatus(w, r, http.StatusNotFound, nil, fmt.Errorf("%w: no route %s %s", errNoRoute, r.Method, r.URL.Path))
	})
	return mux
}

var errNoRoute = errors.New("not found")

// timeoutParam reads ?timeout=, bounded to max.
func timeoutParam(r *http.Request, def, max time.Duration) (time.Duration, error) {
	s := r.URL.Query().Get("timeout")
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d > max {
		return 0, inputErrorf("timeout %q: want a duration up to %v", s, max)
	}
	return d, nil
}

func (c *control) live(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	timeout, err := timeoutParam(r, 10*time.Second, 10*time.Minute)
	if err != nil {
		c.reply(w, r, nil, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	var v wire.LiveView
	switch {
	case q.Get("meter") != "" && q.Get("terminal") == "":
		v, err = c.h.LiveMeter(ctx, q.Get("meter"))
	case q.Get("terminal") != "" && q.Get("meter") == "":
		var ch uint64
		if s := q.Get("channel"); s != "" {
			if ch, err = strconv.ParseUint(s, 10, 8); err != nil || ch > 16 {
				c.reply(w, r, nil, inputErrorf("channel %q: want 1..16", s))
				return
			}
		}
		v, err = c.h.Live(ctx, q.Get("terminal"), uint8(ch))
	default:
		err = inputErrorf("name a terminal or a meter")
	}
	c.reply(w, r, v, err)
}

func (c *control) query(w http.ResponseWriter, r *http.Request) {
	qs := r.URL.Query()
	timeout, err := timeoutParam(r, c.h.cfg.QueryTimeout, time.Minute)
	if err != nil {
		c.reply(w, r, nil, err)
		return
	}
	start := c.h.now()
	q := wire.Query{Meter: wire.MeterID(qs.Get("meter")), Account: qs.Get("account"), Terminal: wire.TerminalID(qs.Get("terminal")),
		DeadlineMS: start.Add(timeout).UnixMilli()}
	a, age, err := c.h.Query(r.Context(), q)
	res := wire.QueryResult{Query: q, Answer: a, ElapsedMS: c.h.now().Sub(start).Milliseconds()}
	if errors.Is(err, ErrOffline) {
		res.Offline, res.Reason = true, strings.TrimPrefix(err.Error(), ErrOffline.Error()+": ")
		res.Cached = a.ID != ""
		if res.Cached {
			res.CachedAgeMS = age.Milliseconds()
		}
		err = nil
	}
	c.reply(w, r, res, err)
}

// decode reads a JSON body strictly: unknown fields are an error.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return inputErrorf("request body: %v", err)
	}
	return nil
}

func (c *control) reply(w http.ResponseWriter, r *http.Request, v any, err error) {
	c.replyStatus(w, r, http.StatusOK, v, err)
}

func (c *control) replyStatus(w http.ResponseWriter, r *http.Request, status int, v any, err error) {
	if err != nil {
		status = statusOf(err)
		msg := err.Error()
		if status == http.StatusInternalServerError {
			c.h.log.Error("control request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			msg = "internal error"
		}
		v = map[string]string{"error": msg}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// statusOf maps the handheld's errors to HTTP statuses, in one place.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnknownGroup), errors.Is(err, ErrUnknownTerminal), errors.Is(err, ErrUnknownMeter),
		errors.Is(err, ErrUnknownJob), errors.Is(err, mqttsn.ErrUnknownClient), errors.Is(err, errNoRoute):
		return http.StatusNotFound
	case errors.Is(err, ErrTerminalRefused):
		return http.StatusUnprocessableEntity
	case errors.Is(err, ErrCommandTimeout), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// run serves until ctx is done, then shuts down under its own deadline.
func (c *control) run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- c.srv.Serve(c.ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := c.srv.Shutdown(sctx)
	<-errc
	return err
}

func (c *control) close() { c.srv.Close(); c.ln.Close() }
