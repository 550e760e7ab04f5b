// A TypeScript worker for the classify queue of the idp example
// (examples/idp in the Stepwise repository): it takes the laid-out pages of
// a document and returns the document's class. Its input and output are
// those of the Go handler, field for field, so Go and TypeScript workers of
// the queue can share the work:
//
//   in:  {"name": "a.pdf", "pages": [{"number", "text", "confidence", "blocks", "lines", "words"}, ...]}
//   out: {"name": "a.pdf", "class": "invoice" | "contract" | "letter" | "other", "confidence": 0.6, "pages": [...the pages...]}
//
// Run it after `npm run build`:
//
//   node dist/examples/idp-classify.js --brokers 127.0.0.1:9092 [--prefix stepwise.] [--concurrency 8]
//
// A program outside this package imports "@stepwise/worker" instead of
// "../src/index.js".

import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

import { jsonLogger, NonRetryableError, Worker, type JsonObject, type Task } from "../src/index.js";

/** The queue this worker serves. */
export const QUEUE = "classify";

/** The class of a document no keyword matched. */
export const CLASS_OTHER = "other";

// Classes are tried in this order; the first with the highest keyword
// score wins.
const classKeywords: ReadonlyArray<{ cls: string; keywords: readonly string[] }> = [
  { cls: "invoice", keywords: ["invoice", "total due", "subtotal", "vat", "bill to"] },
  { cls: "contract", keywords: ["agreement", "parties", "party", "hereby", "term"] },
  { cls: "letter", keywords: ["dear", "sincerely", "yours", "regards"] },
];

/** A page once read and laid out. Zero counts are left out, as the Go worker does. */
export interface Page {
  number: number;
  text: string;
  confidence: number;
  blocks?: number;
  lines?: number;
  words?: number;
}

/** Returns the class whose keywords occur most often in text. */
export function classify(text: string): string {
  return classifyConfidence(text).cls;
}

/**
 * Returns classify's class and how sure it is, as the Go worker computes
 * it: the share of the keyword occurrences that belong to that class,
 * rounded to two decimals; 1 when no keyword occurs.
 */
export function classifyConfidence(text: string): { cls: string; confidence: number } {
  const lower = text.toLowerCase();
  let best = CLASS_OTHER;
  let bestScore = 0;
  let total = 0;
  for (const { cls, keywords } of classKeywords) {
    const score = keywords.reduce((n, k) => n + countWord(lower, k), 0);
    total += score;
    if (score > bestScore) {
      best = cls;
      bestScore = score;
    }
  }
  return { cls: best, confidence: total === 0 ? 1 : Math.round((bestScore / total) * 100) / 100 };
}

/** Counts the occurrences of phrase in text that are not inside a longer word ("term" does not count in "determined"). */
export function countWord(text: string, phrase: string): number {
  let n = 0;
  for (let i = 0; ; ) {
    const start = text.indexOf(phrase, i);
    if (start < 0) return n;
    const end = start + phrase.length;
    if ((start === 0 || !isLetter(text[start - 1]!)) && (end === text.length || !isLetter(text[end]!))) n++;
    i = end;
  }
}

function isLetter(c: string): boolean {
  return (c >= "a" && c <= "z") || (c >= "A" && c <= "Z");
}

function bad(message: string): NonRetryableError {
  return new NonRetryableError(`stepwise: idp: ${message}`);
}

/** Reads one page as the Go worker decodes it: every field optional, of its JSON type. */
function decodePage(v: unknown, i: number, doc: string): Page {
  if (v === null) throw bad(`document ${doc}: page ${i + 1} has no layout`);
  if (typeof v !== "object" || Array.isArray(v)) throw bad(`document ${doc}: page ${i + 1} is not an object`);
  const o = v as JsonObject;
  const int = (k: string): number => {
    const x = o[k];
    if (x === undefined || x === null) return 0;
    if (typeof x !== "number" || !Number.isInteger(x)) throw bad(`document ${doc}: page ${i + 1}: "${k}" is not an integer`);
    return x;
  };
  const text = o.text ?? "";
  if (typeof text !== "string") throw bad(`document ${doc}: page ${i + 1}: "text" is not a string`);
  const confidence = o.confidence ?? 0;
  if (typeof confidence !== "number") throw bad(`document ${doc}: page ${i + 1}: "confidence" is not a number`);
  const page: Page = { number: int("number"), text, confidence };
  for (const k of ["blocks", "lines", "words"] as const) {
    const n = int(k);
    if (n !== 0) page[k] = n;
  }
  return page;
}

