"""The alerts watcher on a real paper router and journal: loss warning, kill switch, the close.

The router is set up as in tests/unit/orders/test_router.py (hand-set quotes, replay clock).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import structlog
from support.orders import Quotes

from smartflow.alerts.events import Alert
from smartflow.app.alerting import Alerting
from smartflow.config import AlertsConfig, Config, Credentials, OrdersConfig, RiskConfig
from smartflow.core.clock import ReplayClock
from smartflow.core.messages import Quote
from smartflow.core.timeutil import ns_at_ist
from smartflow.feed.session import FeedStats
from smartflow.journal.store import Journal, PositionRow
from smartflow.orders.guard import RiskGuard
from smartflow.orders.paper import PaperBroker
from smartflow.orders.router import OrderRouter


T0 = ns_at_ist(dt.date(2026, 11, 23), dt.time(15, 0))  # a Monday, half an hour before the close


async def test_loss_warning_kill_switch_and_the_summary_at_the_close(tmp_path: Path) -> None:
    risk = RiskConfig(max_daily_loss=1000.0)
    cfg = Config(risk=risk, alerts=AlertsConfig(enabled=True, loss_warning_pct=80.0))
    clock = ReplayClock(T0)
    book = Quotes()
    orders = OrdersConfig(paper_latency_ms=0)
    broker = PaperBroker(orders, book, clock, structlog.get_logger())
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
    # Long 75 at 100; the bid falls to 88.5: -862.50 marked to market, 86 % of the limit.
    router.positions["t1"] = PositionRow(
        day="2026-11-23",
        token="t1",
        symbol="SYM1",
        underlying="NIFTY",
        net_quantity=75,
        average_price=100.0,
        realised_pnl=0.0,
    )
    book.quotes["t1"] = Quote(bid=88.5, ask=89.0, ltp=88.75, tick=0.05)
    alerting = Alerting(cfg, Credentials(), structlog.get_logger())
    published: list[Alert] = []
    alerting.publish = published.append  # type: ignore[method-assign]
    # The parts of Trading the watcher reads, around the real router.
    alerting.trading = SimpleNamespace(  # type: ignore[assignment]
        guard=router.guard, router=router, broker=broker, journal=journal
    )
    alerting._clock = clock
    try:
        await alerting.check()
        await alerting.check()  # once a day, not once a second
        assert [a.kind for a in published] == ["loss_warning"]
        assert published[0].text.startswith("LOSS -862.50 is 86% of the daily limit 1000")
        router.guard.trip("drill")
        await alerting.check()
        router.guard.reset()
        await alerting.check()
        assert [a.kind for a in published[1:]] == ["kill_tripped", "kill_reset"]
        assert published[1].text == "KILL SWITCH ON: drill"
        # The feed's counters (the stall escalation's failed re-login, a data stall) move.
        stats = FeedStats()
        alerting._feed = lambda: SimpleNamespace(stats=stats)  # type: ignore[assignment,return-value]
        await alerting.check()
        stats.relogin_failures += 1
        stats.data_stalls += 1
        await alerting.check()
        await alerting.check()
        assert [a.kind for a in published[3:]] == ["feed_stall", "relogin_failed"]
        clock.set(ns_at_ist(dt.date(2026, 11, 23), dt.time(15, 31)))
        await alerting.check()
        await alerting.check()
        summaries = [a for a in published if a.kind == "daily_summary"]
        assert len(summaries) == 1
        assert summaries[0].text == (
            "DAY 2026-11-23: 0 fills, P&L -862.50 (realised +0.00, open -862.50); "
            "best SYM1 -862.50; worst SYM1 -862.50"
        )
    finally:
        journal.close()
