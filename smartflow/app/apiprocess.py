"""The daemon's side of the API process: start it, feed it snapshots, run its kill commands.

The HTTP API runs in a child process (``smartflow.api.worker``) so that no amount of API load
can take the trading loop's CPU time or GIL. The trading loop publishes a snapshot every
``[api] snapshot_interval_ms``, with the costly sections only while requests read them; when
the child falls behind reading them, a snapshot is skipped rather than queued. A kill or reset
from the API runs here, on the trading loop; a fresh snapshot goes out before the answer, so
the client's next read already shows it. If the child dies it is logged and started again
(backoff up to 30 s); trading carries on either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
from collections.abc import Collection, Coroutine
from typing import Any, Protocol

from smartflow.api.ipc import (
    Command,
    Failed,
    Init,
    Listening,
    LogLine,
    Reader,
    Reply,
    Snap,
    ToDaemon,
    ToWorker,
    Want,
    frame,
)
from smartflow.api.snapshot import KEEP_S, ApiSnapshot, Section
from smartflow.app.historytools import history_path
from smartflow.config import Config, Credentials
from smartflow.core.errors import FatalError


START_TIMEOUT_S = 60.0
# Snapshots queued in the socket beyond this mean the API process is not keeping up: skip.
MAX_BUFFERED = 4 * 1024 * 1024
UI_INTERVAL_S = 0.25
"""Snapshots go out this often while a dashboard is open: its ≤ 4 tick updates a second."""


class SnapshotBuilder(Protocol):
    """What the API process is fed from: the daemon's ``DaemonApiSource`` or a replay's."""

    async def snapshot(self, full: bool = False, sections: Collection[Section] = ()) -> ApiSnapshot:
        """The next snapshot."""
        ...

    async def kill(self, reason: str, source: str) -> dict[str, Any]:
        """Trip the kill switch."""
        ...

    async def reset_kill(self, source: str) -> dict[str, Any]:
        """Re-arm trading."""
        ...


class ApiProcess:
    """Runs the HTTP API in a child process over the trading loop's snapshots."""

    def __init__(self, cfg: Config, source: SnapshotBuilder, creds: Credentials, log: Any) -> None:
        self.cfg = cfg
        self.source = source
        self.creds = creds
        self.log = log
        self.port = 0
        self.proc: asyncio.subprocess.Process | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.published = 0
        self.skipped = 0
        self.restarts = 0
        self._stopping = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._publisher: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        # One snapshot at a time: increments (signals, whale prints) must arrive in order.
        self._building = asyncio.Lock()
        self.wanted: dict[Section, float] = {}
        """Costly sections requests read, until when (monotonic) to keep building them."""

    async def start(self) -> None:
        """Start the child and wait until it listens; ``FatalError`` if it cannot bind."""
        await self._spawn()
        self._publisher = asyncio.create_task(self._publish_loop(), name="api-snapshots")

    async def _spawn(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "smartflow.api.worker",
                str(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        inbox = Reader(reader, ToDaemon)
        api_token = self.creds.api_token.reveal() if self.creds.api_token else ""
        kill_token = self.creds.kill_token.reveal() if self.creds.kill_token else ""
        history = str(history_path(self.cfg).absolute()) if self.cfg.history.enabled else ""
        async with self._building:
            self.writer = writer
            self._send(
                Init(
                    api=self.cfg.api,
                    kill_token=kill_token,
                    api_token=api_token,
                    whales_kept=self.cfg.flow.alerts_kept,
                    history=history,
                )
            )
            self._send(Snap(await self.source.snapshot(full=True)))
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                while True:
                    msg = await inbox.read()
                    if isinstance(msg, Listening):
                        self.port = msg.port
                        break
                    if isinstance(msg, Failed):
                        raise FatalError(f"api.listen {self.cfg.api.listen}: {msg.error}")
                    self._handle(msg)
        except (EOFError, TimeoutError):
            await self._reap()
            raise FatalError(
                f"api: the API process did not start (exit code {self._code()})"
            ) from None
        except FatalError:
            await self._reap()
            raise
        self._reader = asyncio.create_task(self._read_loop(inbox), name="api-channel")

    def _send(self, msg: ToWorker) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(frame(msg))

    async def publish(self) -> None:
        """Send a fresh snapshot, unless the child is behind on the previous ones."""
        async with self._building:
            w = self.writer
            if w is None or w.is_closing():
                return
            if w.transport.get_write_buffer_size() > MAX_BUFFERED:
                self.skipped += 1
                return
            now = time.monotonic()
            sections = {s for s, until in self.wanted.items() if until > now}
            snap = await self.source.snapshot(sections=sections)
            self._send(Snap(snap))
            self.published += 1

    async def _publish_loop(self) -> None:
        interval = self.cfg.api.snapshot_interval_ms / 1000
        while True:
            # An open dashboard gets its tick updates at up to UI_INTERVAL_S.
            watched = self.wanted.get("ui", 0.0) > time.monotonic()
            await asyncio.sleep(min(interval, UI_INTERVAL_S) if watched else interval)
            await self.publish()

    def _handle(self, msg: ToDaemon) -> None:
        if isinstance(msg, LogLine):
            getattr(self.log, msg.level)(msg.event, **msg.fields)
        elif isinstance(msg, Command):
            self._background(self._command(msg))
        elif isinstance(msg, Want):
            now = time.monotonic()
            new = [s for s in msg.sections if self.wanted.get(s, 0.0) <= now]
            for s in msg.sections:
                self.wanted[s] = now + KEEP_S
            if new:
                # A request is waiting for it: build now, not at the next interval.
                self._background(self.publish())

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _command(self, cmd: Command) -> None:
        try:
            if cmd.op == "kill":
                result = await self.source.kill(cmd.reason, cmd.source)
            else:
                result = await self.source.reset_kill(cmd.source)
        except Exception as e:  # answered as an error; the API turns it into a 500
            self.log.error("api.command_failed", op=cmd.op, error=repr(e))
            self._send(Reply(id=cmd.id, result={}, error=type(e).__name__))
            return
        await self.publish()
        self._send(Reply(id=cmd.id, result=result))

    async def _read_loop(self, inbox: Reader) -> None:
        while True:
            try:
                msg = await inbox.read()
            except EOFError:
                break
            self._handle(msg)
        if self._stopping:
            return
        await self._reap()
        self.log.error("api.process_exited", exit_code=self._code(), restarts=self.restarts)
        delay = 1.0
        while not self._stopping:
            await asyncio.sleep(delay)
            try:
                await self._spawn()
            except (FatalError, OSError) as e:
                self.log.error("api.restart_failed", error=str(e), retry_in_s=delay * 2)
                delay = min(30.0, delay * 2)
                continue
            self.restarts += 1
            self.log.warning("api.restarted", port=self.port, restarts=self.restarts)
            return

    def _code(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None

    async def _reap(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        proc = self.proc
        if proc is None:
            return
        try:
            await asyncio.wait_for(proc.wait(), 5.0)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def stop(self) -> None:
        """Close the channel (the child stops serving and exits) and wait for it."""
        self._stopping = True
        for task in (self._publisher, self._reader, *self._tasks):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self._reap()
