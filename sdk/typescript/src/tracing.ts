// OpenTelemetry tracing of a worker (@opentelemetry/api, an optional peer
// dependency), as the Go SDK does it (schemas/PROTOCOL.md, "Tracing"): a
// consumer span per handler call, child of the task's traceparent (the
// processor's span of the step attempt), active while the handler runs so
// that its own spans join the request's trace; the result carries the
// span's traceparent back. Off unless `new Worker({ tracing: ... })`; the
// API package is loaded only then. Exporting is the program's part (an
// OpenTelemetry SDK set up as usual).

import type * as otel from "@opentelemetry/api";
import { hostname } from "node:os";

import type { ResultRecord } from "./core.js";
import type { TaskRecord } from "./task.js";

export const HEADER_TRACEPARENT = "traceparent";
const SCOPE = "github.com/stepwise-run/stepwise";

/** Span attribute keys, the same in every SDK. */
export const TraceKey = {
  Request: "stepwise.request",
  Workflow: "stepwise.workflow",
  Step: "stepwise.step",
  Attempt: "stepwise.attempt",
  Queue: "stepwise.queue",
  Worker: "stepwise.worker",
  Outcome: "stepwise.outcome",
} as const;

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** Reads a version-00 traceparent; undefined for anything else. */
export function parseTraceparent(tp: string | undefined): otel.SpanContext | undefined {
  const m = tp === undefined ? null : TRACEPARENT.exec(tp);
  const [traceId, spanId, flags] = m === null ? [] : [m[1] ?? "", m[2] ?? "", m[3] ?? ""];
  if (traceId === undefined || spanId === undefined || flags === undefined || /^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return { traceId, spanId, traceFlags: parseInt(flags, 16) & 1, isRemote: true };
}

/** Writes a span context as a traceparent. */
export function formatTraceparent(sc: otel.SpanContext): string {
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 1).toString(16).padStart(2, "0")}`;
}

/** Starts and ends the handler spans of one worker. */
export class WorkerTracing {
  readonly #api: typeof otel;
  readonly #tracer: otel.Tracer;
  readonly workerId: string;

  constructor(api: typeof otel, provider?: otel.TracerProvider, workerId = `${hostname()}/${process.pid}`) {
    this.#api = api;
    this.workerId = workerId;
    this.#tracer = (provider ?? api.trace.getTracerProvider()).getTracer(SCOPE);
  }

  /** Loads @opentelemetry/api and returns the worker's tracing. */
  static async load(provider?: otel.TracerProvider, workerId?: string): Promise<WorkerTracing> {
    const api = await import("@opentelemetry/api");
    return new WorkerTracing(api, provider, workerId);
  }

  /** Runs fn with the handler span of rec active; returns the span and fn's value. */
  async run<T>(rec: TaskRecord, queue: string, fn: () => Promise<T>): Promise<[otel.Span, T]> {
    const api = this.#api;
    const h = rec.headers;
    let parent = api.context.active();
    const sc = parseTraceparent(h[HEADER_TRACEPARENT]);
    if (sc !== undefined) parent = api.trace.setSpanContext(parent, sc);
    const step = h["stepwise-step"] ?? "";
    const span = this.#tracer.startSpan(`handle ${step}`, {
      kind: api.SpanKind.CONSUMER,
      attributes: {
        [TraceKey.Request]: h["stepwise-request"] ?? "",
        [TraceKey.Workflow]: h["stepwise-workflow"] ?? "",
        [TraceKey.Step]: step,
        [TraceKey.Attempt]: Number(h["stepwise-attempt"] ?? 0),
        [TraceKey.Queue]: queue,
        [TraceKey.Worker]: this.workerId,
      },
    }, parent);
    const out = await api.context.with(api.trace.setSpan(parent, span), fn);
    return [span, out];
  }

  /** Ends span with outcome; puts its traceparent on result. */
  end(span: otel.Span, outcome: string, result: ResultRecord | undefined): void {
    span.setAttribute(TraceKey.Outcome, outcome);
    if (outcome !== "succeeded") span.setStatus({ code: this.#api.SpanStatusCode.ERROR, message: outcome });
    const sc = span.spanContext();
    if (result !== undefined && this.#api.trace.isSpanContextValid(sc)) {
      result.headers[HEADER_TRACEPARENT] = formatTraceparent(sc);
    }
    span.end();
  }
}
