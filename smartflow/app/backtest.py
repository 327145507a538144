"""``smartflow backtest``: tapes through the live pipeline, into trades, metrics and a report.

Each tape runs through its own ``Replayer`` (one trading day each): the same chain, detectors,
flow, strategy (with strategy/exits.py), risk checks, order router and paper broker as a live
run, with the paper broker filling LIMIT orders by walking the recorded five-level book and every
fill charged under ``[costs]`` (orders/charges.py) and journalled. From the journal the backtest
builds round trips (flat → flat per contract) with their entry signal and evidence, exit reason,
gross and net P&L, charges and slippage against the touch when the intent was made. A position
still open at the end of a tape is closed on paper at its best bid, charged as a sell, with the
exit reason ``end of data``.

Metrics (``metrics.json``; rupees unless named otherwise):

- net and gross P&L, charges by component, slippage against the touch (already in gross);
- win rate (net P&L > 0), payoff ratio (average win ÷ average loss, by magnitude), profit
  factor (sum of wins ÷ sum of losses, by magnitude) — null without a win or a loss;
- max drawdown of the equity curve (cumulative net P&L at each exit, from 0), also as % of
  ``strategy.capital_rupees``;
- Sharpe and Sortino of daily net P&L, annualised by √252 (trading days): Sharpe = mean ÷
  sample standard deviation; Sortino = mean ÷ √(mean of squared negative days) — null with fewer
  than two days or no deviation; a tape day without trades counts as a 0 day;
- time in market: the share of the tapes' time with at least one position open.

Same tapes and config → the same bytes in every file: nothing reads the wall clock, every
collection is ordered, and tapes are named by their file name only.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import multiprocessing
import os
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from smartflow.app.replay import Replayer
from smartflow.app.report import RESULT_FILE, write_report
from smartflow.config import Config
from smartflow.core.errors import ConfigError
from smartflow.core.messages import OrderIntent, SmartMoneySignal
from smartflow.core.timeutil import iso_ist, ist_datetime
from smartflow.instruments.master import ScripMaster, load_file
from smartflow.journal.store import CHARGE_PARTS, FillCharges, Journal
from smartflow.orders.charges import ChargeModel
from smartflow.strategy.exits import exit_kind
from smartflow.tape.format import open_tape


NS = 1_000_000_000
TRADING_DAYS = 252
METRICS_FILE = "metrics.json"
# Chain snapshots are replay output a backtest does not read: one at the end is enough.
NO_SNAPSHOTS_S = 10.0 * 365 * 86400
END_OF_DATA = "end of data (closed on paper at the best bid)"


def _ts(ns: int) -> str:
    return iso_ist(ns)[:19]


def _r2(x: float) -> float:
    return round(x, 2) + 0.0  # + 0.0: never a "-0.0" in the output


def _ratio(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, 4)


@dataclass
class _Leg:
    """One order's fills in a round trip."""

    side: str
    quantity: int = 0
    value: float = 0.0
    charges: FillCharges = field(default_factory=FillCharges)
    slippage: float = 0.0
    first_ns: int = 0
    last_ns: int = 0


@dataclass
class _Open:
    token: str
    symbol: str
    underlying: str
    exchange: str
    entry_order: str
    net: int = 0
    legs: list[_Leg] = field(default_factory=list)
    exit_orders: list[str] = field(default_factory=list)


