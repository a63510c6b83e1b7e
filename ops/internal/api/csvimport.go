package api

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/meterlink/meterlink/ops/internal/billing"
	"github.com/meterlink/meterlink/ops/internal/store"
	"github.com/meterlink/meterlink/wire"
)

// maxImportBody bounds a CSV import (about 200,000 rows).
const maxImportBody = 32 << 20

// maxImportProblems bounds the problems listed in one answer.
const maxImportProblems = 1000

// importColumns lists each import kind's columns: required ones first, then optional ones.
var importColumns = map[string]struct{ required, optional []string }{
	"districts": {required: []string{"id"}, optional: []string{"name"}},
	"terminals": {required: []string{"terminal", "district"}, optional: []string{"ch", "meter", "constant", "base_wh", "multiplier"}},
	"meters":    {required: []string{"id", "terminal", "ch"}, optional: []string{"account"}},
	"accounts":  {required: []string{"id", "owner", "payment", "tariff"}, optional: []string{"address", "balance_fen"}},
}

// ImportResult is the answer to a successful POST /api/v1/import/{kind}.
type ImportResult struct {
	Kind    string `json:"kind"`
	Created int    `json:"created"` // entities created (terminals, not channel rows)
	Rows    int    `json:"rows"`
}

func (a *API) postImport(w http.ResponseWriter, r *http.Request) error {
	kind := r.PathValue("kind")
	if _, ok := importColumns[kind]; !ok {
		return &requestError{status: http.StatusNotFound, msg: fmt.Sprintf("import kind %q: want districts, terminals, meters or accounts", kind)}
	}
	if err := onlyParams(r); err != nil {
		return err
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "text/csv" {
		return &requestError{status: http.StatusUnsupportedMediaType, msg: fmt.Sprintf("content type %q: want text/csv", r.Header.Get("Content-Type"))}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxImportBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &requestError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("body is larger than %d bytes", maxImportBody)}
		}
		return badRequest("read body: " + err.Error())
	}
	existing, err := a.st.Load()
	if err != nil {
		return err
	}
	ds, rows, err := ParseImport(kind, body, existing, a.biz.Ledger.Catalog())
	if err != nil {
		return err
	}
	if err := a.st.Put(ds, false); err != nil {
		return err // a concurrent change; the dataset was checked against the store just before
	}
	n := len(ds.Districts) + len(ds.Terminals) + len(ds.Meters) + len(ds.Accounts)
	a.log.Info("csv imported", "kind", kind, "rows", rows, "created", n)
	writeJSON(w, http.StatusCreated, ImportResult{Kind: kind, Created: n, Rows: rows})
	return nil
}

// importer collects the problems of an import, keyed "row N, field".
type importer struct {
	problems map[string]string
}

func (im *importer) addf(row int, field, format string, args ...any) {
	if len(im.problems) >= maxImportProblems {
		return
	}
	k := fmt.Sprintf("row %d, %s", row, field)
	if _, ok := im.problems[k]; !ok {
		im.problems[k] = fmt.Sprintf(format, args...)
	}
}

