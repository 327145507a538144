"""Boundary messages between stages: immutable msgspec Structs with int-ns timestamps."""

from __future__ import annotations

from typing import Literal

import msgspec


Recommendation = Literal["BUY_CALL", "BUY_PUT", "NEUTRAL", "AVOID"]
MarketControl = Literal["BULLISH_CONTROL", "BEARISH_CONTROL", "BALANCED", "NEUTRAL_CHOP"]
OptionType = Literal["CE", "PE"]
Scalar = float | int | str | bool | None


class Evidence(msgspec.Struct, frozen=True, kw_only=True):
    """One rule that fired, with the numbers that made it fire."""

    rule: str
    token: str | None = None
    strike: float | None = None
    option_type: OptionType | None = None
    inputs: dict[str, Scalar] = msgspec.field(default_factory=dict)


class SmartMoneySignal(msgspec.Struct, frozen=True, kw_only=True):
    """The detector's verdict for one underlying at the end of a bar (seed Phase 4).

    ``strike``/``option_type``/``token`` name the contract the recommendation is about (the one to
    trade for BUY_*; the strongest evidence otherwise). ``ts`` is the bar's end, Unix ns.
    ``fresh_strength`` is the strength (0–1) of the fresh position on that contract, 0 without one.
    """

    underlying: str
    ts: int
    recommendation: Recommendation
    oi_conviction_score: float
    volume_aggression_score: float
    smart_money_probability: float
    trap_probability: float
    fresh_position_detected: bool
    market_control: MarketControl
    can_trade: bool
    reason: str | None
    strike: float | None
    option_type: OptionType | None
    token: str | None
    evidence: list[Evidence]
    bar_seq: int = 0
    spot: float | None = None
    fresh_strength: float = 0.0


Purpose = Literal["ENTRY", "EXIT"]


class OrderIntent(msgspec.Struct, frozen=True, kw_only=True):
    """What the strategy wants; the router turns it into a LIMIT order or refuses it.

    ``limit_price`` is optional: the router prices a marketable limit from the book. ``ttl_ns``
    bounds how long an intent may wait for the rate budget before it is dropped.
    """

    intent_id: str
    ts: int
    underlying: str
    token: str
    symbol: str
    exchange: str
    side: Literal["BUY", "SELL"]
    lots: int
    lot_size: int
    purpose: Purpose
    reason: str
    ttl_ns: int
    limit_price: float | None = None
    signal_ts: int | None = None
    tick_ns: int = 0
    """Receive time of the packet behind the decision (latency metrics)."""

    @property
    def quantity(self) -> int:
        """Units (lots × lot size), as Angel wants them."""
        return self.lots * self.lot_size


class Quote(msgspec.Struct, frozen=True, kw_only=True):
    """Best prices of one contract in rupees, with the visible depth (best first)."""

    bid: float
    ask: float
    ltp: float
    tick: float
    bids: tuple[tuple[float, int], ...] = ()
    asks: tuple[tuple[float, int], ...] = ()
    seq: int = 0
    """Packets applied so far: changes whenever the book may have changed."""
