"""The dashboard's section of the API snapshot (``ui``): what ``/ui`` draws between bar closes.

Built on the trading loop only while a dashboard is open (the section is ``want``-ed like the
other costly ones), so it stays cheap (about 0.2 ms for an 81-strike chain): per strike the
call's and put's LTP, OI, IV and delta and the detector's build-up class and traps as of the last
bar close, gathered off the tables one numpy column at a time; the battlefield from the latest
decision's evidence; today's orders as the router reports them (kept from its events, bounded),
positions and P&L; and the tick → signal / intent latency percentiles estimated from the
Prometheus histograms. The daemon and ``smartflow replay --serve`` both build it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from prometheus_client import Histogram

from smartflow.analytics.detectors import BUILDUP_NAMES, SmartMoneyDetector, trap_names
from smartflow.app.trading import Trading
from smartflow.chain.state import ChainBook, ChainState
from smartflow.journal.store import FillRow, OrderRow
from smartflow.kernels import layout as L


ORDERS_KEPT = 200
QUANTILES = (0.5, 0.9, 0.99)


def _num(x: float, nd: int) -> float | None:
    return round(x, nd) if math.isfinite(x) else None


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def quantiles(hist: Histogram) -> dict[str, Any]:
    """p50/p90/p99 of a histogram, interpolated in its buckets as Prometheus does, and the count.

    An estimate: a quantile is only known to lie in its bucket. None while nothing was observed.
    """
    bounds = sorted(
        (float(s.labels["le"]), s.value)
        for metric in hist.collect()
        for s in metric.samples
        if s.name.endswith("_bucket")
    )
    total = bounds[-1][1] if bounds else 0.0
    out: dict[str, Any] = {"count": int(total)}
    for q in QUANTILES:
        out[f"p{round(q * 100)}"] = _bucket_quantile(bounds, q * total) if total else None
    return out


def _bucket_quantile(bounds: list[tuple[float, float]], rank: float) -> float | None:
    lo_bound, lo_count = 0.0, 0.0
    for le, count in bounds:
        if count >= rank:
            if math.isinf(le):
                return lo_bound  # beyond the last finite bucket: its bound is all we know
            share = (rank - lo_count) / (count - lo_count) if count > lo_count else 1.0
            return lo_bound + (le - lo_bound) * share
        lo_bound, lo_count = le, count
    return None


class UiSection:
    """Builds the ``ui`` snapshot section from the pipeline's parts."""

    def __init__(
        self,
        book: ChainBook,
        detectors: dict[str, SmartMoneyDetector],
        trading: Trading | None,
        now_ns: Callable[[], int],
        latency: dict[str, Histogram] | None = None,
        stale_stages: Callable[[], list[str]] | None = None,
        orders: Sequence[OrderRow] = (),
    ) -> None:
        self.book = book
        self.detectors = detectors
        self.trading = trading
        self.now_ns = now_ns
        self.latency = latency or {}
        self.stale_stages = stale_stages
        self.orders: OrderedDict[str, dict[str, Any]] = OrderedDict()
        # Today's orders from the journal (a restarted daemon's filled ones too), then the
        # router's own; its events keep them current from here on.
        for row in orders:
            self.on_order("journal", row, None)
        if trading is not None:
            for row in trading.router.orders.values():
                self.on_order("restored", row, None)
            trading.router.on_event.append(self.on_order)

    def on_order(self, kind: str, row: OrderRow, fill: FillRow | None) -> None:
        """The router's event hook: keep the order's latest state (the newest last)."""
        self.orders[row.order_id] = {
            "order_id": row.order_id,
            "created_ns": row.created_ns,
            "updated_ns": row.updated_ns,
            "symbol": row.symbol,
            "side": row.side,
            "quantity": row.quantity,
            "filled_quantity": row.filled_quantity,
            "limit_price": row.limit_price,
            "average_price": row.average_price,
            "purpose": row.purpose,
            "state": row.state,
            "reason": row.reason,
        }
        self.orders.move_to_end(row.order_id)
        while len(self.orders) > ORDERS_KEPT:
            self.orders.popitem(last=False)

    def _chain(self, c: ChainState) -> dict[str, Any]:
        u = c.universe
        q, f = c.q, c.f
        centre = c.spot if c.spot > 0 else c.forward
        atm = (
            u.strikes_paise[u.atm_index(round(centre * 100))] / 100
            if u.strikes_paise and math.isfinite(centre) and centre > 0
            else None
        )

        # Every side's cells in one numpy gather per column: per-element indexing of the
        # tables costs ten times as much, all of it on the trading loop.
        ks = u.strikes_paise
        rows = np.array(
            [
                c.row_by_token[i.token] if (i := side.get(k)) else -1
                for side in (u.calls, u.puts)
                for k in ks
            ],
            dtype=np.int64,
        )
        at = np.maximum(rows, 0)
        live = ((rows >= 0) & (q[at, L.Q_TICKS] > 0)).tolist()
        ltp = q[at, L.Q_LTP]
        ltps = np.where(ltp > 0, ltp / 100, np.nan).tolist()
        ois = q[at, L.Q_OI].astype(np.int64).tolist()
        ivs = np.round(f[at, L.F_IV], 4).tolist()
        deltas = np.round(f[at, L.F_DELTA], 3).tolist()
        det = self.detectors.get(c.root)
        if det is not None and det.latest is not None:
            # The detector's per-contract states (``contract_states``) as of the last bar close.
            builds = det.di[at, L.DI_BUILDUP].tolist()
            trap_bits = det.di[at, L.DI_TRAPS].tolist()
        else:
            builds = trap_bits = [0] * len(live)
        cells: list[list[Any] | None] = []
        for j, ok in enumerate(live):
            cells.append(
                [
                    _finite(ltps[j]),
                    ois[j],
                    _finite(ivs[j]),
                    _finite(deltas[j]),
                    BUILDUP_NAMES[builds[j]],
                    trap_names(trap_bits[j]) if trap_bits[j] else [],
                ]
                if ok
                else None
            )
        n = len(ks)
        strikes = [
            [k / 100, cells[i], cells[n + i]]
            for i, k in enumerate(ks)
            if cells[i] is not None or cells[n + i] is not None
        ]
        det = self.detectors.get(c.root)
        battle = None
        if det is not None and det.latest is not None:
            for e in det.latest.evidence:
                if e.rule == "BATTLEFIELD":
                    battle = dict(e.inputs)
            battle = (battle or {}) | {"market_control": det.latest.market_control}
        return {
            "spot": _num(c.spot, 2),
            "forward": _num(c.forward, 2),
            "atm": atm,
            "expiry": u.expiry.isoformat(),
            "strikes": strikes,
            "battle": battle,
        }

    def build(self) -> dict[str, Any]:
        """The section: chains, orders, positions, P&L, kill switch, latencies, stale stages."""
        body: dict[str, Any] = {
            "ts_ns": self.now_ns(),
            "columns": ["ltp", "oi", "iv", "delta", "buildup", "traps"],
            "chains": {c.root: self._chain(c) for c in self.book.chains},
            "orders": list(self.orders.values())[-50:],
            "latency": {name: quantiles(h) for name, h in self.latency.items()},
            "stale_stages": self.stale_stages() if self.stale_stages else [],
        }
        t = self.trading
        if t is not None:
            realised, unrealised = t.router.day_pnl()
            body["positions"] = [
                {
                    "symbol": p.symbol,
                    "underlying": p.underlying,
                    "net_quantity": p.net_quantity,
                    "average_price": round(p.average_price, 2),
                    "realised_pnl": round(p.realised_pnl, 2),
                    "charges": round(p.charges, 2),
                }
                for p in t.router.positions.values()
            ]
            body["pnl"] = {
                "realised": round(realised, 2),
                "unrealised": round(unrealised, 2),
            } | t.pnl()
            body["kill_switch"] = {"on": t.guard.killed, "reason": t.guard.kill_reason}
        else:
            body |= {"positions": [], "pnl": None, "kill_switch": None}
        return body
