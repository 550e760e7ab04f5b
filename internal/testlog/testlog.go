// Package testlog gives tests a logger that writes to the test's log. It
// sits beside the data flow: processors, API, view and example tests hand
// it to the parts they run, so a failing test shows what those parts said.
package testlog

import (
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

// New returns a logger of warnings and errors to t's log (set
// STEPWISE_TEST_LOG=info for the parts' own progress lines, =debug for
// everything, the Kafka clients' included). Lines logged after the test
// ended are dropped: a stopped part's client may wind down on its own and
// log late, which testing forbids. A fuzz target gets a logger that drops
// everything.
func New(t testing.TB) *slog.Logger {
	if _, fuzzing := t.(*testing.F); fuzzing {
		// Nothing may log to a fuzz target's F while inputs run.
		return slog.New(slog.DiscardHandler)
	}
	level := slog.LevelWarn
	switch os.Getenv("STEPWISE_TEST_LOG") {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	}
	w := &writer{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type writer struct {
	t    testing.TB
	done atomic.Bool
}

func (w *writer) Write(b []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimSpace(string(b)))
	}
	return len(b), nil
}
