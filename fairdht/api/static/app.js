// fairdht dashboard: plain JavaScript over the node's JSON API and /api/events stream.
// Every value from the network goes into the page with textContent, never parsed as HTML:
// server names, maps and notes are written by strangers.
"use strict";

const $ = (selector) => document.querySelector(selector);

function el(tag, attrs, ...kids) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined) continue;
    node.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return node;
}

async function api(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  let doc;
  try {
    doc = await response.json();
  } catch (err) {
    doc = { error: response.statusText };
  }
  if (!response.ok) throw new Error(doc.error || response.statusText);
  return doc;
}

const short = (hex, n = 12) => (hex ? hex.slice(0, n) + "…" : "–");
const when = (t) => new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19);
const enc = encodeURIComponent;

function showError(err) {
  const box = $("#error");
  box.textContent = err ? String(err.message || err) : "";
  box.hidden = !err;
  if (err) setTimeout(() => (box.hidden = true), 6000);
}

const state = {
  network: "demo",
  page: "servers",
  servers: new Map(), // leaf -> server object (as in fairdht servers --json)
  karma: new Map(), // author -> {score, color}
  summary: null,
  sort: { key: "players", dir: -1 },
  flash: new Set(),
  source: null,
  historyLoaded: false,
  netTimer: null,
  lastRpc: null,
};

// ---------------------------------------------------------------- server browser

function karmaBadge(k) {
  if (!k) return el("span", { class: "karma unknown", text: "…" });
  const sign = k.score > 0 ? "+" : "";
  return el("span", { class: `karma ${k.color}`, text: `${sign}${k.score.toFixed(2)}`, title: k.color });
}

// docs/serverlist.md §1.11: true = the author answered a probe at this address,
// false = probed and not proven (maybe a fake entry naming someone else), null = not probed yet.
function reachMark(reachable) {
  if (reachable === true) return el("td", { class: "up yes", text: "●", title: "reachable: answered a probe signed by its key" });
  if (reachable === false) return el("td", { class: "up no", text: "✗", title: "unproven: did not answer a probe at this address" });
  return el("td", { class: "up unknown", text: "?", title: "not probed yet" });
}

function sortValue(s, key) {
  if (key === "karma") return (state.karma.get(s.author) || { score: 0 }).score;
  if (key === "verified") return s.verified ? 1 : 0;
  if (key === "reachable") return s.reachable === true ? 2 : s.reachable === null || s.reachable === undefined ? 1 : 0;
  const v = s[key];
  return typeof v === "string" ? v.toLowerCase() : v;
}

function visibleServers() {
  const words = $("#filter").value.toLowerCase().split(/\s+/).filter(Boolean);
  const onlyVerified = $("#verified-only").checked;
  const rows = [...state.servers.values()].filter((s) => {
    if (onlyVerified && !s.verified) return false;
    const hay = [s.name, s.map, s.mode, s.address, s.game_version, ...s.tags].join(" ").toLowerCase();
    return words.every((w) => hay.includes(w));
  });
  const { key, dir } = state.sort;
  rows.sort((a, b) => {
    const x = sortValue(a, key);
    const y = sortValue(b, key);
    if (x < y) return -dir;
    if (x > y) return dir;
    return a.name.localeCompare(b.name);
  });
  return rows;
}

