// Package api serves ops' HTTP JSON API under /api/v1/ and its Prometheus metrics at
// /metrics: provisioning (districts, terminals, meters, accounts, PDAs), readings with CSV
// export, and health. Request bodies are decoded strictly; a bad request gets a 4xx with a
// JSON message naming what is wrong and changes nothing.
package api

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/meterlink/meterlink/ops/internal/metrics"
	"github.com/meterlink/meterlink/ops/internal/store"
	"github.com/meterlink/meterlink/wire"
)

// Store is what the API needs from ops' store.
type Store interface {
	Put(ds store.Dataset, replace bool) error
	Load() (store.Dataset, error)
	SetPDAState(id wire.PDAID, state store.PDAState) (store.PDA, error)
	Readings(q store.Query) ([]store.Reading, error)
	Latest(q store.Query) ([]store.Reading, error)
}

// Interface guard.
var _ Store = (*store.DB)(nil)

// MetricRequests counts API requests by route and status code.
const MetricRequests = "meterlink_ops_api_requests_total"

// Limits of the readings endpoints.
const (
	DefaultLimit = 100
	MaxLimit     = 10000
	maxBody      = 1 << 20 // bytes of a request body
)

// Config wires the API to the rest of ops.
type Config struct {
	Store   Store
	Metrics *metrics.Registry // the API declares and counts MetricRequests in it
	Logger  *slog.Logger
	Now     func() time.Time // default time.Now
	Rand    io.Reader        // source of new SIDs; default crypto/rand.Reader
	Health  func() Health    // the ingest's state; optional
	PDAs    PDAs             // the secure channel's provisioning and revocation; optional (see pdas.go)
	Biz     *Business        // billing, alerts, queries, import and the dashboard; optional (see business.go)
}

// Health is the body of GET /api/v1/health.
type Health struct {
	Status          string `json:"status"` // "ok"
	BrokerConnected bool   `json:"broker_connected"`
}

// API is the HTTP handler of ops.
type API struct {
	st      Store
	metrics *metrics.Registry
	log     *slog.Logger
	now     func() time.Time
	rand    io.Reader
	health  func() Health
	pdas    PDAs
	biz     *Business
	mux     *http.ServeMux
}

// New builds the API handler.
func New(cfg Config) *API {
	a := &API{st: cfg.Store, metrics: cfg.Metrics, log: cfg.Logger.With("component", "api"),
		now: cfg.Now, rand: cfg.Rand, health: cfg.Health, pdas: cfg.PDAs, mux: http.NewServeMux()}
	if a.now == nil {
		a.now = time.Now
	}
	if a.rand == nil {
		a.rand = rand.Reader
	}
	if a.health == nil {
		a.health = func() Health { return Health{Status: "ok"} }
	}
	a.metrics.Counter(MetricRequests, "HTTP API requests by route and status code.", true)
	a.routes()
	if cfg.Biz != nil {
		a.businessRoutes(cfg.Biz)
	}
	return a
}

func (a *API) routes() {
	m := a.mux
	m.Handle("GET /api/v1/health", a.handle(a.getHealth))
	m.Handle("GET /api/v1/readings", a.handle(a.getReadings))
	m.Handle("GET /api/v1/readings/latest", a.handle(a.getLatest))
	m.Handle("GET /api/v1/districts", a.handle(a.listDistricts))
	m.Handle("GET /api/v1/districts/{id}", a.handle(a.getDistrict))
	m.Handle("POST /api/v1/districts", a.handle(a.postDistrict))
	m.Handle("GET /api/v1/terminals", a.handle(a.listTerminals))
	m.Handle("GET /api/v1/terminals/{id}", a.handle(a.getTerminal))
	m.Handle("POST /api/v1/terminals", a.handle(a.postTerminal))
	m.Handle("GET /api/v1/meters", a.handle(a.listMeters))
	m.Handle("GET /api/v1/meters/{id}", a.handle(a.getMeter))
	m.Handle("POST /api/v1/meters", a.handle(a.postMeter))
	m.Handle("GET /api/v1/accounts", a.handle(a.listAccounts))
	m.Handle("GET /api/v1/accounts/{id}", a.handle(a.getAccount))
	m.Handle("POST /api/v1/accounts", a.handle(a.postAccount))
	m.Handle("GET /api/v1/pdas", a.handle(a.listPDAs))
	m.Handle("GET /api/v1/pdas/{id}", a.handle(a.getPDA))
	m.Handle("POST /api/v1/pdas", a.handle(a.postPDA))
	m.Handle("POST /api/v1/pdas/{id}/revoke", a.handle(a.revokePDA))
	m.Handle("GET /api/v1/audit", a.handle(a.getAudit))
	m.Handle("GET /api/v1/jobs", a.handle(a.listJobs))
	m.Handle("GET /api/v1/jobs/{id}", a.handle(a.getJob))
	m.Handle("GET /metrics", http.HandlerFunc(a.getMetrics))
	m.Handle("/", a.handle(a.noRoute))
}

