package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meterlink/meterlink/ops/internal/billing"
	"github.com/meterlink/meterlink/ops/internal/metrics"
	"github.com/meterlink/meterlink/ops/internal/query"
	"github.com/meterlink/meterlink/ops/internal/store"
	"github.com/meterlink/meterlink/ops/internal/vee"
)

// bizNow is the fixture's clock: 2026-06-30 12:00 CST.
var bizNow = time.Date(2026, 6, 30, 12, 0, 0, 0, billing.CST)

// newBizFixture is newFixture with the business side: A1 is prepaid with 100 fen; the
// fixture stores manual readings of M1 at 1 January (0 Wh) and 1 June (2700 kWh).
func newBizFixture(t *testing.T) (*fixture, *[]store.Alert) {
	t.Helper()
	st, err := store.Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ds := store.Dataset{
		Districts: []store.District{{ID: "D01", Name: "文三新村1号变"}},
		Accounts:  []store.Account{{ID: "A1", Owner: "张伟 Zhang Wei", Payment: store.Prepaid, BalanceFen: 100, Tariff: "zj-res-tiered"}},
		Terminals: []store.Terminal{{ID: "T01", District: "D01", Channels: []store.Channel{{Channel: 1, Meter: "M1", Constant: 3200, Multiplier: 1}}}},
		Meters:    []store.Meter{{ID: "M1", Terminal: "T01", Channel: 1, Account: "A1"}},
	}
	if err := st.Put(ds, false); err != nil {
		t.Fatal(err)
	}
	l, err := billing.New(billing.Config{}, billing.DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	v, _ := vee.New(vee.Config{})
	now := func() time.Time { return bizNow }
	q := query.New(st, l, v, now)
	var published []store.Alert
	reg := metrics.New()
	a := New(Config{Store: st, Metrics: reg, Logger: slog.New(slog.DiscardHandler), Now: now,
		Biz: &Business{DB: st, Ledger: l, VEE: v, Answer: q.Answer,
			OnAlerts: func(_ context.Context, as []store.Alert) { published = append(published, as...) }}})
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	f := &fixture{srv: srv, st: st, reg: reg}
	for _, body := range []string{
		`{"meter":"M1","energy_wh":0,"ts_ms":` + msT(ms("2025-12-31T16:00:00Z")).String() + `,"reader":"R1"}`,
		`{"meter":"M1","energy_wh":2700000,"ts_ms":` + msT(ms("2026-05-31T16:00:00Z")).String() + `,"reader":"R1"}`,
	} {
		if code, _, b := f.do(t, "POST", "/api/v1/readings", body); code != http.StatusCreated {
			t.Fatalf("seed reading: %d %s", code, b)
		}
	}
	// The seed readings charged 2700 kWh; start the tests from a balance of 1 元.
	if err := st.Update(func(tx *store.Tx) error { _, err := tx.SetBalance("A1", 100); return err }); err != nil {
		t.Fatal(err)
	}
	return f, &published
}

// msT formats Unix milliseconds for a JSON body.
type msT int64

func (m msT) String() string { return strconv.FormatInt(int64(m), 10) }

func (f *fixture) balance(t *testing.T) int64 {
	t.Helper()
	var a store.Account
	if err := f.st.View(func(tx *store.Tx) error { var err error; a, err = tx.Account("A1"); return err }); err != nil {
		t.Fatal(err)
	}
	return a.BalanceFen
}

func TestBusinessBadRequestsChangeNothing(t *testing.T) {
	f, _ := newBizFixture(t)
	alertsBefore, _ := f.st.Alerts(store.AlertQuery{Limit: 100})
	tests := []struct {
		name, method, path, body string
		code                     int
		want                     string // in the body
	}{
		{"payment without id", "POST", "/api/v1/accounts/A1/payments", `{"amount_fen":100}`, 400, `"id"`},
		{"payment negative", "POST", "/api/v1/accounts/A1/payments", `{"id":"p1","amount_fen":-5}`, 400, `"amount_fen"`},
		{"payment unknown field", "POST", "/api/v1/accounts/A1/payments", `{"id":"p1","amount_fen":5,"x":1}`, 400, "unknown field"},
		{"payment unknown account", "POST", "/api/v1/accounts/A9/payments", `{"id":"p1","amount_fen":5}`, 404, "not found"},
		{"payment bad json", "POST", "/api/v1/accounts/A1/payments", `{"id":`, 400, "bad JSON"},
		{"reading unknown meter", "POST", "/api/v1/readings", `{"meter":"M9","energy_wh":5,"reader":"R1"}`, 400, "unknown meter"},
		{"reading without reader", "POST", "/api/v1/readings", `{"meter":"M1","energy_wh":5}`, 400, `"reader"`},
		{"reading negative", "POST", "/api/v1/readings", `{"meter":"M1","energy_wh":-5,"reader":"R1"}`, 400, `"energy_wh"`},
		{"reading in the future", "POST", "/api/v1/readings", `{"meter":"M1","energy_wh":5,"reader":"R1","ts_ms":1900000000000}`, 400, `"ts_ms"`},
		{"bill to before from", "GET", "/api/v1/accounts/A1/bill?from=2026-06-02&to=2026-06-01", "", 400, "must be after from"},
		{"bill bad date", "GET", "/api/v1/accounts/A1/bill?from=yesterday", "", 400, `"from"`},
		{"bill too long", "GET", "/api/v1/accounts/A1/bill?from=2020-01-01&to=2026-01-01", "", 400, "two years"},
		{"bill unknown account", "GET", "/api/v1/accounts/A9/bill", "", 404, "not found"},
		{"bill unknown param", "GET", "/api/v1/accounts/A1/bill?form=2026-01-01", "", 400, "unknown parameter"},
		{"alerts bad severity", "GET", "/api/v1/alerts?severity=loud", "", 400, `"severity"`},
		{"alerts bad limit", "GET", "/api/v1/alerts?limit=0", "", 400, `"limit"`},
		{"query invalid", "POST", "/api/v1/query", `{"v":1,"id":"q1","handheld":"H01","deadline_ms":1}`, 400, `"invalid"`},
		{"query not json", "POST", "/api/v1/query", `nope`, 400, "bad JSON"},
		{"gaps unknown terminal", "GET", "/api/v1/terminals/T9/gaps", "", 404, "not found"},
		{"import unknown kind", "POST", "/api/v1/import/cows", "id\nx\n", 404, "import kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, b := f.do(t, tt.method, tt.path, tt.body)
			if code != tt.code || !strings.Contains(string(b), tt.want) {
				t.Errorf("%s %s = %d %s, want %d with %q", tt.method, tt.path, code, b, tt.code, tt.want)
			}
		})
	}
	if b := f.balance(t); b != 100 {
		t.Errorf("balance = %d after bad requests, want 100", b)
	}
	if ps, _ := f.st.Payments("A1"); len(ps) != 0 {
		t.Errorf("payments after bad requests: %v", ps)
	}
	if after, _ := f.st.Alerts(store.AlertQuery{Limit: 100}); len(after) != len(alertsBefore) {
		t.Errorf("alerts after bad requests: %d, want %d", len(after), len(alertsBefore))
	}
}

