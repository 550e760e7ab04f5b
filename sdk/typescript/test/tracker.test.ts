import assert from "node:assert/strict";
import { test } from "node:test";

import { OffsetTracker, Semaphore } from "../src/index.js";

test("the mark moves only over a contiguous run of finished tasks", () => {
  const t = new OffsetTracker();
  t.assign([0, 1]);
  const a = t.start(0, "10")!;
  const b = t.start(0, "11")!;
  const c = t.start(0, "13")!; // 12 was a control record
  const other = t.start(1, "5")!;
  assert.equal(t.finish(b), undefined, "10 still running");
  assert.equal(t.finish(other), "6");
  assert.equal(t.finish(a), "12", "10 and 11 done");
  assert.equal(t.finish(c), "14");
});

test("a task of a partition not assigned does not start", () => {
  const t = new OffsetTracker();
  t.assign([1]);
  assert.equal(t.start(0, "0"), undefined);
  assert.notEqual(t.start(1, "0"), undefined);
});

test("tasks started before a reassignment move no mark", () => {
  const t = new OffsetTracker();
  t.assign([0]);
  const old = t.start(0, "3")!;
  t.assign([0]);
  assert.equal(t.isCurrent(old), false);
  assert.equal(t.finish(old), undefined);
  const fresh = t.start(0, "3")!;
  assert.equal(t.finish(fresh), "4");
  t.revokeAll();
  assert.deepEqual(t.partitions(), []);
});

test("offsets beyond 2^53 are kept exact", () => {
  const t = new OffsetTracker();
  t.assign([0]);
  const e = t.start(0, "9007199254740993")!;
  assert.equal(t.finish(e), "9007199254740994");
});

test("the semaphore bounds holders and hands slots to waiters in order", async () => {
  const s = new Semaphore(2);
  assert.equal(await s.acquire(), true);
  assert.equal(await s.acquire(), true);
  const order: number[] = [];
  const w1 = s.acquire().then((ok) => order.push(ok ? 1 : -1));
  const w2 = s.acquire().then((ok) => order.push(ok ? 2 : -2));
  assert.equal(s.inUse, 2);
  s.release();
  await w1;
  s.release();
  await w2;
  assert.deepEqual(order, [1, 2]);
  assert.equal(s.inUse, 2);
});

test("an aborted wait takes no slot", async () => {
  const s = new Semaphore(1);
  await s.acquire();
  const ac = new AbortController();
  const w = s.acquire(ac.signal);
  ac.abort();
  assert.equal(await w, false);
  s.release();
  assert.equal(s.inUse, 0);
  assert.throws(() => s.release());
});
