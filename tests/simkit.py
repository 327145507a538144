"""Helpers for tests that run the simulator and a feed session over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog

from smartflow.config import FeedConfig, SimConfig
from smartflow.core.clock import ScaledClock
from smartflow.feed.session import FeedSession, Pair, headers_for, static_headers
from smartflow.sim.market import Market
from smartflow.sim.rest import SimCredentials
from smartflow.sim.server import SimServer, session_start


# Short timers so reconnects and stalls happen within a second or two.
FAST_FEED = FeedConfig(
    ping_interval_s=0.5,
    stall_timeout_s=1.0,
    backoff_initial_s=0.05,
    backoff_max_s=0.2,
    healthy_after_s=0.5,
    open_timeout_s=2.0,
)


def sim_config(**overrides: Any) -> SimConfig:
    """A small, busy simulated NIFTY chain."""
    kw: dict[str, Any] = {"ticks_per_second": 300.0, "speed": 1.0, "strikes_each_side": 5}
    kw.update(overrides)
    return SimConfig(**kw)


async def eventually(cond: Callable[[], bool], within: float = 5.0) -> None:
    """Poll ``cond`` until it holds; fail the test after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s: {cond}")
        await asyncio.sleep(0.01)


def good_headers(creds: SimCredentials | None = None) -> dict[str, str]:
    """The four handshake headers the simulator accepts."""
    c = creds or SimCredentials()
    return headers_for(c.jwt, c.api_key, c.client_code, c.feed_token)


def chain_pairs(market: Market, options: int = 6) -> set[Pair]:
    """Index, future and the ``options`` options nearest the money (weekly expiry first)."""
    chain = market.chains["NIFTY"]
    opts = sorted(
        chain.options,
        key=lambda c: (c.inst.expiry, abs(c.inst.strike - chain.spot), c.inst.kind),
    )[:options]
    return {(c.exch_type, c.inst.token) for c in (chain.index, chain.future, *opts)}


@contextlib.asynccontextmanager
async def running_sim(cfg: SimConfig | None = None) -> AsyncIterator[SimServer]:
    """A started ``SimServer`` on a free loopback port."""
    cfg = cfg or sim_config()
    start_ns, day = session_start(cfg.session_start_ist)
    clock = ScaledClock(start_ns, cfg.speed)
    market = Market(cfg, ["NIFTY"], start_ns, day)
    server = SimServer(market, clock, "127.0.0.1", 0, log=structlog.get_logger().bind(stage="sim"))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def make_session(
    server: SimServer,
    sink: Callable[[int, bytes, bytes], None],
    cfg: FeedConfig = FAST_FEED,
    headers: dict[str, str] | None = None,
    **kw: Any,
) -> FeedSession:
    """A ``FeedSession`` pointed at ``server`` with the simulator's clock."""
    return FeedSession(
        cfg,
        server.url,
        static_headers(headers or good_headers(server.creds)),
        sink,
        server.clock,
        structlog.get_logger().bind(stage="feed"),
        seed=1,
        **kw,
    )


@contextlib.asynccontextmanager
async def running(session: FeedSession) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``session`` in a task; stop it (and surface its failure) on exit."""
    task = asyncio.create_task(session.run())
    try:
        yield task
    finally:
        await session.stop()
        await asyncio.wait_for(task, 5)
