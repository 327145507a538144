"""The backtest report: one self-contained HTML file from ``backtest.json`` (no network at all).

Charts are inline SVG drawn here; the only script is a few lines that sort the trade table by
a clicked column. ``smartflow report DIR`` re-renders ``DIR/report.html`` from
``DIR/backtest.json``; the same JSON always gives the same bytes.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import msgspec


REPORT_FILE = "report.html"
RESULT_FILE = "backtest.json"
W, H, PAD = 640, 190, 44
UP, DOWN, LINE = "#1a7f37", "#cf222e", "#0969da"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1f2328;
background:#fff;max-width:1320px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 8px}
.sub{color:#59636e;margin-bottom:14px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:8px}
.card{border:1px solid #d1d9e0;border-radius:6px;padding:8px 10px}
.card b{display:block;font-size:18px}.card span{color:#59636e;font-size:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(640px,1fr));gap:12px}
svg{background:#f6f8fa;border-radius:6px}svg text{font-size:11px;fill:#59636e}
table{border-collapse:collapse;width:100%;font-size:12.5px}
th,td{border-bottom:1px solid #d1d9e0;padding:4px 6px;text-align:right;vertical-align:top}
th{cursor:pointer;background:#f6f8fa;position:sticky;top:0}
td.l,th.l{text-align:left}.pos{color:#1a7f37}.neg{color:#cf222e}
details summary{cursor:pointer;color:#0969da}code{font-size:11.5px}
"""

SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var asc = th.dataset.dir !== "asc";
      th.dataset.dir = asc ? "asc" : "desc";
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = isNaN(nx) || isNaN(ny) ? String(x).localeCompare(String(y)) : nx - ny;
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _money(x: float | None) -> str:
    return "—" if x is None else f"{x:+,.2f}"


def _num(x: float | None, nd: int = 2) -> str:
    return "—" if x is None else f"{x:,.{nd}f}"


def _cls(x: float) -> str:
    return "pos" if x > 0 else "neg" if x < 0 else ""


def line_chart(values: list[float], title: str, color: str, area: bool = False) -> str:
    """An SVG line (or area) of ``values`` against their index, with a zero line."""
    pts = [0.0, *values]
    lo, hi = min(0.0, *pts), max(0.0, *pts)
    span = (hi - lo) or 1.0
    n = max(1, len(pts) - 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return PAD + i * (W - 2 * PAD) / n, H - 24 - (v - lo) * (H - 48) / span

    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(i, v) for i, v in enumerate(pts)))
    _, zero = xy(0, 0.0)
    shape = (
        f'<polygon points="{PAD:.1f},{zero:.1f} {path} {xy(n, pts[-1])[0]:.1f},{zero:.1f}" '
        f'fill="{color}" fill-opacity="0.25" stroke="{color}"/>'
        if area
        else f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>'
    )
    return (
        f'<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{_e(title)}">'
        f'<text x="{PAD}" y="16">{_e(title)}</text>'
        f'<line x1="{PAD}" x2="{W - PAD}" y1="{zero:.1f}" y2="{zero:.1f}" stroke="#8c959f" '
        f'stroke-dasharray="3 3"/>{shape}'
        f'<text x="4" y="{xy(0, hi)[1] + 4:.1f}">{hi:,.0f}</text>'
        f'<text x="4" y="{xy(0, lo)[1] + 4:.1f}">{lo:,.0f}</text>'
        f'<text x="{W - PAD}" y="{H - 6}" text-anchor="end">trade {len(values)}</text>'
        "</svg>"
    )


