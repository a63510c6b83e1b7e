package api

import (
	"bytes"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterlink/meterlink/ops/internal/metrics"
	"github.com/meterlink/meterlink/ops/internal/store"
	"github.com/meterlink/meterlink/wire"
)

type fixture struct {
	srv *httptest.Server
	st  *store.DB
	reg *metrics.Registry
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := store.Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ds := store.Dataset{
		Districts: []store.District{{ID: "D01", Name: "文三新村1号变"}},
		Accounts:  []store.Account{{ID: "A1", Owner: "张伟 Zhang Wei", Payment: store.Prepaid, BalanceFen: 100, Tariff: "zj-res-tiered"}},
		Terminals: []store.Terminal{{ID: "T01", District: "D01", Channels: []store.Channel{
			{Channel: 1, Meter: "M1", Constant: 3200, BaseWh: 5000, Multiplier: 1},
			{Channel: 2, Meter: "M2", Constant: 1600, Multiplier: 1},
		}}},
		Meters: []store.Meter{{ID: "M1", Terminal: "T01", Channel: 1, Account: "A1"}},
		PDAs:   []store.PDA{{ID: "P01", SID: bytes.Repeat([]byte{9}, 32), State: store.PDAEnrolled, CreatedMS: 1}},
	}
	if err := st.Put(ds, false); err != nil {
		t.Fatal(err)
	}
	var recs []wire.Record
	for i := int64(1); i <= 3; i++ {
		recs = append(recs, wire.Record{Terminal: "T01", Seq: uint64(i), Kind: wire.KindReading, TimeMS: ms("2026-03-01T00:00:00Z") + i*3600_000,
			Channels: []wire.ChannelReading{
				{Channel: 1, Meter: "M1", Pulses: uint64(i) * 3200, EnergyWh: 5000 + 1000*i, Constant: 3200, Multiplier: 1},
				{Channel: 2, Meter: "M2", Pulses: uint64(i) * 1600, EnergyWh: 1000 * i, Constant: 1600, Multiplier: 1},
			}})
	}
	if _, err := st.Apply(recs, 0, 1); err != nil {
		t.Fatal(err)
	}
	reg := metrics.New()
	a := New(Config{Store: st, Metrics: reg, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return time.UnixMilli(1_800_000_000_000) }, Rand: bytes.NewReader(bytes.Repeat([]byte{0xab}, 64))})
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, st: st, reg: reg}
}

func ms(s string) int64 {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMilli()
}