function renderServers() {
  const rows = visibleServers();
  const body = $("#servers tbody");
  body.replaceChildren(
    ...rows.map((s) => {
      const k = state.karma.get(s.author);
      const players = s.max_players ? `${s.players}/${s.max_players}` : String(s.players);
      const tr = el(
        "tr",
        {
          "data-leaf": s.leaf,
          "data-author": s.author,
          class: [k ? `k-${k.color}` : "", s.verified ? "verified" : "", state.flash.has(s.leaf) ? "flash" : ""].join(" "),
        },
        el("td", { class: "ok", text: s.verified ? "✓" : "", title: s.verified ? "in the accepted checkpoint" : "not verified" }),
        reachMark(s.reachable),
        el("td", {}, el("span", { class: "name", text: s.name }), ...s.tags.map((t) => el("span", { class: "tag", text: t }))),
        el("td", { class: "mono", text: s.address }),
        el("td", { text: s.mode }),
        el("td", { text: s.map }),
        el("td", { class: "num players", text: players }),
        el("td", { text: s.game_version }),
        el("td", { class: "num" }, karmaBadge(k)),
        el("td", { class: "mono" }, el("a", { href: `#karma/${s.author}`, text: short(s.author, 10), title: s.author })),
      );
      return tr;
    }),
  );
  state.flash.clear();
  $("#servers-empty").hidden = state.servers.size > 0;
  const sum = state.summary;
  const parts = [`${rows.length} of ${state.servers.size} servers`];
  if (sum) {
    parts.push(sum.checkpoint_version ? `checkpoint v${sum.checkpoint_version}` : "no checkpoint");
    parts.push(`root ${short(sum.state_root, 16)}`);
    if (sum.closed) parts.push("closed by a rollback");
    if (sum.quarantined) parts.push(`${sum.quarantined} quarantined`);
  }
  $("#server-summary").textContent = parts.join(" · ");
  $("#server-summary").dataset.count = String(state.servers.size);
  for (const th of document.querySelectorAll("#servers th")) {
    th.classList.toggle("sorted", th.dataset.sort === state.sort.key);
    th.dataset.dir = state.sort.dir > 0 ? "asc" : "desc";
  }
}

async function loadServers() {
  const doc = await api(`/api/servers?network=${enc(state.network)}`);
  state.servers = new Map(doc.servers.map((s) => [s.leaf, s]));
  state.summary = doc;
  renderServers();
  loadKarma().catch(showError);
}

async function loadKarma() {
  if (state.servers.size === 0) return;
  const doc = await api(`/api/servers?network=${enc(state.network)}&karma=1`);
  for (const s of doc.servers) if (s.karma) state.karma.set(s.author, s.karma);
  renderServers();
}

async function karmaOf(author) {
  if (state.karma.has(author)) return;
  const doc = await api(`/api/karma/${author}?network=${enc(state.network)}&explain=0`);
  state.karma.set(author, { score: doc.score, color: doc.color });
  renderServers();
}

// ---------------------------------------------------------------- live events

function onServerEvent(event) {
  const msg = JSON.parse(event.data);
  const d = msg.data;
  if (event.type === "server.added" || event.type === "server.updated") {
    if (d.server) {
      state.servers.set(d.leaf, d.server);
      state.flash.add(d.leaf);
      karmaOf(d.author).catch(() => {});
    }
  } else {
    state.servers.delete(d.leaf);
  }
  renderServers();
}

let historyReload = null;
function onCommitEvent(event) {
  const msg = JSON.parse(event.data);
  if (state.summary && msg.data.root) {
    state.summary.state_root = msg.data.root;
    if (msg.data.kind !== "sync") state.summary.checkpoint_version = msg.data.version;
  }
  if (state.historyLoaded && !historyReload) {
    historyReload = setTimeout(() => {
      historyReload = null;
      loadHistory().catch(showError);
    }, 300);
  }
}

function connectEvents() {
  if (state.source) state.source.close();
  const source = new EventSource(`/api/events?network=${enc(state.network)}`);
  state.source = source;
  const live = $("#live");
  source.onopen = () => {
    live.className = "live on";
    live.textContent = "live";
  };
  source.onerror = () => {
    live.className = "live off";
    live.textContent = "reconnecting";
  };
  for (const type of ["server.added", "server.updated", "server.expired", "server.quarantined"]) {
    source.addEventListener(type, onServerEvent);
  }
  for (const type of ["commit", "checkpoint", "rollback"]) source.addEventListener(type, onCommitEvent);
  source.addEventListener("karma.changed", (event) => {
    const d = JSON.parse(event.data).data;
    state.karma.set(d.subject, { score: d.score, color: d.color });
    renderServers();
  });
  source.addEventListener("overflow", () => {
    // This page fell behind; start over from a fresh list.
    source.close();
    setTimeout(() => {
      connectEvents();
      loadServers().catch(showError);
    }, 1000);
  });
}

// ---------------------------------------------------------------- history

const KIND_MARK = { sync: "●", checkpoint: "⚑", rollback: "↶" };

function countsText(c) {
  const n = c.counts;
  return `+${n.added} ~${n.changed} −${n.removed} !${n.quarantined}` + (n.withdrawn ? ` ×${n.withdrawn}` : "");
}

