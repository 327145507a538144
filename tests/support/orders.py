"""A real order router on a real paper broker and a real SQLite journal, with hand-set quotes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from smartflow.config import OrdersConfig, RiskConfig
from smartflow.core.clock import ReplayClock
from smartflow.core.messages import OrderIntent, Quote
from smartflow.core.timeutil import ns_at_ist
from smartflow.journal.store import FillRow, Journal, OrderRow
from smartflow.orders.guard import RiskGuard
from smartflow.orders.paper import PaperBroker
from smartflow.orders.port import PlaceRequest, Reply
from smartflow.orders.router import OrderRouter


NS = 1_000_000_000
T0 = ns_at_ist(dt.date(2026, 11, 23), dt.time(10, 0))  # a Monday in market hours
LOT = 75


class Quotes:
    """Hand-set quotes: the ``MarketView`` the router prices from and the paper broker fills on."""

    def __init__(self) -> None:
        self.quotes: dict[str, Quote] = {}

    def set(self, token: str, bid: float, ask: float, qty: int = 750, ltp: float = 0.0) -> None:
        """A two-level book around ``bid``/``ask``; each call is a new book (the paper broker
        matches a resting order once per book)."""
        seq = self.quotes[token].seq + 1 if token in self.quotes else 1
        self.quotes[token] = Quote(
            bid=bid,
            ask=ask,
            ltp=ltp or round((bid + ask) / 2, 2),
            tick=0.05,
            bids=((bid, qty), (round(bid - 0.05, 2), qty)),
            asks=((ask, qty), (round(ask + 0.05, 2), qty)),
            seq=seq,
        )

    def quote(self, token: str) -> Quote | None:
        return self.quotes.get(token)


class CountingBroker(PaperBroker):
    """The paper broker, noting every placement it was asked for."""

    def __init__(self, *a: object, **k: object) -> None:
        super().__init__(*a, **k)  # type: ignore[arg-type]
        self.placed: list[str] = []

    async def place(self, req: PlaceRequest) -> Reply:
        self.placed.append(req.tag)
        return await super().place(req)


@dataclass
class Rig:
    """One router with everything it talks to."""

    router: OrderRouter
    broker: CountingBroker
    quotes: Quotes
    clock: ReplayClock
    journal: Journal
    events: list[tuple[str, str, str]] = field(default_factory=list)
    """(kind, order id, state) of every event the router announced."""

    def _record(self, kind: str, row: OrderRow, _fill: FillRow | None) -> None:
        self.events.append((kind, row.order_id, row.state))

    async def fill(self) -> None:
        """Send what is due, let the paper broker match, and apply its updates."""
        await self.router.pump(self.clock.now_ns())
        self.broker.on_market(self.clock.now_ns())
        await self.router.pump(self.clock.now_ns())


def make_rig(
    path: Path,
    orders: OrdersConfig | None = None,
    risk: RiskConfig | None = None,
    broker: CountingBroker | None = None,
    quotes: Quotes | None = None,
    clock: ReplayClock | None = None,
) -> Rig:
    """A router journalling to ``path`` (pass the broker and quotes of an earlier rig to
    "restart" against the same paper exchange)."""
    clock = clock or ReplayClock(T0)
    quotes = quotes or Quotes()
    orders = orders or OrdersConfig(paper_latency_ms=0, chase_after_s=1000)
    risk = risk or RiskConfig()
    broker = broker or CountingBroker(orders, quotes, clock, structlog.get_logger())
    journal = Journal(path)
    router = OrderRouter(
        orders,
        risk,
        RiskGuard(risk, ["NIFTY"]),
        broker,
        journal,
        quotes,
        clock,
        structlog.get_logger(),
    )
    rig = Rig(router, broker, quotes, clock, journal)
    router.on_event.append(rig._record)
    return rig


def intent(
    token: str,
    ts: int = T0,
    side: str = "BUY",
    lots: int = 1,
    purpose: str = "ENTRY",
    limit_price: float | None = None,
) -> OrderIntent:
    """An intent for option ``token`` of NIFTY (lot size ``LOT``)."""
    return OrderIntent(
        intent_id=f"{purpose}-{token}-{ts}-{side}",
        ts=ts,
        underlying="NIFTY",
        token=token,
        symbol=f"SYM{token}",
        exchange="NFO",
        side=side,  # type: ignore[arg-type]
        lots=lots,
        lot_size=LOT,
        purpose=purpose,  # type: ignore[arg-type]
        reason="test",
        ttl_ns=3600 * NS,
        limit_price=limit_price,
    )
