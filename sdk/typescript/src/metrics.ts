// Prometheus metrics of a worker (prom-client), under the names the Go SDK
// uses (docs/metrics.md). Off unless WorkerOptions.metrics is a registry.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** Buckets of the duration histograms, seconds, as the Go SDK's. */
export const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** A step path without fan-out indexes: "docs[3]/pages[0]/ocr" is "docs/pages/ocr". */
export function stepLabel(path: string): string {
  return path.replace(/\[[^\]]*\]/g, "");
}

/** The outcome of a handler run, as the label says it. */
export type TaskOutcome = "succeeded" | "retryable" | "failed" | "abandoned" | "cancelled";

/** The worker's metrics on one registry. */
export class WorkerMetrics {
  readonly #tasks: Counter<"queue" | "step" | "outcome">;
  readonly #duration: Histogram<"queue" | "step">;
  readonly #wait: Histogram<"queue">;
  readonly #inFlight: Gauge<"queue">;

  constructor(registry: Registry) {
    const registers = [registry];
    this.#tasks = new Counter({ name: "stepwise_worker_tasks_total", help: "Tasks handled, by outcome (succeeded, failed, retryable).", labelNames: ["queue", "step", "outcome"], registers });
    this.#duration = new Histogram({ name: "stepwise_worker_task_duration_seconds", help: "Time the handler ran.", labelNames: ["queue", "step"], buckets: BUCKETS, registers });
    this.#wait = new Histogram({ name: "stepwise_worker_queue_wait_seconds", help: "Time from a task's dispatch (its record's timestamp) to its handler's start.", labelNames: ["queue"], buckets: BUCKETS, registers });
    this.#inFlight = new Gauge({ name: "stepwise_worker_tasks_in_flight", help: "Tasks whose handler is running.", labelNames: ["queue"], registers });
  }

  /**
   * Records a handler starting on a task dispatched at dispatchedMs (epoch
   * milliseconds) and returns the function to call with its outcome.
   */
  started(queue: string, step: string, dispatchedMs: number | undefined): (outcome: TaskOutcome) => void {
    const start = Date.now();
    if (dispatchedMs !== undefined && dispatchedMs > 0) this.#wait.observe({ queue }, Math.max(start - dispatchedMs, 0) / 1000);
    this.#inFlight.inc({ queue });
    const label = stepLabel(step);
    return (outcome) => {
      this.#inFlight.dec({ queue });
      this.#duration.observe({ queue, step: label }, (Date.now() - start) / 1000);
      this.#tasks.inc({ queue, step: label, outcome });
    };
  }
}
