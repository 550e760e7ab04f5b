// The Kafka transport around the pure core: one kafkajs consumer (and
// consumer group) per queue, one producer for every result, offsets
// committed by hand once results are acknowledged.

import { hostname } from "node:os";
import kafkajs from "kafkajs";
import type { Consumer, EachBatchPayload, IHeaders, KafkaConfig, KafkaMessage, LogEntry, SASLOptions } from "kafkajs";

import { controlKey, recordTaskKey, runTask, DEFAULT_MAX_RESULT_BYTES, type Handler, type Outcome, type ResultRecord } from "./core.js";
import { errorMessage, ProduceError, StepwiseError } from "./errors.js";
import { jsonLogger, LogKey, withFields, type Logger } from "./logger.js";
import { DEFAULT_PREFIX, defaultGroupStem, tasksTopic, workerGroup } from "./protocol.js";
import { RangeAssigner } from "./rangeAssigner.js";
import { deliver, resultPartitioner, ResultSender } from "./results.js";
import { Semaphore } from "./semaphore.js";
import type { Registry } from "prom-client";
import { WorkerMetrics, type TaskOutcome } from "./metrics.js";
import type { TracerProvider } from "@opentelemetry/api";
import { WorkerTracing } from "./tracing.js";
import type { TaskRecord } from "./task.js";
import { OffsetTracker, type Entry } from "./tracker.js";

const { Kafka, logLevel, PartitionAssigners } = kafkajs;

/** Defaults of the options. */
export const DEFAULT_CONCURRENCY = 8;
export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;
export const DEFAULT_SESSION_TIMEOUT_MS = 10_000;

/** How long stop waits for handlers after aborting their signals at the drain timeout. */
const ABANDON_GRACE_MS = 5_000;

/** How long stop waits for the clients to leave their groups and close. */
const DISCONNECT_TIMEOUT_MS = 10_000;

/** Options of a Worker. */
export interface WorkerOptions {
  /** seed brokers, host:port */
  brokers: string[];
  /** topic prefix (default "stepwise.") */
  prefix?: string;
  /**
   * Stem of the consumer group names: the workers of queue q join group
   * "<groupId>.<q>" (default "<prefix>workers", as the Go SDK). Every
   * worker of one queue must use the same stem.
   */
  groupId?: string;
  /** Kafka client id (default "stepwise-worker") */
  clientId?: string;
  /** TLS: true, or node tls.connect options */
  ssl?: KafkaConfig["ssl"];
  /** SASL: { mechanism: "plain" | "scram-sha-256" | "scram-sha-512", username, password } */
  sasl?: SASLOptions;
  /** where logs go (default: JSON lines on stderr, level info) */
  logger?: Logger;
  /**
   * How long stop waits for running handlers before aborting their signals
   * (default 30 s). Their tasks are then not committed and run again on
   * another worker.
   */
  drainTimeoutMs?: number;
  /** the largest result value produced (default 1 MiB, Kafka's default max.message.bytes) */
  maxResultBytes?: number;
  /** stop on SIGTERM and SIGINT while running (default true) */
  handleSignals?: boolean;
  /** the id sent on every result (stepwise-worker) and shown in each attempt's history (default "<host>/<pid>") */
  workerId?: string;
  /** consumer session timeout (default 10 s): how soon a dead worker's partitions move */
  sessionTimeoutMs?: number;
  /** further kafkajs client settings (connectionTimeout, retry...); brokers, ssl and sasl above win */
  kafka?: Partial<KafkaConfig>;
  /**
   * A prom-client Registry to record the worker's metrics on (tasks by
   * outcome, handler duration, queue wait, tasks in flight; names as the Go
   * SDK's). Serving it is the program's part. Default: no metrics.
   */
  metrics?: Registry;
  /**
   * Trace every handler call with OpenTelemetry (@opentelemetry/api, an
   * optional peer dependency): true uses the global tracer provider, or pass
   * one. A consumer span per task, child of its traceparent, active in the
   * handler; the result carries its traceparent. Default: no spans, and the
   * API is not loaded.
   */
  tracing?: boolean | TracerProvider;
}

/** Options of one queue. */
export interface HandleOptions {
  /** handlers of this queue running at once in this worker (default 8); tasks beyond wait in Kafka */
  concurrency?: number;
}