func (f *fixture) do(t *testing.T, method, path, body string) (int, http.Header, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func TestBadRequestsChangeNothing(t *testing.T) {
	f := newFixture(t)
	before, err := f.st.Load()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path, body string
		code                     int
		field                    string // a field the error must name, if any
	}{
		{"unknown route", "GET", "/api/v1/nothing", "", 404, ""},
		{"wrong method", "DELETE", "/api/v1/districts", "", 405, ""},
		{"bad json", "POST", "/api/v1/districts", `{"id":`, 400, ""},
		{"empty body", "POST", "/api/v1/districts", "", 400, ""},
		{"two values", "POST", "/api/v1/districts", `{"id":"D05"}{"id":"D06"}`, 400, ""},
		{"unknown field", "POST", "/api/v1/districts", `{"id":"D05","nmae":"x"}`, 400, ""},
		{"wrong type", "POST", "/api/v1/accounts", `{"id":"A5","owner":"x","payment":"prepaid","tariff":"t","balance_fen":"12"}`, 400, "balance_fen"},
		{"bad district id", "POST", "/api/v1/districts", `{"id":"D 5"}`, 400, "id"},
		{"duplicate district", "POST", "/api/v1/districts", `{"id":"D01"}`, 409, ""},
		{"terminal unknown district", "POST", "/api/v1/terminals", `{"id":"T05","district":"D09","channels":[]}`, 400, "district"},
		{"terminal bad channel", "POST", "/api/v1/terminals", `{"id":"T05","district":"D01","channels":[{"ch":0,"meter":"M5","constant":3200,"base_wh":0,"multiplier":1}]}`, 400, "channels[0].ch"},
		{"terminal bad constant", "POST", "/api/v1/terminals", `{"id":"T05","district":"D01","channels":[{"ch":1,"meter":"M5","constant":3333,"base_wh":0,"multiplier":1}]}`, 400, "channels[0].constant"},
		{"meter not mapped", "POST", "/api/v1/meters", `{"id":"M9","terminal":"T01","ch":3}`, 400, "ch"},
		{"meter unknown account", "POST", "/api/v1/meters", `{"id":"M2","terminal":"T01","ch":2,"account":"A9"}`, 400, "account"},
		{"account bad payment", "POST", "/api/v1/accounts", `{"id":"A5","owner":"李娜","payment":"cash","tariff":"t"}`, 400, "payment"},
		{"account no owner", "POST", "/api/v1/accounts", `{"id":"A5","owner":"","payment":"prepaid","tariff":"t"}`, 400, "owner"},
		{"pda bad id", "POST", "/api/v1/pdas", `{"id":"P/1"}`, 400, "id"},
		{"pda with sid", "POST", "/api/v1/pdas", `{"id":"P05","sid":"00"}`, 400, ""},
		{"pda exists", "POST", "/api/v1/pdas", `{"id":"P01"}`, 409, ""},
		{"not json content", "POST", "/api/v1/districts", "", 415, ""},
		{"revoke unknown", "POST", "/api/v1/pdas/P77/revoke", "", 404, ""},
		{"get unknown", "GET", "/api/v1/terminals/T77", "", 404, ""},
		{"get bad id", "GET", "/api/v1/meters/M%20x", "", 400, ""},
		{"readings bad time", "GET", "/api/v1/readings?from=yesterday", "", 400, "from"},
		{"readings to before from", "GET", "/api/v1/readings?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z", "", 400, "to"},
		{"readings bad limit", "GET", "/api/v1/readings?limit=0", "", 400, "limit"},
		{"readings limit too big", "GET", "/api/v1/readings?limit=10001", "", 400, "limit"},
		{"readings limit not a number", "GET", "/api/v1/readings?limit=ten", "", 400, "limit"},
		{"readings bad meter", "GET", "/api/v1/readings?meter=a%2Fb", "", 400, "meter"},
		{"readings unknown param", "GET", "/api/v1/readings?termnal=T01", "", 400, "termnal"},
		{"readings repeated param", "GET", "/api/v1/readings?meter=M1&meter=M2", "", 400, "meter"},
		{"readings bad format", "GET", "/api/v1/readings?format=xml", "", 400, "format"},
		{"latest takes no time", "GET", "/api/v1/readings/latest?from=2026-03-01T00:00:00Z", "", 400, "from"},
		{"list unknown filter", "GET", "/api/v1/terminals?meter=M1", "", 400, "meter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var code int
			var body []byte
			if tt.name == "not json content" {
				req, _ := http.NewRequest("POST", f.srv.URL+tt.path, strings.NewReader(`{"id":"D05"}`))
				req.Header.Set("Content-Type", "text/plain")
				resp, err := f.srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				code = resp.StatusCode
			} else {
				code, _, body = f.do(t, tt.method, tt.path, tt.body)
			}
			if code != tt.code {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.path, code, body, tt.code)
			}
			var eb errorBody
			if err := json.Unmarshal(body, &eb); err != nil || eb.Error == "" {
				t.Fatalf("body %q is not a JSON error with a message", body)
			}
			if tt.field != "" && eb.Fields[tt.field] == "" {
				t.Errorf("error %s does not name field %q", body, tt.field)
			}
		})
	}
	after, err := f.st.Load()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("bad requests changed the store (-before +after):\n%s", diff)
	}
}

func TestProvisioning(t *testing.T) {
	f := newFixture(t)
	steps := []struct {
		method, path, body string
		code               int
	}{
		{"POST", "/api/v1/districts", `{"id":"D02","name":"湖墅花园2号变"}`, 201},
		{"POST", "/api/v1/terminals", `{"id":"T02","district":"D02","channels":[{"ch":1,"meter":"M21","constant":6400,"base_wh":123000,"multiplier":30}]}`, 201},
		{"POST", "/api/v1/accounts", `{"id":"A2","owner":"王芳 Wang Fang","address":"杭州市拱墅区湖墅南路1号","payment":"postpaid","balance_fen":-1500,"tariff":"zj-res-tou"}`, 201},
		{"POST", "/api/v1/meters", `{"id":"M21","terminal":"T02","ch":1,"account":"A2"}`, 201},
	}
	for _, s := range steps {
		if code, _, body := f.do(t, s.method, s.path, s.body); code != s.code {
			t.Fatalf("%s %s = %d %s, want %d", s.method, s.path, code, body, s.code)
		}
	}
	code, _, body := f.do(t, "GET", "/api/v1/terminals?district=D02", "")
	var got struct{ Terminals []store.Terminal }
	if code != 200 || json.Unmarshal(body, &got) != nil {
		t.Fatalf("GET terminals = %d %s", code, body)
	}
	want := []store.Terminal{{ID: "T02", District: "D02", Channels: []store.Channel{{Channel: 1, Meter: "M21", Constant: 6400, BaseWh: 123000, Multiplier: 30}}}}
	if diff := cmp.Diff(want, got.Terminals); diff != "" {
		t.Errorf("terminals of D02 (-want +got):\n%s", diff)
	}
	code, _, body = f.do(t, "GET", "/api/v1/accounts/A2", "")
	var acc store.Account
	if code != 200 || json.Unmarshal(body, &acc) != nil || acc.BalanceFen != -1500 || acc.Owner != "王芳 Wang Fang" {
		t.Errorf("GET accounts/A2 = %d %s", code, body)
	}
}

