// The pure core of a worker: a task record in, the result record out. It
// parses the task, runs the handler, and encodes what the handler returned
// or threw. It touches no broker, so the conformance vectors run against it
// directly; the Kafka transport (worker.ts) only moves records.

import { CancelledError, errorMessage, isNonRetryable, StepwiseError } from "./errors.js";
import { Control, Header, Status } from "./protocol.js";
import { describeValue, isJsonObject, parseTask, type JsonObject, type Reply, type Task, type TaskRecord } from "./task.js";

/**
 * Runs one task and returns the step's output: a JSON object, or nothing
 * (undefined or null), which is the empty output {}. Anything else (an
 * array, a string, a number) is answered as a retryable error. A thrown
 * error is retryable unless it is (or is caused by) a NonRetryableError.
 */
export type Handler = (task: Task) => unknown;

/** A result record to produce: exactly this topic and partition, never a partitioner's choice. */
export interface ResultRecord {
  topic: string;
  partition: number;
  key: string;
  headers: Record<string, string>;
  /** the JSON value */
  value: string;
}

/** What became of a task. */
export type Outcome =
  /** Produce result, then the task may be committed. */
  | {
      kind: "reply";
      result: ResultRecord;
      handlerCalled: boolean;
      /** for an error result: its message and whether it may be retried */
      failure?: { message: string; retryable: boolean; thrown?: unknown };
    }
  /** The task names nowhere to reply: log reason and commit it. */
  | { kind: "drop"; reason: string }
  /** The worker's drain timeout cut the handler short: no result, no commit; the task runs again elsewhere. */
  | { kind: "abandoned"; reply: Reply }
  /** A cancel control message stopped the task (RunOptions.cancel): no result; commit it. */
  | { kind: "cancelled"; reply: Reply };

/** Options of runTask. */
export interface RunOptions {
  /** the queue the task came from */
  queue: string;
  /** the clock, in ms since the epoch (default Date.now) */
  now?: () => number;
  /** the largest output produced; a larger one becomes a non-retryable error (default 1 MiB) */
  maxResultBytes?: number;
  /** aborted when the worker stops waiting for handlers; the outcome is then "abandoned" */
  hardStop?: AbortSignal;
  /** aborted when a cancel control message for this task arrives: the handler's signal aborts with a CancelledError and the outcome is "cancelled" */
  cancel?: AbortSignal;
  /** sent on the result as stepwise-worker (default: none) */
  workerId?: string;
  /** sends a heartbeat record of a task that asks for heartbeats, while its handler runs (the worker's producer) */
  beat?: (r: ResultRecord) => void;
}

/** The key of one attempt of one step of one request. */
export function taskKey(request: string, step: string, attempt: string): string {
  return `${request}\u0000${step}\u0000${attempt}`;
}

/** The task key a cancel control message is about, or undefined when rec is a task. */
export function controlKey(rec: TaskRecord): string | undefined {
  if (rec.headers[Header.Control] !== Control.Cancel) return undefined;
  return recordTaskKey(rec);
}

/** The task key of a task record. */
export function recordTaskKey(rec: TaskRecord): string {
  return taskKey(rec.headers[Header.Request] ?? "", rec.headers[Header.Step] ?? "", rec.headers[Header.Attempt] ?? "");
}

/** Kafka's default max.message.bytes. */
export const DEFAULT_MAX_RESULT_BYTES = 1 << 20;

