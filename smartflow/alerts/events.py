"""Alert events: what the daemon tells its owner, as immutable data with one human line.

Producers turn what happened (an order row, a signal, a counter that moved) into an ``Alert``
with the functions here and hand it to ``Alerts.publish``, which only does a non-blocking put
per sink. Nothing here awaits, and nothing here is imported by the order path: the router and
the feed expose hooks and counters, and the app wires them to this package.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgspec

from smartflow.core.messages import SmartMoneySignal
from smartflow.journal.store import FillRow, OrderRow, PositionRow


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """One alert: its kind (``[alerts] kinds_off`` names), a text line and its data."""

    kind: str
    text: str
    ts_ns: int = msgspec.field(default_factory=time.time_ns)
    """Wall clock when it was raised (Unix ns); the webhook sends it as ``ts``."""
    fields: dict[str, Any] = msgspec.field(default_factory=dict)
    buttons: tuple[tuple[str, str], ...] = ()
    """(label, callback data) pairs: Telegram shows them as inline buttons; the webhook ignores
    them."""


Publish = Callable[[Alert], None]


def order_alert(kind: str, row: OrderRow, fill: FillRow | None) -> Alert | None:
    """The alert for one router event (``order`` or ``fill``), or None for a quiet state."""
    what = f"{row.side} {row.quantity} {row.symbol} @ {row.limit_price:g} ({row.purpose})"
    data: dict[str, Any] = {
        "order_id": row.order_id,
        "symbol": row.symbol,
        "side": row.side,
        "quantity": row.quantity,
        "limit_price": row.limit_price,
        "purpose": row.purpose,
        "state": row.state,
    }
    if kind == "fill" and fill is not None:
        data |= {
            "fill_quantity": fill.quantity,
            "fill_price": fill.price,
            "filled": row.filled_quantity,
        }
        if row.state == "FILLED":
            return Alert(
                kind="order_filled",
                text=f"FILLED {what}: {row.filled_quantity} at avg {row.average_price:g}",
                fields=data,
            )
        return Alert(
            kind="order_partial",
            text=(
                f"PARTIAL {what}: {fill.quantity} at {fill.price:g}, "
                f"{row.filled_quantity}/{row.quantity} filled"
            ),
            fields=data,
        )
    if row.state == "SENT":
        return Alert(kind="order_sent", text=f"SENT {what} [{row.order_id}]", fields=data)
    if row.state == "REJECTED":
        data["reason"] = row.text
        return Alert(
            kind="order_rejected",
            text=f"REJECTED {what} [{row.order_id}]: {row.text or 'no reason given'}",
            fields=data,
        )
    return None


def _evidence_line(signal: SmartMoneySignal, top: int = 2) -> str:
    parts = []
    for ev in signal.evidence[:top]:
        nums = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in sorted(ev.inputs.items())[:3]
        )
        parts.append(f"{ev.rule}({nums})" if nums else ev.rule)
    return "; ".join(parts)


def signal_alert(signal: SmartMoneySignal) -> Alert:
    """One line: the contract, the scores and the top evidence."""
    contract = f"{signal.underlying} {signal.strike:g} {signal.option_type}"
    text = (
        f"SIGNAL {signal.recommendation} {contract}: p={signal.smart_money_probability:.2f} "
        f"conviction={signal.oi_conviction_score:.2f} "
        f"aggression={signal.volume_aggression_score:.2f} "
        f"trap={signal.trap_probability:.2f}"
    )
    evidence = _evidence_line(signal)
    if evidence:
        text += f" | {evidence}"
    return Alert(
        kind="signal",
        text=text,
        fields={
            "underlying": signal.underlying,
            "recommendation": signal.recommendation,
            "strike": signal.strike,
            "option_type": signal.option_type,
            "token": signal.token,
            "probability": signal.smart_money_probability,
            "oi_conviction": signal.oi_conviction_score,
            "volume_aggression": signal.volume_aggression_score,
            "trap_probability": signal.trap_probability,
            "evidence": [ev.rule for ev in signal.evidence[:3]],
        },
    )


class SignalThrottle:
    """At most one tradable-signal alert per contract, and per underlying, every interval."""

    def __init__(self, interval_s: float, now: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.now = now
        self._last: dict[str, float] = {}
        self.suppressed = 0

    def allow(self, signal: SmartMoneySignal) -> bool:
        """True when ``signal`` is tradable and neither its contract nor underlying just alerted."""
        if not signal.can_trade or signal.recommendation not in ("BUY_CALL", "BUY_PUT"):
            return False
        if signal.strike is None or signal.option_type is None:
            return False
        t = self.now()
        keys = (f"u:{signal.underlying}", f"c:{signal.token}")
        if any(t - self._last.get(k, -1e18) < self.interval_s for k in keys):
            self.suppressed += 1
            return False
        for k in keys:
            self._last[k] = t
        return True


def contract_pnl(
    positions: Iterable[PositionRow], marks: Callable[[str], float | None]
) -> list[tuple[str, float]]:
    """(symbol, realised + marked-to-market P&L) per contract traded, best first."""
    out = []
    for pos in positions:
        pnl = pos.realised_pnl
        if pos.net_quantity:
            mark = marks(pos.token)
            if mark is not None and mark > 0:
                pnl += (mark - pos.average_price) * pos.net_quantity
        out.append((pos.symbol, round(pnl, 2)))
    return sorted(out, key=lambda x: (-x[1], x[0]))


def daily_summary(
    day: str,
    trades: int,
    realised: float,
    unrealised: float,
    by_contract: Sequence[tuple[str, float]],
) -> Alert:
    """The after-the-close summary: trades, P&L, the best and the worst contract."""
    text = (
        f"DAY {day}: {trades} fills, P&L {realised + unrealised:+.2f} "
        f"(realised {realised:+.2f}, open {unrealised:+.2f})"
    )
    if by_contract:
        best, worst = by_contract[0], by_contract[-1]
        text += f"; best {best[0]} {best[1]:+.2f}; worst {worst[0]} {worst[1]:+.2f}"
    return Alert(
        kind="daily_summary",
        text=text,
        fields={
            "day": day,
            "fills": trades,
            "realised": round(realised, 2),
            "unrealised": round(unrealised, 2),
            "contracts": [{"symbol": s, "pnl": p} for s, p in by_contract],
        },
    )
