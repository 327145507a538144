"""A recorded session as the simulator's packet source, at a fixed rate.

``smartflow sim --tape T --rate R`` and ``bench e2e`` use it: the packets of a tape are streamed
in order at R packets per second (the recorded pacing is ignored), to whichever clients
subscribed their tokens, so a daemon's end-to-end latency can be measured at a chosen load
without the cost of generating the market live. When the tape ends it starts again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from smartflow.tape.format import Tape


class TapeSource:
    """Yields (token, packet) pairs at ``rate`` per second, looping over the tape."""

    def __init__(self, tape: Tape, rate: float, loop: bool = True) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.frames = [tape.payload(i) for i in range(len(tape))]
        self.tokens = [
            f[2:27].split(b"\0", 1)[0].decode("ascii", "replace") if len(f) >= 27 else ""
            for f in self.frames
        ]
        self.rate = rate
        self.loop = loop
        self.sent = 0

    async def packets(self) -> AsyncIterator[tuple[str, bytes]]:
        """The packets, paced: each is released at start + i / rate (in batches per wake-up)."""
        n = len(self.frames)
        if n == 0:
            return
        t0 = time.perf_counter()
        i = 0
        while self.loop or i < n:
            due = int((time.perf_counter() - t0) * self.rate) + 1
            while i < due:
                k = i % n
                yield self.tokens[k], self.frames[k]
                i += 1
                self.sent += 1
                if not self.loop and i >= n:
                    return
            # Sleep until the next packet is due (at least a scheduler tick).
            await asyncio.sleep(max(0.0, t0 + i / self.rate - time.perf_counter()))
