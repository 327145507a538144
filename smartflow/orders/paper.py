"""The paper broker: Angel's order API semantics, filled against the live best-five book.

It implements the same ``BrokerPort`` as the live gateway, so the router, risk checks and
journal run exactly as they do live; only this final hop differs. A LIMIT order becomes active
``paper_latency_ms`` after it is placed (on the analytics clock, so replay is deterministic),
then, each time its contract's book changes, it takes what the visible depth offers at or better
than its limit, level by level; the rest rests. With ``paper_partial_fill_pct`` > 0 a matching
pass takes only half of what is offered that often (seeded, deterministic), so partial fills
happen. Because the visible book is a snapshot, a resting order consumes each snapshot once.

The paper broker's orders live in the router's journal: after a restart ``restore`` re-creates the
resting ones, as an exchange would still hold them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import msgspec

from smartflow.config import OrdersConfig
from smartflow.core.clock import Clock
from smartflow.journal.store import OrderRow
from smartflow.orders.port import (
    BrokerOrder,
    BrokerPosition,
    MarketView,
    OrderUpdateHandler,
    PlaceRequest,
    Reply,
)


NS = 1_000_000_000


@dataclass
class _PaperOrder:
    broker_order_id: str
    req: PlaceRequest
    status: str = "OPEN"
    filled: int = 0
    avg: float = 0.0
    active_ns: int = 0
    seen_seq: int = -1
    text: str = ""
    updated_ns: int = 0

    def view(self) -> BrokerOrder:
        return BrokerOrder(
            broker_order_id=self.broker_order_id,
            tag=self.req.tag,
            status=self.status,  # type: ignore[arg-type]
            token=self.req.token,
            side=self.req.side,
            quantity=self.req.quantity,
            filled_quantity=self.filled,
            average_price=round(self.avg, 4),
            price=self.req.price,
            text=self.text,
            update_ns=self.updated_ns,
        )


class PaperBroker:
    """``BrokerPort`` that matches against the chain's book."""

    name = "paper"

    def __init__(
        self, cfg: OrdersConfig, market: MarketView, clock: Clock, log: Any, seed: int = 0
    ) -> None:
        self.cfg = cfg
        self.market = market
        self.clock = clock
        self.log = log
        self.latency_ns = int(cfg.paper_latency_ms * 1_000_000)
        self.partial_p = cfg.paper_partial_fill_pct / 100
        self._rng = random.Random(seed)
        self._orders: dict[str, _PaperOrder] = {}
        self._handlers: list[OrderUpdateHandler] = []
        self._seq = 0
        self.fills = 0
        self.auth_failed: str | None = None  # paper never logs in

    # ---- BrokerPort ---------------------------------------------------------------------

    async def start(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Nothing to release."""

    def subscribe_updates(self, handler: OrderUpdateHandler) -> None:
        """Register a status/fill listener."""
        self._handlers.append(handler)

    async def place(self, req: PlaceRequest) -> Reply:
        """Accept a LIMIT order (Angel-like validation), matched once the latency has passed."""
        if req.quantity <= 0 or req.price <= 0:
            return Reply(outcome="REJECTED", code="AB1007", message="INVALID PARAMETERS")
        if len(req.tag) >= 20:
            return Reply(
                outcome="REJECTED",
                code="AB4008",
                message="ordertag length should be less than 20 characters",
            )
        self._seq += 1
        oid = f"P{self._seq:09d}"
        now = self.clock.now_ns()
        order = _PaperOrder(oid, req, active_ns=now + self.latency_ns, updated_ns=now)
        self._orders[oid] = order
        self._publish(order)
        return Reply(outcome="ACCEPTED", broker_order_id=oid)

    async def modify(self, broker_order_id: str, req: PlaceRequest) -> Reply:
        """Re-price an open order (it becomes active again after the latency)."""
        o = self._orders.get(broker_order_id)
        if o is None:
            return Reply(outcome="REJECTED", code="AB1013", message="Order not found")
        if o.status not in ("OPEN", "PARTIAL"):
            return Reply(outcome="REJECTED", code="AB1007", message=f"order is {o.status}")
        o.req = msgspec.structs.replace(o.req, price=req.price)
        o.active_ns = self.clock.now_ns() + self.latency_ns
        o.seen_seq = -1
        return Reply(outcome="ACCEPTED", broker_order_id=broker_order_id)

    async def cancel(self, broker_order_id: str) -> Reply:
        """Cancel what is left of an open order."""
        o = self._orders.get(broker_order_id)
        if o is None:
            return Reply(outcome="REJECTED", code="AB1013", message="Order not found")
        if o.status in ("OPEN", "PARTIAL"):
            o.status = "CANCELLED"
            o.updated_ns = self.clock.now_ns()
            self._publish(o)
        return Reply(outcome="ACCEPTED", broker_order_id=broker_order_id)

    async def order_details(self, broker_order_id: str) -> BrokerOrder | None:
        """One order."""
        o = self._orders.get(broker_order_id)
        return o.view() if o else None

    async def order_book(self) -> list[BrokerOrder]:
        """Every order."""
        return [o.view() for o in self._orders.values()]

    async def positions(self) -> list[BrokerPosition]:
        """Net positions implied by the fills this broker made."""
        net: dict[str, tuple[str, int, float]] = {}
        for o in self._orders.values():
            if not o.filled:
                continue
            sym, qty, cost = net.get(o.req.token, (o.req.symbol, 0, 0.0))
            signed = o.filled if o.req.side == "BUY" else -o.filled
            net[o.req.token] = (sym, qty + signed, cost + signed * o.avg)
        return [
            BrokerPosition(
                token=t, symbol=s, net_quantity=q, average_price=round(c / q, 4) if q else 0.0
            )
            for t, (s, q, c) in sorted(net.items())
        ]

    # ---- matching -----------------------------------------------------------------------

    def on_market(self, now_ns: int) -> int:
        """Match every active resting order against its contract's current book."""
        filled = 0
        for o in self._orders.values():
            if o.status not in ("OPEN", "PARTIAL") or now_ns < o.active_ns:
                continue
            q = self.market.quote(o.req.token)
            if q is None or q.seq == o.seen_seq:
                continue
            o.seen_seq = q.seq
            levels = q.asks if o.req.side == "BUY" else q.bids
            want = o.req.quantity - o.filled
            take_all = self.partial_p <= 0 or self._rng.random() >= self.partial_p
            got = 0
            cost = 0.0
            for px, qty in levels:
                better = px <= o.req.price if o.req.side == "BUY" else px >= o.req.price
                if not better or want <= 0:
                    break
                n = min(want, qty)
                got += n
                cost += n * px
                want -= n
            lot = max(1, o.req.lot_size)
            if not take_all and got >= 2 * lot:
                # Half of what was offered, in whole lots; the walk's average price is kept.
                keep = (got // 2) // lot * lot
                cost = cost * keep / got
                got = keep
            if got <= 0:
                continue
            o.avg = (o.avg * o.filled + cost) / (o.filled + got)
            o.filled += got
            o.status = "FILLED" if o.filled >= o.req.quantity else "PARTIAL"
            o.updated_ns = now_ns
            filled += 1
            self.fills += 1
            self._publish(o)
        return filled

    def _publish(self, o: _PaperOrder) -> None:
        view = o.view()
        for h in self._handlers:
            h(view)

    def restore(self, rows: list[OrderRow]) -> None:
        """Re-create the day's orders from the journal after a restart.

        As an exchange would have kept them: resting ones keep working, filled ones keep
        counting in ``positions``.
        """
        status = {
            "OPEN": "OPEN",
            "PARTIAL": "PARTIAL",
            "UNKNOWN": "OPEN",
            "SENT": "OPEN",
            "FILLED": "FILLED",
            "CANCELLED": "CANCELLED",
            "REJECTED": "REJECTED",
        }
        for row in rows:
            if row.broker_order_id is None or row.state not in status:
                continue
            req = PlaceRequest(
                tag=row.order_id,
                symbol=row.symbol,
                token=row.token,
                exchange=row.exchange,
                side=row.side,  # type: ignore[arg-type]
                quantity=row.quantity,
                price=row.limit_price,
                lot_size=row.lot_size,
            )
            state = status[row.state]
            if state == "OPEN" and row.filled_quantity:
                state = "PARTIAL"
            o = _PaperOrder(
                row.broker_order_id,
                req,
                status=state,
                filled=row.filled_quantity,
                avg=row.average_price,
                updated_ns=row.updated_ns,
            )
            self._orders[row.broker_order_id] = o
            num = row.broker_order_id[1:]
            if num.isdigit():
                self._seq = max(self._seq, int(num))
