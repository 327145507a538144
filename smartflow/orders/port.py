"""The broker port: what the router needs from a broker, implemented by paper and by Angel.

Every call returns an outcome instead of raising for broker-side problems, because the router
must treat them differently:

* ``ACCEPTED`` — the broker acknowledged and gave its order id;
* ``REJECTED`` — the broker refused; the request had no effect and may be corrected and re-sent;
* ``RATE_LIMITED`` — refused by the broker's rate limiter before any effect; safe to retry later;
* ``UNKNOWN`` — timeout, empty or non-JSON reply, 5xx, a dropped connection: the request may or
  may not have taken effect. A placement in this state is *never re-sent*; it is reconciled by
  its order tag through order details, the order book and the order-update stream.

Prices at this boundary are rupees (Angel's REST unit); quantities are units (a multiple of the
lot size).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

import msgspec

from smartflow.core.messages import Quote


Outcome = Literal["ACCEPTED", "REJECTED", "RATE_LIMITED", "UNKNOWN"]
Side = Literal["BUY", "SELL"]
# Broker-side order status, normalised from Angel's strings (open, complete, cancelled, ...).
BrokerStatus = Literal["OPEN", "PARTIAL", "FILLED", "CANCELLED", "REJECTED", "PENDING"]


class PlaceRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A LIMIT/DAY order. Market and IOC orders are prohibited for algorithmic trading."""

    tag: str
    """Our client order id, < 20 characters (Angel's ``ordertag``)."""
    symbol: str
    token: str
    exchange: str
    side: Side
    quantity: int
    price: float
    product: str = "INTRADAY"
    lot_size: int = 1
    """Not sent to Angel; lets a paper broker fill in whole lots."""


class Reply(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of a place, modify or cancel call."""

    outcome: Outcome
    broker_order_id: str | None = None
    code: str = ""
    message: str = ""


class BrokerOrder(msgspec.Struct, frozen=True, kw_only=True):
    """The broker's view of one order (order book, order details, order-update stream)."""

    broker_order_id: str
    tag: str
    status: BrokerStatus
    token: str
    side: Side
    quantity: int
    filled_quantity: int
    average_price: float
    price: float
    text: str = ""
    update_ns: int = 0


class BrokerFill(msgspec.Struct, frozen=True, kw_only=True):
    """One execution."""

    broker_order_id: str
    tag: str
    fill_id: str
    quantity: int
    price: float
    ts: int


class BrokerPosition(msgspec.Struct, frozen=True, kw_only=True):
    """Net position per instrument as the broker reports it."""

    token: str
    symbol: str
    net_quantity: int
    average_price: float
    realised_pnl: float = 0.0


OrderUpdateHandler = Callable[[BrokerOrder], None]


class MarketView(Protocol):
    """Read access to the chain for pricing, marking and paper matching."""

    def quote(self, token: str) -> Quote | None:
        """Current quote of ``token`` (None when unknown or never ticked)."""
        ...


class BrokerPort(Protocol):
    """What the order router calls. Paper and Angel implement it."""

    name: str
    auth_failed: str | None
    """Set when the broker refused a (re-)login: trading cannot continue until fixed."""

    async def place(self, req: PlaceRequest) -> Reply:
        """Send a new order."""
        ...

    async def modify(self, broker_order_id: str, req: PlaceRequest) -> Reply:
        """Re-price an open order (same token, side and quantity)."""
        ...

    async def cancel(self, broker_order_id: str) -> Reply:
        """Cancel an open order."""
        ...

    async def order_details(self, broker_order_id: str) -> BrokerOrder | None:
        """One order by the broker's id (None: the broker does not know it)."""
        ...

    async def order_book(self) -> list[BrokerOrder]:
        """Every order of the day."""
        ...

    async def positions(self) -> list[BrokerPosition]:
        """Net positions of the day."""
        ...

    def subscribe_updates(self, handler: OrderUpdateHandler) -> None:
        """Deliver order status changes (fills included) to ``handler`` as they happen."""
        ...

    async def start(self) -> None:
        """Log in / connect streams; raises ``AuthError``/``FatalError`` when that is impossible."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
