// Heartbeats: a task that asks for them gets them while its handler runs,
// every interval and when the handler calls task.heartbeat; others none.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { runTask, type ResultRecord, type TaskRecord } from "../src/index.js";

function task(headers: Record<string, string> = {}): TaskRecord {
  return {
    topic: "stepwise.tasks.q",
    partition: 0,
    offset: "0",
    key: "hb-1",
    headers: {
      "stepwise-request": "hb-1",
      "stepwise-workflow": "wf",
      "stepwise-step": "ocr",
      "stepwise-attempt": "1",
      "stepwise-instance": "hb-1",
      "stepwise-reply-topic": "stepwise.results",
      "stepwise-reply-partition": "2",
      ...headers,
    },
    value: Buffer.from('{"n":1}'),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("heartbeats", () => {
  test("sent every interval and on task.heartbeat while the handler runs", async () => {
    const beats: ResultRecord[] = [];
    let interval = -1;
    const outcome = await runTask(
      task({ "stepwise-heartbeat-interval": "50" }),
      async (t) => {
        interval = t.heartbeatInterval;
        await sleep(300);
        t.heartbeat({ page: 2 });
        assert.throws(() => t.heartbeat([1] as never), /must be a JSON object/);
        await sleep(300);
        return { done: true };
      },
      { queue: "q", beat: (r) => beats.push(r) },
    );
    const after = beats.length;
    await sleep(200);
    assert.equal(beats.length, after, "no heartbeat after the handler returned");
    assert.equal(interval, 50);
    assert.equal(outcome.kind, "reply");
    // About 12 automatic beats at 50ms in 600ms; the machine's load may
    // stretch the ticks, so only their presence is checked.
    assert.ok(beats.length >= 3, `${beats.length} heartbeats`);
    for (const b of beats) {
      assert.equal(b.headers["stepwise-status"], "heartbeat");
      assert.equal(b.headers["stepwise-request"], "hb-1");
      assert.equal(b.headers["stepwise-attempt"], "1");
      assert.equal(b.partition, 2);
    }
    const values = beats.map((b) => b.value);
    assert.equal(values[0], "{}");
    assert.ok(values.includes('{"details":{"page":2}}'));
    assert.equal(values[values.length - 1], '{"details":{"page":2}}', "later automatic beats repeat the details");
  });

  test("none without the header; task.heartbeat does nothing", async () => {
    const beats: ResultRecord[] = [];
    const outcome = await runTask(
      task(),
      async (t) => {
        assert.equal(t.heartbeatInterval, 0);
        t.heartbeat({ ignored: 1 });
        await sleep(100);
        return {};
      },
      { queue: "q", beat: (r) => beats.push(r) },
    );
    assert.equal(outcome.kind, "reply");
    assert.equal(beats.length, 0);
  });
});
