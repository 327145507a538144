"""Per-stage stats lines: one log event per stage every ``stats_interval_s``, never per tick."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


StatsSource = Callable[[], dict[str, Any]]
# Counters reported as a per-second rate as well as a total.
RATE_KEYS = ("frames", "applied", "signals", "orders")


class StatsReporter:
    """Logs ``stats`` events with totals and per-second rates of each stage's counters."""

    def __init__(self, sources: dict[str, StatsSource], interval_s: float, log: Any) -> None:
        self.sources = sources
        self.interval_s = interval_s
        self.log = log
        self._last: dict[str, tuple[float, dict[str, Any]]] = {}

    def report(self) -> None:
        """Log one line per stage now."""
        now = time.monotonic()
        for stage, source in self.sources.items():
            snap = source()
            prev_t, prev = self._last.get(stage, (now, {}))
            dt = now - prev_t
            for key in RATE_KEYS:
                if isinstance(snap.get(key), (int, float)) and dt > 0:
                    snap[f"{key}_per_s"] = round((snap[key] - prev.get(key, 0)) / dt, 1)
            self._last[stage] = (now, snap)
            self.log.info("stats", stage=stage, **snap)

    async def run(self) -> None:
        """Report every interval until cancelled."""
        for stage, source in self.sources.items():
            self._last[stage] = (time.monotonic(), source())
        while True:
            await asyncio.sleep(self.interval_s)
            self.report()
