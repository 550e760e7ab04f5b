// Package otlp builds the OpenTelemetry tracer provider of a Stepwise
// process from the standard OTEL_* environment variables, exporting over
// OTLP/HTTP. It is what `stepwise run`, `dev`, `api`, `start` and the Go
// example workers call once at start; everything else takes the provider
// it returns (nil: tracing off).
package otlp

import (
	"context"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/stepwise-run/stepwise/tracing"
)

// Enabled reports whether the environment asks for traces: an OTLP
// endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), OTEL_TRACES_EXPORTER is unset or
// "otlp", and OTEL_SDK_DISABLED is not "true". Tracing is off by default:
// an unset endpoint means no exporter and no tracer.
func Enabled() bool {
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	if e := os.Getenv("OTEL_TRACES_EXPORTER"); e != "" && e != "otlp" {
		return false
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Provider is a tracer provider and the function that flushes and stops it.
type Provider struct {
	trace.TracerProvider
	Shutdown func(context.Context) error
}

// FromEnv returns the provider the environment asks for, or nil when
// tracing is off (Enabled). service is the service.name used unless
// OTEL_SERVICE_NAME sets one. The exporter, the sampler
// (OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG; default: parent-based,
// always on) and the batch span processor (OTEL_BSP_*) read their own
// variables; OTEL_RESOURCE_ATTRIBUTES adds to the resource.
func FromEnv(ctx context.Context, service string) (*Provider, error) {
	if !Enabled() {
		return nil, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("stepwise: OTLP trace exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	if err != nil {
		return nil, fmt.Errorf("stepwise: trace resource: %w", err)
	}
	if env, err := resource.New(ctx, resource.WithFromEnv()); err == nil {
		if merged, err := resource.Merge(res, env); err == nil {
			res = merged
		}
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithIDGenerator(tracing.IDGenerator{}),
	)
	return &Provider{TracerProvider: tp, Shutdown: tp.Shutdown}, nil
}
