"""Determinism: a tape replays to the same bytes every time, and a live session's signals are
exactly what its own tape replays to.

Live and replay share everything after the socket: packets go (receive time, frame) into the same
``ChainBook``, which closes each bar at its end instant with exactly the packets received inside
it, so batching and scheduling cannot change a bar. What *can* differ live is conflation: the
feed's mailbox keeps only the latest packet per token when the engine falls behind — an overload
policy, allowed to drop per-trade detail (a conflated trade's volume lands in the next packet's
day volume, but its bar, its CVD sign and the first-packet baseline can change). The tape records
every packet before the mailbox, so the live == replay claim holds exactly when nothing was
conflated. The test therefore keys its mailbox per packet, not per token: whether a loaded
machine stalls the engine for a few milliseconds must not decide the outcome (it did, at 2 of
8,000 packets), and every recorded packet must reach the engine.
"""

from __future__ import annotations

import asyncio
import collections
import io
import itertools
from pathlib import Path

import msgspec
import pytest
import structlog
from simkit import eventually
from support.session import write_tape

from smartflow.app.packet_loop import Engine
from smartflow.app.pipeline import build_pipeline
from smartflow.app.replay import Replayer
from smartflow.app.warmup import warm_up
from smartflow.config import Config, FeedConfig, ScenarioConfig, SimConfig
from smartflow.core.clock import ScaledClock
from smartflow.core.mailbox import Conflator
from smartflow.core.messages import SmartMoneySignal
from smartflow.feed.session import FeedSession, Pair, headers_for, static_headers
from smartflow.instruments.master import parse
from smartflow.sim.market import Market
from smartflow.sim.server import SimServer, session_start
from smartflow.sim.universe import noise_records
from smartflow.tape.format import TapeWriter, open_tape


NS = 1_000_000_000
SCENARIOS = [
    ScenarioConfig(kind="fresh_position", start_s=40, duration_s=30, side="CE"),
    ScenarioConfig(kind="long_build_up", start_s=90, duration_s=30, side="PE", strike_offset=-1),
    ScenarioConfig(kind="short_build_up", start_s=140, duration_s=30, side="CE", strike_offset=1),
]


def _replay(cfg: Config, master: bytes, tape_path: Path) -> tuple[bytes, list[SmartMoneySignal]]:
    tape = open_tape(tape_path)
    out = io.BytesIO()
    replayer = Replayer(
        cfg, parse(master, set(cfg.market.underlyings)), out, 30.0, int(tape.recv_ns[0])
    )
    replayer.run(tape)
    return out.getvalue(), replayer.signals


def test_replaying_a_tape_twice_gives_identical_bytes(tmp_path: Path) -> None:
    sim = SimConfig(seed=5, ticks_per_second=150, days_to_expiry=2, scenarios=SCENARIOS)
    cfg = Config(sim=sim)
    assert cfg.strategy.enabled  # orders and fills are part of the output
    tape = tmp_path / "session.sft"
    _, master = write_tape(sim, 200, str(tape))
    first, signals = _replay(cfg, master, tape)
    second, _ = _replay(cfg, master, tape)
    assert first == second
    kinds = collections.Counter(msgspec.json.decode(line)["kind"] for line in first.splitlines())
    # The output is not trivially empty: signals, paper orders and their fills, chain snapshots.
    assert kinds["signal"] >= 5, kinds
    assert kinds["order"] >= 2, kinds
    assert kinds["fill"] >= 1, kinds
    assert kinds["chain"] >= 6
    assert kinds["summary"] == 1
    assert any(s.can_trade for s in signals)


# ---------------------------------------------------------------------------------------------
# live == replay
# ---------------------------------------------------------------------------------------------

# The market is event-driven in simulated time (the same packets at any speed); the speed only
# sets how long the test waits for them.
SPEED = 12.0
LIVE_WALL_S = 180.0 / SPEED  # three simulated minutes
LIVE_SIM = SimConfig(
    seed=9, speed=SPEED, ticks_per_second=60, days_to_expiry=2, scenarios=SCENARIOS
)
WINDOW = 10  # ATM ± 10 strikes: every scenario contract is inside


def _wanted(market: Market) -> set[Pair]:
    chain = market.chains["NIFTY"]
    weekly = min(c.inst.expiry for c in chain.options if c.inst.expiry is not None)
    pairs: set[Pair] = {
        (chain.index.exch_type, chain.index.inst.token),
        (chain.future.exch_type, chain.future.inst.token),
    }
    for c in chain.options:
        if c.inst.expiry == weekly and abs(c.inst.strike - chain.spot) <= WINDOW * 50:
            pairs.add((c.exch_type, c.inst.token))
    return pairs


