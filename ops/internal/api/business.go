package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/meterlink/meterlink/ops/internal/billing"
	"github.com/meterlink/meterlink/ops/internal/dashboard"
	"github.com/meterlink/meterlink/ops/internal/store"
	"github.com/meterlink/meterlink/ops/internal/vee"
	"github.com/meterlink/meterlink/wire"
)

// Business is ops' billing, validation and query side as the API uses it: tariffs, bills,
// payments, manual readings, alerts, handheld queries, CSV import and the dashboard.
type Business struct {
	DB     *store.DB
	Ledger *billing.Ledger
	VEE    *vee.Validator
	Answer func(ctx context.Context, q wire.Query) wire.Answer
	// OnAlerts is given the new alerts that a request raised (manual readings), for
	// publishing; optional.
	OnAlerts func(ctx context.Context, as []store.Alert)
}

// Limits of the business endpoints.
const (
	maxBillSpan   = 2 * 366 * 24 * time.Hour
	maxPaymentFen = 1_000_000_000 // 1,000,000 元
	maxFuture     = 5 * time.Minute
)

func (a *API) businessRoutes(b *Business) {
	a.biz = b
	m := a.mux
	m.Handle("GET /api/v1/tariffs", a.handle(a.listTariffs))
	m.Handle("GET /api/v1/accounts/{id}/bill", a.handle(a.getBill))
	m.Handle("GET /api/v1/accounts/{id}/payments", a.handle(a.listPayments))
	m.Handle("POST /api/v1/accounts/{id}/payments", a.handle(a.postPayment))
	m.Handle("POST /api/v1/readings", a.handle(a.postReading))
	m.Handle("GET /api/v1/alerts", a.handle(a.listAlerts))
	m.Handle("GET /api/v1/terminals/{id}/gaps", a.handle(a.getGaps))
	m.Handle("POST /api/v1/query", a.handle(a.postQuery))
	m.Handle("POST /api/v1/import/{kind}", a.handle(a.postImport))
	ui := dashboard.Handler()
	m.Handle("GET /{$}", ui)
	m.Handle("GET /ui/", ui)
}

func (a *API) listTariffs(w http.ResponseWriter, r *http.Request) error {
	if err := onlyParams(r); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"tariffs": a.biz.Ledger.Catalog().All()})
	return nil
}

