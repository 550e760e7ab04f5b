// Result delivery: how a result reaches the results topic, and when it is
// given up. The rule (schemas/PROTOCOL.md, "Worker obligations"): a result
// is sent again after any error except the broker refusing the record
// itself for good, the producer being closed, or the worker's hard stop. A
// result sent twice is deduplicated by the processor; a result dropped
// strands its request.

import kafkajs from "kafkajs";
import type { Producer } from "kafkajs";

import type { ResultRecord } from "./core.js";
import { errorMessage, StepwiseError } from "./errors.js";
import { LogKey, type Logger } from "./logger.js";

// Declared without arguments, constructed (like every kafkajs error) with a message.
const KafkaJSMetadataNotLoaded = kafkajs.KafkaJSMetadataNotLoaded as unknown as new (message: string) => Error;

/** The most results one produce request carries. */
const MAX_RESULTS_PER_PRODUCE = 500;

/** How long a result waits for the producer to learn of a reply partition it does not know yet. */
export const UNKNOWN_PARTITION_WAIT_MS = 30_000;

/** The first and the longest pause between two tries of one result. */
const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 2_000;

/**
 * The broker error types after which the same record can never be taken:
 * the record is too large, invalid or corrupt, or its topic does not
 * exist. The same list as the Go SDK's.
 */
const REFUSED_FOR_GOOD = new Set(["MESSAGE_TOO_LARGE", "RECORD_LIST_TOO_LARGE", "INVALID_RECORD", "CORRUPT_MESSAGE", "INVALID_TOPIC_EXCEPTION", "UNKNOWN_TOPIC_OR_PARTITION"]);

/** The part of a kafkajs producer the sender uses. */
export type BatchProducer = Pick<Producer, "sendBatch">;

/**
 * The producer's partitioner. Results go exactly where the task says (a
 * hashed partition would reach the wrong processor), and a partition the
 * producer's metadata does not list yet (one just added to the results
 * topic) is an error that makes kafkajs read the metadata again: left to
 * itself, kafkajs sends nothing for such a partition and reports success.
 */
export function resultPartitioner() {
  return ({ topic, partitionMetadata, message }: { topic: string; partitionMetadata: Array<{ partitionId: number }>; message: { partition?: number } }): number => {
    const p = message.partition;
    if (typeof p !== "number") throw new StepwiseError("result record without an explicit partition");
    if (!partitionMetadata.some((m) => m.partitionId === p)) {
      throw new KafkaJSMetadataNotLoaded(`stepwise: partition ${p} of ${topic} is not in the producer's metadata yet`);
    }
    return p;
  };
}

/**
 * ResultSender produces results, acknowledged by all in-sync replicas.
 * Results that arrive while a produce is in flight go out together in the
 * next one, so a busy worker pays one round trip for many results and an
 * idle one waits for nothing.
 */
export class ResultSender {
  readonly #producer: BatchProducer;
  #queue: Array<{ r: ResultRecord; resolve: () => void; reject: (err: unknown) => void }> = [];
  #busy = false;

  constructor(producer: BatchProducer) {
    this.#producer = producer;
  }

  /** Resolves once the broker acknowledged the result; rejects with the produce's error. */
  send(r: ResultRecord): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ r, resolve, reject });
      if (!this.#busy) void this.#loop();
    });
  }

  async #loop(): Promise<void> {
    this.#busy = true;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, MAX_RESULTS_PER_PRODUCE);
        try {
          await this.#produce(batch.map((b) => b.r));
          for (const b of batch) b.resolve();
        } catch (err) {
          if (batch.length > 1 && refusedForGood(err)) {
            // One record spoils the request for all: find it alone.
            for (const b of batch) await this.#produce([b.r]).then(b.resolve, b.reject);
          } else {
            for (const b of batch) b.reject(err);
          }
        }
      }
    } finally {
      this.#busy = false;
    }
  }

  async #produce(rs: ResultRecord[]): Promise<void> {
    const byTopic = new Map<string, ResultRecord[]>();
    for (const r of rs) byTopic.set(r.topic, [...(byTopic.get(r.topic) ?? []), r]);
    await this.#producer.sendBatch({
      acks: -1,
      topicMessages: [...byTopic].map(([topic, list]) => ({
        topic,
        messages: list.map((r) => ({ key: r.key, value: r.value, partition: r.partition, headers: r.headers })),
      })),
    });
  }
}

