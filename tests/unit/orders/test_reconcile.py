"""Orders never sent are cancelled, never sent later; orders in doubt are found, never re-sent.

A real router, paper broker and SQLite journal; lost replies and unreachable brokers are made by
wrapping the paper broker's own calls.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support.orders import NS, T0, Rig, intent, make_rig

from smartflow.config import RiskConfig
from smartflow.core.clock import ReplayClock
from smartflow.core.errors import TransientError
from smartflow.orders.port import BrokerOrder, PlaceRequest, Reply
from smartflow.orders.reconcile import UNKNOWN_GRACE_S


def _states(rig: Rig, order_id: str) -> list[tuple[str, str]]:
    return [(state, detail) for _, state, detail in rig.journal.order_events(order_id)]


async def _two_waiting(tmp_path: Path) -> Rig:
    """One order sent and two NEW ones waiting for the rate budget (one request a second)."""
    rig = make_rig(tmp_path / "journal.sqlite3", risk=RiskConfig(orders_per_second=1))
    for token in ("1", "2", "3"):
        rig.quotes.set(token, 50.0, 51.5)  # no ask at the limit: sent orders rest
        assert rig.router.submit(intent(token, limit_price=50.5))
    await rig.router.pump(T0)
    assert [o.state for o in rig.journal.orders()] == ["OPEN", "NEW", "NEW"]
    return rig


@pytest.mark.parametrize("how", ["kill", "shutdown"])
async def test_unsent_orders_are_cancelled_announced_and_never_sent(
    tmp_path: Path, how: str
) -> None:
    rig = await _two_waiting(tmp_path)
    now = T0 + NS // 2
    rig.clock.set(now)
    if how == "kill":
        assert (await rig.router.kill("drill", "unit"))["cancelled"] == 3  # two unsent, one open
        detail = "kill switch: never sent"
    else:
        assert await rig.router.shutdown("leave_open") == 2
        detail = "shutdown: never sent"
    sent, *unsent = rig.journal.orders()
    for row in unsent:
        assert (row.state, row.updated_ns) == ("CANCELLED", now)
        assert _states(rig, row.order_id)[-1] == ("CANCELLED", detail)
        assert ("order", row.order_id, "CANCELLED") in rig.events
        assert row.order_id not in rig.router.orders
    # The budget frees up; nothing cancelled goes out.
    for step in range(1, 6):
        rig.clock.set(T0 + step * NS)
        await rig.router.pump(rig.clock.now_ns())
    assert rig.broker.placed == [sent.order_id]
    # The kill switch also cancelled the sent order at the broker; a shutdown that leaves
    # orders open did not.
    assert rig.journal.orders()[0].state == ("CANCELLED" if how == "kill" else "OPEN")
    rig.journal.close()


async def test_a_restart_cancels_what_was_never_sent(tmp_path: Path) -> None:
    rig = await _two_waiting(tmp_path)
    rig.journal.close()  # "crash" with two orders journalled NEW
    clock = ReplayClock(T0 + 10 * NS)
    again = make_rig(
        tmp_path / "journal.sqlite3", broker=rig.broker, quotes=rig.quotes, clock=clock
    )
    counts = await again.router.restore()
    assert (counts["cancelled_unsent"], counts["restored"], counts["adopted"]) == (2, 1, 1)
    sent, *unsent = again.journal.orders()
    for row in unsent:
        assert _states(again, row.order_id)[-1] == ("CANCELLED", "restart: never sent, not re-sent")
    assert [o.order_id for o in again.router.open_orders()] == [sent.order_id]
    for step in range(1, 6):
        clock.set(T0 + (10 + step) * NS)
        await again.router.pump(clock.now_ns())
    assert rig.broker.placed == [sent.order_id]
    again.journal.close()


def _lose_replies(rig: Rig, reach: bool) -> None:
    """Every placement's reply is lost; the broker took the order only when ``reach``."""
    place = rig.broker.place

    async def lost(req: PlaceRequest) -> Reply:
        if reach:
            await place(req)
            rig.router.updates.clear()  # the order-update stream's report is lost as well
        else:
            rig.broker.placed.append(req.tag)
        return Reply(outcome="UNKNOWN", message="read timeout")

    rig.broker.place = lost  # type: ignore[method-assign]


def _cut_off(rig: Rig) -> tuple[list[int], Callable[[], None]]:
    """The broker cannot be asked about orders; returns when it was asked and a way back."""
    asked: list[int] = []
    book, details = rig.broker.order_book, rig.broker.order_details

    async def unreachable(*_: object) -> BrokerOrder | None:
        asked.append(rig.clock.now_ns())
        raise TransientError("HTTP 503")

    def reconnect() -> None:
        rig.broker.order_book, rig.broker.order_details = book, details  # type: ignore[method-assign]

    rig.broker.order_book = rig.broker.order_details = unreachable  # type: ignore[method-assign, assignment]
    return asked, reconnect


