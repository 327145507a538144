"""The session summary a daemon reports when it stops: what it saw and what it did.

One structured ``session.summary`` log event (for machines and journald) and a one-screen block
on stderr (for the person who ran it; stdout stays one JSON object per line when logging JSON):
signals by recommendation, order intents and orders by purpose and final state, fills, each
contract traded with its P&L, and the day's P&L realised and marked to market, gross and net of
the charges booked with each fill (orders/charges.py).
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any, TextIO

from smartflow.core.messages import SmartMoneySignal
from smartflow.journal.store import FillRow, OrderRow
from smartflow.orders.router import OrderRouter


RECOMMENDATIONS = ("BUY_CALL", "BUY_PUT", "NEUTRAL", "AVOID")


class SessionSummary:
    """Counts a run's signals, orders and fills as they happen; reports them at stop."""

    def __init__(self) -> None:
        self.signals: Counter[str] = Counter()
        self.tradable = 0
        self.orders: dict[str, OrderRow] = {}
        self.fills = 0

    def on_signal(self, signal: SmartMoneySignal) -> None:
        """Every emitted signal (the daemon's signal hook)."""
        self.signals[signal.recommendation] += 1
        self.tradable += signal.can_trade

    def on_order_event(self, kind: str, row: OrderRow, _fill: FillRow | None = None) -> None:
        """Every order change and fill (the router's event hook)."""
        self.orders[row.order_id] = row
        if kind == "fill":
            self.fills += 1

    def build(
        self, router: OrderRouter | None, entries: int, exits: int, seconds: float, mode: str
    ) -> dict[str, Any]:
        """The summary as plain data (the log event's fields)."""
        realised, unrealised = router.day_pnl() if router is not None else (0.0, 0.0)
        by_purpose = Counter(o.purpose for o in self.orders.values())
        by_state = Counter(o.state for o in self.orders.values())
        contracts = []
        for pos in router.positions.values() if router is not None else ():
            bought = [o for o in self.orders.values() if o.token == pos.token and o.side == "BUY"]
            sold = [o for o in self.orders.values() if o.token == pos.token and o.side == "SELL"]
            if not bought and not sold:
                continue  # carried from an earlier run and not traded in this one
            contracts.append(
                {
                    "symbol": pos.symbol,
                    "bought": sum(o.filled_quantity for o in bought),
                    "sold": sum(o.filled_quantity for o in sold),
                    "open_quantity": pos.net_quantity,
                    "realised": round(pos.realised_pnl, 2),
                    "charges": round(pos.charges, 2),
                }
            )
        charges = sum(p.charges for p in router.positions.values()) if router is not None else 0.0
        return {
            "mode": mode,
            "seconds": round(seconds, 1),
            "signals": sum(self.signals.values()),
            "signals_by_kind": {k: self.signals[k] for k in RECOMMENDATIONS if self.signals[k]},
            "tradable_signals": self.tradable,
            "entry_intents": entries,
            "exit_intents": exits,
            "orders": len(self.orders),
            "orders_by_purpose": dict(sorted(by_purpose.items())),
            "orders_by_state": dict(sorted(by_state.items())),
            "fills": self.fills,
            "contracts": contracts,
            "open_positions": sum(1 for c in contracts if c["open_quantity"]),
            "realised": round(realised, 2),
            "unrealised": round(unrealised, 2),
            "pnl": round(realised + unrealised, 2),
            "charges": round(charges, 2),
            "net_pnl": round(realised + unrealised - charges, 2),
        }


def _counts(counts: dict[str, int]) -> str:
    return " · ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def render(s: dict[str, Any]) -> str:
    """The summary as a one-screen text block."""
    title = f"smartflow session summary — {s['mode']}, {s['seconds']:g} s"
    lines = [
        f"── {title} " + "─" * max(0, 72 - len(title)),
        f"signals   {s['signals']:>4}   {_counts(s['signals_by_kind'])}"
        f"   (tradable {s['tradable_signals']})",
        f"intents   {s['entry_intents'] + s['exit_intents']:>4}   entries {s['entry_intents']}"
        f" · exits {s['exit_intents']}",
        f"orders    {s['orders']:>4}   {_counts(s['orders_by_purpose'])}"
        f"   ({_counts(s['orders_by_state'])})",
        f"fills     {s['fills']:>4}",
    ]
    for c in s["contracts"]:
        held = f", holding {c['open_quantity']}" if c["open_quantity"] else ", flat"
        lines.append(
            f"  {c['symbol']:<28} bought {c['bought']} sold {c['sold']}{held}"
            f"   realised {c['realised']:+.2f} charges {c['charges']:.2f}"
        )
    lines.append(
        f"P&L       realised {s['realised']:+.2f} · unrealised {s['unrealised']:+.2f}"
        f" · total {s['pnl']:+.2f} rupees"
    )
    lines.append(
        f"net       gross {s['pnl']:+.2f} − charges {s['charges']:.2f} = {s['net_pnl']:+.2f} rupees"
    )
    lines.append("─" * 76)
    return "\n".join(lines)


def report(summary: dict[str, Any], log: Any, out: TextIO | None = None) -> None:
    """Log the ``session.summary`` event and print the block to ``out`` (stderr by default)."""
    log.info("session.summary", **summary)
    print(render(summary), file=out or sys.stderr, flush=True)
