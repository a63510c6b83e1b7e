package api

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/meterlink/meterlink/ops/internal/store"
	"github.com/meterlink/meterlink/wire"
)

// readingsQuery parses the query of the readings endpoints; withTime allows from and to.
func readingsQuery(r *http.Request, withTime bool) (store.Query, string, error) {
	params := []string{"terminal", "meter", "district", "limit", "format"}
	if withTime {
		params = append(params, "from", "to")
	}
	if err := onlyParams(r, params...); err != nil {
		return store.Query{}, "", err
	}
	v := r.URL.Query()
	fe := map[string]string{}
	q := store.Query{
		Terminal: wire.TerminalID(filterID(r, "terminal", fe)),
		Meter:    wire.MeterID(filterID(r, "meter", fe)),
		District: wire.DistrictID(filterID(r, "district", fe)),
		Limit:    DefaultLimit,
	}
	q.Limit = limitParam(r, fe)
	parseTime := func(name string) int64 {
		s := v.Get(name)
		if s == "" {
			return 0
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			fe[name] = fmt.Sprintf("%q: want an RFC 3339 time such as 2026-01-02T15:04:05+08:00", s)
			return 0
		}
		if t.UnixMilli() <= 0 {
			fe[name] = fmt.Sprintf("%q: must be after 1970-01-01", s)
		}
		return t.UnixMilli()
	}
	q.FromMS, q.ToMS = parseTime("from"), parseTime("to")
	if q.ToMS != 0 && q.FromMS >= q.ToMS && fe["from"] == "" && fe["to"] == "" {
		fe["to"] = "must be after from"
	}
	format := v.Get("format")
	switch format {
	case "":
		format = "json"
	case "json", "csv":
	default:
		fe["format"] = fmt.Sprintf("%q: want json or csv", format)
	}
	if len(fe) > 0 {
		return store.Query{}, "", &store.FieldError{Fields: fe}
	}
	return q, format, nil
}

func (a *API) getReadings(w http.ResponseWriter, r *http.Request) error {
	q, format, err := readingsQuery(r, true)
	if err != nil {
		return err
	}
	rs, err := a.st.Readings(q)
	if err != nil {
		return err
	}
	return writeReadings(w, format, "readings.csv", rs)
}

func (a *API) getLatest(w http.ResponseWriter, r *http.Request) error {
	q, format, err := readingsQuery(r, false)
	if err != nil {
		return err
	}
	rs, err := a.st.Latest(q)
	if err != nil {
		return err
	}
	return writeReadings(w, format, "latest-readings.csv", rs)
}

// csvHeader names the CSV export's columns.
var csvHeader = []string{"time", "ts_ms", "district", "terminal", "seq", "kind", "freeze_date",
	"meter", "ch", "energy_wh", "pulses", "constant", "multiplier", "estimated"}

func writeReadings(w http.ResponseWriter, format, filename string, rs []store.Reading) error {
	if format == "json" {
		if rs == nil {
			rs = []store.Reading{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"readings": rs})
		return nil
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	cw := csv.NewWriter(w)
	_ = cw.Write(csvHeader)
	for _, x := range rs {
		_ = cw.Write([]string{
			time.UnixMilli(x.TimeMS).UTC().Format("2006-01-02T15:04:05.000Z07:00"),
			strconv.FormatInt(x.TimeMS, 10), string(x.District), string(x.Terminal),
			strconv.FormatUint(x.Seq, 10), string(x.Kind), x.FreezeDate, string(x.Meter),
			strconv.Itoa(int(x.Channel)), strconv.FormatInt(x.EnergyWh, 10),
			strconv.FormatUint(x.Pulses, 10), strconv.FormatUint(uint64(x.Constant), 10),
			strconv.FormatUint(uint64(x.Multiplier), 10), strconv.FormatBool(x.Estimated),
		})
	}
	cw.Flush()
	return nil // a write error means the client went away; the status is already sent
}
