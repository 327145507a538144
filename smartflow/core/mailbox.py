"""Bounded mailboxes between stages, each with its overflow policy stated in the type.

The socket reader must never await a slow consumer (that is how a feed falls minutes behind), so
every producer-side method here is synchronous and never blocks:

* ``Conflator`` keeps the latest value per key. SmartStream fields are day-cumulative (volume, OI,
  OHLC), so for *state* the latest packet per token loses nothing; per-trade flow metrics do lose
  resolution, which is why every overwrite is counted and reported.
* ``DropQueue`` is a FIFO that rejects the newest item when full and counts it (journal, alerts).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar


K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


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

    async def drain(self) -> list[V]:
        """Wait until at least one value is pending, then take them all."""
        await self.wait()
        return self.take()


class DropQueue(Generic[T]):
    """Bounded FIFO that drops the *newest* item when full, counting what it dropped.

    Used where losing an item is better than stalling the producer (journal, alerts). The consumer
    sees ``dropped`` grow and can write a gap marker.
    """

    def __init__(self, maxsize: int) -> None:
        self._items: deque[T] = deque()
        self._ready = asyncio.Event()
        self.maxsize = maxsize
        self.dropped = 0

    def put(self, item: T) -> bool:
        """Append ``item``; return False (and count it) when the queue is full."""
        if len(self._items) >= self.maxsize:
            self.dropped += 1
            return False
        self._items.append(item)
        self._ready.set()
        return True

    def __len__(self) -> int:
        return len(self._items)

    def take(self) -> list[T]:
        """Return and remove every queued item (never waits)."""
        items = list(self._items)
        self._items.clear()
        self._ready.clear()
        return items

    async def get_batch(self) -> list[T]:
        """Wait for at least one item, then return all queued items."""
        while not self._items:
            await self._ready.wait()
        return self.take()
