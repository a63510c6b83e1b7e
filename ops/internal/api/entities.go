package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/meterlink/meterlink/ops/internal/store"
	"github.com/meterlink/meterlink/wire"
)

// onlyParams rejects query parameters other than allowed, and repeated ones, so that a typo
// ("termnal=") is an error rather than a silently wider answer.
func onlyParams(r *http.Request, allowed ...string) error {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return badRequest("bad query string: " + err.Error())
	}
	fe := map[string]string{}
	for k, vs := range q {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		switch {
		case !ok && len(allowed) == 0:
			fe[k] = "unknown parameter: this endpoint takes none"
		case !ok:
			fe[k] = "unknown parameter: want one of " + strings.Join(allowed, ", ")
		case len(vs) > 1:
			fe[k] = "given more than once"
		}
	}
	if len(fe) > 0 {
		return &store.FieldError{Fields: fe}
	}
	return nil
}

// pathID returns the {id} path value, checked.
func pathID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !wire.ValidID(id) {
		return "", badRequest(fmt.Sprintf("id %q is not a valid id (1-64 letters, digits, '-', '_', '.')", id))
	}
	return id, nil
}

// filterID reads an optional id filter from the query.
func filterID(r *http.Request, name string, fe map[string]string) string {
	v := r.URL.Query().Get(name)
	if v != "" && !wire.ValidID(v) {
		fe[name] = fmt.Sprintf("%q is not a valid id", v)
	}
	return v
}

// list answers a list endpoint: params names the id filters it takes, and keep selects the
// entities of the loaded dataset that match them.
func list[T any](a *API, w http.ResponseWriter, r *http.Request, name string, params []string,
	pick func(store.Dataset) []T, keep func(T, map[string]string) bool) error {
	if err := onlyParams(r, params...); err != nil {
		return err
	}
	fe, f := map[string]string{}, map[string]string{}
	for _, p := range params {
		f[p] = filterID(r, p, fe)
	}
	if len(fe) > 0 {
		return &store.FieldError{Fields: fe}
	}
	ds, err := a.st.Load()
	if err != nil {
		return err
	}
	out := []T{}
	for _, x := range pick(ds) {
		if keep(x, f) {
			out = append(out, x)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{name: out})
	return nil
}

// one answers a get-by-id endpoint.
func one[T any](a *API, w http.ResponseWriter, r *http.Request, kind string,
	pick func(store.Dataset) []T, id func(T) string) error {
	want, err := pathID(r)
	if err != nil {
		return err
	}
	if err := onlyParams(r); err != nil {
		return err
	}
	ds, err := a.st.Load()
	if err != nil {
		return err
	}
	for _, x := range pick(ds) {
		if id(x) == want {
			writeJSON(w, http.StatusOK, x)
			return nil
		}
	}
	return fmt.Errorf("%s %s: %w", kind, want, store.ErrNotFound)
}

// create answers a POST that creates one entity: decode strictly, validate, store as a
// dataset of one, and answer 201 with the entity.
func create[T interface{ Validate() error }](a *API, w http.ResponseWriter, r *http.Request,
	kind string, wrap func(T) store.Dataset, id func(T) string) error {
	if err := onlyParams(r); err != nil {
		return err
	}
	var x T
	if err := decode(w, r, &x); err != nil {
		return err
	}
	if err := x.Validate(); err != nil {
		return err
	}
	if err := a.st.Put(wrap(x), false); err != nil {
		return unprefix(err, kind+"[0].")
	}
	w.Header().Set("Location", r.URL.Path+"/"+id(x))
	writeJSON(w, http.StatusCreated, x)
	return nil
}

// unprefix turns the dataset paths of a one-entity dataset ("terminals[0].district") into
// the entity's own ("district").
func unprefix(err error, prefix string) error {
	fe, ok := err.(*store.FieldError)
	if !ok {
		return err
	}
	out := map[string]string{}
	for k, v := range fe.Fields {
		out[strings.TrimPrefix(k, prefix)] = v
	}
	return &store.FieldError{Fields: out}
}

func (a *API) listDistricts(w http.ResponseWriter, r *http.Request) error {
	return list(a, w, r, "districts", nil,
		func(ds store.Dataset) []store.District { return ds.Districts },
		func(store.District, map[string]string) bool { return true })
}

func (a *API) getDistrict(w http.ResponseWriter, r *http.Request) error {
	return one(a, w, r, "district", func(ds store.Dataset) []store.District { return ds.Districts },
		func(d store.District) string { return string(d.ID) })
}

func (a *API) postDistrict(w http.ResponseWriter, r *http.Request) error {
	return create(a, w, r, "districts", func(d store.District) store.Dataset { return store.Dataset{Districts: []store.District{d}} },
		func(d store.District) string { return string(d.ID) })
}

func (a *API) listTerminals(w http.ResponseWriter, r *http.Request) error {
	return list(a, w, r, "terminals", []string{"district"},
		func(ds store.Dataset) []store.Terminal { return ds.Terminals },
		func(t store.Terminal, f map[string]string) bool {
			return f["district"] == "" || string(t.District) == f["district"]
		})
}

func (a *API) getTerminal(w http.ResponseWriter, r *http.Request) error {
	return one(a, w, r, "terminal", func(ds store.Dataset) []store.Terminal { return ds.Terminals },
		func(t store.Terminal) string { return string(t.ID) })
}

func (a *API) postTerminal(w http.ResponseWriter, r *http.Request) error {
	return create(a, w, r, "terminals", func(t store.Terminal) store.Dataset { return store.Dataset{Terminals: []store.Terminal{t}} },
		func(t store.Terminal) string { return string(t.ID) })
}

func (a *API) listMeters(w http.ResponseWriter, r *http.Request) error {
	return list(a, w, r, "meters", []string{"terminal", "account"},
		func(ds store.Dataset) []store.Meter { return ds.Meters },
		func(m store.Meter, f map[string]string) bool {
			return (f["terminal"] == "" || string(m.Terminal) == f["terminal"]) &&
				(f["account"] == "" || string(m.Account) == f["account"])
		})
}

func (a *API) getMeter(w http.ResponseWriter, r *http.Request) error {
	return one(a, w, r, "meter", func(ds store.Dataset) []store.Meter { return ds.Meters },
		func(m store.Meter) string { return string(m.ID) })
}

func (a *API) postMeter(w http.ResponseWriter, r *http.Request) error {
	return create(a, w, r, "meters", func(m store.Meter) store.Dataset { return store.Dataset{Meters: []store.Meter{m}} },
		func(m store.Meter) string { return string(m.ID) })
}

func (a *API) listAccounts(w http.ResponseWriter, r *http.Request) error {
	return list(a, w, r, "accounts", nil,
		func(ds store.Dataset) []store.Account { return ds.Accounts },
		func(store.Account, map[string]string) bool { return true })
}

func (a *API) getAccount(w http.ResponseWriter, r *http.Request) error {
	return one(a, w, r, "account", func(ds store.Dataset) []store.Account { return ds.Accounts },
		func(x store.Account) string { return string(x.ID) })
}

func (a *API) postAccount(w http.ResponseWriter, r *http.Request) error {
	return create(a, w, r, "accounts", func(x store.Account) store.Dataset { return store.Dataset{Accounts: []store.Account{x}} },
		func(x store.Account) string { return string(x.ID) })
}