async def test_an_order_in_doubt_is_adopted_after_a_restart_and_never_re_sent(
    tmp_path: Path,
) -> None:
    rig = make_rig(tmp_path / "journal.sqlite3")
    _lose_replies(rig, reach=True)
    asked, reconnect = _cut_off(rig)
    rig.quotes.set("1", 50.0, 51.5)
    rig.router.submit(intent("1", limit_price=50.5))
    await rig.router.pump(T0)
    assert asked == [T0]
    (row,) = rig.journal.orders()
    assert (row.state, row.broker_order_id) == ("UNKNOWN", None)
    rig.journal.close()
    reconnect()
    # Restart against the same paper exchange, which holds the order under our tag.
    clock = ReplayClock(T0 + 10 * NS)
    again = make_rig(
        tmp_path / "journal.sqlite3", broker=rig.broker, quotes=rig.quotes, clock=clock
    )
    counts = await again.router.restore()
    assert (counts["adopted"], counts["unknown"]) == (1, 0)
    (row,) = again.journal.orders()
    assert row.state == "OPEN"
    assert row.broker_order_id is not None
    rig.quotes.set("1", 50.0, 50.5)
    await again.fill()
    assert again.router.positions["1"].net_quantity == 75
    assert rig.broker.placed == [row.order_id]
    again.journal.close()


async def test_an_order_the_broker_never_saw_is_rejected_after_the_grace_period(
    tmp_path: Path,
) -> None:
    rig = make_rig(tmp_path / "journal.sqlite3")
    _lose_replies(rig, reach=False)
    rig.quotes.set("1", 50.0, 50.1)
    rig.router.submit(intent("1"))
    await rig.router.pump(T0)
    (row,) = rig.router.orders.values()
    t = T0
    while t - T0 <= UNKNOWN_GRACE_S * NS:
        assert row.state == "UNKNOWN", f"closed {(t - T0) / NS} s into the grace period"
        t += 2 * NS
        rig.clock.set(t)
        await rig.router.pump(t)
    assert row.state == "REJECTED"
    assert _states(rig, row.order_id)[-1] == (
        "REJECTED",
        "never reached the broker (absent from its order book)",
    )
    assert not rig.router.orders
    assert rig.router.positions == {}
    assert rig.broker.placed == [row.order_id]  # tried once, never re-sent
    rig.journal.close()


async def test_a_broker_that_cannot_be_asked_does_not_run_down_the_grace_period(
    tmp_path: Path,
) -> None:
    rig = make_rig(tmp_path / "journal.sqlite3")
    _lose_replies(rig, reach=False)
    asked, reconnect = _cut_off(rig)
    rig.quotes.set("1", 50.0, 50.1)
    rig.router.submit(intent("1"))
    await rig.router.pump(T0)
    (row,) = rig.router.orders.values()
    t = T0
    while t - T0 <= 3 * UNKNOWN_GRACE_S * NS:
        rig.clock.set(t)
        assert await rig.router.reconciler.check(row, t) == "wait"
        t += NS // 2
    # Asked once per reconcile interval (2 s), never faster, and never given up on.
    assert asked == [T0 + i * 2 * NS for i in range(len(asked))]
    assert len(asked) == 3 * UNKNOWN_GRACE_S / 2 + 1
    # Reachable again, and the order is not in its book: a full grace period starts from here.
    reconnect()
    back = t
    while row.state == "UNKNOWN":
        t += 2 * NS
        rig.clock.set(t)
        await rig.router.pump(t)
        assert t - back < (UNKNOWN_GRACE_S + 10) * NS, "never closed"
    assert t - back > UNKNOWN_GRACE_S * NS - 4 * NS
    assert row.state == "REJECTED"
    assert rig.broker.placed == [row.order_id]
    rig.journal.close()


async def test_a_restart_reports_positions_the_broker_does_not_hold(tmp_path: Path) -> None:
    rig = make_rig(tmp_path / "journal.sqlite3")
    rig.quotes.set("1", 100.0, 100.1)
    rig.router.submit(intent("1"))
    await rig.fill()
    rig.journal.close()
    # A new exchange that never saw the fill (the paper book was not restored).
    again = make_rig(tmp_path / "journal.sqlite3", quotes=rig.quotes, clock=ReplayClock(T0 + NS))
    await again.router.restore()
    (event,) = [e for e in again.journal.risk_events() if e["kind"] == "position_mismatch"]
    assert (event["reason"], event["detail"]) == ("journal 75 vs broker 0", "1")
    again.journal.close()
