package api

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/meterlink/meterlink/ops/internal/billing"
	"github.com/meterlink/meterlink/ops/internal/store"
)

func (f *fixture) postCSV(t *testing.T, kind, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", f.srv.URL+"/api/v1/import/"+kind, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/csv; charset=utf-8")
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestImportCSV(t *testing.T) {
	f, _ := newBizFixture(t)
	steps := []struct {
		kind, body string
		code       int
		want       []string
	}{
		{"districts", "id,name\nD02,湖墅花园2号变\nD03,解放路3号箱变\n", 201, []string{`"created":2`}},
		{"terminals", "terminal,district,ch,meter,constant,base_wh,multiplier\nT02,D02,1,M21,3200,0,1\nT02,D02,2,M22,1600,5000,30\nT03,D03,,,,,\n",
			201, []string{`"created":2`, `"rows":3`}},
		{"accounts", "id,owner,address,payment,balance_fen,tariff\nA21,王芳,\"杭州市, 1号\",prepaid,5000,zj-res-tou\nA22,李娜,,postpaid,,cn-res-tiered-monthly\n",
			201, []string{`"created":2`}},
		{"meters", "id,terminal,ch,account\nM21,T02,1,A21\nM22,T02,2,\n", 201, []string{`"created":2`}},
		// Every problem is named by row and field; nothing is imported.
		{"terminals", "terminal,district,ch,meter,constant,base_wh,multiplier\nT04,D02,1,M41,3201,0,1\nT04,D03,2,M42,3200,x,1\nT02,D09,1,M21,3200,0,1\n", 400,
			[]string{`"row 2, constant"`, `"row 3, district"`, `"row 3, base_wh"`, `"row 4, terminal"`, `"row 4, district"`}},
		{"accounts", "id,owner,payment,tariff\nA23,,prepaid,zj-res-tiered\nA24,赵敏,credit,nope\nA21,X,prepaid,zj-res-tiered\nA23,Y,prepaid,zj-res-tiered\n", 400,
			[]string{`"row 2, owner"`, `"row 3, payment"`, `"row 3, tariff"`, `"row 4, id":"\"A21\" already exists"`, `"row 5, id":"\"A23\" appears again (first on row 2)"`}},
		{"meters", "id,terminal,ch,account\nM41,T02,3,A21\nM42,T09,1,\nM43,T02,1,A99\n", 400,
			[]string{`"row 2, ch"`, `"row 3, terminal"`, `"row 4, account"`}},
		{"districts", "id,colour\nD05,red\n", 400, []string{`"row 1, header"`}},
		{"districts", "name\nx\n", 400, []string{`required column \"id\"`}},
		{"districts", "", 400, []string{"empty"}},
		{"districts", "id\n\"unterminated\n", 400, []string{`"csv"`}},
	}
	for i, s := range steps {
		code, body := f.postCSV(t, s.kind, s.body)
		if code != s.code {
			t.Errorf("step %d %s: %d %s, want %d", i, s.kind, code, body, s.code)
			continue
		}
		for _, w := range s.want {
			if !strings.Contains(body, w) {
				t.Errorf("step %d %s: %s lacks %s", i, s.kind, body, w)
			}
		}
	}
	ds, err := f.st.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Districts) != 3 || len(ds.Terminals) != 3 || len(ds.Accounts) != 3 || len(ds.Meters) != 3 {
		t.Errorf("after the imports: %d districts, %d terminals, %d accounts, %d meters; want 3 each",
			len(ds.Districts), len(ds.Terminals), len(ds.Accounts), len(ds.Meters))
	}
	req, _ := http.NewRequest("POST", f.srv.URL+"/api/v1/import/districts", strings.NewReader("id\nD9\n"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("import as JSON = %d, want 415", resp.StatusCode)
	}
}

// FuzzParseImport: any input is either rejected with field problems or gives a dataset
// whose every entity is valid.
func FuzzParseImport(f *testing.F) {
	f.Add(uint8(0), []byte("id,name\nD1,x\n"))
	f.Add(uint8(1), []byte("terminal,district,ch,meter,constant,base_wh,multiplier\nT1,D1,1,M1,3200,0,1\nT1,D1,2,M2,1600,0,1\n"))
	f.Add(uint8(2), []byte("id,terminal,ch,account\nM1,T1,1,A1\n"))
	f.Add(uint8(3), []byte("id,owner,address,payment,balance_fen,tariff\nA1,张伟,\"a,b\",prepaid,5,zj-res-tiered\n"))
	f.Add(uint8(1), []byte("terminal,district,ch\nT1,D1,17\n\"x"))
	existing := store.Dataset{
		Districts: []store.District{{ID: "D1"}},
		Terminals: []store.Terminal{{ID: "T1", District: "D1", Channels: []store.Channel{{Channel: 1, Meter: "M1", Constant: 3200, Multiplier: 1}}}},
		Accounts:  []store.Account{{ID: "A1", Owner: "x", Payment: store.Prepaid, Tariff: "zj-res-tiered"}},
	}
	kinds := []string{"districts", "terminals", "meters", "accounts"}
	cat := billing.DefaultCatalog()
	f.Fuzz(func(t *testing.T, k uint8, data []byte) {
		kind := kinds[int(k)%len(kinds)]
		ds, _, err := ParseImport(kind, data, existing, cat)
		if err != nil {
			var fe *store.FieldError
			if !errors.As(err, &fe) || len(fe.Fields) == 0 {
				t.Fatalf("ParseImport(%s) error %v: want field problems", kind, err)
			}
			return
		}
		if err := ds.Validate(); err != nil {
			t.Fatalf("ParseImport(%s) accepted an invalid dataset: %v", kind, err)
		}
	})
}
