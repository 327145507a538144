"""A loopback fault proxy between a SmartStream client and the simulator.

Faults are injected from outside the client, on the wire, the way a broken network or an unhappy
server would show them:

* ``drop_data``: swallow every binary (market data) frame while text frames — ``pong``, error
  replies — still pass: the socket looks alive and carries nothing.
* ``drop_tokens``: swallow binary frames of these tokens only (one contract goes quiet).
* ``reject_subscribe``: answer every subscribe request with that error code (``E1002``...) and
  the request's correlation id, as Angel does, instead of forwarding it.
* ``delay_s``: hold every frame, both ways, this long (order is kept).
* ``cut()``: abort every proxied socket without a close handshake.

Plain HTTP (the scrip master) is forwarded as is, so a daemon can use the proxy as its
``sim.external_url``. WebSocket handshake failures (401 with ``x-error-message``, 429) are passed
back with their status. Counters in ``counts`` say what the proxy did.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec
from aiohttp import WSMsgType, web

from smartflow.feed import protocol as p


FORWARDED_HEADERS = ("Authorization", "x-api-key", "x-client-code", "x-feed-token")
LIMIT_MESSAGE = dict([p.E_LIMIT_EXCEEDED, p.E_INVALID_PAYLOAD])


@dataclass
class _Link:
    """One proxied socket: the client's side, the server's side, and the pumps between them."""

    down: web.WebSocketResponse
    up: aiohttp.ClientWebSocketResponse
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        transport = self.down._req.transport if self.down._req else None
        if transport is not None:
            transport.abort()
        for t in self.tasks:
            t.cancel()


class FaultProxy:
    """Proxies ``upstream`` (an ``http://host:port`` root) on a free loopback port."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.drop_data = False
        self.drop_tokens: set[str] = set()
        self.reject_subscribe: str | None = None
        self.delay_s = 0.0
        self.counts: Counter[str] = Counter()
        self.port = 0
        self._links: list[_Link] = []
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    @property
    def http_url(self) -> str:
        """The proxy's HTTP root (use as ``sim.external_url``)."""
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, path: str) -> str:
        """The proxied WebSocket URL of ``path`` (e.g. ``/smart-stream``)."""
        return f"ws://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        """Listen on 127.0.0.1 on a free port."""
        self._http = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Drop every link and stop listening."""
        self.cut()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    def cut(self) -> None:
        """Abort every proxied socket (both ends see the connection drop)."""
        for link in list(self._links):
            self.counts["cut"] += 1
            link.abort()

    @property
    def sockets(self) -> int:
        """Sockets currently proxied."""
        return len(self._links)

    # ---- handlers -----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._http is not None
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        async with self._http.request(
            request.method,
            self.upstream + request.path_qs,
            data=await request.read(),
            headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
        ) as r:
            body = await r.read()
            return web.Response(
                body=body, status=r.status, headers={"Content-Type": r.content_type}
            )

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        assert self._http is not None
        headers = {h: request.headers[h] for h in FORWARDED_HEADERS if h in request.headers}
        url = "ws" + self.upstream.removeprefix("http") + request.path_qs
        try:
            up = await self._http.ws_connect(url, headers=headers, autoping=True)
        except aiohttp.WSServerHandshakeError as e:
            self.counts["handshake_refused"] += 1
            passed = {}
            if e.headers is not None and "x-error-message" in e.headers:
                passed["x-error-message"] = e.headers["x-error-message"]
            return web.Response(status=e.status, headers=passed)
        down = web.WebSocketResponse(autoping=True, max_msg_size=1 << 20)
        await down.prepare(request)
        link = _Link(down, up)
        self._links.append(link)
        self.counts["connections"] += 1
        to_client: asyncio.Queue[tuple[float, Any]] = asyncio.Queue()
        to_server: asyncio.Queue[tuple[float, Any]] = asyncio.Queue()
        link.tasks = [
            asyncio.create_task(self._from_client(link, to_server, to_client)),
            asyncio.create_task(self._from_server(link, to_client)),
            asyncio.create_task(self._deliver(to_client, down)),
            asyncio.create_task(self._deliver(to_server, up)),
        ]
        try:
            await asyncio.wait(link.tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            link.abort()
            await asyncio.gather(*link.tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await up.close()
            self._links.remove(link)
        return down

    def _at(self) -> float:
        return asyncio.get_running_loop().time() + self.delay_s

    async def _from_client(
        self,
        link: _Link,
        to_server: asyncio.Queue[tuple[float, Any]],
        to_client: asyncio.Queue[tuple[float, Any]],
    ) -> None:
        async for msg in link.down:
            if msg.type == WSMsgType.TEXT:
                refusal = self._refusal(msg.data)
                if refusal is not None:
                    self.counts["subscribe_rejected"] += 1
                    await to_client.put((self._at(), refusal))
                    continue
                await to_server.put((self._at(), msg.data))
            elif msg.type == WSMsgType.BINARY:
                await to_server.put((self._at(), msg.data))
            else:
                break

    def _refusal(self, text: str) -> str | None:
        """The error frame that answers ``text`` instead of the server, if it is refused."""
        code = self.reject_subscribe
        if code is None or text == "ping":
            return None
        try:
            req = p.parse_subscription(text)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        if req.action != p.SUBSCRIBE:
            return None
        return p.error_frame(code, LIMIT_MESSAGE.get(code, "Rejected"), req.correlation_id)

    async def _from_server(self, link: _Link, to_client: asyncio.Queue[tuple[float, Any]]) -> None:
        async for msg in link.up:
            if msg.type == WSMsgType.TEXT:
                self.counts["text_passed"] += 1
                if msg.data == "pong":
                    self.counts["pongs_passed"] += 1
                await to_client.put((self._at(), msg.data))
            elif msg.type == WSMsgType.BINARY:
                frame: bytes = msg.data
                token = frame[2:27].split(b"\0", 1)[0].decode("ascii", "replace")
                if self.drop_data or token in self.drop_tokens:
                    self.counts["data_dropped"] += 1
                    continue
                self.counts["data_passed"] += 1
                await to_client.put((self._at(), frame))
            else:
                break

    async def _deliver(
        self,
        queue: asyncio.Queue[tuple[float, Any]],
        ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            at, data = await queue.get()
            wait = at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if isinstance(data, str):
                await ws.send_str(data)
            else:
                await ws.send_bytes(data)
