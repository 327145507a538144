"""The engine task: the single writer of chain state, and the deterministic core.

It drains the feed's per-token ``Conflator`` and hands the packets, in receive order, to the
``Pipeline``, which applies them, closes bars on the clock and runs each bar close (detectors,
strategy) synchronously. Chain, analytics and strategy decisions share this one task on purpose:
an asyncio hop costs ~15 µs and would make the order of their inputs depend on the scheduler,
while doing them in one synchronous pass makes a live session and its replay produce the same
signals. Only I/O (orders, journal, HTTP) lives in other tasks.

When no packet arrives, bars are closed by the clock so signals still age and expire.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from smartflow.app.pipeline import Pipeline
from smartflow.core.clock import Clock
from smartflow.core.mailbox import Conflator


EARLY_S = 0.002
"""How long before a bar's end the idle engine stops sleeping (see ``Engine._wait``)."""


class Engine:
    """Drains packets into the pipeline; closes quiet bars by the clock."""

    def __init__(
        self,
        pipeline: Pipeline,
        mailbox: Conflator[Any, tuple[int, bytes]],
        clock: Clock,
        log: Any,
        after_batch: Callable[[int], None] | None = None,
        speed: float = 1.0,
    ) -> None:
        self.pipeline = pipeline
        self.book = pipeline.book
        self.mailbox = mailbox
        self.clock = clock
        self.log = log
        self.after_batch = after_batch
        self.speed = speed
        self.batches = 0
        self.frames = 0
        self.busy_ns = 0
        self.heartbeat_ns = time.monotonic_ns()
        self._hang_at_ns = 0

    def hang_after(self, seconds: float) -> None:
        """Fault injection for the service tests: stop making progress after ``seconds``."""
        self._hang_at_ns = time.monotonic_ns() + int(seconds * 1e9)

    async def _wait(self) -> None:
        """Until a packet is pending, the current bar has ended, or a second has passed.

        The loop's timers have millisecond resolution and fire up to ~2 ms late (uvloop rounds
        a delay to whole milliseconds against a clock it reads once per iteration), and with no
        packet arriving a bar is closed by this wake-up: its decision would come that late. So
        the timer is set ``EARLY_S`` before the bar's end and the rest is spent yielding to the
        loop, which still reads the sockets on every turn.
        """
        mailbox = self.mailbox
        end = self.book.bar_end_ns
        left = 1.0 if end == 0 else (end - self.clock.now_ns()) / 1e9 / self.speed - EARLY_S
        if left > 0:
            try:
                async with asyncio.timeout(min(left, 1.0)):
                    await mailbox.wait()
            except TimeoutError:
                pass
            if left > 1.0:
                return
        # A timer cannot wake this precisely. The spin is bounded in real time too, so a wall
        # clock stepped back cannot turn it into a busy loop.
        stop = time.perf_counter() + 2 * EARLY_S
        while (  # noqa: ASYNC110
            end and not len(mailbox) and self.clock.now_ns() < end and time.perf_counter() < stop
        ):
            await asyncio.sleep(0)

    async def run(self) -> None:
        """Run until cancelled."""
        mailbox = self.mailbox
        pipeline = self.pipeline
        while True:
            self.heartbeat_ns = time.monotonic_ns()
            if self._hang_at_ns and self.heartbeat_ns >= self._hang_at_ns:
                await asyncio.Event().wait()  # a stage that is alive but stuck
            if not len(mailbox):
                await self._wait()
            frames = mailbox.take()
            t0 = time.perf_counter_ns()
            if frames:
                # The conflator delivers in order of latest update, i.e. receive order.
                pipeline.process(frames)
                self.batches += 1
                self.frames += len(frames)
            pipeline.advance_to(self.clock.now_ns())
            if self.after_batch is not None:
                self.after_batch(self.clock.now_ns())
            spent = time.perf_counter_ns() - t0
            self.busy_ns += spent
            if frames:
                # Tick → decision: from the oldest packet of the batch being received to the
                # strategy having evaluated it (an intent, if any, is queued by now).
                pipeline.observer.batch_done(spent, frames[0][0])

    def stats(self) -> dict[str, Any]:
        """Counters for the stats line."""
        return {
            "frames": self.frames,
            "batches": self.batches,
            "busy_ms": self.busy_ns // 1_000_000,
            "applied": self.book.stats.applied,
            "rejected": dict(self.book.stats.rejected),
            "unknown_token": self.book.stats.unknown_token,
            "anomalies": self.book.stats.anomalies,
            "bars": self.book.stats.bars_closed,
            "conflated": self.mailbox.conflated,
            "queue_depth": len(self.mailbox),
            "queue_high_water": self.mailbox.high_water,
        }
