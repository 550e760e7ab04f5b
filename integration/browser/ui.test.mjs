// Real-browser test of the web UI: Debian's chromium, driven by
// playwright-core, against `stepwise dev --examples` built from this
// checkout. Screenshots go to artifacts/ (kept by CI, ignored by git).
//
//   make -C integration/browser deps test
//
// Environment: CHROMIUM (default /usr/bin/chromium), STEPWISE_BIN (a built
// binary; default: built here with go build).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..");
const artifacts = join(here, "artifacts");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";

let dev, devLog = "", context, page, base, scratch;

// The API runs with tokens: the test's own calls use the admin one, the
// page signs in with the UI's (read, start, operate).
const adminToken = "browser-admin-" + Math.random().toString(16).slice(2).padEnd(16, "0");
const uiToken = "browser-ui-" + Math.random().toString(16).slice(2).padEnd(16, "0");

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function api(path, opts = {}) {
  const headers = { Authorization: "Bearer " + adminToken, ...(opts.headers || {}) };
  const resp = await fetch(base + "/api/v1" + path, { ...opts, headers });
  const body = await resp.json();
  return { status: resp.status, body };
}

async function startRequest(workflow, input, query = "") {
  return api(`/workflows/${workflow}/requests${query}`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(input),
  });
}

async function shot(name) {
  await page.screenshot({ path: join(artifacts, name + ".png"), fullPage: true });
}

before(async () => {
  mkdirSync(artifacts, { recursive: true });
  scratch = mkdtempSync(join(tmpdir(), "stepwise-browser-"));
  let bin = process.env.STEPWISE_BIN;
  if (!bin) {
    bin = join(scratch, "stepwise");
    execFileSync("go", ["build", "-o", bin, "./cmd/stepwise"], { cwd: repo, stdio: "inherit" });
  }
  const tokens = join(scratch, "tokens");
  writeFileSync(tokens, `admin admin ${adminToken}\nui read,start,operate ${uiToken}\n`, { mode: 0o600 });
  const [httpPort, kafkaPort] = [await freePort(), await freePort()];
  base = `http://127.0.0.1:${httpPort}`;
  // Slow steps (OCR 4×) so that a request runs for a few seconds and the
  // page can be seen changing while it does.
  dev = spawn(bin, ["dev", "--examples", "--in-memory", "--http", `127.0.0.1:${httpPort}`,
    "--kafka-addr", `127.0.0.1:${kafkaPort}`, "--tokens-file", tokens, "--log-level", "warn"], {
    cwd: scratch, env: { ...process.env, STEPWISE_IDP_LATENCY: "150ms" }, stdio: ["ignore", "pipe", "pipe"],
  });
  dev.stdout.on("data", (b) => { devLog += b; });
  dev.stderr.on("data", (b) => { devLog += b; });
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const r = await api("/workflows");
      if (r.status === 200 && r.body.workflows.some((w) => w.name === "idp")) break;
    } catch (e) { /* not listening yet */ }
    if (dev.exitCode !== null || Date.now() > deadline) throw new Error("stepwise dev did not come up:\n" + devLog);
    await new Promise((r) => setTimeout(r, 200));
  }

  context = await chromium.launchPersistentContext(join(scratch, "profile"), {
    executablePath: chromiumPath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1400, height: 1000 },
  });
  page = context.pages()[0] || await context.newPage();
  page.on("pageerror", (err) => { devLog += "\n[page error] " + err.message; });
});

