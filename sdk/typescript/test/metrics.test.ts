import { test } from "node:test";
import assert from "node:assert/strict";
import { Registry } from "prom-client";
import { WorkerMetrics, stepLabel } from "../src/metrics.js";

test("worker metrics count handler runs by outcome, without fan-out indexes", async () => {
  const reg = new Registry();
  const m = new WorkerMetrics(reg);
  m.started("ocr", "docs[0]/pages[1]/ocr", Date.now() - 50)("succeeded");
  m.started("ocr", "docs[2]/pages[0]/ocr", Date.now() - 10)("retryable");
  const running = m.started("ocr", "docs[3]/pages[0]/ocr", undefined);
  const json = await reg.getMetricsAsJSON();
  const metric = (name: string) => json.find((x) => x.name === name);
  const tasks = metric("stepwise_worker_tasks_total")!.values;
  assert.deepEqual(tasks.map((v) => [v.labels.step, v.labels.outcome, v.value]).sort(), [["docs/pages/ocr", "retryable", 1], ["docs/pages/ocr", "succeeded", 1]]);
  const inFlight = metric("stepwise_worker_tasks_in_flight")!.values;
  assert.equal(inFlight[0]?.value, 1);
  const waits = metric("stepwise_worker_queue_wait_seconds")!.values.find((v) => (v as { metricName?: string }).metricName === "stepwise_worker_queue_wait_seconds_count");
  assert.equal(waits!.value, 2, "a task without a timestamp has no queue wait");
  running("failed");
  const after = (await reg.getMetricsAsJSON()).find((x) => x.name === "stepwise_worker_tasks_in_flight")!.values;
  assert.equal(after[0]?.value, 0);
  assert.equal(stepLabel("a"), "a");
});
