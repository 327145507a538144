"""Health: one rule read by ``/healthz`` and by the systemd watchdog, per part.

The stage tasks (``StageHealth``): a stage is stale when its heartbeat has not advanced for
``STALE_AFTER_S`` of time the event loop was running (``LoopTime``), or its task ended.

The feed's part:

A feed is healthy when market data flows and the server carries what we asked for. Two ways to
fail, with different consequences:

* **stale** — in market hours a subscribed socket got no market data for ``data_stall_s`` (pongs
  do not count). ``/healthz`` says so at once while the feed resubscribes, reconnects and
  re-logs in; once those steps have all been taken and the socket is still silent, the systemd
  watchdog is withheld too, so systemd restarts the process as the last step — but only if data
  had flowed since the open: hours know no exchange holidays, and a market that never traded
  today must not restart the daemon all day (it stays stale in ``/healthz`` and keeps retrying).
* **not converged** — a subscription the server refused (E1001/E1002) is waiting for its retry,
  or a wanted pair has not been sent on an open socket within ``subscribe_confirm_s``.
  ``/healthz`` reports it; the watchdog is kept (a restart cannot raise a server-side limit).

Contracts silent while their segment streams are only listed (status API, metrics): an
illiquid strike may simply not trade.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from smartflow.app.sdnotify import Notifier
from smartflow.core.clock import Clock
from smartflow.feed.session import STALL_STEPS, FeedSession
from smartflow.journal.store import Journal
from smartflow.orders.port import BrokerPort
from smartflow.orders.router import OrderRouter


@dataclass(frozen=True)
class FeedHealth:
    """What is wrong with the feed now."""

    problems: list[str] = field(default_factory=list)
    """For ``/healthz`` (503 when any) and systemd's STATUS line."""
    withhold_watchdog: list[str] = field(default_factory=list)
    """Stages that must stop the watchdog pings (a subset of the problems' causes)."""


def feed_health(feed: FeedSession | None) -> FeedHealth:
    """Apply the rule to ``feed``'s latest view (refreshed by the feed every second)."""
    if feed is None:
        return FeedHealth()
    stats = feed.stats
    problems = []
    withhold = []
    for s in stats.stalled:
        # No seconds in the text: it changes only with a step, so each change is logged once
        # (the status API has the silence in seconds).
        problems.append(
            f"feed stale: no market data on socket {s['socket']} "
            f"(recovery steps taken: {s['steps']})"
        )
        if s["steps"] > len(STALL_STEPS) and s["market_seen"]:
            withhold.append(f"feed data (socket {s['socket']})")
    if stats.unconverged:
        n = stats.subscriptions
        problems.append(
            f"subscriptions not converged: {n.get('confirmed', 0)} of {n.get('wanted', 0)} pairs "
            f"confirmed, {n.get('rejected', 0)} refused by the server (retrying), "
            f"{n.get('unsent', 0)} not sent"
        )
    return FeedHealth(problems, withhold)


STALE_AFTER_S = 5.0
"""A stage is stale once it has not beaten for this long while the event loop was running."""


class LoopTime:
    """How long the event loop has actually been running: wall time minus its stalls.

    A stage's heartbeat can only advance while the loop runs its task. When the whole process
    is starved (a loaded 2-core machine, a long collector pause, a blocking call), every
    heartbeat ages together and no stage is at fault: that is the watchdog's business, and it
    needs no rule — no ping is sent while the loop stands still. The stale-stage rule therefore
    counts only the time the loop was running; a stage stuck while the others make progress is
    caught as before, however loaded the machine.
    """

    def __init__(self, tick_s: float = 0.25, keep_s: float = 600.0) -> None:
        self.tick_ns = int(tick_s * 1e9)
        self.keep_ns = int(keep_s * 1e9)
        self.stalls: deque[tuple[int, int]] = deque()
        """(end, lost ns) of each tick that came late, newest last."""

    def tick(self, started_ns: int, ended_ns: int) -> float:
        """One timer tick that slept from ``started_ns`` to ``ended_ns``; returns its lag (s)."""
        lost = ended_ns - started_ns - self.tick_ns
        if lost > 0:
            self.stalls.append((ended_ns, lost))
            while self.stalls and self.stalls[0][0] < ended_ns - self.keep_ns:
                self.stalls.popleft()
        return max(0, lost) / 1e9

    async def run(self, observe: Callable[[float], None] | None = None) -> None:
        """Measure until cancelled; ``observe`` gets each tick's lag in seconds (metrics)."""
        while True:
            t0 = time.monotonic_ns()
            await asyncio.sleep(self.tick_ns / 1e9)
            lag = self.tick(t0, time.monotonic_ns())
            if observe is not None:
                observe(lag)

    def running_s(self, since_ns: int, now_ns: int) -> float:
        """Seconds the loop ran between two ``time.monotonic_ns()`` instants."""
        lost = 0
        for end, stall in reversed(self.stalls):
            if end <= since_ns:
                break
            lost += min(stall, end - since_ns)
        return max(0, now_ns - since_ns - lost) / 1e9