// ParseImport parses a CSV file of one kind (districts, terminals with one row per channel,
// meters, accounts) into a dataset and checks every row: formats, each entity's own rules,
// duplicates in the file, references to what the file or the store already holds (existing),
// ids that exist already (an import only creates), and tariffs in the catalog. Problems
// are reported together as a *store.FieldError keyed "row N, field" (the header is row
// 1). It returns the dataset and the number of data rows.
func ParseImport(kind string, data []byte, existing store.Dataset, cat *billing.Catalog) (store.Dataset, int, error) {
	cols, ok := importColumns[kind]
	if !ok {
		return store.Dataset{}, 0, badRequest(fmt.Sprintf("import kind %q: want districts, terminals, meters or accounts", kind))
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a BOM from spreadsheet exports
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = false
	records, err := cr.ReadAll()
	if err != nil {
		return store.Dataset{}, 0, &store.FieldError{Fields: map[string]string{"csv": err.Error()}}
	}
	if len(records) == 0 {
		return store.Dataset{}, 0, &store.FieldError{Fields: map[string]string{"row 1, header": "file is empty: want a header row " + strings.Join(cols.required, ",")}}
	}
	im := &importer{problems: map[string]string{}}
	col := map[string]int{}
	for i, h := range records[0] {
		h = strings.ToLower(strings.TrimSpace(h))
		known := false
		for _, c := range append(append([]string{}, cols.required...), cols.optional...) {
			known = known || c == h
		}
		switch {
		case !known:
			im.addf(1, "header", "unknown column %q: want %s", h, strings.Join(append(append([]string{}, cols.required...), cols.optional...), ", "))
		case col[h] != 0:
			im.addf(1, "header", "column %q appears twice", h)
		}
		col[h] = i + 1
	}
	for _, c := range cols.required {
		if col[c] == 0 {
			im.addf(1, "header", "required column %q is missing", c)
		}
	}
	if len(im.problems) > 0 {
		return store.Dataset{}, 0, &store.FieldError{Fields: im.problems}
	}
	rows := records[1:]
	if len(rows) == 0 {
		return store.Dataset{}, 0, &store.FieldError{Fields: map[string]string{"row 2": "no data rows"}}
	}
	cell := func(rec []string, name string) string {
		if i := col[name]; i > 0 && i <= len(rec) {
			return strings.TrimSpace(rec[i-1])
		}
		return ""
	}
	integer := func(row int, rec []string, name string, def int64, lo, hi int64) int64 {
		s := cell(rec, name)
		if s == "" {
			return def
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < lo || n > hi {
			im.addf(row, name, "%q: want a whole number in %d..%d", s, lo, hi)
			return def
		}
		return n
	}
	ex := index(existing)
	var ds store.Dataset
	switch kind {
	case "districts":
		first := map[string]int{}
		for i, rec := range rows {
			row := i + 2
			d := store.District{ID: wire.DistrictID(cell(rec, "id")), Name: cell(rec, "name")}
			im.entity(row, d.Validate())
			im.unique(row, "id", string(d.ID), first, ex.districts)
			ds.Districts = append(ds.Districts, d)
		}
	case "terminals":
		byID := map[wire.TerminalID]int{} // index in ds.Terminals
		chRows := map[wire.TerminalID][]int{}
		firstRow := map[string]int{}
		for i, rec := range rows {
			row := i + 2
			id, dist := wire.TerminalID(cell(rec, "terminal")), wire.DistrictID(cell(rec, "district"))
			k, ok := byID[id]
			if !ok {
				im.unique(row, "terminal", string(id), firstRow, ex.terminals)
				if dist != "" && !ex.districts[string(dist)] {
					im.addf(row, "district", "unknown district %q", dist)
				}
				k = len(ds.Terminals)
				byID[id] = k
				ds.Terminals = append(ds.Terminals, store.Terminal{ID: id, District: dist, Channels: []store.Channel{}})
			} else if ds.Terminals[k].District != dist {
				im.addf(row, "district", "%q differs from %q on row %d", dist, ds.Terminals[k].District, firstRow[string(id)])
			}
			if cell(rec, "ch") == "" && cell(rec, "meter") == "" {
				continue // a terminal row without a channel
			}
			c := store.Channel{
				Channel:    uint8(integer(row, rec, "ch", 0, 1, 16)),
				Meter:      wire.MeterID(cell(rec, "meter")),
				Constant:   uint32(integer(row, rec, "constant", 0, 0, 1_000_000)),
				BaseWh:     integer(row, rec, "base_wh", 0, 0, 1<<50),
				Multiplier: uint32(integer(row, rec, "multiplier", 1, 1, 100_000)),
			}
			ds.Terminals[k].Channels = append(ds.Terminals[k].Channels, c)
			chRows[id] = append(chRows[id], row)
		}
		for _, t := range ds.Terminals {
			err := t.Validate()
			var fe *store.FieldError
			if !errors.As(err, &fe) {
				continue
			}
			for f, msg := range fe.Fields {
				row, field := firstRow[string(t.ID)], f
				var ci int
				if n, _ := fmt.Sscanf(f, "channels[%d].", &ci); n == 1 && ci < len(chRows[t.ID]) {
					row, field = chRows[t.ID][ci], f[strings.Index(f, ".")+1:]
				}
				if field == "id" {
					field = "terminal"
				}
				im.addf(row, field, "%s", msg)
			}
		}
	case "meters":
		first := map[string]int{}
		for i, rec := range rows {
			row := i + 2
			m := store.Meter{ID: wire.MeterID(cell(rec, "id")), Terminal: wire.TerminalID(cell(rec, "terminal")),
				Channel: uint8(integer(row, rec, "ch", 0, 1, 16)), Account: store.AccountID(cell(rec, "account"))}
			im.entity(row, m.Validate())
			im.unique(row, "id", string(m.ID), first, ex.meters)
			if t, ok := ex.terminalByID[m.Terminal]; !ok {
				im.addf(row, "terminal", "unknown terminal %q", m.Terminal)
			} else if !hasChannel(t, m.Channel, m.ID) {
				im.addf(row, "ch", "terminal %s does not map meter %s to channel %d", m.Terminal, m.ID, m.Channel)
			}
			if m.Account != "" && !ex.accounts[string(m.Account)] {
				im.addf(row, "account", "unknown account %q", m.Account)
			}
			ds.Meters = append(ds.Meters, m)
		}
	case "accounts":
		first := map[string]int{}
		for i, rec := range rows {
			row := i + 2
			a := store.Account{ID: store.AccountID(cell(rec, "id")), Owner: cell(rec, "owner"), Address: cell(rec, "address"),
				Payment: store.PaymentMethod(strings.ToLower(cell(rec, "payment"))), Tariff: cell(rec, "tariff"),
				BalanceFen: integer(row, rec, "balance_fen", 0, -maxPaymentFen, maxPaymentFen)}
			im.entity(row, a.Validate())
			im.unique(row, "id", string(a.ID), first, ex.accounts)
			if a.Tariff != "" && cat != nil {
				if _, err := cat.Tariff(a.Tariff); err != nil {
					im.addf(row, "tariff", "unknown tariff %q", a.Tariff)
				}
			}
			ds.Accounts = append(ds.Accounts, a)
		}
	}
	if len(im.problems) > 0 {
		return store.Dataset{}, len(rows), &store.FieldError{Fields: im.problems}
	}
	return ds, len(rows), nil
}

// entity adds an entity's own field problems to its row.
func (im *importer) entity(row int, err error) {
	var fe *store.FieldError
	if errors.As(err, &fe) {
		keys := make([]string, 0, len(fe.Fields))
		for k := range fe.Fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			im.addf(row, k, "%s", fe.Fields[k])
		}
	}
}

// unique reports an id seen on an earlier row or already in the store.
func (im *importer) unique(row int, field, id string, first map[string]int, existing map[string]bool) {
	if r, ok := first[id]; ok {
		im.addf(row, field, "%q appears again (first on row %d)", id, r)
		return
	}
	first[id] = row
	if existing[id] {
		im.addf(row, field, "%q already exists", id)
	}
}

type datasetIndex struct {
	districts, terminals, meters, accounts map[string]bool
	terminalByID                           map[wire.TerminalID]store.Terminal
}

func index(ds store.Dataset) datasetIndex {
	ix := datasetIndex{districts: map[string]bool{}, terminals: map[string]bool{}, meters: map[string]bool{},
		accounts: map[string]bool{}, terminalByID: map[wire.TerminalID]store.Terminal{}}
	for _, d := range ds.Districts {
		ix.districts[string(d.ID)] = true
	}
	for _, t := range ds.Terminals {
		ix.terminals[string(t.ID)] = true
		ix.terminalByID[t.ID] = t
	}
	for _, m := range ds.Meters {
		ix.meters[string(m.ID)] = true
	}
	for _, a := range ds.Accounts {
		ix.accounts[string(a.ID)] = true
	}
	return ix
}

func hasChannel(t store.Terminal, ch uint8, m wire.MeterID) bool {
	for _, c := range t.Channels {
		if c.Channel == ch && c.Meter == m {
			return true
		}
	}
	return false
}
