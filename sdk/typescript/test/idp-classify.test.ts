// The TypeScript classify worker of the idp example against the contract of
// the Go handler (examples/idp/handlers.go): same classes, same fields.

import assert from "node:assert/strict";
import { test } from "node:test";

import { classify, classifyConfidence, classifyHandler, latencyFromEnv, parseGoDuration, slow } from "../examples/idp-classify.js";
import { runTask, type TaskRecord } from "../src/index.js";

function record(input: unknown): TaskRecord {
  return {
    topic: "stepwise.tasks.classify",
    partition: 0,
    offset: "0",
    key: "r-1",
    headers: {
      "stepwise-request": "r-1",
      "stepwise-workflow": "idp",
      "stepwise-step": "documents[0]/classify",
      "stepwise-attempt": "1",
      "stepwise-instance": "r-1",
      "stepwise-reply-topic": "stepwise.results",
      "stepwise-reply-partition": "0",
    },
    value: Buffer.from(JSON.stringify(input)),
  };
}

async function call(input: unknown): Promise<{ status: string; value: any }> {
  const o = await runTask(record(input), slow(0, classifyHandler), { queue: "classify" });
  assert.equal(o.kind, "reply");
  if (o.kind !== "reply") throw new Error("unreachable");
  return { status: o.result.headers["stepwise-status"]!, value: JSON.parse(o.result.value) };
}

test("classes are scored by whole-word keywords, as the Go worker scores them", () => {
  const cases: Record<string, string> = {
    "INVOICE no. 7, total due: 3.00": "invoice",
    "This agreement binds the parties for a term.": "contract",
    "Dear Sam, ... Sincerely, Al": "letter",
    "determined termite": "other",
    "": "other",
    "Dear party, the invoice: sincerely yours": "letter",
    "agreement invoice": "invoice", // a tie goes to the class tried first
  };
  for (const [text, want] of Object.entries(cases)) assert.equal(classify(text), want, text);
});

test("the confidence is the winning class's share of the keywords, as the Go worker computes it", () => {
  const cases: Array<[string, string, number]> = [
    ["INVOICE no. 7, total due: 3.00", "invoice", 1],
    ["Dear party, the invoice: sincerely yours", "letter", 0.6],
    ["agreement invoice", "invoice", 0.5],
    ["Dear Al, the term: sincerely", "letter", 0.67],
    ["determined termite", "other", 1],
  ];
  for (const [text, cls, confidence] of cases) assert.deepEqual(classifyConfidence(text), { cls, confidence }, text);
});

test("the output carries name, class and the pages with zero counts left out", async () => {
  const r = await call({
    name: "a.pdf",
    extra: "ignored",
    pages: [
      { number: 1, text: "Invoice No. 7", confidence: 0.93, blocks: 1, lines: 1, words: 3, unknown: true },
      { number: 2, text: "Total due: EUR 1.00", confidence: 0.9, blocks: 0, lines: 0, words: 0 },
    ],
  });
  assert.equal(r.status, "ok");
  assert.deepEqual(r.value, {
    name: "a.pdf",
    class: "invoice",
    confidence: 1,
    pages: [
      { number: 1, text: "Invoice No. 7", confidence: 0.93, blocks: 1, lines: 1, words: 3 },
      { number: 2, text: "Total due: EUR 1.00", confidence: 0.9 },
    ],
  });
});

test("a document without pages is other, with pages null", async () => {
  const r = await call({});
  assert.deepEqual(r.value, { name: "", class: "other", confidence: 1, pages: null });
});

test("bad inputs fail permanently", async () => {
  for (const [input, says] of [
    [{ pages: [null] }, "page 1 has no layout"],
    [{ name: "d", pages: "x" }, '"pages" is not a list'],
    [{ name: 3 }, '"name" is not a string'],
    [{ pages: [{ number: 1.5 }] }, '"number" is not an integer'],
  ] as const) {
    const r = await call(input);
    assert.equal(r.status, "error", JSON.stringify(input));
    assert.equal(r.value.retryable, false);
    assert.ok(r.value.message.includes(says), `${r.value.message} lacks ${says}`);
  }
});

test("the simulated latency reads Go durations", () => {
  assert.equal(parseGoDuration("20ms"), 20);
  assert.equal(parseGoDuration("1.5s"), 1500);
  assert.equal(parseGoDuration("1m30s"), 90_000);
  assert.equal(parseGoDuration("0"), 0);
  assert.equal(parseGoDuration("20"), undefined);
  assert.equal(parseGoDuration("-1s"), undefined);
  assert.deepEqual(latencyFromEnv({}), { ms: 5 });
  assert.equal(latencyFromEnv({ STEPWISE_IDP_LATENCY: "soon" }).ms, 5);
  assert.match(latencyFromEnv({ STEPWISE_IDP_LATENCY: "soon" }).error ?? "", /not a non-negative duration/);
});
