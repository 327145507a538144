"""SubscriptionManager: the strike window follows spot as subscribe/unsubscribe deltas, and a
chain whose index never ticks falls back to the bare index code, then to the future carried back.

A real ``ChainBook`` fed real LTP packets and a real ``FeedSession`` that is never started (its
subscription set is what a started one would stream).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import structlog
from structlog.testing import capture_logs

from smartflow.app.subscriptions import SubscriptionManager
from smartflow.chain.state import ChainBook, ChainState
from smartflow.config import DetectorConfig, FeedConfig, MarketConfig, ModelConfig
from smartflow.core.clock import ReplayClock
from smartflow.core.timeutil import expiry_ns
from smartflow.feed import protocol as p
from smartflow.feed.session import FeedSession, Pair
from smartflow.instruments.master import Instrument
from smartflow.instruments.universe import BARE_INDEX_TOKENS, ChainUniverse


NS = 1_000_000_000
ROOT = "NIFTY"
EXPIRY = dt.date(2031, 1, 2)
STRIKES = list(range(100, 210, 10))  # 100 … 200, eleven strikes
T0 = expiry_ns(EXPIRY) - 365 * 86400 * NS  # a year before the expiry
INDEX = (1, "99926000")
FUTURE = (2, "2")
FALLBACK = (1, BARE_INDEX_TOKENS["99926000"])
RATE = 0.1


def _universe() -> ChainUniverse:
    index = Instrument(INDEX[1], "Nifty 50", ROOT, "INDEX", "NSE", 1, None, 0, 1, 0)
    fut = Instrument(FUTURE[1], "FUT", ROOT, "FUT", "NFO", 2, EXPIRY, 0, 75, 5)
    calls, puts = {}, {}
    for i, k in enumerate(STRIKES):
        kp = k * 100
        calls[kp] = Instrument(f"{1000 + i}", f"C{k}", ROOT, "CE", "NFO", 2, EXPIRY, kp, 75, 5)
        puts[kp] = Instrument(f"{2000 + i}", f"P{k}", ROOT, "PE", "NFO", 2, EXPIRY, kp, 75, 5)
    return ChainUniverse(
        root=ROOT,
        expiry=EXPIRY,
        expiry_ns=expiry_ns(EXPIRY),
        segment="NFO",
        exchange_type=2,
        index=index,
        future=fut,
        strikes_paise=[k * 100 for k in STRIKES],
        calls=calls,
        puts=puts,
        lot_size=75,
        tick_paise=5,
        index_fallback_token=BARE_INDEX_TOKENS[index.token],
    )


class Rig:
    def __init__(self, each_side: int = 2, recenter: int = 2, fallback_s: float = 10.0) -> None:
        self.chain = ChainState(_universe(), ModelConfig(forward="spot", rate=RATE))
        self.book = ChainBook([self.chain], DetectorConfig(bar_seconds=5))
        self.clock = ReplayClock(T0)
        self.feed = FeedSession(
            FeedConfig(), "ws://127.0.0.1:9/never", self._headers, self._sink, self.clock, _log()
        )
        market = MarketConfig(
            strikes_each_side=each_side, recenter_strikes=recenter, spot_fallback_s=fallback_s
        )
        self.subs = SubscriptionManager(self.book, self.feed, market, RATE, _log())
        self.seq = 0

    @staticmethod
    async def _headers() -> dict[str, str]:
        return {}

    def _sink(self, recv_ns: int, key: bytes, packet: bytes) -> None:
        raise AssertionError("the feed was never started")

    def tick(self, pair: Pair, rupees: float, at_s: float) -> None:
        """One LTP packet for ``pair`` at ``T0 + at_s``, then the manager's look at the chain."""
        self.seq += 1
        now = T0 + int(at_s * NS)
        self.clock.set(now)
        packet = p.encode(
            {
                "subscription_mode": p.Mode.LTP,
                "exchange_type": pair[0],
                "token": pair[1],
                "sequence_number": self.seq,
                "last_traded_price": round(rupees * 100),
            }
        )
        self.book.process([(now, packet)])
        self.subs.on_tick(now)

    def idle(self, at_s: float) -> None:
        """The manager's look at the chain at ``T0 + at_s`` without a packet."""
        self.clock.set(T0 + int(at_s * NS))
        self.subs.on_tick(self.clock.now_ns())

    def options(self) -> set[int]:
        """Strikes (rupees) whose options are streamed, checking both sides are."""
        streamed = {pair for pair in self.feed.subscribed if pair[0] == 2 and pair != FUTURE}
        strikes = {STRIKES[int(token) % 1000] for _, token in streamed}
        assert streamed == _options_of(strikes), "a strike streamed on one side only"
        return strikes