async function loadHistory() {
  const [log, cps, graph] = await Promise.all([
    api(`/api/history?network=${enc(state.network)}&limit=200`),
    api(`/api/checkpoints?network=${enc(state.network)}`),
    api(`/api/history/graph?network=${enc(state.network)}&limit=200`),
  ]);
  state.historyLoaded = true;
  drawGraph(graph);
  const p = cps.policy;
  const last = cps.checkpoints[cps.checkpoints.length - 1];
  const bits = [last ? `latest accepted: ${last.kind} v${last.version}` : "no accepted checkpoint"];
  if (p.root) bits.push(`root ${short(p.root, 16)}`, `${p.members} members`);
  if (p.closed) bits.push(`closed by a rollback until ${when(p.closed_until)}`);
  bits.push(`${cps.checkpoints.filter((c) => c.kind === "checkpoint").length} checkpoints, ` +
    `${cps.checkpoints.filter((c) => c.kind === "rollback").length} rollbacks applied`);
  $("#policy").textContent = bits.join(" · ");
  const list = $("#timeline");
  list.replaceChildren(
    ...log.commits.map((c) =>
      el(
        "li",
        { class: `commit ${c.kind}`, "data-kind": c.kind, "data-id": c.id, tabindex: 0, onclick: () => showCommit(c.id), onkeydown: (e) => e.key === "Enter" && showCommit(c.id) },
        el("span", { class: "mark", text: KIND_MARK[c.kind] || "●" }),
        el("span", { class: "when", text: when(c.time) }),
        el("span", { class: "kind", text: c.kind === "sync" ? `#${c.n}` : `${c.kind} v${c.version}` }),
        el("span", { class: "counts", text: countsText(c) }),
        el("span", { class: "mono muted", text: short(c.id, 10) }),
        c.note ? el("span", { class: "note", text: c.note }) : null,
      ),
    ),
  );
  if (!log.commits.length) list.replaceChildren(el("li", { class: "muted", text: "No history yet: the node has not seen this network change." }));
}

function replaceKids(node, ...kids) {
  node.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined));
}

async function showCommit(id) {
  const c = await api(`/api/history/${id}`).catch(showError);
  if (!c) return;
  for (const li of document.querySelectorAll("#timeline li")) li.classList.toggle("selected", li.dataset.id === id);
  const keyList = (title, keys) =>
    el("div", { class: "keys" }, el("h4", { text: `${title} (${keys.length})` }),
      keys.length ? el("ul", {}, keys.map((k) => el("li", { class: "mono" }, el("a", { href: `#karma/${k}`, text: k })))) : el("p", { class: "muted", text: "none" }));
  const rows = c.entries.map((e) =>
    el("tr", { class: `op-${e.op}` },
      el("td", { text: e.op }), el("td", { class: "mono", text: e.address }), el("td", { text: e.name }),
      el("td", { class: "mono", text: short(e.author, 10), title: e.author }), el("td", { class: "num", text: e.seq })));
  $("#commit").className = "detail";
  replaceKids($("#commit"),
    el("h3", { text: `${c.kind} commit #${c.n}` }),
    el("dl", {},
      el("dt", { text: "id" }), el("dd", { class: "mono", text: c.id }),
      el("dt", { text: "parent" }), el("dd", { class: "mono", text: c.parent || "–" }),
      el("dt", { text: "time" }), el("dd", { text: when(c.time) }),
      el("dt", { text: "state root" }), el("dd", { class: "mono", text: c.root }),
      el("dt", { text: "control version" }), el("dd", { text: c.version }),
      c.note ? [el("dt", { text: "note" }), el("dd", { text: c.note })] : null,
      c.control ? [el("dt", { text: "signed" }), el("dd", { text: `${c.control.signers.length} maintainer key(s); expires ${when(c.control.expires)}` })] : null),
    c.control ? keyList("Signed by", c.control.signers) : null,
    keyList("Announcement keys in this diff", c.authors),
    el("h4", { text: `Diff (${countsText(c)})` }),
    rows.length ? el("table", { class: "grid small" },
      el("thead", {}, el("tr", {}, ["op", "address", "name", "author", "seq"].map((h) => el("th", { text: h })))),
      el("tbody", {}, rows)) : el("p", { class: "muted", text: "no entries: the list did not change" }),
  );
}

