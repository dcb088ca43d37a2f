// The swarm dashboard: a snapshot, then deltas over server-sent events. Read-only.
// Text from the ledger (hypotheses, diffs, logs, reasons) goes in with textContent only.
"use strict";
(function () {
  const FAILED = new Set(["crash", "timeout", "no_metric", "guard_failed", "lost", "out_of_scope", "duplicate"]);
  const ACCEPTED = new Set(["keep", "merged"]);
  const GREY = new Set(["baseline", "confirm"]);
  const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f",
    "#e15759", "#bab0ac", "#1f77b4", "#17becf", "#8c564b", "#7f7f7f", "#bcbd22", "#aec7e8"];
  const $ = (id) => document.getElementById(id);
  const hook = window.__swarm = { renders: 0, lastRender: null, firstRender: null, seq: 0, renderLog: [] };
  let points = [];          // {id, n, t, metric, status, kind, worker, hypothesis, gain}
  const byId = new Map();
  let bestLine = [];        // [n, t, value]
  let metricName = "metric", direction = "minimize";
  let seq = 0, source = null, pending = false, hovered = null, screen = null, colours = new Map();

  function text(el, value) { el.textContent = value == null ? "" : String(value); return el; }
  function el(tag, value, cls) { const e = document.createElement(tag); if (cls) e.className = cls; return text(e, value); }
  function fmt(v) { return v == null ? "–" : Number(v).toPrecision(6).replace(/\.?0+(e|$)/, "$1"); }
  function row(columns, values) { const o = {}; columns.forEach((c, i) => { o[c] = values[i]; }); return o; }
  const COLUMNS = ["id", "n", "t", "metric", "status", "kind", "worker", "hypothesis", "gain"];

  function upsert(values) {
    const p = row(COLUMNS, values);
    const at = byId.get(p.id);
    if (at === undefined) { byId.set(p.id, points.length); points.push(p); } else { points[at] = p; }
  }

  async function load() {
    const response = await fetch("/api/snapshot", { credentials: "same-origin", cache: "no-store" });
    if (!response.ok) { text($("connection"), "refused: " + response.status); $("connection").className = "pill bad"; return; }
    const snap = await response.json();
    seq = snap.seq; hook.seq = seq;
    points = []; byId.clear(); colours.clear();
    if (snap.waiting) { text($("run-name"), "waiting for the run in " + snap.run_dir + " to start"); }
    else {
      metricName = snap.metric; direction = snap.direction;
      for (const values of snap.points) upsert(values);
      panels(snap); lessons(snap.lessons);
    }
    schedule();
    connect();
  }

  function connect() {
    if (source) source.close();
    source = new EventSource("/api/events?since=" + seq);
    source.onopen = () => { text($("connection"), "live"); $("connection").className = "pill ok"; };
    source.onerror = () => {
      text($("connection"), "reconnecting"); $("connection").className = "pill bad";
      source.close(); source = null; setTimeout(connect, 1000);
    };
    source.addEventListener("trials", (e) => { const d = take(e); if (!d) return; for (const v of d.points) upsert(v); schedule(); });
    source.addEventListener("panels", (e) => { const d = take(e); if (d) { panels(d); schedule(); } });
    source.addEventListener("lessons", (e) => { const d = take(e); if (d) lessons(d.lessons); });
    source.addEventListener("problem", (e) => { const d = take(e); if (d) { text($("connection"), d.problem); $("connection").className = "pill bad"; } });
    source.addEventListener("reset", () => { if (source) source.close(); source = null; load(); });
  }

  function take(event) {
    const d = JSON.parse(event.data);
    if (d.seq <= seq) return null;
    seq = d.seq; hook.seq = seq;
    return d;
  }

  // -- panels ------------------------------------------------------------------------------
  function panels(d) {
    const h = d.headline, rows = new Map(h.rows);
    text($("run-name"), rows.get("run") || "");
    text($("metric-name"), metricName);
    text($("best"), fmt(h.best));
    text($("best-sub"), rows.get("from") || "");
    $("best-sub").title = rows.get("from") || "";
    text($("baseline"), fmt(h.baseline));
    const best = rows.get("best") || "";
    const gain = best.match(/\(([+-][^ ]+) better/);
    text($("gain"), gain ? gain[1] + " better" : "");
    text($("trials"), h.trials_done);
    text($("trials-sub"), h.trials_running + " running");
    text($("rate"), Math.round(h.per_hour));
    text($("gpu"), (rows.get("GPU-hours") || "–").split(" ")[0]);
    text($("cost"), "cost " + (rows.get("cost") || "–").split(" ")[0]);
    text($("stop"), h.stop_rule);
    $("stop-bar").style.width = h.share == null ? "0" : (100 * h.share).toFixed(1) + "%";
    const driver = rows.get("driver") ? "driver " + rows.get("driver") : (d.live || "");
    text($("driver"), driver); $("driver").title = driver;
    const table = $("rows"); table.replaceChildren();
    for (const [k, v] of h.rows) { const tr = document.createElement("tr"); tr.append(el("td", k), el("td", v)); table.append(tr); }
    bestLine = d.pool.best_line;
    pool(d.pool); workers(d.workers);
    hook.lastPanels = { at: Date.now(), trialsDone: h.trials_done, seq: d.seq };
  }

  function pool(p) {
    text($("best-branch"), "swarm/best at " + p.best_commit + (p.best_trial ? " (trial " + p.best_trial + ")" : ""));
    const body = $("changes").tBodies[0]; body.replaceChildren();
    for (const c of p.changes.slice().reverse()) {
      const tr = document.createElement("tr");
      if (c.parts.length) tr.className = "union";
      const change = c.hypothesis + (c.parts.length ? "  [union of " + c.parts.join(", ") + "]" : "")
        + (c.rebased_from ? "  [rebased from " + c.rebased_from + "]" : "");
      tr.append(el("td", c.number), el("td", c.trial), el("td", c.commit), el("td", change, "wrap grow"), el("td", c.gain), el("td", c.after));
      tr.style.cursor = "pointer"; tr.addEventListener("click", () => open(c.trial));
      body.append(tr);
    }
    if (!p.changes.length) { const tr = document.createElement("tr"); const td = el("td", "no change accepted yet", "muted"); td.colSpan = 6; tr.append(td); body.append(tr); }
    winners($("stale"), p.stale); winners($("conflicts"), p.conflicts);
  }

  function winners(list, items) {
    list.replaceChildren();
    if (!items.length) { list.append(el("li", "none", "muted")); return; }
    for (const w of items.slice(-20).reverse()) list.append(el("li", "trial " + w.trial + " (" + w.gain + "): " + w.hypothesis));
    if (items.length > 20) list.append(el("li", "… and " + (items.length - 20) + " more", "muted"));
  }

  function workers(items) {
    const body = $("workers").tBodies[0]; body.replaceChildren();
    const sorted = items.slice().sort((a, b) => a.worker.localeCompare(b.worker, undefined, { numeric: true }));
    for (const w of sorted) {
      const tr = document.createElement("tr");
      tr.append(el("td", w.worker), el("td", w.where), el("td", w.doing, "wrap"), el("td", w.trials), el("td", w.per_hour.toFixed(1)),
        el("td", w.latest_failure || "–", "wrap"));
      body.append(tr);
    }
    if (!items.length) { const tr = document.createElement("tr"); const td = el("td", "no worker in this session", "muted"); td.colSpan = 6; tr.append(td); body.append(tr); }
  }

  function lessons(items) {
    const list = $("lessons"); list.replaceChildren();
    for (const l of items || []) list.append(el("li", l));
    if (!items || !items.length) list.append(el("li", "worked out every few seconds, once trials are judged", "muted"));
  }

  // -- the chart ---------------------------------------------------------------------------
  // a timer, not requestAnimationFrame: a page in a background tab still keeps up, and an update is drawn at once
  function schedule() { if (!pending) { pending = true; setTimeout(render, 0); } }

  function colourOf(worker) {
    if (!colours.has(worker)) colours.set(worker, PALETTE[colours.size % PALETTE.length]);
    return colours.get(worker);
  }

  function niceTicks(lo, hi, count) {
    const span = hi - lo || 1, step0 = span / count, mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= count) || step0;
    const ticks = []; for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(v);
    return ticks;
  }

  function timeUnit(span) { return span < 180 ? [1, "s"] : span < 3 * 3600 ? [60, "min"] : [3600, "h"]; }

  function yRange() {
    const values = [];
    for (const p of points) if (p.metric != null && !FAILED.has(p.status)) values.push(p.metric);
    for (const b of bestLine) values.push(b[2]);
    if (!values.length) return [0, 1];
    values.sort((a, b) => a - b);
    let lo = values[Math.floor(values.length * 0.01)], hi = values[Math.min(values.length - 1, Math.ceil(values.length * 0.99) - 1)];
    for (const b of bestLine) { lo = Math.min(lo, b[2]); hi = Math.max(hi, b[2]); }
    const pad = (hi - lo) * 0.06 || Math.abs(hi) * 0.05 || 1;
    return [lo - pad, hi + pad];
  }

  function render() {
    pending = false;
    const began = performance.now();
    const canvas = $("chart"), box = canvas.getBoundingClientRect(), dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(box.width * dpr) || canvas.height !== Math.round(box.height * dpr)) {
      canvas.width = Math.round(box.width * dpr); canvas.height = Math.round(box.height * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const W = box.width, H = box.height, L = 70, R = 16, T = 14, B = 42;
    ctx.clearRect(0, 0, W, H);
    const axis = $("x-axis").value, many = points.length > 1500;
    let xmax = 1;
    for (const p of points) xmax = Math.max(xmax, p[axis]);
    const [unit, unitName] = axis === "t" ? timeUnit(xmax) : [1, ""];
    const [ylo, yhi] = yRange();
    const sx = (v) => L + (v / xmax) * (W - L - R);
    const sy = (v) => T + (1 - (Math.min(Math.max(v, ylo), yhi) - ylo) / (yhi - ylo)) * (H - T - B);
    // axes and grid
    ctx.font = "12px system-ui, sans-serif"; ctx.fillStyle = "#6b7385"; ctx.strokeStyle = "#eceef2"; ctx.lineWidth = 1;
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    for (const v of niceTicks(ylo, yhi, 6)) { const y = sy(v); ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(W - R, y); ctx.stroke(); ctx.fillText(fmt(v), L - 6, y); }
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    for (const v of niceTicks(0, xmax / unit, 8)) { const x = sx(v * unit); ctx.beginPath(); ctx.moveTo(x, T); ctx.lineTo(x, H - B); ctx.stroke(); ctx.fillText(axis === "t" ? String(+v.toFixed(2)) : String(Math.round(v)), x, H - B + 6); }
    ctx.fillText(axis === "t" ? "time since the run started (" + unitName + ")" : "trial number", L + (W - L - R) / 2, H - 18);
    ctx.save(); ctx.translate(14, T + (H - T - B) / 2); ctx.rotate(-Math.PI / 2); ctx.fillText(metricName + " (" + direction + ")", 0, 0); ctx.restore();
    ctx.strokeStyle = "#b9bec9"; ctx.beginPath(); ctx.moveTo(L, T); ctx.lineTo(L, H - B); ctx.lineTo(W - R, H - B); ctx.stroke();
    // points: screen positions kept for hovering
    screen = new Float32Array(points.length * 2);
    const r = many ? 1.6 : 3.2;
    ctx.globalAlpha = many ? 0.35 : 0.7;
    const keep = [];
    for (let i = 0; i < points.length; i++) {
      const p = points[i], x = sx(p[axis]);
      if (p.metric == null || FAILED.has(p.status)) {
        screen[2 * i] = x; screen[2 * i + 1] = H - B - 4;
        continue;
      }
      const y = sy(p.metric); screen[2 * i] = x; screen[2 * i + 1] = y;
      if (ACCEPTED.has(p.status)) { keep.push(i); continue; }
      ctx.fillStyle = GREY.has(p.status) ? "#9a9a9a" : colourOf(p.worker);
      ctx.fillRect(x - r, y - r, 2 * r, 2 * r);
    }
    ctx.globalAlpha = 1;
    ctx.strokeStyle = "#d73027"; ctx.lineWidth = 1; ctx.globalAlpha = many ? 0.5 : 0.9; ctx.beginPath();
    for (let i = 0; i < points.length; i++) {
      const p = points[i];
      if (p.status !== "running" && (p.metric == null || FAILED.has(p.status))) { const x = screen[2 * i]; ctx.moveTo(x, H - B); ctx.lineTo(x, H - B - 8); }
    }
    ctx.stroke(); ctx.globalAlpha = 1;
    // best so far: a step line
    if (bestLine.length) {
      const key = axis === "t" ? 1 : 0;
      ctx.strokeStyle = "#1a9850"; ctx.lineWidth = 2.2; ctx.beginPath();
      let y0 = sy(bestLine[0][2]); ctx.moveTo(sx(bestLine[0][key]), y0);
      for (const b of bestLine.slice(1)) { const x = sx(b[key]); ctx.lineTo(x, y0); y0 = sy(b[2]); ctx.lineTo(x, y0); }
      ctx.lineTo(sx(xmax), y0); ctx.stroke();
    }
    // accepted trials, bold, labelled while they are few enough to read
    const boxes = [];
    ctx.font = "11px system-ui, sans-serif"; ctx.textAlign = "left"; ctx.textBaseline = "bottom";
    for (const i of keep) {
      const x = screen[2 * i], y = screen[2 * i + 1];
      ctx.beginPath(); ctx.arc(x, y, 5, 0, 2 * Math.PI); ctx.fillStyle = "#e6a800"; ctx.fill(); ctx.strokeStyle = "#7a5a00"; ctx.lineWidth = 1.2; ctx.stroke();
    }
    if (keep.length <= 25) {
      for (const i of keep) {
        const p = points[i], label = p.hypothesis.length > 28 ? p.hypothesis.slice(0, 27) + "…" : p.hypothesis;
        const w = ctx.measureText(label).width, x = Math.min(screen[2 * i] + 7, W - R - w), y = screen[2 * i + 1] - 5;
        const bx = [x - 2, y - 13, w + 4, 14];
        if (boxes.some((o) => bx[0] < o[0] + o[2] && o[0] < bx[0] + bx[2] && bx[1] < o[1] + o[3] && o[1] < bx[1] + bx[3])) continue;
        boxes.push(bx);
        ctx.fillStyle = "rgba(255,255,255,.85)"; ctx.fillRect(bx[0], bx[1], bx[2], bx[3]);
        ctx.fillStyle = "#5a4500"; ctx.fillText(label, x, y);
      }
    }
    if (hovered != null && hovered < points.length) {
      ctx.strokeStyle = "#1d2330"; ctx.lineWidth = 2; ctx.beginPath(); ctx.arc(screen[2 * hovered], screen[2 * hovered + 1], 7, 0, 2 * Math.PI); ctx.stroke();
    }
    text($("point-count"), points.length + " trials");
    hook.renders++;
    hook.renderMs = performance.now() - began;
    hook.lastRender = { at: Date.now(), points: points.length, seq: seq, trialsDone: Number($("trials").textContent) || 0 };
    hook.renderLog.push([points.length, hook.lastRender.at]);
    if (hook.renderLog.length > 200) hook.renderLog.shift();
    if (hook.firstRender == null && points.length) hook.firstRender = performance.now();
  }

  function nearest(mx, my) {
    if (!screen) return null;
    let best = null, dist = 144;
    for (let i = 0; i < points.length; i++) {
      if (points[i].status === "running") continue;
      const dx = screen[2 * i] - mx, dy = screen[2 * i + 1] - my, d = dx * dx + dy * dy;
      if (d < dist) { dist = d; best = i; }
    }
    return best;
  }

  function setupChart() {
    const canvas = $("chart"), tip = $("tip");
    canvas.addEventListener("mousemove", (e) => {
      const b = canvas.getBoundingClientRect(), i = nearest(e.clientX - b.left, e.clientY - b.top);
      if (i !== hovered) { hovered = i; schedule(); }
      if (i == null) { tip.hidden = true; return; }
      const p = points[i];
      text(tip, "trial " + p.id + " · " + p.kind + " · " + p.worker + "\n" + p.hypothesis + "\n"
        + metricName + " " + fmt(p.metric) + " · " + p.status + (p.gain != null ? " · gain " + fmt(p.gain) : ""));
      tip.hidden = false;
      const x = e.clientX - b.left + 14, y = e.clientY - b.top + 14;
      tip.style.left = Math.min(x, b.width - 430) + "px"; tip.style.top = Math.min(y, b.height - 70) + "px";
    });
    canvas.addEventListener("mouseleave", () => { hovered = null; tip.hidden = true; schedule(); });
    canvas.addEventListener("click", (e) => {
      const b = canvas.getBoundingClientRect(), i = nearest(e.clientX - b.left, e.clientY - b.top);
      if (i != null) open(points[i].id);
    });
    $("x-axis").addEventListener("change", schedule);
    window.addEventListener("resize", schedule);
    $("panel-close").addEventListener("click", () => { $("panel").hidden = true; });
    document.addEventListener("keydown", (e) => { if (e.key === "Escape") $("panel").hidden = true; });
  }

  // -- one trial ---------------------------------------------------------------------------
  async function open(id) {
    const panel = $("panel");
    text($("panel-title"), "trial " + id); text($("panel-hypothesis"), "loading…");
    $("panel-facts").replaceChildren(); $("panel-diff").replaceChildren(); text($("panel-log"), ""); text($("panel-log-path"), "");
    panel.hidden = false;
    const response = await fetch("/api/trial/" + encodeURIComponent(id), { credentials: "same-origin" });
    if (!response.ok) { text($("panel-hypothesis"), "not found: " + response.status); return; }
    const t = await response.json();
    text($("panel-hypothesis"), t.hypothesis);
    const facts = [["kind", t.kind + (t.of ? " of trial " + t.of : "")], ["worker", t.worker], ["status", t.status],
      ["verdict", t.verdict], [metricName, fmt(t.metric)], ["gain", t.gain == null ? "–" : fmt(t.gain)],
      ["union of", t.parts.join(", ")], ["reason", t.reason], ["feedback", t.feedback], ["commit", t.commit]];
    for (const [k, v] of facts) { if (v == null || v === "") continue; const tr = document.createElement("tr"); tr.append(el("td", k), el("td", v)); $("panel-facts").append(tr); }
    const diff = $("panel-diff");
    if (!t.diff) diff.append(el("span", t.note || "no diff"));
    for (const line of t.diff ? t.diff.split("\n") : []) {
      const cls = line.startsWith("+++") || line.startsWith("---") || line.startsWith("diff ") ? "file"
        : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : line.startsWith("@@") ? "hunk" : "";
      diff.append(el("span", line, cls));
    }
    text($("panel-log"), t.log_tail || "(no log kept for this trial)");
    text($("panel-log-path"), t.log);
  }

  // for tests and benchmarks: where a trial is drawn, in the canvas's pixels
  hook.at = (id) => { const i = byId.get(id); return i === undefined || !screen ? null : { x: screen[2 * i], y: screen[2 * i + 1] }; };
  hook.count = () => points.length;
  setupChart();
  load();
})();
