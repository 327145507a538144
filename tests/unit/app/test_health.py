"""The stale-stage rule: time counts only while the event loop runs."""

from __future__ import annotations

import asyncio
import time

from smartflow.app.health import STALE_AFTER_S, LoopTime, StageHealth


S = 1_000_000_000
TICK = 250_000_000


def _ticks(loop: LoopTime, start: int, end: int, late_at: dict[int, int]) -> None:
    """Timer ticks from ``start`` to ``end``; ``late_at`` maps a tick's start to its extra delay."""
    t = start
    while t < end:
        woke = t + TICK + late_at.get(t, 0)
        loop.tick(t, woke)
        t = woke


def test_a_starved_process_counts_against_no_stage() -> None:
    loop = LoopTime()
    # 1 s of normal ticks, then the whole process gets no CPU for 8 s, then 1 s more.
    _ticks(loop, 0, 1 * S, {})
    _ticks(loop, 1 * S, 10 * S, {1 * S: 8 * S})
    beat = 1 * S - 1  # both stages beat just before the stall and right after it again
    assert loop.running_s(beat, 10 * S) < STALE_AFTER_S
    assert abs(loop.running_s(beat, 10 * S) - 1.0) < 0.3


def test_a_stage_stuck_while_the_loop_runs_is_stale() -> None:
    loop = LoopTime()
    _ticks(loop, 0, 8 * S, {2 * S: TICK // 2})  # one tick a little late: the loop is running
    assert loop.running_s(1 * S, 8 * S) > STALE_AFTER_S
    assert loop.running_s(4 * S, 8 * S) < STALE_AFTER_S


def test_a_stall_that_began_before_the_heartbeat_counts_only_its_part_after_it() -> None:
    loop = LoopTime()
    loop.tick(0, TICK + 6 * S)  # a 6 s stall, ending at 6.25 s
    # From 5 s to 7 s: the loop stood still until 6.25 s, then ran 0.75 s.
    assert loop.running_s(5 * S, 7 * S) == 0.75


async def test_stage_health_names_stale_heartbeats_and_ended_tasks() -> None:
    loop = LoopTime()
    ended = asyncio.create_task(asyncio.sleep(0))
    await ended
    running = asyncio.create_task(asyncio.sleep(60))
    try:
        now = time.monotonic_ns()
        health = StageHealth(
            loop,
            {"engine": running, "orders": ended},
            {"engine": lambda: now, "orders": lambda: now - 6 * S},
            task_names=("feed", "engine", "orders"),
        )
        assert health.stale() == ["orders", "feed task", "orders task"]
    finally:
        running.cancel()