func TestPDAs(t *testing.T) {
	f := newFixture(t)
	code, hdr, body := f.do(t, "POST", "/api/v1/pdas", `{"id":"P02"}`)
	if code != 201 {
		t.Fatalf("POST pdas = %d %s", code, body)
	}
	var created struct {
		ID        string `json:"id"`
		State     string `json:"state"`
		CreatedMS int64  `json:"created_ms"`
		SID       string `json:"sid"`
	}
	if err := json.Unmarshal(body, &created); err != nil {
		t.Fatal(err)
	}
	wantSID := strings.Repeat("ab", 32)
	if created.ID != "P02" || created.State != "enrolled" || created.SID != wantSID || created.CreatedMS != 1_800_000_000_000 {
		t.Errorf("created = %+v", created)
	}
	if hdr.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", hdr.Get("Cache-Control"))
	}
	p, err := f.st.PDA("P02")
	if err != nil || hex.EncodeToString(p.SID) != wantSID {
		t.Errorf("stored PDA = %+v, %v", p, err)
	}
	for _, path := range []string{"/api/v1/pdas", "/api/v1/pdas/P02"} {
		_, _, body := f.do(t, "GET", path, "")
		if strings.Contains(string(body), "sid") || strings.Contains(string(body), wantSID) {
			t.Errorf("GET %s shows the SID: %s", path, body)
		}
	}
	if code, _, body := f.do(t, "POST", "/api/v1/pdas/P02/revoke", ""); code != 200 || !strings.Contains(string(body), `"revoked"`) {
		t.Errorf("revoke = %d %s", code, body)
	}
}

func TestReadings(t *testing.T) {
	f := newFixture(t)
	code, _, body := f.do(t, "GET", "/api/v1/readings?meter=M1&from=2026-03-01T01:30:00Z&to=2026-03-01T05:00:00%2B00:00", "")
	var got struct{ Readings []store.Reading }
	if code != 200 || json.Unmarshal(body, &got) != nil {
		t.Fatalf("GET readings = %d %s", code, body)
	}
	var seqs []uint64
	for _, r := range got.Readings {
		seqs = append(seqs, r.Seq)
	}
	if diff := cmp.Diff([]uint64{2, 3}, seqs); diff != "" {
		t.Errorf("M1 seqs (-want +got):\n%s", diff)
	}

	code, _, body = f.do(t, "GET", "/api/v1/readings?district=D01&limit=4", "")
	if code != 200 || json.Unmarshal(body, &got) != nil || len(got.Readings) != 4 {
		t.Errorf("GET readings?district=D01&limit=4 = %d %s", code, body)
	}
	code, _, body = f.do(t, "GET", "/api/v1/readings?terminal=T77", "")
	if code != 200 || string(body) != "{\"readings\":[]}\n" {
		t.Errorf("GET readings of an unknown terminal = %d %s, want an empty list", code, body)
	}

	code, hdr, body := f.do(t, "GET", "/api/v1/readings?terminal=T01&format=csv", "")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV = %d %s %s", code, hdr.Get("Content-Type"), body)
	}
	rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 7 || !cmp.Equal(rows[0], csvHeader) {
		t.Fatalf("CSV has %d rows, header %v", len(rows), rows[0])
	}
	wantRow := []string{"2026-03-01T01:00:00.000Z", "1772326800000", "D01", "T01", "1", "reading", "", "M1", "1", "6000", "3200", "3200", "1", "false"}
	if diff := cmp.Diff(wantRow, rows[1]); diff != "" {
		t.Errorf("first CSV row (-want +got):\n%s", diff)
	}

	code, _, body = f.do(t, "GET", "/api/v1/readings/latest?terminal=T01", "")
	if code != 200 || json.Unmarshal(body, &got) != nil || len(got.Readings) != 2 || got.Readings[0].Seq != 3 {
		t.Errorf("latest = %d %s", code, body)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	f := newFixture(t)
	if code, _, body := f.do(t, "GET", "/api/v1/health", ""); code != 200 || !strings.Contains(string(body), `"status":"ok"`) {
		t.Errorf("health = %d %s", code, body)
	}
	f.do(t, "GET", "/api/v1/readings?limit=0", "")
	code, hdr, body := f.do(t, "GET", "/metrics", "")
	if code != 200 || hdr.Get("Content-Type") != metrics.ContentType {
		t.Fatalf("metrics = %d %s", code, hdr.Get("Content-Type"))
	}
	for _, want := range []string{
		"# TYPE meterlink_ops_api_requests_total counter",
		`meterlink_ops_api_requests_total{route="GET /api/v1/health",code="200"} 1`,
		`meterlink_ops_api_requests_total{route="GET /api/v1/readings",code="400"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}