func TestPaymentsIdempotent(t *testing.T) {
	f, _ := newBizFixture(t)
	body := `{"id":"wx-20260630-1","amount_fen":5000,"method":"wechat"}`
	code, _, b := f.do(t, "POST", "/api/v1/accounts/A1/payments", body)
	if code != http.StatusCreated || !strings.Contains(string(b), `"balance_after_fen":5100`) {
		t.Fatalf("first payment = %d %s", code, b)
	}
	code, _, b = f.do(t, "POST", "/api/v1/accounts/A1/payments", body)
	if code != http.StatusOK || !strings.Contains(string(b), `"balance_after_fen":5100`) {
		t.Errorf("same payment again = %d %s, want 200 with the first", code, b)
	}
	code, _, b = f.do(t, "POST", "/api/v1/accounts/A1/payments", `{"id":"wx-20260630-1","amount_fen":6000,"method":"wechat"}`)
	if code != http.StatusConflict {
		t.Errorf("payment id reused = %d %s, want 409", code, b)
	}
	if bal := f.balance(t); bal != 5100 {
		t.Errorf("balance = %d, want 5100", bal)
	}
	code, _, b = f.do(t, "GET", "/api/v1/accounts/A1/payments", "")
	if code != 200 || strings.Count(string(b), `"id"`) != 1 {
		t.Errorf("payments = %d %s, want one", code, b)
	}
}