@dataclass
class StageHealth:
    """Liveness of the stage tasks: one rule for the systemd watchdog and ``/healthz``."""

    loop: LoopTime
    tasks: Mapping[str, asyncio.Task[Any]]
    """The daemon's running tasks, by name (filled as they start)."""
    heartbeats: Mapping[str, Callable[[], int]]
    """Stage name → its latest heartbeat (``time.monotonic_ns()``)."""
    task_names: tuple[str, ...] = ("feed", "engine", "orders")
    """Tasks that must not end while the daemon runs."""

    def stale(self) -> list[str]:
        """Stale stages: no heartbeat for ``STALE_AFTER_S`` of running loop, or the task ended."""
        now = time.monotonic_ns()
        out = [
            name
            for name, beat in self.heartbeats.items()
            if self.loop.running_s(beat(), now) > STALE_AFTER_S
        ]
        for name in self.task_names:
            task = self.tasks.get(name)
            if task is None or task.done():
                out.append(f"{name} task")
        return out


class DaemonHealth:
    """The daemon's health from its running parts: the watchdog's rule and ``/healthz``'s."""

    def __init__(
        self,
        stages: StageHealth,
        feed: FeedSession,
        router: OrderRouter,
        broker: BrokerPort,
        journal: Journal,
        market_open: Callable[[int], bool],
        clock: Clock,
        speed: float,
        stall_timeout_s: float,
    ) -> None:
        self.stages = stages
        self.feed = feed
        self.router = router
        self.broker = broker
        self.journal = journal
        self.market_open = market_open
        self.clock = clock
        self.speed = speed
        self.stall_timeout_s = stall_timeout_s

    def stale(self) -> list[str]:
        """What withholds the watchdog's pings (empty when everything is alive)."""
        stale = self.stages.stale()
        now = self.clock.now_ns()
        if self.market_open(now):
            # In market hours the market itself is a heartbeat: no frame at all for twice the
            # stall timeout means the feed is not doing its job, reconnects notwithstanding.
            last = self.feed.stats.last_frame_ns
            if last and (now - last) / 1e9 / self.speed > 2 * self.stall_timeout_s:
                stale.append("feed frames")
        stale += feed_health(self.feed).withhold_watchdog
        if self.journal.failing:
            # Entries are refused meanwhile (no order without its record).
            stale.append("journal writes")
        return stale

    def problems(self) -> list[str]:
        """What makes ``/healthz`` fail (503): everything that is wrong now."""
        feed = self.feed
        problems = []
        if feed.connected == 0:
            problems.append("feed not connected")
        elif feed.connected < feed.sockets:
            problems.append("a feed socket is down")
        problems += feed_health(feed).problems
        if self.journal.failing:
            problems.append(f"journal writes failing: {self.journal.failing}")
        problems += [f"stage stale: {s}" for s in self.stages.stale()]
        if self.router.fatal:
            problems.append(self.router.fatal)
        if self.broker.auth_failed:
            problems.append(f"broker login refused: {self.broker.auth_failed}")
        return problems


class Watchdog:
    """systemd's watchdog pings and STATUS line, the pings withheld while a stage is stale."""

    def __init__(
        self, health: DaemonHealth, status: Callable[[], str], notifier: Notifier, log: Any
    ) -> None:
        self.health = health
        self.status = status
        self.notifier = notifier
        self.log = log
        self._last_stale: list[str] = []
        self._last_feed_problems: list[str] = []

    def beat(self) -> None:
        """One ping (unless a stage is stale) and the status; a change is logged once."""
        stale = self.health.stale()
        problems = feed_health(self.health.feed).problems
        if problems != self._last_feed_problems:
            if problems:
                self.log.warning("health.feed", problems=problems)
            else:
                self.log.info("health.feed_ok")
            self._last_feed_problems = problems
        lines = [f"STATUS={self.status()}{'; ' if problems else ''}{'; '.join(problems)}"]
        if not stale:
            lines.insert(0, "WATCHDOG=1")
        elif stale != self._last_stale:
            self.log.error("health.stale", stages=stale, note="watchdog pings withheld")
        self._last_stale = stale
        self.notifier.notify(*lines)

    async def run(self) -> None:
        """Beat at half systemd's watchdog interval (every 5 s without one) until cancelled."""
        interval = (self.notifier.watchdog_s or 10.0) / 2
        while True:
            self.beat()
            await asyncio.sleep(interval)
