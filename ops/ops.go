package ops

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/meterlink/meterlink/ops/internal/api"
	"github.com/meterlink/meterlink/ops/internal/billing"
	"github.com/meterlink/meterlink/ops/internal/metrics"
	"github.com/meterlink/meterlink/ops/internal/query"
	"github.com/meterlink/meterlink/ops/internal/seclink"
	"github.com/meterlink/meterlink/ops/internal/store"
	"github.com/meterlink/meterlink/ops/internal/vee"
	"github.com/meterlink/meterlink/topic"
	"github.com/meterlink/meterlink/wire"
)

// Provisioning entities, as the lab and the HTTP API give them to ops.
type (
	// Dataset is a set of provisioning entities applied together by [Ops.Provision].
	Dataset = store.Dataset
	// District is a transformer district (台区).
	District = store.District
	// Terminal is a collection terminal with its channel map.
	Terminal = store.Terminal
	// Channel is one entry of a terminal's channel map.
	Channel = store.Channel
	// Meter is a customer's meter on one channel of a terminal.
	Meter = store.Meter
	// Account is a customer account; money is in fen.
	Account = store.Account
	// AccountID names a customer account.
	AccountID = store.AccountID
	// PaymentMethod is prepaid or postpaid.
	PaymentMethod = store.PaymentMethod
	// PDA is a PDA security unit with its SID.
	PDA = store.PDA
	// PDAState is enrolled or revoked.
	PDAState = store.PDAState
)

// The payment methods and PDA states.
const (
	Prepaid     = store.Prepaid
	Postpaid    = store.Postpaid
	PDAEnrolled = store.PDAEnrolled
	PDARevoked  = store.PDARevoked
)

// storage is what ops needs from its store. buntdb ([store.DB]) is the implementation; a
// scale-out store would be a second one.
type storage interface {
	api.Store
	pdaStore
	PDA(id wire.PDAID) (store.PDA, error)
	Apply(recs []wire.Record, notBeforeMS, nowMS int64) (store.Applied, error)
	Prune(beforeMS int64) (int, error)
	Close() error
}

// Interface guard.
var _ storage = (*store.DB)(nil)

// Ops is a running ops process: store, ingest and HTTP API.
type Ops struct {
	cfg     Config
	log     *slog.Logger
	st      storage
	ln      net.Listener
	api     *api.API
	metrics *metrics.Registry
	now     func() time.Time

	// The business side (newBusiness, afterStore): it works in store transactions, so it
	// holds the buntdb store itself rather than the storage interface.
	db      *store.DB
	ledger  *billing.Ledger
	vee     *vee.Validator
	query   *query.Responder
	sec     *seclink.Link // the SECLINK/1 endpoint (seclink.go)
	relay   relay         // groups pushed to handhelds (jobs.go)
	tickets tickets       // handheld tickets (tickets.go)

	out       chan outMsg // ingest's publications, drained by Run's publisher
	connected atomic.Bool
	reconnect chan struct{} // a (re)connect happened: publish status again

	running   atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// New opens the store and binds the HTTP listener; [Ops.Run] starts the work.
func New(cfg Config, log *slog.Logger) (*Ops, error) {
	if cfg.PruneEvery == 0 {
		cfg.PruneEvery = time.Hour
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		return nil, errors.New("ops: logger is required")
	}
	log = log.With("part", "ops")

	path := MemoryDataDir
	if cfg.DataDir != MemoryDataDir {
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
		path = filepath.Join(cfg.DataDir, "ops.db")
	}
	st, err := store.Open(path)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("listen for http on %s: %w", cfg.HTTPAddr, err)
	}
	o := &Ops{
		cfg: cfg, log: log, st: st, ln: ln, metrics: metrics.New(), now: time.Now,
		out: make(chan outMsg, outQueue), reconnect: make(chan struct{}, 1),
	}
	o.declareMetrics()
	o.metrics.Counter(metricAlerts, "Alerts raised by validation and prepaid charging, by code and severity.", true)
	if o.sec, err = newLink(cfg, st, func() time.Time { return o.now() }, o); err != nil {
		ln.Close()
		st.Close()
		return nil, err
	}
	if err := o.newBusiness(cfg, st); err != nil {
		ln.Close()
		st.Close()
		return nil, err
	}
	if o.tickets, err = newTickets(cfg, st, o); err != nil {
		ln.Close()
		st.Close()
		return nil, err
	}
	o.api = api.New(api.Config{
		Store: st, Metrics: o.metrics, Logger: log, Now: func() time.Time { return o.now() }, Rand: rand.Reader,
		Health: func() api.Health { return api.Health{Status: "ok", BrokerConnected: o.connected.Load()} },
		PDAs:   pdaAdmin{o},
		Biz:    o.business(),
	})
	log.Info("ops ready", "config", cfg, "http_addr", ln.Addr().String(), "store", path)
	return o, nil
}

