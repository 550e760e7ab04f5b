// The Worker against a real Kafka broker: results reach the partition a task
// names, offsets are committed only after results and never past a running
// task, concurrency is bounded, aborted tasks never run, and a task left
// uncommitted by a stopped worker runs again on the next one.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import kafkajs from "kafkajs";

import { NonRetryableError, Worker, type Task } from "../../src/index.js";
import { brokers, latch, produceTasks, quietLogger, ResultReader, setUp, sleep, taskMessage, waitCommitted, committed, type Env } from "./env.js";

const { Partitioners } = kafkajs;

function worker(env: Env, extra: Partial<ConstructorParameters<typeof Worker>[0]> = {}): Worker {
  return new Worker({ brokers: brokers(), prefix: env.prefix, logger: quietLogger, handleSignals: false, sessionTimeoutMs: 6000, ...extra });
}

describe("worker against a real broker", { timeout: 240_000 }, () => {
  test("KAFKA_BROKERS names a broker", () => {
    assert.ok(brokers().length > 0);
  });

  test("results reach the named partitions with correlation headers; offsets are committed after them", { timeout: 60_000 }, async () => {
    const env = await setUp("echo", 2, 4);
    const reader = await ResultReader.start(env);
    const w = new Worker({ brokers: brokers(), prefix: env.prefix, logger: quietLogger, sessionTimeoutMs: 6000, workerId: "ts-it/1" });
    w.handle("echo", (t: Task) => {
      if (t.input.fail) throw new NonRetryableError(`cannot do ${t.request}`);
      return { ...t.input, step: t.step, attempt: t.attempt };
    }, { concurrency: 2 });
    const running = w.run();
    try {
      await produceTasks(env, [
        { partition: 0, request: "r-0", replyPartition: 3, value: { n: 0 } },
        { partition: 1, request: "r-1", replyPartition: 0, value: { n: 1 }, step: "docs[1]/ocr", attempt: 2 },
        { partition: 1, request: "r-2", replyPartition: 2, value: { fail: true } },
      ]);
      const seen = await reader.waitFor(3);
      const byKey = new Map(seen.map((r) => [r.key, r]));
      assert.deepEqual(byKey.get("r-0"), {
        partition: 3,
        key: "r-0",
        headers: { "stepwise-request": "r-0", "stepwise-step": "work", "stepwise-attempt": "1", "stepwise-status": "ok", "stepwise-worker": "ts-it/1" },
        value: { n: 0, step: "work", attempt: 1 },
      });
      assert.deepEqual(byKey.get("r-1"), {
        partition: 0,
        key: "r-1",
        headers: { "stepwise-request": "r-1", "stepwise-step": "docs[1]/ocr", "stepwise-attempt": "2", "stepwise-status": "ok", "stepwise-worker": "ts-it/1" },
        value: { n: 1, step: "docs[1]/ocr", attempt: 2 },
      });
      assert.deepEqual(byKey.get("r-2"), {
        partition: 2,
        key: "r-2",
        headers: { "stepwise-request": "r-2", "stepwise-step": "work", "stepwise-attempt": "1", "stepwise-status": "error", "stepwise-worker": "ts-it/1" },
        value: { message: "cannot do r-2", retryable: false },
      });
      await waitCommitted(env, `${env.prefix}workers.echo`, (m) => m.get(0) === 1n && m.get(1) === 2n);
      // SIGTERM drains and ends run.
      process.kill(process.pid, "SIGTERM");
      await running;
    } finally {
      await w.stop();
      await reader.close();
      await env.close();
    }
  });

  test("a commit never passes a running task, and concurrency is bounded", { timeout: 60_000 }, async () => {
    const env = await setUp("slow", 1, 1);
    const reader = await ResultReader.start(env);
    const w = worker(env);
    const first = latch();
    let inFlight = 0;
    let maxInFlight = 0;
    w.handle("slow", async (t: Task) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        if (t.input.i === 0) await first.promise;
        else await sleep(100);
        return { i: t.input.i };
      } finally {
        inFlight--;
      }
    }, { concurrency: 3 });
    const running = w.run();
    const group = `${env.prefix}workers.slow`;
    try {
      await produceTasks(env, Array.from({ length: 8 }, (_, i) => ({ partition: 0, request: `r-${i}`, replyPartition: 0, value: { i } })));
      // Tasks 1..7 finish while task 0 holds one slot.
      await reader.waitFor(7);
      assert.deepEqual(reader.seen.map((r) => (r.value as { i: number }).i).sort(), [1, 2, 3, 4, 5, 6, 7]);
      await sleep(1500);
      const before = (await committed(env, group)).get(0) ?? -1n;
      assert.ok(before <= 0n, `committed ${before} past the running task at offset 0`);
      first.open();
      await reader.waitFor(8);
      await waitCommitted(env, group, (m) => m.get(0) === 8n);
      assert.equal(maxInFlight, 3, "handlers running at once");
    } finally {
      first.open();
      await w.stop();
      await running;
      await reader.close();
      await env.close();
    }
  });

  test("tasks of an aborted transaction never run", { timeout: 60_000 }, async () => {
    const env = await setUp("txn", 1, 1);
    const reader = await ResultReader.start(env);
    const txProducer = env.kafka.producer({
      transactionalId: `${env.prefix}tx`,
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    await txProducer.connect();
    const w = worker(env);
    const ran: string[] = [];
    w.handle("txn", (t: Task) => {
      ran.push(t.request);
      return {};
    });
    const running = w.run();
    try {
      const aborted = await txProducer.transaction();
      await aborted.send({ topic: env.tasksTopic, messages: [taskMessage(env, { partition: 0, request: "aborted", replyPartition: 0, value: {} })] });
      await aborted.abort();
      const kept = await txProducer.transaction();
      await kept.send({ topic: env.tasksTopic, messages: [taskMessage(env, { partition: 0, request: "kept", replyPartition: 0, value: {} })] });
      await kept.commit();
      await reader.waitFor(1);
      // Offsets: aborted record 0, its marker 1, kept record 2, its marker 3.
      await waitCommitted(env, `${env.prefix}workers.txn`, (m) => (m.get(0) ?? -1n) >= 3n);
      await sleep(500);
      assert.deepEqual(ran, ["kept"]);
      assert.deepEqual(reader.seen.map((r) => r.key), ["kept"]);
    } finally {
      await w.stop();
      await running;
      await txProducer.disconnect();
      await reader.close();
      await env.close();
    }
  });

  test("a task left uncommitted by a stopped worker runs again on the next one", { timeout: 60_000 }, async () => {
    const env = await setUp("redo", 1, 2);
    const reader = await ResultReader.start(env);
    const group = `${env.prefix}workers.redo`;
    const started = latch();
    const runs: string[] = [];

    // The first worker does not finish the task before its drain timeout
    // runs out: the handler gives up when its signal aborts, and the worker
    // leaves without a result or a commit.
    const a = worker(env, { drainTimeoutMs: 300 });
    a.handle("redo", (t: Task) => {
      runs.push(`a:${t.request}`);
      started.open();
      return new Promise((_, reject) => t.signal.addEventListener("abort", () => reject(t.signal.reason)));
    });
    const runningA = a.run();
    await produceTasks(env, [{ partition: 0, request: "r-1", replyPartition: 1, value: { page: 1 } }]);
    try {
      await started.promise;
      await a.stop();
      await runningA;
      assert.equal((await committed(env, group)).get(0) ?? -1n, -1n, "nothing committed by the stopped worker");
      assert.equal(reader.seen.length, 0, "no result from the stopped worker");

      const b = worker(env, { workerId: "ts-it/b" });
      b.handle("redo", (t: Task) => {
        runs.push(`b:${t.request}`);
        return { redone: t.input.page };
      });
      const runningB = b.run();
      try {
        const [res] = await reader.waitFor(1);
        assert.deepEqual(res, {
          partition: 1,
          key: "r-1",
          headers: { "stepwise-request": "r-1", "stepwise-step": "work", "stepwise-attempt": "1", "stepwise-status": "ok", "stepwise-worker": "ts-it/b" },
          value: { redone: 1 },
        });
        await waitCommitted(env, group, (m) => m.get(0) === 1n);
        assert.deepEqual(runs, ["a:r-1", "b:r-1"]);
      } finally {
        await b.stop();
        await runningB;
      }
    } finally {
      await a.stop();
      await reader.close();
      await env.close();
    }
  });
});
