package tracing

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Attribute keys of Stepwise's spans, the same in every SDK
// (schemas/PROTOCOL.md, "Tracing").
const (
	KeyRequest  = "stepwise.request"  // request id
	KeyWorkflow = "stepwise.workflow" // workflow name
	KeyStep     = "stepwise.step"     // step path
	KeyAttempt  = "stepwise.attempt"  // attempt number from 1
	KeyWorker   = "stepwise.worker"   // the worker's id, when it sent one
	KeyQueue    = "stepwise.queue"    // task queue
	KeyOutcome  = "stepwise.outcome"  // succeeded, failed, timed_out; or the request's status
)

// Outcomes of a step attempt (KeyOutcome).
const (
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
	OutcomeTimedOut  = "timed_out"
)

// ScopeName is the instrumentation scope of Stepwise's tracers.
const ScopeName = "github.com/stepwise-run/stepwise"

// Parse reads a W3C traceparent (version 00: "00-<32 hex>-<16 hex>-<2 hex>").
// ok is false for anything else, or an all-zero trace or span id.
func Parse(tp string) (sc trace.SpanContext, ok bool) {
	if len(tp) != 55 || tp[0] != '0' || tp[1] != '0' || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return sc, false
	}
	var tid trace.TraceID
	var sid trace.SpanID
	var flags [1]byte
	if _, err := hex.Decode(tid[:], []byte(tp[3:35])); err != nil {
		return sc, false
	}
	if _, err := hex.Decode(sid[:], []byte(tp[36:52])); err != nil {
		return sc, false
	}
	if _, err := hex.Decode(flags[:], []byte(tp[53:55])); err != nil {
		return sc, false
	}
	sc = trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(flags[0]) & trace.FlagsSampled, Remote: true})
	return sc, sc.IsValid()
}

// Valid reports whether tp is a traceparent Parse reads.
func Valid(tp string) bool {
	_, ok := Parse(tp)
	return ok
}

// Format writes sc as a traceparent; "" when sc is not valid.
func Format(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

// AttemptSpanID is the span id of the attempt span of step attempt in the
// request whose span is req: a hash of the three, so every replica derives
// the same id without storing it.
func AttemptSpanID(req trace.SpanID, step string, attempt int) trace.SpanID {
	h := fnv.New64a()
	h.Write(req[:])
	h.Write([]byte(step))
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(attempt))
	h.Write(n[:])
	var id trace.SpanID
	binary.BigEndian.PutUint64(id[:], h.Sum64()|1) // never all zero
	return id
}

// AttemptParent returns the traceparent a task of step attempt carries:
// the attempt span of the request whose span context is reqTrace (a
// traceparent). "" when reqTrace is not one.
func AttemptParent(reqTrace, step string, attempt int) string {
	sc, ok := Parse(reqTrace)
	if !ok {
		return ""
	}
	return Format(sc.WithSpanID(AttemptSpanID(sc.SpanID(), step, attempt)))
}

// idsKey is the context key of the ids IDGenerator hands out.
type idsKey struct{}

type ids struct {
	trace trace.TraceID
	span  trace.SpanID
}

// withIDs asks the provider's IDGenerator for these ids for the next span
// started with ctx.
func withIDs(ctx context.Context, tid trace.TraceID, sid trace.SpanID) context.Context {
	return context.WithValue(ctx, idsKey{}, ids{tid, sid})
}

// IDGenerator is the id generator of the providers tracing/otlp builds
// (an sdk/trace IDGenerator): random ids, except for the spans the
// processor emits after the fact, whose ids were chosen (and stored, or
// derived) when the span began. A Recorder needs a provider using it.
type IDGenerator struct{}

// NewIDs returns a new trace and span id.
func (IDGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if v, ok := ctx.Value(idsKey{}).(ids); ok {
		return v.trace, v.span
	}
	var tid trace.TraceID
	binary.BigEndian.PutUint64(tid[:8], rand.Uint64())
	binary.BigEndian.PutUint64(tid[8:], rand.Uint64()|1)
	return tid, randomSpanID()
}

// NewSpanID returns a new span id in the trace tid.
func (IDGenerator) NewSpanID(ctx context.Context, tid trace.TraceID) trace.SpanID {
	if v, ok := ctx.Value(idsKey{}).(ids); ok && v.trace == tid {
		return v.span
	}
	return randomSpanID()
}

