// Result delivery: a result is sent again after any error except the
// broker refusing the record itself for good (the Go SDK's rule).

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import kafkajs from "kafkajs";

import { discardLogger, type ResultRecord } from "../src/index.js";
import { deliver, resultPartitioner, ResultSender, UNKNOWN_PARTITION_WAIT_MS, type BatchProducer } from "../src/results.js";

type Ctor = new (e: unknown) => Error;
const ProtocolError = kafkajs.KafkaJSProtocolError as unknown as Ctor;
const MetadataNotLoaded = kafkajs.KafkaJSMetadataNotLoaded as unknown as Ctor;

/** A broker's answer as kafkajs raises it. */
function brokerError(type: string, code: number): Error {
  return new ProtocolError({ type, code, retriable: false, message: `the broker says ${type}` });
}

const result: ResultRecord = {
  topic: "stepwise.results",
  partition: 3,
  key: "r-1",
  value: '{"n":1}',
  headers: { "stepwise-request": "r-1", "stepwise-step": "s", "stepwise-status": "ok" },
};

/** A producer that fails the first len(errors) sends with them, then takes every record. */
function fakeProducer(...errors: unknown[]): BatchProducer & { calls: number; taken: string[] } {
  const p = {
    calls: 0,
    taken: [] as string[],
    async sendBatch(b: Parameters<BatchProducer["sendBatch"]>[0]) {
      const err = errors[p.calls++];
      if (err !== undefined) throw err;
      for (const tm of b.topicMessages ?? []) for (const m of tm.messages) p.taken.push(`${tm.topic}/${m.partition}/${String(m.key)}`);
      return [];
    },
  };
  return p;
}

/** A clock that moves only when the delivery sleeps. */
function fakeTime() {
  let t = 0;
  return { now: () => t, sleep: async (ms: number) => void (t += ms), slept: () => t };
}

describe("deliver", () => {
  test("a result refused for a reason not its own (a policy violation) is sent again", async () => {
    const p = fakeProducer(brokerError("POLICY_VIOLATION", 44));
    const clock = fakeTime();
    const d = await deliver(new ResultSender(p), result, { stop: new AbortController().signal, log: discardLogger, ...clock });
    assert.equal(d.kind, "sent");
    assert.equal(p.calls, 2);
    assert.deepEqual(p.taken, ["stepwise.results/3/r-1"]);
  });

  test("errors kafkajs gave up retrying are retried too, with a growing pause", async () => {
    const gaveUp = new kafkajs.KafkaJSNumberOfRetriesExceeded(new kafkajs.KafkaJSConnectionError("connection refused"), { retryCount: 5, retryTime: 1000 });
    const p = fakeProducer(gaveUp, gaveUp, brokerError("NOT_ENOUGH_REPLICAS", 19), brokerError("TOPIC_AUTHORIZATION_FAILED", 29));
    const clock = fakeTime();
    const d = await deliver(new ResultSender(p), result, { stop: new AbortController().signal, log: discardLogger, ...clock });
    assert.equal(d.kind, "sent");
    assert.equal(p.calls, 5);
    assert.equal(clock.slept(), 100 + 200 + 400 + 800);
  });

  for (const [type, code] of [
    ["MESSAGE_TOO_LARGE", 10],
    ["RECORD_LIST_TOO_LARGE", 18],
    ["INVALID_RECORD", 87],
    ["CORRUPT_MESSAGE", 2],
    ["INVALID_TOPIC_EXCEPTION", 17],
    ["UNKNOWN_TOPIC_OR_PARTITION", 3],
  ] as const) {
    test(`a record refused for good (${type}) is given up at once`, async () => {
      const p = fakeProducer(brokerError(type, code));
      const d = await deliver(new ResultSender(p), result, { stop: new AbortController().signal, log: discardLogger, ...fakeTime() });
      assert.equal(d.kind, "refused");
      assert.equal(p.calls, 1);
      assert.deepEqual(p.taken, []);
    });
  }

  test("a refusal for good wrapped by kafkajs's retrier is still one", async () => {
    const inner = brokerError("MESSAGE_TOO_LARGE", 10);
    const NonRetriable = kafkajs.KafkaJSNonRetriableError as unknown as new (e: unknown, o: { cause: unknown }) => Error;
    const p = fakeProducer(new NonRetriable(inner, { cause: inner }));
    const d = await deliver(new ResultSender(p), result, { stop: new AbortController().signal, log: discardLogger, ...fakeTime() });
    assert.equal(d.kind, "refused");
  });

  test("a partition the producer does not know yet is waited for, then given up", async () => {
    const unknown = new MetadataNotLoaded("stepwise: partition 3 of stepwise.results is not in the producer's metadata yet");
    const waited = fakeProducer(unknown, unknown, unknown);
    let d = await deliver(new ResultSender(waited), result, { stop: new AbortController().signal, log: discardLogger, ...fakeTime() });
    assert.equal(d.kind, "sent");
    assert.equal(waited.calls, 4);

    const never = fakeProducer(...Array<unknown>(1000).fill(unknown));
    const clock = fakeTime();
    d = await deliver(new ResultSender(never), result, { stop: new AbortController().signal, log: discardLogger, ...clock });
    assert.equal(d.kind, "refused");
    assert.ok(clock.slept() >= UNKNOWN_PARTITION_WAIT_MS, `gave up after ${clock.slept()} ms`);
    assert.deepEqual(never.taken, []);
  });

  test("the hard stop leaves the result unsent", async () => {
    const stop = new AbortController();
    const p = fakeProducer(brokerError("POLICY_VIOLATION", 44), brokerError("POLICY_VIOLATION", 44));
    const d = await deliver(new ResultSender(p), result, {
      stop: stop.signal,
      log: discardLogger,
      now: () => 0,
      sleep: async () => stop.abort(),
    });
    assert.equal(d.kind, "stopped");
    assert.equal(p.calls, 1);
  });

  test("a disconnected producer stops the delivery", async () => {
    const p = fakeProducer(new kafkajs.KafkaJSError("The producer is disconnected"));
    const d = await deliver(new ResultSender(p), result, { stop: new AbortController().signal, log: discardLogger, ...fakeTime() });
    assert.equal(d.kind, "stopped");
  });
});

