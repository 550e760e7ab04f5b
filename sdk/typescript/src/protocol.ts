// Names and values of the Stepwise wire protocol (schemas/PROTOCOL.md,
// schemas/headers.schema.json). Every header value is a UTF-8 string.

/** Header names of task and result records. */
export const Header = {
  /** request id; tasks and results */
  Request: "stepwise-request",
  /** workflow name; tasks */
  Workflow: "stepwise-workflow",
  /** step path, e.g. "ocr" or "docs[1]/pages[7]/ocr"; tasks and results */
  Step: "stepwise-step",
  /** attempt number from 1, decimal; tasks and results */
  Attempt: "stepwise-attempt",
  /** graph instance id; tasks */
  Instance: "stepwise-instance",
  /** where the result goes; tasks */
  ReplyTopic: "stepwise-reply-topic",
  /** partition of the reply topic, decimal; tasks */
  ReplyPartition: "stepwise-reply-partition",
  /** optional RFC 3339 time after which the attempt counts as timed out; tasks */
  Deadline: "stepwise-deadline",
  /** optional on a task: send a heartbeat every this many milliseconds (decimal) while the handler runs */
  Heartbeat: "stepwise-heartbeat-interval",
  /** "ok", "error" or "heartbeat"; results */
  Status: "stepwise-status",
  /** optional id of the worker instance that answers, kept in the step's history; results */
  Worker: "stepwise-worker",
  /** on a task topic, marks a control message rather than a task: "cancel" stops the task of the same request, step and attempt */
  Control: "stepwise-control",
} as const;

/** Values of the stepwise-control header. */
export const Control = {
  /** the request was cancelled or failed: stop the task, send no result */
  Cancel: "cancel",
} as const;

/** Values of the stepwise-status header. */
export const Status = {
  /** the value is the step's output, a JSON object */
  OK: "ok",
  /** the value is {"message": ..., "retryable": ...} */
  Error: "error",
  /** not a result: the attempt is alive; the value is {} or {"details": {...}} */
  Heartbeat: "heartbeat",
} as const;

/** The topic prefix every Stepwise program uses unless told otherwise. */
export const DEFAULT_PREFIX = "stepwise.";

/** The topic a queue's tasks are written to: `<prefix>tasks.<queue>`. */
export function tasksTopic(prefix: string, queue: string): string {
  return `${prefix}tasks.${queue}`;
}

/**
 * The consumer group of a queue's workers: `<stem>.<queue>`, where the stem
 * defaults to `<prefix>workers` (the Go SDK's default too, so workers of one
 * queue written in different languages share the work).
 */
export function workerGroup(stem: string, queue: string): string {
  return `${stem}.${queue}`;
}

/** The default consumer group stem for a prefix: `<prefix>workers`. */
export function defaultGroupStem(prefix: string): string {
  return `${prefix}workers`;
}
