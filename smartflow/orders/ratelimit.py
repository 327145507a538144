"""Sliding-window order rate limiter: place, modify and cancel share one budget.

Angel allows 9 order requests per second combined, 500 per minute and 1000 per hour
(angel-smartapi.md §4.7); the exchange's algo threshold is 10 per second. The limiter never lets
a request through that would exceed any window, on the clock it is given (the analytics clock,
so replay behaves exactly like live).
"""

from __future__ import annotations

from collections import deque


NS = 1_000_000_000


class RateLimiter:
    """Counts requests in every window; ``wait_ns`` says how long until one more fits."""

    def __init__(self, per_second: int, per_minute: int, per_hour: int) -> None:
        self.windows = [(per_second, NS), (per_minute, 60 * NS), (per_hour, 3600 * NS)]
        self._stamps: deque[int] = deque()
        self.granted = 0

    def _trim(self, now_ns: int) -> None:
        horizon = self.windows[-1][1]
        while self._stamps and self._stamps[0] <= now_ns - horizon:
            self._stamps.popleft()

    def wait_ns(self, now_ns: int) -> int:
        """0 when a request may go now, else the nanoseconds until one may."""
        self._trim(now_ns)
        wait = 0
        stamps = self._stamps
        n = len(stamps)
        for limit, span in self.windows:
            # Requests inside this window are the newest ones; the limit-th newest must age out.
            inside = 0
            for k in range(n - 1, -1, -1):
                if stamps[k] > now_ns - span:
                    inside += 1
                else:
                    break
                if inside >= limit:
                    wait = max(wait, stamps[k] + span - now_ns)
                    break
        return wait

    def take(self, now_ns: int) -> bool:
        """Consume one request if it fits now; False (nothing consumed) otherwise."""
        if self.wait_ns(now_ns) > 0:
            return False
        self._stamps.append(now_ns)
        self.granted += 1
        return True