// ---------------------------------------------------------------- history graph
// The spine of checkpoints and rollbacks on the top lane (the same ids on every node),
// this node's local commits on the lane below, rollbacks drawn as reverts to the
// checkpoint they return to, and commits that quarantined a flood ringed in red.
// Click two points to see the diff between them and the keys that made it.

const SVG = "http://www.w3.org/2000/svg";
state.picks = [];

function svg(tag, attrs, ...kids) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (name === "text") node.textContent = String(value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, String(value));
  }
  for (const kid of kids.flat()) if (kid) node.append(kid);
  return node;
}

function pointLabel(n) {
  return n.local ? `#${n.n}` : `${n.kind} v${n.version}`;
}

function drawGraph(graph) {
  const box = $("#history-graph");
  const nodes = graph.nodes;
  if (!nodes.length) {
    box.replaceChildren(el("p", { class: "muted", text: "No commits yet." }));
    return;
  }
  const step = 56;
  const width = Math.max(420, 60 + step * nodes.length);
  const lane = { spine: 62, local: 122 };
  const at = new Map();
  nodes.forEach((n, i) => at.set(n.id, { x: 30 + i * step, y: n.local ? lane.local : lane.spine, n }));
  const edges = graph.edges.filter((e) => at.has(e.from) && at.has(e.to)).map((e) => {
    const a = at.get(e.from);
    const b = at.get(e.to);
    if (e.kind === "revert") {
      return svg("path", { class: "edge revert", "data-from": e.from, "data-to": e.to,
        d: `M ${a.x} ${a.y - 10} C ${a.x} ${a.y - 32}, ${b.x} ${b.y - 32}, ${b.x} ${b.y - 10}`,
        "marker-end": "url(#arrow)" }, svg("title", { text: `rollback returns to ${pointLabel(b.n)}` }));
    }
    return svg("line", { class: `edge ${e.kind}`, "data-from": e.from, "data-to": e.to, x1: a.x, y1: a.y, x2: b.x, y2: b.y });
  });
  const dots = nodes.map((n) => {
    const p = at.get(n.id);
    const classes = ["gnode", n.kind, n.local ? "local" : "spine", n.flood ? "flood" : "", state.picks.includes(n.id) ? "picked" : ""].join(" ");
    const shape = n.kind === "checkpoint"
      ? svg("rect", { x: p.x - 9, y: p.y - 9, width: 18, height: 18, rx: 3 })
      : svg("circle", { cx: p.x, cy: p.y, r: n.local ? 7 : 10 });
    const tip = `${pointLabel(n)} · ${when(n.time)} · ${countsText(n)}` +
      (n.signers.length ? ` · signed by ${n.signers.length} key(s)` : "") + (n.note ? ` · ${n.note}` : "");
    return svg("g", { class: classes, "data-id": n.id, "data-kind": n.kind, tabindex: 0,
      onclick: () => pickPoint(n.id), onkeydown: (e) => e.key === "Enter" && pickPoint(n.id) },
      svg("title", { text: tip }), shape,
      n.local ? null : svg("text", { x: p.x, y: p.y - 16, "text-anchor": "middle", text: `v${n.version}` }),
      n.kind === "rollback" ? svg("text", { x: p.x, y: p.y + 4, "text-anchor": "middle", class: "glyph", text: "↶" }) : null);
  });
  const defs = svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 8, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
    svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" })));
  const laneLabels = [svg("text", { x: 4, y: 12, class: "lane", text: "shared spine: checkpoints ■, rollbacks ↶ (dashed: the revert)" }),
    svg("text", { x: 4, y: lane.local + 28, class: "lane", text: "this node's local commits (red ring: quarantined a flood)" })];
  box.replaceChildren(svg("svg", { id: "graph-svg", width, height: 160, viewBox: `0 0 ${width} 160`, role: "img", "aria-label": "history graph" },
    defs, laneLabels, edges, dots));
  const size = graph.size;
  $("#graph-size").textContent = `${size.spine_commits} spine commits, ${size.local_commits} local commits, ${size.entries} entries kept`;
}

