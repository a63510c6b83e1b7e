package mqttsn

import (
	"context"
	"log/slog"
	"testing"
)

// testLogger routes logs to t.Log, so they appear for failing tests only.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(&tHandler{t: t, h: slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})})
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(string(b[:len(b)-1]))
	return len(b), nil
}

// tHandler wraps the text handler to keep t with derived loggers.
type tHandler struct {
	t testing.TB
	h slog.Handler
}

func (h *tHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }
func (h *tHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.h.Handle(ctx, r)
}
func (h *tHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &tHandler{t: h.t, h: h.h.WithAttrs(as)}
}
func (h *tHandler) WithGroup(n string) slog.Handler { return &tHandler{t: h.t, h: h.h.WithGroup(n)} }