/** How a delivery ended: sent; refused for good (dropped, logged); or stopped (left unanswered and uncommitted). */
export type Delivery = { kind: "sent" } | { kind: "refused"; error: unknown } | { kind: "stopped"; error: unknown };

/** Options of deliver. */
export interface DeliverOptions {
  /** aborted at the worker's hard stop: the result is then left unsent */
  stop: AbortSignal;
  log: Logger;
  /** the clock (tests); default Date.now */
  now?: () => number;
  /** pauses ms, resolving early when stop aborts (tests); default a timer */
  sleep?: (ms: number, stop: AbortSignal) => Promise<void>;
}

/**
 * Sends r until the broker takes it, refuses it for good, or the worker
 * stops. A partition the producer does not know yet is waited for
 * UNKNOWN_PARTITION_WAIT_MS (processors only name partitions that exist),
 * then given up as refused.
 */
export async function deliver(sender: Pick<ResultSender, "send">, r: ResultRecord, opts: DeliverOptions): Promise<Delivery> {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? pause;
  const deadline = now() + UNKNOWN_PARTITION_WAIT_MS;
  for (let wait = FIRST_RETRY_MS; ; wait = Math.min(2 * wait, MAX_RETRY_MS)) {
    try {
      await sender.send(r);
      return { kind: "sent" };
    } catch (err) {
      if (refusedForGood(err)) return { kind: "refused", error: err };
      if (opts.stop.aborted || producerClosed(err)) return { kind: "stopped", error: err };
      const where = { [LogKey.Request]: r.key, [LogKey.Topic]: r.topic, [LogKey.Partition]: r.partition };
      if (unknownPartition(err)) {
        if (now() >= deadline) return { kind: "refused", error: err };
        opts.log.info("reply partition not known yet; reading the metadata again", where);
      } else {
        opts.log.warn("producing a result failed; retrying", { ...where, [LogKey.Error]: errorMessage(err), retry_in_ms: wait });
      }
    }
    await sleep(wait, opts.stop);
    if (opts.stop.aborted) return { kind: "stopped", error: opts.stop.reason };
  }
}

/** The errors of err and of its cause chain. */
function* chain(err: unknown): Generator<{ name?: string; type?: string; message?: string }> {
  const seen = new Set<unknown>();
  for (let e: unknown = err; typeof e === "object" && e !== null && !seen.has(e); e = (e as { cause?: unknown }).cause) {
    seen.add(e);
    yield e as { name?: string; type?: string; message?: string };
  }
}

/** Reports whether the broker refused the record itself for good: sending it again cannot succeed. */
export function refusedForGood(err: unknown): boolean {
  for (const e of chain(err)) {
    if (e.name === "KafkaJSProtocolError" && e.type !== undefined && REFUSED_FOR_GOOD.has(e.type)) return true;
  }
  return false;
}

/** Reports whether the producer was disconnected (the worker is closing). */
function producerClosed(err: unknown): boolean {
  for (const e of chain(err)) {
    if (typeof e.message === "string" && /^The producer is disconnect(ed|ing)/.test(e.message)) return true;
  }
  return false;
}

/** Reports whether the producer did not know the result's topic or partition yet. */
function unknownPartition(err: unknown): boolean {
  for (const e of chain(err)) {
    if (e.name === "KafkaJSMetadataNotLoaded" || e.name === "KafkaJSTopicMetadataNotLoaded") return true;
  }
  return false;
}

function pause(ms: number, stop: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      stop.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    stop.addEventListener("abort", done, { once: true });
  });
}