interface Queue {
  name: string;
  topic: string;
  group: string;
  handler: Handler;
  sem: Semaphore;
  tracker: OffsetTracker;
  log: Logger;
  consumer?: Consumer;
  /** tasks started and not yet ended */
  inflight: Set<Promise<void>>;
  /** marks waiting to be committed, by partition */
  marks: Map<number, string>;
  committing?: Promise<void>;
  /** cancel controllers of the running tasks, by task key */
  running: Map<string, AbortController>;
  /** cancels that arrived before their task started (bounded, oldest first) */
  early: Set<string>;
}

/** Cancels remembered for tasks not started yet, per queue. */
const MAX_EARLY_CANCELS = 10000;

/**
 * Worker consumes the tasks of the queues it has handlers for and produces
 * their results to the partition each task names.
 *
 *     const w = new Worker({ brokers: ["localhost:9092"] });
 *     w.handle("ocr", async (t) => ({ text: await ocr(t.input.page) }), { concurrency: 4 });
 *     await w.run(); // until SIGTERM/SIGINT or w.stop()
 *
 * Delivery is at-least-once: a task's offset is committed only after its
 * result is acknowledged by the broker (all in-sync replicas), and never
 * past a task of the same partition still running. Tasks are read
 * committed-only, so tasks of an aborted processor transaction never run.
 */
export class Worker {
  readonly #opts: Required<Pick<WorkerOptions, "prefix" | "groupId" | "clientId" | "drainTimeoutMs" | "maxResultBytes" | "handleSignals" | "sessionTimeoutMs" | "workerId">>;
  readonly #kafkaConfig: KafkaConfig;
  readonly #log: Logger;
  readonly #queues = new Map<string, Queue>();

  #running = false;
  #stopCtl = new AbortController(); // no new task starts once aborted
  #hardCtl = new AbortController(); // handlers are told to give up once aborted
  readonly #metrics: WorkerMetrics | undefined; // undefined: metrics off
  readonly #tracingOpt: boolean | TracerProvider | undefined;
  #tracing: WorkerTracing | undefined; // undefined: tracing off; loaded by run
  #fatal: unknown;
  #done?: Promise<void>;

