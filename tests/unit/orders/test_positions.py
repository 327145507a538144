"""The position book: average cost over partial fills, flips through zero, marks, exposure."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.orders import LOT, Quotes, intent, make_rig

from smartflow.config import OrdersConfig
from smartflow.journal.store import OrderRow
from smartflow.orders.positions import Positions


def _row(
    token: str, side: str, quantity: int, underlying: str = "NIFTY", filled: int = 0
) -> OrderRow:
    return OrderRow(
        order_id=f"SF{token}{side}{quantity}",
        day="2026-11-23",
        created_ns=0,
        broker="paper",
        underlying=underlying,
        token=token,
        symbol=f"SYM{token}",
        exchange="NFO",
        side=side,
        quantity=quantity,
        lot_size=LOT,
        limit_price=100.0,
        purpose="ENTRY",
        reason="test",
        filled_quantity=filled,
    )


def test_partial_fills_average_and_a_flip_opens_the_remainder_at_its_price() -> None:
    book = Positions(Quotes())
    book.note_contract("1", LOT, "NFO")
    buy = _row("1", "BUY", 300)
    book.apply_fill(buy, 75, 100.0, 1)
    pos = book.apply_fill(buy, 150, 101.0, 2)
    assert (book.held("1"), book.net_lots("1"), pos.updated_ns) == (225, 3, 2)
    assert book.entry_price("1") == pytest.approx((75 * 100.0 + 150 * 101.0) / 225)
    assert pos.realised_pnl == 0.0
    # Selling 300 closes the 225 held and opens a 75 short at the selling price.
    book.apply_fill(_row("1", "SELL", 300), 300, 102.0, 3)
    assert (book.held("1"), book.net_lots("1")) == (-75, -1)
    assert book.entry_price("1") == 102.0
    assert pos.realised_pnl == pytest.approx((102.0 - 100.0) * 75 + (102.0 - 101.0) * 150)
    # Buying the short back at 101 realises +1 a unit and leaves the book flat.
    book.apply_fill(_row("1", "BUY", 75), 75, 101.0, 4)
    assert (book.held("1"), book.net_lots("1"), book.entry_price("1")) == (0, 0, 0.0)
    assert pos.realised_pnl == pytest.approx(300.0 + 75.0)
    assert book.open_quantities() == {}
    assert book.day_pnl() == (pytest.approx(375.0), 0.0)


def test_day_pnl_marks_longs_at_the_bid_shorts_at_the_ask_else_the_ltp_else_cost() -> None:
    quotes = Quotes()
    book = Positions(quotes)
    book.apply_fill(_row("1", "BUY", 150), 150, 100.0, 1)
    book.apply_fill(_row("2", "SELL", 75), 75, 50.0, 1)
    book.apply_fill(_row("3", "BUY", 75), 75, 10.0, 1)  # never quoted: marked at cost
    book.apply_fill(_row("4", "BUY", 75), 75, 10.0, 1)
    book.apply_fill(_row("4", "SELL", 75), 75, 12.0, 2)  # closed: +150 realised
    quotes.set("1", 98.0, 98.1)
    quotes.set("2", 49.0, 49.5)
    realised, unrealised = book.day_pnl()
    assert realised == pytest.approx(150.0)
    assert unrealised == pytest.approx((98.0 - 100.0) * 150 + (49.5 - 50.0) * -75)
    quotes.set("1", 0.0, 98.1, ltp=97.0)  # no bid to sell into: the LTP marks it
    assert book.day_pnl()[1] == pytest.approx((97.0 - 100.0) * 150 + (49.5 - 50.0) * -75)
    quotes.set("1", 0.0, 0.0)  # a quote with no price at all is no evidence of a loss: cost
    assert book.day_pnl()[1] == pytest.approx((49.5 - 50.0) * -75)
    assert [p.token for p in book.long()] == ["1", "3"]
    assert book.open_quantities() == {"1": 150, "2": -75, "3": 75}


def test_exposure_counts_unfilled_buys_by_contract_and_underlying() -> None:
    book = Positions(Quotes())
    book.note_contract("1", LOT, "NFO")
    book.apply_fill(_row("1", "BUY", 75), 75, 100.0, 1)
    orders = [
        _row("1", "BUY", 150, filled=75),  # one more lot on its way
        _row("2", "BUY", 300),  # four lots, no position yet
        _row("5", "SELL", 75),  # selling adds no exposure
        _row("9", "BUY", 75, underlying="SENSEX"),
    ]
    exp = book.exposure(intent("1"), orders)
    assert exp.open_positions == 3  # 1 held; 2 and 9 being bought
    assert exp.lots_in_contract == 1 + 1
    assert exp.lots_in_underlying == (1 + 1) + 4
    assert book.exposure(intent("7"), orders).lots_in_contract == 0


async def test_partial_paper_fills_are_booked_once_each(tmp_path: Path) -> None:
    # Every matching pass takes half of what is offered (in whole lots): 4 lots fill as 2, 1, 1.
    orders = OrdersConfig(paper_latency_ms=0, chase_after_s=1000, paper_partial_fill_pct=100)
    rig = make_rig(tmp_path / "journal.sqlite3", orders=orders)
    rig.quotes.set("1", 100.0, 100.1)
    assert rig.router.submit(intent("1", lots=4))
    held = []
    for _ in range(3):
        await rig.fill()
        (order,) = rig.journal.orders()
        assert rig.router.positions["1"].net_quantity == order.filled_quantity
        held.append(order.filled_quantity)
        rig.quotes.set("1", 100.0, 100.1)  # a new book: the paper broker matches again
    assert held == [150, 225, 300]
    assert order.state == "FILLED"
    fills = rig.journal.fills()
    assert [f.quantity for f in fills] == [150, 75, 75]
    assert rig.router.entry_price("1") == pytest.approx(100.1)
    # The broker reporting the same cumulative fill again (stream and poll) books nothing.
    again = await rig.broker.order_details(order.broker_order_id or "")
    assert again is not None
    rig.router.on_update(again)
    await rig.router.pump(rig.clock.now_ns())
    assert (rig.router.fills, len(rig.journal.fills())) == (3, 3)
    assert rig.journal.positions()[0].net_quantity == 300
    assert rig.router.net_lots("1") == 4
    rig.journal.close()