// HTTPAddr returns the address the HTTP API listens on (useful with port 0).
func (o *Ops) HTTPAddr() string { return o.ln.Addr().String() }

// Handler returns the HTTP API handler, for tests and for embedding in another server.
func (o *Ops) Handler() http.Handler { return o.api }

// Provision applies a dataset (districts, accounts, terminals with channel maps, meters,
// PDAs with their SIDs) in one transaction, replacing entities with the same ids. Bad or
// dangling fields fail it with an error naming each, and then nothing changes.
func (o *Ops) Provision(ctx context.Context, ds Dataset) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := o.st.Put(ds, true); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	o.log.Info("dataset provisioned", "districts", len(ds.Districts), "terminals", len(ds.Terminals),
		"meters", len(ds.Meters), "accounts", len(ds.Accounts), "pdas", len(ds.PDAs))
	return nil
}

// LookupPDA returns the SID of an enrolled PDA; ok is false for an unknown or revoked one
// (and when the store fails, which is logged). The broker's account lookup uses it.
func (o *Ops) LookupPDA(id string) (sid []byte, ok bool) {
	p, err := o.st.PDA(wire.PDAID(id))
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			o.log.Error("pda lookup failed", "pda", id, "err", err)
		}
		return nil, false
	}
	if p.State != store.PDAEnrolled {
		return nil, false
	}
	return p.SID, true
}

// Run serves the HTTP API, consumes the PDAs' uplink through the broker (connecting and
// reconnecting until ctx is done) and applies the retention. It blocks until ctx is done and
// everything it started has stopped; nil means a clean stop. Run may be called once.
func (o *Ops) Run(ctx context.Context) error {
	if !o.running.CompareAndSwap(false, true) {
		return errors.New("ops: Run called twice")
	}
	g, gctx := errgroup.WithContext(ctx)
	srv := &http.Server{
		Handler:           o.api,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(o.log.Handler(), slog.LevelWarn),
	}
	g.Go(func() error {
		if err := srv.Serve(o.ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve http on %s: %w", o.HTTPAddr(), err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			return fmt.Errorf("shut down http: %w", err)
		}
		return nil
	})
	g.Go(func() error { return o.runBus(gctx) })
	g.Go(func() error { return o.runRetention(gctx) })
	o.log.Info("ops running", "http_addr", o.HTTPAddr(), "broker_url", o.cfg.BrokerURL)
	err := g.Wait()
	o.log.Info("ops stopped", "err", err)
	return err
}

