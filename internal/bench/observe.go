package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
)

// Observability variants of the processors (Plan.Observe): what the
// linear3 figure of "metrics and tracing on against both off" runs, one
// after the other in the same benchmark.
const (
	ObserveOff      = "off"      // neither metrics nor tracing
	ObserveMetrics  = "metrics"  // `run --metrics --http 127.0.0.1:0`
	ObserveTrace100 = "trace100" // tracing, every request sampled
	ObserveTrace1   = "trace1"   // tracing, 1 % of requests sampled
	ObserveAll      = "all"      // metrics and tracing (100 %)
)

// ObserveVariants are the known variants, in report order.
var ObserveVariants = []string{ObserveOff, ObserveMetrics, ObserveTrace100, ObserveTrace1, ObserveAll}

// ObservePoint is linear3's closed-loop figure under one variant.
type ObservePoint struct {
	Variant      string  `json:"variant"`
	StepsPerS    float64 `json:"steps_per_s"`
	RequestsPerS float64 `json:"requests_per_s"`
	Latency      Latency `json:"latency_ms"`
	CPUCores     float64 `json:"cpu_cores"`
	PeakRSS      int64   `json:"peak_rss_bytes"`
	// Change is the throughput against the "off" run of the same
	// benchmark, in percent (negative: slower); 0 for "off" itself.
	Change float64 `json:"throughput_change_pct"`
	// Exports counts the OTLP requests the processors sent to the
	// benchmark's sink: proof that spans left the process.
	Exports int64 `json:"otlp_exports,omitempty"`
}

// Observability holds the variants' points.
type Observability struct {
	Scenario string         `json:"scenario"`
	Points   []ObservePoint `json:"points"`
}

// parseObserve checks a list of variants.
func parseObserve(vs []string) ([]string, error) {
	var out []string
	for _, v := range vs {
		for part := range strings.SplitSeq(v, ",") {
			part = strings.TrimSpace(part)
			switch {
			case part == "":
			case contains(ObserveVariants, part):
				out = append(out, part)
			default:
				return nil, fmt.Errorf("%w: observe variant %q (known: %s)", ErrPlan, part, strings.Join(ObserveVariants, ", "))
			}
		}
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// otlpSink is an OTLP/HTTP endpoint that takes every export and keeps
// nothing but a count: the processors pay for building, batching,
// encoding and sending their spans, as they would to a collector.
type otlpSink struct {
	srv     *http.Server
	url     string
	exports atomic.Int64
}

func startSink() (*otlpSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &otlpSink{url: "http://" + ln.Addr().String()}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		s.exports.Add(1)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK) // an empty ExportTraceServiceResponse
	})}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *otlpSink) close() { _ = s.srv.Close() }

// observeSetup returns the extra `stepwise run` flags and environment of
// variant v; tracing ones send to sink.
func observeSetup(v string, sink *otlpSink) (args, env []string) {
	metricsOn := v == ObserveMetrics || v == ObserveAll
	ratio := ""
	switch v {
	case ObserveTrace100, ObserveAll:
		ratio = "1"
	case ObserveTrace1:
		ratio = "0.01"
	}
	if metricsOn {
		args = []string{"--metrics", "--http", "127.0.0.1:0"}
	}
	if ratio != "" {
		env = []string{
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=" + sink.url + "/v1/traces",
			"OTEL_TRACES_SAMPLER=parentbased_traceidratio",
			"OTEL_TRACES_SAMPLER_ARG=" + ratio,
			"OTEL_SERVICE_NAME=stepwise-bench-processor",
		}
	}
	return args, env
}

// observe runs linear3 closed-loop once per variant.
func (r *runner) observe(ctx context.Context, variants []string) (*Observability, error) {
	if len(r.cfg.Exec) == 0 {
		return nil, fmt.Errorf("%w: the observability variants run the processors as processes (not --in-process)", ErrPlan)
	}
	sc, err := ScenarioByName("linear3", r.cfg.IDPLatency)
	if err != nil {
		return nil, err
	}
	conc := r.cfg.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency["linear3"]
	}
	sink, err := startSink()
	if err != nil {
		return nil, err
	}
	defer sink.close()
	out := &Observability{Scenario: "linear3"}
	var off float64
	var errs []error
	for _, v := range variants {
		if ctx.Err() != nil {
			break
		}
		r.procArgs, r.procEnv = observeSetup(v, sink)
		before := sink.exports.Load()
		run, err := r.runOne(ctx, sc, SystemStepwise, 1, Load{Concurrency: conc})
		r.procArgs, r.procEnv = nil, nil
		if err != nil {
			errs = append(errs, fmt.Errorf("observe %s: %w", v, err))
			continue
		}
		p := ObservePoint{Variant: v, StepsPerS: run.StepsPerS, RequestsPerS: run.RequestsPerS, Latency: run.Latency,
			CPUCores: run.CPUCores, PeakRSS: run.PeakRSS, Exports: sink.exports.Load() - before}
		if v == ObserveOff {
			off = run.StepsPerS
		}
		out.Points = append(out.Points, p)
	}
	if off > 0 {
		for i := range out.Points {
			if out.Points[i].Variant != ObserveOff {
				out.Points[i].Change = 100 * (out.Points[i].StepsPerS/off - 1)
			}
		}
	}
	return out, errors.Join(errs...)
}
