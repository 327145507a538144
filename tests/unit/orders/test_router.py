"""Router, risk guard, rate limiter, paper broker and journal together (real SQLite file)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import msgspec
import pytest
import structlog
from support.orders import Quotes

from smartflow.config import OrdersConfig, RiskConfig
from smartflow.core.clock import ReplayClock
from smartflow.core.messages import OrderIntent
from smartflow.core.timeutil import ns_at_ist
from smartflow.journal.store import Journal
from smartflow.orders.guard import RiskGuard
from smartflow.orders.paper import PaperBroker
from smartflow.orders.port import PlaceRequest, Reply
from smartflow.orders.ratelimit import RateLimiter
from smartflow.orders.router import OrderRouter


NS = 1_000_000_000
# A Monday, 10:00 IST: inside market hours.
T0 = ns_at_ist(dt.date(2026, 11, 23), dt.time(10, 0))


class Recording(PaperBroker):
    """The paper broker, noting when each request was made."""

    def __init__(self, *a: object, **k: object) -> None:
        super().__init__(*a, **k)  # type: ignore[arg-type]
        self.requests: list[int] = []

    async def place(self, req: PlaceRequest) -> Reply:
        self.requests.append(self.clock.now_ns())
        return await super().place(req)

    async def modify(self, broker_order_id: str, req: PlaceRequest) -> Reply:
        self.requests.append(self.clock.now_ns())
        return await super().modify(broker_order_id, req)

    async def cancel(self, broker_order_id: str) -> Reply:
        self.requests.append(self.clock.now_ns())
        return await super().cancel(broker_order_id)


def _setup(
    tmp_path: Path, risk: RiskConfig | None = None, orders: OrdersConfig | None = None
) -> tuple[OrderRouter, Recording, Quotes, ReplayClock, Journal]:
    clock = ReplayClock(T0)
    book = Quotes()
    orders = orders or OrdersConfig(paper_latency_ms=0, chase_after_s=1000)
    risk = risk or RiskConfig()
    broker = Recording(orders, book, clock, structlog.get_logger())
    journal = Journal(tmp_path / "journal.sqlite3")
    router = OrderRouter(
        orders,
        risk,
        RiskGuard(risk, ["NIFTY"]),
        broker,
        journal,
        book,
        clock,
        structlog.get_logger(),
    )
    return router, broker, book, clock, journal


def _intent(
    token: str,
    side: str = "BUY",
    lots: int = 1,
    purpose: str = "ENTRY",
    ts: int = T0,
    underlying: str = "NIFTY",
) -> OrderIntent:
    return OrderIntent(
        intent_id=f"{purpose}-{token}-{ts}",
        ts=ts,
        underlying=underlying,
        token=token,
        symbol=f"SYM{token}",
        exchange="NFO",
        side=side,  # type: ignore[arg-type]
        lots=lots,
        lot_size=75,
        purpose=purpose,  # type: ignore[arg-type]
        reason="test",
        ttl_ns=60 * NS,
    )


async def _fill(router: OrderRouter, broker: PaperBroker, clock: ReplayClock) -> None:
    await router.pump(clock.now_ns())
    broker.on_market(clock.now_ns())
    await router.pump(clock.now_ns())


async def test_entry_fills_and_journal_has_every_state(tmp_path: Path) -> None:
    router, broker, book, clock, journal = _setup(tmp_path)
    book.set("1", 100.0, 100.1)
    assert router.submit(_intent("1"))
    await _fill(router, broker, clock)
    assert router.positions["1"].net_quantity == 75
    (order,) = journal.orders()
    assert order.state == "FILLED"
    assert [s for _, s, _ in journal.order_events(order.order_id)][:3] == ["NEW", "SENT", "OPEN"]
    # Marketable limit: best ask + 4 protection ticks.
    assert order.limit_price == pytest.approx(100.3)
    assert len(order.order_id) < 20
    journal.close()


def test_rate_limiter_windows() -> None:
    lim = RateLimiter(9, 500, 1000)
    granted = [t for t in range(0, 2 * NS, NS // 100) if lim.take(t)]
    for t in granted:
        assert sum(1 for u in granted if t - NS < u <= t) <= 9
    assert lim.wait_ns(granted[-1]) > 0
    small = RateLimiter(9, 12, 1000)
    got = [t for t in range(0, 120 * NS, NS // 10) if small.take(t)]
    for t in got:
        assert sum(1 for u in got if t - 60 * NS < u <= t) <= 12


async def test_a_burst_never_exceeds_the_rate_limit(tmp_path: Path) -> None:
    risk = RiskConfig(
        max_open_positions=100,
        max_lots_per_contract=100,
        max_lots_per_underlying=1000,
        orders_per_second=9,
    )
    router, broker, book, clock, journal = _setup(tmp_path, risk)
    for i in range(40):
        book.set(str(i), 100.0, 100.1)
        assert router.submit(_intent(str(i)))
    for step in range(60):
        clock.set(T0 + step * NS // 10)
        await router.pump(clock.now_ns())
    assert len(broker.requests) == 40
    for t in broker.requests:
        assert sum(1 for u in broker.requests if t - NS < u <= t) <= 9
    journal.close()


async def test_exits_go_first_in_the_rate_budget(tmp_path: Path) -> None:
    risk = RiskConfig(orders_per_second=1, max_open_positions=10)
    router, broker, book, clock, journal = _setup(tmp_path, risk)
    book.set("1", 100.0, 100.1)
    router.submit(_intent("1"))
    await _fill(router, broker, clock)
    for i in range(2, 5):
        book.set(str(i), 50.0, 50.1)
        router.submit(_intent(str(i)))
    router.submit(_intent("1", side="SELL", purpose="EXIT"))
    clock.set(T0 + 2 * NS)
    await router.pump(clock.now_ns())
    sent = [o for o in journal.orders() if o.state != "NEW"]
    assert sent[-1].purpose == "EXIT"  # the first order sent after the entry is the exit
    journal.close()


async def test_outside_market_hours_and_price_band_are_refused(tmp_path: Path) -> None:
    router, broker, book, clock, journal = _setup(tmp_path)
    book.set("1", 100.0, 100.1)
    clock.set(ns_at_ist(dt.date(2026, 11, 23), dt.time(20, 0)))
    router.submit(_intent("1", ts=clock.now_ns()))
    await router.pump(clock.now_ns())
    clock.set(ns_at_ist(dt.date(2026, 11, 24), dt.time(10, 0)))
    limited = _intent("1", ts=clock.now_ns())
    router.submit(msgspec.structs.replace(limited, limit_price=120.0))
    await router.pump(clock.now_ns())
    assert broker.requests == []
    reasons = [e["reason"] for e in journal.risk_events()]
    assert "outside market hours" in reasons[0]
    assert "outside ±5% of LTP" in reasons[1]
    journal.close()


async def test_kill_switch_cancels_flattens_and_blocks(tmp_path: Path) -> None:
    router, broker, book, clock, journal = _setup(tmp_path)
    book.set("1", 100.0, 100.1)
    router.submit(_intent("1"))
    await _fill(router, broker, clock)
    # A resting order (no ask at or below its limit) to be cancelled.
    book.set("2", 50.0, 51.5)
    router.submit(msgspec.structs.replace(_intent("2"), limit_price=50.5))
    await _fill(router, broker, clock)
    assert any(o.state == "OPEN" for o in router.orders.values())
    done = await router.kill("test", "unit")
    assert done["cancelled"] == 1
    assert done["flattening"] == 1
    await _fill(router, broker, clock)
    assert router.positions["1"].net_quantity == 0
    assert not router.orders
    router.submit(_intent("3", ts=clock.now_ns()))
    book.set("3", 10.0, 10.1)
    await router.pump(clock.now_ns())
    assert "kill switch is on" in journal.risk_events()[-1]["reason"]
    assert journal.kill_active() == (True, "test")
    await router.reset_kill("unit")
    assert journal.kill_active() == (False, "")
    journal.close()


async def test_the_loss_limit_trips_the_kill_switch(tmp_path: Path) -> None:
    risk = RiskConfig(max_daily_loss=1000.0)
    router, broker, book, clock, journal = _setup(tmp_path, risk)
    book.set("1", 100.0, 100.1)
    router.submit(_intent("1", lots=2))
    await _fill(router, broker, clock)
    # 150 units, bought around 100.1; marked at the bid of 85 → about −2,265.
    book.set("1", 85.0, 85.1)
    await router.pump(clock.now_ns())
    assert router.guard.killed
    assert "daily loss" in router.guard.kill_reason
    assert journal.kill_active()[0]
    journal.close()


async def test_unknown_order_is_reconciled_never_resent(tmp_path: Path) -> None:
    router, broker, book, clock, journal = _setup(tmp_path)
    book.set("1", 100.0, 100.1)
    real_place = broker.place

    async def lost_reply(req: PlaceRequest) -> Reply:
        await real_place(req)  # the broker took it...
        return Reply(outcome="UNKNOWN", message="read timeout")  # ...the reply was lost

    broker.place = lost_reply  # type: ignore[method-assign]
    router.submit(_intent("1"))
    await router.pump(clock.now_ns())
    (order,) = journal.orders()
    states = [st for _, st, _ in journal.order_events(order.order_id)]
    assert states[:3] == ["NEW", "SENT", "UNKNOWN"]
    for step in range(1, 6):
        clock.set(T0 + step * NS)
        broker.on_market(clock.now_ns())
        await router.pump(clock.now_ns())
    (order,) = journal.orders()
    assert order.state == "FILLED"
    assert "broker OPEN" in [d for _, _, d in journal.order_events(order.order_id)]
    assert len(broker.requests) == 1  # placed once, found by its tag, never re-sent
    journal.close()


async def test_restart_restores_positions_and_open_orders(tmp_path: Path) -> None:
    router, broker, book, clock, journal = _setup(tmp_path)
    book.set("1", 100.0, 100.1)
    router.submit(_intent("1"))
    await _fill(router, broker, clock)
    book.set("2", 50.0, 51.5)
    router.submit(msgspec.structs.replace(_intent("2"), limit_price=50.5))
    await _fill(router, broker, clock)
    journal.close()
    # "Crash": a new process with the same journal; the paper exchange restored from it.
    clock2 = ReplayClock(T0 + 10 * NS)
    orders = OrdersConfig(paper_latency_ms=0, chase_after_s=1000)
    journal2 = Journal(tmp_path / "journal.sqlite3")
    broker2 = Recording(orders, book, clock2, structlog.get_logger())
    broker2.restore(journal2.orders())
    router2 = OrderRouter(
        orders,
        RiskConfig(),
        RiskGuard(RiskConfig(), ["NIFTY"]),
        broker2,
        journal2,
        book,
        clock2,
        structlog.get_logger(),
    )
    counts = await router2.restore()
    assert counts["adopted"] == 1
    assert router2.positions["1"].net_quantity == 75
    assert [o.token for o in router2.open_orders()] == ["2"]
    # The resting order still fills after the restart, without being placed again.
    book.set("2", 50.0, 50.5)
    await _fill(router2, broker2, clock2)
    assert router2.positions["2"].net_quantity == 75
    assert broker2.requests == []
    ids = [o.order_id for o in journal2.orders()]
    assert len(ids) == len(set(ids)) == 2
    journal2.close()


async def test_an_intent_stays_in_flight_while_it_is_being_journalled(tmp_path: Path) -> None:
    # Admission awaits the journal before the order exists; other tasks run meanwhile (the
    # engine's exit checks among them) and must still see the entry as in flight, or the
    # strategy forgets a position that is about to open.
    router, _, book, clock, journal = _setup(tmp_path)
    book.set("101", 99.0, 100.0)
    seen: list[bool] = []
    new_order = journal.new_order

    async def observed(*args: object, **kwargs: object) -> None:
        seen.append(router.in_flight("101"))
        await new_order(*args, **kwargs)  # type: ignore[arg-type]

    journal.new_order = observed  # type: ignore[method-assign]
    router.submit(_intent("101"))
    await router.pump(clock.now_ns())
    assert seen == [True]
    assert router.in_flight("101")  # the order exists now
    journal.close()
