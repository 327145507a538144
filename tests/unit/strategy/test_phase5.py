"""Seed Phase 5 through the real router, paper broker and journal: every entry gate and exit.

The strategy reads positions from the router and quotes from a hand-set book; entries and exits
go through ``OrderRouter.submit`` and fill on paper, so "held" and "flat" are the router's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
import structlog

from smartflow.config import OrdersConfig, RiskConfig, StrategyConfig
from smartflow.core.clock import ReplayClock
from smartflow.core.messages import Quote, SmartMoneySignal
from smartflow.core.timeutil import ns_at_ist
from smartflow.journal.store import Journal
from smartflow.orders.guard import RiskGuard
from smartflow.orders.paper import PaperBroker
from smartflow.orders.router import OrderRouter
from smartflow.strategy.entries_exits import Contract, Strategy


NS = 1_000_000_000
DAY = dt.date(2026, 11, 23)  # a Monday
T0 = ns_at_ist(DAY, dt.time(10, 0))
CE, PE = "101", "102"
LOT = 75
CONTRACTS = {
    tok: Contract(tok, f"NIFTY24000{kind}", "NFO", LOT, "NIFTY", kind, DAY + dt.timedelta(days=3))
    for tok, kind in ((CE, "CE"), (PE, "PE"))
}


class Book:
    """Quotes set by hand (the router's MarketView and the strategy's Quotes)."""

    def __init__(self) -> None:
        self.quotes: dict[str, Quote] = {}

    def set(self, token: str, bid: float, ask: float) -> None:
        seq = self.quotes[token].seq + 1 if token in self.quotes else 1
        self.quotes[token] = Quote(
            bid=bid,
            ask=ask,
            ltp=round((bid + ask) / 2, 2),
            tick=0.05,
            bids=((bid, 750),),
            asks=((ask, 750),),
            seq=seq,
        )

    def quote(self, token: str) -> Quote | None:
        return self.quotes.get(token)


@dataclass
class Rig:
    strategy: Strategy
    router: OrderRouter
    paper: PaperBroker
    book: Book
    clock: ReplayClock

    async def settle(self, now_ns: int) -> None:
        """One batch: the router sends, the paper broker matches, exits are checked."""
        self.clock.set(now_ns)
        await self.router.pump(now_ns)
        self.paper.on_market(now_ns)
        await self.router.pump(now_ns)
        self.strategy.on_market(now_ns)
        await self.router.pump(now_ns)
        self.paper.on_market(now_ns)
        await self.router.pump(now_ns)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    clock = ReplayClock(T0)
    book = Book()
    book.set(CE, 99.0, 100.0)
    book.set(PE, 79.0, 80.0)
    orders = OrdersConfig(paper_latency_ms=0, chase_after_s=1000)
    risk = RiskConfig()
    log = structlog.get_logger()
    paper = PaperBroker(orders, book, clock, log)
    journal = Journal(tmp_path / "journal.sqlite3")
    router = OrderRouter(orders, risk, RiskGuard(risk, ["NIFTY"]), paper, journal, book, clock, log)
    strategy = Strategy(StrategyConfig(), CONTRACTS.get, router, book, router.submit, log)
    yield Rig(strategy, router, paper, book, clock)
    journal.close()


def _signal(
    rec: str = "BUY_CALL",
    *,
    conviction: float = 0.8,
    probability: float = 0.75,
    trap: float = 0.0,
    fresh: bool = False,
    can_trade: bool = True,
    ts: int = T0,
) -> SmartMoneySignal:
    call = rec != "BUY_PUT"
    return SmartMoneySignal(
        underlying="NIFTY",
        ts=ts,
        recommendation=rec,  # type: ignore[arg-type]
        oi_conviction_score=conviction,
        volume_aggression_score=0.3,
        smart_money_probability=probability,
        trap_probability=trap,
        fresh_position_detected=fresh,
        market_control="BALANCED",
        can_trade=can_trade,
        reason=None,
        strike=24_000.0,
        option_type="CE" if call else "PE",
        token=CE if call else PE,
        evidence=[],
    )


async def _enter(rig: Rig, sig: SmartMoneySignal | None = None) -> float:
    sig = sig or _signal()
    rig.strategy.on_signal(sig)
    await rig.settle(sig.ts)
    assert rig.router.net_lots(sig.token or "") > 0
    return rig.router.entry_price(sig.token or "")


# ---- entries -------------------------------------------------------------------------------


async def test_normal_entry_above_the_conviction_gate(rig: Rig) -> None:
    entry = await _enter(rig)
    assert entry == 100.0  # bought at the ask
    assert rig.strategy.entries == 1
    assert rig.router.net_lots(CE) == round(1 * (0.5 + 0.8))  # normal_lots × (0.5 + conviction)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"can_trade": False}, "can_trade is false"),
        ({"conviction": 0.7}, "a NORMAL entry needs conviction above 0.7"),
        ({"probability": 0.4}, "Kelly: 0.4 − 0.6 ÷ 1.25 < 0, no edge"),
        ({"rec": "AVOID"}, "not a BUY"),
    ],
)
async def test_entry_gates(rig: Rig, change: dict[str, object], why: str) -> None:
    rig.strategy.on_signal(_signal(**change))  # type: ignore[arg-type]
    await rig.settle(T0)
    assert rig.strategy.entries == 0, why
    assert rig.router.net_lots(CE) == 0, why


async def test_a_fresh_position_enters_aggressively_below_the_conviction_gate(rig: Rig) -> None:
    await _enter(rig, _signal(conviction=0.5, fresh=True))
    assert rig.router.net_lots(CE) == round(2 * (0.5 + 0.5))  # aggressive_lots × (0.5 + 0.5)


async def test_no_second_entry_while_held_nor_within_the_cooldown(rig: Rig) -> None:
    await _enter(rig)
    rig.strategy.on_signal(_signal(ts=T0 + NS))
    await rig.settle(T0 + NS)
    assert rig.strategy.entries == 1
    rig.book.set(CE, 115.0, 116.0)  # target: out
    await rig.settle(T0 + 2 * NS)
    assert rig.router.net_lots(CE) == 0
    at = T0 + 20 * NS  # 18 s after the exit, cooldown 30 s
    rig.strategy.on_signal(_signal(ts=at))
    await rig.settle(at)
    assert rig.strategy.entries == 1
    at = T0 + 40 * NS
    rig.strategy.on_signal(_signal(ts=at))
    await rig.settle(at)
    assert rig.strategy.entries == 2


async def test_no_entry_after_the_days_cutoff(rig: Rig) -> None:
    late = ns_at_ist(DAY, dt.time(15, 11))
    rig.clock.set(late)
    rig.strategy.on_signal(_signal(ts=late))
    await rig.settle(late)
    assert rig.strategy.entries == 0


# ---- exits ---------------------------------------------------------------------------------


async def test_target_exit_at_ten_percent_of_the_fill(rig: Rig) -> None:
    entry = await _enter(rig)
    rig.book.set(CE, 109.9, 110.5)  # +9.9 % at the bid: not yet
    await rig.settle(T0 + NS)
    assert rig.router.net_lots(CE) > 0
    rig.book.set(CE, 110.0, 110.5)  # +10 % of 100
    await rig.settle(T0 + 2 * NS)
    assert rig.router.net_lots(CE) == 0
    assert rig.strategy.exits == 1
    assert entry * 1.10 == pytest.approx(110.0)


async def test_target_widens_with_the_fresh_positions_strength(rig: Rig) -> None:
    sig = msgspec.structs.replace(_signal(fresh=True), fresh_strength=0.5)
    await _enter(rig, sig)
    rig.book.set(CE, 114.0, 114.5)  # +14 % < 10 % × 1.5
    await rig.settle(T0 + NS)
    assert rig.router.net_lots(CE) > 0
    rig.book.set(CE, 115.05, 115.5)  # past +15 % (exactly 15 % is a rounding away)
    await rig.settle(T0 + 2 * NS)
    assert rig.router.net_lots(CE) == 0


# A tick past −8 % (−4 % at trap probability 0.5): −8 % itself is a float rounding away.
@pytest.mark.parametrize(("trap", "stop_at"), [(0.0, 91.95), (0.5, 95.95)])
async def test_stop_tightens_with_the_trap_probability(
    rig: Rig, trap: float, stop_at: float
) -> None:
    await _enter(rig, _signal(trap=trap))
    assert rig.strategy.held[CE].stop_pct == pytest.approx(8.0 * (1 - trap))
    rig.book.set(CE, stop_at + 0.1, stop_at + 0.5)  # above the stop
    await rig.settle(T0 + NS)
    assert rig.router.net_lots(CE) > 0
    rig.book.set(CE, stop_at, stop_at + 0.5)
    await rig.settle(T0 + 2 * NS)
    assert rig.router.net_lots(CE) == 0


async def test_time_exit_before_theta_crush(rig: Rig) -> None:
    await _enter(rig)
    late = ns_at_ist(DAY, dt.time(15, 10))
    await rig.settle(late - NS)
    assert rig.router.net_lots(CE) > 0
    await rig.settle(late)
    assert rig.router.net_lots(CE) == 0


async def test_contrary_signal_exit(rig: Rig) -> None:
    await _enter(rig)
    # A BUY_PUT below the contrary probability keeps the call...
    weak = _signal("BUY_PUT", probability=0.45, can_trade=False, ts=T0 + NS)
    rig.strategy.on_signal(weak)
    await rig.settle(weak.ts)
    assert rig.router.net_lots(CE) > 0
    # ...one at or above it sells it (and would not trade a put it may not: can_trade false).
    strong = _signal("BUY_PUT", probability=0.6, can_trade=False, ts=T0 + 2 * NS)
    rig.strategy.on_signal(strong)
    await rig.settle(strong.ts)
    assert rig.router.net_lots(CE) == 0
    assert rig.router.net_lots(PE) == 0
