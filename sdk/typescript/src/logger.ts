// Structured logging: one JSON object per line, or any object with the four
// level methods (pino, winston and console fit).

/** Fields attached to a log line. Keys are the constants in LogKey. */
export type LogFields = Record<string, unknown>;

/** What the worker logs through. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

/** Log field names, constant so log queries can rely on them. */
export const LogKey = {
  Queue: "queue",
  Request: "request",
  Step: "step",
  Attempt: "attempt",
  DurationMs: "duration_ms",
  Error: "error",
  NonRetryable: "non_retryable",
  Topic: "topic",
  Partition: "partition",
  Offset: "offset",
} as const;

export type LogLevel = "debug" | "info" | "warn" | "error";

const rank: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Options of jsonLogger. */
export interface JsonLoggerOptions {
  /** The lowest level written (default "info"). */
  level?: LogLevel;
  /** Where lines go (default process.stderr). */
  write?: (line: string) => void;
  /** Fields added to every line. */
  fields?: LogFields;
}

/**
 * A logger writing JSON lines: {"time", "level", "msg", ...fields}. Errors
 * in fields are written as their message.
 */
export function jsonLogger(opts: JsonLoggerOptions = {}): Logger {
  const min = rank[opts.level ?? "info"];
  const write = opts.write ?? ((line: string) => process.stderr.write(line));
  const base = opts.fields ?? {};
  const emit = (level: LogLevel) => (msg: string, fields?: LogFields) => {
    if (rank[level] < min) return;
    const rec: LogFields = { time: new Date().toISOString(), level, msg, ...base };
    for (const [k, v] of Object.entries(fields ?? {})) {
      rec[k] = v instanceof Error ? v.message : typeof v === "bigint" ? v.toString() : v;
    }
    let line: string;
    try {
      line = JSON.stringify(rec);
    } catch {
      line = JSON.stringify({ time: rec.time, level, msg, [LogKey.Error]: "log fields not serialisable" });
    }
    write(line + "\n");
  };
  return { debug: emit("debug"), info: emit("info"), warn: emit("warn"), error: emit("error") };
}

/** A logger that drops everything. */
export const discardLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/** Adds fields to every line of a logger. */
export function withFields(logger: Logger, fields: LogFields): Logger {
  return {
    debug: (m, f) => logger.debug(m, { ...fields, ...f }),
    info: (m, f) => logger.info(m, { ...fields, ...f }),
    warn: (m, f) => logger.warn(m, { ...fields, ...f }),
    error: (m, f) => logger.error(m, { ...fields, ...f }),
  };
}