func randomSpanID() trace.SpanID {
	var sid trace.SpanID
	binary.BigEndian.PutUint64(sid[:], rand.Uint64()|1)
	return sid
}

// Recorder emits the processor's spans. Spans are emitted after the fact,
// once the transition that ends them committed, with the start time and
// the ids chosen when they began; the provider must use IDGenerator. A
// nil *Recorder is off: the processor checks for nil before doing any
// tracing work.
type Recorder struct {
	tr trace.Tracer
}

// NewRecorder returns a recorder emitting through tp, or nil when tp is nil.
func NewRecorder(tp trace.TracerProvider) *Recorder {
	if tp == nil {
		return nil
	}
	return &Recorder{tr: tp.Tracer(ScopeName)}
}

// Begin chooses the request span of a new request: a child of the
// caller's traceparent (may be ""), in its trace, or the root of a new
// one, sampled as the provider's sampler decides. It returns the request
// span's traceparent and the caller's span id ("" for a root), what the
// request's state keeps; "" and "" when the sampler records nothing and
// there is no caller to follow.
func (r *Recorder) Begin(caller string) (reqTrace, parent string) {
	ctx := context.Background()
	if sc, ok := Parse(caller); ok {
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
		parent = sc.SpanID().String()
	}
	// The span is never ended: it only decides the ids and whether the
	// trace is sampled. Request emits the real one with these ids.
	_, span := r.tr.Start(ctx, "request")
	sc := span.SpanContext()
	if !sc.IsValid() {
		return "", ""
	}
	return Format(sc), parent
}

// Attempt is one finished step attempt, to emit as a span.
type Attempt struct {
	Request, Workflow, Step, Queue, Worker string
	Attempt                                int
	Outcome                                string // Outcome*
	Error                                  string // failure message, if any
	Started, Ended                         time.Time
}

// Attempt emits the span of attempt a of the request whose span is
// reqTrace (Record.Trace): the parent of the task's traceparent.
func (r *Recorder) Attempt(reqTrace string, a Attempt) {
	sc, ok := Parse(reqTrace)
	if !ok || a.Started.IsZero() {
		return
	}
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), sc)
	ctx = withIDs(ctx, sc.TraceID(), AttemptSpanID(sc.SpanID(), a.Step, a.Attempt))
	attrs := []attribute.KeyValue{
		attribute.String(KeyRequest, a.Request), attribute.String(KeyWorkflow, a.Workflow),
		attribute.String(KeyStep, a.Step), attribute.Int(KeyAttempt, a.Attempt),
		attribute.String(KeyOutcome, a.Outcome),
	}
	if a.Queue != "" {
		attrs = append(attrs, attribute.String(KeyQueue, a.Queue))
	}
	if a.Worker != "" {
		attrs = append(attrs, attribute.String(KeyWorker, a.Worker))
	}
	_, span := r.tr.Start(ctx, "step "+a.Step, trace.WithTimestamp(a.Started), trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	if a.Outcome != OutcomeSucceeded {
		span.SetStatus(codes.Error, a.Error)
	}
	span.End(trace.WithTimestamp(a.Ended))
}

// Request is one finished request, to emit as a span.
type Request struct {
	Request, Workflow string
	Version           int
	Status            string // the completion's status
	Error             string
	Started, Ended    time.Time
}

// Request emits the request span whose context is reqTrace, a child of
// the caller's span parent ("" for a root).
func (r *Recorder) Request(reqTrace, parent string, q Request) {
	sc, ok := Parse(reqTrace)
	if !ok {
		return
	}
	ctx := context.Background()
	if pid, err := trace.SpanIDFromHex(parent); err == nil {
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc.WithSpanID(pid))
	}
	ctx = withIDs(ctx, sc.TraceID(), sc.SpanID())
	_, span := r.tr.Start(ctx, "request "+q.Workflow, trace.WithTimestamp(q.Started), trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		attribute.String(KeyRequest, q.Request), attribute.String(KeyWorkflow, q.Workflow),
		attribute.String("stepwise.version", strconv.Itoa(q.Version)), attribute.String(KeyOutcome, q.Status),
	))
	if q.Error != "" {
		span.SetStatus(codes.Error, q.Error)
	}
	span.End(trace.WithTimestamp(q.Ended))
}
