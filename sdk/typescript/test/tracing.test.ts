// Tracing of the TypeScript worker against a recording tracer provider:
// the handler span is a child of the task's traceparent, carries the
// protocol's attributes, and its traceparent goes on the result.

import assert from "node:assert/strict";
import { test } from "node:test";
import * as otel from "@opentelemetry/api";

import { WorkerTracing, formatTraceparent, parseTraceparent, runTask, type TaskRecord } from "../src/index.js";

const ATTEMPT_SPAN = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

interface Started { name: string; options: otel.SpanOptions; parent: otel.SpanContext | undefined; span: RecordingSpan }

class RecordingSpan implements otel.Span {
  attributes: otel.Attributes = {};
  status: otel.SpanStatus = { code: otel.SpanStatusCode.UNSET };
  ended = false;
  constructor(private readonly sc: otel.SpanContext) {}
  spanContext(): otel.SpanContext { return this.sc; }
  setAttribute(k: string, v: otel.AttributeValue): this { this.attributes[k] = v; return this; }
  setAttributes(a: otel.Attributes): this { Object.assign(this.attributes, a); return this; }
  addEvent(): this { return this; }
  addLink(): this { return this; }
  addLinks(): this { return this; }
  setStatus(s: otel.SpanStatus): this { this.status = s; return this; }
  updateName(): this { return this; }
  end(): void { this.ended = true; }
  isRecording(): boolean { return true; }
  recordException(): void {}
}

function recordingProvider(started: Started[]): otel.TracerProvider {
  const tracer = {
    startSpan(name: string, options: otel.SpanOptions = {}, ctx?: otel.Context): otel.Span {
      const parent = ctx === undefined ? undefined : otel.trace.getSpanContext(ctx);
      const span = new RecordingSpan({ traceId: parent?.traceId ?? "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331", traceFlags: 1 });
      started.push({ name, options, parent, span });
      return span;
    },
    startActiveSpan(): never { throw new Error("not used"); },
  } as otel.Tracer;
  return { getTracer: () => tracer };
}

function task(extra: Record<string, string> = {}): TaskRecord {
  return {
    topic: "stepwise.tasks.q", partition: 0, offset: "0", key: "r-1", value: new TextEncoder().encode("{}"),
    headers: {
      "stepwise-request": "r-1", "stepwise-workflow": "wf", "stepwise-step": "docs[0]/ocr", "stepwise-attempt": "2",
      "stepwise-instance": "r-1", "stepwise-reply-topic": "stepwise.results", "stepwise-reply-partition": "0", ...extra,
    },
  };
}

test("traceparent parses and formats back; bad ones are refused", () => {
  const sc = parseTraceparent(ATTEMPT_SPAN);
  assert.ok(sc);
  assert.equal(formatTraceparent(sc), ATTEMPT_SPAN);
  for (const bad of [undefined, "", "00-abc-01", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"]) {
    assert.equal(parseTraceparent(bad), undefined, String(bad));
  }
});

test("a handler span continues the task's trace and goes back on the result", async () => {
  const started: Started[] = [];
  const tr = new WorkerTracing(otel, recordingProvider(started));
  const rec = task({ traceparent: ATTEMPT_SPAN });
  const [span, outcome] = await tr.run(rec, "q", () => runTask(rec, () => ({ ok: true }), { queue: "q" }));
  assert.equal(outcome.kind, "reply");
  if (outcome.kind !== "reply") return;
  tr.end(span, "succeeded", outcome.result);

  assert.equal(started.length, 1);
  const s = started[0]!;
  assert.equal(s.name, "handle docs[0]/ocr");
  assert.equal(s.options.kind, otel.SpanKind.CONSUMER);
  assert.equal(s.parent?.traceId, "4bf92f3577b34da6a3ce929d0e0e4736");
  assert.equal(s.parent?.spanId, "00f067aa0ba902b7");
  assert.deepEqual(
    { ...s.options.attributes },
    { "stepwise.request": "r-1", "stepwise.workflow": "wf", "stepwise.step": "docs[0]/ocr", "stepwise.attempt": 2, "stepwise.queue": "q", "stepwise.worker": tr.workerId },
  );
  assert.equal(s.span.attributes["stepwise.outcome"], "succeeded");
  assert.ok(s.span.ended);
  assert.equal(outcome.result.headers["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01");
});

test("a failed handler's span is marked as an error", async () => {
  const started: Started[] = [];
  const tr = new WorkerTracing(otel, recordingProvider(started));
  const rec = task();
  const [span, outcome] = await tr.run(rec, "q", () => runTask(rec, () => { throw new Error("boom"); }, { queue: "q" }));
  tr.end(span, "retryable", outcome.kind === "reply" ? outcome.result : undefined);
  const s = started[0]!;
  assert.equal(s.parent, undefined, "no traceparent: a root span");
  assert.equal(s.span.status.code, otel.SpanStatusCode.ERROR);
  assert.equal(s.span.attributes["stepwise.outcome"], "retryable");
});
