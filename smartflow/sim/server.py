"""The simulator's network face: SmartStream over WebSocket and the scrip master over HTTP.

Behaviour copied from Angel (angel-smartapi.md §2): the four handshake headers are checked and a
wrong one gets HTTP 401 with ``x-error-message``; a fourth concurrent socket for a client code gets
429; subscriptions use Angel's JSON and count (token, mode) pairs against a 1000-per-socket quota
(E1002 when exceeded, E1001 for a malformed request); text ``ping`` is answered with ``pong``;
binary packets are LTP/QUOTE/SNAP_QUOTE as subscribed. Faults can be injected for tests: drop every
socket, freeze (stop all frames, pongs included, while TCP stays up), or refuse new handshakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog
from aiohttp import WSMsgType, web

from smartflow.core.clock import ScaledClock
from smartflow.core.timeutil import ist_datetime, ns_at_ist
from smartflow.feed import protocol as p
from smartflow.sim.market import Market
from smartflow.sim.rest import SimCredentials, SimRest
from smartflow.sim.tapefeed import TapeSource
from smartflow.sim.universe import noise_records


SCRIP_MASTER_PATH = "/OpenAPI_File/files/OpenAPIScripMaster.json"
STREAM_PATH = "/smart-stream"
MAX_SOCKETS_PER_CLIENT = 3
MAX_PAIRS_PER_SOCKET = 1000


@dataclass
class StreamConnection:
    """Server-side state of one SmartStream socket."""

    ws: web.WebSocketResponse
    client_code: str
    # token -> modes subscribed on this socket
    tokens: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    subscribe_log: list[tuple[int, int, str]] = field(default_factory=list)
    frames_sent: int = 0

    @property
    def pairs(self) -> int:
        """Number of (token, mode) pairs subscribed."""
        return sum(len(m) for m in self.tokens.values())


class SimServer:
    """Runs the market and serves it to SmartStream clients."""

    def __init__(
        self,
        market: Market,
        clock: ScaledClock,
        host: str = "127.0.0.1",
        port: int = 0,
        creds: SimCredentials | None = None,
        log: Any = None,
    ) -> None:
        self.market = market
        self.clock = clock
        self.host = host
        self.port = port
        self.creds = creds or SimCredentials()
        self.log = log or structlog.get_logger().bind(stage="sim")
        self.connections: list[StreamConnection] = []
        self.frozen = False
        # When set, packets come from a recording at a fixed rate (``smartflow sim --tape``,
        # ``bench e2e``) rather than from the market model, which still serves the instruments.
        self.tape_source: TapeSource | None = None
        self.refuse_handshakes = False
        self.frames_sent = 0
        self.text_errors: Counter[str] = Counter()
        self.app = web.Application()
        self.app.router.add_get(STREAM_PATH, self._stream)
        self.app.router.add_get(SCRIP_MASTER_PATH, self._scrip_master)
        # Angel's REST API and order-update socket (sim/rest.py) on the same app.
        self.rest = SimRest(market, clock, self.creds, self.log)
        self.rest.mount(self.app)
        self._runner: web.AppRunner | None = None
        self._streamer: asyncio.Task[None] | None = None
        self._truth_logged = 0
        self._scrip_json = msgspec.json.encode(
            market.scrip_master(noise_records(market.session_date))
        )

    # ---- lifecycle ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The SmartStream URL clients connect to."""
        return f"ws://{self.host}:{self.port}{STREAM_PATH}"

    @property
    def http_url(self) -> str:
        """The HTTP root (scrip master, REST)."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Bind the socket, then start streaming the market."""
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        stream = self._stream_market() if self.tape_source is None else self._stream_tape()
        self._streamer = asyncio.create_task(stream, name="sim-streamer")
        self.log.info("sim.listening", url=self.url, instruments=len(self.market.instruments))

    async def stop(self) -> None:
        """Stop streaming and close every socket."""
        if self._streamer is not None:
            self._streamer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._streamer
        for conn in list(self.connections):
            await conn.ws.close()
        await self.rest.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- faults (tests) -----------------------------------------------------------------

    async def drop_connections(self) -> None:
        """Abort every SmartStream socket without a close handshake (a network drop)."""
        for conn in list(self.connections):
            transport = conn.ws._req.transport if conn.ws._req else None
            if transport is not None:
                transport.abort()

    def freeze(self, frozen: bool = True) -> None:
        """Stop (or resume) sending anything at all, pongs included; TCP stays open."""
        self.frozen = frozen

    # ---- HTTP ---------------------------------------------------------------------------

    async def _scrip_master(self, request: web.Request) -> web.Response:
        return web.Response(body=self._scrip_json, content_type="application/json")

    def _auth_error(self, request: web.Request) -> str | None:
        h = request.headers
        auth = h.get("Authorization", "")
        jwt = auth[7:] if auth.startswith("Bearer ") else auth
        # The static demo tokens, or those of any live REST login.
        if jwt != self.creds.jwt and not self.rest.is_live_jwt(jwt):
            return "Invalid Header - Invalid Auth token"
        if h.get("x-client-code") != self.creds.client_code:
            return "Invalid Header - Invalid Client Code"
        if h.get("x-api-key") != self.creds.api_key:
            return "Invalid Header - Invalid API Key"
        feed = h.get("x-feed-token", "")
        if feed != self.creds.feed_token and not self.rest.is_live_feed_token(feed):
            return "Invalid Header - Invalid Feed Token"
        return None

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_handshakes:
            return web.Response(status=503, text="simulator refusing connections")
        error = self._auth_error(request)
        if error:
            self.log.warning("sim.auth_rejected", reason=error)
            return web.Response(status=401, headers={"x-error-message": error})
        client = request.headers["x-client-code"]
        if sum(1 for c in self.connections if c.client_code == client) >= MAX_SOCKETS_PER_CLIENT:
            return web.Response(status=429, text="Too Many Requests")
        ws = web.WebSocketResponse(autoping=True, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = StreamConnection(ws=ws, client_code=client)
        self.connections.append(conn)
        self.log.info("sim.client_connected", sockets=len(self.connections))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(conn, msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.connections.remove(conn)
            self.log.info("sim.client_disconnected", sockets=len(self.connections))
        return ws

    async def _on_text(self, conn: StreamConnection, text: str) -> None:
        if text == "ping":
            if not self.frozen:
                await conn.ws.send_str("pong")
            return
        try:
            req = p.parse_subscription(text)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.text_errors["E1001"] += 1
            await conn.ws.send_str(p.error_frame(*p.E_INVALID_PAYLOAD))
            return
        if req.action not in (p.SUBSCRIBE, p.UNSUBSCRIBE) or req.mode not in (1, 2, 3, 4):
            self.text_errors["E1001"] += 1
            await conn.ws.send_str(p.error_frame(*p.E_INVALID_PAYLOAD, req.correlation_id))
            return
        if req.action == p.UNSUBSCRIBE:
            for _, tokens in req.token_list:
                for t in tokens:
                    conn.tokens.get(t, set()).discard(req.mode)
            return
        await self._subscribe(conn, req)

    async def _subscribe(self, conn: StreamConnection, req: p.SubscriptionRequest) -> None:
        new_pairs = {
            t
            for _, tokens in req.token_list
            for t in tokens
            if req.mode not in conn.tokens.get(t, ())
        }
        if conn.pairs + len(new_pairs) > MAX_PAIRS_PER_SOCKET:
            self.text_errors["E1002"] += 1
            await conn.ws.send_str(p.error_frame(*p.E_LIMIT_EXCEEDED, req.correlation_id))
            return
        for exch, tokens in req.token_list:
            for t in tokens:
                conn.subscribe_log.append((req.mode, exch, t))
                conn.tokens[t].add(req.mode)
        # Like Angel, a new subscription gets the instrument's current state straight away.
        if not self.frozen:
            for t in sorted(new_pairs):
                snap = self.market.snapshot(t)
                if snap is not None:
                    await self._send(conn, req.mode, snap)

    # ---- streaming ----------------------------------------------------------------------

    async def _stream_market(self) -> None:
        market = self.market
        clock = self.clock
        while True:
            packets = market.advance(clock.now_ns())
            self.rest.on_market()
            self._log_new_truth()
            if not self.frozen and self.connections:
                for token, frame in packets:
                    await self._fan_out(token, frame)
            delay = clock.wall_seconds_until(market.next_event_ns())
            await asyncio.sleep(delay)

    async def _stream_tape(self) -> None:
        """Stream recorded packets at the tape source's rate instead of the live market."""
        assert self.tape_source is not None  # noqa: S101 — chosen by start()
        async for token, frame in self.tape_source.packets():
            if not self.frozen and self.connections:
                await self._fan_out(token, frame)

    async def _fan_out(self, token: str, frame: bytes) -> None:
        # Copies: a send awaits, and meanwhile a client may unsubscribe or disconnect.
        for conn in list(self.connections):
            modes = conn.tokens.get(token)
            if not modes or conn.ws.closed:
                continue
            for mode in tuple(modes):
                if not await self._send(conn, mode, frame):
                    break

    async def _send(self, conn: StreamConnection, mode: int, snap: bytes) -> bool:
        """Send a SNAP_QUOTE packet cut down to ``mode``; False when the socket is gone."""
        if mode == p.Mode.SNAP_QUOTE:
            out = snap
        elif mode == p.Mode.QUOTE:
            out = b"\x02" + snap[1:123]
        elif mode == p.Mode.LTP:
            out = b"\x01" + snap[1:51]
        else:
            return True  # DEPTH-20 is deprecated and never covered F&O
        try:
            await conn.ws.send_bytes(out)
        except ConnectionError:
            return False
        conn.frames_sent += 1
        self.frames_sent += 1
        return True

    def _log_new_truth(self) -> None:
        truth = self.market.ground_truth
        while self._truth_logged < len(truth):
            self.log.info("sim.scenario", **truth[self._truth_logged].to_dict())
            self._truth_logged += 1


def session_start(start_ist: str, now_ns: int | None = None) -> tuple[int, dt.date]:
    """Return (epoch ns, date) of ``start_ist`` on today's IST date, or the next weekday's."""
    now = ist_datetime(time.time_ns() if now_ns is None else now_ns)
    day = now.date()
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    hh, mm = (int(x) for x in start_ist.split(":")[:2])
    return ns_at_ist(day, dt.time(hh, mm)), day


def resume_session(start_ns: int, last_ns: int) -> int:
    """Where a restarted session's clock starts.

    A second after ``last_ns`` (the last time the daemon wrote) when that is later on the same
    IST day, else ``start_ns``. A restart then continues the session instead of replaying it:
    journal times never go back.
    """
    if last_ns >= start_ns and ist_datetime(last_ns).date() == ist_datetime(start_ns).date():
        return last_ns + 1_000_000_000
    return start_ns
