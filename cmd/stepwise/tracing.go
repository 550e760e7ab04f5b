package main

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/stepwise-run/stepwise/internal/logkey"
	"github.com/stepwise-run/stepwise/tracing/otlp"
)

// tracerFromEnv returns the tracer provider the OTEL_* environment asks
// for, named service unless OTEL_SERVICE_NAME says otherwise, and the
// function that flushes it on the way out; nil and a no-op when tracing is
// off (the default: no OTLP endpoint set).
func tracerFromEnv(ctx context.Context, service string, log *slog.Logger) (trace.TracerProvider, func(), error) {
	p, err := otlp.FromEnv(ctx, service)
	if err != nil || p == nil {
		return nil, func() {}, err
	}
	log.Info("tracing on: exporting spans over OTLP", "service", service)
	return p, func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := p.Shutdown(sctx); err != nil {
			log.Warn("flushing spans failed", logkey.Error, err)
		}
	}, nil
}