after(async () => {
  if (context) await context.close();
  if (dev && dev.exitCode === null) {
    dev.kill("SIGINT");
    await new Promise((r) => { dev.once("exit", r); setTimeout(r, 10_000); });
  }
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

// idpNodes returns the number of drawn nodes the idp DAG has (groups, the
// fan-out steps, are drawn as clusters around their nodes).
async function idpDAG() {
  const { body } = await api("/workflows/idp");
  return {
    nodes: body.dag.nodes.filter((n) => n.kind !== "fanout").length,
    groups: body.dag.nodes.filter((n) => n.kind === "fanout").length,
  };
}

test("the UI asks for a token and signs in with it", async () => {
  const anon = await fetch(base + "/api/v1/workflows");
  assert.equal(anon.status, 401, "the API without a token");
  await page.goto(base + "/");
  await page.locator("#sign-in").waitFor();
  await shot("sign-in");
  await page.locator("#token").fill("not-the-token-0123456789");
  await page.locator('#sign-in button[type="submit"]').click();
  await page.locator("#sign-in-error", { hasText: "unknown token" }).waitFor();
  await page.locator("#token").fill(uiToken);
  await page.locator('#sign-in button[type="submit"]').click();
  await page.locator('section[data-workflow="idp"]').waitFor();
  assert.match(await page.locator("#whoami").innerText(), /^ui \(read, start, operate\)$/);
  assert.ok(!(await page.content()).includes(uiToken), "the token is not put into the page");
});

test("workflows page draws every workflow's DAG", async () => {
  const want = await idpDAG();
  assert.equal(want.nodes, 14, "idp: start, end, split, assemble, 2×(for each, collect), render, classify, review, extract, ocr, layout");
  await page.goto(base + "/");
  const card = page.locator('section[data-workflow="idp"]');
  await card.locator("svg g.node").first().waitFor();
  assert.equal(await card.locator("svg g.node").count(), want.nodes);
  assert.equal(await card.locator("svg g.cluster").count(), want.groups);
  assert.equal(await card.locator("svg path.edge").count(), (await api("/workflows/idp")).body.dag.edges.length);
  await shot("workflows");
});

test("a request started from the UI updates live to succeeded", async () => {
  await page.goto(base + "/#/workflows/idp");
  await page.locator("#start-input").fill("{}");
  await page.locator("#start-button").click();
  await page.waitForURL(/#\/requests\/[0-9a-f-]{36}$/);
  const id = decodeURIComponent(page.url().split("/").pop());

  // Seen running first, then succeeded, without reloading the page.
  await page.locator('main[data-status="running"]').waitFor({ timeout: 15_000 });
  await page.locator("#live.on").waitFor();
  await shot("request-running");
  await page.locator('main[data-status="succeeded"]').waitFor({ timeout: 60_000 });
  await page.locator("#live", { hasText: "finished" }).waitFor();

  const want = await idpDAG();
  const dag = page.locator("#request-dag");
  assert.equal(await dag.locator("g.node").count(), want.nodes);
  for (const node of ["split", "documents#each", "documents/render", "documents/pages/ocr", "documents/pages/layout", "documents/extract", "assemble"]) {
    assert.equal(await dag.locator(`g.node[data-node="${node}"]`).getAttribute("data-state"), "succeeded", node);
  }
  // Fan-out progress, e.g. "3/3 done" for the documents.
  const status = (await api("/requests/" + id)).body;
  assert.equal(status.status, "succeeded");
  const docs = status.nodes.documents;
  assert.ok(docs.children > 0 && docs.childrenDone === docs.children, JSON.stringify(docs));
  const row = page.locator('#timeline tr[data-node="documents"]');
  assert.match(await row.innerText(), new RegExp(`${docs.childrenDone}/${docs.children} done`));
  // Every attempt of the finished request, each with its worker and output size.
  const splitAttempt = page.locator('#attempts tr[data-attempt="split#1"]');
  await splitAttempt.waitFor();
  assert.match(await splitAttempt.innerText(), /succeeded/);
  assert.match(await splitAttempt.innerText(), /\d+ B/);
  await page.locator("#request-status .badge", { hasText: "succeeded" }).waitFor();
  await shot("request-succeeded");
});

test("a failing request shows its error", async () => {
  const bad = { bundle: { documents: [{ name: "empty.pdf", pages: [] }] } };
  const r = await startRequest("idp", bad, "?wait=30s");
  assert.equal(r.status, 200);
  assert.equal(r.body.status, "failed");
  await page.goto(base + "/#/requests/" + encodeURIComponent(r.body.id));
  await page.locator('main[data-status="failed"]').waitFor({ timeout: 15_000 });
  const err = page.locator("#request-error");
  await err.waitFor();
  assert.match(await err.innerText(), /empty\.pdf\) has no pages/);
  assert.match(await err.innerText(), /in split/);
  assert.equal(await page.locator('#request-dag g.node[data-node="split"]').getAttribute("data-state"), "failed");
  // The attempts section names the worker that answered (host/pid by default).
  const attempt = page.locator('#attempts tr[data-attempt="split#1"]');
  await attempt.waitFor();
  assert.match(await attempt.innerText(), /failed/);
  assert.match(await attempt.innerText(), /\/\d+/, "the worker's id");
  await shot("request-failed");

  // The list filtered by status shows it with its error.
  await page.goto(base + "/#/requests?status=failed");
  const rowSel = `tr[data-request="${r.body.id}"]`;
  await page.locator(rowSel).waitFor();
  assert.match(await page.locator(rowSel).innerText(), /has no pages/);
  await shot("requests-failed");
});

test("worker output with <script> renders as text", async () => {
  const evil = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">';
  const r = await startRequest("idp", { bundle: { documents: [{ name: evil, pages: ["some text"] }] } }, "?wait=30s");
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.status, "succeeded");
  await page.goto(base + "/#/requests/" + encodeURIComponent(r.body.id));
  await page.locator('main[data-status="succeeded"]').waitFor({ timeout: 15_000 });
  const payload = page.locator('[data-payload="step:split"] pre');
  await payload.waitFor();
  assert.ok((await payload.innerText()).includes("<script>window.__pwned = 1</script>"), "the markup is shown as text");
  assert.equal(await page.locator("main script, main img").count(), 0, "no element was made from the output");
  assert.equal(await page.evaluate(() => window.__pwned), undefined, "nothing of it ran");

  // The same string in an error message is text too.
  const f = await startRequest("idp", { bundle: { documents: [{ name: evil, pages: [] }] } }, "?wait=30s");
  assert.equal(f.body.status, "failed");
  await page.goto(base + "/#/requests/" + encodeURIComponent(f.body.id));
  await page.locator("#request-error").waitFor({ timeout: 15_000 });
  assert.ok((await page.locator("#request-error").innerText()).includes("<script>"));
  assert.equal(await page.locator("main script, main img").count(), 0);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  await shot("request-script-as-text");
});

test("no page error was raised", () => {
  assert.ok(!devLog.includes("[page error]"), devLog);
});
