// Replays the worker conformance vectors (schemas/vectors/worker.json)
// against the pure core: the same cases every Stepwise worker SDK passes.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { NonRetryableError, runTask, type Handler, type Task, type TaskRecord } from "../src/index.js";

interface Vector {
  name: string;
  task: {
    topic: string;
    partition: number;
    key: string;
    headers: Record<string, string>;
    value?: unknown;
    raw?: string;
  };
  handler: { kind: string; value?: unknown; message?: string; retryable?: boolean };
  handlerCalled?: boolean;
  expect: null | {
    topic: string;
    partition: number;
    key: string;
    headers: Record<string, string>;
    value?: unknown;
    error?: { retryable: boolean; messageContains: string };
  };
}

const file = process.env.STEPWISE_VECTORS ?? new URL("../../../../schemas/vectors/worker.json", import.meta.url);
const vectors = JSON.parse(readFileSync(file, "utf8")) as { workerId: string; handlers: Record<string, string>; cases: Vector[] };

function handlerFor(h: Vector["handler"]): Handler {
  switch (h.kind) {
    case "echo":
      return (t: Task) => t.input;
    case "return":
      return () => h.value;
    case "return-nothing":
      return () => undefined;
    case "raise":
      return () => {
        throw h.retryable === false ? new NonRetryableError(h.message ?? "") : new Error(h.message ?? "");
      };
    case "describe":
      return (t: Task) => ({
        request: t.request,
        workflow: t.workflow,
        step: t.step,
        attempt: t.attempt,
        instance: t.instance,
        hasDeadline: t.deadline !== undefined,
        input: t.input,
      });
    default:
      throw new Error(`vector handler kind ${h.kind} is unknown to this test; add it`);
  }
}

test("the vectors file names every handler kind this test knows", () => {
  assert.deepEqual(Object.keys(vectors.handlers).sort(), ["describe", "echo", "raise", "return", "return-nothing"]);
  assert.ok(vectors.cases.length >= 16, `only ${vectors.cases.length} cases`);
});

for (const v of vectors.cases) {
  test(`vector: ${v.name}`, async () => {
    const rec: TaskRecord = {
      topic: v.task.topic,
      partition: v.task.partition,
      offset: "41",
      key: v.task.key,
      headers: v.task.headers,
      value: Buffer.from(v.task.raw ?? JSON.stringify(v.task.value), "utf8"),
    };
    let calls = 0;
    const inner = handlerFor(v.handler);
    const outcome = await runTask(rec, (t) => {
      calls++;
      return inner(t);
    }, { queue: "ocr", workerId: vectors.workerId });
    assert.equal(calls, v.handlerCalled === false ? 0 : 1, "handler calls");

    if (v.expect === null) {
      assert.equal(outcome.kind, "drop", "no result expected");
      return;
    }
    assert.equal(outcome.kind, "reply");
    if (outcome.kind !== "reply") return;
    const r = outcome.result;
    assert.equal(r.topic, v.expect.topic);
    assert.equal(r.partition, v.expect.partition);
    assert.equal(r.key, v.expect.key);
    assert.deepEqual(r.headers, v.expect.headers);
    const value: unknown = JSON.parse(r.value);
    if (v.expect.error !== undefined) {
      const e = value as { message: unknown; retryable: unknown };
      assert.equal(typeof e.message, "string");
      assert.equal(e.retryable, v.expect.error.retryable);
      assert.ok((e.message as string).includes(v.expect.error.messageContains), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(v.expect.error.messageContains)}`);
      assert.deepEqual(Object.keys(e).sort(), ["message", "retryable"]);
    } else {
      assert.deepEqual(value, v.expect.value);
    }
  });
}