class _BacktestReplayer(Replayer):
    """A replayer that keeps the entry signals and intents, and reads its journal at the end."""

    def __init__(self, cfg: Config, master: ScripMaster, start_ns: int, sink: Any) -> None:
        super().__init__(cfg, master, sink, NO_SNAPSHOTS_S, start_ns)
        self.entry_signals: dict[str, SmartMoneySignal] = {}
        self._awaiting: dict[str, tuple[str, int]] = {}
        self.touch: dict[str, float] = {}
        self.trades: list[dict[str, Any]] = []
        self.open_intervals: list[tuple[int, int]] = []
        if self.trading is not None:
            self.trading.router.on_intent.append(self._on_intent)
            self.book.on_close = self._close_bar

    def _on_intent(self, intent: OrderIntent) -> None:
        assert self.trading is not None  # noqa: S101 — hooked only with trading on
        q = self.trading.market.quote(intent.token)
        touch = (q.ask if intent.side == "BUY" else q.bid) if q else 0.0
        self.touch[intent.intent_id] = touch
        if intent.purpose == "ENTRY" and intent.signal_ts is not None:
            self._awaiting[intent.intent_id] = (intent.underlying, intent.signal_ts)

    def _close_bar(self, bar_end_ns: int, seq: int, closed_at_ns: int) -> None:
        self.pipeline.close_bar(bar_end_ns, seq, closed_at_ns)
        # An entry is made on its bar's decision; explained by now, it is the detector's latest.
        for intent_id, (underlying, ts) in list(self._awaiting.items()):
            latest = self.detectors[underlying].latest
            if latest is not None and latest.ts == ts:
                self.entry_signals[intent_id] = latest
                del self._awaiting[intent_id]

    async def arun(self, tape: Any, timing: bool = False) -> Any:
        """Replay, then build the round trips from the journal before it closes."""
        try:
            summary = await self._run(tape, timing)
            if self.journal is not None:
                self._collect(self.journal)
            return summary
        finally:
            if self.journal is not None:
                self.journal.close()

    def _collect(self, j: Journal) -> None:
        orders = {o.order_id: o for o in j.orders()}
        charges = j.fill_charges()
        intent_of: dict[str, str] = {}
        for oid in orders:
            events = j.order_events(oid)
            if events and events[0][2].startswith("intent "):
                intent_of[oid] = events[0][2].removeprefix("intent ")
        fills = j.query("SELECT * FROM fills ORDER BY rowid")
        opened: dict[str, _Open] = {}
        since: dict[str, int] = {}
        legs: dict[tuple[str, str], _Leg] = {}
        for f in fills:
            order = orders[f["order_id"]]
            token, qty, price, ts = f["token"], int(f["quantity"]), float(f["price"]), f["ts_ns"]
            trade = opened.get(token)
            if trade is None:
                trade = opened[token] = _Open(
                    token, order.symbol, order.underlying, order.exchange, order.order_id
                )
                since[token] = ts
            leg = legs.get((token, order.order_id))
            if leg is None:
                leg = legs[(token, order.order_id)] = _Leg(order.side, first_ns=ts)
                trade.legs.append(leg)
                if order.side == "SELL":
                    trade.exit_orders.append(order.order_id)
            touch = self.touch.get(intent_of.get(order.order_id, ""), 0.0)
            if touch > 0:
                sign = 1 if order.side == "BUY" else -1
                leg.slippage += sign * (price - touch) * qty
            leg.quantity += qty
            leg.value += qty * price
            leg.charges = _add(leg.charges, charges.get(f["fill_id"], FillCharges()))
            leg.last_ns = ts
            trade.net += qty if order.side == "BUY" else -qty
            if trade.net == 0:
                self.trades.append(self._trade(trade, orders, intent_of))
                self.open_intervals.append((since.pop(token), ts))
                del opened[token]
                legs = {k: v for k, v in legs.items() if k[0] != token}
        for token in sorted(opened):
            self._close_at_end(opened[token], orders, intent_of)
            self.open_intervals.append((since[token], self.last_ns))

    def _close_at_end(
        self, trade: _Open, orders: dict[str, Any], intent_of: dict[str, str]
    ) -> None:
        assert self.trading is not None  # noqa: S101 — trades exist only with trading on
        q = self.trading.market.quote(trade.token)
        price = (q.bid if q.bid > 0 else q.ltp) if q else 0.0
        if not price > 0:
            # Never quoted since: the entry price (no gain or loss), rather than a made-up one.
            bought = [leg for leg in trade.legs if leg.side == "BUY"]
            price = sum(x.value for x in bought) / max(1, sum(x.quantity for x in bought))
        model = ChargeModel(self.cfg.costs)
        leg = _Leg(
            "SELL",
            quantity=trade.net,
            value=trade.net * price,
            charges=model.fill(trade.exchange, "SELL", trade.net, price),
            first_ns=self.last_ns,
            last_ns=self.last_ns,
        )
        trade.legs.append(leg)
        trade.net = 0
        self.trades.append(self._trade(trade, orders, intent_of, END_OF_DATA))

    def _trade(
        self,
        t: _Open,
        orders: dict[str, Any],
        intent_of: dict[str, str],
        forced_exit: str = "",
    ) -> dict[str, Any]:
        buys = [leg for leg in t.legs if leg.side == "BUY"]
        sells = [leg for leg in t.legs if leg.side == "SELL"]
        bought = sum(leg.quantity for leg in buys)
        cost = sum(leg.value for leg in buys)
        proceeds = sum(leg.value for leg in sells)
        charges = FillCharges()
        for leg in t.legs:
            charges = _add(charges, leg.charges)
        gross = proceeds - cost
        entry = orders[t.entry_order]
        exit_reason = forced_exit or (orders[t.exit_orders[-1]].reason if t.exit_orders else "")
        words = entry.reason.split()
        intent_id = intent_of.get(t.entry_order, "")
        signal = self._entry_signal(intent_id)
        entry_ns, exit_ns = t.legs[0].first_ns, t.legs[-1].last_ns
        return {
            "day": ist_datetime(entry_ns).date().isoformat(),
            "underlying": t.underlying,
            "symbol": t.symbol,
            "quantity": bought,
            "entry_ts": _ts(entry_ns),
            "exit_ts": _ts(exit_ns),
            "entry_ns": entry_ns,
            "exit_ns": exit_ns,
            "hold_s": round((exit_ns - entry_ns) / NS, 3),
            "entry_price": round(cost / bought, 4) if bought else 0.0,
            "exit_price": round(proceeds / bought, 4) if bought else 0.0,
            "gross": _r2(gross),
            "charges": _r2(charges.total),
            "charges_by_part": {c: _r2(getattr(charges, c)) for c in CHARGE_PARTS},
            "net": _r2(gross - charges.total),
            "slippage": _r2(sum(leg.slippage for leg in t.legs)),
            "entry_kind": " ".join(words[:2]) if len(words) >= 2 else entry.reason,
            "entry_reason": entry.reason,
            "exit_kind": "end of data" if forced_exit else exit_kind(exit_reason),
            "exit_reason": exit_reason,
            "signal": signal,
        }

    def _entry_signal(self, intent_id: str) -> dict[str, Any] | None:
        s = self.entry_signals.get(intent_id)
        if s is None:
            return None
        return {
            "ts": _ts(s.ts),
            "recommendation": s.recommendation,
            "probability": round(s.smart_money_probability, 4),
            "conviction": round(s.oi_conviction_score, 4),
            "trap_probability": round(s.trap_probability, 4),
            "fresh_position": s.fresh_position_detected,
            "reason": s.reason,
            "evidence": [
                {"rule": e.rule, "inputs": msgspec.to_builtins(e.inputs)} for e in s.evidence
            ],
        }