def _log() -> Any:
    return structlog.get_logger()


def _options_of(strikes: set[int]) -> set[Pair]:
    return {(2, f"{1000 + STRIKES.index(k)}") for k in strikes} | {
        (2, f"{2000 + STRIKES.index(k)}") for k in strikes
    }


def test_the_window_recentres_by_deltas_once_spot_has_moved_k_strikes() -> None:
    rig = Rig(each_side=2, recenter=2)
    rig.subs.start(T0)
    assert rig.feed.subscribed == {INDEX, FUTURE}
    rig.tick(INDEX, 150.2, 1)
    assert rig.options() == {130, 140, 150, 160, 170}
    assert rig.feed.subscribed == {INDEX, FUTURE} | _options_of({130, 140, 150, 160, 170})
    # One strike away from the centre (150 → 160): inside the hysteresis, nothing changes.
    with capture_logs() as logs:
        rig.tick(INDEX, 164.0, 2)
        rig.tick(INDEX, 136.0, 3)
    assert rig.options() == {130, 140, 150, 160, 170}
    assert (rig.subs.recenters, logs) == (1, [])
    # Two strikes (ATM 170): the window moves; only the difference is (un)subscribed.
    before = rig.feed.subscribed
    with capture_logs() as logs:
        rig.tick(INDEX, 168.0, 4)
    assert rig.options() == {150, 160, 170, 180, 190}
    assert before - rig.feed.subscribed == _options_of({130, 140})
    assert rig.feed.subscribed - before == _options_of({180, 190})
    (delta,) = [e for e in logs if e["event"] == "subscriptions.delta"]
    assert (delta["added"], delta["removed"]) == (4, 4)
    # Down through the old centre to the bottom of the list: the window is clipped, not shifted.
    rig.tick(INDEX, 90.0, 5)
    assert rig.options() == {100, 110, 120}
    assert rig.subs.recenters == 3
    assert {INDEX, FUTURE} <= rig.feed.subscribed


def test_no_index_tick_brings_the_bare_index_code_then_the_future_carried_back() -> None:
    rig = Rig(each_side=1, recenter=1, fallback_s=10.0)
    rig.subs.start(T0)
    rig.tick(FUTURE, 166.0, 1)
    rig.idle(10.0)  # not yet past the fallback delay
    assert rig.feed.subscribed == {INDEX, FUTURE}
    with capture_logs() as logs:
        rig.idle(10.5)
    assert rig.feed.subscribed == {INDEX, FUTURE, FALLBACK}
    assert [e["event"] for e in logs] == ["subscriptions.index_fallback", "subscriptions.delta"]
    # The bare code gets its own delay before the future stands in for spot.
    rig.tick(FUTURE, 166.0, 20.0)
    assert rig.options() == set()
    rig.tick(FUTURE, 166.0, 20.5)
    # 166 × e^(−0.1 × ~1 year) ≈ 150.2: centred on 150, not on the future's 170.
    t_yrs = (expiry_ns(EXPIRY) - rig.clock.now_ns()) / NS / (365 * 86400)
    assert round(166.0 * math.exp(-RATE * t_yrs)) == 150
    assert rig.options() == {140, 150, 160}
    # The index arrives under its bare code: it lands on the index row and spot takes over.
    rig.tick(FALLBACK, 181.0, 21.0)
    assert rig.chain.spot_paise() == 18100
    assert rig.options() == {170, 180, 190}
    assert FALLBACK in rig.feed.subscribed  # it is what streams now


def test_an_index_that_ticks_in_time_never_needs_the_fallback() -> None:
    rig = Rig(fallback_s=10.0)
    rig.subs.start(T0)
    rig.tick(INDEX, 150.0, 9.0)
    rig.tick(FUTURE, 190.0, 60.0)
    rig.idle(120.0)
    assert rig.subs.fallback_on == set()
    assert FALLBACK not in rig.feed.subscribed
    assert rig.options() == {130, 140, 150, 160, 170}  # spot, never the future
