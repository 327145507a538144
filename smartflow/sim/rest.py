"""The simulator's REST side and order-update socket, with Angel's paths, envelopes and quirks.

Mounted on the ``SimServer``'s aiohttp app. What it copies from Angel (angel-smartapi.md §1, §3,
§4):

* **Login** (``loginByPassword``) checks client code, PIN and a real TOTP
  (``pyotp.TOTP(secret).verify(code, valid_window=1)``) and issues fresh JWT-shaped jwt, refresh
  and feed tokens (no ``Bearer`` prefix). Earlier sessions stay valid until ``logout`` (which ends
  every session of the client) or an injected expiry; SmartStream accepts any live session's
  tokens. ``generateTokens``, ``getProfile`` and ``logout`` behave as documented.
* **Secure routes** need ``X-PrivateKey`` (the api key), ``X-UserType: USER``, ``X-SourceID: WEB``
  and ``Authorization: Bearer <jwt>``. A bad or expired JWT gets the *gateway* envelope
  ``{"success": false, "message": "Invalid Token", "errorCode": "AG8001", "data": ""}`` (HTTP 401;
  Angel's status code is undocumented), everything else the API envelope
  ``{"status", "message", "errorcode", "data"}``.
* **Orders** are validated and matched by ``SimOms`` (LIMIT/DAY only). place + modify + cancel
  share 9 requests per second per client code in a sliding window; the excess gets HTTP 403 with
  the plain text ``Access denied because of exceeding rate limit`` and has no effect.
* **Historical OI** (``historical/v1/getOIData``, body ``exchange, symboltoken, interval,
  fromdate, todate`` as ``YYYY-MM-DD HH:MM`` IST): ``data`` is a list of ``{"time", "oi"}``
  records, here the previous session's closing OI of the contract when that session lies in the
  range (``time`` its 15:30 close, or midnight for ``ONE_DAY``), else ``[]``. Angel does not
  publish this endpoint's rate limit; the simulator applies getCandleData's 3 requests per second
  (angel-smartapi.md §4.7) per client code and answers the excess like an order over budget.
* **Order updates** at ``/smart-order-update`` (``Authorization: Bearer <jwt>``; 401 for an unknown
  token, 403 for an expired one, 429 past three sockets per client): an ``AB00`` frame first, then
  one message per status change with ``orderData``; text ``ping`` is answered ``pong``.

Faults for tests (``inject(endpoint, fault, count)``), each consumed by the next matching request:

==========================  ===============================================================
``timeout``                 the request takes effect; the reply is held back ``fault_delay_s``
``empty_200``               takes effect; HTTP 200 with an empty body
``http_500_accepted``       takes effect; HTTP 500 with an HTML page
``http_500_not_accepted``   no effect; HTTP 500 with an HTML page
``non_json``                takes effect; HTTP 200 with an HTML page
``disconnect``              takes effect; the TCP connection is aborted without a reply
``rate_limit``              no effect; HTTP 403 plain-text rate-limit reply
``reject``                  no effect; JSON failure envelope (``AB1007`` unless told otherwise)
``ag7002``                  no effect; gateway envelope AG7002 "Unregistered IP address" (403)
``expire_token``            the presented JWT's session expires first, so the call gets AG8001
==========================  ===============================================================

Every request is appended to ``requests`` (endpoint, body, fault, reply status, effect) so tests
can assert "placed exactly once".
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
import pyotp
from aiohttp import WSMsgType, web

from smartflow.sim.oms import Refusal, SimOms, SimOrder


if TYPE_CHECKING:
    from smartflow.core.clock import ScaledClock
    from smartflow.sim.market import Market


AUTH_ROOT = "/rest/auth/angelbroking"
SECURE_ROOT = "/rest/secure/angelbroking"
LOGIN_PATH = f"{AUTH_ROOT}/user/v1/loginByPassword"
TOKENS_PATH = f"{AUTH_ROOT}/jwt/v1/generateTokens"
PROFILE_PATH = f"{SECURE_ROOT}/user/v1/getProfile"
LOGOUT_PATH = f"{SECURE_ROOT}/user/v1/logout"
ORDER_ROOT = f"{SECURE_ROOT}/order/v1"
ORDER_UPDATE_PATH = "/smart-order-update"

HISTORICAL_OI_PATH = f"{SECURE_ROOT}/historical/v1/getOIData"
ORDER_ENDPOINTS = ("placeOrder", "modifyOrder", "cancelOrder")
READ_ENDPOINTS = ("getOrderBook", "getTradeBook", "getPosition", "details")
ENDPOINTS = (
    "loginByPassword",
    "generateTokens",
    "getProfile",
    "logout",
    *ORDER_ENDPOINTS,
    *READ_ENDPOINTS,
    "getOIData",
)
INTERVALS = {
    "ONE_MINUTE": 1,
    "THREE_MINUTE": 3,
    "FIVE_MINUTE": 5,
    "TEN_MINUTE": 10,
    "FIFTEEN_MINUTE": 15,
    "THIRTY_MINUTE": 30,
    "ONE_HOUR": 60,
    "ONE_DAY": 0,
}
FAULTS = (
    "timeout",
    "empty_200",
    "http_500_accepted",
    "http_500_not_accepted",
    "non_json",
    "disconnect",
    "rate_limit",
    "reject",
    "ag7002",
    "expire_token",
)
RATE_LIMIT_TEXT = "Access denied because of exceeding rate limit"
MAX_UPDATE_SOCKETS = 3
_HTML = (
    b"<html><head><title>Request Rejected</title></head>"
    b"<body>The requested URL was rejected.</body></html>"
)
_ENC = msgspec.json.Encoder()


@dataclass(frozen=True)
class SimCredentials:
    """The simulator's demo account. Public test values, not secrets."""

    api_key: str = "sim-api-key"
    client_code: str = "S1234567"
    pin: str = "1234"
    # 32 base32 characters (160 bits): pyotp >= 2.10 refuses secrets under 112 bits.
    totp_secret: str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    jwt: str = "sim-jwt-token"
    refresh_token: str = "sim-refresh-token"
    feed_token: str = "sim-feed-token"


