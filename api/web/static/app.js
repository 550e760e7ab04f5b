// Stepwise web UI: workflows with their DAG, requests with filters, and a
// live request page. Plain JavaScript, no framework. Every string that comes
// from the API (ids, step outputs, error messages written by workers) is put
// into the page with textContent or as an SVG text node, never parsed as
// HTML.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const main = document.getElementById("main");
  const numberFmt = new Intl.NumberFormat("en-US");
  let teardown = []; // closes event streams and timers of the current page

  // ---- DOM helpers ---------------------------------------------------------

  // el builds an element; attrs are set as attributes (or properties for
  // "text", "value", "onclick"...); children are nodes or strings (as text).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG, tag);
    setAttrs(e, attrs);
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function setAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") e.textContent = String(v);
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "value") e.value = v;
      else e.setAttribute(k, String(v));
    }
  }

  function badge(status) {
    return el("span", { class: "badge " + safeClass(status), "data-status": status, text: status });
  }

  // safeClass keeps a value usable as a class name: statuses come from the
  // API, so anything unexpected becomes "unknown".
  function safeClass(s) {
    return /^[a-z]+$/.test(String(s)) ? s : "unknown";
  }

  function fmtTime(t) {
    if (!t) return "";
    const d = new Date(t);
    return d.toLocaleString(undefined, { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
  }

  function fmtDuration(ms) {
    if (ms === undefined || ms === null || isNaN(ms)) return "";
    if (ms < 1000) return ms.toFixed(ms < 10 ? 1 : 0) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(2) + " s";
    return Math.floor(ms / 60000) + " min " + Math.round((ms % 60000) / 1000) + " s";
  }

  function fraction(done, total) {
    return numberFmt.format(done) + "/" + numberFmt.format(total);
  }

  function enc(s) {
    return encodeURIComponent(s);
  }

  // ---- API -------------------------------------------------------------------

  class APIError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // ---- Authentication --------------------------------------------------------
  // The API may require a bearer token. The UI keeps it in this tab's
  // session storage (gone when the tab closes) and sends it on every call;
  // a 401 shows the sign-in form.

  const tokenKey = "stepwise-token";
  let token = sessionStorage.getItem(tokenKey) || "";

  function authHeaders(headers) {
    const h = new Headers(headers || {});
    if (token) h.set("Authorization", "Bearer " + token);
    return h;
  }

  async function api(path, opts) {
    const resp = await fetch("api/v1" + path, { ...(opts || {}), headers: authHeaders(opts && opts.headers) });
    const text = await resp.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (e) {
      throw new APIError(resp.status, "unreadable answer: " + text.slice(0, 200));
    }
    if (resp.status === 401) signIn((body && body.error) || "a token is required");
    if (!resp.ok) throw new APIError(resp.status, (body && body.error) || resp.statusText);
    return body;
  }

  // signIn replaces the page with the token form; after a token the API
  // accepts, the page the user was on is shown again.
  function signIn(why) {
    if (document.getElementById("sign-in")) return;
    for (const f of teardown) f();
    teardown = [];
    const input = el("input", { type: "password", id: "token", autocomplete: "off", size: 48, placeholder: "bearer token" });
    const msg = el("p", { class: "error", id: "sign-in-error", text: token ? why : "" });
    const form = el("form", { id: "sign-in", class: "card" },
      el("p", { text: "This Stepwise API needs a token. Ask its operator for one (scopes: read to look, start to start requests, operate to cancel)." }),
      el("div", { class: "row" }, input, el("button", { type: "submit", text: "Sign in" })), msg);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const resp = await fetch("api/v1/auth", { headers: { Authorization: "Bearer " + input.value.trim() } });
      if (!resp.ok) {
        const body = await resp.json().catch(() => null);
        msg.textContent = (body && body.error) || resp.statusText;
        return;
      }
      token = input.value.trim();
      sessionStorage.setItem(tokenKey, token);
      showIdentity(await resp.json());
      route();
    });
    main.replaceChildren(el("h1", { text: "Sign in" }), form);
    input.focus();
  }

  function showIdentity(id) {
    const box = document.getElementById("identity");
    if (!id.required) return box.replaceChildren();
    const out = el("a", { href: "#/", id: "sign-out", text: "sign out" });
    out.addEventListener("click", (ev) => {
      ev.preventDefault();
      token = "";
      sessionStorage.removeItem(tokenKey);
      box.replaceChildren();
      signIn("");
    });
    box.replaceChildren(el("span", { id: "whoami", text: id.name + " (" + id.scopes.join(", ") + ")" }), " ", out);
  }

  // streamEvents reads server-sent events with fetch (EventSource cannot
  // send a token) and calls on(name, data) for each. It resolves when the
  // stream ends; abort() on the returned controller stops it.
  function streamEvents(path, on) {
    const ctl = new AbortController();
    const done = (async () => {
      const resp = await fetch("api/v1" + path, { headers: authHeaders({ Accept: "text/event-stream" }), signal: ctl.signal });
      if (!resp.ok) {
        const body = await resp.json().catch(() => null);
        if (resp.status === 401) signIn((body && body.error) || "a token is required");
        throw new APIError(resp.status, (body && body.error) || resp.statusText);
      }
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += value;
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const chunk = buf.slice(0, end);
          buf = buf.slice(end + 2);
          let name = "message", data = "";
          for (const line of chunk.split("\n")) {
            if (line.startsWith("event: ")) name = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          if (data) on(name, data);
        }
      }
    })();
    return { ctl, done };
  }

  function showError(where, err) {
    if (err.status === 401) return; // the sign-in form is shown instead
    where.replaceChildren(el("p", { class: "error", text: String(err.message || err) }));
  }

  // ---- Router ----------------------------------------------------------------

  function route() {
    for (const f of teardown) f();
    teardown = [];
    const hash = location.hash.replace(/^#/, "") || "/";
    const [path, query] = hash.split("?");
    const params = new URLSearchParams(query || "");
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    let nav = "workflows";
    if (parts[0] === "requests" && parts.length === 2) {
      nav = "requests";
      requestPage(parts[1]);
    } else if (parts[0] === "requests") {
      nav = "requests";
      requestsPage(params);
    } else if (parts[0] === "workflows" && parts.length >= 2) {
      workflowPage(parts.slice(1).join("/"));
    } else {
      workflowsPage();
    }
    for (const a of document.querySelectorAll("header nav a[data-nav]")) {
      a.classList.toggle("active", a.dataset.nav === nav);
    }
  }

  // ---- DAG drawing -------------------------------------------------------------

  // drawDAG lays out a DAG document (nodes with parents, edges) with dagre
  // and draws it as SVG. It returns update(nodes), which colours the nodes by
  // the progress map of a status document without laying out again.
  function drawDAG(container, dag) {
    const g = new dagre.graphlib.Graph({ compound: true, multigraph: false });
    g.setGraph({ rankdir: "LR", nodesep: 22, ranksep: 42, marginx: 14, marginy: 24 });
    g.setDefaultEdgeLabel(() => ({}));
    const byID = new Map();
    for (const n of dag.nodes) byID.set(n.id, n);
    for (const n of dag.nodes) {
      if (n.kind === "fanout") {
        g.setNode(n.id, { label: n.label });
      } else {
        const small = n.kind === "foreach" || n.kind === "collect" || n.kind === "start" || n.kind === "end";
        const w = Math.max(small ? 60 : 90, n.label.length * 7 + 22);
        g.setNode(n.id, { label: n.label, width: w, height: small ? 26 : 40 });
      }
    }
    for (const n of dag.nodes) if (n.parent) g.setParent(n.id, n.parent);
    for (const e of dag.edges) g.setEdge(e.from, e.to);
    dagre.layout(g);

    const gw = Math.ceil(g.graph().width || 200);
    const gh = Math.ceil(g.graph().height || 100);
    const root = svg("svg", { width: gw, height: gh, viewBox: `0 0 ${gw} ${gh}`, role: "img", "aria-label": "workflow graph" });
    root.append(svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }))));

    const depth = (id) => { let d = 0; for (let p = byID.get(id).parent; p; p = byID.get(p).parent) d++; return d; };
    const shapes = new Map(); // node id => {group, progress}
    const clusters = dag.nodes.filter((n) => n.kind === "fanout").sort((a, b) => depth(a.id) - depth(b.id));
    for (const c of clusters) {
      const b = g.node(c.id);
      const grp = svg("g", { class: "cluster", "data-node": c.id });
      grp.append(svg("rect", { x: b.x - b.width / 2, y: b.y - b.height / 2, width: b.width, height: b.height, rx: 8 }));
      const label = svg("text", { x: b.x - b.width / 2 + 6, y: b.y - b.height / 2 - 5 }, c.label);
      const progress = svg("tspan", { class: "progress", dx: 6 });
      label.append(progress);
      grp.append(label);
      root.append(grp);
      shapes.set(c.id, { group: grp, progress });
    }
    for (const e of g.edges()) {
      const pts = g.edge(e).points || [];
      if (!pts.length) continue;
      const d = pts.map((p, i) => (i ? "L" : "M") + p.x.toFixed(1) + " " + p.y.toFixed(1)).join(" ");
      root.append(svg("path", { class: "edge", d, "marker-end": "url(#arrow)" }));
    }
    for (const n of dag.nodes) {
      if (n.kind === "fanout") continue;
      const b = g.node(n.id);
      const grp = svg("g", { class: "node kind-" + safeClass(n.kind), "data-node": n.id, transform: `translate(${b.x - b.width / 2},${b.y - b.height / 2})` });
      grp.append(svg("rect", { width: b.width, height: b.height, rx: n.kind === "start" || n.kind === "end" ? 13 : 4 }));
      const title = svg("title", {}, n.label + (n.queue ? "\nqueue: " + n.queue : ""));
      grp.append(title);
      const two = b.height > 30;
      grp.append(svg("text", { x: 10, y: two ? 17 : 17 }, n.label));
      let progress = null;
      if (two) {
        progress = svg("text", { x: 10, y: 32, class: "progress" });
        grp.append(progress);
      }
      root.append(grp);
      shapes.set(n.id, { group: grp, progress, node: n });
    }
    container.replaceChildren(root);

    return function update(progressByNode) {
      for (const [id, s] of shapes) {
        const n = byID.get(id);
        const stepID = n.step || id;
        const p = progressByNode && progressByNode[stepID];
        for (const cls of [...s.group.classList]) if (cls.startsWith("state-")) s.group.classList.remove(cls);
        if (n.kind === "start") { s.group.classList.add("state-succeeded"); continue; }
        if (!p) continue;
        s.group.classList.add("state-" + safeClass(p.status));
        s.group.setAttribute("data-state", p.status);
        if (!s.progress) continue;
        let text = p.status;
        if (n.kind === "fanout") {
          text = p.children ? fraction(p.childrenDone, p.children) : "";
        } else if (p.total > 1) {
          text = fraction(p.succeeded, p.total) + (p.failed ? " · " + p.failed + " failed" : "");
        } else if (p.maxAttempt > 1) {
          text += " · attempt " + p.maxAttempt;
        }
        s.progress.textContent = text;
      }
    };
  }

  // ---- Workflows ----------------------------------------------------------------

  async function workflowsPage() {
    main.replaceChildren(el("h1", { text: "Workflows" }));
    let list;
    try {
      list = await api("/workflows");
    } catch (err) {
      return showError(main, err);
    }
    if (!list.workflows.length) main.append(el("p", { class: "muted", text: "No workflow is loaded." }));
    for (const w of list.workflows) {
      const card = el("section", { class: "card workflow", "data-workflow": w.name },
        el("div", { class: "row" },
          el("h2", {}, el("a", { href: "#/workflows/" + enc(w.name), text: w.name })),
          el("span", { class: "muted", text: `version ${w.version} · ${w.steps} steps, ${w.tasks} fan-out tasks` + (w.file ? " · " + w.file : "") }),
          el("a", { href: "#/requests?workflow=" + enc(w.name), text: "requests" })));
      const dagBox = el("div", { class: "dag" });
      card.append(dagBox);
      main.append(card);
      api("/workflows/" + enc(w.name)).then((d) => drawDAG(dagBox, d.dag)).catch((err) => showError(dagBox, err));
    }
  }

  // versionsCard lists a workflow's definition versions; picking two shows
  // the diff of their sources.
  function versionsCard(name, shown) {
    const card = el("section", { class: "card", id: "versions" }, el("h2", { text: "Versions" }));
    const out = el("pre", { id: "version-diff" });
    api("/workflows/" + enc(name) + "/versions").then((list) => {
      const pick = (id, v) => el("select", { id }, list.versions.filter((x) => !x.deleted).map((x) => el("option", { value: x.version, text: "version " + x.version, selected: x.version === v })));
      const nums = list.versions.filter((x) => !x.deleted).map((x) => x.version);
      const from = pick("diff-from", nums.length > 1 ? nums[nums.length - 2] : shown);
      const to = pick("diff-to", shown);
      const show = async () => {
        try {
          const d = await api("/workflows/" + enc(name) + "/diff?from=" + from.value + "&to=" + to.value);
          out.textContent = d.diff || "(the same)";
        } catch (err) {
          out.textContent = err.message;
        }
      };
      card.append(el("ul", {}, list.versions.map((x) => el("li", { text: `version ${x.version}` + (x.deleted ? " (deleted)" : "") + ` · applied ${fmtTime(x.applied)}` + (x.hash ? " · " + x.hash.slice(0, 19) : "") }))),
        el("div", { class: "row" }, "diff ", from, " → ", to, el("button", { onclick: show, text: "Show" })), out);
    }).catch((err) => showError(card, err));
    return card;
  }

  async function workflowPage(name) {
    main.replaceChildren(el("h1", {}, "Workflow ", el("span", { text: name })));
    let d;
    try {
      d = await api("/workflows/" + enc(name));
    } catch (err) {
      return showError(main, err);
    }
    const dagBox = el("div", { class: "dag" });
    main.append(dagBox);
    drawDAG(dagBox, d.dag);
    main.append(versionsCard(name, d.version));

    const input = el("textarea", { id: "start-input", spellcheck: "false", value: "{}" });
    const idInput = el("input", { id: "start-id", placeholder: "request id (optional)", size: 36 });
    const msg = el("span", { class: "error", id: "start-error" });
    const start = async () => {
      msg.textContent = "";
      const q = idInput.value.trim() ? "?id=" + enc(idInput.value.trim()) : "";
      try {
        const acc = await api("/workflows/" + enc(name) + "/requests" + q, { method: "POST", headers: { "Content-Type": "application/json" }, body: input.value });
        location.hash = "#/requests/" + enc(acc.id);
      } catch (err) {
        msg.textContent = err.message;
      }
    };
    main.append(el("section", { class: "card" },
      el("h2", { text: "Start a request" }),
      el("p", { class: "muted", text: "Input: a JSON object, the output of __start__." }),
      input,
      el("div", { class: "row" }, idInput, el("button", { id: "start-button", onclick: start, text: "Start" }), msg)));

    main.append(el("h2", { text: "Definition" }));
    const table = el("table", {}, el("tr", {}, ["graph", "step", "depends", "queue / task", "retry", "timeout"].map((h) => el("th", { text: h }))));
    const rows = (graph, steps) => {
      for (const s of steps) {
        table.append(el("tr", {},
          el("td", { text: graph }), el("td", { text: s.name }), el("td", { text: (s.depends || []).join(", ") }),
          el("td", { text: s.task ? "fan-out: " + s.task : s.queue }),
          el("td", { text: s.retry ? `${s.retry.maxAttempts}× ${s.retry.initial}…${s.retry.max}` : "" }),
          el("td", { text: s.timeout || "" })));
      }
    };
    rows(name, d.definition.steps);
    for (const t of d.definition.tasks || []) rows(`${t.name} (each ${t.itemKey} of ${t.itemListKey})`, t.steps);
    main.append(table);
  }

  // ---- Requests list ---------------------------------------------------------------

  async function requestsPage(params) {
    const wf = params.get("workflow") || "";
    const status = params.get("status") || "";
    main.replaceChildren(el("h1", { text: "Requests" }));
    const wfSel = el("select", { id: "filter-workflow" }, el("option", { value: "", text: "all workflows" }));
    const stSel = el("select", { id: "filter-status" }, ["", "running", "succeeded", "failed", "cancelled"].map((s) => el("option", { value: s, text: s || "any status" })));
    const apply = () => {
      const q = new URLSearchParams();
      if (wfSel.value) q.set("workflow", wfSel.value);
      if (stSel.value) q.set("status", stSel.value);
      location.hash = "#/requests" + (q.toString() ? "?" + q : "");
    };
    wfSel.addEventListener("change", apply);
    stSel.addEventListener("change", apply);
    main.append(el("div", { class: "row card" }, el("label", {}, "Workflow ", wfSel), el("label", {}, "Status ", stSel),
      el("button", { class: "secondary", onclick: () => route(), text: "Refresh" })));
    try {
      const list = await api("/workflows");
      for (const w of list.workflows) wfSel.append(el("option", { value: w.name, text: w.name }));
    } catch (err) { /* the list still works without the filter's names */ }
    wfSel.value = wf;
    stSel.value = status;

    const table = el("table", { id: "requests" }, el("tr", {}, ["id", "workflow", "status", "created", "updated", "error"].map((h) => el("th", { text: h }))));
    main.append(table);
    const more = el("button", { class: "secondary", text: "More" });
    main.append(el("p", {}, more));
    let cursor = "";
    const load = async () => {
      const q = new URLSearchParams({ limit: "50" });
      if (wf) q.set("workflow", wf);
      if (status) q.set("status", status);
      if (cursor) q.set("cursor", cursor);
      let page;
      try {
        page = await api("/requests?" + q);
      } catch (err) {
        return showError(main, err);
      }
      for (const r of page.requests) {
        table.append(el("tr", { "data-request": r.id },
          el("td", {}, el("a", { href: "#/requests/" + enc(r.id), text: r.id })),
          el("td", { text: r.workflow }), el("td", {}, badge(r.status)),
          el("td", { text: fmtTime(r.created) }), el("td", { text: fmtTime(r.updated) }),
          el("td", { class: "error", text: r.error || "" })));
      }
      if (!page.requests.length && !cursor) table.append(el("tr", {}, el("td", { colspan: 6, class: "muted", text: "No request matches." })));
      cursor = page.nextCursor || "";
      more.hidden = !cursor;
    };
    more.addEventListener("click", load);
    await load();
  }

  // ---- Request page ----------------------------------------------------------------

  async function requestPage(id) {
    main.replaceChildren(el("h1", {}, "Request ", el("span", { id: "request-id", text: id })));
    const head = el("section", { class: "card", id: "request-head" });
    const dagBox = el("div", { class: "dag", id: "request-dag" });
    const timeline = el("section", { id: "timeline" });
    const steps = el("section", { id: "steps" });
    const instances = el("section", { id: "instances" });
    const payloads = el("section", { id: "payloads" });
    const attempts = el("section", { id: "attempts" });
    const live = el("span", { class: "live", id: "live", text: "connecting" });
    main.append(head, el("div", { class: "row" }, el("h2", { text: "Graph" }), live), dagBox, timeline, attempts, steps, instances, payloads);
    let attemptsFor = ""; // the status the attempts were last shown for

    let update = null;
    let order = []; // step node ids in DAG order, for the timeline
    let dagFor = "";
    let closed = false;
    let source = null;
    let retry = null;
    teardown.push(() => { closed = true; if (source) source.ctl.abort(); clearTimeout(retry); });

    const render = async (st) => {
      if (dagFor !== st.workflow) {
        dagFor = st.workflow;
        try {
          const d = await api("/workflows/" + enc(st.workflow));
          update = drawDAG(dagBox, d.dag);
          order = d.dag.nodes.filter((n) => n.kind === "step" || n.kind === "fanout").map((n) => n.id);
          dagBox.dataset.nodes = String(d.dag.nodes.filter((n) => n.kind !== "fanout").length);
        } catch (err) {
          showError(dagBox, err);
        }
      }
      if (update) update(st.nodes);
      renderHead(head, st);
      renderTimeline(timeline, st, order);
      if (attemptsFor !== st.status) {
        attemptsFor = st.status;
        renderAttempts(attempts, st);
      }
      renderSteps(steps, st);
      renderInstances(instances, st);
      renderPayloads(payloads, st);
      main.dataset.status = st.status;
    };

    const connect = () => {
      if (closed) return;
      let ended = false;
      source = streamEvents("/requests/" + enc(id) + "/events", (name, data) => {
        if (name === "status") {
          live.textContent = "live";
          live.classList.add("on");
          render(JSON.parse(data));
        } else if (name === "end" || name === "gone") {
          ended = true;
          live.textContent = name === "end" ? "finished" : "forgotten";
          live.classList.remove("on");
        }
      });
      source.done.then(() => {
        if (ended || closed) return;
        retry = setTimeout(connect, 1000); // the server went away: try again
      }, (err) => {
        if (closed || err.name === "AbortError" || err.status === 401) return;
        live.classList.remove("on");
        live.textContent = err.status === 404 ? "waiting for the request to appear" : "disconnected";
        if (err.status === 404) head.replaceChildren(el("p", { class: "muted", text: err.message }));
        retry = setTimeout(connect, 1000);
      });
    };
    connect();
  }

  function renderHead(head, st) {
    const dl = el("dl", { class: "meta" },
      el("dt", { text: "status" }), el("dd", { id: "request-status" }, badge(st.status)),
      el("dt", { text: "workflow" }), el("dd", {}, el("a", { href: "#/workflows/" + enc(st.workflow), text: st.workflow })),
      el("dt", { text: "version" }), el("dd", { id: "request-version", text: st.version ? "version " + st.version : "" }),
      el("dt", { text: "started" }), el("dd", { text: fmtTime(st.created) }),
      el("dt", { text: st.finished ? "finished" : "updated" }), el("dd", { text: fmtTime(st.finished || st.updated) }),
      el("dt", { text: "took" }), el("dd", { text: fmtDuration(new Date(st.finished || Date.now()) - new Date(st.created)) }),
      el("dt", { text: "home partition" }), el("dd", { text: st.partition }));
    const parts = [dl];
    if (st.error) {
      parts.push(el("div", { class: "error", id: "request-error" },
        el("strong", { text: "Error" + (st.error.step ? " in " + st.error.step : "") + (st.error.attempt ? " (attempt " + st.error.attempt + ")" : "") + ": " }),
        el("span", { text: st.error.message })));
    }
    if (st.status === "running") {
      const btn = el("button", { class: "danger", id: "cancel-button", text: "Cancel" });
      btn.addEventListener("click", async () => {
        btn.disabled = true;
        try {
          await api("/requests/" + enc(st.id) + "/cancel", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ reason: "cancelled from the web UI" }) });
        } catch (err) {
          btn.after(el("span", { class: "error", text: " " + err.message }));
        }
      });
      parts.push(el("p", {}, btn));
    }
    if (st.status === "failed" || st.status === "cancelled") {
      const btn = el("button", { id: "retry-button", text: "Retry" });
      btn.title = "Run again only what did not succeed; outputs of succeeded steps are kept";
      btn.addEventListener("click", async () => {
        btn.disabled = true;
        try {
          await api("/requests/" + enc(st.id) + "/retry", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
        } catch (err) {
          btn.after(el("span", { class: "error", text: " " + err.message }));
        }
      });
      parts.push(el("p", {}, btn));
    }
    head.replaceChildren(...parts);
  }

  // renderTimeline draws one bar per step node of the DAG between its first
  // start and last end, on the request's time axis; fan-outs show progress.
  function renderTimeline(box, st, order) {
    const t0 = new Date(st.created).getTime();
    const t1 = st.finished ? new Date(st.finished).getTime() : Date.now();
    const span = Math.max(1, t1 - t0);
    const table = el("table", { class: "timeline" }, el("tr", {}, ["step", "status", "progress", "attempts", "time", ""].map((h) => el("th", { text: h }))));
    const ids = Object.keys(st.nodes || {});
    ids.sort((a, b) => order.indexOf(a) - order.indexOf(b));
    for (const id of ids) {
      const p = st.nodes[id];
      const depth = id.split("/").length - 1;
      let progress = "";
      if (p.children) progress = fraction(p.childrenDone, p.children) + " done";
      else if (p.total > 1) progress = fraction(p.succeeded, p.total);
      const track = el("div", { class: "track" });
      if (p.started) {
        const s = new Date(p.started).getTime();
        const e = p.ended && p.status !== "running" ? new Date(p.ended).getTime() : t1;
        const bar = el("div", { class: "bar " + safeClass(p.status) });
        bar.style.left = (100 * (s - t0) / span).toFixed(2) + "%";
        bar.style.width = Math.max(0.3, 100 * (e - s) / span).toFixed(2) + "%";
        track.append(bar);
      }
      const took = p.started && p.ended ? fmtDuration(new Date(p.ended) - new Date(p.started)) : "";
      const name = el("td", { text: id.split("/").pop() });
      name.style.paddingLeft = (8 + depth * 16) + "px";
      table.append(el("tr", { "data-node": id },
        name, el("td", {}, badge(p.status)), el("td", { class: "num", text: progress }),
        el("td", { class: "num", text: p.maxAttempt || "" }), el("td", { class: "num", text: took }),
        el("td", { class: "bar-cell" }, track)));
      if (p.error) table.append(el("tr", {}, el("td", {}), el("td", { colspan: 5, class: "error", text: p.error })));
    }
    box.replaceChildren(el("h2", { text: "Timeline" }), table);
  }

  // renderAttempts lists every attempt of every step (the first page of
  // GET .../history) with the worker that answered it, its outcome and a
  // bar on the request's time axis. A running request loads it on demand
  // only: a wide fan-out's history is long, and status events are many.
  function renderAttempts(box, st) {
    const title = el("h2", { text: "Attempts" });
    const load = async () => {
      let h;
      try {
        h = await api("/requests/" + enc(st.id) + "/history?limit=200");
      } catch (err) {
        showError(box, err);
        return;
      }
      const t0 = new Date(st.created).getTime();
      const t1 = Math.max(t0 + 1, ...h.attempts.map((a) => new Date(a.ended || Date.now()).getTime()));
      const table = el("table", { class: "timeline" }, el("tr", {}, ["step", "attempt", "outcome", "worker", "started", "took", "output", ""].map((x) => el("th", { text: x }))));
      for (const a of h.attempts) {
        const track = el("div", { class: "track" });
        if (a.started) {
          const s = new Date(a.started).getTime();
          const e = a.ended ? new Date(a.ended).getTime() : t1;
          const bar = el("div", { class: "bar " + safeClass(a.outcome) });
          bar.style.left = (100 * (s - t0) / (t1 - t0)).toFixed(2) + "%";
          bar.style.width = Math.max(0.3, 100 * (e - s) / (t1 - t0)).toFixed(2) + "%";
          track.append(bar);
        }
        table.append(el("tr", { "data-attempt": a.step + "#" + a.attempt },
          el("td", { text: a.step }), el("td", { class: "num", text: a.attempt }), el("td", {}, badge(a.outcome)),
          el("td", { text: a.worker || "" }), el("td", { text: fmtTime(a.started) }),
          el("td", { class: "num", text: a.started && a.ended ? fmtDuration(new Date(a.ended) - new Date(a.started)) : "" }),
          el("td", { class: "num", text: a.outputBytes ? numberFmt.format(a.outputBytes) + " B" : "" }),
          el("td", { class: "bar-cell" }, track)));
        if (a.error) table.append(el("tr", {}, el("td", {}), el("td", { colspan: 7, class: "error", text: a.error })));
      }
      const notes = [];
      if (h.total > h.attempts.length) notes.push(`first ${h.attempts.length} of ${numberFmt.format(h.total)} attempts shown`);
      if (h.dropped) notes.push(`${numberFmt.format(h.dropped)} earlier attempts not kept`);
      box.replaceChildren(title, table, ...notes.map((n) => el("p", { class: "muted", text: n })));
    };
    if (st.status === "running") {
      const btn = el("button", { id: "attempts-button", text: "Show attempts" });
      btn.addEventListener("click", load);
      box.replaceChildren(title, el("p", {}, btn));
    } else {
      box.replaceChildren(title, el("p", { class: "muted", text: "loading" }));
      load();
    }
  }

  function stepRows(steps) {
    return steps.map((s) => el("tr", { "data-step": s.path },
      el("td", { text: s.path }), el("td", {}, badge(s.status)),
      el("td", { class: "num", text: s.attempt ? s.attempt + (s.maxAttempts ? " of " + s.maxAttempts : "") : "" }),
      el("td", { text: fmtTime(s.started) }), el("td", { class: "num", text: fmtDuration(s.durationMs) }),
      el("td", { class: "num", text: s.children ? fraction(s.done || 0, s.children) : "" }),
      el("td", { class: "error", text: (s.error || "") + (s.retryAt ? " (retry at " + fmtTime(s.retryAt) + ")" : "") }),
      el("td", {}, s.output ? payloadLink(s.output, "output") : "")));
  }

  const stepHead = () => el("tr", {}, ["step", "status", "attempt", "started", "took", "children", "last error", "output"].map((h) => el("th", { text: h })));

  function renderSteps(box, st) {
    box.replaceChildren(el("h2", { text: "Steps" }), el("table", {}, stepHead(), stepRows(st.steps || [])));
  }

  function renderInstances(box, st) {
    if (!st.instancesTotal) {
      box.replaceChildren();
      return;
    }
    const parts = [el("h2", { text: `Fan-out children (${numberFmt.format(st.instancesTotal)} live` + (st.instances.length < st.instancesTotal ? `, first ${st.instances.length} shown)` : ")") })];
    const table = el("table", {}, stepHead());
    for (const inst of st.instances) {
      table.append(el("tr", { class: "instance", "data-instance": inst.path },
        el("td", { colspan: 8 }, el("strong", { text: inst.path }), " ", badge(inst.status), el("span", { class: "muted", text: " task " + inst.task + " · id " + inst.id }))));
      table.append(...stepRows(inst.steps || []));
    }
    parts.push(table);
    box.replaceChildren(...parts);
  }

  // payloadLink opens a payload in a new tab: fetched with the token (a
  // plain link could not send it) and shown from a blob.
  function payloadLink(p, label) {
    const a = el("a", { href: p.url.replace(/^\//, ""), target: "_blank", rel: "noopener", text: label + " (" + numberFmt.format(p.size) + " B" + (p.truncated ? ", truncated" : "") + ")" });
    a.addEventListener("click", async (ev) => {
      if (!token) return;
      ev.preventDefault();
      const resp = await fetch(a.getAttribute("href"), { headers: authHeaders() });
      const blob = new Blob([await resp.text()], { type: "application/json" });
      window.open(URL.createObjectURL(blob), "_blank", "noopener");
    });
    return a;
  }

  // payloadText shows a payload as indented JSON text (or the cut preview).
  function payloadText(p) {
    if (p.truncated) return p.preview + "\n… (" + numberFmt.format(p.size) + " bytes in all)";
    try {
      return JSON.stringify(p.value, null, 2);
    } catch (e) {
      return String(p.value);
    }
  }

  function renderPayloads(box, st) {
    const parts = [el("h2", { text: "Payloads" })];
    const add = (title, p, id) => {
      if (!p) return;
      parts.push(el("div", { class: "card payload", "data-payload": id },
        el("div", { class: "row" }, el("strong", { text: title }), payloadLink(p, "raw")),
        el("pre", { text: payloadText(p) })));
    };
    add("Request input", st.input, "input");
    for (const s of st.steps || []) add("Output of " + s.path, s.output, "step:" + s.path);
    add("Request output", st.output, "output");
    box.replaceChildren(...parts);
  }

  window.addEventListener("hashchange", route);
  api("/auth").then(showIdentity, () => { /* the sign-in form is shown */ }).then(() => {
    if (!document.getElementById("sign-in")) route();
  });
})();
