// Shared set-up of the integration tests: a real Kafka broker from
// KAFKA_BROKERS (integration/kafka/up starts one), topics under a prefix of
// their own per test, and helpers to produce tasks and read results.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";

import kafkajs from "kafkajs";
import type { Admin, Consumer, IHeaders, Kafka as KafkaClient, Producer } from "kafkajs";

import { jsonLogger, type Logger } from "../../src/index.js";

const { Kafka, Partitioners, logLevel } = kafkajs;

/**
 * The seed brokers. Throws when KAFKA_BROKERS is unset: an integration run
 * without a broker must fail, not pass having tested nothing.
 */
export function brokers(): string[] {
  const seeds = (process.env.KAFKA_BROKERS ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (seeds.length === 0) {
    throw new Error("KAFKA_BROKERS is not set: start a broker with `make kafka-up` (repository root) and export KAFKA_BROKERS=127.0.0.1:9092");
  }
  return seeds;
}

/** Warnings and errors of the code under test, as JSON lines on stderr. */
export const quietLogger: Logger = jsonLogger({ level: "warn" });

export interface Env {
  prefix: string;
  kafka: KafkaClient;
  admin: Admin;
  producer: Producer;
  tasksTopic: string;
  resultsTopic: string;
  close(): Promise<void>;
}

/** Creates tasks.<queue> and results under a fresh prefix. */
export async function setUp(queue: string, taskPartitions: number, resultPartitions: number): Promise<Env> {
  const prefix = `it-ts-${randomBytes(4).toString("hex")}.`;
  const kafka = new Kafka({ clientId: "stepwise-ts-it", brokers: brokers(), logLevel: logLevel.ERROR });
  const admin = kafka.admin();
  await admin.connect();
  const tasksTopic = `${prefix}tasks.${queue}`;
  const resultsTopic = `${prefix}results`;
  await admin.createTopics({
    waitForLeaders: true,
    topics: [
      { topic: tasksTopic, numPartitions: taskPartitions },
      { topic: resultsTopic, numPartitions: resultPartitions },
    ],
  });
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const consumers: Consumer[] = [];
  return {
    prefix,
    kafka,
    admin,
    producer,
    tasksTopic,
    resultsTopic,
    async close() {
      await Promise.allSettled(consumers.map((c) => c.disconnect()));
      await producer.disconnect();
      await admin.deleteTopics({ topics: [tasksTopic, resultsTopic] }).catch(() => undefined);
      await admin.disconnect();
    },
  };
}

export interface TaskSpec {
  partition: number;
  request: string;
  step?: string;
  attempt?: number;
  replyPartition: number;
  value: unknown;
}

/** The record of a task as a processor writes it. */
export function taskMessage(env: Env, t: TaskSpec) {
  return {
    partition: t.partition,
    key: t.request,
    value: JSON.stringify(t.value),
    headers: {
      "stepwise-request": t.request,
      "stepwise-workflow": "it",
      "stepwise-step": t.step ?? "work",
      "stepwise-attempt": String(t.attempt ?? 1),
      "stepwise-instance": t.request,
      "stepwise-reply-topic": env.resultsTopic,
      "stepwise-reply-partition": String(t.replyPartition),
    },
  };
}

export async function produceTasks(env: Env, tasks: TaskSpec[]): Promise<void> {
  await env.producer.send({ topic: env.tasksTopic, acks: -1, messages: tasks.map((t) => taskMessage(env, t)) });
}

export interface ResultSeen {
  partition: number;
  key: string;
  headers: Record<string, string>;
  value: unknown;
}

/** Reads results (committed only) as they arrive. */
export class ResultReader {
  readonly seen: ResultSeen[] = [];
  #consumer: Consumer;
  #waiters: Array<() => void> = [];

  private constructor(consumer: Consumer) {
    this.#consumer = consumer;
  }

  static async start(env: Env): Promise<ResultReader> {
    const c = env.kafka.consumer({ groupId: `${env.prefix}reader`, readUncommitted: false, maxWaitTimeInMs: 200, sessionTimeout: 10_000, heartbeatInterval: 1000 });
    const r = new ResultReader(c);
    await c.connect();
    await c.subscribe({ topic: env.resultsTopic, fromBeginning: true });
    await c.run({
      eachMessage: async ({ partition, message }) => {
        r.seen.push({
          partition,
          key: message.key?.toString() ?? "",
          headers: strings(message.headers),
          value: JSON.parse(message.value?.toString() ?? "null"),
        });
        for (const w of r.#waiters.splice(0)) w();
      },
    });
    return r;
  }

  /** Waits until at least n results arrived. */
  async waitFor(n: number, timeoutMs = 60_000): Promise<ResultSeen[]> {
    const until = Date.now() + timeoutMs;
    while (this.seen.length < n) {
      const left = until - Date.now();
      assert.ok(left > 0, `only ${this.seen.length} of ${n} results within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 500));
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.seen;
  }

  async close(): Promise<void> {
    await this.#consumer.disconnect();
  }
}

function strings(h: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h ?? {})) {
    if (v !== undefined) out[k] = Array.isArray(v) ? String(v[v.length - 1]) : v.toString();
  }
  return out;
}

/** The committed offsets of group on topic, by partition (-1: none). */
export async function committed(env: Env, groupId: string): Promise<Map<number, bigint>> {
  const res = await env.admin.fetchOffsets({ groupId, topics: [env.tasksTopic] });
  return new Map((res[0]?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
}

/** Polls the committed offsets until pred holds. */
export async function waitCommitted(env: Env, groupId: string, pred: (m: Map<number, bigint>) => boolean, timeoutMs = 30_000): Promise<Map<number, bigint>> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const m = await committed(env, groupId);
    if (pred(m)) return m;
    assert.ok(Date.now() < until, `committed offsets ${JSON.stringify([...m].map(([p, o]) => [p, o.toString()]))} never reached the expected state`);
    await sleep(200);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A promise resolved from outside. */
export function latch(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}
