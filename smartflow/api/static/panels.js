// Signals feed, orders, positions and health: plain DOM, text only (never HTML from the stream).

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}
const num = (x, d = 2) => (typeof x === "number" ? x.toFixed(d) : x ?? "—");
const time = (ns) => new Date(ns / 1e6).toLocaleTimeString("en-GB", { timeZone: "Asia/Kolkata" });

export function renderSignal(s) {
  const li = el("li");
  li.dataset.ts = s.ts_ns;
  const d = el("details");
  const sum = el("summary");
  sum.append(
    el("span", time(s.ts_ns) + " "),
    el("span", s.underlying + " "),
    el("span", s.recommendation, "rec " + s.recommendation),
    el("span", s.strike ? ` ${s.strike} ${s.option_type}` : ""),
    el("span", ` · OI ${num(s.oi_conviction_score)} · vol ${num(s.volume_aggression_score)} · ` +
      `smart ${num(s.smart_money_probability)} · trap ${num(s.trap_probability)} · ` +
      `${s.market_control}${s.can_trade ? "" : " · blocked"}`, "muted"),
  );
  d.appendChild(sum);
  if (s.reason) d.appendChild(el("p", s.reason, "reason"));
  const t = el("table", null, "evidence");
  const head = el("tr");
  head.append(el("th", "rule"), el("th", "contract"), el("th", "numbers"));
  t.appendChild(head);
  for (const e of s.evidence || []) {
    const tr = el("tr");
    tr.className = "rule";
    const where = e.strike ? `${e.strike} ${e.option_type || ""}` : "";
    const nums = Object.entries(e.inputs || {})
      .map(([k, v]) => `${k}=${typeof v === "number" ? +v.toFixed(4) : v}`).join("  ");
    tr.append(el("td", e.rule), el("td", where), el("td", nums));
    t.appendChild(tr);
  }
  d.appendChild(t);
  li.appendChild(d);
  return li;
}

function fill(tbody, rows, cells) {
  const key = JSON.stringify(rows);
  if (tbody.dataset.key === key) return;
  tbody.dataset.key = key;
  tbody.textContent = "";
  for (const r of rows) {
    const tr = el("tr");
    for (const c of cells(r)) tr.appendChild(el("td", c));
    tbody.appendChild(tr);
  }
}

export function renderOrders(tbody, orders) {
  fill(tbody, [...orders].reverse(), (o) => [
    time(o.updated_ns || o.created_ns), o.symbol, o.side, o.quantity, o.filled_quantity,
    num(o.limit_price), o.average_price ? num(o.average_price) : "", o.purpose, o.state,
  ]);
}

export function renderPositions(tbody, positions) {
  fill(tbody, positions, (p) => [
    p.symbol, p.net_quantity, num(p.average_price), num(p.realised_pnl), num(p.charges),
  ]);
}

export function renderHealth(m) {
  const h = document.getElementById("healthy");
  h.textContent = m.healthy ? "healthy" : "unhealthy";
  h.className = "pill " + (m.healthy ? "ok" : "bad");
  const probs = document.getElementById("problems");
  fill(probs, m.health.problems || [], (p) => [p]);
  const feed = m.status.feed || {};
  const lat = m.ui.latency || {};
  const ms = (q) => (q === null || q === undefined ? "—" : (q * 1000).toFixed(2) + " ms");
  const pct = (l) => (l ? `p50 ${ms(l.p50)} · p90 ${ms(l.p90)} · p99 ${ms(l.p99)} (n=${l.count})` : "—");
  const rows = [
    ["mode", `${m.status.mode} · uptime ${m.status.uptime_s ?? "—"} s`],
    ["feed", `sockets ${feed.sockets ?? "—"} · tokens ${feed.tokens ?? "—"} · frames ${feed.frames ?? "—"} · data stalls ${feed.data_stalls ?? "—"}`],
    ["reconnects", `${feed.reconnects ?? "—"} · stalls ${feed.stalls ?? "—"}`],
    ["stages stale", (m.ui.stale_stages || []).join(", ") || "none"],
    ["engine", m.status.engine ? `bars ${m.status.engine.bars ?? "—"}` : "—"],
    ["signals", String(m.status.signals_emitted ?? "—")],
    ["tick → signal", pct(lat.tick_to_signal)],
    ["tick → intent", pct(lat.tick_to_intent)],
    ["snapshot age", `${m.age_s.toFixed(2)} s`],
  ];
  const dl = document.getElementById("health");
  const key = JSON.stringify(rows);
  if (dl.dataset.key === key) return;
  dl.dataset.key = key;
  dl.textContent = "";
  for (const [k, v] of rows) dl.append(el("dt", k), el("dd", v));
}
