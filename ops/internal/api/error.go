package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/meterlink/meterlink/ops/internal/billing"
	"github.com/meterlink/meterlink/ops/internal/store"
)

// requestError is a client error with its status and a message for the client.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(msg string) error { return &requestError{status: http.StatusBadRequest, msg: msg} }

// errorBody is the JSON body of every error response.
type errorBody struct {
	Error  string            `json:"error"`
	Fields map[string]string `json:"fields,omitempty"`
}

// status maps an error to its HTTP status and the body the client sees. It is the one place
// where errors become status codes; anything it does not know is a 500 "internal error".
func status(err error) (int, errorBody) {
	var re *requestError
	var fe *store.FieldError
	switch {
	case errors.As(err, &re):
		return re.status, errorBody{Error: re.msg}
	case errors.As(err, &fe):
		return http.StatusBadRequest, errorBody{Error: "invalid fields", Fields: fe.Fields}
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, errorBody{Error: err.Error()}
	case errors.Is(err, store.ErrExists), errors.Is(err, billing.ErrPaymentConflict), errors.Is(err, billing.ErrUnknownTariff):
		return http.StatusConflict, errorBody{Error: err.Error()}
	case errors.Is(err, billing.ErrHoarding):
		return http.StatusUnprocessableEntity, errorBody{Error: err.Error()}
	}
	return http.StatusInternalServerError, errorBody{Error: "internal error"}
}

// writeError answers a request with err; a 500 logs the full error, since the client sees
// only "internal error".
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code, body := status(err)
	if code == http.StatusInternalServerError {
		a.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, code, body)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing left to tell it
}
