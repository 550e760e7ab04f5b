// The core beyond the vectors: JavaScript values a handler may return or
// throw, deadlines, the hard stop, and RFC 3339 parsing.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { CancelledError, NonRetryableError, controlKey, isNonRetryable, parseRFC3339, recordTaskKey, runTask, type Handler, type Outcome, type TaskRecord } from "../src/index.js";

function task(headers: Record<string, string> = {}, value: string = '{"n":1}'): TaskRecord {
  return {
    topic: "stepwise.tasks.q",
    partition: 0,
    offset: "0",
    key: "r-1",
    headers: {
      "stepwise-request": "r-1",
      "stepwise-workflow": "wf",
      "stepwise-step": "s",
      "stepwise-attempt": "1",
      "stepwise-instance": "r-1",
      "stepwise-reply-topic": "stepwise.results",
      "stepwise-reply-partition": "2",
      ...headers,
    },
    value: Buffer.from(value),
  };
}

async function outcomeOf(h: Handler, rec = task()): Promise<{ status: string; value: any; outcome: Outcome }> {
  const outcome = await runTask(rec, h, { queue: "q" });
  assert.equal(outcome.kind, "reply");
  if (outcome.kind !== "reply") throw new Error("unreachable");
  return { status: outcome.result.headers["stepwise-status"]!, value: JSON.parse(outcome.result.value), outcome };
}

describe("handler return values", () => {
  test("null is the empty output", async () => {
    const r = await outcomeOf(() => null);
    assert.equal(r.status, "ok");
    assert.deepEqual(r.value, {});
  });

  test("an async object is the output", async () => {
    const r = await outcomeOf(async (t) => ({ doubled: (t.input.n as number) * 2 }));
    assert.deepEqual(r.value, { doubled: 2 });
  });

  for (const [what, v, described] of [
    ["a string", "x", "a string"],
    ["a number", 3, "a number"],
    ["a boolean", true, "a boolean"],
    ["a Date (encodes as a string)", new Date(0), "a string"],
  ] as const) {
    test(`${what} is a retryable error`, async () => {
      const r = await outcomeOf(() => v);
      assert.equal(r.status, "error");
      assert.equal(r.value.retryable, true);
      assert.match(r.value.message, new RegExp(`handler returned ${described}, not a JSON object`));
    });
  }

  test("a function is a retryable error", async () => {
    const r = await outcomeOf(() => () => 1);
    assert.equal(r.value.retryable, true);
    assert.match(r.value.message, /a function, not a JSON object/);
  });

  test("an output that cannot be encoded is a retryable error", async () => {
    const r = await outcomeOf(() => ({ big: 1n }));
    assert.equal(r.status, "error");
    assert.equal(r.value.retryable, true);
    assert.match(r.value.message, /^stepwise: encode output: /);
  });

  test("an output over the size limit is a non-retryable error", async () => {
    const outcome = await runTask(task(), () => ({ s: "x".repeat(300) }), { queue: "q", maxResultBytes: 256 });
    assert.equal(outcome.kind, "reply");
    if (outcome.kind !== "reply") return;
    const v = JSON.parse(outcome.result.value);
    assert.equal(v.retryable, false);
    assert.match(v.message, /output of 308 bytes exceeds the limit of 256 bytes/);
  });
});

describe("thrown errors", () => {
  test("a NonRetryableError given as cause is not retryable", async () => {
    const r = await outcomeOf(() => {
      throw new Error("wrapped", { cause: new NonRetryableError("bad page") });
    });
    assert.deepEqual(r.value, { message: "wrapped", retryable: false });
  });

  test("a thrown string is a retryable error with that message", async () => {
    const r = await outcomeOf(() => {
      throw "engine busy";
    });
    assert.deepEqual(r.value, { message: "engine busy", retryable: true });
  });

  test("a rejected promise is a retryable error", async () => {
    const r = await outcomeOf(async () => Promise.reject(new Error("later")));
    assert.deepEqual(r.value, { message: "later", retryable: true });
    assert.equal(r.outcome.kind === "reply" && r.outcome.failure?.thrown instanceof Error, true);
  });

  test("isNonRetryable follows causes and survives cycles", () => {
    const a = new Error("a") as Error & { cause?: unknown };
    const b = new Error("b", { cause: a });
    a.cause = b;
    assert.equal(isNonRetryable(a), false);
    assert.equal(isNonRetryable(new NonRetryableError("x")), true);
    assert.equal(isNonRetryable("x"), false);
  });
});