def _add(a: FillCharges, b: FillCharges) -> FillCharges:
    return FillCharges(**{c: round(getattr(a, c) + getattr(b, c), 2) for c in CHARGE_PARTS})


@dataclass
class TapeRun:
    """What one tape produced."""

    name: str
    start_ns: int
    end_ns: int
    summary: dict[str, Any]
    trades: list[dict[str, Any]]
    open_intervals: list[tuple[int, int]]


def instruments_for(tape: str, instruments: str | None) -> str:
    """The scrip master of a tape: the one given, else ``instruments.json`` beside the tape."""
    if instruments:
        return instruments
    return str(Path(tape).resolve().parent / "instruments.json")


def run_tape(cfg: Config, tape_path: str, instruments: str | None, name: str = "") -> TapeRun:
    """One tape through the pipeline."""
    tape = open_tape(tape_path)
    try:
        if not len(tape):
            raise ValueError(f"{tape_path}: the tape holds no frames")
        scrip = instruments_for(tape_path, instruments)
        try:
            master = load_file(scrip, set(cfg.market.underlyings))
        except OSError as e:
            raise ValueError(
                f"{scrip}: {e.strerror or e} (the scrip master of {tape_path}; "
                "--instruments FILE names one)"
            ) from None
        start = int(tape.recv_ns[0])
        with open(os.devnull, "wb") as sink:
            rep = _BacktestReplayer(cfg, master, start, sink)
            s = asyncio.run(rep.arun(tape))
        return TapeRun(
            name=name or Path(tape_path).name,
            start_ns=start,
            end_ns=rep.last_ns,
            summary={
                "frames": s.frames,
                "signals": s.signals,
                "orders": s.orders,
                "fills": s.fills,
            },
            trades=rep.trades,
            open_intervals=rep.open_intervals,
        )
    finally:
        tape.close()


# ---- metrics ---------------------------------------------------------------------------------


def _merged_seconds(intervals: list[tuple[int, int]]) -> float:
    total, end = 0, -(1 << 62)
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total / NS


