"""Clocks. The analytics path reads time only from a ``Clock``, never from ``time.time()``.

Live, the clock is the wall clock (and each frame carries its receive time); in replay it is
advanced by the tape's recorded receive times, which is what makes replay deterministic.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Source of the current time in integer nanoseconds since the Unix epoch."""

    def now_ns(self) -> int:
        """Return the current time, Unix epoch nanoseconds."""
        ...


class LiveClock:
    """The wall clock."""

    def now_ns(self) -> int:
        """Return ``time.time_ns()``."""
        return time.time_ns()


class ReplayClock:
    """A clock that only moves when told to: set from each replayed frame's receive time."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now_ns = start_ns

    def now_ns(self) -> int:
        """Return the last time set."""
        return self._now_ns

    def set(self, ns: int) -> None:
        """Move the clock; it never goes backwards (a late frame keeps the clock where it is)."""
        if ns > self._now_ns:
            self._now_ns = ns


class ScaledClock:
    """Wall time mapped onto a simulated session: ``start_ns`` at creation, running ``speed``x.

    Used in sim mode so a session starts at the configured market time whatever the wall clock
    says, and so tests can run a ten-minute session in one minute. The simulator and the client
    share one instance, so exchange timestamps and receive times agree.
    """

    def __init__(self, start_ns: int, speed: float = 1.0) -> None:
        self.start_ns = start_ns
        self.speed = speed
        self._wall0 = time.monotonic_ns()

    def now_ns(self) -> int:
        """Return the simulated time."""
        return self.start_ns + int((time.monotonic_ns() - self._wall0) * self.speed)

    def wall_seconds_until(self, ns: int) -> float:
        """Return how many wall-clock seconds remain until simulated time ``ns``."""
        return max(0.0, (ns - self.now_ns()) / self.speed / 1e9)