describe("task fields", () => {
  test("headers of other programs reach the handler; repeated parsing keeps the raw input", async () => {
    let seen: { tp?: string; raw?: string; queue?: string; offset?: string } = {};
    await outcomeOf((t) => {
      seen = { tp: t.headers["traceparent"], raw: t.rawInput, queue: t.queue, offset: t.offset };
      return {};
    }, task({ traceparent: "00-1-2-01" }, '{"big": 12345678901234567890}'));
    assert.deepEqual(seen, { tp: "00-1-2-01", raw: '{"big": 12345678901234567890}', queue: "q", offset: "0" });
  });

  test("an attempt of 0 is malformed", async () => {
    const r = await outcomeOf(() => ({}), task({ "stepwise-attempt": "0" }));
    assert.equal(r.value.retryable, false);
    assert.match(r.value.message, /stepwise-attempt "0" is not an attempt number/);
  });

  test("an empty value is malformed", async () => {
    const r = await outcomeOf(() => ({}), task({}, " "));
    assert.equal(r.value.retryable, false);
    assert.match(r.value.message, /not a JSON object \(empty\)/);
  });

  test("a reply partition beyond 32 bits gives no reply", async () => {
    const outcome = await runTask(task({ "stepwise-reply-partition": "2147483648" }), () => ({}), { queue: "q" });
    assert.equal(outcome.kind, "drop");
  });
});

describe("deadlines", () => {
  test("the signal aborts at the deadline", async () => {
    const deadline = new Date(Date.now() + 50).toISOString();
    const r = await outcomeOf(
      (t) =>
        new Promise((_, reject) => {
          t.signal.addEventListener("abort", () => reject(t.signal.reason));
        }),
      task({ "stepwise-deadline": deadline }),
    );
    assert.equal(r.value.retryable, true);
    assert.match(r.value.message, /deadline .* passed/);
  });

  test("a deadline centuries away sets no timer that fires early", async () => {
    const r = await outcomeOf(async (t) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      return { aborted: t.signal.aborted };
    }, task({ "stepwise-deadline": "2999-01-01T00:00:00Z" }));
    assert.deepEqual(r.value, { aborted: false });
  });

  test("the injected clock decides whether the deadline passed", async () => {
    const rec = task({ "stepwise-deadline": "2030-01-01T00:00:00Z" });
    const late = await runTask(rec, () => ({}), { queue: "q", now: () => Date.parse("2030-01-01T00:00:00Z") });
    assert.equal(late.kind === "reply" && late.result.headers["stepwise-status"], "error");
    const early = await runTask(rec, () => ({}), { queue: "q", now: () => Date.parse("2029-12-31T23:59:59Z") });
    assert.equal(early.kind === "reply" && early.result.headers["stepwise-status"], "ok");
  });

  test("RFC 3339 times parse as Go's RFC3339Nano layout reads them", () => {
    assert.equal(parseRFC3339("2026-11-25T10:00:00Z")?.toISOString(), "2026-11-25T10:00:00.000Z");
    assert.equal(parseRFC3339("2026-11-25T10:00:00.123456789+02:00")?.toISOString(), "2026-11-25T08:00:00.123Z");
    assert.equal(parseRFC3339("2024-02-29T00:00:00-00:30")?.toISOString(), "2024-02-29T00:30:00.000Z");
    assert.equal(parseRFC3339("0099-01-01T00:00:00Z")?.toISOString(), "0099-01-01T00:00:00.000Z");
    for (const bad of ["tomorrow", "2026-11-25", "2026-11-25 10:00:00Z", "2026-13-01T00:00:00Z", "2023-02-29T00:00:00Z", "2026-11-25T24:00:00Z", "2026-11-25T10:00:00"]) {
      assert.equal(parseRFC3339(bad), undefined, bad);
    }
  });
});

describe("hard stop", () => {
  test("a handler still running at the hard stop is abandoned, not answered", async () => {
    const hard = new AbortController();
    const p = runTask(task(), (t) => new Promise((resolve) => t.signal.addEventListener("abort", () => resolve({ late: true }))), { queue: "q", hardStop: hard.signal });
    hard.abort();
    const outcome = await p;
    assert.equal(outcome.kind, "abandoned");
  });
});

describe("cancel", () => {
  test("a cancel aborts the running handler's signal with a CancelledError and no result is sent", async () => {
    const ctl = new AbortController();
    let reason: unknown;
    const running = runTask(
      task(),
      async (t) =>
        new Promise((resolve) => {
          t.signal.addEventListener("abort", () => {
            reason = t.signal.reason;
            resolve({ late: true });
          });
          setTimeout(() => ctl.abort(), 10);
        }),
      { queue: "q", cancel: ctl.signal },
    );
    const outcome = await running;
    assert.equal(outcome.kind, "cancelled");
    assert.ok(reason instanceof CancelledError, `signal aborted with ${String(reason)}`);
  });

  test("a task cancelled before it starts never runs its handler", async () => {
    const ctl = new AbortController();
    ctl.abort();
    let ran = false;
    const outcome = await runTask(task(), () => {
      ran = true;
      return {};
    }, { queue: "q", cancel: ctl.signal });
    assert.equal(outcome.kind, "cancelled");
    assert.equal(ran, false);
  });

  test("control messages are recognised and keyed like their task", () => {
    const t = task();
    const c = task({ "stepwise-control": "cancel" });
    assert.equal(controlKey(t), undefined);
    assert.equal(controlKey(c), recordTaskKey(t));
  });
});