function pickPoint(id) {
  state.picks = [...state.picks.filter((x) => x !== id), id].slice(-2);
  for (const g of document.querySelectorAll("#history-graph .gnode")) {
    g.classList.toggle("picked", state.picks.includes(g.dataset.id));
    g.classList.toggle("pick-a", g.dataset.id === state.picks[0]);
    g.classList.toggle("pick-b", g.dataset.id === state.picks[1]);
  }
  showCommit(id);
  if (state.picks.length === 2) showDiff(state.picks[0], state.picks[1]).catch(showError);
}

async function showDiff(a, b) {
  const d = await api(`/api/history/diff?network=${enc(state.network)}&from=${a}&to=${b}`);
  const n = d.counts;
  const rows = d.changes.map((e) =>
    el("tr", { class: `op-${e.op}` },
      el("td", { text: e.op }), el("td", { class: "mono", text: e.address }), el("td", { text: e.name }),
      el("td", { text: e.game_version }),
      el("td", { class: "mono" }, el("a", { href: `#karma/${e.author}`, text: short(e.author, 12), title: e.author })),
      el("td", { text: e.at ? when(e.at) : "–" })));
  const authors = Object.entries(d.authors).map(([k, ops]) =>
    el("li", { class: "mono" }, el("a", { href: `#karma/${k}`, text: short(k, 16), title: k }),
      ` ${Object.entries(ops).map(([op, c]) => `${op} ${c}`).join(", ")}`));
  const controls = d.controls.map((c) =>
    el("li", {}, `${c.kind} v${c.version} signed by `, c.signers.map((k) => el("span", { class: "mono", text: short(k, 10) + " ", title: k }))));
  $("#history-diff").className = "detail";
  $("#history-diff").replaceChildren(
    el("h3", { text: `Diff ${pointLabel(d.from)} → ${pointLabel(d.to)}` }),
    el("p", { class: "counts", text: `+${n.added} added · −${n.removed} removed · ~${n.changed} changed · !${n.quarantined} quarantined` }),
    rows.length ? el("table", { class: "grid small" },
      el("thead", {}, el("tr", {}, ["op", "address", "name", "version", "author", "signed at"].map((h) => el("th", { text: h })))),
      el("tbody", {}, rows)) : el("p", { class: "muted", text: "the two points hold the same servers" }),
    el("h4", { text: `Keys that caused these changes (${authors.length})` }),
    authors.length ? el("ul", { class: "keys" }, authors) : el("p", { class: "muted", text: "none" }),
    ...(controls.length ? [el("h4", { text: "Checkpoints and rollbacks in between" }), el("ul", {}, controls)] : []),
  );
}

async function prepare(action) {
  const picked = state.picks[state.picks.length - 1];
  const target = action === "rollback" && picked ? `&target=${picked}` : "";
  const p = await api(`/api/history/prepare?network=${enc(state.network)}&action=${action}${target}`);
  $("#prepare-command").textContent = p.command;
  $("#prepare-note").textContent = `${p.note}. This node lists ${p.listed} servers, holds back ${p.quarantined}.` +
    (p.target ? ` Rollback target: checkpoint v${p.target.version} (${p.target.count} members).` : "");
  $("#history-prepare").hidden = false;
}

// ---------------------------------------------------------------- karma

async function showKarma(subject) {
  $("#karma-subject").value = subject;
  const out = $("#karma-result");
  out.replaceChildren(el("p", { class: "muted", text: "reading votes…" }));
  const k = await api(`/api/karma/${enc(subject)}?network=${enc(state.network)}`).catch((e) => {
    out.replaceChildren(el("p", { class: "error-text", text: e.message }));
  });
  if (!k) return;
  state.karma.set(k.subject, { score: k.score, color: k.color });
  out.replaceChildren(
    el("div", { class: `score ${k.color}` }, el("span", { class: "big", text: (k.score > 0 ? "+" : "") + k.score.toFixed(4) }), el("span", { text: ` ${k.color}` })),
    el("p", { class: "muted", text: `${k.votes_counted} of ${k.votes.length} votes counted in this node's view (reader ${short(k.reader)}; ${k.records_fetched} records read)` }),
    el("table", { class: "grid small" },
      el("thead", {}, el("tr", {}, ["voter", "action", "context", "issued", "voter's trust", "contribution", "status"].map((h) => el("th", { text: h })))),
      el("tbody", {}, k.votes.map((v) =>
        el("tr", { class: `status-${v.status}` },
          el("td", { class: "mono", text: short(v.voter, 16), title: v.voter }), el("td", { text: v.action }),
          el("td", { text: v.context }), el("td", { text: when(v.issued_at) }),
          el("td", { class: "num", text: v.weight.toFixed(4) }),
          el("td", { class: "num", text: (v.contribution > 0 ? "+" : "") + v.contribution.toFixed(4) }),
          el("td", { text: v.status.replace(/_/g, " ") }))))),
  );
}

