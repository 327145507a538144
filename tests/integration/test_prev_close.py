"""ΔOI baselines from the previous session's close, loaded from the simulator over loopback.

The simulator serves Angel's historical OI endpoint (``getOIData``) with each contract's OI at
the previous session's close, a value that differs from the OI the session opens with. The
loader logs in to it like a live session, asks for ATM-first contracts at a paced rate, and the
summaries then measure ΔOI from those closes; when the endpoint fails or is too slow, they fall
back to the day's own record or the first print and say why. The chain is fed the simulator's
own packets (a second ``Market`` of the same seed, so the REST server's clock cannot move it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
import structlog

from smartflow.analytics.summary import ChainSummaries, SummarySnapshot
from smartflow.app.prevclose import (
    OI_DATA_PATH,
    PrevCloseLoad,
    apply,
    fetch_prev_close,
    sim_session,
)
from smartflow.chain.state import ChainBook, ChainState, next_expiry_chains
from smartflow.config import Config, DetectorConfig, MarketConfig, SimConfig
from smartflow.core.clock import ScaledClock
from smartflow.instruments.master import ScripMaster, parse
from smartflow.instruments.universe import select
from smartflow.orders.angel_session import AngelSession
from smartflow.sim.market import Market
from smartflow.sim.server import SimServer, session_start


SIM = SimConfig(seed=5, strikes_each_side=2, ticks_per_second=200.0)
CFG = Config(sim=SIM, market=MarketConfig(expiries=2), detectors=DetectorConfig(bar_seconds=1))
DAY_NS = 86_400 * 1_000_000_000


@dataclass
class Rig:
    server: SimServer
    session: AngelSession
    start_ns: int
    day: dt.date
    master: ScripMaster

    async def post(self, body: dict[str, str]) -> tuple[int, bytes]:
        status, raw, _ = await self.session.send("POST", OI_DATA_PATH, body)
        return status, raw

    def options(self, expiry_rank: int = 0) -> list[tuple[str, str]]:
        insts = self.server.market.instruments
        expiry = sorted({i.expiry for i in insts if i.kind == "CE" and i.expiry})[expiry_rank]
        return [
            (i.segment, i.token) for i in insts if i.kind in ("CE", "PE") and i.expiry == expiry
        ]


class _Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def info(self, event: str, **kw: Any) -> None:
        self.events.append((event, kw))

    warning = info
    error = info

    def bind(self, **_: Any) -> _Log:
        return self


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    start_ns, day = session_start("10:00")
    market = Market(SIM, ["NIFTY"], start_ns, day)
    server = SimServer(market, ScaledClock(start_ns, 1.0), log=structlog.get_logger())
    await server.start()
    session = sim_session(CFG, server, structlog.get_logger())
    master = parse(msgspec.json.encode(market.scrip_master()), {"NIFTY"})
    try:
        yield Rig(server, session, start_ns, day, master)
    finally:
        await session.close()
        await server.stop()


def _summaries(rig: Rig) -> tuple[ChainBook, ChainSummaries]:
    near = ChainState(select(rig.master, "NIFTY", rig.start_ns), CFG.model)
    book = ChainBook([near], CFG.detectors, next_expiry_chains(rig.master, [near], rig.start_ns, 2))
    sums = ChainSummaries(book)
    book.on_close = lambda end, seq, _at: sums.on_bar(end, seq)
    return book, sums


def _changes(snap: SummarySnapshot, market: Market, base: dict[str, int]) -> int:
    """Check every printed contract's ΔOI against ``base``; return how many were checked."""
    by_key = {
        (i.expiry.isoformat(), i.strike, i.kind): i.token
        for i in market.instruments
        if i.expiry is not None and i.kind in ("CE", "PE")
    }
    checked = 0
    for s in (snap.to_struct(), snap.to_struct().next_expiry):
        assert s is not None
        for k in s.strikes:
            for kind, oi, doi in (("CE", k.ce_oi, k.ce_oi_change), ("PE", k.pe_oi, k.pe_oi_change)):
                token = by_key[(s.expiry, k.strike, kind)]
                if oi:
                    assert doi == oi - base[token], (s.expiry, k.strike, kind)
                    checked += 1
    return checked


async def test_loader_fills_the_previous_close_from_the_simulators_endpoint(rig: Rig) -> None:
    contracts = rig.options(0)[:6] + rig.options(1)[:6]
    load = await fetch_prev_close(rig.post, contracts, rig.day, per_second=2.0, budget_s=60.0)
    market = rig.server.market
    assert load.reason == ""
    assert load.loaded == {t: market.prev_close_oi(t) for _, t in contracts}
    # Yesterday's close is not what the session opened with.
    assert sum(load.loaded[t] != market.by_token[t].oi for _, t in contracts) > len(contracts) / 2
    asked = rig.server.rest.requests_to("getOIData")
    # Paced below the simulator's 3/s; should a slow host bunch replies past it, each refusal
    # is retried, never lost.
    assert set(load.failures) <= {"rate_limited"}
    assert len(asked) == len(contracts) + load.failures["rate_limited"]
    assert sum(r.http_status == 403 for r in asked) == load.failures["rate_limited"]
    assert asked[0].body["interval"] == "ONE_DAY"
    assert asked[0].body["todate"] == f"{rig.day - dt.timedelta(days=1)} 15:30"


