"""Exit management (strategy/exits.py): each rule alone, then through the real router and paper
broker, where a held position is sold for the rule's reason and the reason is journalled."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog

from smartflow.config import OrdersConfig, RiskConfig, StrategyConfig, decode
from smartflow.core.clock import ReplayClock
from smartflow.core.errors import ConfigError
from smartflow.core.messages import Quote, SmartMoneySignal
from smartflow.core.timeutil import ns_at_ist
from smartflow.journal.store import Journal
from smartflow.orders.guard import RiskGuard
from smartflow.orders.paper import PaperBroker
from smartflow.orders.router import OrderRouter
from smartflow.strategy.entries_exits import Contract, Strategy
from smartflow.strategy.exits import (
    ExitRules,
    break_even,
    exit_kind,
    session_left,
    theta_exit,
    trailing_stop,
)


NS = 1_000_000_000
DAY = dt.date(2026, 11, 23)
T0 = ns_at_ist(DAY, dt.time(10, 0))
CE = "101"
CONTRACT = Contract(CE, "NIFTY24000CE", "NFO", 75, "NIFTY", "CE", DAY + dt.timedelta(days=3))


# ---- the rules alone ---------------------------------------------------------------------


def test_trailing_stop_trails_the_high_since_entry() -> None:
    assert trailing_stop(0.0, 100, 130, 50) is None  # off
    assert trailing_stop(5.0, 100, 0, 95.01) is None  # from the entry until a higher mark
    assert trailing_stop(5.0, 100, 0, 95.0) is not None
    assert trailing_stop(5.0, 100, 120, 114.01) is None  # 5 % under 120 is 114
    why = trailing_stop(5.0, 100, 120, 114.0)
    assert why is not None
    assert exit_kind(why) == "trailing stop"


def test_break_even_arms_only_after_the_move() -> None:
    assert break_even(5.0, 100, 104.9, 99) is None  # never +5 %: not armed
    assert break_even(5.0, 100, 105, 100.05) is None  # armed, still above entry
    why = break_even(5.0, 100, 105, 100)
    assert why is not None
    assert exit_kind(why) == "break-even"
    assert break_even(0.0, 100, 200, 50) is None


def test_theta_exit_when_the_gain_no_longer_pays_for_the_decay_ahead() -> None:
    # θ −6/day on a 20 premium is 0.3/day ≥ 0.25; half the session left → 3 of decay ahead.
    assert theta_exit(0.25, 18, 20, -6.0, 0.5) is not None  # gain 2 < 3
    assert theta_exit(0.25, 16, 20, -6.0, 0.5) is None  # gain 4 covers it
    assert theta_exit(0.25, 18, 20, -4.0, 0.5) is None  # 0.2/day: not aggressive
    assert theta_exit(0.25, 18, 20, math.nan, 0.5) is None  # not priced yet
    assert theta_exit(0.0, 18, 20, -6.0, 0.5) is None  # off
    why = theta_exit(0.25, 18, 20, -6.0, 0.5)
    assert why is not None
    assert exit_kind(why) == "theta"


def test_session_left() -> None:
    assert session_left(ns_at_ist(DAY, dt.time(9, 15))) == 1.0
    assert session_left(ns_at_ist(DAY, dt.time(12, 22, 30))) == pytest.approx(0.5)
    assert session_left(ns_at_ist(DAY, dt.time(15, 45))) == 0.0


def test_daily_target_and_loss_stop_halt_entries_until_the_next_day() -> None:
    rules = ExitRules(StrategyConfig(daily_profit_target_rupees=1000, daily_loss_stop_rupees=500))
    assert rules.day_exit("2026-11-23", 999.0) is None
    assert rules.entry_refusal("2026-11-23", CE) is None
    why = rules.day_exit("2026-11-23", 1000.0)
    assert why is not None
    assert exit_kind(why) == "daily profit target"
    assert rules.entry_refusal("2026-11-23", CE) == why
    assert rules.day_exit("2026-11-24", 0.0) is None  # a new day
    assert rules.entry_refusal("2026-11-24", CE) is None
    stop = rules.day_exit("2026-11-24", -500.0)
    assert stop is not None
    assert exit_kind(stop) == "daily loss stop"


def test_re_entry_cap_counts_per_contract_per_day() -> None:
    rules = ExitRules(StrategyConfig(max_entries_per_contract=2))
    for _ in range(2):
        assert rules.entry_refusal("2026-11-23", CE) is None
        rules.entered("2026-11-23", CE)
    assert rules.entry_refusal("2026-11-23", CE) is not None
    assert rules.entry_refusal("2026-11-23", "other") is None
    assert rules.entry_refusal("2026-11-24", CE) is None
    assert ExitRules(StrategyConfig()).entry_refusal("d", CE) is None  # 0: no cap


def test_exit_kinds_of_the_existing_reasons() -> None:
    assert exit_kind("target +15.0% (≥ 15.0%)") == "target"
    assert exit_kind("stop -8.1% (≤ -8.0%)") == "stop"
    assert exit_kind("time exit before theta crush") == "time exit"
    assert exit_kind("contrary signal BUY_PUT") == "contrary signal"
    assert exit_kind("kill switch") == "other"


def test_exit_keys_are_validated_by_name() -> None:
    with pytest.raises(ConfigError, match=r"strategy\.trailing_stop_pct"):
        decode("[strategy]\ntrailing_stop_pct = 100\n")
    with pytest.raises(ConfigError, match=r"strategy\.max_entries_per_contract"):
        decode("[strategy]\nmax_entries_per_contract = -1\n")


# ---- through the router and the paper broker ---------------------------------------------


class Book:
    def __init__(self) -> None:
        self.quotes: dict[str, Quote] = {}
        self.thetas: dict[str, float] = {}

    def set(self, bid: float, ask: float) -> None:
        seq = self.quotes[CE].seq + 1 if CE in self.quotes else 1
        self.quotes[CE] = Quote(
            bid=bid, ask=ask, ltp=bid, tick=0.05, bids=((bid, 750),), asks=((ask, 750),), seq=seq
        )

    def quote(self, token: str) -> Quote | None:
        return self.quotes.get(token)

    def theta(self, token: str) -> float:
        return self.thetas.get(token, math.nan)


@dataclass
class Rig:
    strategy: Strategy
    router: OrderRouter
    paper: PaperBroker
    book: Book
    clock: ReplayClock
    journal: Journal

    async def settle(self, now_ns: int) -> None:
        self.clock.set(now_ns)
        for _ in range(2):
            await self.router.pump(now_ns)
            self.paper.on_market(now_ns)
            await self.router.pump(now_ns)
            self.strategy.on_market(now_ns)

    async def enter(self, at: int) -> None:
        self.strategy.on_signal(_signal(at))
        await self.settle(at)

    def exit_reasons(self) -> list[str]:
        return [o.reason for o in self.journal.orders() if o.purpose == "EXIT"]


def _signal(ts: int) -> SmartMoneySignal:
    return SmartMoneySignal(
        underlying="NIFTY",
        ts=ts,
        recommendation="BUY_CALL",
        oi_conviction_score=0.8,
        volume_aggression_score=0.3,
        smart_money_probability=0.75,
        trap_probability=0.0,
        fresh_position_detected=False,
        market_control="BALANCED",
        can_trade=True,
        reason=None,
        strike=24_000.0,
        option_type="CE",
        token=CE,
        evidence=[],
    )


def _rig(tmp_path: Path, **strategy: float) -> Iterator[Rig]:
    clock = ReplayClock(T0)
    book = Book()
    book.set(99.0, 100.0)
    orders = OrdersConfig(paper_latency_ms=0, chase_after_s=1000)
    risk = RiskConfig()
    log = structlog.get_logger()
    paper = PaperBroker(orders, book, clock, log)
    journal = Journal(tmp_path / "journal.sqlite3")
    router = OrderRouter(orders, risk, RiskGuard(risk, ["NIFTY"]), paper, journal, book, clock, log)

    def net() -> float:
        realised, unrealised = router.day_pnl()
        return realised + unrealised - sum(p.charges for p in router.positions.values())

    cfg = StrategyConfig(cooldown_s=0, **strategy)  # type: ignore[arg-type]
    strat = Strategy(
        cfg, {CE: CONTRACT}.get, router, book, router.submit, log, net_pnl=net, theta=book.theta
    )
    yield Rig(strat, router, paper, book, clock, journal)
    journal.close()


@pytest.fixture
def trailing(tmp_path: Path) -> Iterator[Rig]:
    yield from _rig(tmp_path, trailing_stop_pct=5.0, breakeven_after_pct=3.0)


async def test_trailing_stop_sells_and_journals_its_reason(trailing: Rig) -> None:
    await trailing.enter(T0)
    assert trailing.router.entry_price(CE) == 100.0
    trailing.book.set(108.0, 108.5)  # +8 %: below the 10 % target, new high
    await trailing.settle(T0 + NS)
    trailing.book.set(102.7, 103.0)  # 102.7 > 108 × 0.95 = 102.6: held
    await trailing.settle(T0 + 2 * NS)
    assert trailing.router.net_lots(CE) > 0
    trailing.book.set(102.6, 103.0)
    await trailing.settle(T0 + 3 * NS)
    assert trailing.router.net_lots(CE) == 0
    (reason,) = trailing.exit_reasons()
    assert exit_kind(reason) == "trailing stop"


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[Rig]:
    yield from _rig(tmp_path, max_entries_per_contract=1, breakeven_after_pct=3.0)


async def test_break_even_then_the_re_entry_cap(capped: Rig) -> None:
    await capped.enter(T0)
    capped.book.set(104.0, 104.5)  # +4 % arms break-even at 3 %
    await capped.settle(T0 + NS)
    capped.book.set(100.0, 100.5)
    await capped.settle(T0 + 2 * NS)
    assert capped.router.net_lots(CE) == 0
    assert [exit_kind(r) for r in capped.exit_reasons()] == ["break-even"]
    await capped.enter(T0 + 10 * NS)  # second entry on the contract today: capped
    assert capped.strategy.entries == 1
    assert capped.router.net_lots(CE) == 0


@pytest.fixture
def daily(tmp_path: Path) -> Iterator[Rig]:
    yield from _rig(tmp_path, daily_loss_stop_rupees=310.0)


async def test_daily_loss_stop_flattens_and_blocks_entries(daily: Rig) -> None:
    await daily.enter(T0)
    assert daily.router.net_lots(CE) == 1
    # Marked at 96 one lot is −300 gross, above the −310 stop; the entry's charges (₹25.47)
    # push it to −325.47: the stop reads net P&L.
    daily.book.set(96.0, 96.5)
    await daily.settle(T0 + NS)
    assert daily.router.net_lots(CE) == 0
    (reason,) = daily.exit_reasons()
    assert reason.startswith("daily loss stop -325.47")
    await daily.enter(T0 + 60 * NS)
    assert daily.strategy.entries == 1


@pytest.fixture
def theta(tmp_path: Path) -> Iterator[Rig]:
    yield from _rig(tmp_path, theta_exit_ratio=0.25)


async def test_theta_exit_through_the_router(theta: Rig) -> None:
    await theta.enter(T0)
    theta.book.thetas[CE] = -20.0  # 0.2/day of a ~100 premium: below the ratio
    await theta.settle(T0 + NS)
    assert theta.router.net_lots(CE) > 0
    theta.book.thetas[CE] = -30.0  # 0.3/day, and the flat position gains nothing
    await theta.settle(T0 + 2 * NS)
    assert theta.router.net_lots(CE) == 0
    assert [exit_kind(r) for r in theta.exit_reasons()] == ["theta"]
