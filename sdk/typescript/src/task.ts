// Reading a task record: the correlation headers first (without them there
// is nobody to answer), then the rest, which is answered as a non-retryable
// failure when malformed. Pure: no I/O, no clock.

import { Header } from "./protocol.js";

/** A JSON object, as a step's input and output are. */
export type JsonObject = { [key: string]: unknown };

/** One attempt of one step, as a handler receives it. Do not modify it. */
export interface Task {
  /** request id */
  readonly request: string;
  /** workflow name */
  readonly workflow: string;
  /** step path: "ocr", or "docs[1]/pages[7]/ocr" inside fan-outs */
  readonly step: string;
  /** attempt number, from 1 */
  readonly attempt: number;
  /** graph instance: the request id, or the fan-out child's id */
  readonly instance: string;
  /** when the processor counts the attempt as timed out; absent without a step timeout */
  readonly deadline?: Date;
  /** the step's input: the merge of the outputs of the steps it depends on */
  readonly input: JsonObject;
  /**
   * The input exactly as received, for handlers that need what JSON.parse
   * loses (integers beyond 2^53, for instance).
   */
  readonly rawInput: string;
  /** every header of the task record, the protocol's and any other (tracing); a repeated header keeps its last value */
  readonly headers: Readonly<Record<string, string>>;
  /** the queue the task was consumed from */
  readonly queue: string;
  /**
   * Aborted at the task's deadline and when the worker's drain timeout runs
   * out; a long handler should watch it and give up.
   */
  readonly signal: AbortSignal;
  /** milliseconds between heartbeats the task asks for; 0 unless its step has a heartbeat timeout */
  readonly heartbeatInterval: number;
  /**
   * Sends a heartbeat now, with details (a JSON object, kept up to 4 KiB in
   * the request's state and repeated by the automatic heartbeats after it).
   * The worker also sends one every heartbeatInterval while the handler
   * runs. Does nothing for a task whose step has no heartbeat timeout.
   */
  heartbeat(details?: JsonObject): void;
  /** where the task was read from, for logs */
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
}

/** A task record as the transport hands it over: headers already decoded as UTF-8. */
export interface TaskRecord {
  topic: string;
  partition: number;
  /** the record's offset, in decimal (Kafka offsets exceed 2^53) */
  offset: string;
  key: string | null;
  headers: Record<string, string>;
  value: Uint8Array | null;
  /** the record's timestamp (its dispatch), epoch milliseconds */
  timestamp?: number;
}

/** Where and under which correlation the result of a task goes. */
export interface Reply {
  topic: string;
  partition: number;
  request: string;
  step: string;
  /** copied verbatim, even when it is not a number */
  attempt: string;
  /** the answering worker's id, sent as stepwise-worker */
  worker?: string;
}

/** The fields of a task, read but not yet bound to a signal. */
export type ParsedTask = Omit<Task, "signal" | "heartbeat">;

/** parseTask's answer. */
export type Parsed =
  | { kind: "unanswerable"; reason: string }
  | { kind: "malformed"; reply: Reply; reason: string }
  | { kind: "task"; reply: Reply; task: ParsedTask };

const decimal = /^[+-]?[0-9]+$/;

/**
 * Reads a task record. It checks, in this order: the reply topic, the
 * reply partition (a decimal number from 0 that fits 32 bits), the
 * request, step and attempt headers being present (else: unanswerable);
 * then the attempt (a number from 1), the deadline (RFC 3339) and the
 * value (a JSON object) (else: malformed, answered as a non-retryable
 * failure).
 */