describe("ResultSender", () => {
  test("a batch refused for good is sent again record by record, so only the bad one is refused", async () => {
    let calls = 0;
    const taken: string[] = [];
    const p: BatchProducer = {
      async sendBatch(b) {
        calls++;
        const ms = (b.topicMessages ?? []).flatMap((tm) => tm.messages);
        if (ms.some((m) => m.key === "too-big")) throw brokerError("MESSAGE_TOO_LARGE", 10);
        for (const m of ms) taken.push(String(m.key));
        return [];
      },
    };
    const s = new ResultSender(p);
    // The first send goes out alone; the next three wait and go together.
    const first = s.send({ ...result, key: "a" });
    const rest = ["b", "too-big", "c"].map((k) => s.send({ ...result, key: k }).then(() => "sent", () => "rejected"));
    await first;
    assert.deepEqual(await Promise.all(rest), ["sent", "rejected", "sent"]);
    assert.deepEqual(taken, ["a", "b", "c"]);
    assert.equal(calls, 5);
  });
});

describe("resultPartitioner", () => {
  const part = resultPartitioner();
  const meta = [{ partitionId: 0 }, { partitionId: 1 }];

  test("a result goes to the partition its task named", () => {
    assert.equal(part({ topic: "stepwise.results", partitionMetadata: meta, message: { partition: 1 } }), 1);
  });

  test("a partition missing from the metadata makes kafkajs read it again instead of sending nothing", () => {
    assert.throws(
      () => part({ topic: "stepwise.results", partitionMetadata: meta, message: { partition: 5 } }),
      (e: Error) => e.name === "KafkaJSMetadataNotLoaded" && /partition 5 of stepwise.results/.test(e.message),
    );
  });

  test("a result without a partition is a defect", () => {
    assert.throws(() => part({ topic: "stepwise.results", partitionMetadata: meta, message: {} }), /without an explicit partition/);
  });
});
