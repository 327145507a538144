// The dashboard: one WebSocket to /ui/stream (format in smartflow/api/stream.py), reconnected by
// itself; a "stale" banner whenever the daemon is gone, hung, or its feed has stalled.
import { Ladder } from "./ladder.js";
import { Charts } from "./charts.js";
import { renderSignal, renderOrders, renderPositions, renderHealth } from "./panels.js";

const $ = (id) => document.getElementById(id);
const state = {
  underlyings: [], current: null, tick: null, summaries: {}, series: {}, signals: [],
  staleAfter: 5, lastMsg: 0, staleWhy: null, killEnabled: false, lastPnl: 0,
};
const ladder = new Ladder(document.querySelector("#ladder tbody"));
const charts = new Charts();
// Frame and render timings, read by the browser test (and handy in the console).
const perf = (window.__sf = { renders: 0, renderMs: [], messages: 0, ticks: 0, bars: 0, errors: 0 });

function setStale(why) {
  state.staleWhy = why;
  $("stale").hidden = !why;
  if (why) $("stale-why").textContent = why;
  document.body.classList.toggle("is-stale", Boolean(why));
}

function selectUnderlying(u) {
  state.current = u;
  for (const b of $("underlyings").children) b.classList.toggle("on", b.textContent === u);
  charts.setSeries(state.series[u] || []);
  if (state.summaries[u]) charts.setSummary(state.summaries[u]);
  render();
}

function onHello(m) {
  perf.hello = {
    series: Object.fromEntries(Object.entries(m.series).map(([u, p]) => [u, p.length])),
    summaries: Object.keys(m.summaries),
    pnl: m.pnl.length,
    pnlMoved: m.pnl.some((p) => p[1] + p[2] !== 0),
    signals: m.signals.length,
  };
  state.underlyings = m.underlyings;
  state.killEnabled = m.kill_enabled;
  state.staleAfter = m.stale_after_s;
  state.series = m.series;
  state.summaries = m.summaries;
  $("kill").disabled = !m.kill_enabled;
  $("kill").title = m.kill_enabled ? "" : "no kill_token credential configured";
  const nav = $("underlyings");
  nav.textContent = "";
  for (const u of m.underlyings) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = u;
    b.onclick = () => selectUnderlying(u);
    nav.appendChild(b);
  }
  charts.setPnl(m.pnl);
  $("signals").textContent = "";
  state.signals = [];
  for (const s of m.signals) addSignal(s);
  selectUnderlying(state.current && m.underlyings.includes(state.current)
    ? state.current : m.underlyings[0]);
}

function addSignal(s) {
  state.signals.push(s);
  const list = $("signals");
  list.insertBefore(renderSignal(s), list.firstChild);
  while (list.children.length > 200) list.removeChild(list.lastChild);
  $("signal-count").textContent = `(${state.signals.length})`;
}

function onTick(m) {
  state.tick = m;
  perf.ticks++;
  const problems = m.health.problems || [];
  const stalled = problems.filter((p) => /stale|no snapshot|not connected|socket is down/i.test(p));
  if (m.age_s > state.staleAfter) setStale(`no update from the trading loop for ${m.age_s.toFixed(0)} s`);
  else setStale(stalled.length ? stalled.join("; ") : null);
  const pnl = m.ui.pnl;
  if (pnl && m.ui.ts_ns - state.lastPnl >= 1e9) {
    state.lastPnl = m.ui.ts_ns;
    charts.addPnl([m.ui.ts_ns, pnl.realised, pnl.unrealised, pnl.charges ?? 0]);
  }
  render();
}

function onBar(m) {
  perf.bars++;
  state.summaries[m.underlying] = m.summary;
  (state.series[m.underlying] ||= []).push(m.point);
  if (m.underlying === state.current) {
    charts.addPoint(m.point);
    charts.setSummary(m.summary);
  }
}

let pending = false;
function render() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    const t0 = performance.now();
    draw();
    perf.renderMs.push(performance.now() - t0);
    if (perf.renderMs.length > 2000) perf.renderMs.splice(0, 1000);
    perf.renders++;
  });
}

