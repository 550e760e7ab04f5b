// Package probe serves the operational endpoints of a Stepwise process:
// /healthz (live), /readyz (ready to do its work) and, when metrics are
// on, /metrics. `stepwise run --http` serves them on their own address;
// the API serves them beside /api/v1. None needs a token: they carry no
// request data, and probes and scrapers have none.
package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stepwise-run/stepwise/metrics"
)

// Readiness reports nil when the process is ready, else why not.
type Readiness func() error

// Register adds /healthz, /readyz and (with reg) /metrics to m.
func Register(m *http.ServeMux, ready Readiness, reg *prometheus.Registry) {
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		answer(w, http.StatusOK, "ok")
	})
	m.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			answer(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
			return
		}
		answer(w, http.StatusOK, "ready")
	})
	if reg != nil {
		m.Handle("GET /metrics", metrics.Handler(reg))
	}
}

func answer(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// Serve serves m on addr until ctx ends.
func Serve(ctx context.Context, addr string, m http.Handler, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("stepwise: listen for probes and metrics: %w", err)
	}
	srv := &http.Server{Handler: m, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("health and metrics listening", "addr", "http://"+ln.Addr().String())
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