func TestManualReadingBillAndAlerts(t *testing.T) {
	f, published := newBizFixture(t)
	// An estimate (locked door), then the actual reading settles it.
	code, _, b := f.do(t, "POST", "/api/v1/readings", `{"meter":"M1","energy_wh":2950000,"estimated":true,"reader":"R1","ts_ms":`+msT(ms("2026-06-30T02:00:00Z")).String()+`}`)
	if code != http.StatusCreated || !strings.Contains(string(b), `"estimated":true`) || !strings.Contains(string(b), `"reader":"R1"`) {
		t.Fatalf("estimated reading = %d %s", code, b)
	}
	code, _, b = f.do(t, "GET", "/api/v1/accounts/A1/bill?from=2026-06-01&to=2026-07-01", "")
	if code != 200 || !strings.Contains(string(b), `"estimated":true`) {
		t.Errorf("bill with an estimate = %d %s", code, b)
	}
	code, _, b = f.do(t, "POST", "/api/v1/readings", `{"meter":"M1","energy_wh":2900000,"reader":"R1","ts_ms":`+msT(ms("2026-06-30T03:00:00Z")).String()+`}`)
	if code != http.StatusCreated {
		t.Fatalf("actual reading = %d %s", code, b)
	}
	code, _, b = f.do(t, "GET", "/api/v1/accounts/A1/bill?from=2026-06-01&to=2026-07-01", "")
	var bill billing.Bill
	if err := json.Unmarshal(b, &bill); err != nil || code != 200 {
		t.Fatalf("bill = %d %s", code, b)
	}
	if bill.Total != "114.60" || bill.Estimated || len(bill.Lines) != 2 {
		t.Errorf("bill = %s 元, estimated %v, %d lines; want 114.60 in 2 lines, actual", bill.Total, bill.Estimated, len(bill.Lines))
	}
	// The prepaid balance paid for the 200 kWh and went below zero: an arrears alert.
	if bal := f.balance(t); bal != 100-11460 {
		t.Errorf("balance = %d, want %d", bal, 100-11460)
	}
	// A reading below the last one: reverse running, stored, listed and published.
	code, _, b = f.do(t, "POST", "/api/v1/readings", `{"meter":"M1","energy_wh":2800000,"reader":"R1","ts_ms":`+msT(ms("2026-06-30T03:30:00Z")).String()+`}`)
	if code != http.StatusCreated || !strings.Contains(string(b), "reverse_running") {
		t.Errorf("backward reading = %d %s, want a reverse_running alert", code, b)
	}
	code, _, b = f.do(t, "GET", "/api/v1/alerts?meter=M1&severity=critical", "")
	if code != 200 || !strings.Contains(string(b), "reverse_running") || !strings.Contains(string(b), `"arrears"`) {
		t.Errorf("alerts = %d %s", code, b)
	}
	var codes []string
	for _, a := range *published {
		codes = append(codes, a.Code)
	}
	if got := strings.Join(codes, ","); !strings.Contains(got, "reverse_running") || !strings.Contains(got, "arrears") {
		t.Errorf("published alerts = %v", codes)
	}
	if bal := f.balance(t); bal != 100-11460 {
		t.Errorf("balance after a backward reading = %d, want unchanged %d", bal, 100-11460)
	}
}

func TestQueryTariffsGapsAndDashboard(t *testing.T) {
	f, _ := newBizFixture(t)
	code, _, b := f.do(t, "POST", "/api/v1/query", `{"v":1,"id":"q1","handheld":"H01","meter":"M1","deadline_ms":`+msT(time.Now().Add(time.Minute).UnixMilli()).String()+`}`)
	if code != 200 || !strings.Contains(string(b), `"owner":"张伟 Zhang Wei"`) || !strings.Contains(string(b), `"payment":"prepaid"`) {
		t.Errorf("query = %d %s", code, b)
	}
	code, _, b = f.do(t, "POST", "/api/v1/query", `{"v":1,"id":"q2","handheld":"H01","meter":"M9","deadline_ms":`+msT(time.Now().Add(time.Minute).UnixMilli()).String()+`}`)
	if code != 404 || !strings.Contains(string(b), "not_found") {
		t.Errorf("query for an unknown meter = %d %s", code, b)
	}
	code, _, b = f.do(t, "GET", "/api/v1/tariffs", "")
	if code != 200 || !strings.Contains(string(b), `"zj-res-tiered"`) || !strings.Contains(string(b), `"0.5380"`) {
		t.Errorf("tariffs = %d %.200s", code, b)
	}
	code, _, b = f.do(t, "GET", "/api/v1/terminals/T01/gaps", "")
	if code != 200 || !strings.Contains(string(b), `"gaps":[]`) {
		t.Errorf("gaps = %d %s", code, b)
	}
	for path, want := range map[string]string{"/": "<title>MeterLink ops</title>", "/ui/app.js": "refresh", "/ui/style.css": "--accent"} {
		resp, err := f.srv.Client().Get(f.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s = %d, want 200 with %q", path, resp.StatusCode, want)
		}
	}
}
