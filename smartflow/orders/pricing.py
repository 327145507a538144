"""Limit prices: marketable LIMIT orders on the tick grid, inside the risk price band.

Only LIMIT orders are sent. A "marketable" limit is the opposite best ± ``protection_ticks``
(so it crosses the spread and fills like a market order would, but never at any price), clamped
into ``price_band_pct`` around the LTP and rounded onto the tick grid towards the safe side: down
for a buy, up for a sell. Unfilled orders are chased by re-pricing them to the same level.
"""

from __future__ import annotations

import math

from smartflow.core.messages import OrderIntent, Quote
from smartflow.journal.store import OrderRow
from smartflow.orders.port import MarketView


def round_to_tick(price: float, tick: float, up: bool) -> float:
    """Round a price onto the tick grid, up or down."""
    steps = price / tick
    # A price already on the grid stays put despite binary floating point (100.3 / 0.05).
    n = math.ceil(steps - 1e-9) if up else math.floor(steps + 1e-9)
    return round(n * tick, 2)


def marketable_price(
    side: str, q: Quote, protection_ticks: int, price_band_pct: float
) -> float | None:
    """Opposite best ± protection ticks, clamped into the price band around the LTP.

    None when the quote has no usable reference price (no LTP and no opposite best).
    """
    tick = q.tick
    band = price_band_pct / 100
    ref = q.ltp if q.ltp > 0 else (q.ask if side == "BUY" else q.bid)
    if not ref > 0:
        return None
    if side == "BUY":
        base = q.ask if q.ask > 0 else ref
        price = base + protection_ticks * tick
        price = min(price, ref * (1 + band))
        return max(tick, round_to_tick(price, tick, up=False))
    base = q.bid if q.bid > 0 else ref
    price = base - protection_ticks * tick
    price = max(price, ref * (1 - band), tick)
    return round_to_tick(price, tick, up=True)


class Pricer:
    """Prices new orders and chases from the chain's current quotes."""

    def __init__(self, market: MarketView, protection_ticks: int, price_band_pct: float) -> None:
        self.market = market
        self.protection_ticks = protection_ticks
        self.price_band_pct = price_band_pct

    def marketable(self, side: str, q: Quote) -> float | None:
        """The marketable limit for ``side`` at quote ``q``."""
        return marketable_price(side, q, self.protection_ticks, self.price_band_pct)

    def for_intent(self, intent: OrderIntent) -> tuple[float | None, Quote | None]:
        """(limit price, current quote) of a new order: the intent's own limit, else marketable.

        The price is None when the contract has no quote to price or check it against.
        """
        q = self.market.quote(intent.token)
        if intent.limit_price is not None:
            return intent.limit_price, q
        return (self.marketable(intent.side, q) if q else None), q

    def chase(self, row: OrderRow) -> float | None:
        """The price an unfilled order is re-priced to (None while its contract has no quote)."""
        q = self.market.quote(row.token)
        return self.marketable(row.side, q) if q else None