/** setTimeout's largest delay; a later deadline needs no timer yet. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Reads a task record, runs handler on it, and builds the result record. */
export async function runTask(rec: TaskRecord, handler: Handler, opts: RunOptions): Promise<Outcome> {
  const now = opts.now ?? Date.now;
  const parsed = parseTask(rec, opts.queue);
  if (parsed.kind === "unanswerable") {
    return { kind: "drop", reason: parsed.reason };
  }
  const reply: Reply = opts.workerId ? { ...parsed.reply, worker: opts.workerId } : parsed.reply;
  if (parsed.kind === "malformed") {
    return failure(reply, parsed.reason, false, false);
  }
  const { task } = parsed;
  if (task.deadline !== undefined && now() >= task.deadline.getTime()) {
    return failure(reply, `stepwise: deadline ${task.deadline.toISOString()} passed before the task started`, true, false);
  }

  // The handler's signal: aborted at the deadline or at the hard stop.
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  if (task.deadline !== undefined) {
    const delay = task.deadline.getTime() - now();
    if (delay <= MAX_TIMER_MS) {
      timer = setTimeout(() => ac.abort(new Error(`stepwise: deadline ${task.deadline?.toISOString()} passed`)), delay);
    }
  }
  const onHardStop = () => ac.abort(new Error("stepwise: worker stopped waiting for the handler"));
  if (opts.hardStop?.aborted) onHardStop();
  opts.hardStop?.addEventListener("abort", onHardStop, { once: true });
  const onCancel = () => ac.abort(new CancelledError());
  if (opts.cancel?.aborted) return { kind: "cancelled", reply };
  opts.cancel?.addEventListener("abort", onCancel, { once: true });

  // Heartbeats: every interval while the handler runs, and when it calls
  // task.heartbeat; later automatic ones repeat the last details.
  let details: JsonObject | undefined;
  let running = true;
  const beat = (): void => {
    if (running && opts.beat !== undefined) opts.beat(record(reply, Status.Heartbeat, details === undefined ? "{}" : JSON.stringify({ details })));
  };
  const beats = task.heartbeatInterval > 0 && opts.beat !== undefined ? setInterval(beat, task.heartbeatInterval) : undefined;
  const heartbeat = (d?: JsonObject): void => {
    if (beats === undefined) return;
    if (d !== undefined && !isJsonObject(d)) throw new StepwiseError("heartbeat details must be a JSON object");
    details = d;
    beat();
  };

  let out: unknown;
  let thrown: { err: unknown } | undefined;
  try {
    out = await handler({ ...task, signal: ac.signal, heartbeat });
  } catch (err) {
    thrown = { err };
  } finally {
    running = false;
    if (beats !== undefined) clearInterval(beats);
    if (timer !== undefined) clearTimeout(timer);
    opts.hardStop?.removeEventListener("abort", onHardStop);
    opts.cancel?.removeEventListener("abort", onCancel);
  }
  if (opts.hardStop?.aborted) {
    return { kind: "abandoned", reply };
  }
  if (opts.cancel?.aborted) {
    return { kind: "cancelled", reply };
  }
  if (thrown !== undefined) {
    return failure(reply, errorMessage(thrown.err), !isNonRetryable(thrown.err), true, thrown.err);
  }
  return answer(reply, out, opts.maxResultBytes ?? DEFAULT_MAX_RESULT_BYTES);
}

/** Encodes a handler's return value as the step's output, or as the error it amounts to. */
function answer(reply: Reply, out: unknown, maxBytes: number): Outcome {
  if (out === undefined || out === null) {
    return ok(reply, "{}");
  }
  let encoded: string | undefined;
  try {
    encoded = JSON.stringify(out);
  } catch (err) {
    return failure(reply, `stepwise: encode output: ${errorMessage(err)}`, true, true);
  }
  if (encoded === undefined) {
    return failure(reply, `stepwise: handler returned ${typeof out === "function" ? "a function" : typeof out}, not a JSON object`, true, true);
  }
  if (!encoded.startsWith("{")) {
    // toJSON may turn an object into something else (a Date into a string).
    return failure(reply, `stepwise: handler returned ${describeValue(JSON.parse(encoded))}, not a JSON object`, true, true);
  }
  const size = Buffer.byteLength(encoded, "utf8");
  if (size > maxBytes) {
    return failure(reply, `stepwise: output of ${size} bytes exceeds the limit of ${maxBytes} bytes`, false, true);
  }
  return ok(reply, encoded);
}

function ok(reply: Reply, value: string): Outcome {
  return { kind: "reply", result: record(reply, Status.OK, value), handlerCalled: true };
}

function failure(reply: Reply, message: string, retryable: boolean, handlerCalled: boolean, thrown?: unknown): Outcome {
  return {
    kind: "reply",
    result: record(reply, Status.Error, JSON.stringify({ message, retryable })),
    handlerCalled,
    failure: { message, retryable, ...(thrown !== undefined ? { thrown } : {}) },
  };
}

/** The result record: the task's correlation headers copied verbatim, plus the status and the worker's id. */
function record(reply: Reply, status: string, value: string): ResultRecord {
  const headers: Record<string, string> = {
    [Header.Request]: reply.request,
    [Header.Step]: reply.step,
    [Header.Attempt]: reply.attempt,
    [Header.Status]: status,
  };
  if (reply.worker) headers[Header.Worker] = reply.worker;
  return { topic: reply.topic, partition: reply.partition, key: reply.request, headers, value };
}