async def _live_session(
    tape_path: Path, cfg: Config, wall_s: float, engine_first_s: float | None = None
) -> tuple[list[SmartMoneySignal], bytes, int]:
    """The daemon's pipeline over loopback.

    Returns (emitted signals, master, packets conflated or dropped).

    The engine starts when the market starts flowing, or ``engine_first_s`` wall seconds before.
    """
    log = structlog.get_logger()
    start_ns, day = session_start(cfg.sim.session_start_ist)
    clock = ScaledClock(start_ns, cfg.sim.speed)
    market = Market(cfg.sim, cfg.market.underlyings, start_ns, day)
    server = SimServer(market, clock, log=log.bind(stage="sim"))
    master = msgspec.json.encode(market.scrip_master(noise_records(day)))
    scrip = parse(master, set(cfg.market.underlyings))
    # As Daemon.start: the pipeline, kernels warm before the feed.
    pipeline = build_pipeline(cfg, scrip, clock)
    live: list[SmartMoneySignal] = []
    warm_up(cfg.model, cfg.detectors)
    await server.start()
    # Subscribing makes the server send every token's current packet at once, racing the first
    # trades: a startup burst, not the steady state this test is about. The simulator is held
    # while the subscription lands (it then sends no snapshots); each token's first packet is
    # its next trade, exactly as the tape records it.
    server.freeze()
    mailbox: Conflator[int, tuple[int, bytes]] = Conflator(max_keys=1 << 20)
    arrivals = itertools.count()
    recorder = TapeWriter(tape_path, {"test": "live-vs-replay"})
    creds = server.creds
    feed = FeedSession(
        FeedConfig(),
        server.url,
        static_headers(headers_for(creds.jwt, creds.api_key, creds.client_code, creds.feed_token)),
        lambda t, _key, frame: mailbox.put(next(arrivals), (t, frame)),
        clock,
        log.bind(stage="feed"),
        recorder,
        seed=cfg.sim.seed,
    )
    engine = Engine(
        pipeline,
        mailbox,
        clock,
        log.bind(stage="engine"),
        after_batch=lambda _now: live.extend(pipeline.take_signals()),
        speed=cfg.sim.speed,
    )
    wanted = _wanted(market)
    feed.set_subscriptions(wanted)
    feed_task = asyncio.create_task(feed.run())
    engine_task: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(feed.wait_ready(), 10)
        await eventually(lambda: sum(c.pairs for c in server.connections) >= len(wanted), 10)
        if engine_first_s is not None:
            engine_task = asyncio.create_task(engine.run())
            await asyncio.sleep(engine_first_s)
        server.freeze(False)
        if engine_task is None:
            engine_task = asyncio.create_task(engine.run())
        await asyncio.sleep(wall_s)
        await feed.stop()
        await asyncio.wait_for(feed_task, 10)
        await eventually(lambda: not len(mailbox), 10)  # the engine applied all the tape holds
    finally:
        if engine_task is not None:
            engine_task.cancel()
            await asyncio.gather(engine_task, return_exceptions=True)
        if not feed_task.done():
            feed_task.cancel()
        recorder.close()
        await server.stop()
    assert engine.frames == recorder.records
    return live, master, mailbox.conflated + mailbox.overflowed


def _compare(
    cfg: Config, tape_path: Path, master: bytes, live: list[SmartMoneySignal]
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    tape = open_tape(tape_path)
    _, replayed = _replay(cfg, master, tape_path)
    # Compare the bars both sides closed: live keeps closing bars by the clock after the last
    # packet, replay stops at the tape's last packet.
    bar_ns = cfg.detectors.bar_seconds * NS
    last_bar = int(tape.recv_ns[-1]) // bar_ns * bar_ns
    live_b = [msgspec.to_builtins(s) for s in live if s.ts <= last_bar]
    replay_b = [msgspec.to_builtins(s) for s in replayed if s.ts <= last_bar]
    return live_b, replay_b


@pytest.mark.slow
async def test_live_signals_equal_the_replay_of_their_tape(tmp_path: Path) -> None:
    cfg = Config(sim=LIVE_SIM)
    tape_path = tmp_path / "live.sft"
    live, master, conflated = await _live_session(tape_path, cfg, LIVE_WALL_S)
    # The precondition (see the module docs): no packet was overwritten or dropped.
    assert conflated == 0
    assert len(open_tape(tape_path)) > 5_000
    live_b, replay_b = await asyncio.to_thread(_compare, cfg, tape_path, master, live)
    assert len(live_b) >= 5
    assert any(s["can_trade"] for s in live_b)
    # At least one directional call (which one depends on the live timing of a thin 60-packet/s
    # market: in three minutes the detectors are still learning most contracts' noise).
    assert {s["recommendation"] for s in live_b} & {"BUY_CALL", "BUY_PUT"}
    assert [s["ts"] for s in live_b] == [s["ts"] for s in replay_b]
    for a, b in zip(live_b, replay_b, strict=True):
        assert a == b


@pytest.mark.slow
async def test_live_equals_replay_when_the_first_packet_is_late(tmp_path: Path) -> None:
    cfg = Config(sim=LIVE_SIM)
    tape_path = tmp_path / "late.sft"
    # The engine idles 10 simulated seconds before the market starts flowing, then 40 more.
    live, master, conflated = await _live_session(
        tape_path, cfg, 40.0 / SPEED, engine_first_s=10.0 / SPEED
    )
    assert conflated == 0
    live_b, replay_b = await asyncio.to_thread(_compare, cfg, tape_path, master, live)
    assert live_b
    assert [s["bar_seq"] for s in live_b] == [s["bar_seq"] for s in replay_b]
    assert live_b == replay_b