/** The classify handler: {name, pages} in, {name, class, confidence, pages} out. */
export function classifyHandler(t: Task): JsonObject {
  const name = t.input.name ?? "";
  if (typeof name !== "string") throw bad(`"name" is not a string`);
  const raw = t.input.pages ?? null;
  if (raw !== null && !Array.isArray(raw)) throw bad(`document ${name}: "pages" is not a list`);
  const pages = raw === null ? null : raw.map((p, i) => decodePage(p, i, name));
  const text = (pages ?? []).map((p) => p.text + "\n").join("");
  const { cls, confidence } = classifyConfidence(text);
  // A document without "pages" answers "pages": null, as the Go worker does.
  return { name, class: cls, confidence, pages };
}

/** The idp example's default simulated latency of a step. */
export const DEFAULT_LATENCY_MS = 5;

/**
 * Reads a Go duration ("5ms", "1.5s", "0"), as STEPWISE_IDP_LATENCY is
 * written for every worker of the example; undefined when it is not one.
 */
export function parseGoDuration(s: string): number | undefined {
  const unitMs: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, "μs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  if (s === "0") return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (m === null) return undefined;
    total += Number(m[1]) * unitMs[m[2]!]!;
    pos = re.lastIndex;
  }
  return pos === 0 ? undefined : total;
}

/** The simulated latency of the example (STEPWISE_IDP_LATENCY, default 5 ms); a bad value is reported and the default used. */
export function latencyFromEnv(env: NodeJS.ProcessEnv = process.env): { ms: number; error?: string } {
  const v = env.STEPWISE_IDP_LATENCY;
  if (v === undefined || v === "") return { ms: DEFAULT_LATENCY_MS };
  const ms = parseGoDuration(v);
  if (ms === undefined) return { ms: DEFAULT_LATENCY_MS, error: `stepwise: STEPWISE_IDP_LATENCY=${JSON.stringify(v)} is not a non-negative duration such as 20ms` };
  return { ms };
}

/** Wraps the handler with the simulated latency; a task aborted while waiting fails retryably. */
export function slow(ms: number, h: (t: Task) => JsonObject): (t: Task) => Promise<JsonObject> {
  return async (t) => {
    if (ms > 0) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, ms);
        t.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          reject(t.signal.reason);
        }, { once: true });
      });
    }
    return h(t);
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      brokers: { type: "string", default: process.env.STEPWISE_BROKERS ?? process.env.KAFKA_BROKERS ?? "127.0.0.1:9092" },
      prefix: { type: "string", default: "stepwise." },
      group: { type: "string" },
      concurrency: { type: "string", default: "8" },
    },
  });
  const logger = jsonLogger();
  const latency = latencyFromEnv();
  if (latency.error !== undefined) logger.warn(latency.error);
  const tracer = await tracerFromEnv();
  const w = new Worker({
    brokers: values.brokers.split(",").map((s) => s.trim()).filter((s) => s !== ""),
    prefix: values.prefix,
    ...(values.group !== undefined ? { groupId: values.group } : {}),
    clientId: "idp-classify-ts",
    logger,
    ...(tracer !== undefined ? { tracing: tracer } : {}),
  });
  w.handle(QUEUE, slow(latency.ms, classifyHandler), { concurrency: Number(values.concurrency) });
  try {
    await w.run();
  } finally {
    await tracer?.shutdown();
  }
}

/**
 * An OpenTelemetry tracer provider exporting over OTLP/HTTP when the OTEL_*
 * environment names an endpoint (as the Go binary does), else undefined;
 * it also registers the context manager that keeps the handler's span
 * active across awaits.
 */
async function tracerFromEnv(): Promise<{ shutdown(): Promise<void> } & import("@opentelemetry/api").TracerProvider | undefined> {
  if (!process.env.OTEL_EXPORTER_OTLP_ENDPOINT && !process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return undefined;
  const { NodeTracerProvider, BatchSpanProcessor } = await import("@opentelemetry/sdk-trace-node");
  const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-http");
  const { resourceFromAttributes } = await import("@opentelemetry/resources");
  const tp = new NodeTracerProvider({
    resource: resourceFromAttributes({ "service.name": process.env.OTEL_SERVICE_NAME ?? "idp-classify-ts" }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  tp.register();
  return tp;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`idp-classify: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
