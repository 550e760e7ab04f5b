// An echo worker of the TypeScript SDK for the integration suite: answers
// every task of one queue with its input plus {"<queue>": "typescript"}.
//
//   node echo.mjs --sdk SDK_DIST_INDEX --brokers HOST:PORT --prefix P --queue Q
//                 [--tls-ca CA.pem] [--tls-cert C.pem --tls-key K.pem]
//
// --sdk is the built SDK (sdk/typescript/dist/src/index.js). Stops on
// SIGTERM after finishing the tasks it started.

import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const { values: a } = parseArgs({
  options: {
    sdk: { type: "string" },
    brokers: { type: "string" },
    prefix: { type: "string" },
    queue: { type: "string" },
    "tls-ca": { type: "string" },
    "tls-cert": { type: "string" },
    "tls-key": { type: "string" },
  },
});
for (const k of ["sdk", "brokers", "prefix", "queue"]) {
  if (!a[k]) throw new Error(`--${k} is required`);
}
const { Worker } = await import(pathToFileURL(a.sdk).href);

let ssl;
if (a["tls-ca"]) {
  ssl = { ca: [readFileSync(a["tls-ca"])] };
  if (a["tls-cert"]) {
    ssl.cert = readFileSync(a["tls-cert"]);
    ssl.key = readFileSync(a["tls-key"]);
  }
}
const worker = new Worker({ brokers: a.brokers.split(","), prefix: a.prefix, clientId: "it-echo-typescript", ssl });
worker.handle(a.queue, async (task) => ({ ...task.input, [a.queue]: "typescript" }));
console.error(`typescript echo worker running on queue ${a.queue}`);
await worker.run();