// ---------------------------------------------------------------- referees

async function showReferees() {
  const hash = $("#code-hash").value.trim();
  const players = $("#players").value.replace(/\s+/g, "");
  const count = $("#count").value || "1";
  const out = $("#referee-result");
  const query = [`network=${enc(state.network)}`, `count=${enc(count)}`, "explain=1"];
  if (players) query.push(`players=${enc(players)}`);
  const doc = await api(`/api/referees/${enc(hash)}?${query.join("&")}`).catch((e) => {
    out.replaceChildren(el("p", { class: "error-text", text: e.message }));
  });
  if (!doc) return;
  out.replaceChildren(
    el("p", { class: "muted", text: `${doc.referees.length} chosen of ${doc.candidates.length} offers · seed ${short(doc.seed, 16)}` }),
    el("table", { class: "grid small" },
      el("thead", {}, el("tr", {}, ["rank", "referee", "endpoint", "game", "karma", "load", "status", "reason"].map((h) => el("th", { text: h })))),
      el("tbody", {}, doc.candidates.map((c) =>
        el("tr", { class: `status-${c.status}` },
          el("td", { class: "num", text: c.rank ?? "–" }), el("td", { class: "mono", text: short(c.referee, 16), title: c.referee }),
          el("td", { class: "mono", text: c.endpoint }), el("td", { text: c.game }),
          el("td", { class: "num", text: c.karma === null ? "–" : c.karma.toFixed(3) }),
          el("td", { class: "num", text: `${c.load}/${c.capacity}` }), el("td", { text: c.status }), el("td", { text: c.reason.replace(/_/g, " ") }))))),
  );
}

// ---------------------------------------------------------------- network

function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const part of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[part[1]] = part[2];
    out.push({ name: m[1], labels, value: Number(m[3] === "+Inf" ? Infinity : m[3]) });
  }
  return out;
}

function card(label, value, id) {
  return el("div", { class: "card", id }, el("div", { class: "value", text: value }), el("div", { class: "label", text: label }));
}

function quantile(buckets, total, q) {
  for (const b of buckets) if (b.count >= q * total) return b.le;
  return Infinity;
}