function draw() {
  const m = state.tick;
  const u = state.current;
  if (!m || !u) return;
  const chain = m.ui.chains[u];
  const summary = state.summaries[u] || null;
  if (chain) {
    ladder.render(chain, summary);
    $("spot").textContent = `${u} ${chain.spot ?? "—"} · fwd ${chain.forward ?? "—"} · ATM ${chain.atm ?? "—"} · exp ${chain.expiry}`;
    const b = chain.battle;
    $("battle").textContent = b
      ? `· ${b.market_control} · control ${b.control ?? "—"} · war intensity ${b.war_intensity?.toFixed(2) ?? "—"} · CE OI share ${b.ce_oi_share?.toFixed(2) ?? "—"}`
      : "";
  }
  if (summary) {
    $("doi-basis").textContent = summary.doi_basis === "prev_close" ? "previous close" : "first print today";
    const v = summary.volatility || {};
    $("summary-line").textContent =
      `PCR ${summary.pcr?.oi?.toFixed(2) ?? "—"} · max pain ${summary.max_pain?.strike ?? "—"} · ` +
      `walls R ${summary.walls?.resistance?.strike ?? "—"} / S ${summary.walls?.support?.strike ?? "—"} · ` +
      `ATM IV ${v.atm_iv ? (v.atm_iv * 100).toFixed(2) + "%" : "—"} · straddle ${v.straddle?.toFixed(1) ?? "—"} · ` +
      `GEX ${summary.gex?.total ? (summary.gex.total / 1e7).toFixed(2) + " Cr" : "—"} · zero γ ${summary.gex?.zero_gamma?.toFixed(0) ?? "—"}`;
  }
  const pnl = m.ui.pnl;
  const pnlEl = $("pnl");
  if (pnl) {
    const gross = pnl.realised + pnl.unrealised;
    const net = pnl.net_pnl ?? gross;
    const sign = (x) => `${x >= 0 ? "+" : ""}${x.toFixed(2)}`;
    pnlEl.textContent = `net ${sign(net)} · gross ${sign(gross)} (realised ${pnl.realised.toFixed(2)}, ` +
      `unrealised ${pnl.unrealised.toFixed(2)}) · charges ${(pnl.charges ?? 0).toFixed(2)}`;
    pnlEl.className = "num " + (net > 0 ? "up" : net < 0 ? "down" : "");
  }
  renderPositions($("positions").tBodies[0], m.ui.positions);
  renderOrders($("orders").tBodies[0], m.ui.orders);
  renderHealth(m);
  const ks = m.ui.kill_switch;
  const kEl = $("killstate");
  kEl.textContent = ks ? (ks.on ? `KILLED: ${ks.reason}` : "trading armed") : "";
  kEl.className = "pill " + (ks && ks.on ? "bad" : "ok");
}

// ---- the stream --------------------------------------------------------------------------

let backoff = 500;
function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/ui/stream`);
  $("conn").textContent = "connecting…";
  $("conn").className = "pill";
  ws.onopen = () => {
    backoff = 500;
    $("conn").textContent = "live";
    $("conn").className = "pill ok";
  };
  ws.onmessage = (e) => {
    state.lastMsg = performance.now();
    perf.messages++;
    const m = JSON.parse(e.data);
    if (m.type === "hello") onHello(m);
    else if (m.type === "tick") onTick(m);
    else if (m.type === "bar") onBar(m);
    else if (m.type === "signal") addSignal(m.signal);
    else if (m.type === "stale") setStale(m.reason);
  };
  ws.onclose = () => {
    $("conn").textContent = "disconnected";
    $("conn").className = "pill bad";
    setStale("disconnected from the daemon — reconnecting");
    setTimeout(connect, backoff);
    backoff = Math.min(5000, backoff * 2);
  };
}

// No message at all for a while (a hung API process, a dead network path) is stale too.
setInterval(() => {
  const quiet = (performance.now() - state.lastMsg) / 1000;
  if (state.lastMsg && quiet > Math.max(5, state.staleAfter) && !state.staleWhy) {
    setStale(`no update for ${quiet.toFixed(0)} s`);
  }
}, 1000);

// ---- kill switch: the token is typed each time, sent once to /api/kill, never kept ---------

const dialog = $("kill-dialog");
$("kill").onclick = () => {
  $("kill-result").textContent = "";
  $("kill-token").value = "";
  $("kill-confirm").checked = false;
  dialog.showModal();
};
$("kill-cancel").onclick = () => dialog.close();
async function killRequest(path) {
  const token = $("kill-token").value;
  $("kill-token").value = "";
  const r = await fetch(path, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ reason: $("kill-reason").value || "dashboard" }),
  });
  const body = await r.json().catch(() => ({}));
  $("kill-result").textContent = r.ok ? `done: ${JSON.stringify(body)}` : `refused (${r.status}): ${body.error || ""}`;
  return r.ok;
}
$("kill-form").onsubmit = async (e) => {
  e.preventDefault();
  if (!$("kill-confirm").checked || !$("kill-token").value) return;
  if (await killRequest("/api/kill")) setTimeout(() => dialog.close(), 800);
};
$("kill-reset").onclick = async () => {
  if (!$("kill-token").value) {
    $("kill-result").textContent = "the kill token is needed to re-arm too";
    return;
  }
  if (await killRequest("/api/kill/reset")) setTimeout(() => dialog.close(), 800);
};

window.addEventListener("resize", () => charts.resize());
window.addEventListener("error", () => perf.errors++);
charts.resize();
connect();
