"""Angel One session: TOTP login, tokens, daily schedule, SmartStream auth; asyncio over aiohttp.

``AngelSession`` owns the HTTP client and the day's tokens: login (client code + PIN + a pyotp
TOTP), ``generateTokens``, logout, re-login after AG8001/AG8002 (concurrent callers share one
login), the daily login-before-09:00 / logout-after-close schedule, and the SmartStream headers
provider and auth-failure hook ``FeedSession`` takes (structurally typed: ``orders`` may not
import ``feed``). ``orders/angel.py`` builds the ``BrokerPort`` on top of it.

The order body builders live here too, so the LIMIT/DAY invariant sits next to the constants.

Secrets (``Secret`` objects) are revealed only while a request body or header is built; no log
line or exception message carries the JWT, refresh/feed token, PIN, TOTP or API key.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import msgspec
import pyotp
import structlog

from smartflow.config import Credentials, OrdersConfig, Secret
from smartflow.core.clock import Clock
from smartflow.core.errors import AuthError, FatalError, TransientError
from smartflow.core.timeutil import ist_datetime, ns_at_ist
from smartflow.orders import angel_wire as w
from smartflow.orders.port import PlaceRequest


LOGIN_PATH = "/rest/auth/angelbroking/user/v1/loginByPassword"
TOKENS_PATH = "/rest/auth/angelbroking/jwt/v1/generateTokens"
PROFILE_PATH = "/rest/secure/angelbroking/user/v1/getProfile"
LOGOUT_PATH = "/rest/secure/angelbroking/user/v1/logout"
ORDER_ROOT = "/rest/secure/angelbroking/order/v1"

# Only LIMIT/DAY orders leave this module: MARKET and IOC are prohibited for algos (§7).
ORDER_TYPE = "LIMIT"
DURATION = "DAY"
VARIETY = "NORMAL"

NETWORK_ERRORS = (aiohttp.ClientError, OSError)

LoginListener = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class _Tokens:
    jwt: Secret
    refresh: Secret
    feed: Secret
    generation: int
    issued_mono: float


class AngelSession:
    """Login, tokens and the HTTP client of one Angel client code.

    Args:
        creds: api key, client code, PIN and TOTP secret (``Secret`` values).
        cfg: ``[orders]``: ``rest_url`` and ``request_timeout_s`` are used.
        log: bound structlog logger.
        min_relogin_interval_s: a SmartStream 401 re-logs in only when the tokens are older than
            this; younger tokens are retried as they are (several sockets fail at once).
        max_fresh_rejections: SmartStream 401s on young tokens tolerated before ``AuthError``.
        min_login_spacing_s: logins are at least this far apart (Angel allows one per second).
    """

    def __init__(
        self,
        creds: Credentials,
        cfg: OrdersConfig,
        log: Any = None,
        *,
        min_relogin_interval_s: float = 5.0,
        max_fresh_rejections: int = 10,
        min_login_spacing_s: float = 1.0,
    ) -> None:
        missing = creds.missing()
        if missing:
            raise AuthError(f"Angel credentials missing: {', '.join(missing)}")
        self._creds = creds
        self.cfg = cfg
        self.base_url = cfg.rest_url.rstrip("/")
        self.log = log or structlog.get_logger().bind(stage="orders")
        self.min_relogin_interval_s = min_relogin_interval_s
        self.max_fresh_rejections = max_fresh_rejections
        self.logins = 0
        self._http: aiohttp.ClientSession | None = None
        self._tokens: _Tokens | None = None
        self._generation = 0
        self._lock = asyncio.Lock()
        self._fresh_rejections = 0
        self._listeners: list[LoginListener] = []
        self.min_login_spacing_s = min_login_spacing_s
        self._last_login_mono = -1e9
        self._logged_out = False

    # ---- state --------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """Increments with every login or refresh; 0 before the first."""
        return self._tokens.generation if self._tokens else 0

    @property
    def is_logged_in(self) -> bool:
        """Whether tokens are held (they may still have expired server-side)."""
        return self._tokens is not None

    @property
    def is_logged_out(self) -> bool:
        """``logout()`` was called and no explicit ``login()`` since: no automatic logins."""
        return self._logged_out

    def _secret(self, name: str) -> Secret:
        value = getattr(self._creds, name)
        if value is None:  # excluded by the constructor; keeps the type narrow
            raise AuthError(f"Angel credential {name} missing")
        return value  # type: ignore[no-any-return]

    def add_login_listener(self, listener: LoginListener) -> None:
        """Call ``listener(generation)`` after every login/refresh (sockets reconnect on it)."""
        self._listeners.append(listener)

    # ---- HTTP ---------------------------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.cfg.request_timeout_s),
                # No proxies from the environment: the order path must leave from the static IP.
                trust_env=False,
            )
        return self._http

    def headers(self, with_auth: bool = True) -> dict[str, str]:
        """The §1.3 headers; IP/MAC are OpenAlgo's placeholders (Angel checks the TCP source IP).

        Contains credentials: pass straight to the request, never log it.
        """
        h = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-UserType": "USER",
            "X-SourceID": "WEB",
            "X-ClientLocalIP": "CLIENT_LOCAL_IP",
            "X-ClientPublicIP": "CLIENT_PUBLIC_IP",
            "X-MACAddress": "MAC_ADDRESS",
            "X-PrivateKey": self._secret("api_key").reveal(),
        }
        if with_auth and self._tokens is not None:
            h["Authorization"] = f"Bearer {self._tokens.jwt.reveal()}"
        return h

    async def send(
        self, method: str, path: str, body: dict[str, str] | None = None, *, auth: bool = True
    ) -> tuple[int, bytes, int]:
        """One request; returns (HTTP status, body, token generation used).

        Raises:
            TimeoutError: no complete reply within ``request_timeout_s``.
            aiohttp.ClientError, OSError: the connection failed or dropped.
            AuthError, TransientError: a needed login failed.
        """
        if auth and self._tokens is None:
            await self.ensure_login()
        generation = self.generation
        data = w.ENCODER.encode(body) if body is not None else None
        async with self._client().request(
            method, self.base_url + path, data=data, headers=self.headers(auth)
        ) as resp:
            raw = await resp.read()
            return resp.status, raw, generation

    # ---- login, refresh, logout ---------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP client and log in if no tokens are held."""
        self._client()
        await self.ensure_login()

    async def ensure_login(self) -> None:
        """Log in unless tokens are already held.

        Raises:
            TransientError: the session was logged out for the day (only ``login()`` or
                ``new_day()`` start it again), or the login hit network trouble.
            AuthError: Angel refused the credentials.
        """
        async with self._lock:
            if self._tokens is None:
                if self._logged_out:
                    raise TransientError("Angel session logged out for the day")
                await self._login_locked()

    async def login(self) -> None:
        """A fresh TOTP login; replaces all three tokens.

        Raises:
            AuthError: Angel refused the credentials (wrong PIN/TOTP, blocked client...).
            TransientError: network trouble or an unusable reply; retry later.
        """
        async with self._lock:
            await self._login_locked()

    async def relogin(self, stale_generation: int) -> None:
        """Log in again unless someone already did since ``stale_generation`` was in use.

        Raises:
            AuthError: Angel refused the credentials.
            TransientError: network trouble, or the session is logged out for the day.
        """
        async with self._lock:
            if self._logged_out:
                raise TransientError("Angel session logged out for the day")
            if self._tokens is not None and self._tokens.generation != stale_generation:
                return
            await self._login_locked()

    async def _login_locked(self) -> None:
        wait = self._last_login_mono + self.min_login_spacing_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_login_mono = time.monotonic()
        try:
            totp = pyotp.TOTP(self._secret("totp_secret").reveal()).now()
        except (ValueError, TypeError):
            # binascii/pyotp errors can quote the input: say what is wrong, never the value.
            raise AuthError(
                "the TOTP secret is not base32 of at least 112 bits (the QR code's secret)"
            ) from None
        body = {
            "clientcode": self._secret("client_code").reveal(),
            "password": self._secret("pin").reveal(),
            "totp": totp,
        }
        parsed = await self._auth_call(LOGIN_PATH, body, "login", with_auth=False)
        self._adopt(parsed, "login")
        self._logged_out = False
        self.logins += 1
        self.log.info("angel.logged_in", generation=self.generation, logins=self.logins)

    async def _auth_call(
        self, path: str, body: dict[str, str], what: str, with_auth: bool
    ) -> w.Parsed:
        try:
            status, raw, _ = await self.send("POST", path, body, auth=with_auth)
        except TimeoutError:
            raise TransientError(
                f"Angel {what}: no reply in {self.cfg.request_timeout_s} s"
            ) from None
        except NETWORK_ERRORS as e:
            raise TransientError(f"Angel {what}: {type(e).__name__}") from None
        parsed = w.classify(status, raw)
        if parsed.kind in ("failed", "auth"):
            raise AuthError(f"Angel refused the {what}: {parsed.code} {parsed.message}".strip())
        if parsed.kind != "ok":
            raise TransientError(f"Angel {what}: {parsed.kind} reply (HTTP {status})")
        return parsed

    def _adopt(self, parsed: w.Parsed, what: str) -> None:
        try:
            data = w.LOGIN_DATA.decode(parsed.data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            data = None
        if not isinstance(data, w.LoginData) or not data.jwtToken or not data.feedToken:
            raise TransientError(f"Angel {what}: success reply without tokens")
        jwt = data.jwtToken.removeprefix("Bearer ").strip()
        self._generation += 1
        self._tokens = _Tokens(
            Secret(jwt),
            Secret(data.refreshToken),
            Secret(data.feedToken),
            self._generation,
            time.monotonic(),
        )
        self._fresh_rejections = 0
        for listener in self._listeners:
            listener(self._generation)

    async def refresh(self) -> None:
        """``generateTokens``: swap all three tokens at once (sockets should then reconnect).

        Raises:
            AuthError: the refresh token was refused (log in instead).
            TransientError: network trouble.
        """
        async with self._lock:
            if self._tokens is None:
                await self._login_locked()
                return
            body = {"refreshToken": self._tokens.refresh.reveal()}
            parsed = await self._auth_call(TOKENS_PATH, body, "token refresh", with_auth=True)
            self._adopt(parsed, "token refresh")
            self.log.info("angel.tokens_refreshed", generation=self.generation)

    async def logout(self) -> bool:
        """End the session at Angel and drop the tokens; False if Angel did not confirm.

        Until the next explicit ``login()``/``new_day()`` nothing logs in automatically (orders
        are refused), as the exchanges' mandatory daily logout intends.
        """
        async with self._lock:
            if self._tokens is None:
                return True
            body = {"clientcode": self._secret("client_code").reveal()}
            try:
                await self._auth_call(LOGOUT_PATH, body, "logout", with_auth=True)
                confirmed = True
            except (AuthError, TransientError) as e:
                self.log.warning("angel.logout_unconfirmed", error=str(e))
                confirmed = False
            self._tokens = None
            self._logged_out = True
            self.log.info("angel.logged_out", confirmed=confirmed)
            return confirmed

    async def profile(self) -> dict[str, Any]:
        """``getProfile`` data (client code, name, exchanges, products...)."""
        try:
            status, raw, _ = await self.send("GET", PROFILE_PATH)
        except TimeoutError:
            raise TransientError("Angel getProfile: timed out") from None
        except NETWORK_ERRORS as e:
            raise TransientError(f"Angel getProfile: {type(e).__name__}") from None
        parsed = w.classify(status, raw)
        if parsed.kind != "ok":
            raise TransientError(f"Angel getProfile: {parsed.kind} {parsed.code}".strip())
        out: dict[str, Any] = msgspec.json.decode(parsed.data) or {}
        return out

    async def close(self) -> None:
        """Close the HTTP client (the session at Angel stays; see ``logout``)."""
        if self._http is not None:
            await self._http.close()
            self._http = None

    # ---- SmartStream --------------------------------------------------------------------

    async def stream_headers(self) -> dict[str, str]:
        """``FeedSession`` headers provider: the four SmartStream handshake headers.

        Logs in first when no tokens are held, so every reconnect uses the current feed token.
        After ``logout()`` it raises ``TransientError``: the daemon stops the feed before the
        daily logout.
        """
        await self.ensure_login()
        t = self._tokens
        if t is None:
            raise AuthError("Angel session has no tokens after login")
        return {
            "Authorization": f"Bearer {t.jwt.reveal()}",
            "x-api-key": self._secret("api_key").reveal(),
            "x-client-code": self._secret("client_code").reveal(),
            "x-feed-token": t.feed.reveal(),
        }

    def bearer_headers(self) -> dict[str, str]:
        """The order-update socket's handshake header (credential: do not log)."""
        if self._tokens is None:
            return {}
        return {"Authorization": f"Bearer {self._tokens.jwt.reveal()}"}

    async def relogin_for_stream(self, reason: str) -> None:
        """``FeedSession`` data-stall hook: a fresh login, so the next reconnect has new tokens.

        A socket silent after the daily token rollover is what this is for. Tokens issued within
        ``min_relogin_interval_s`` are kept (another socket's stall just renewed them).

        Raises:
            TransientError: the session is logged out for the day.
        """
        async with self._lock:
            if self._logged_out:
                raise TransientError("Angel session logged out for the day")
            t = self._tokens
            if t is None or time.monotonic() - t.issued_mono >= self.min_relogin_interval_s:
                self.log.warning("angel.stream_stall_relogin", reason=reason)
                await self._login_locked()

    async def on_stream_auth_failure(self, reason: str) -> None:
        """``FeedSession`` auth-failure hook: re-login, so the reconnect gets new tokens.

        Raises:
            AuthError: SmartStream keeps refusing freshly issued tokens, or the login failed.
            TransientError: the session is logged out for the day (stop the feed first).
        """
        async with self._lock:
            if self._logged_out:
                raise TransientError("Angel session logged out for the day")
            t = self._tokens
            if t is None or time.monotonic() - t.issued_mono >= self.min_relogin_interval_s:
                self.log.warning("angel.stream_auth_relogin", reason=reason)
                await self._login_locked()
                return
            self._fresh_rejections += 1
            if self._fresh_rejections > self.max_fresh_rejections:
                raise AuthError(f"SmartStream keeps refusing fresh Angel tokens: {reason}")

    # ---- the daily schedule -------------------------------------------------------------

    async def new_day(self, attempts: int = 5, backoff_s: float = 2.0) -> None:
        """Morning routine: log out yesterday's session (if any), then a fresh TOTP login.

        Transient failures are retried ``attempts`` times with doubling backoff.
        """
        if self.is_logged_in:
            await self.logout()
        for i in range(attempts):
            try:
                await self.login()
                return
            except TransientError as e:
                if i == attempts - 1:
                    raise
                self.log.warning("angel.login_retry", attempt=i + 1, error=str(e))
                await asyncio.sleep(backoff_s * 2**i)

    async def run_daily(
        self,
        clock: Clock,
        login_at: dt.time = dt.time(8, 45),
        logout_at: dt.time = dt.time(15, 45),
    ) -> None:
        """Forever: ``new_day()`` at ``login_at`` and ``logout()`` at ``logout_at`` (IST, weekdays).

        The daemon runs this as a task; an ``AuthError`` ends it (and the daemon).
        """
        while True:
            at_ns, action = next_daily_action(clock.now_ns(), login_at, logout_at)
            self.log.info("angel.daily_next", action=action, at=ist_datetime(at_ns).isoformat())
            await asyncio.sleep(max(0.0, (at_ns - clock.now_ns()) / 1e9))
            if action == "login":
                await self.new_day()
            else:
                await self.logout()


def next_daily_action(
    now_ns: int, login_at: dt.time, logout_at: dt.time
) -> tuple[int, Literal["login", "logout"]]:
    """The next (time, action) of the daily session schedule: weekdays only, IST."""
    day = ist_datetime(now_ns).date()
    for _ in range(8):
        if day.weekday() < 5:
            events = sorted(
                [(ns_at_ist(day, login_at), "login"), (ns_at_ist(day, logout_at), "logout")]
            )
            for at_ns, action in events:
                if at_ns > now_ns:
                    return at_ns, action  # type: ignore[return-value]
        day += dt.timedelta(days=1)
    raise FatalError("no weekday in the next eight days")  # unreachable by construction


def order_body(req: PlaceRequest) -> dict[str, str]:
    """The placeOrder body for ``req``: always LIMIT/DAY, prices in rupees, all strings."""
    return {
        "variety": VARIETY,
        "tradingsymbol": req.symbol,
        "symboltoken": req.token,
        "transactiontype": req.side,
        "exchange": req.exchange,
        "ordertype": ORDER_TYPE,
        "producttype": req.product,
        "duration": DURATION,
        "price": f"{req.price:.2f}",
        "squareoff": "0",
        "stoploss": "0",
        "quantity": str(req.quantity),
        "ordertag": req.tag,
    }


def modify_body(broker_order_id: str, req: PlaceRequest) -> dict[str, str]:
    """The modifyOrder body (angel-smartapi.md §4.4)."""
    return {
        "variety": VARIETY,
        "orderid": broker_order_id,
        "ordertype": ORDER_TYPE,
        "producttype": req.product,
        "duration": DURATION,
        "price": f"{req.price:.2f}",
        "quantity": str(req.quantity),
        "tradingsymbol": req.symbol,
        "symboltoken": req.token,
        "exchange": req.exchange,
    }


def check_limit_day(body: dict[str, str]) -> None:
    """Refuse to send anything but a priced LIMIT/DAY order (a broken invariant is fatal)."""
    if "ordertype" in body and (
        body["ordertype"] != "LIMIT" or body.get("duration") != "DAY" or float(body["price"]) <= 0
    ):
        raise FatalError("only priced LIMIT/DAY orders may be sent to Angel")