// noRoute answers a request that no route matched: 405 when the path exists with another
// method, else 404.
func (a *API) noRoute(w http.ResponseWriter, r *http.Request) error {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := a.mux.Handler(probe); p != "/" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		return &requestError{status: http.StatusMethodNotAllowed, msg: fmt.Sprintf("method %s not allowed on %s: want %s", r.Method, r.URL.Path, strings.Join(allow, " or "))}
	}
	return &requestError{status: http.StatusNotFound, msg: fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)}
}

// ServeHTTP serves a request and counts it by route and status.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	a.mux.ServeHTTP(sw, r)
	route := r.Pattern
	if route == "" || route == "/" {
		route = "unmatched"
	}
	a.metrics.Add(MetricRequests, 1, "route", route, "code", strconv.Itoa(sw.code))
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions {
		a.audit(r, sw.code)
	}
}

// limitParam reads the limit query parameter: DefaultLimit when absent; a bad value is
// named in fe.
func limitParam(r *http.Request, fe map[string]string) int {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return DefaultLimit
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxLimit {
		fe["limit"] = fmt.Sprintf("%q: want a whole number in 1..%d", s, MaxLimit)
		return DefaultLimit
	}
	return n
}

// Auditor keeps the audit log of changes made through the API.
type Auditor interface {
	Audit(e store.AuditEntry) error
	AuditLog(limit int) ([]store.AuditEntry, error)
}

// audit records a request that may have changed something, whatever its outcome.
func (a *API) audit(r *http.Request, status int) {
	au, ok := a.st.(Auditor)
	if !ok {
		return
	}
	who := r.Header.Get("X-MeterLink-User")
	if u, _, ok := r.BasicAuth(); ok && who == "" {
		who = u
	}
	if who == "" {
		who = "anonymous"
	}
	e := store.AuditEntry{TimeMS: a.now().UnixMilli(), Who: who + "@" + r.RemoteAddr, Method: r.Method, Path: r.URL.RequestURI(), Status: status}
	if err := au.Audit(e); err != nil {
		a.log.Error("audit entry not recorded", "method", e.Method, "path", e.Path, "err", err)
	}
}

// getAudit lists the audit log, newest first.
func (a *API) getAudit(w http.ResponseWriter, r *http.Request) error {
	au, ok := a.st.(Auditor)
	if !ok {
		return fmt.Errorf("audit log: %w", store.ErrNotFound)
	}
	fe := map[string]string{}
	limit := limitParam(r, fe)
	if len(fe) > 0 {
		return &store.FieldError{Fields: fe}
	}
	es, err := au.AuditLog(limit)
	if err != nil {
		return err
	}
	if es == nil {
		es = []store.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"audit": es})
	return nil
}

type statusWriter struct {
	http.ResponseWriter
	code    int
	written bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.written {
		w.code, w.written = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.written = true
	return w.ResponseWriter.Write(b)
}

// handle adapts a handler that returns an error; the error is answered by writeError.
func (a *API) handle(fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			a.writeError(w, r, err)
		}
	})
}

func (a *API) getHealth(w http.ResponseWriter, r *http.Request) error {
	if err := onlyParams(r); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.health())
	return nil
}

func (a *API) getMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", metrics.ContentType)
	_ = a.metrics.Write(w) // the client went away
}

// decode reads a request body strictly into v: one JSON object, no unknown fields, at most
// maxBody bytes. Type errors are reported against the field.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return &requestError{status: http.StatusUnsupportedMediaType, msg: fmt.Sprintf("content type %q: want application/json", ct)}
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &mbe):
			return &requestError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("body is larger than %d bytes", maxBody)}
		case errors.As(err, &te) && te.Field != "":
			return &store.FieldError{Fields: map[string]string{te.Field: fmt.Sprintf("got a JSON %s, want %s", te.Value, jsonType(te.Type.Kind().String()))}}
		case errors.Is(err, io.EOF):
			return badRequest("body is empty: want a JSON object")
		}
		return badRequest("bad JSON body: " + trimJSON(err.Error()))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("bad JSON body: more than one JSON value")
	}
	return nil
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	case "bool":
		return "true or false"
	}
	return "a number (" + kind + ")"
}

func trimJSON(s string) string {
	const p = "json: "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}