@dataclass
class SimSession:
    """One login's tokens."""

    n: int
    client_code: str
    jwt: str
    refresh: str
    feed: str
    valid: bool = True


@dataclass
class SimRequest:
    """One request as the simulator received it (for tests)."""

    n: int
    endpoint: str
    method: str
    body: dict[str, Any]
    fault: str | None = None
    http_status: int = 0
    effect: bool = False
    orderid: str = ""

    @property
    def tag(self) -> str:
        """The request's ``ordertag`` (placeOrder)."""
        return str(self.body.get("ordertag", ""))


@dataclass
class _Fault:
    kind: str
    code: str = "AB1007"
    message: str = "INVALID PARAMETERS"


@dataclass
class _UpdateSocket:
    client_code: str
    ws: web.WebSocketResponse
    queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)


Handler = Callable[[SimRequest, SimSession | None], tuple[int, Any]]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt_like(kind: str, client_code: str, n: int) -> str:
    # JWT-shaped like Angel's, so log redaction of JWT-looking strings is exercised too.
    head = _b64(b'{"alg":"HS512"}')
    body = _b64(_ENC.encode({"sub": client_code, "kind": kind, "n": n}))
    return f"{head}.{body}.{secrets.token_urlsafe(24)}"


def _need(s: SimSession | None) -> SimSession:
    # Secure routes only run after the session check; this narrows the type for them.
    if s is None:
        raise web.HTTPUnauthorized
    return s


def ok(data: Any) -> dict[str, Any]:
    """Angel's API success envelope."""
    return {"status": True, "message": "SUCCESS", "errorcode": "", "data": data}


def fail(code: str, message: str) -> dict[str, Any]:
    """Angel's API failure envelope."""
    return {"status": False, "message": message, "errorcode": code, "data": None}


def gateway_fail(code: str, message: str) -> dict[str, Any]:
    """Angel's gateway failure envelope (different keys, ``data: ""``)."""
    return {"success": False, "message": message, "errorCode": code, "data": ""}