def _groups(trades: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in trades:
        by[str(t[key])].append(t)
    return [
        {
            key: k,
            "trades": len(ts),
            "wins": sum(1 for t in ts if t["net"] > 0),
            "gross": _r2(sum(t["gross"] for t in ts)),
            "net": _r2(sum(t["net"] for t in ts)),
        }
        for k, ts in sorted(by.items())
    ]


def metrics(runs: list[TapeRun], capital: float) -> dict[str, Any]:
    """Every metric (module docs) and the series the report draws."""
    trades = sorted(
        (t for r in runs for t in r.trades), key=lambda t: (t["exit_ns"], t["entry_ns"])
    )
    for i, t in enumerate(trades, 1):
        t["n"] = i
        t["hour"] = ist_datetime(t["entry_ns"]).strftime("%H:00")
    nets = [t["net"] for t in trades]
    wins = [x for x in nets if x > 0]
    losses = [x for x in nets if x <= 0]
    equity: list[dict[str, Any]] = []
    level = peak = max_dd = 0.0
    for t in trades:
        level += t["net"]
        peak = max(peak, level)
        max_dd = max(max_dd, peak - level)
        equity.append(
            {"ts": t["exit_ts"], "n": t["n"], "equity": _r2(level), "drawdown": _r2(level - peak)}
        )
    days = sorted({ist_datetime(r.start_ns).date().isoformat() for r in runs})
    day_pnl = {d: 0.0 for d in days}
    for t in trades:
        day_pnl[t["day"]] = day_pnl.get(t["day"], 0.0) + t["net"]
    daily = [day_pnl[d] for d in sorted(day_pnl)]
    sharpe = sortino = None
    if len(daily) >= 2:
        mean = sum(daily) / len(daily)
        sd = math.sqrt(sum((x - mean) ** 2 for x in daily) / (len(daily) - 1))
        down = math.sqrt(sum(min(x, 0.0) ** 2 for x in daily) / len(daily))
        sharpe = mean / sd * math.sqrt(TRADING_DAYS) if sd > 0 else None
        sortino = mean / down * math.sqrt(TRADING_DAYS) if down > 0 else None
    charges = {c: _r2(sum(t["charges_by_part"][c] for t in trades)) for c in CHARGE_PARTS}
    span = sum((r.end_ns - r.start_ns) / NS for r in runs)
    in_market = sum(_merged_seconds(r.open_intervals) for r in runs)
    avg_win = sum(wins) / len(wins) if wins else None
    avg_loss = -sum(losses) / len(losses) if losses else None
    m = {
        "trades": len(trades),
        "wins": len(wins),
        "losses": len(losses),
        "gross_pnl": _r2(sum(t["gross"] for t in trades)),
        "charges": _r2(sum(t["charges"] for t in trades)),
        "charges_by_part": charges,
        "net_pnl": _r2(sum(nets)),
        "slippage_vs_touch": _r2(sum(t["slippage"] for t in trades)),
        "win_rate": _ratio(len(wins) / len(trades)) if trades else None,
        "avg_win": _ratio(avg_win),
        "avg_loss": _ratio(avg_loss),
        "payoff_ratio": _ratio(avg_win / avg_loss) if avg_win and avg_loss else None,
        "profit_factor": _ratio(sum(wins) / -sum(losses)) if wins and sum(losses) < 0 else None,
        "max_drawdown": _r2(max_dd),
        "max_drawdown_pct_capital": _ratio(100 * max_dd / capital),
        "days": len(daily),
        "sharpe_daily_annualised": _ratio(sharpe),
        "sortino_daily_annualised": _ratio(sortino),
        "time_in_market": _ratio(in_market / span) if span > 0 else None,
        "tape_seconds": round(span, 3),
    }
    return {
        "metrics": m,
        "trades": trades,
        "equity": equity,
        "by_day": [{"day": d, "net": _r2(day_pnl[d])} for d in sorted(day_pnl)],
        "by_kind": _groups(trades, "entry_kind"),
        "by_exit": _groups(trades, "exit_kind"),
        "by_hour": _groups(trades, "hour"),
    }


# ---- runs ------------------------------------------------------------------------------------


def backtest(
    cfg: Config, tapes: list[str], out_dir: str, instruments: str | None = None
) -> dict[str, Any]:
    """Run ``tapes`` (in start-time order), write the results and report into ``out_dir``."""
    if not cfg.strategy.enabled:
        raise ConfigError("backtest: strategy.enabled is false, so nothing would trade")
    names = [Path(t).name for t in tapes]
    if len(set(names)) < len(names):
        # The same file name in several folders (one per day): name each by its folder too.
        names = [f"{Path(t).parent.name}/{Path(t).name}" for t in tapes]
    runs = sorted(
        (run_tape(cfg, t, instruments, n) for t, n in zip(tapes, names, strict=True)),
        key=lambda r: (r.start_ns, r.name),
    )
    result: dict[str, Any] = {
        "tapes": [
            {"name": r.name, "start": _ts(r.start_ns), "end": _ts(r.end_ns), **r.summary}
            for r in runs
        ],
        "config": {
            "profile": cfg.detectors.profile,
            "strategy": msgspec.to_builtins(cfg.strategy),
            "costs": msgspec.to_builtins(cfg.costs),
        },
        **metrics(runs, cfg.strategy.capital_rupees),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULT_FILE).write_bytes(msgspec.json.format(msgspec.json.encode(result)) + b"\n")
    (out / METRICS_FILE).write_bytes(
        msgspec.json.format(msgspec.json.encode(result["metrics"])) + b"\n"
    )
    write_report(out)
    return result


def override(cfg: Config, key: str, value: str) -> Config:
    """``cfg`` with one dotted key set (a JSON literal, else the text); errors name the key."""
    data: dict[str, Any] = msgspec.to_builtins(cfg)
    *path, last = key.split(".")
    node = data
    for part in path:
        if not isinstance(node.get(part), dict):
            raise ConfigError(f"--sweep: unknown key `{key}`")
        node = node[part]
    if last not in node:
        raise ConfigError(f"--sweep: unknown key `{key}`")
    try:
        node[last] = msgspec.json.decode(value)
    except msgspec.DecodeError:
        node[last] = value
    try:
        return msgspec.convert(data, Config)
    except msgspec.ValidationError as e:
        raise ConfigError(f"--sweep {key}={value}: {e}") from None


def parse_sweep(specs: list[str]) -> list[tuple[str, list[str]]]:
    """``KEY=V1,V2`` specs → (key, values), in the order given."""
    out = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        if not sep or not key or not values:
            raise ConfigError(f"--sweep {spec!r}: need KEY=VALUE[,VALUE...]")
        out.append((key.strip(), [v.strip() for v in values.split(",")]))
    return out


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in ".=-_" else "_" for ch in text)