// parseWhen reads a bill bound: an RFC 3339 time, or a date (midnight in the billing zone).
func parseWhen(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.ParseInLocation(time.DateOnly, s, loc); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

func (a *API) getBill(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if err := onlyParams(r, "from", "to"); err != nil {
		return err
	}
	cfg := a.biz.Ledger.Config()
	from, to := cfg.Month(a.now())
	fe := map[string]string{}
	for name, dst := range map[string]*time.Time{"from": &from, "to": &to} {
		if s := r.URL.Query().Get(name); s != "" {
			t, err := parseWhen(s, cfg.Location)
			if err != nil {
				fe[name] = fmt.Sprintf("%q: want a date (2026-03-01) or an RFC 3339 time", s)
				continue
			}
			*dst = t
		}
	}
	if len(fe) == 0 && !to.After(from) {
		fe["to"] = "must be after from"
	} else if len(fe) == 0 && to.Sub(from) > maxBillSpan {
		fe["to"] = "a bill spans at most two years"
	}
	if len(fe) > 0 {
		return &store.FieldError{Fields: fe}
	}
	var b billing.Bill
	if err := a.biz.DB.View(func(tx *store.Tx) error {
		var err error
		b, err = a.biz.Ledger.Bill(tx, store.AccountID(id), from, to)
		return err
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

// NewPayment is the body of POST /api/v1/accounts/{id}/payments.
type NewPayment struct {
	ID        string `json:"id"`               // the payment channel's id; the same id again is answered with the first payment
	AmountFen int64  `json:"amount_fen"`       // positive
	Method    string `json:"method,omitempty"` // e.g. cash, wechat, bank
	TimeMS    int64  `json:"ts_ms,omitempty"`  // default now
}

func (a *API) listPayments(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if err := onlyParams(r); err != nil {
		return err
	}
	ps, err := a.biz.DB.Payments(store.AccountID(id))
	if err != nil {
		return err
	}
	if ps == nil {
		ps = []store.Payment{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"payments": ps})
	return nil
}

func (a *API) postPayment(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if err := onlyParams(r); err != nil {
		return err
	}
	var req NewPayment
	if err := decode(w, r, &req); err != nil {
		return err
	}
	fe := fields{}
	if !wire.ValidID(req.ID) {
		fe["id"] = fmt.Sprintf("%q is not a valid id (1-64 letters, digits, '-', '_', '.')", req.ID)
	}
	if req.AmountFen <= 0 || req.AmountFen > maxPaymentFen {
		fe["amount_fen"] = fmt.Sprintf("%d: want 1..%d fen", req.AmountFen, maxPaymentFen)
	}
	if len(req.Method) > 32 || strings.ContainsFunc(req.Method, func(r rune) bool { return r < 0x20 }) {
		fe["method"] = "at most 32 printable characters"
	}
	if req.TimeMS < 0 {
		fe["ts_ms"] = "must not be negative"
	}
	if len(fe) > 0 {
		return &store.FieldError{Fields: fe}
	}
	if req.TimeMS == 0 {
		req.TimeMS = a.now().UnixMilli()
	}
	var p store.Payment
	var created bool
	if err := a.biz.DB.Update(func(tx *store.Tx) error {
		var err error
		p, created, err = a.biz.Ledger.Pay(tx, store.Payment{ID: req.ID, Account: store.AccountID(id), AmountFen: req.AmountFen, Method: req.Method, TimeMS: req.TimeMS})
		return err
	}); err != nil {
		return err
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
		a.log.Info("payment recorded", "account", id, "payment", p.ID, "amount_fen", p.AmountFen, "balance_fen", p.BalanceAfter)
	}
	writeJSON(w, code, p)
	return nil
}

// fields collects field problems of a request.
type fields map[string]string

// ManualReading is the body of POST /api/v1/readings: a reading taken by a meter reader
// on site (抄表), actual or estimated (估抄, e.g. a locked door).
type ManualReading struct {
	Meter     wire.MeterID `json:"meter"`
	EnergyWh  int64        `json:"energy_wh"`       // the register, Wh
	TimeMS    int64        `json:"ts_ms,omitempty"` // when it was read; default now
	Estimated bool         `json:"estimated,omitempty"`
	Reader    string       `json:"reader"` // the reader's id
}

// ManualResult is the answer to POST /api/v1/readings: the stored reading and the alerts
// its validation raised.
type ManualResult struct {
	Reading store.Reading `json:"reading"`
	Alerts  []store.Alert `json:"alerts"`
}

func (a *API) postReading(w http.ResponseWriter, r *http.Request) error {
	if err := onlyParams(r); err != nil {
		return err
	}
	var req ManualReading
	if err := decode(w, r, &req); err != nil {
		return err
	}
	now := a.now()
	fe := fields{}
	if !wire.ValidID(string(req.Meter)) {
		fe["meter"] = fmt.Sprintf("%q is not a valid id", req.Meter)
	}
	if req.EnergyWh < 0 || req.EnergyWh > 1<<50 {
		fe["energy_wh"] = fmt.Sprintf("%d: want a register value in Wh, 0 or more", req.EnergyWh)
	}
	if !wire.ValidID(req.Reader) {
		fe["reader"] = fmt.Sprintf("%q: the reader's id is required (1-64 letters, digits, '-', '_', '.')", req.Reader)
	}
	if req.TimeMS == 0 {
		req.TimeMS = now.UnixMilli()
	} else if req.TimeMS < 0 || req.TimeMS > now.Add(maxFuture).UnixMilli() {
		fe["ts_ms"] = "must be a Unix millisecond time, not in the future"
	}
	if len(fe) > 0 {
		return &store.FieldError{Fields: fe}
	}
	var res ManualResult
	err := a.biz.DB.Update(func(tx *store.Tx) error {
		m, err := tx.Meter(req.Meter)
		if err != nil {
			return &store.FieldError{Fields: map[string]string{"meter": fmt.Sprintf("unknown meter %q", req.Meter)}}
		}
		t, err := tx.Terminal(m.Terminal)
		if err != nil {
			return err
		}
		rd := store.Reading{TimeMS: req.TimeMS, District: t.District, Terminal: t.ID, Channel: m.Channel, Meter: m.ID,
			EnergyWh: req.EnergyWh, Multiplier: 1, Estimated: req.Estimated, Reader: req.Reader, Kind: store.KindManual}
		for _, c := range t.Channels {
			if c.Channel == m.Channel {
				rd.Multiplier, rd.Constant = max(c.Multiplier, 1), c.Constant
			}
		}
		if err := tx.PutManualReading(rd); err != nil {
			return err
		}
		as, err := a.biz.VEE.Manual(tx, []store.Reading{rd}, now.UnixMilli())
		if err != nil {
			return err
		}
		bal, err := a.biz.Ledger.Charge(tx, []store.Reading{rd}, now.UnixMilli())
		if err != nil {
			return err
		}
		for _, al := range bal {
			ok, err := tx.AddAlert(al)
			if err != nil {
				return err
			}
			if ok {
				as = append(as, al)
			}
		}
		res = ManualResult{Reading: rd, Alerts: as}
		return nil
	})
	if err != nil {
		return err
	}
	if res.Alerts == nil {
		res.Alerts = []store.Alert{}
	} else if a.biz.OnAlerts != nil {
		a.biz.OnAlerts(r.Context(), res.Alerts)
	}
	a.log.Info("manual reading stored", "meter", req.Meter, "reader", req.Reader, "estimated", req.Estimated, "alerts", len(res.Alerts))
	writeJSON(w, http.StatusCreated, res)
	return nil
}

func (a *API) listAlerts(w http.ResponseWriter, r *http.Request) error {
	if err := onlyParams(r, "district", "terminal", "meter", "account", "severity", "code", "limit"); err != nil {
		return err
	}
	fe := map[string]string{}
	q := store.AlertQuery{
		District: wire.DistrictID(filterID(r, "district", fe)), Terminal: wire.TerminalID(filterID(r, "terminal", fe)),
		Meter: wire.MeterID(filterID(r, "meter", fe)), Account: store.AccountID(filterID(r, "account", fe)),
		Code: filterID(r, "code", fe), Severity: r.URL.Query().Get("severity"), Limit: DefaultLimit,
	}
	switch q.Severity {
	case "", store.SeverityInfo, store.SeverityWarning, store.SeverityCritical:
	default:
		fe["severity"] = fmt.Sprintf("%q: want info, warning or critical", q.Severity)
	}
	if r.URL.Query().Has("limit") {
		q.Limit = limitParam(r, fe)
	}
	if len(fe) > 0 {
		return &store.FieldError{Fields: fe}
	}
	as, err := a.biz.DB.Alerts(q)
	if err != nil {
		return err
	}
	if as == nil {
		as = []store.Alert{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"alerts": as})
	return nil
}

func (a *API) getGaps(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if err := onlyParams(r); err != nil {
		return err
	}
	var gaps []vee.SeqRange
	if err := a.biz.DB.View(func(tx *store.Tx) error {
		if _, err := tx.Terminal(wire.TerminalID(id)); err != nil {
			return err
		}
		gaps, err = a.biz.VEE.Gaps(tx, wire.TerminalID(id))
		return err
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"terminal": id, "gaps": gaps})
	return nil
}

func (a *API) postQuery(w http.ResponseWriter, r *http.Request) error {
	if err := onlyParams(r); err != nil {
		return err
	}
	var q wire.Query
	if err := decode(w, r, &q); err != nil {
		return err
	}
	ans := a.biz.Answer(r.Context(), q)
	code := http.StatusOK
	switch ans.Error {
	case "invalid":
		code = http.StatusBadRequest
	case "not_found":
		code = http.StatusNotFound
	case "deadline":
		code = http.StatusGatewayTimeout
	case "internal":
		code = http.StatusInternalServerError
	}
	writeJSON(w, code, ans)
	return nil
}
