"""The SmartStream client: sockets, subscriptions, heartbeats, stall watchdog, reconnects.

One ``FeedSession`` owns up to three sockets (Angel's per-client-code limit) with at most 1000
(token, mode) pairs each, and keeps our own record of what each socket should carry, so every
reconnect resubscribes exactly that set, once, in batches (the SDK's shared class-level registry
and its recursive reconnect are what we are replacing; angel-smartapi.md §2.10).

Liveness is checked three ways: websockets' protocol pings, a text ``ping`` every
``ping_interval_s`` that Angel answers with ``pong``, and a watchdog that aborts a socket on which
no frame of any kind arrived for ``stall_timeout_s``. Reconnects back off exponentially with jitter
and the backoff resets once a connection has stayed up for ``healthy_after_s``.

A live socket is not a working feed: pongs can keep flowing while the market data has stopped
(Angel users report exactly that, e.g. after the daily token rollover). So in market hours a
socket that carries subscriptions and received no binary packet for ``data_stall_s`` is *stale*,
and each further ``data_stall_s`` of silence takes the next step: resubscribe, reconnect,
re-login (when a login hook exists); after that it reconnects at doubling intervals (at most
``STALL_REPEAT_MAX_S`` apart). Data on the socket ends the episode. Per socket, like the frame
watchdog: with Angel's 1000 pairs a socket, a chain's sockets each carry many contracts.

SmartStream never acknowledges a subscription; it only rejects one with an E1001/E1002 error frame
carrying the request's correlation id (angel-smartapi.md §2.2, §2.6). A sent pair is therefore
*pending* until data arrives for it or ``subscribe_confirm_s`` passes without an error, and then
*confirmed*. A rejected pair is retried with jittered, doubling backoff and alarmed (log and
counter) until the server takes it; ``FeedStats.subscriptions`` compares wanted and confirmed.

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
from smartflow.core.timeutil import NS_PER_S
from smartflow.feed import protocol as p
from smartflow.kernels import wire
from smartflow.tape.format import TapeWriter


Pair = tuple[int, str]  # (exchange type, token)
Sink = Callable[[int, bytes, bytes], None]  # (recv_ns, conflation key, packet)
HeadersProvider = Callable[[], Awaitable[dict[str, str]]]
AuthFailureHook = Callable[[str], Awaitable[None]]

YIELD_EVERY = 32
FRAME_QUEUE = 256


STALL_STEPS = ("resubscribe", "reconnect", "relogin")
"""Data-stall escalation; after the last step the socket reconnects again at doubling intervals."""
STALL_REPEAT_MAX_S = 300.0
"""Longest wait between reconnects of a long stall (a holiday is silent all day: few lines)."""
SILENT_LISTED = 50
"""Silent contracts named in the status API (all are counted)."""


@dataclass
class FeedStats:
    """Counters a stats line, the status API, health and the metrics endpoint read."""

    frames: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    text: Counter[str] = field(default_factory=Counter)
    server_errors: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0
    stalls: int = 0
    auth_failures: int = 0
    relogin_failures: int = 0
    connection_limit: int = 0
    bytes: int = 0
    last_frame_ns: int = 0
    data_stalls: int = 0
    """Stale episodes: market hours, subscriptions, and no market data for ``data_stall_s``."""
    stall_steps: Counter[str] = field(default_factory=Counter)
    subscribe_rejected: Counter[str] = field(default_factory=Counter)
    """Pairs the server refused, by error code (each refusal of a retried pair counts)."""
    subscribe_retries: int = 0
    stalled: list[dict[str, Any]] = field(default_factory=list)
    """One entry per stale socket: index, seconds without data, escalation steps taken."""
    subscriptions: dict[str, int] = field(default_factory=dict)
    """Pairs wanted / confirmed / pending / rejected / unsent (refreshed every second)."""
    unconverged: bool = False
    """Some wanted pair is rejected, or has not been sent on an open socket for a confirm window."""
    silent_tokens: int = 0
    silent_list: list[str] = field(default_factory=list)

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
            "relogin_failures": self.relogin_failures,
            "connection_limit": self.connection_limit,
            "bytes": self.bytes,
            "data_stalls": self.data_stalls,
            "stall_steps": dict(self.stall_steps),
            "stalled": list(self.stalled),
            "subscribe_rejected": dict(self.subscribe_rejected),
            "subscribe_retries": self.subscribe_retries,
            "subscriptions": dict(self.subscriptions),
            "subscriptions_converged": not self.unconverged,
            "silent_tokens": self.silent_tokens,
            "silent_list": list(self.silent_list),
        }


class FeedSession:
    """SmartStream client over up to ``max_sockets`` sockets.

    ``in_session(clock_ns)`` says whether the market is open (data expected; default: always);
    ``relogin(reason)`` is the data-stall escalation's re-login (live: a fresh TOTP login; None
    skips that step).
    """

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
        in_session: Callable[[int], bool] | None = None,
        relogin: AuthFailureHook | None = None,
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
        self._in_session = in_session or (lambda _ns: True)
        self._relogin = relogin
        # Data arrived since the market opened: a silence after that is a fault worth a restart;
        # a market that never traded today (a holiday: hours know no holidays) is not.
        self.market_seen = False
        self.stats = FeedStats()
        # Clock time of the last packet per conflation key (mode, exchange, token): what confirms
        # a subscription and what shows a contract silent while its segment streams.
        self._last_seen: dict[bytes, int] = {}
        self._keys: dict[Pair, bytes] = {}
        self._wanted_since: dict[Pair, int] = {}
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
        now = self.clock.now_ns()
        for pair in removed:
            self._last_seen.pop(self._keys.pop(pair), None)
            self._wanted_since.pop(pair, None)
        for pair in added:
            self._keys[pair] = _key(self.mode, pair)
            self._wanted_since[pair] = now
        for conn in self._connections:
            conn.wanted -= removed
            for pair in removed:
                conn.rejected.pop(pair, None)
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
        monitor = asyncio.create_task(self._monitor(), name="feed-monitor")
        try:
            await self._failed
        finally:
            monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await monitor
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

    @property
    def sockets(self) -> int:
        """Sockets the subscriptions need, open or not."""
        return len(self._connections)

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
        key = frame[:27]
        self._last_seen[key] = recv_ns
        self._sink(recv_ns, key, frame)

    def on_text(self, recv_ns: int, text: str, conn: _Connection) -> None:
        """Handle ``pong`` and server error frames."""
        self.stats.last_frame_ns = recv_ns
        parsed = p.parse_text(text)
        if parsed == "pong":
            self.stats.text["pong"] += 1
        elif isinstance(parsed, p.ErrorFrame):
            self.stats.server_errors[parsed.errorCode] += 1
            failed = conn.on_error(parsed.correlationID)
            retry_s = conn.reject(failed, parsed.errorCode) if failed else None
            self.log.error(
                "feed.server_error",
                code=parsed.errorCode,
                message=parsed.errorMessage,
                correlation_id=parsed.correlationID,
                socket=conn.index,
                unsubscribed=len(failed),
                retry_in_s=None if retry_s is None else round(retry_s, 3),
            )
        else:
            self.stats.text["unknown"] += 1
            if "unknown_text" not in self._logged_kinds:
                self._logged_kinds.add("unknown_text")
                self.log.warning("feed.unknown_text", text=text[:120])

    def backoff_delay(self, backoff: float) -> float:
        """Jittered delay: uniformly between half and all of the current backoff."""
        return backoff * (0.5 + 0.5 * self._rng.random())

    # ---- data stalls, convergence, silent contracts --------------------------------------

    def in_session(self) -> bool:
        """Market hours now (data is expected on every subscribed socket)."""
        return self._in_session(self.clock.now_ns())

    def data_since(self, pair: Pair, since_ns: int) -> bool:
        """A packet for ``pair`` arrived at or after clock time ``since_ns``."""
        key = self._keys.get(pair)
        return key is not None and self._last_seen.get(key, -1) >= since_ns

    @property
    def can_relogin(self) -> bool:
        """A re-login hook exists (live); sim and tests have static credentials."""
        return self._relogin is not None

    async def relogin(self, reason: str) -> None:
        """The escalation's re-login; a failure is logged, and the socket reconnects anyway."""
        if self._relogin is None:
            return
        try:
            await self._relogin(reason)
        except Exception as e:  # a failed login must not end the feed: it keeps reconnecting
            self.stats.relogin_failures += 1
            self.log.error("feed.relogin_failed", error=f"{type(e).__name__}: {e}")

    async def _monitor(self) -> None:
        """Every second: confirm or retry subscriptions, refresh the health view."""
        loop = asyncio.get_running_loop()
        unsent_since: float | None = None
        while True:
            await asyncio.sleep(min(1.0, self.cfg.subscribe_confirm_s / 4))
            wall = loop.time()
            for conn in self._connections:
                conn.sweep(wall)
            counts = {"wanted": len(self._wanted)}
            for state in ("confirmed", "pending", "rejected", "unsent"):
                counts[state] = 0
            for conn in self._connections:
                for state, n in conn.states().items():
                    counts[state] += n
            self.stats.subscriptions = counts
            if counts["unsent"]:
                unsent_since = wall if unsent_since is None else unsent_since
            else:
                unsent_since = None
            overdue = unsent_since is not None and (
                wall - unsent_since >= self.cfg.subscribe_confirm_s
            )
            self.stats.unconverged = bool(counts["rejected"]) or overdue
            self.stats.stalled = [c.stall_view(wall) for c in self._connections if c.stall_step]
            self._find_silent()

    def _find_silent(self) -> None:
        """Contracts without a packet for ``token_silent_s`` while their segment streams."""
        now = self.clock.now_ns()
        window = int(self.cfg.token_silent_s * NS_PER_S)
        live_segments = set()
        quiet: list[Pair] = []
        for pair, since in self._wanted_since.items():
            last = self._last_seen.get(self._keys[pair], since)
            if now - last <= window:
                live_segments.add(pair[0])
            elif now - since > window:
                quiet.append(pair)
        silent = sorted(pair for pair in quiet if pair[0] in live_segments)
        self.stats.silent_tokens = len(silent)
        self.stats.silent_list = [f"{exch}:{token}" for exch, token in silent[:SILENT_LISTED]]


