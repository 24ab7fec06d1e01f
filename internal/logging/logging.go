// Package logging builds the process logger (slog: JSON in production, text on a terminal) and adapts it to
// asynq's printf-style Logger.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// New returns a logger writing format ("json" or "text") at level ("debug", "info", "warn", "error").
func New(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Asynq adapts l to asynq.Logger.
type Asynq struct{ L *slog.Logger }

func (a Asynq) Debug(args ...any) { a.L.Debug(fmt.Sprint(args...)) }
func (a Asynq) Info(args ...any)  { a.L.Info(fmt.Sprint(args...)) }
func (a Asynq) Warn(args ...any)  { a.L.Warn(fmt.Sprint(args...)) }
func (a Asynq) Error(args ...any) {
	msg := fmt.Sprint(args...)
	if strings.Contains(msg, "connection is shared") {
		// asynq's scheduler tries to close a client it was given; that is expected, not an error.
		a.L.Debug(msg)
		return
	}
	a.L.Error(msg)
}
func (a Asynq) Fatal(args ...any) { a.L.Error(fmt.Sprint(args...)) }
