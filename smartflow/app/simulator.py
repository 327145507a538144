"""``smartflow sim``: the Angel-protocol simulator on its own, for the SDK or another client."""

from __future__ import annotations

import asyncio
import signal

import structlog

from smartflow.config import Config
from smartflow.core.clock import ScaledClock
from smartflow.sim.market import Market
from smartflow.sim.server import SimServer, session_start
from smartflow.sim.tapefeed import TapeSource
from smartflow.sim.universe import check_roots
from smartflow.tape.format import open_tape


async def run_simulator(
    cfg: Config,
    host: str | None,
    port: int | None,
    duration: float | None,
    tape: str | None = None,
    rate: float | None = None,
) -> int:
    """Serve the simulated market until SIGINT/SIGTERM or ``duration`` seconds.

    With ``tape``, packets come from that recording at ``rate`` per second (default 1000)
    instead of the market model, which still serves the instruments.
    """
    log = structlog.get_logger().bind(stage="sim")
    check_roots(cfg.market.underlyings)
    start_ns, day = session_start(cfg.sim.session_start_ist)
    clock = ScaledClock(start_ns, cfg.sim.speed)
    market = Market(cfg.sim, cfg.market.underlyings, start_ns, day)
    server = SimServer(
        market, clock, host or cfg.sim.host, cfg.sim.port if port is None else port, log=log
    )
    if tape is not None:
        server.tape_source = TapeSource(open_tape(tape), rate or 1000.0)
    await server.start()
    creds = server.creds
    # Public demo values of the simulator's account, printed so a client can be pointed at it.
    log.info(
        "sim.account",
        url=server.url,
        scrip_master=server.http_url,
        client_code=creds.client_code,
        demo_api_key=creds.api_key,
        note="demo credentials of the simulator; jwt/feed token from the sim's login",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if duration is None:
            await stop.wait()
        else:
            try:
                async with asyncio.timeout(duration):
                    await stop.wait()
            except TimeoutError:
                pass
    finally:
        await server.stop()
    log.info(
        "sim.stopped",
        frames_sent=server.frames_sent,
        scenarios=[t.to_dict() for t in market.ground_truth],
    )
    return 0
