// Package tracing is Stepwise's OpenTelemetry tracing: the span attribute
// keys every part uses, the W3C trace context as the protocol carries it
// (the traceparent header of start, task and result records, see
// schemas/PROTOCOL.md), and the processor's spans.
//
// # Where it sits
//
//	client / API ─ traceparent ─► requests ─► processor ─ traceparent ─► tasks.<queue> ─► worker
//	                                             ▲                                         │
//	                                             └──────────── results ◄─ traceparent ─────┘
//
// A start record may carry the caller's traceparent. The processor keeps
// the request span's context in the request's state record (Record.Trace,
// and the caller's span id in Record.TraceParent), and emits, on committed
// transitions only, a span per step attempt (from dispatch to the result
// that ends it) and a span per request (from start to completion). The
// attempt span's id is derived from the request span and the attempt, so a
// replica that takes a partition over ends the spans its predecessor began
// without having stored anything more than the request's trace context.
// A task carries the attempt span as its parent; the worker SDKs continue
// the trace in the handler.
//
// Nothing here exports: package tracing/otlp builds the provider from the
// OTEL_* environment variables. Without one, no part traces and the
// processor does no tracing work.
package tracing
