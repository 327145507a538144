"""Bounded mailboxes between stages, each with its overflow policy stated in the type.

The socket reader must never await a slow consumer (that is how a feed falls minutes behind), so
every producer-side method here is synchronous and never blocks:

* ``Conflator`` keeps the latest value per key. SmartStream fields are day-cumulative (volume, OI,
  OHLC), so for *state* the latest packet per token loses nothing; per-trade flow metrics do lose
  resolution, which is why every overwrite is counted and reported.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar


K = TypeVar("K")
V = TypeVar("V")


class Conflator(Generic[K, V]):
    """Latest-value-per-key mailbox with one consumer.

    Values drain in the order of their *latest* update (an overwritten key moves to the back), so a
    consumer that applies them in order never sees time go backwards across keys.
    """

    def __init__(self, max_keys: int) -> None:
        self._items: dict[K, V] = {}
        self._ready = asyncio.Event()
        self.max_keys = max_keys
        self.conflated = 0
        self.overflowed = 0
        self.high_water = 0

    def put(self, key: K, value: V) -> None:
        """Store ``value`` under ``key``, replacing (and counting) an undelivered older value."""
        items = self._items
        if key in items:
            del items[key]
            self.conflated += 1
        elif len(items) >= self.max_keys:
            # More distinct keys than were ever subscribed: something upstream is wrong. Refuse
            # the newcomer rather than grow without bound.
            self.overflowed += 1
            return
        items[key] = value
        if len(items) > self.high_water:
            self.high_water = len(items)
        self._ready.set()

    def __len__(self) -> int:
        return len(self._items)

    def take(self) -> list[V]:
        """Return every pending value in delivery order and empty the mailbox (never waits)."""
        if not self._items:
            return []
        items = self._items
        self._items = {}
        self._ready.clear()
        return list(items.values())

    async def wait(self) -> None:
        """Wait until at least one value is pending (without taking it)."""
        while not self._items:
            await self._ready.wait()
