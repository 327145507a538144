"""``smartflow replay TAPE --serve [--speed X]``: a recorded day played into the dashboard.

The tape goes through the same ``Replayer`` as ``smartflow replay`` (the same book, detectors,
chain summaries and paper trading, on the tape's clock), paced so that X seconds of tape pass per
wall second, while the API process serves ``/ui`` (and the whole read API) from snapshots of it,
exactly as for the daemon. The JSON Lines still go to ``--out`` when given. When the tape ends
the last state stays on screen until Ctrl-C. The kill switch works as in a run: it stops the
replay's paper trading.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections import deque
from collections.abc import Collection
from typing import IO, Any

import msgspec

from smartflow.api.snapshot import ApiSnapshot, Section
from smartflow.app.apiprocess import ApiProcess
from smartflow.app.apisource import signal_view
from smartflow.app.replay import Replayer
from smartflow.app.uisource import UiSection
from smartflow.app.warmup import warm_up
from smartflow.config import Config, Credentials
from smartflow.core.errors import FatalError
from smartflow.core.messages import SmartMoneySignal
from smartflow.core.timeutil import iso_ist, ist_date
from smartflow.instruments.master import ScripMaster
from smartflow.tape.format import Tape


NS = 1_000_000_000
PACE_NS = 50_000_000
"""Tape time applied between two looks at the wall clock."""


class PacedReplayer(Replayer):
    """A ``Replayer`` that lets ``speed`` tape seconds pass per wall second."""

    def __init__(self, *args: Any, speed: float, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.speed = speed
        self.tape_t0 = self.clock.now_ns()
        self.wall_t0 = time.perf_counter()
        self.applied_frames = 0

    async def _apply(self, frames: list[tuple[int, bytes]]) -> None:
        # Cut into PACE_NS of tape time, each applied once the wall clock has caught up with it.
        start = 0
        while start < len(frames):
            end = start
            limit = frames[start][0] + PACE_NS
            while end < len(frames) and frames[end][0] < limit:
                end += 1
            due = self.wall_t0 + (frames[end - 1][0] - self.tape_t0) / NS / self.speed
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            await super()._apply(frames[start:end])
            self.applied_frames += end - start
            start = end


class ReplayApiSource:
    """The API's snapshots of a replay in progress (the daemon's are ``DaemonApiSource``)."""

    def __init__(self, replayer: PacedReplayer, frames: int) -> None:
        self.r = replayer
        self.frames = frames
        self.done = False
        self.seq = 0
        self.started = time.monotonic()
        self.recent: deque[SmartMoneySignal] = deque(maxlen=replayer.cfg.api.signals_kept)
        self.seen = 0
        self._sent = 0
        self.ui = UiSection(
            replayer.book, replayer.detectors, replayer.trading, self.r.clock.now_ns
        )
        self._summaries: dict[str, tuple[Any, dict[str, Any]]] = {}

    def _take_signals(self) -> None:
        """The signals the replay has written since the last snapshot."""
        written = self.r.signals
        for sig in written[self.seen :]:
            self.recent.append(sig)
        self.seen = len(written)

    def _summary_views(self) -> dict[str, dict[str, Any]]:
        out = {}
        for c in self.r.book.chains:
            snap = self.r.summaries.latest(c.root)
            if snap is None:
                continue
            done = self._summaries.get(c.root)
            if done is None or done[0] is not snap:
                body: dict[str, Any] = msgspec.to_builtins(snap.to_struct())
                body["ts"] = iso_ist(snap.ts_ns)
                done = self._summaries[c.root] = (snap, body)
            out[c.root] = done[1]
        return out

    async def snapshot(self, full: bool = False, sections: Collection[Section] = ()) -> ApiSnapshot:
        """What the API serves: status, signals, and the summaries and ui sections if asked."""
        self.seq += 1
        r = self.r
        now = r.clock.now_ns()
        self._take_signals()
        kept = list(self.recent)
        fresh = min(self.seen - (0 if full else self._sent), len(kept))
        self._sent = self.seen
        signals = [signal_view(s) for s in kept[len(kept) - fresh :]]
        guard = r.trading.guard if r.trading else None
        status = {
            "mode": "replay",
            "ready": True,
            "uptime_s": round(time.monotonic() - self.started, 1),
            "clock_ns": now,
            "underlyings": [c.root for c in r.book.chains],
            "feed": {
                "tape_frames": self.frames,
                "frames": r.applied_frames,
                "tape_time": iso_ist(now),
                "speed": r.speed,
                "finished": self.done,
            },
            "engine": {"bars": r.book.stats.bars_closed, "applied": r.book.stats.applied},
            "orders": r.trading.router.stats() | r.trading.pnl() if r.trading else None,
            "signals_emitted": self.seen,
            "kill_switch": {"on": guard.killed, "reason": guard.kill_reason} if guard else None,
        }
        return ApiSnapshot(
            seq=self.seq,
            full=full,
            underlyings=[c.root for c in r.book.chains],
            today=ist_date(now).isoformat(),
            status=status,
            healthy=True,
            health={"problems": [], "ready": True},
            hidden_events=r.flow.hidden_events,
            correlation={
                "underlyings": {u: conf.to_dict() for u, conf in r.flow.confluence.items()}
            },
            signals=signals,
            whales=[],
            summaries=self._summary_views() if "summaries" in sections else None,
            ui=self.ui.build() if "ui" in sections else None,
        )

    async def kill(self, reason: str, source: str) -> dict[str, Any]:
        """Trip the replay's kill switch (its paper trading stops)."""
        if self.r.trading is None:
            raise RuntimeError("trading is disabled ([strategy] enabled = false)")
        done = await self.r.trading.router.kill(reason, source)
        return {"kill_switch": True, "reason": reason, **done}

    async def reset_kill(self, source: str) -> dict[str, Any]:
        """Re-arm the replay's paper trading."""
        if self.r.trading is None:
            raise RuntimeError("trading is disabled ([strategy] enabled = false)")
        await self.r.trading.router.reset_kill(source)
        return {"kill_switch": False}