class _Connection:
    """One socket: connect, subscribe, serve, and reconnect forever."""

    def __init__(self, session: FeedSession, index: int) -> None:
        self.session = session
        self.index = index
        self.wanted: set[Pair] = set()
        self.sent: set[Pair] = set()
        # correlation id -> (wall time sent, clock time sent, pairs); unsubscribes carry none.
        self.pending: dict[str, tuple[float, int, list[Pair]]] = {}
        self.confirmed: set[Pair] = set()
        self.rejected: dict[Pair, str] = {}
        # Refused at least once and not confirmed since: a retry in flight is not yet success.
        self.doubtful: set[Pair] = set()
        self.retry_at = 0.0
        self.retry_backoff = session.cfg.subscribe_retry_s
        self.data_frames = 0
        self.silent_since = 0.0
        self.stall_step = 0
        self._sending = asyncio.Lock()
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
                    self.confirmed.clear()
                    self.rejected.clear()
                    self.retry_at = 0.0
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
                # What a closed socket carried is gone at the server: nothing is confirmed.
                self.sent.clear()
                self.confirmed.clear()
                self.pending.clear()
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
        if not self.stall_step:
            self.silent_since = asyncio.get_running_loop().time()
        n = 0
        try:
            async for msg in ws:
                # Per socket: frames on another socket must not hide this one's stall.
                self.last_frame_ns = now = clock.now_ns()
                if isinstance(msg, bytes):
                    self.data_frames += 1
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
        timeout_ns = int(s.cfg.stall_timeout_s * NS_PER_S)
        since = s.clock.now_ns()
        last_seen = self.last_frame_ns
        seen_data = self.data_frames
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, s.cfg.stall_timeout_s / 4, s.cfg.data_stall_s / 4))
            now = s.clock.now_ns()
            if self.last_frame_ns != last_seen:
                last_seen = self.last_frame_ns
                since = now
            elif now - since > timeout_ns:
                s.stats.stalls += 1
                s.log.warning("feed.stalled", socket=self.index, silent_s=(now - since) / NS_PER_S)
                # Close without a handshake: a stalled peer would not answer one.
                ws.transport.abort()
                return
            wall = loop.time()
            in_session = s.in_session()
            if not in_session:
                s.market_seen = False
            if self.data_frames != seen_data:
                seen_data = self.data_frames
                s.market_seen = s.market_seen or in_session
                self._data_flows(wall)
            elif not self.sent or not in_session:
                # Silence is expected: nothing subscribed here, or the market is shut.
                if self.stall_step:
                    s.log.info("feed.stall_cleared", socket=self.index, reason="no data expected")
                    self.stall_step = 0
                self.silent_since = wall
            elif wall - self.silent_since >= stall_step_due(
                self.stall_step, s.cfg.data_stall_s
            ) and await self._escalate(ws, wall):
                return

    def _data_flows(self, wall: float) -> None:
        if self.stall_step:
            s = self.session
            s.log.warning(
                "feed.data_resumed",
                socket=self.index,
                silent_s=round(wall - self.silent_since, 3),
                steps=self.stall_step,
            )
            self.stall_step = 0
        self.silent_since = wall

    async def _escalate(self, ws: ClientConnection, wall: float) -> bool:
        """Take the next data-stall step; True when the socket was aborted."""
        s = self.session
        step = STALL_STEPS[self.stall_step] if self.stall_step < len(STALL_STEPS) else "reconnect"
        if step == "relogin" and not s.can_relogin:
            step = "reconnect"
        self.stall_step += 1
        if self.stall_step == 1:
            s.stats.data_stalls += 1
        s.stats.stall_steps[step] += 1
        s.log.warning(
            "feed.data_stall",
            socket=self.index,
            silent_s=round(wall - self.silent_since, 3),
            step=step,
            tokens=len(self.sent),
        )
        if step == "resubscribe":
            await self._resubscribe(ws)
            return False
        if step == "relogin":
            await s.relogin(f"no market data on socket {self.index}")
        ws.transport.abort()
        return True

    def stall_view(self, wall: float) -> dict[str, Any]:
        """This socket's stale episode for the status API and health."""
        return {
            "socket": self.index,
            "silent_s": round(wall - self.silent_since, 1),
            "steps": self.stall_step,
            "market_seen": self.session.market_seen,
        }

    # ---- subscription convergence --------------------------------------------------------

    def on_error(self, corr: str) -> list[Pair]:
        """The pairs an error frame refused: its request's, or every unconfirmed one."""
        entry = self.pending.pop(corr, None) if corr else None
        if entry is not None:
            failed = [pair for pair in entry[2] if pair in self.sent]
        else:
            # No (known) correlation id: only pairs not yet confirmed can be the refused ones.
            failed = sorted(self.sent - self.confirmed)
            for key in [k for k, v in self.pending.items() if v[2]]:
                del self.pending[key]
        self.sent.difference_update(failed)
        return failed

    def reject(self, pairs: list[Pair], code: str) -> float:
        """Hold refused pairs for a retry; returns seconds until it."""
        s = self.session
        s.stats.subscribe_rejected[code] += len(pairs)
        for pair in pairs:
            if pair in self.wanted:
                self.rejected[pair] = code
                self.doubtful.add(pair)
        loop_now = asyncio.get_running_loop().time()
        if not self.retry_at:
            self.retry_at = loop_now + s.backoff_delay(self.retry_backoff)
            self.retry_backoff = min(self.retry_backoff * 2, s.cfg.subscribe_retry_max_s)
        return max(0.0, self.retry_at - loop_now)

    def sweep(self, wall: float) -> None:
        """Confirm pairs that streamed or outlived the error window; start due retries."""
        s = self.session
        window = s.cfg.subscribe_confirm_s
        for corr, (sent_wall, sent_ns, pairs) in list(self.pending.items()):
            if wall - sent_wall >= window:
                self.confirmed.update(pair for pair in pairs if pair in self.sent)
                del self.pending[corr]
            else:
                self.confirmed.update(
                    pair for pair in pairs if pair in self.sent and s.data_since(pair, sent_ns)
                )
        self.confirmed &= self.sent
        self.doubtful -= self.confirmed
        self.doubtful &= self.wanted
        if self.rejected and self.retry_at and wall >= self.retry_at and self.ws is not None:
            s.stats.subscribe_retries += 1
            s.log.warning(
                "feed.subscribe_retry",
                socket=self.index,
                pairs=len(self.rejected),
                codes=sorted(set(self.rejected.values())),
            )
            self.rejected.clear()
            self.retry_at = 0.0
            self.changed.set()
        elif not self.rejected and not self.pending and self.retry_at == 0.0:
            self.retry_backoff = s.cfg.subscribe_retry_s

    def states(self) -> dict[str, int]:
        """Wanted pairs of this socket by state."""
        wanted = self.wanted
        confirmed = self.confirmed & wanted
        refused = (self.rejected.keys() | self.doubtful) & wanted - confirmed
        sent = self.sent & wanted
        return {
            "confirmed": len(confirmed),
            "pending": len(sent - confirmed - refused),
            "rejected": len(refused),
            "unsent": len(wanted - sent - refused),
        }

    async def _resync(self, ws: ClientConnection) -> None:
        while True:
            await self.changed.wait()
            self.changed.clear()
            await self._sync(ws)

    def _next_corr(self) -> str:
        self._corr += 1
        return f"sf{self.index}{self._corr:07d}"[-10:]

    async def _sync(self, ws: ClientConnection) -> None:
        """Send the subscribe/unsubscribe messages that make ``sent`` equal ``wanted``.

        Pairs the server refused wait for their retry (``sweep``) instead of being resent here.
        """
        async with self._sending:
            add = sorted(self.wanted - self.sent - self.rejected.keys())
            remove = sorted(self.sent - self.wanted)
            await self._send(ws, p.UNSUBSCRIBE, remove)
            await self._send(ws, p.SUBSCRIBE, add)

    async def _resubscribe(self, ws: ClientConnection) -> None:
        """Unsubscribe everything, then subscribe it again (Angel ignores a repeated subscribe)."""
        async with self._sending:
            await self._send(ws, p.UNSUBSCRIBE, sorted(self.sent))
            self.confirmed.clear()
            await self._send(ws, p.SUBSCRIBE, sorted(self.wanted - self.rejected.keys()))

    async def _send(self, ws: ClientConnection, action: int, pairs: list[Pair]) -> None:
        s = self.session
        batch = s.cfg.subscribe_batch
        loop = asyncio.get_running_loop()
        for i in range(0, len(pairs), batch):
            chunk = pairs[i : i + batch]
            by_exch: dict[int, list[str]] = {}
            for exch, token in chunk:
                by_exch.setdefault(exch, []).append(token)
            corr = self._next_corr()
            await ws.send(p.subscription(action, s.mode, by_exch, corr))
            if action == p.SUBSCRIBE:
                self.sent.update(chunk)
                self.pending[corr] = (loop.time(), s.clock.now_ns(), chunk)
            else:
                self.sent.difference_update(chunk)
                self.pending[corr] = (loop.time(), s.clock.now_ns(), [])

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


def stall_step_due(step: int, every_s: float) -> float:
    """Seconds of silence after which escalation step ``step`` (0-based) is taken.

    The named steps come ``every_s`` apart; then each further reconnect waits twice as long as
    the one before, up to ``STALL_REPEAT_MAX_S``.
    """
    due = min(step + 1, len(STALL_STEPS)) * every_s
    for extra in range(1, step - len(STALL_STEPS) + 2):
        due += min(every_s * 2**extra, STALL_REPEAT_MAX_S)
    return due


def _key(mode: int, pair: Pair) -> bytes:
    """A packet's first 27 bytes for ``pair``: mode, exchange type, NUL-padded token."""
    return bytes((mode, pair[0])) + pair[1].encode("ascii").ljust(25, b"\0")


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