def _sweep_one(job: tuple[bytes, list[str], str, str | None]) -> dict[str, Any]:
    cfg_json, tapes, out_dir, instruments = job
    cfg = msgspec.json.decode(cfg_json, type=Config)
    result: dict[str, Any] = backtest(cfg, tapes, out_dir, instruments)["metrics"]
    return result


SWEEP_COLUMNS = (
    "trades",
    "win_rate",
    "gross_pnl",
    "charges",
    "net_pnl",
    "profit_factor",
    "max_drawdown",
    "sharpe_daily_annualised",
)


def sweep(
    cfg: Config,
    grid: list[tuple[str, list[str]]],
    tapes: list[str],
    out_dir: str,
    instruments: str | None = None,
    workers: int = 2,
) -> dict[str, Any]:
    """Every combination of the grid, across processes; one comparison table in ``out_dir``.

    Results are listed in grid order whatever order the processes finish in.
    """
    combos = list(itertools.product(*(values for _, values in grid)))
    jobs = []
    labels = []
    for i, combo in enumerate(combos):
        c = cfg
        for (key, _), value in zip(grid, combo, strict=True):
            c = override(c, key, value)
        label = " ".join(f"{k}={v}" for (k, _), v in zip(grid, combo, strict=True))
        labels.append(label)
        sub = str(Path(out_dir) / f"{i:02d}-{_slug(label)}")
        jobs.append((msgspec.json.encode(c), list(tapes), sub, instruments))
    if workers > 1 and len(jobs) > 1:
        # Spawned, not forked: a fork would copy this process's threads' locks mid-use.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            results = list(pool.map(_sweep_one, jobs))
    else:
        results = [_sweep_one(j) for j in jobs]
    rows = [
        {"run": f"{i:02d}-{_slug(label)}", "label": label, **{c: m[c] for c in SWEEP_COLUMNS}}
        for i, (label, m) in enumerate(zip(labels, results, strict=True))
    ]
    table = {"grid": [{"key": k, "values": v} for k, v in grid], "runs": rows}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_bytes(msgspec.json.format(msgspec.json.encode(table)) + b"\n")
    (out / "sweep.txt").write_text(render_sweep(rows))
    return table


def render_sweep(rows: list[dict[str, Any]]) -> str:
    """The comparison table as aligned text."""
    head = ["label", *SWEEP_COLUMNS]
    cells = [head] + [
        [str(r["label"])] + ["—" if r[c] is None else f"{r[c]:g}" for c in SWEEP_COLUMNS]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
    return "\n".join(lines) + "\n"