async def serve(
    cfg: Config,
    creds: Credentials,
    master: ScripMaster,
    tape: Tape,
    out: IO[bytes],
    speed: float,
    chain_every_s: float,
    log: Any,
    stop: asyncio.Event | None = None,
) -> int:
    """Play ``tape`` at ``speed`` into the dashboard; serve until ``stop`` (or Ctrl-C)."""
    if not cfg.api.loopback() and not creds.api_token:
        raise FatalError(
            f"api.listen = {cfg.api.listen!r} is not a loopback address: refusing to serve it "
            "without the api_token credential ($CREDENTIALS_DIRECTORY/api_token or "
            "SMARTFLOW_API_TOKEN)"
        )
    # Compile (or load) the kernels before the clock starts, as the daemon does: a cold JIT at
    # the first bar would stall the replay and the snapshots for many seconds.
    await asyncio.to_thread(warm_up, cfg.model, cfg.detectors)
    # The API process must not read the daemon's history SQLite: a replayed day is not in it.
    cfg = msgspec.structs.replace(cfg, history=msgspec.structs.replace(cfg.history, enabled=False))
    replayer = PacedReplayer(
        cfg, master, out, chain_every_s, int(tape.recv_ns[0]), log=log, speed=speed
    )
    source = ReplayApiSource(replayer, len(tape))
    api = ApiProcess(cfg, source, creds, log)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await api.start()
    host = cfg.api.listen.rpartition(":")[0]
    print(f"dashboard: http://{host}:{api.port}/ui/  (Ctrl-C to stop)", file=sys.stderr)
    play = asyncio.create_task(replayer.arun(tape))
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([play, stopped], return_when=asyncio.FIRST_COMPLETED)
        if play.done():
            source.done = True
            summary = play.result()
            print(
                f"replayed {summary.frames} frames; the dashboard stays up until Ctrl-C",
                file=sys.stderr,
            )
            await stopped
    finally:
        for task in (play, stopped):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await api.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0
