// @stepwise/worker: the TypeScript SDK for Stepwise workers.
//
// Processors write one task record per step attempt to tasks.<queue>; a
// Worker consumes it, runs the handler registered for the queue, and
// produces the outcome to the results topic on the partition the task
// names. The protocol is schemas/PROTOCOL.md of the Stepwise repository.
//
//   processors ──► tasks.<queue> ──► Worker (handler) ──► results[reply partition] ──► processors
//
// runTask (core.ts) is the whole protocol without a broker; Worker
// (worker.ts) moves records between it and Kafka.

export { Worker, DEFAULT_CONCURRENCY, DEFAULT_DRAIN_TIMEOUT_MS, DEFAULT_SESSION_TIMEOUT_MS, taskRecord } from "./worker.js";
export type { WorkerOptions, HandleOptions } from "./worker.js";
export { runTask, DEFAULT_MAX_RESULT_BYTES, controlKey, recordTaskKey, taskKey } from "./core.js";
export type { Handler, Outcome, ResultRecord, RunOptions } from "./core.js";
export { parseTask, parseRFC3339, isJsonObject } from "./task.js";
export type { Task, TaskRecord, JsonObject, Reply, Parsed, ParsedTask } from "./task.js";
export { NonRetryableError, isNonRetryable, StepwiseError, ProduceError, CancelledError } from "./errors.js";
export { jsonLogger, discardLogger, withFields, LogKey } from "./logger.js";
export type { Logger, LogFields, LogLevel, JsonLoggerOptions } from "./logger.js";
export { Header, Status, Control, DEFAULT_PREFIX, tasksTopic, workerGroup, defaultGroupStem } from "./protocol.js";
export { OffsetTracker } from "./tracker.js";
export { Semaphore } from "./semaphore.js";
export { WorkerMetrics, stepLabel, type TaskOutcome } from "./metrics.js";
export { WorkerTracing, TraceKey, parseTraceparent, formatTraceparent } from "./tracing.js";
