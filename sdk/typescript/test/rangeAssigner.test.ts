import { test } from "node:test";
import assert from "node:assert/strict";

import { rangeAssign } from "../src/rangeAssigner.js";

test("range assignment matches the consumer protocol's range assignor", () => {
  // 7 partitions, 3 members: 3, 2, 2 in member-id order, contiguous.
  const got = rangeAssign(["m-c", "m-a", "m-b"], new Map([["tasks", [6, 5, 4, 3, 2, 1, 0]]]));
  assert.deepEqual(Object.fromEntries([...got].map(([m, a]) => [m, a.tasks])), {
    "m-a": [0, 1, 2],
    "m-b": [3, 4],
    "m-c": [5, 6],
  });
});

test("range assignment gives nothing to members beyond the partition count", () => {
  const got = rangeAssign(["a", "b", "c"], new Map([["t", [0, 1]]]));
  assert.deepEqual({ ...got.get("a") }, { t: [0] });
  assert.deepEqual({ ...got.get("b") }, { t: [1] });
  assert.deepEqual({ ...got.get("c") }, {});
});

test("every partition is assigned exactly once", () => {
  for (let members = 1; members <= 5; members++) {
    for (let parts = 0; parts <= 12; parts++) {
      const ids = Array.from({ length: members }, (_, i) => `m${i}`);
      const got = rangeAssign(ids, new Map([["t", Array.from({ length: parts }, (_, i) => i)]]));
      const all = [...got.values()].flatMap((a) => a.t ?? []).sort((a, b) => a - b);
      assert.deepEqual(all, Array.from({ length: parts }, (_, i) => i), `${members} members, ${parts} partitions`);
    }
  }
});
