"""The API process: ``python -m smartflow.api.worker FD``, started by the daemon.

It serves the HTTP API from the snapshots the daemon sends over the socket ``FD``, in its own
interpreter: its requests, parsing and JSON never take the trading process's CPU time or GIL,
and it runs ``[api] nice`` steps below it. A kill is sent back to the daemon, which runs it on
the trading loop and answers. Its logs, aiohttp's included, go to the daemon's logger (redacted
there), aiohttp's once per kind with a count. It exits when the daemon closes the socket.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

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
from smartflow.api.server import ApiServer, Tally
from smartflow.api.snapshot import SnapshotSource
from smartflow.api.stream import StreamHub
from smartflow.api.ui import Dashboard
from smartflow.config import Secret


class Channel:
    """The worker's end of the socket: log lines and commands out, replies in."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.ids = itertools.count(1)
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}

    def send(self, msg: ToDaemon) -> None:
        """Queue a message (never blocks; the transport buffers)."""
        if not self.writer.is_closing():
            self.writer.write(frame(msg))

    async def command(self, op: str, *, reason: str, source: str) -> dict[str, Any]:
        """Run a kill-switch command on the trading loop and wait for its answer."""
        n = next(self.ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[n] = fut
        try:
            self.send(
                Command(id=n, op="kill" if op == "kill" else "reset", reason=reason, source=source)
            )
            return await fut
        finally:
            self.waiting.pop(n, None)

    def reply(self, msg: Reply) -> None:
        """Resolve the command ``msg`` answers."""
        fut = self.waiting.get(msg.id)
        if fut is None or fut.done():
            return
        if msg.error:
            fut.set_exception(RuntimeError(f"trading loop: {msg.error}"))
        else:
            fut.set_result(msg.result)


class ForwardLog:
    """A structlog-like logger whose events go to the daemon."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def _send(self, level: Any, event: str, kw: dict[str, Any]) -> None:
        self.channel.send(LogLine(level=level, event=event, fields=kw))

    def info(self, event: str, **kw: Any) -> None:
        """Log at info."""
        self._send("info", event, kw)

    def warning(self, event: str, **kw: Any) -> None:
        """Log at warning."""
        self._send("warning", event, kw)

    def error(self, event: str, **kw: Any) -> None:
        """Log at error."""
        self._send("error", event, kw)


class LibraryLogs(logging.Handler):
    """aiohttp's (and asyncio's) own log records, once per kind with a count.

    A record is reduced to its logger, its message and the exception's type and first line,
    never a traceback: aiohttp's message for a bad request quotes the request's bytes
    (an ``Authorization`` header included), so the text goes through the daemon's redaction,
    and a flood of bad requests is one line and a count.
    """

    def __init__(self, tally: Tally) -> None:
        super().__init__(logging.WARNING)
        self.tally = tally

    def emit(self, record: logging.LogRecord) -> None:
        """Count the record; the first of its kind is logged."""
        try:
            exc = record.exc_info[1] if record.exc_info else None
            kind = f"{record.name}: {record.msg}" + (f": {type(exc).__name__}" if exc else "")
            detail = str(exc).strip().splitlines()[0][:200] if exc and str(exc).strip() else ""
            self.tally.record(kind, logged_as=record.levelname.lower(), detail=detail)
        except Exception:  # a log handler must never raise into aiohttp
            self.handleError(record)


async def serve(fd: int) -> int:
    """Serve until the daemon closes the channel; return the exit code."""
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    inbox = Reader(reader, ToWorker)
    channel = Channel(writer)
    log = ForwardLog(channel)
    init = await inbox.read()
    assert isinstance(init, Init)  # noqa: S101 — the daemon's first message
    cfg = init.api
    if cfg.nice:
        try:
            os.nice(cfg.nice)
        except OSError as e:  # a seccomp filter (systemd's @resources) may forbid it
            log.warning(
                "api.nice_refused",
                nice=cfg.nice,
                error=e.strerror,
                note="the API process runs at the daemon's CPU priority",
            )
    library = Tally(log, "api.http_error", "warning")
    handler = LibraryLogs(library)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)
    source = SnapshotSource(
        cfg.signals_kept,
        init.whales_kept,
        max(5.0, 4 * cfg.snapshot_interval_ms / 1000),
        channel.command,
        lambda sections: channel.send(Want(sections)),
        Path(init.history) if init.history else None,
    )
    first = await inbox.read()
    assert isinstance(first, Snap)  # noqa: S101 — sent right after Init
    source.update(first.snapshot)
    hub = StreamHub(source, bool(init.kill_token), log)
    server = ApiServer(
        cfg,
        source,
        Secret(init.kill_token) if init.kill_token else None,
        log,
        Secret(init.api_token) if init.api_token else None,
        Dashboard(hub, init.api_token.encode(), cfg.request_timeout_s),
    )
    try:
        await server.start()
    except OSError as e:
        channel.send(Failed(f"{e.strerror or e}"))
        await writer.drain()
        return 1
    channel.send(Listening(server.port))
    flush = asyncio.create_task(_flush(library, cfg.error_log_interval_s))
    try:
        while True:
            try:
                msg = await inbox.read()
            except EOFError:
                return 0
            if isinstance(msg, Snap):
                source.update(msg.snapshot)
                hub.on_snapshot(msg.snapshot)
            elif isinstance(msg, Reply):
                channel.reply(msg)
    finally:
        flush.cancel()
        await hub.close()
        await server.stop()


async def _flush(tally: Tally, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        tally.flush(interval)


def main(argv: list[str]) -> int:
    """Entry point; the only argument is the channel's file descriptor."""
    # The process lives exactly as long as its channel: Ctrl-C or systemd's SIGTERM reach the
    # whole group, and the daemon, shutting down in order, closes the channel when it is time.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        return asyncio.run(serve(int(argv[1])))
    except Exception as e:
        # No traceback to a shared stderr (it could quote a request); the daemon sees EOF and
        # logs that the API process ended, with this line first.
        sys.stderr.write(f"smartflow api process: {type(e).__name__}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
