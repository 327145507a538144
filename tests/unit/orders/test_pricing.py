"""Limit prices on the tick grid: rounding at tick boundaries, protection ticks, the price band."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.orders import NS, T0, Quotes, intent, make_rig

from smartflow.config import OrdersConfig
from smartflow.core.messages import Quote
from smartflow.orders.pricing import Pricer, marketable_price, round_to_tick


@pytest.mark.parametrize(
    ("price", "tick", "down", "up"),
    [
        (100.3, 0.05, 100.3, 100.3),  # on the grid, though 100.3 / 0.05 is 2005.9999999999998
        (0.1 + 0.2, 0.05, 0.3, 0.3),  # 0.30000000000000004 is still on the grid
        (100.31, 0.05, 100.3, 100.35),
        (100.349, 0.05, 100.3, 100.35),
        (100.351, 0.05, 100.35, 100.4),
        (0.01, 0.05, 0.0, 0.05),
        (25013.3, 0.1, 25013.3, 25013.3),
        (25013.33, 0.1, 25013.3, 25013.4),
        (99.99, 0.5, 99.5, 100.0),
    ],
)
def test_round_to_tick(price: float, tick: float, down: float, up: float) -> None:
    assert round_to_tick(price, tick, up=False) == down
    assert round_to_tick(price, tick, up=True) == up


def _q(bid: float, ask: float, ltp: float, tick: float = 0.05) -> Quote:
    return Quote(bid=bid, ask=ask, ltp=ltp, tick=tick)


def test_marketable_crosses_the_spread_by_the_protection_ticks() -> None:
    q = _q(100.0, 100.1, 100.05)
    assert marketable_price("BUY", q, 4, 5.0) == 100.3
    assert marketable_price("SELL", q, 4, 5.0) == 99.8
    assert marketable_price("BUY", q, 0, 5.0) == 100.1


def test_the_band_caps_the_price_and_the_cap_is_rounded_to_the_safe_side() -> None:
    # 5% band around 33.35 is [31.6825, 35.0175]: a buy is capped down to 35.0, a sell up to 31.7.
    q = _q(31.0, 35.0, 33.35)
    assert marketable_price("BUY", q, 4, 5.0) == 35.0
    assert marketable_price("SELL", q, 4, 5.0) == 31.7


def test_never_below_one_tick() -> None:
    q = _q(0.05, 0.05, 0.05)
    assert marketable_price("BUY", q, 4, 5.0) == 0.05
    assert marketable_price("SELL", q, 4, 5.0) == 0.05


def test_without_an_ltp_the_opposite_best_is_the_reference_and_without_either_no_price() -> None:
    assert marketable_price("BUY", _q(0.0, 10.0, 0.0), 4, 5.0) == 10.2
    assert marketable_price("SELL", _q(10.0, 0.0, 0.0), 4, 5.0) == 9.8
    assert marketable_price("BUY", _q(10.0, 0.0, 0.0), 4, 5.0) is None
    assert marketable_price("SELL", _q(0.0, 10.0, 0.0), 4, 5.0) is None
    # An LTP but no ask: the buy is priced off the LTP.
    assert marketable_price("BUY", _q(9.0, 0.0, 10.0), 4, 5.0) == 10.2


def test_pricer_prefers_the_intents_limit_and_chases_to_the_current_book() -> None:
    quotes = Quotes()
    pricer = Pricer(quotes, 4, 5.0)
    assert pricer.for_intent(intent("1")) == (None, None)  # no quote, nothing to price against
    quotes.set("1", 100.0, 100.1)
    price, q = pricer.for_intent(intent("1"))
    assert (price, q) == (100.3, quotes.quote("1"))
    assert pricer.for_intent(intent("1", limit_price=99.0))[0] == 99.0
    assert pricer.for_intent(intent("1", side="SELL"))[0] == 99.8


async def test_an_unfilled_order_is_chased_to_the_current_marketable_level(tmp_path: Path) -> None:
    orders = OrdersConfig(paper_latency_ms=0, chase_after_s=1.0)
    rig = make_rig(tmp_path / "journal.sqlite3", orders=orders)
    rig.quotes.set("1", 50.0, 51.5)
    rig.router.submit(intent("1", limit_price=50.5))
    await rig.fill()
    (row,) = rig.router.orders.values()
    assert row.state == "OPEN"
    rig.quotes.set("1", 51.9, 52.0)
    rig.clock.set(T0 + NS)
    await rig.fill()  # re-priced to the ask + 4 ticks, which the book now fills
    assert (row.state, row.chases, row.limit_price) == ("FILLED", 1, 52.2)
    assert [d for _, _, d in rig.journal.order_events(row.order_id)][-2] == (
        "chase 1 to 52.2: ACCEPTED"
    )
    rig.journal.close()
