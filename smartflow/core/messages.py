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