async function loadNetwork() {
  const [status, text] = await Promise.all([api("/api/status"), fetch("/metrics").then((r) => r.text())]);
  const samples = parseMetrics(text);
  const one = (name) => (samples.find((s) => s.name === name) || { value: 0 }).value;
  const rpc = samples.filter((s) => s.name === "fairdht_rpc_total");
  const now = Date.now() / 1000;
  const moved = rpc.filter((s) => ["sent", "received"].includes(s.labels.outcome)).reduce((a, s) => a + s.value, 0);
  let rate = "–";
  if (state.lastRpc) rate = ((moved - state.lastRpc.moved) / Math.max(0.001, now - state.lastRpc.t)).toFixed(1);
  state.lastRpc = { moved, t: now };
  $("#net-cards").replaceChildren(
    card("peers", status.peers, "card-peers"),
    card("records held", status.records, "card-records"),
    card("bytes held", one("fairdht_record_bytes")),
    card("RPC messages/s", rate),
    card("event streams", one("fairdht_event_subscribers")),
    card("uptime", `${Math.floor(status.uptime_s / 60)} min`),
  );
  $("#node").textContent = `node ${short(status.node_id, 10)} · ${status.listen} · v${status.version}`;
  const byRpc = new Map();
  const outcomes = new Set();
  for (const s of rpc) {
    outcomes.add(s.labels.outcome);
    if (!byRpc.has(s.labels.rpc)) byRpc.set(s.labels.rpc, {});
    byRpc.get(s.labels.rpc)[s.labels.outcome] = s.value;
  }
  const cols = [...outcomes].sort();
  $("#rpc").replaceChildren(
    el("thead", {}, el("tr", {}, el("th", { text: "rpc" }), cols.map((c) => el("th", { class: "num", text: c })))),
    el("tbody", {}, [...byRpc.entries()].sort().map(([name, row]) =>
      el("tr", {}, el("td", { text: name }), cols.map((c) => el("td", { class: "num", text: row[c] || 0 }))))),
  );
  const dropped = samples.filter((s) => s.name === "fairdht_dropped_datagrams_total");
  $("#dropped").replaceChildren(
    el("tbody", {}, dropped.length ? dropped.map((s) => el("tr", {}, el("td", { text: s.labels.reason }), el("td", { class: "num", text: s.value })))
      : el("tr", {}, el("td", { class: "muted", text: "none dropped" }))),
  );
  const rows = [];
  for (const [name, label] of [["fairdht_lookup_duration_seconds", "lookups (API)"], ["fairdht_serverlist_round_duration_seconds", "server-list rounds"]]) {
    const buckets = samples.filter((s) => s.name === `${name}_bucket`).map((s) => ({ le: Number(s.labels.le === "+Inf" ? Infinity : s.labels.le), count: s.value }));
    const total = one(`${name}_count`);
    if (!buckets.length) continue;
    const mean = total ? one(`${name}_sum`) / total : 0;
    const fmt = (x) => (x === Infinity ? "> 30 s" : `≤ ${x} s`);
    rows.push(el("tr", {}, el("td", { text: label }), el("td", { class: "num", text: total }),
      el("td", { class: "num", text: total ? `${(mean * 1000).toFixed(1)} ms` : "–" }),
      el("td", { class: "num", text: total ? fmt(quantile(buckets, total, 0.5)) : "–" }),
      el("td", { class: "num", text: total ? fmt(quantile(buckets, total, 0.95)) : "–" })));
  }
  $("#latency").replaceChildren(
    el("thead", {}, el("tr", {}, ["", "count", "mean", "p50", "p95"].map((h) => el("th", { text: h })))),
    el("tbody", {}, rows),
  );
}

// ---------------------------------------------------------------- pages

function show(page) {
  state.page = page;
  for (const section of document.querySelectorAll(".page")) section.hidden = section.id !== `page-${page}`;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === page);
  clearInterval(state.netTimer);
  state.netTimer = null;
}

function route() {
  const [page, arg] = (location.hash.slice(1) || "servers").split("/");
  const known = ["servers", "history", "karma", "referees", "network"];
  show(known.includes(page) ? page : "servers");
  if (state.page === "history") loadHistory().catch(showError);
  if (state.page === "karma" && arg) showKarma(arg);
  if (state.page === "network") {
    loadNetwork().catch(showError);
    state.netTimer = setInterval(() => loadNetwork().catch(showError), 3000);
  }
}

function setNetwork() {
  const value = $("#network").value.trim() || "demo";
  if (value === state.network) return;
  state.network = value;
  state.servers.clear();
  state.karma.clear();
  state.historyLoaded = false;
  connectEvents();
  loadServers().catch(showError);
  route();
}

function init() {
  const params = new URLSearchParams(location.search);
  if (params.get("network")) $("#network").value = params.get("network");
  state.network = $("#network").value.trim() || "demo";
  $("#network").addEventListener("change", setNetwork);
  $("#filter").addEventListener("input", renderServers);
  $("#verified-only").addEventListener("change", renderServers);
  for (const th of document.querySelectorAll("#servers th")) {
    th.addEventListener("click", () => {
      const key = th.dataset.sort;
      state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : key === "players" || key === "karma" ? -1 : 1 };
      renderServers();
    });
  }
  $("#karma-form").addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = `#karma/${$("#karma-subject").value.trim()}`;
  });
  $("#prepare-checkpoint").addEventListener("click", () => prepare("checkpoint").catch(showError));
  $("#prepare-rollback").addEventListener("click", () => prepare("rollback").catch(showError));
  $("#referee-form").addEventListener("submit", (e) => {
    e.preventDefault();
    showReferees();
  });
  window.addEventListener("hashchange", route);
  api("/api/status").then((s) => {
    const peers = s.peers === 1 ? "1 peer" : `${s.peers} peers`;
    $("#node").textContent = `node ${short(s.node_id, 10)} · ${peers} · ${s.records} records`;
  }).catch(showError);
  connectEvents();
  loadServers().catch(showError);
  route();
}

document.addEventListener("DOMContentLoaded", init);