// runRetention deletes records older than the retention, at start and then periodically.
func (o *Ops) runRetention(ctx context.Context) error {
	if o.cfg.Retention == 0 {
		return nil
	}
	tick := time.NewTicker(o.cfg.PruneEvery)
	defer tick.Stop()
	for {
		before := o.now().Add(-o.cfg.Retention).UnixMilli()
		n, err := o.st.Prune(before)
		switch {
		case err != nil:
			o.log.Error("retention failed", "err", err)
		case n > 0:
			o.metrics.Add(metricPruned, uint64(n))
			o.log.Info("old records deleted", "records", n, "before", time.UnixMilli(before))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// notBeforeMS is the oldest record time that is still stored.
func (o *Ops) notBeforeMS() int64 {
	if o.cfg.Retention == 0 {
		return 0
	}
	return o.now().Add(-o.cfg.Retention).UnixMilli()
}

// Close releases the listener and the store. Call it after Run has returned. It is
// idempotent.
func (o *Ops) Close() error {
	o.closeOnce.Do(func() {
		if err := o.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			o.closeErr = fmt.Errorf("close http listener: %w", err)
		}
		o.closeErr = errors.Join(o.closeErr, o.st.Close())
	})
	return o.closeErr
}

// newBusiness builds billing, validation and the query responder from the configuration.
func (o *Ops) newBusiness(cfg Config, db *store.DB) error {
	bc := billing.Config{Alarm1Fen: cfg.LowBalanceFen}
	if cfg.TierYearStart != "" {
		md, err := billing.ParseMonthDay(cfg.TierYearStart)
		if err != nil {
			return fmt.Errorf("tier-year-start %w", err)
		}
		bc.TierYearStart = md
	}
	if bc.Alarm1Fen > 0 && bc.Alarm1Fen < billing.DefaultConfig().Alarm2Fen {
		bc.Alarm2Fen = bc.Alarm1Fen
	}
	l, err := billing.New(bc, billing.DefaultCatalog())
	if err != nil {
		return fmt.Errorf("billing: %w", err)
	}
	v, err := vee.New(vee.Config{ClockTolerance: cfg.ClockTolerance})
	if err != nil {
		return fmt.Errorf("validation: %w", err)
	}
	o.db, o.ledger, o.vee = db, l, v
	o.query = query.New(db, l, v, func() time.Time { return o.now() })
	return nil
}

func (o *Ops) business() *api.Business {
	return &api.Business{DB: o.db, Ledger: o.ledger, VEE: o.vee, Answer: o.AnswerQuery,
		OnAlerts: func(_ context.Context, as []store.Alert) { o.publishAlerts(as) }}
}

// Alert is a finding of validation or of prepaid charging, as stored and as published on
// topic.OpsAlerts(district).
type Alert = store.Alert

// AnswerQuery answers a handheld's on-site query (owner, payment method, balance, this
// month's consumption, warnings) within the query's deadline and ctx. Errors are in the
// answer's Error field: "invalid", "not_found", "deadline", "internal".
func (o *Ops) AnswerQuery(ctx context.Context, q wire.Query) wire.Answer {
	a := o.query.Answer(ctx, q)
	if a.Error == query.ErrInternal {
		o.log.Error("query failed", "query", q.ID, "handheld", q.Handheld)
	}
	return a
}

// afterStore runs after a batch's records are stored: it validates them (VEE), charges
// prepaid accounts for the new readings, stores the alerts, all in one transaction, and
// queues the new alerts for topic.OpsAlerts. Its state is keyed so that running it twice
// on the same records changes nothing; a failure is logged (the records are stored and
// acknowledged, and the next reading of a meter charges from its last charged one).
func (o *Ops) afterStore(ctx context.Context, a store.Applied) {
	if len(a.Stored) == 0 {
		return
	}
	nowMS := o.now().UnixMilli()
	var alerts []store.Alert
	err := o.db.Update(func(tx *store.Tx) error {
		var err error
		if alerts, err = o.vee.Records(tx, a.Stored, nowMS); err != nil {
			return err
		}
		var rs []store.Reading
		for _, h := range a.Stored {
			rs = append(rs, h.Readings()...)
		}
		bal, err := o.ledger.Charge(tx, rs, nowMS)
		if err != nil {
			return err
		}
		for _, al := range bal {
			ok, err := tx.AddAlert(al)
			if err != nil {
				return err
			}
			if ok {
				alerts = append(alerts, al)
			}
		}
		return nil
	})
	if err != nil {
		o.log.Error("validation and charging failed", "records", len(a.Stored), "err", err)
		return
	}
	if len(alerts) > 0 && o.log.Enabled(ctx, slog.LevelDebug) {
		o.log.Debug("alerts raised", "alerts", len(alerts), "first_code", alerts[0].Code)
	}
	o.publishAlerts(alerts)
}

// alertEvent is the payload on topic.OpsAlerts: the alert with the wire version.
type alertEvent struct {
	V int `json:"v"`
	store.Alert
}

// publishAlerts counts the alerts and queues them for topic.OpsAlerts(district).
func (o *Ops) publishAlerts(as []store.Alert) {
	for _, al := range as {
		o.metrics.Add(metricAlerts, 1, "code", al.Code, "severity", al.Severity)
		if al.District == "" {
			continue
		}
		b, err := json.Marshal(alertEvent{V: wire.Version, Alert: al})
		if err != nil {
			o.log.Error("encode alert", "err", err)
			continue
		}
		o.enqueue(outMsg{kind: "alert", topic: topic.OpsAlerts(string(al.District)), qos: 1, payload: b})
	}
}

// metricAlerts counts alerts raised, by code and severity.
const metricAlerts = "meterlink_ops_alerts_total"