export function parseTask(rec: TaskRecord, queue: string): Parsed {
  const h = rec.headers;
  const replyTopic = h[Header.ReplyTopic] ?? "";
  const rawPartition = h[Header.ReplyPartition] ?? "";
  const request = h[Header.Request] ?? "";
  const step = h[Header.Step] ?? "";
  const attempt = h[Header.Attempt] ?? "";
  const partition = decimal.test(rawPartition) ? Number(rawPartition) : NaN;
  if (replyTopic === "") {
    return { kind: "unanswerable", reason: `stepwise: task has no usable reply headers: missing ${Header.ReplyTopic}` };
  }
  if (!Number.isInteger(partition) || partition < 0 || partition > 2 ** 31 - 1) {
    return {
      kind: "unanswerable",
      reason: `stepwise: task has no usable reply headers: ${Header.ReplyPartition} ${JSON.stringify(rawPartition)} is not a partition number`,
    };
  }
  if (request === "" || step === "" || attempt === "") {
    return {
      kind: "unanswerable",
      reason: `stepwise: task has no usable reply headers: missing one of ${Header.Request}, ${Header.Step}, ${Header.Attempt}`,
    };
  }
  const reply: Reply = { topic: replyTopic, partition, request, step, attempt };
  const malformed = (why: string): Parsed => ({ kind: "malformed", reply, reason: `stepwise: malformed task: ${why}` });

  const n = decimal.test(attempt) ? Number(attempt) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    return malformed(`${Header.Attempt} ${JSON.stringify(attempt)} is not an attempt number`);
  }
  let deadline: Date | undefined;
  const rawDeadline = h[Header.Deadline];
  if (rawDeadline !== undefined) {
    deadline = parseRFC3339(rawDeadline);
    if (deadline === undefined) {
      return malformed(`${Header.Deadline} ${JSON.stringify(rawDeadline)} is not an RFC 3339 time`);
    }
  }
  const text = rec.value === null ? "" : Buffer.from(rec.value.buffer, rec.value.byteOffset, rec.value.byteLength).toString("utf8");
  const input = parseObject(text);
  if (typeof input === "string") {
    return malformed(`the value is not a JSON object (${input})`);
  }
  return {
    kind: "task",
    reply,
    task: {
      request,
      workflow: h[Header.Workflow] ?? "",
      step,
      attempt: n,
      instance: h[Header.Instance] ?? "",
      ...(deadline !== undefined ? { deadline } : {}),
      input,
      rawInput: text,
      headers: { ...h },
      heartbeatInterval: decimal.test(h[Header.Heartbeat] ?? "") && Number(h[Header.Heartbeat]) > 0 ? Number(h[Header.Heartbeat]) : 0,
      queue,
      topic: rec.topic,
      partition: rec.partition,
      offset: rec.offset,
    },
  };
}

/** Parses a JSON object, or says what the text is instead. */
function parseObject(text: string): JsonObject | string {
  if (text.trim() === "") return "empty";
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return "not JSON";
  }
  return isJsonObject(v) ? v : describeValue(v);
}

/** Reports whether v is a plain JSON object (not an array, not null). */
export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Names what a decoded JSON value is, for error messages. */
export function describeValue(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  switch (typeof v) {
    case "string":
      return "a string";
    case "number":
      return "a number";
    case "boolean":
      return "a boolean";
    case "object":
      return "an object";
    default:
      return typeof v;
  }
}

const rfc3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/**
 * Parses an RFC 3339 time (as Go's time.RFC3339Nano layout reads it), or
 * returns undefined. Fractions below a millisecond are dropped; date and
 * time fields out of range are refused, not rolled over.
 */
export function parseRFC3339(s: string): Date | undefined {
  const m = rfc3339.exec(s);
  if (m === null) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const frac = m[7] ?? "";
  if (month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59) return undefined;
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (day < 1 || day > daysInMonth) return undefined;
  let offsetMin = 0;
  if (m[8] === undefined) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return undefined;
    offsetMin = (oh * 60 + om) * (m[9] === "-" ? -1 : 1);
  }
  const ms = frac === "" ? 0 : Math.floor(Number(frac.padEnd(9, "0")) / 1e6);
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(hour, minute, second, ms);
  return new Date(d.getTime() - offsetMin * 60_000);
}