class SimRest:
    """Angel's REST API and order-update socket over the simulated market."""

    def __init__(
        self,
        market: Market,
        clock: ScaledClock,
        creds: SimCredentials,
        log: Any,
        *,
        partial_fills: bool = False,
        orders_per_second: int = 9,
        historical_per_second: int = 3,
        fault_delay_s: float = 30.0,
    ) -> None:
        self.market = market
        self.creds = creds
        self.log = log
        self.oms = SimOms(market, clock.now_ns, self._on_order_change, partial_fills)
        self.orders_per_second = orders_per_second
        self.historical_per_second = historical_per_second
        self.fault_delay_s = fault_delay_s
        self.rate_clock: Callable[[], int] = time.monotonic_ns
        """Time source of the order rate limit; tests may freeze it."""
        self.requests: list[SimRequest] = []
        self.sessions: list[SimSession] = []
        self.update_messages: list[dict[str, Any]] = []
        self._by_jwt: dict[str, SimSession] = {}
        self._by_feed: dict[str, SimSession] = {}
        self._faults: dict[str, deque[_Fault]] = defaultdict(deque)
        self._stamps: dict[str, deque[int]] = defaultdict(deque)
        self._sockets: list[_UpdateSocket] = []
        self._released = asyncio.Event()

    # ---- wiring -------------------------------------------------------------------------

    def mount(self, app: web.Application) -> None:
        """Add every route to ``app``."""
        r = app.router
        r.add_post(LOGIN_PATH, self._route("loginByPassword", self._login, secure=False))
        r.add_post(TOKENS_PATH, self._route("generateTokens", self._generate_tokens))
        r.add_get(PROFILE_PATH, self._route("getProfile", self._profile))
        r.add_post(LOGOUT_PATH, self._route("logout", self._logout))
        for name in ORDER_ENDPOINTS:
            r.add_post(f"{ORDER_ROOT}/{name}", self._route(name, self._order, order=True))
        r.add_get(f"{ORDER_ROOT}/getOrderBook", self._route("getOrderBook", self._order_book))
        r.add_get(f"{ORDER_ROOT}/getTradeBook", self._route("getTradeBook", self._trade_book))
        r.add_get(f"{ORDER_ROOT}/getPosition", self._route("getPosition", self._positions))
        r.add_get(f"{ORDER_ROOT}/details/{{oid}}", self._route("details", self._details))
        r.add_get(ORDER_UPDATE_PATH, self._order_updates)
        r.add_post(HISTORICAL_OI_PATH, self._route("getOIData", self._oi_data, historical=True))

    def on_market(self) -> None:
        """Re-check resting orders; called by the server each time the market advances."""
        self.oms.on_market()

    async def close(self) -> None:
        """Release held-back replies and close order-update sockets."""
        self._released.set()
        for s in list(self._sockets):
            await s.ws.close()

    # ---- sessions -----------------------------------------------------------------------

    def _new_session(self, client_code: str) -> SimSession:
        n = len(self.sessions) + 1
        s = SimSession(
            n,
            client_code,
            _jwt_like("jwt", client_code, n),
            _jwt_like("refresh", client_code, n),
            _jwt_like("feed", client_code, n),
        )
        self.sessions.append(s)
        self._by_jwt[s.jwt] = s
        self._by_feed[s.feed] = s
        return s

    def is_live_jwt(self, jwt: str) -> bool:
        """Whether ``jwt`` belongs to a session that is still valid (SmartStream uses this)."""
        s = self._by_jwt.get(jwt)
        return s is not None and s.valid

    def is_live_feed_token(self, feed_token: str) -> bool:
        """Whether ``feed_token`` belongs to a session that is still valid."""
        s = self._by_feed.get(feed_token)
        return s is not None and s.valid

    def expire_current(self) -> None:
        """Expire the most recent valid session (its JWT now gets AG8001)."""
        for s in reversed(self.sessions):
            if s.valid:
                s.valid = False
                return

    # ---- faults and test views ----------------------------------------------------------

    def inject(
        self,
        endpoint: str,
        fault: str,
        count: int = 1,
        code: str = "AB1007",
        message: str = "INVALID PARAMETERS",
    ) -> None:
        """Make the next ``count`` requests to ``endpoint`` misbehave as ``fault``.

        Args:
            endpoint: last path segment, e.g. ``placeOrder``, ``getOrderBook``, ``details``.
            fault: one of ``FAULTS`` (see the module docstring).
            count: how many requests it applies to.
            code: error code of a ``reject`` fault.
            message: message of a ``reject`` fault.
        """
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}")
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        for _ in range(count):
            self._faults[endpoint].append(_Fault(fault, code, message))

    def requests_to(self, endpoint: str, tag: str | None = None) -> list[SimRequest]:
        """Requests received for ``endpoint`` (with ``ordertag`` ``tag``)."""
        return [
            r for r in self.requests if r.endpoint == endpoint and (tag is None or r.tag == tag)
        ]

    def orders_with_tag(self, tag: str) -> list[SimOrder]:
        """Orders in the book carrying ``tag``."""
        return self.oms.with_tag(tag)

    # ---- request plumbing ---------------------------------------------------------------

    def _route(
        self,
        endpoint: str,
        fn: Handler,
        *,
        secure: bool = True,
        order: bool = False,
        historical: bool = False,
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            raw = await request.read()
            body: Any = {}
            if raw.strip():
                try:
                    body = msgspec.json.decode(raw)
                except msgspec.DecodeError:
                    body = None
            if request.match_info.get("oid"):
                body = {"orderid": request.match_info["oid"]}
            rec = SimRequest(len(self.requests) + 1, endpoint, request.method, body or {})
            self.requests.append(rec)
            resp = await self._serve(
                request, rec, body, fn, secure=secure, order=order, historical=historical
            )
            rec.http_status = resp.status
            return resp

        return handle

    async def _serve(
        self,
        request: web.Request,
        rec: SimRequest,
        body: Any,
        fn: Handler,
        *,
        secure: bool,
        order: bool,
        historical: bool = False,
    ) -> web.StreamResponse:
        queue = self._faults.get(rec.endpoint)
        fault = queue.popleft() if queue else None
        rec.fault = fault.kind if fault else None
        if fault and fault.kind == "expire_token":
            s = self._by_jwt.get(self._bearer(request))
            if s is not None:
                s.valid = False
        early = self._early_fault(fault)
        if early is not None:
            return early
        refused = self._check_headers(request)
        if refused is not None:
            return refused
        session = None
        if secure:
            session = self._by_jwt.get(self._bearer(request))
            if session is None or not session.valid:
                return web.json_response(gateway_fail("AG8001", "Invalid Token"), status=401)
        if not isinstance(body, dict):
            return web.json_response(fail("AB1007", "Invalid request: body is not JSON"))
        if order and session is not None and not self._take_budget(session.client_code):
            return web.Response(status=403, text=RATE_LIMIT_TEXT)
        if (
            historical
            and session is not None
            and not self._take_budget(
                "historical:" + session.client_code, self.historical_per_second
            )
        ):
            return web.Response(status=403, text=RATE_LIMIT_TEXT)
        status, payload = fn(rec, session)
        return await self._late_fault(fault, request, web.json_response(payload, status=status))

    @staticmethod
    def _bearer(request: web.Request) -> str:
        auth = request.headers.get("Authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else ""

    def _check_headers(self, request: web.Request) -> web.Response | None:
        h = request.headers
        if h.get("X-PrivateKey") != self.creds.api_key:
            return web.json_response(gateway_fail("AG8004", "Invalid API Key"), status=403)
        if h.get("X-UserType") != "USER":
            return web.json_response(fail("AB1005", "User Type Must Be USER"))
        if h.get("X-SourceID") != "WEB":
            return web.json_response(fail("AB1007", "Invalid Source ID"))
        return None

    @staticmethod
    def _early_fault(fault: _Fault | None) -> web.Response | None:
        kind = fault.kind if fault else None
        if fault is None or kind in (None, "expire_token"):
            return None
        if kind == "rate_limit":
            return web.Response(status=403, text=RATE_LIMIT_TEXT)
        if kind == "reject":
            return web.json_response(fail(fault.code, fault.message))
        if kind == "ag7002":
            msg = "Access denied: Unregistered IP address. Register your IP before retrying."
            return web.json_response(gateway_fail("AG7002", msg), status=403)
        if kind == "http_500_not_accepted":
            return web.Response(status=500, body=_HTML, content_type="text/html")
        return None

    async def _late_fault(
        self, fault: _Fault | None, request: web.Request, resp: web.Response
    ) -> web.StreamResponse:
        kind = fault.kind if fault else None
        if kind == "timeout":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), self.fault_delay_s)
        elif kind == "empty_200":
            return web.Response(status=200, body=b"", content_type="application/json")
        elif kind == "http_500_accepted":
            return web.Response(status=500, body=_HTML, content_type="text/html")
        elif kind == "non_json":
            return web.Response(status=200, body=_HTML, content_type="text/html")
        elif kind == "disconnect" and request.transport is not None:
            request.transport.abort()
        return resp

    def _take_budget(self, key: str, per_second: int | None = None) -> bool:
        now = self.rate_clock()
        stamps = self._stamps[key]
        while stamps and stamps[0] <= now - 1_000_000_000:
            stamps.popleft()
        if len(stamps) >= (per_second or self.orders_per_second):
            return False
        stamps.append(now)
        return True

    # ---- user routes --------------------------------------------------------------------

    def _login(self, rec: SimRequest, _s: SimSession | None) -> tuple[int, Any]:
        c = self.creds
        b = rec.body
        if str(b.get("clientcode", "")) != c.client_code or str(b.get("password", "")) != c.pin:
            return 200, fail("AB1007", "Login Id or password is invalid")
        if not pyotp.TOTP(c.totp_secret).verify(str(b.get("totp", "")), valid_window=1):
            return 200, fail("AB1050", "Invalid totp")
        s = self._new_session(c.client_code)
        rec.effect = True
        self.log.info("sim.rest_login", session=s.n)
        data = {"jwtToken": s.jwt, "refreshToken": s.refresh, "feedToken": s.feed}
        return 200, ok({**data, "state": str(b.get("state", ""))})

    def _generate_tokens(self, rec: SimRequest, s: SimSession | None) -> tuple[int, Any]:
        s = _need(s)
        if str(rec.body.get("refreshToken", "")) != s.refresh:
            return 200, fail("AB8050", "Invalid Refresh Token")
        new = self._new_session(s.client_code)
        rec.effect = True
        return 200, ok({"jwtToken": new.jwt, "refreshToken": new.refresh, "feedToken": new.feed})

    def _profile(self, _rec: SimRequest, s: SimSession | None) -> tuple[int, Any]:
        s = _need(s)
        return 200, ok(
            {
                "clientcode": s.client_code,
                "name": "SIM USER",
                "email": "",
                "mobileno": "",
                "exchanges": ["NSE", "NFO", "BSE", "BFO"],
                "products": ["CARRYFORWARD", "INTRADAY", "DELIVERY", "MARGIN"],
                "lastlogintime": "",
                "brokerid": "B2C",
            }
        )

    def _logout(self, rec: SimRequest, s: SimSession | None) -> tuple[int, Any]:
        s = _need(s)
        for other in self.sessions:
            if other.client_code == s.client_code:
                other.valid = False
        rec.effect = True
        return 200, ok("")

    # ---- order routes -------------------------------------------------------------------

    def _order(self, rec: SimRequest, s: SimSession | None) -> tuple[int, Any]:
        s = _need(s)
        action = {
            "placeOrder": self.oms.place,
            "modifyOrder": self.oms.modify,
            "cancelOrder": self.oms.cancel,
        }[rec.endpoint]
        result = action(s.client_code, rec.body)
        if isinstance(result, Refusal):
            return 200, fail(result.code, result.message)
        rec.effect = True
        rec.orderid = result.orderid
        data: dict[str, Any] = {"orderid": result.orderid, "uniqueorderid": result.uniqueorderid}
        if rec.endpoint == "placeOrder":
            data = {"script": result.contract.inst.symbol, **data}
        return 200, ok(data)

    def _order_book(self, _rec: SimRequest, s: SimSession | None) -> tuple[int, Any]:
        s = _need(s)
        rows = [o.record("book") for o in self.oms.of(s.client_code)]
        # Angel sends null rather than [] for an empty book (angel-smartapi.md §4.5).
        return 200, ok(rows or None)

    def _trade_book(self, _rec: SimRequest, s: SimSession | None) -> tuple[int, Any]:
        s = _need(s)
        return 200, ok(self.oms.trades(s.client_code) or None)

    def _positions(self, _rec: SimRequest, s: SimSession | None) -> tuple[int, Any]:
        s = _need(s)
        return 200, ok(self.oms.positions(s.client_code) or None)

    def _details(self, rec: SimRequest, s: SimSession | None) -> tuple[int, Any]:
        s = _need(s)
        o = self.oms.find(s.client_code, str(rec.body.get("orderid", "")))
        if o is None:
            return 200, fail("AB1013", "Order not found")
        return 200, ok(o.record("details"))

    # ---- historical OI ------------------------------------------------------------------

    def _oi_data(self, rec: SimRequest, s: SimSession | None) -> tuple[int, Any]:
        _need(s)
        b = rec.body
        interval = str(b.get("interval", ""))
        if interval not in INTERVALS:
            return 200, fail("AB1007", f"Invalid interval {interval!r}")
        try:
            lo = dt.datetime.strptime(str(b.get("fromdate", "")), "%Y-%m-%d %H:%M")
            hi = dt.datetime.strptime(str(b.get("todate", "")), "%Y-%m-%d %H:%M")
        except ValueError:
            return 200, fail("AB1007", "Invalid date format, expected yyyy-MM-dd HH:mm")
        token = str(b.get("symboltoken", ""))
        oi = self.market.prev_close_oi(token)
        inst = self.market.by_token[token].inst if oi is not None else None
        if inst is None or inst.segment != str(b.get("exchange", "")):
            return 200, fail("AB1018", "Failed to get symbol details")
        day = self.market.prev_session_date()
        minutes = INTERVALS[interval]
        close = dt.datetime.combine(day, dt.time(15, 30))
        stamp = (
            close - dt.timedelta(minutes=minutes)
            if minutes
            else dt.datetime.combine(day, dt.time())
        )
        if not lo <= close <= hi and not lo <= stamp <= hi:
            return 200, ok([])
        return 200, ok([{"time": stamp.strftime("%Y-%m-%dT%H:%M:%S+05:30"), "oi": oi}])

    # ---- order-update socket ------------------------------------------------------------

    def _on_order_change(self, o: SimOrder, code: str) -> None:
        msg = {
            "user-id": o.client_code,
            "status-code": "200",
            "order-status": code,
            "error-message": "",
            "orderData": o.record("stream"),
        }
        self.update_messages.append(msg)
        text = _ENC.encode(msg).decode()
        for sock in self._sockets:
            if sock.client_code == o.client_code:
                sock.queue.put_nowait(text)
        self.log.info(
            "sim.order", orderid=o.orderid, tag=o.tag, status=o.status, code=code, filled=o.filled
        )

    async def _order_updates(self, request: web.Request) -> web.StreamResponse:
        jwt = self._bearer(request)
        s = self._by_jwt.get(jwt)
        if s is None:
            return web.Response(status=401, text="Unauthorized")
        if not s.valid:
            return web.Response(status=403, text="Token expired")
        if sum(1 for x in self._sockets if x.client_code == s.client_code) >= MAX_UPDATE_SOCKETS:
            return web.Response(status=429, text="Too Many Requests")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        sock = _UpdateSocket(s.client_code, ws)
        self._sockets.append(sock)
        empty = {k: "" for k in ("variety", "ordertype", "ordertag", "orderid", "status", "text")}
        hello = {
            "user-id": s.client_code,
            "status-code": "200",
            "order-status": "AB00",
            "error-message": "",
            "orderData": {**empty, "price": 0, "quantity": "0", "filledshares": ""},
        }
        sock.queue.put_nowait(_ENC.encode(hello).decode())
        writer = asyncio.create_task(self._write_updates(sock), name="sim-order-updates")
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and msg.data == "ping":
                    sock.queue.put_nowait("pong")
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            self._sockets.remove(sock)
        return ws

    @staticmethod
    async def _write_updates(sock: _UpdateSocket) -> None:
        # One writer per socket, so update frames and pongs never interleave mid-send.
        while True:
            text = await sock.queue.get()
            try:
                await sock.ws.send_str(text)
            except ConnectionError:
                return
