"""The SmartStream client: sockets, subscriptions, heartbeats, stall watchdog, reconnects.

One ``FeedSession`` owns up to three sockets (Angel's per-client-code limit) with at most 1000
(token, mode) pairs each, and keeps our own record of what each socket should carry, so every
reconnect resubscribes exactly that set, once, in batches (the SDK's shared class-level registry
and its recursive reconnect are what we are replacing; angel-smartapi.md §2.10).

Liveness is checked three ways: websockets' protocol pings, a text ``ping`` every
``ping_interval_s`` that Angel answers with ``pong``, and a watchdog that aborts a socket on which
no frame of any kind arrived for ``stall_timeout_s``. Reconnects back off exponentially with jitter
and the backoff resets once a connection has stayed up for ``healthy_after_s``.

The reader never awaits anything downstream: each valid packet goes to a synchronous ``sink``
(normally a per-token ``Conflator``). Malformed packets are counted by kind and logged once per
kind; nothing else about them is trusted. A 401 on the upgrade is an authentication failure,
handed to ``on_auth_failure`` (re-login) or raised as fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from smartflow.config import FeedConfig
from smartflow.core.clock import Clock
from smartflow.core.errors import AuthError, FatalError
from smartflow.feed import protocol as p
from smartflow.kernels import wire
from smartflow.tape.format import TapeWriter


Pair = tuple[int, str]  # (exchange type, token)
Sink = Callable[[int, bytes, bytes], None]  # (recv_ns, conflation key, packet)
HeadersProvider = Callable[[], Awaitable[dict[str, str]]]
AuthFailureHook = Callable[[str], Awaitable[None]]

_NS = 1_000_000_000
YIELD_EVERY = 32
FRAME_QUEUE = 256


@dataclass
class FeedStats:
    """Counters a stats line and the metrics endpoint read."""

    frames: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    text: Counter[str] = field(default_factory=Counter)
    server_errors: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0
    stalls: int = 0
    auth_failures: int = 0
    connection_limit: int = 0
    bytes: int = 0
    last_frame_ns: int = 0
    last_data_ns: int = 0

    def snapshot(self) -> dict[str, Any]:
        """Return a plain copy for logs and metrics."""
        return {
            "frames": sum(self.frames.values()),
            "frames_by_mode": dict(self.frames),
            "rejected": dict(self.rejected),
            "text": dict(self.text),
            "server_errors": dict(self.server_errors),
            "reconnects": self.reconnects,
            "stalls": self.stalls,
            "auth_failures": self.auth_failures,
            "connection_limit": self.connection_limit,
            "bytes": self.bytes,
        }


class FeedSession:
    """SmartStream client over up to ``max_sockets`` sockets."""

    def __init__(
        self,
        cfg: FeedConfig,
        url: str,
        headers: HeadersProvider,
        sink: Sink,
        clock: Clock,
        log: Any,
        recorder: TapeWriter | None = None,
        on_auth_failure: AuthFailureHook | None = None,
        seed: int | None = None,
    ) -> None:
        self.cfg = cfg
        self.url = url
        self.mode = int(p.MODE_BY_NAME[cfg.mode])
        self._headers = headers
        self._sink = sink
        self.clock = clock
        self.log = log
        self.recorder = recorder
        self._on_auth_failure = on_auth_failure
        self.stats = FeedStats()
        self._rng = random.Random(seed)
        self._connections: list[_Connection] = []
        self._wanted: set[Pair] = set()
        self._logged_kinds: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._failed: asyncio.Future[None] | None = None
        self._stopping = False

    # ---- subscriptions ------------------------------------------------------------------

    @property
    def subscribed(self) -> frozenset[Pair]:
        """Every (exchange type, token) this session wants streamed."""
        return frozenset(self._wanted)

    def set_subscriptions(self, wanted: set[Pair]) -> tuple[set[Pair], set[Pair]]:
        """Make the streamed set equal ``wanted``; live sockets get only the delta.

        Returns:
            (added, removed) pairs.

        Raises:
            FatalError: more pairs than ``max_sockets × max_tokens_per_socket``.
        """
        cap = self.cfg.max_sockets * self.cfg.max_tokens_per_socket
        if len(wanted) > cap:
            raise FatalError(
                f"{len(wanted)} tokens exceed SmartStream's limit of {cap} "
                f"({self.cfg.max_sockets} sockets × {self.cfg.max_tokens_per_socket})"
            )
        added = wanted - self._wanted
        removed = self._wanted - wanted
        for conn in self._connections:
            conn.wanted -= removed
        for pair in sorted(added):
            conn = self._connection_with_room()
            conn.wanted.add(pair)
        self._wanted = set(wanted)
        for conn in self._connections:
            conn.changed.set()
        if self._tasks:
            self._spawn_missing()
        return added, removed

    def _connection_with_room(self) -> _Connection:
        for conn in self._connections:
            if len(conn.wanted) < self.cfg.max_tokens_per_socket:
                return conn
        conn = _Connection(self, len(self._connections))
        self._connections.append(conn)
        return conn

    # ---- lifecycle ----------------------------------------------------------------------

    async def run(self) -> None:
        """Run every socket until ``stop()``; raises if a socket fails fatally."""
        self._failed = asyncio.get_running_loop().create_future()
        self._spawn_missing()
        try:
            await self._failed
        finally:
            for t in self._tasks:
                t.cancel()
            for t in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t

    def _spawn_missing(self) -> None:
        while len(self._tasks) < len(self._connections):
            conn = self._connections[len(self._tasks)]
            task = asyncio.create_task(conn.run(), name=f"feed-socket-{conn.index}")
            task.add_done_callback(self._on_socket_done)
            self._tasks.append(task)

    def _on_socket_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._failed is None or self._failed.done():
            return
        exc = task.exception()
        if exc is not None:
            self._failed.set_exception(exc)
        elif self._stopping:
            self._failed.set_result(None)

    async def wait_ready(self) -> None:
        """Wait until every socket is connected and has sent its subscriptions."""
        while True:
            pending = [c for c in self._connections if not c.ready.is_set()]
            if self._connections and not pending:
                return
            if pending:
                await pending[0].ready.wait()
            else:
                await asyncio.sleep(0.01)

    @property
    def connected(self) -> int:
        """Sockets currently open and subscribed."""
        return sum(1 for c in self._connections if c.ready.is_set())

    async def stop(self) -> None:
        """Unsubscribe, close every socket and end ``run()``."""
        self._stopping = True
        for conn in self._connections:
            await conn.close()
        if self._failed is not None and not self._failed.done():
            self._failed.set_result(None)

    # ---- frames -------------------------------------------------------------------------

    def on_binary(self, recv_ns: int, frame: bytes) -> None:
        """Validate one binary frame and pass it on; never blocks."""
        stats = self.stats
        stats.last_frame_ns = recv_ns
        stats.bytes += len(frame)
        if self.recorder is not None:
            self.recorder.write(recv_ns, frame)
        status = (
            wire.check_frame(np.frombuffer(frame, np.uint8), 0, len(frame))
            if frame
            else wire.REJECT_EMPTY
        )
        if status != wire.OK:
            kind = wire.STATUS_NAMES[status]
            stats.rejected[kind] += 1
            if kind not in self._logged_kinds:
                self._logged_kinds.add(kind)
                self.log.warning(
                    "feed.frame_rejected",
                    kind=kind,
                    length=len(frame),
                    head=frame[:8].hex(),
                    note="logged once per kind; counted",
                )
            return
        stats.frames[p.MODE_NAMES[frame[0]]] += 1
        stats.last_data_ns = recv_ns
        self._sink(recv_ns, frame[:27], frame)

    def on_text(self, recv_ns: int, text: str, conn: _Connection) -> None:
        """Handle ``pong`` and server error frames."""
        self.stats.last_frame_ns = recv_ns
        parsed = p.parse_text(text)
        if parsed == "pong":
            self.stats.text["pong"] += 1
        elif isinstance(parsed, p.ErrorFrame):
            self.stats.server_errors[parsed.errorCode] += 1
            failed = conn.pending.pop(parsed.correlationID, [])
            conn.sent.difference_update(failed)
            self.log.error(
                "feed.server_error",
                code=parsed.errorCode,
                message=parsed.errorMessage,
                correlation_id=parsed.correlationID,
                socket=conn.index,
                unsubscribed=len(failed),
            )
        else:
            self.stats.text["unknown"] += 1
            if "unknown_text" not in self._logged_kinds:
                self._logged_kinds.add("unknown_text")
                self.log.warning("feed.unknown_text", text=text[:120])

    def backoff_delay(self, backoff: float) -> float:
        """Jittered delay: uniformly between half and all of the current backoff."""
        return backoff * (0.5 + 0.5 * self._rng.random())


class _Connection:
    """One socket: connect, subscribe, serve, and reconnect forever."""

    def __init__(self, session: FeedSession, index: int) -> None:
        self.session = session
        self.index = index
        self.wanted: set[Pair] = set()
        self.sent: set[Pair] = set()
        self.pending: dict[str, list[Pair]] = {}
        self.ready = asyncio.Event()
        self.changed = asyncio.Event()
        self.ws: ClientConnection | None = None
        self.last_frame_ns = 0
        self._corr = 0
        self._closing = False

    async def run(self) -> None:
        s = self.session
        cfg = s.cfg
        backoff = cfg.backoff_initial_s
        while not self.closing():
            connected_at = None
            try:
                headers = await s._headers()
                async with connect(
                    s.url,
                    additional_headers=headers,
                    proxy=None,
                    compression=None,
                    open_timeout=cfg.open_timeout_s,
                    ping_interval=cfg.ping_interval_s,
                    ping_timeout=cfg.ping_interval_s * 2,
                    close_timeout=2,
                    max_size=1 << 20,
                    # Bounded: under a flood websockets stops reading the socket (TCP pushes back)
                    # instead of parsing into an ever-growing queue that starves the engine.
                    max_queue=FRAME_QUEUE,
                    user_agent_header="smartflow",
                ) as ws:
                    connected_at = asyncio.get_running_loop().time()
                    self.ws = ws
                    self.sent = set()
                    self.pending.clear()
                    await self._sync(ws)
                    self.ready.set()
                    s.log.info("feed.connected", socket=self.index, tokens=len(self.sent))
                    await self._serve(ws)
            except InvalidStatus as e:
                await self._on_rejected(e)
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake) as e:
                if not self.closing():
                    s.log.warning(
                        "feed.disconnected", socket=self.index, error=f"{type(e).__name__}: {e}"
                    )
            finally:
                self.ws = None
                self.ready.clear()
            if self.closing():
                return
            s.stats.reconnects += 1
            if connected_at is not None:
                lived = asyncio.get_running_loop().time() - connected_at
                if lived >= cfg.healthy_after_s:
                    backoff = cfg.backoff_initial_s
            delay = s.backoff_delay(backoff)
            backoff = min(backoff * 2, cfg.backoff_max_s)
            s.log.info("feed.reconnecting", socket=self.index, delay_s=round(delay, 3))
            await asyncio.sleep(delay)

    async def _on_rejected(self, e: InvalidStatus) -> None:
        s = self.session
        status = e.response.status_code
        reason = e.response.headers.get("x-error-message", "") or e.response.reason_phrase
        if status == 401:
            s.stats.auth_failures += 1
            s.log.error("feed.auth_rejected", socket=self.index, reason=reason)
            if s._on_auth_failure is None:
                raise AuthError(f"SmartStream rejected the credentials: {reason}") from None
            await s._on_auth_failure(reason)
        elif status == 429:
            s.stats.connection_limit += 1
            s.log.error(
                "feed.connection_limit",
                socket=self.index,
                hint="another process may hold SmartStream sockets for this client code",
            )
        else:
            s.log.warning("feed.handshake_failed", socket=self.index, status=status)

    async def _serve(self, ws: ClientConnection) -> None:
        helpers = [
            asyncio.create_task(self._pinger(ws), name=f"feed-ping-{self.index}"),
            asyncio.create_task(self._watchdog(ws), name=f"feed-watchdog-{self.index}"),
            asyncio.create_task(self._resync(ws), name=f"feed-resync-{self.index}"),
        ]
        s = self.session
        clock = s.clock
        on_binary = s.on_binary
        n = 0
        try:
            async for msg in ws:
                # Per socket: frames on another socket must not hide this one's stall.
                self.last_frame_ns = now = clock.now_ns()
                if isinstance(msg, bytes):
                    on_binary(now, msg)
                else:
                    s.on_text(now, msg, self)
                n += 1
                if n % YIELD_EVERY == 0:
                    # websockets hands over queued messages without suspending, so under a
                    # flood this loop would never give the engine a turn: yield now and then.
                    await asyncio.sleep(0)
        finally:
            for t in helpers:
                t.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def _pinger(self, ws: ClientConnection) -> None:
        while True:
            await asyncio.sleep(self.session.cfg.ping_interval_s)
            await ws.send("ping")

    async def _watchdog(self, ws: ClientConnection) -> None:
        s = self.session
        timeout_ns = int(s.cfg.stall_timeout_s * _NS)
        since = s.clock.now_ns()
        last_seen = self.last_frame_ns
        while True:
            await asyncio.sleep(min(1.0, s.cfg.stall_timeout_s / 4))
            now = s.clock.now_ns()
            if self.last_frame_ns != last_seen:
                last_seen = self.last_frame_ns
                since = now
            elif now - since > timeout_ns:
                s.stats.stalls += 1
                s.log.warning("feed.stalled", socket=self.index, silent_s=(now - since) / _NS)
                # Close without a handshake: a stalled peer would not answer one.
                ws.transport.abort()
                return

    async def _resync(self, ws: ClientConnection) -> None:
        while True:
            await self.changed.wait()
            self.changed.clear()
            await self._sync(ws)

    def _next_corr(self) -> str:
        self._corr += 1
        return f"sf{self.index}{self._corr:07d}"[-10:]

    async def _sync(self, ws: ClientConnection) -> None:
        """Send the subscribe/unsubscribe messages that make ``sent`` equal ``wanted``."""
        s = self.session
        add = sorted(self.wanted - self.sent)
        remove = sorted(self.sent - self.wanted)
        batch = s.cfg.subscribe_batch
        for action, pairs in ((p.UNSUBSCRIBE, remove), (p.SUBSCRIBE, add)):
            for i in range(0, len(pairs), batch):
                chunk = pairs[i : i + batch]
                by_exch: dict[int, list[str]] = {}
                for exch, token in chunk:
                    by_exch.setdefault(exch, []).append(token)
                corr = self._next_corr()
                await ws.send(p.subscription(action, s.mode, by_exch, corr))
                if action == p.SUBSCRIBE:
                    self.sent.update(chunk)
                    self.pending[corr] = chunk
                else:
                    self.sent.difference_update(chunk)
        # Correlation ids only matter until the server would have answered with an error.
        if len(self.pending) > 64:
            for key in list(self.pending)[:-64]:
                del self.pending[key]

    def closing(self) -> bool:
        """``close()`` was called (possibly while this socket's loop was awaiting)."""
        return self._closing

    async def close(self) -> None:
        self._closing = True
        ws = self.ws
        if ws is not None:
            with contextlib.suppress(ConnectionClosed, OSError):
                if self.sent:
                    by_exch: dict[int, list[str]] = {}
                    for exch, token in sorted(self.sent):
                        by_exch.setdefault(exch, []).append(token)
                    await ws.send(p.subscription(p.UNSUBSCRIBE, self.session.mode, by_exch))
                await ws.close()


def headers_for(jwt: str, api_key: str, client_code: str, feed_token: str) -> dict[str, str]:
    """The four SmartStream handshake headers (angel-smartapi.md §2.1)."""
    return {
        "Authorization": f"Bearer {jwt}",
        "x-api-key": api_key,
        "x-client-code": client_code,
        "x-feed-token": feed_token,
    }


def static_headers(headers: Mapping[str, str]) -> HeadersProvider:
    """A provider that always returns the same headers (sim mode, tests)."""

    async def provide() -> dict[str, str]:
        return dict(headers)

    return provide