  constructor(opts: WorkerOptions) {
    if (!Array.isArray(opts.brokers) || opts.brokers.length === 0 || opts.brokers.some((b) => typeof b !== "string" || b === "")) {
      throw new StepwiseError("no brokers; pass brokers: [\"host:port\", ...]");
    }
    const prefix = opts.prefix ?? DEFAULT_PREFIX;
    this.#opts = {
      prefix,
      groupId: opts.groupId ?? defaultGroupStem(prefix),
      clientId: opts.clientId ?? "stepwise-worker",
      drainTimeoutMs: positive("drainTimeoutMs", opts.drainTimeoutMs, DEFAULT_DRAIN_TIMEOUT_MS),
      maxResultBytes: positive("maxResultBytes", opts.maxResultBytes, DEFAULT_MAX_RESULT_BYTES),
      handleSignals: opts.handleSignals ?? true,
      sessionTimeoutMs: positive("sessionTimeoutMs", opts.sessionTimeoutMs, DEFAULT_SESSION_TIMEOUT_MS),
      workerId: opts.workerId ?? `${hostname() || "unknown-host"}/${process.pid}`,
    };
    if (this.#opts.workerId === "") throw new StepwiseError("empty workerId");
    if (this.#opts.groupId === "") throw new StepwiseError("empty groupId");
    this.#metrics = opts.metrics === undefined ? undefined : new WorkerMetrics(opts.metrics);
    this.#tracingOpt = opts.tracing;
    if (this.#opts.maxResultBytes < 256) throw new StepwiseError(`maxResultBytes must be at least 256, got ${this.#opts.maxResultBytes}`);
    this.#log = opts.logger ?? jsonLogger();
    this.#kafkaConfig = {
      ...opts.kafka,
      clientId: this.#opts.clientId,
      brokers: opts.brokers,
      ...(opts.ssl !== undefined ? { ssl: opts.ssl } : {}),
      ...(opts.sasl !== undefined ? { sasl: opts.sasl } : {}),
      logLevel: opts.kafka?.logLevel ?? logLevel.WARN,
      logCreator: opts.kafka?.logCreator ?? kafkaLogs(this.#log),
    };
  }

  /**
   * Registers handler for the tasks of queue, consumed from the topic
   * <prefix>tasks.<queue> by the group <groupId>.<queue>. Call it before
   * run. It throws on an empty queue name, a queue registered twice, a
   * concurrency below 1, or a call after run started.
   */
  handle(queue: string, handler: Handler, opts: HandleOptions = {}): this {
    const concurrency = opts.concurrency ?? DEFAULT_CONCURRENCY;
    if (this.#running) throw new StepwiseError(`handle(${JSON.stringify(queue)}) after run started`);
    if (typeof queue !== "string" || queue === "") throw new StepwiseError("empty queue name");
    if (typeof handler !== "function") throw new StepwiseError(`handler for queue ${JSON.stringify(queue)} is not a function`);
    if (this.#queues.has(queue)) throw new StepwiseError(`queue ${JSON.stringify(queue)} registered twice`);
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new StepwiseError(`concurrency ${concurrency} for queue ${JSON.stringify(queue)}; must be an integer of at least 1`);
    }
    this.#queues.set(queue, {
      name: queue,
      topic: tasksTopic(this.#opts.prefix, queue),
      group: workerGroup(this.#opts.groupId, queue),
      handler,
      sem: new Semaphore(concurrency),
      tracker: new OffsetTracker(),
      log: withFields(this.#log, { [LogKey.Queue]: queue }),
      inflight: new Set(),
      marks: new Map(),
      running: new Map(),
      early: new Set(),
    });
    return this;
  }

  /**
   * Consumes until stop is called (or SIGTERM/SIGINT arrives), then drains:
   * no new task starts, running handlers get up to the drain timeout to
   * finish, their results are produced and committed, and the worker
   * leaves its groups so the partitions move to the remaining workers at
   * once. It rejects when a client cannot start or a result cannot be
   * produced (after draining the rest); tasks not committed then run again.
   */
  run(): Promise<void> {
    if (this.#running) return Promise.reject(new StepwiseError("worker is already running"));
    if (this.#queues.size === 0) return Promise.reject(new StepwiseError("worker has no handlers; call handle before run"));
    this.#running = true;
    this.#done = this.#run();
    return this.#done;
  }

  /** Starts the drain and resolves when run has finished. */
  async stop(): Promise<void> {
    this.#stopCtl.abort();
    await this.#done?.catch(() => undefined);
  }

  async #run(): Promise<void> {
    if (this.#tracingOpt !== undefined && this.#tracingOpt !== false) {
      this.#tracing = await WorkerTracing.load(this.#tracingOpt === true ? undefined : this.#tracingOpt, this.#opts.workerId);
    }
    const onSignal = (sig: NodeJS.Signals) => {
      this.#log.info("signal received; stopping", { signal: sig });
      this.#stopCtl.abort();
    };
    if (this.#opts.handleSignals) {
      process.on("SIGTERM", onSignal);
      process.on("SIGINT", onSignal);
    }
    const kafka = new Kafka(this.#kafkaConfig);
    const producer = kafka.producer({
      allowAutoTopicCreation: false,
      createPartitioner: resultPartitioner,
    });
    try {
      await producer.connect();
      const sender = new ResultSender(producer);
      for (const q of this.#queues.values()) {
        await this.#startConsumer(kafka, q, sender);
      }
      this.#log.info("worker running", { queues: [...this.#queues.keys()] });
    } catch (err) {
      this.#fail(new StepwiseError(`worker could not start: ${errorMessage(err)}`, { cause: err }));
    }

    if (!this.#stopCtl.signal.aborted) {
      await new Promise<void>((resolve) => this.#stopCtl.signal.addEventListener("abort", () => resolve(), { once: true }));
    }
    await this.#drain();
    // Leave the groups so the partitions move at once; a broker that does
    // not answer must not hold the process.
    const left = Promise.allSettled([...[...this.#queues.values()].map((q) => q.consumer?.disconnect()), producer.disconnect()]);
    if (!(await within(left, DISCONNECT_TIMEOUT_MS))) {
      this.#log.warn("leaving the consumer groups timed out; the partitions move after the session timeout");
    }
    if (this.#opts.handleSignals) {
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
    }
    this.#log.info("worker stopped");
    if (this.#fatal !== undefined) throw this.#fatal;
  }

  /** Stops the worker with err as run's outcome; the first error wins. */
  #fail(err: unknown): void {
    if (this.#fatal === undefined) this.#fatal = err;
    this.#log.error("worker failing", { [LogKey.Error]: errorMessage(err) });
    this.#stopCtl.abort();
  }

  async #drain(): Promise<void> {
    const queues = [...this.#queues.values()];
    this.#log.info("worker draining", { timeout_ms: this.#opts.drainTimeoutMs });
    for (const q of queues) {
      try {
        q.consumer?.pause([{ topic: q.topic }]);
      } catch {
        // not running yet: nothing to pause
      }
    }
    const all = () => Promise.allSettled(queues.flatMap((q) => [...q.inflight]));
    if (!(await within(all(), this.#opts.drainTimeoutMs))) {
      this.#log.warn("drain timeout: aborting running handlers; their tasks will run again elsewhere");
      this.#hardCtl.abort();
      if (!(await within(all(), ABANDON_GRACE_MS))) {
        // A handler ignoring its signal must not hold the process: its task
        // is uncommitted and runs again elsewhere.
        this.#log.error("handlers still running after their signals were aborted; leaving them behind");
      }
    }
    await Promise.allSettled(queues.map((q) => q.committing));
  }

  async #startConsumer(kafka: InstanceType<typeof Kafka>, q: Queue, producer: ResultSender): Promise<void> {
    const consumer = kafka.consumer({
      groupId: q.group,
      // "range" first: the protocol Go and Python workers also offer, so
      // workers of every language can share a queue's group.
      partitionAssigners: [RangeAssigner, PartitionAssigners.roundRobin],
      // Tasks are written in processor transactions: an aborted one must
      // never run.
      readUncommitted: false,
      allowAutoTopicCreation: false,
      sessionTimeout: this.#opts.sessionTimeoutMs,
      heartbeatInterval: Math.max(500, Math.floor(this.#opts.sessionTimeoutMs / 10)),
      maxWaitTimeInMs: 500,
      // kafkajs restarts a crashed consumer (a broker restarting, say), but
      // not once the worker stops: a restart then would outlive run.
      retry: { ...this.#kafkaConfig.retry, restartOnFailure: async () => !this.#stopCtl.signal.aborted },
    });
    q.consumer = consumer;
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      const assigned = e.payload.memberAssignment[q.topic] ?? [];
      // kafkajs re-reads every assigned partition from its committed offset
      // after a rebalance, so tracking starts afresh for all of them.
      q.tracker.assign(assigned);
      for (const p of [...q.marks.keys()]) if (!assigned.includes(p)) q.marks.delete(p);
      q.log.info("partitions assigned", { partitions: assigned, group: q.group });
    });
    consumer.on(consumer.events.CRASH, (e) => {
      if (!e.payload.restart) this.#fail(new StepwiseError(`consumer of queue ${q.name} crashed: ${errorMessage(e.payload.error)}`, { cause: e.payload.error }));
    });
    await consumer.connect();
    // A new group starts with the oldest task: tasks dispatched before the
    // first worker of a queue started are waiting for it.
    await consumer.subscribe({ topic: q.topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: q.sem.size,
      eachBatch: (payload) => this.#eachBatch(q, producer, payload),
    });
  }

  /**
   * Starts the batch's tasks in order, each when a slot is free, without
   * waiting for them to end. Only started tasks are resolved: the rest is
   * fetched again.
   */
  async #eachBatch(q: Queue, producer: ResultSender, { batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const stop = this.#stopCtl.signal;
    const recs = batch.messages.map((m) => taskRecord(batch.topic, batch.partition, m));
    // Control messages first: a cancel polled with its task, or with a
    // task waiting for a slot, stops it before it starts.
    const control = recs.map((rec) => {
      const key = controlKey(rec);
      if (key === undefined) return false;
      const running = q.running.get(key);
      if (running !== undefined) {
        running.abort();
        q.log.info("task cancelled", { [LogKey.Request]: rec.key ?? "", [LogKey.Offset]: rec.offset });
      } else {
        q.early.add(key);
        for (const old of q.early) {
          if (q.early.size <= MAX_EARLY_CANCELS) break;
          q.early.delete(old);
        }
      }
      return true;
    });
    for (const [i, m] of batch.messages.entries()) {
      if (stop.aborted || !isRunning() || isStale()) return;
      const rec = recs[i]!;
      const key = recordTaskKey(rec);
      const skip = control[i] || q.early.has(key);
      if (!skip && !(await acquire(q.sem, stop, heartbeat))) return;
      const entry = q.tracker.start(batch.partition, m.offset);
      if (entry === undefined) {
        if (!skip) q.sem.release();
        return;
      }
      resolveOffset(m.offset);
      if (skip) {
        // A control message, or a task cancelled before it started:
        // nothing to run or answer.
        if (!control[i]) q.early.delete(key);
        this.#finish(q, entry);
        continue;
      }
      const cancel = new AbortController();
      q.running.set(key, cancel);
      const p: Promise<void> = this.#process(q, producer, rec, entry, cancel.signal).finally(() => {
        q.running.delete(key);
        q.sem.release();
        q.inflight.delete(p);
      });
      q.inflight.add(p);
    }
  }

  /** Runs one task, produces its result, and lets its offset be committed. */
  async #process(q: Queue, producer: ResultSender, rec: TaskRecord, entry: Entry, cancel: AbortSignal): Promise<void> {
    const started = Date.now();
    const done = this.#metrics?.started(q.name, rec.headers["stepwise-step"] ?? "", rec.timestamp);
    let outcome: Outcome;
    try {
      const beat = (r: ResultRecord): void => {
        producer.send(r).catch((err: unknown) => q.log.warn("heartbeat not sent", { [LogKey.Request]: r.key, [LogKey.Error]: errorMessage(err) }));
      };
      const run = () => runTask(rec, q.handler, { queue: q.name, maxResultBytes: this.#opts.maxResultBytes, hardStop: this.#hardCtl.signal, cancel, beat, workerId: this.#opts.workerId });
      if (this.#tracing === undefined) {
        outcome = await run();
      } else {
        const [span, out] = await this.#tracing.run(rec, q.name, run);
        outcome = out;
        this.#tracing.end(span, outcomeName(outcome), outcome.kind === "reply" ? outcome.result : undefined);
      }
    } catch (err) {
      // runTask catches the handler's errors; this is a bug, not a task failure.
      this.#fail(err);
      return;
    }
    const where = { [LogKey.Topic]: rec.topic, [LogKey.Partition]: rec.partition, [LogKey.Offset]: rec.offset };
    if (done !== undefined && outcome.kind !== "drop") {
      done(outcomeName(outcome) as TaskOutcome);
    }
    if (outcome.kind === "abandoned") {
      q.log.warn("handler cut short by the drain timeout; task left uncommitted", { [LogKey.Request]: outcome.reply.request, [LogKey.Step]: outcome.reply.step, ...where });
      return;
    }
    if (outcome.kind === "cancelled") {
      q.log.info("step cancelled", { [LogKey.Request]: outcome.reply.request, [LogKey.Step]: outcome.reply.step, ...where });
      this.#finish(q, entry);
      return;
    }
    if (outcome.kind === "drop") {
      q.log.error("task dropped", { [LogKey.Error]: outcome.reason, ...where });
      this.#finish(q, entry);
      return;
    }
    const { result, failure } = outcome;
    const fields = {
      [LogKey.Request]: result.key,
      [LogKey.Step]: result.headers["stepwise-step"],
      [LogKey.Attempt]: result.headers["stepwise-attempt"],
      [LogKey.DurationMs]: Date.now() - started,
    };
    if (failure === undefined) {
      q.log.info("step done", fields);
    } else if (!outcome.handlerCalled && !failure.retryable) {
      q.log.error("malformed task", { ...fields, ...where, [LogKey.Error]: failure.message });
    } else {
      // A retryable throw is often a bug (a TypeError, say): its stack helps.
      const stack = failure.retryable && failure.thrown instanceof Error ? failure.thrown.stack : undefined;
      q.log.warn("step failed", { ...fields, [LogKey.Error]: failure.message, [LogKey.NonRetryable]: !failure.retryable, ...(stack ? { stack } : {}) });
    }
    // Sent again after any error but the broker refusing the record itself
    // for good (results.ts): a dropped result strands its request.
    const d = await deliver(producer, result, { stop: this.#hardCtl.signal, log: q.log });
    if (d.kind === "refused") {
      // Retrying cannot help, and stopping would only make every restart
      // fail the same way.
      q.log.error("result refused by the broker; dropped", { ...fields, [LogKey.Topic]: result.topic, [LogKey.Partition]: result.partition, [LogKey.Error]: errorMessage(d.error) });
    } else if (d.kind === "stopped") {
      // Shutting down: leave the task uncommitted; it runs again after a
      // restart.
      this.#fail(new ProduceError(`producing a result failed for request ${result.key} step ${fields[LogKey.Step]}: ${errorMessage(d.error)}`, { cause: d.error }));
      return;
    }
    this.#finish(q, entry);
  }

  /** Marks a task finished and commits its partition's mark when it moved. */
  #finish(q: Queue, entry: Entry): void {
    const mark = q.tracker.finish(entry);
    if (mark === undefined) return;
    q.marks.set(entry.partition, mark);
    q.committing ??= this.#commit(q);
  }

  /** Commits marks until none is waiting; one commit at a time per queue. */
  async #commit(q: Queue): Promise<void> {
    try {
      while (q.marks.size > 0 && q.consumer !== undefined) {
        const offsets = [...q.marks].map(([partition, offset]) => ({ topic: q.topic, partition, offset }));
        q.marks.clear();
        try {
          await q.consumer.commitOffsets(offsets);
        } catch (err) {
          q.log.warn("commit failed; finished tasks may run again", { [LogKey.Error]: errorMessage(err) });
        }
      }
    } finally {
      q.committing = undefined;
    }
  }
}

/** Takes a slot of sem, heartbeating while it waits; false when stop aborts first. */
async function acquire(sem: Semaphore, stop: AbortSignal, heartbeat: () => Promise<void>): Promise<boolean> {
  for (;;) {
    if (await sem.acquire(AbortSignal.any([stop, AbortSignal.timeout(1_000)]))) return true;
    if (stop.aborted) return false;
    // A long wait for a slot must not cost the group membership.
    await heartbeat();
  }
}

/** Resolves true when p settles within ms, false otherwise. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Converts a kafkajs message to the core's record: headers decoded as UTF-8, the last of a repeated header winning. */
export function taskRecord(topic: string, partition: number, m: KafkaMessage): TaskRecord {
  return {
    topic,
    partition,
    offset: m.offset,
    key: m.key === null ? null : m.key.toString("utf8"),
    headers: decodeHeaders(m.headers),
    value: m.value,
    timestamp: Number(m.timestamp) || undefined,
  };
}

function decodeHeaders(h: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h ?? {})) {
    const last = Array.isArray(v) ? v[v.length - 1] : v;
    if (last === undefined) continue;
    out[k] = typeof last === "string" ? last : last.toString("utf8");
  }
  return out;
}

function positive(name: string, v: number | undefined, def: number): number {
  if (v === undefined) return def;
  if (!Number.isFinite(v) || v <= 0) throw new StepwiseError(`${name} must be positive, got ${v}`);
  return v;
}

/** Routes kafkajs's own logs to the worker's logger. */
function kafkaLogs(logger: Logger): KafkaConfig["logCreator"] {
  return () => ({ level, namespace, log }: LogEntry) => {
    const { message, timestamp: _t, logger: _l, ...rest } = log;
    const fields = { component: "kafkajs", namespace, ...rest };
    if (level <= logLevel.ERROR) logger.error(message, fields);
    else if (level === logLevel.WARN) logger.warn(message, fields);
    else if (level === logLevel.INFO) logger.info(message, fields);
    else logger.debug(message, fields);
  };
}

/** An outcome's name for metrics and spans. */
function outcomeName(o: Outcome): TaskOutcome | "dropped" {
  switch (o.kind) {
    case "abandoned":
    case "cancelled":
      return o.kind;
    case "drop":
      return "dropped";
    default:
      return o.failure === undefined ? "succeeded" : o.failure.retryable ? "retryable" : "failed";
  }
}