def bar_chart(items: list[tuple[str, float]], title: str) -> str:
    """SVG bars, green above zero and red below, labelled underneath."""
    lo = min([0.0, *(v for _, v in items)])
    hi = max([0.0, *(v for _, v in items)])
    span = (hi - lo) or 1.0
    slot = min(90.0, (W - 2 * PAD) / max(1, len(items)))

    def y(v: float) -> float:
        return H - 40 - (v - lo) * (H - 76) / span

    bars = []
    for i, (label, v) in enumerate(items):
        x = PAD + i * slot + slot * 0.15
        top, bottom = sorted((y(v), y(0.0)))
        bars.append(
            f'<rect x="{x:.1f}" y="{top:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{max(1.0, bottom - top):.1f}" fill="{UP if v >= 0 else DOWN}">'
            f"<title>{_e(label)}: {v:+,.2f}</title></rect>"
            + "".join(
                f'<text x="{x + slot * 0.35:.1f}" y="{H - 24 + 12 * k}" text-anchor="middle">'
                f"{_e(word[:14])}</text>"
                for k, word in enumerate(label.split(" ", 1))
            )
            + f'<text x="{x + slot * 0.35:.1f}" y="{top - 3:.1f}" text-anchor="middle">'
            f"{v:+,.0f}</text>"
        )
    return (
        f'<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{_e(title)}">'
        f'<text x="{PAD}" y="16">{_e(title)}</text>'
        f'<line x1="{PAD}" x2="{W - PAD}" y1="{y(0.0):.1f}" y2="{y(0.0):.1f}" stroke="#8c959f"/>'
        + "".join(bars)
        + ("" if items else f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle">no trades</text>')
        + "</svg>"
    )


def _evidence(signal: dict[str, Any] | None) -> str:
    if not signal:
        return "—"
    rules = "".join(
        f"<li><code>{_e(ev['rule'])}</code> "
        + ", ".join(f"{_e(k)}={_e(v)}" for k, v in ev["inputs"].items())
        + "</li>"
        for ev in signal["evidence"]
    )
    return (
        f"<details><summary>{_e(signal['recommendation'])} p={signal['probability']:.2f} "
        f"conv={signal['conviction']:.2f}</summary>"
        f"<div>{_e(signal['reason'] or '')}</div><ul>{rules}</ul></details>"
    )


def _cell(v: Any, text: str | None = None, left: bool = False, cls: str = "") -> str:
    klass = " ".join(c for c in ("l" if left else "", cls) if c)
    attr = f' class="{klass}"' if klass else ""
    return f'<td{attr} data-v="{_e(v)}">{text if text is not None else _e(v)}</td>'


def _trades_table(trades: list[dict[str, Any]]) -> str:
    head = [
        ("#", False),
        ("entry", True),
        ("exit", True),
        ("symbol", True),
        ("qty", False),
        ("entry px", False),
        ("exit px", False),
        ("gross", False),
        ("charges", False),
        ("net", False),
        ("entry reason", True),
        ("exit reason", True),
        ("evidence", True),
    ]
    rows = [
        (
            "<tr>"
            + _cell(t["n"])
            + _cell(t["entry_ts"], _e(t["entry_ts"][5:].replace("T", " ")), left=True)
            + _cell(t["exit_ts"], _e(t["exit_ts"][5:].replace("T", " ")), left=True)
            + _cell(t["symbol"], left=True)
            + _cell(t["quantity"])
            + _cell(t["entry_price"], f"{t['entry_price']:.2f}")
            + _cell(t["exit_price"], f"{t['exit_price']:.2f}")
            + _cell(t["gross"], _money(t["gross"]), cls=_cls(t["gross"]))
            + _cell(t["charges"], f"{t['charges']:.2f}")
            + _cell(t["net"], _money(t["net"]), cls=_cls(t["net"]))
            + _cell(t["entry_reason"], left=True)
            + _cell(t["exit_kind"], f"<b>{_e(t['exit_kind'])}</b>: {_e(t['exit_reason'])}", True)
            + _cell("", _evidence(t["signal"]), left=True)
            + "</tr>"
        )
        for t in trades
    ]
    ths = "".join(
        f'<th class="l">{_e(h)}</th>' if left else f"<th>{_e(h)}</th>" for h, left in head
    )
    return (
        f'<table class="sortable"><thead><tr>{ths}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _group_table(rows: list[dict[str, Any]], key: str) -> str:
    body = "".join(
        "<tr>"
        + _cell(r[key], left=True)
        + _cell(r["trades"])
        + _cell(r["wins"])
        + _cell(r["gross"], _money(r["gross"]))
        + _cell(r["net"], _money(r["net"]), cls=_cls(r["net"]))
        + "</tr>"
        for r in rows
    )
    return (
        f'<table class="sortable"><thead><tr><th class="l">{_e(key.replace("_", " "))}</th>'
        f"<th>trades</th><th>wins</th><th>gross</th><th>net</th></tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def render(data: dict[str, Any]) -> str:
    """The whole report page."""
    m = data["metrics"]
    tapes = data["tapes"]
    cards = [
        ("net P&L", _money(m["net_pnl"])),
        ("gross P&L", _money(m["gross_pnl"])),
        ("charges", _num(m["charges"])),
        ("trades", str(m["trades"])),
        ("win rate", "—" if m["win_rate"] is None else f"{100 * m['win_rate']:.1f} %"),
        ("payoff ratio", _num(m["payoff_ratio"])),
        ("profit factor", _num(m["profit_factor"])),
        ("max drawdown", _num(m["max_drawdown"])),
        ("Sharpe (daily, ×√252)", _num(m["sharpe_daily_annualised"])),
        ("Sortino (daily, ×√252)", _num(m["sortino_daily_annualised"])),
        (
            "time in market",
            "—" if m["time_in_market"] is None else f"{100 * m['time_in_market']:.1f} %",
        ),
        ("slippage vs touch", _num(m["slippage_vs_touch"])),
    ]
    charge_parts = " · ".join(f"{k} {v:,.2f}" for k, v in m["charges_by_part"].items())
    span = f"{tapes[0]['start']} → {tapes[-1]['end']}" if tapes else "no tapes"
    equity = [p["equity"] for p in data["equity"]]
    drawdown = [p["drawdown"] for p in data["equity"]]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        "<title>smartflow backtest</title>"
        f"<style>{CSS}</style></head><body>"
        "<h1>smartflow backtest</h1>"
        f'<div class="sub">{_e(span)} · {len(tapes)} tape(s): '
        f"{_e(', '.join(t['name'] for t in tapes))} · profile {_e(data['config']['profile'])}"
        " · rupees</div>"
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for k, v in cards)
        + "</div>"
        f'<div class="sub">charges: {_e(charge_parts)}</div>'
        '<h2>Equity and drawdown (net, after each exit)</h2><div class="grid">'
        + line_chart(equity, "equity, rupees", LINE)
        + line_chart(drawdown, "drawdown, rupees", DOWN, area=True)
        + '</div><h2>P&amp;L by day, signal kind, hour and exit</h2><div class="grid">'
        + bar_chart([(d["day"], d["net"]) for d in data["by_day"]], "net P&L by day")
        + bar_chart([(g["entry_kind"], g["net"]) for g in data["by_kind"]], "net P&L by signal")
        + bar_chart([(g["hour"], g["net"]) for g in data["by_hour"]], "net P&L by entry hour")
        + bar_chart([(g["exit_kind"], g["net"]) for g in data["by_exit"]], "net P&L by exit")
        + '</div><div class="grid">'
        + _group_table(data["by_kind"], "entry_kind")
        + _group_table(data["by_exit"], "exit_kind")
        + "</div><h2>Trades</h2>"
        + _trades_table(data["trades"])
        + f"<script>{SCRIPT}</script></body></html>\n"
    )


def write_report(out_dir: Path) -> Path:
    """Render ``out_dir/report.html`` from ``out_dir/backtest.json``; return its path."""
    data = msgspec.json.decode((out_dir / RESULT_FILE).read_bytes())
    path = out_dir / REPORT_FILE
    path.write_text(render(data), encoding="utf-8")
    return path