async def test_rate_limited_request_is_retried_after_a_pause(rig: Rig) -> None:
    rig.server.rest.inject("getOIData", "rate_limit")
    contracts = rig.options(0)[:2]
    load = await fetch_prev_close(rig.post, contracts, rig.day, per_second=3.0, budget_s=30.0)
    assert len(load.loaded) == 2
    assert set(load.failures) == {"rate_limited"}  # the injected one (and any a slow host adds)
    assert [r.http_status for r in rig.server.rest.requests_to("getOIData")][:2] == [403, 200]


async def test_failing_endpoint_falls_back_and_says_why(rig: Rig) -> None:
    rig.server.rest.inject("getOIData", "http_500_not_accepted", count=20)
    _, sums = _summaries(rig)
    near = sums.by_root["NIFTY"]
    own = {t: 1000 for _, t in rig.options(0)}
    assert near.set_prev_close(own) == len(own)  # yesterday's record from state_dir
    load = await fetch_prev_close(
        rig.post, rig.options(0) + rig.options(1), rig.day, per_second=3.0, budget_s=30.0
    )
    assert load.loaded == {}
    assert load.reason == "getOIData failing: 5 errors in a row (http_500_not_json ×5)"
    assert len(rig.server.rest.requests_to("getOIData")) == 5  # gave up, did not hammer
    log = _Log()
    apply(sums, load, load.reason, log)
    assert log.events[0][0] == "prevclose.fallback"
    assert log.events[0][1]["reason"] == load.reason
    nxt = sums.next_by_root["NIFTY"]
    assert (near.meta.doi_source, near.meta.doi_note) == ("own_close", load.reason)
    assert (nxt.meta.doi_source, nxt.meta.doi_note) == ("first_print", load.reason)


async def test_slow_endpoint_ends_within_the_time_budget(rig: Rig) -> None:
    rig.server.rest.inject("getOIData", "timeout")  # the reply is held back 30 s
    load = await fetch_prev_close(rig.post, rig.options(0), rig.day, per_second=3.0, budget_s=2.0)
    assert load.loaded == {}
    assert load.failures == {"timeout": 1}
    assert load.reason == f"time budget of 2 s spent after 1 of {len(rig.options(0))}"
    assert load.seconds < 10.0  # bounded by the budget, not by the 30 s reply


@pytest.mark.slow
async def test_doi_from_loaded_close_then_own_close_across_midnight(rig: Rig) -> None:
    book, sums = _summaries(rig)
    contracts = rig.options(0) + rig.options(1)
    load = await fetch_prev_close(rig.post, contracts, rig.day, per_second=3.0, budget_s=60.0)
    log = _Log()
    apply(sums, load, load.reason, log)
    # Had only three of the near expiry's contracts loaded, the note would say how many missed.
    partial = PrevCloseLoad(asked=load.asked, loaded=dict(list(load.loaded.items())[:3]))
    _, other = _summaries(rig)
    apply(other, partial, "", _Log())
    assert other.by_root["NIFTY"].meta.doi_source == "oi_data"
    assert (
        other.by_root["NIFTY"].meta.doi_note
        == f"{len(rig.options(0)) - 3} of {len(rig.options(0))} asked: own close or first print"
    )
    assert log.events[0][0] == "prevclose.loaded"
    assert log.events[0][1]["loaded"] == len(contracts)
    closed: list[tuple[str, int, dict[str, int]]] = []
    sums.on_day_close.append(lambda root, day, oi: closed.append((root, day, oi)))
    # Day 1: the simulator's own packets (a twin market of the same seed), 15 s of them.
    twin = Market(SIM, ["NIFTY"], rig.start_ns, rig.day)

    def frames(until_ns: int, shift_ns: int = 0) -> list[tuple[int, bytes]]:
        return [
            (int.from_bytes(f[35:43], "little") * 1_000_000 + shift_ns, f)
            for _, f in twin.advance(until_ns)
        ]

    day1 = frames(rig.start_ns + 15 * 1_000_000_000)
    book.process(day1)
    book.advance_to(day1[-1][0] + 1_000_000_000)
    snap = sums.latest("NIFTY")
    assert snap is not None
    out = snap.to_struct()
    assert (out.doi_source, out.doi_note) == ("oi_data", None)
    assert out.next_expiry is not None
    assert (out.next_expiry.doi_source, out.next_expiry.doi_note) == ("oi_data", None)
    assert out.doi_prev_close_contracts == len(rig.options(0))
    assert _changes(snap, twin, load.loaded) >= len(contracts) // 2
    yesterday = sums.closing_oi("NIFTY")
    # Day 2: the next 10 s of packets, a calendar day later. The first bar close after midnight
    # rolls every expiry's baseline to yesterday's last bar close, and says so.
    day2 = frames(rig.start_ns + 25 * 1_000_000_000, DAY_NS)
    book.process(day2)
    book.advance_to(day2[-1][0] + 1_000_000_000)
    assert len(closed) == 1
    assert closed[0][2] == yesterday  # both expiries' closing OI, for state_dir
    assert {t for _, t in contracts} <= set(yesterday)
    snap = sums.latest("NIFTY")
    assert snap is not None
    out = snap.to_struct()
    assert out.doi_source == "own_close"
    assert out.next_expiry is not None
    assert out.next_expiry.doi_source == "own_close"
    assert _changes(snap, twin, yesterday) >= len(contracts) // 2
