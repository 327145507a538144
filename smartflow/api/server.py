"""The local HTTP API: read-only views, health, Prometheus metrics, and the kill switch.

Routes (all JSON via msgspec, except ``/metrics``):

=====================================  ===========================================================
``GET /api/smart-money/metrics``       per underlying: future flow, confluence, latest signal,
                                       flow of the ATM-zone contracts
``GET /api/smart-money/whale-alerts``  recent whale prints (``since``, ``limit``, ``underlying``)
``GET /api/smart-money/order-flow``    OFI, pressure, depth imbalance, CVD, urgency per contract
``GET /api/smart-money/dark-pools``    hidden (iceberg) liquidity and absorption per contract
``GET /api/smart-money/correlation``   flow ↔ signal confluence and execution recommendation
``GET /api/smart-money/status``        stages, counters, uptime
``GET /api/chain/{underlying}``        the seed's Phase 2B view with greeks and detector states
``GET /api/chain/{underlying}/summary`` PCR, max pain, OI walls, ΔOI, GEX, smile, straddle, IV rank
``GET /api/history/{underlying}``      a day's chain-summary snapshots (``date``, ``interval``)
``GET /api/signals``                   recent SmartMoneySignals (``since``, ``limit``)
``GET /healthz``                       200 only when feed, kernels and router are healthy
``GET /metrics``                       Prometheus exposition
``GET /api/openapi.json``              this API described as OpenAPI 3.1
``POST /api/kill``                     trip the kill switch (``Authorization: Bearer <token>``)
``POST /api/kill/reset``               re-arm trading (same token)
``GET /ui/``                           the dashboard (``smartflow.api.ui``) and its stream
                                       ``/ui/stream`` (``smartflow.api.stream``)
=====================================  ===========================================================

The daemon runs this server in its own process (``smartflow.api.worker``) over snapshots the
trading loop publishes, so no request can slow trading. Nothing a client sends can make a 500:
query parameters are parsed strictly (ASCII digits, bounded length and range) and a bad one gets
400 with a message; an unknown underlying in the path gets 404. Load is bounded: requests in
flight (503 beyond), request rate (429 beyond), idle and half-sent connections closed after
``idle_timeout_s``, every request done within ``request_timeout_s`` (504). An unexpected error is
logged once per kind, then counted, and answered 500 without internals. With an ``api_token``,
every route needs ``Authorization: Bearer <api_token>``, except the kill routes, which need the
kill token.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import re
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import msgspec
from aiohttp import web

from smartflow.api.snapshot import Section
from smartflow.api.ui import Dashboard
from smartflow.config import ApiConfig, Secret


class ApiSource(Protocol):
    """What the API reads; implemented over the trading loop's snapshots."""

    def status(self) -> dict[str, Any]:
        """Stages, counters, uptime."""
        ...

    def smart_money_metrics(self, underlying: str | None) -> dict[str, Any]:
        """Per underlying: future flow, confluence, signal, zone contracts."""
        ...

    def whale_alerts(
        self, since_ns: int, limit: int, underlying: str | None
    ) -> list[dict[str, Any]]:
        """Whale prints newer than ``since_ns``, newest last."""
        ...

    def order_flow(self, underlying: str | None, token: str | None) -> list[dict[str, Any]]:
        """Order-flow metrics per contract."""
        ...

    def dark_pools(self, underlying: str | None) -> dict[str, Any]:
        """Hidden-liquidity view."""
        ...

    def correlation(self) -> dict[str, Any]:
        """Confluence per underlying."""
        ...

    def chain(self, underlying: str) -> dict[str, Any] | None:
        """Phase 2B view of one chain (None: unknown underlying)."""
        ...

    def signals(self, since_ns: int, limit: int, underlying: str | None) -> list[dict[str, Any]]:
        """Emitted signals newer than ``since_ns``, newest last."""
        ...

    def chain_summary(self, underlying: str) -> dict[str, Any] | None:
        """The latest bar close's chain summary (None: no bar has closed yet)."""
        ...

    def history(
        self, underlying: str, day: dt.date | None, every_min: int
    ) -> Awaitable[dict[str, Any]]:
        """A day's one-minute snapshots, one per ``every_min`` (``day`` None: today)."""
        ...

    def underlyings(self) -> list[str]:
        """Configured roots."""
        ...

    def need(self, *sections: Section) -> Awaitable[None]:
        """Resolves once the costly ``sections`` the next reads use are at hand."""
        ...

    def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, details)."""
        ...

    def prometheus(self) -> bytes:
        """Prometheus text exposition."""
        ...

    def kill(self, reason: str, source: str) -> Awaitable[dict[str, Any]]:
        """Trip the kill switch; resolves once the trading loop has done it."""
        ...

    def reset_kill(self, source: str) -> Awaitable[dict[str, Any]]:
        """Re-arm trading."""
        ...


class Log(Protocol):
    """The structlog-style logger the server writes to."""

    def info(self, event: str, **kw: Any) -> Any:
        """Log at info."""
        ...

    def warning(self, event: str, **kw: Any) -> Any:
        """Log at warning."""
        ...

    def error(self, event: str, **kw: Any) -> Any:
        """Log at error."""
        ...


HISTORY_INTERVALS = {"1m": 1, "5m": 5, "15m": 15}


class BadRequest(ValueError):
    """A query parameter or body is invalid: 400."""


class NotFound(LookupError):
    """The path names something that does not exist: 404."""


_enc = msgspec.json.Encoder()


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=_enc.encode(data), status=status, content_type="application/json", headers=headers
    )


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return _json({"error": message, "status": status}, status, headers)


# ``[0-9]``, not ``\d`` or ``str.isdigit``: those accept '²' and other Unicode digits that int()
# then refuses (or, for '٣', silently reads). Lengths are bounded before any conversion, since
# int() of a 4,300-digit string raises and a longer one costs quadratic time.
_NS = re.compile(r"[0-9]{1,19}")
_LIMIT = re.compile(r"[0-9]{1,9}")
_TOKEN = re.compile(r"[0-9]{1,20}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MAX_NS = 2**63 - 1
MAX_ISO_CHARS = 40
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


def _shown(text: str, limit: int = 40) -> str:
    """A query value echoed in an error message, cut short."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def parse_since(text: str | None) -> int:
    """``since``: Unix nanoseconds, or an ISO-8601 time (IST assumed without an offset)."""
    if text is None or text == "":
        return 0
    if _NS.fullmatch(text):
        ns = int(text)
        if ns > MAX_NS:
            raise BadRequest(f"since: {_shown(text)} is beyond the largest time (2^63 − 1 ns)")
        return ns
    value: int | None = None
    if len(text) <= MAX_ISO_CHARS:
        try:
            when = dt.datetime.fromisoformat(text)
            if when.tzinfo is None:
                when = when.replace(tzinfo=IST)
            value = int(when.timestamp() * 1_000_000_000)
        except (ValueError, OverflowError):
            pass
    if value is None:
        raise BadRequest(f"since: {_shown(text)} is neither Unix nanoseconds nor ISO-8601")
    return value


def parse_limit(text: str | None, default: int = 100, maximum: int = 1000) -> int:
    """``limit``: 1 … ``maximum``, in ASCII digits."""
    if text is None or text == "":
        return default
    if not _LIMIT.fullmatch(text) or not 1 <= int(text) <= maximum:
        raise BadRequest(f"limit: expected an integer 1..{maximum}, got {_shown(text)}")
    return int(text)


def parse_date(text: str | None) -> dt.date | None:
    """``date``: an IST day, YYYY-MM-DD in ASCII digits (None: today)."""
    if text is None or text == "":
        return None
    try:
        if _DATE.fullmatch(text):
            return dt.date.fromisoformat(text)
    except ValueError:
        pass
    raise BadRequest(f"date: expected YYYY-MM-DD, got {_shown(text)}")


def parse_token(text: str | None) -> str | None:
    """``token``: an instrument token, ASCII digits."""
    if text is None or text == "":
        return None
    if not _TOKEN.fullmatch(text):
        raise BadRequest(f"token: expected digits, got {_shown(text)}")
    return text


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RateLimit:
    """A token bucket: ``rate`` requests a second, bursts of up to one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.burst = max(1.0, rate)
        self.tokens = self.burst
        self.at = time.monotonic()

    def take(self) -> bool:
        """Spend one token if there is one."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class Tally:
    """Logs the first event of each kind at once, then one line per interval with the count.

    A burst of identical failures (a client looping on a bad request, a scanner) is one line
    and a number, never a line (or a traceback) per request. Kinds are bounded too.
    """

    MAX_KINDS = 64

    def __init__(self, log: Log, event: str, level: str = "error") -> None:
        self.log = log
        self.event = event
        self.level = level
        self.pending: dict[str, int] = {}
        self.total: dict[str, int] = {}

    def record(self, kind: str, **fields: Any) -> None:
        """Count one ``kind``; log it now if it is the first of its kind."""
        if kind not in self.total and len(self.total) >= self.MAX_KINDS:
            kind = "other"
        first = kind not in self.total
        self.total[kind] = self.total.get(kind, 0) + 1
        if first:
            getattr(self.log, self.level)(self.event, kind=kind, count=1, **fields)
        else:
            self.pending[kind] = self.pending.get(kind, 0) + 1

    def flush(self, interval_s: float) -> None:
        """One line per kind that repeated since the last flush."""
        pending, self.pending = self.pending, {}
        for kind, n in sorted(pending.items()):
            getattr(self.log, self.level)(
                self.event,
                kind=kind,
                count=n,
                total=self.total[kind],
                repeated_within_s=interval_s,
            )


def error_kind(e: BaseException, route: str) -> str:
    """``Type at file:line (route)`` of the innermost frame: stable across requests."""
    frames = traceback.extract_tb(e.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return f"{type(e).__name__}{where} ({route})"


def _bearer(request: web.Request) -> bytes:
    auth = request.headers.get("Authorization", "")
    given = auth[7:] if auth.startswith("Bearer ") else ""
    # Header text may hold lone surrogates (undecodable bytes); never let them raise.
    return given.encode("utf-8", "replace")


ROUTES = [
    ("GET", "/api/smart-money/metrics", "_metrics_view"),
    ("GET", "/api/smart-money/whale-alerts", "_whales"),
    ("GET", "/api/smart-money/order-flow", "_order_flow"),
    ("GET", "/api/smart-money/dark-pools", "_dark_pools"),
    ("GET", "/api/smart-money/correlation", "_correlation"),
    ("GET", "/api/smart-money/status", "_status"),
    ("GET", "/api/chain/{underlying}", "_chain"),
    ("GET", "/api/chain/{underlying}/summary", "_chain_summary"),
    ("GET", "/api/history/{underlying}", "_history"),
    ("GET", "/api/signals", "_signals"),
    ("GET", "/healthz", "_healthz"),
    ("GET", "/metrics", "_prometheus"),
    ("GET", "/api/openapi.json", "_openapi"),
    ("POST", "/api/kill", "_kill"),
    ("POST", "/api/kill/reset", "_kill_reset"),
]
"""Every route as (method, path, ``ApiServer`` handler method); add new ones here and to
``openapi()``."""
KILL_PATHS = frozenset({"/api/kill", "/api/kill/reset"})


class ApiServer:
    """aiohttp application bound to ``[api] listen``."""

    def __init__(
        self,
        cfg: ApiConfig,
        source: ApiSource,
        kill_token: Secret | None,
        log: Log,
        api_token: Secret | None = None,
        dashboard: Dashboard | None = None,
    ) -> None:
        self.cfg = cfg
        self.dashboard = dashboard
        self.source = source
        self.kill_token = kill_token
        self.api_token = api_token.reveal().encode() if api_token else b""
        self.log = log
        self.requests = 0
        self.in_flight = 0
        self.rate = RateLimit(cfg.requests_per_second)
        self.errors = Tally(log, "api.error")
        self.limited = Tally(log, "api.limited", "warning")
        # Small requests only: the largest body is the kill switch's {"reason": ...}.
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        for method, path, name in ROUTES:
            app.router.add_route(method, path, getattr(self, name))
        if dashboard is not None:
            dashboard.add_routes(app)
        self.app = app
        self._runner: web.AppRunner | None = None
        self._flusher: asyncio.Task[None] | None = None
        self.port = 0

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests += 1
        if not self.rate.take():
            self.limited.record("rate", limit_per_s=self.cfg.requests_per_second)
            return _error(
                429,
                f"too many requests (over {self.cfg.requests_per_second:g}/s)",
                {"Retry-After": "1"},
            )
        if self.dashboard is not None and (request.path == "/ui" or request.path[:4] == "/ui/"):
            return await self._ui(request, handler, self.dashboard)
        if self.in_flight >= self.cfg.max_concurrent:
            self.limited.record("concurrency", limit=self.cfg.max_concurrent)
            return _error(
                503,
                f"busy: {self.in_flight} requests in flight (max {self.cfg.max_concurrent})",
                {"Retry-After": "1"},
            )
        if (
            self.api_token
            and request.path not in KILL_PATHS
            and not hmac.compare_digest(_bearer(request), self.api_token)
        ):
            self.limited.record("unauthorized")
            return _error(401, "missing or wrong bearer token (the api_token credential)")
        self.in_flight += 1
        try:
            async with asyncio.timeout(self.cfg.request_timeout_s):
                return await handler(request)
        except BadRequest as e:
            return _error(400, str(e))
        except NotFound as e:
            return _error(404, str(e))
        except web.HTTPException as e:
            if e.status >= 400:
                return _error(e.status, e.reason)
            raise
        except TimeoutError:
            self.limited.record("timeout", limit_s=self.cfg.request_timeout_s)
            return _error(504, f"not answered within {self.cfg.request_timeout_s:g} s")
        except Exception as e:  # the per-request boundary: count it, answer 500
            route = request.match_info.route.resource
            self.errors.record(
                error_kind(e, route.canonical if route is not None else "?"),
                error=repr(e)[:300],
            )
            return _error(500, "internal error (logged)")
        finally:
            self.in_flight -= 1

    async def _ui(
        self, request: web.Request, handler: Handler, dashboard: Dashboard
    ) -> web.StreamResponse:
        """A ``/ui`` request: its own access rule; a stream is not a request in flight."""
        try:
            return await dashboard.guard(request, handler)
        except web.HTTPException as e:
            if e.status >= 400:
                self.limited.record(f"ui {e.status}")
                return _error(e.status, e.reason)
            raise
        except TimeoutError:
            return _error(504, f"not answered within {self.cfg.request_timeout_s:g} s")
        except Exception as e:  # the per-request boundary, as for the API's routes
            self.errors.record(error_kind(e, request.path[:40]), error=repr(e)[:300])
            return _error(500, "internal error (logged)")

    async def start(self) -> None:
        """Bind ``[api] listen``."""
        host, _, port = self.cfg.listen.rpartition(":")
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=1.0,
            handler_cancellation=True,
            # Armed at connect and after each response, and not re-armed by partial data: it
            # closes idle keep-alive connections and half-sent requests alike.
            keepalive_timeout=self.cfg.idle_timeout_s,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host.strip("[]"), int(port), reuse_address=True)
        await site.start()
        # Port 0 asks the kernel for one; the runner knows which it got.
        self.port = int(self._runner.addresses[0][1])
        self._flusher = asyncio.create_task(self._flush_tallies())
        self.log.info("api.listening", url=f"http://{host}:{self.port}")

    async def _flush_tallies(self) -> None:
        interval = self.cfg.error_log_interval_s
        while True:
            await asyncio.sleep(interval)
            self.errors.flush(interval)
            self.limited.flush(interval)

    async def stop(self) -> None:
        """Close the listener."""
        if self._flusher is not None:
            self._flusher.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- helpers ------------------------------------------------------------------------

    def _underlying(self, request: web.Request, required: bool = False) -> str | None:
        u = request.query.get("underlying")
        if u is None or u == "":
            if required:
                raise BadRequest("underlying: required")
            return None
        known = self.source.underlyings()
        if u not in known:
            raise BadRequest(f"underlying: {_shown(u)} is not one of {', '.join(known)}")
        return u

    def _path_underlying(self, request: web.Request) -> str:
        u = request.match_info["underlying"]
        known = self.source.underlyings()
        if u not in known:
            raise NotFound(f"no chain for {_shown(u)} (configured: {', '.join(known)})")
        return u

    def _only(self, request: web.Request, allowed: set[str]) -> None:
        extra = sorted(set(request.query) - allowed)
        if extra:
            raise BadRequest(
                f"unknown query parameter `{extra[0][:40]}`"
                + (f" (allowed: {', '.join(sorted(allowed))})" if allowed else "")
            )

    # ---- handlers -----------------------------------------------------------------------

    async def _metrics_view(self, request: web.Request) -> web.Response:
        self._only(request, {"underlying"})
        underlying = self._underlying(request)
        await self.source.need("zone")
        return _json(self.source.smart_money_metrics(underlying))

    async def _whales(self, request: web.Request) -> web.Response:
        self._only(request, {"since", "limit", "underlying"})
        q = request.query
        return _json(
            {
                "alerts": self.source.whale_alerts(
                    parse_since(q.get("since")),
                    parse_limit(q.get("limit")),
                    self._underlying(request),
                )
            }
        )

    async def _order_flow(self, request: web.Request) -> web.Response:
        self._only(request, {"underlying", "token"})
        token = parse_token(request.query.get("token"))
        underlying = self._underlying(request)
        await self.source.need("zone" if token is None else "contracts")
        rows = self.source.order_flow(underlying, token)
        if token is not None and not rows:
            raise BadRequest(f"token: {token} is not a contract of the chain")
        return _json({"contracts": rows})

    async def _dark_pools(self, request: web.Request) -> web.Response:
        self._only(request, {"underlying"})
        underlying = self._underlying(request)
        await self.source.need("contracts")
        return _json(self.source.dark_pools(underlying))

    async def _correlation(self, request: web.Request) -> web.Response:
        self._only(request, set())
        return _json(self.source.correlation())

    async def _status(self, request: web.Request) -> web.Response:
        self._only(request, set())
        return _json(self.source.status())

    async def _chain(self, request: web.Request) -> web.Response:
        self._only(request, set())
        underlying = self._path_underlying(request)
        await self.source.need("chains")
        view = self.source.chain(underlying)
        if view is None:
            raise NotFound(f"no chain for {_shown(underlying)} yet")
        return _json(view)

    async def _chain_summary(self, request: web.Request) -> web.Response:
        self._only(request, set())
        underlying = self._path_underlying(request)
        await self.source.need("summaries")
        view = self.source.chain_summary(underlying)
        if view is None:
            return _error(503, f"no bar of {underlying} has closed yet")
        return _json(view)

    async def _history(self, request: web.Request) -> web.Response:
        self._only(request, {"date", "interval"})
        underlying = self._path_underlying(request)
        q = request.query
        day = parse_date(q.get("date"))
        interval = q.get("interval") or "1m"
        if interval not in HISTORY_INTERVALS:
            raise BadRequest(f"interval: expected one of 1m, 5m, 15m, got {_shown(interval)}")
        return _json(await self.source.history(underlying, day, HISTORY_INTERVALS[interval]))

    async def _signals(self, request: web.Request) -> web.Response:
        self._only(request, {"since", "limit", "underlying"})
        q = request.query
        return _json(
            {
                "signals": self.source.signals(
                    parse_since(q.get("since")),
                    parse_limit(q.get("limit")),
                    self._underlying(request),
                )
            }
        )

    async def _healthz(self, request: web.Request) -> web.Response:
        ok, details = self.source.health()
        return _json({"healthy": ok, **details}, 200 if ok else 503)

    async def _prometheus(self, request: web.Request) -> web.Response:
        await self.source.need("prometheus")
        return web.Response(
            body=self.source.prometheus(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    async def _openapi(self, request: web.Request) -> web.Response:
        self._only(request, set())
        return _json(openapi(self.source.underlyings()))

    def _authorized(self, request: web.Request) -> web.Response | None:
        if self.kill_token is None or not self.kill_token:
            return _error(403, "kill switch API disabled: no kill_token credential configured")
        if not hmac.compare_digest(_bearer(request), self.kill_token.reveal().encode()):
            self.limited.record("kill_unauthorized")
            return _error(401, "missing or wrong bearer token")
        return None

    async def _kill(self, request: web.Request) -> web.Response:
        denied = self._authorized(request)
        if denied is not None:
            return denied
        reason = "api request"
        if request.can_read_body:
            try:
                body = msgspec.json.decode(await request.read())
            except msgspec.DecodeError:
                raise BadRequest('body: expected JSON like {"reason": "..."}') from None
            if isinstance(body, dict) and isinstance(body.get("reason"), str):
                reason = body["reason"][:200]
        return _json(await self.source.kill(reason, f"api:{request.remote}"))

    async def _kill_reset(self, request: web.Request) -> web.Response:
        denied = self._authorized(request)
        if denied is not None:
            return denied
        return _json(await self.source.reset_kill(f"api:{request.remote}"))


def _get(
    summary: str,
    params: list[dict[str, Any]] | None = None,
    responses: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": params or [],
            "responses": responses
            or {
                "200": {
                    "description": "OK",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "400": {"$ref": "#/components/responses/BadRequest"},
                **LIMITS,
            },
        }
    }


LIMITS = {
    "429": {"description": "over [api] requests_per_second; retry after Retry-After seconds"},
    "503": {"description": "over [api] max_concurrent requests in flight"},
}


def _nums(*names: str) -> dict[str, Any]:
    return {n: {"type": ["number", "null"]} for n in names}


def _obj(props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props}


_WALL = _obj({"strike": {"type": ["number", "null"]}, "value": {"type": ["integer", "null"]}})
CHAIN_SUMMARY_SCHEMA = _obj(
    {
        "underlying": {"type": "string"},
        "expiry": {"type": "string", "format": "date"},
        "ts": {"type": "string", "format": "date-time"},
        "ts_ns": {"type": "integer"},
        **_nums("spot", "forward", "t_years"),
        "strikes_seen": {"type": "integer"},
        "pcr": _obj(_nums("oi", "volume", "oi_change")),
        "totals": _obj(
            {
                n: {"type": "integer"}
                for n in (
                    "ce_oi",
                    "pe_oi",
                    "ce_oi_change",
                    "pe_oi_change",
                    "ce_volume",
                    "pe_volume",
                )
            }
        ),
        "doi_basis": {"type": "string", "enum": ["prev_close", "first_print"]},
        "doi_first_print_contracts": {"type": "integer"},
        "doi_prev_close_contracts": {"type": "integer"},
        "doi_source": {"type": "string", "enum": ["oi_data", "own_close", "first_print"]},
        "doi_note": {"type": "string"},
        "max_pain": _obj(_nums("strike", "payout")),
        "walls": _obj(
            {n: _WALL for n in ("resistance", "support", "resistance_added", "support_added")}
        ),
        "gex": _obj(
            {**_nums("total", "zero_gamma"), "contracts_without_gamma": {"type": "integer"}}
        ),
        "volatility": _obj(
            _nums(
                "atm_iv",
                "atm_strike",
                "straddle",
                "expected_move_straddle",
                "expected_move_sigma",
                "rr_25d",
                "bf_25d",
                "iv_25d_call",
                "iv_25d_put",
                "iv_10d_call",
                "iv_10d_put",
            )
        ),
        "iv_rank": _obj(
            {
                "status": {"type": "string", "enum": ["ok", "insufficient_history"]},
                "sessions": {"type": "integer"},
                **_nums("iv_rank", "iv_percentile", "low", "high"),
            }
        ),
        "term_structure": _obj(
            {
                "near_expiry": {"type": "string", "format": "date"},
                "next_expiry": {"type": "string", "format": "date"},
                **_nums(
                    "near_atm_iv",
                    "next_atm_iv",
                    "near_t_years",
                    "next_t_years",
                    "spread",
                    "ratio",
                    "forward_vol",
                ),
            }
        ),
        "strikes": {
            "type": "array",
            "items": _obj(
                {
                    "strike": {"type": "number"},
                    **{
                        n: {"type": "integer"}
                        for n in (
                            "ce_oi",
                            "pe_oi",
                            "ce_oi_change",
                            "pe_oi_change",
                            "ce_volume",
                            "pe_volume",
                        )
                    },
                    **_nums(
                        "pcr_oi",
                        "pcr_volume",
                        "pcr_oi_change",
                        "pain",
                        "gex",
                        "ce_iv",
                        "pe_iv",
                        "iv",
                        "call_delta",
                        "ce_price",
                        "pe_price",
                        "ce_ltp",
                        "pe_ltp",
                    ),
                }
            ),
        },
    }
)
# With ``[market] expiries = 2``: the next expiry's own summary, the same fields.
CHAIN_SUMMARY_SCHEMA["properties"]["next_expiry"] = _obj(dict(CHAIN_SUMMARY_SCHEMA["properties"]))


def openapi(underlyings: list[str]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route."""
    underlying = {
        "name": "underlying",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": underlyings},
    }
    since = {
        "name": "since",
        "in": "query",
        "required": False,
        "description": "Unix nanoseconds or ISO-8601 (IST when no offset)",
        "schema": {"type": "string"},
    }
    limit = {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
    }
    token = {
        "name": "token",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
    kill = {
        "post": {
            "summary": "Trip the kill switch: cancel open orders, flatten if "
            "configured, refuse entries until reset",
            "security": [{"bearer": []}],
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {"type": "object", "properties": {"reason": {"type": "string"}}}
                    }
                },
            },
            "responses": {
                "200": {"description": "tripped"},
                "401": {"description": "missing or wrong token"},
                "403": {"description": "no kill token configured"},
            },
        }
    }
    reset = {
        "post": {
            "summary": "Re-arm trading after a kill",
            "security": [{"bearer": []}],
            "responses": {
                "200": {"description": "reset"},
                "401": {"description": "missing or wrong token"},
                "403": {"description": "no kill token configured"},
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "smartflow",
            "version": "1",
            "description": (
                "Local API of the smartflow daemon (loopback by default). With an api_token "
                "credential every route but the kill switch needs Authorization: Bearer "
                "<api_token> (401 otherwise). Any route may answer 429 (rate), 503 (requests "
                "in flight) or 504 (not answered within [api] request_timeout_s)."
            ),
        },
        "paths": {
            "/api/smart-money/metrics": _get("Smart-money analytics per underlying", [underlying]),
            "/api/smart-money/whale-alerts": _get(
                "Recent whale prints", [since, limit, underlying]
            ),
            "/api/smart-money/order-flow": _get("Order flow per contract", [underlying, token]),
            "/api/smart-money/dark-pools": _get(
                "Hidden (iceberg) liquidity per contract", [underlying]
            ),
            "/api/smart-money/correlation": _get("Flow ↔ signal confluence per underlying"),
            "/api/smart-money/status": _get("Stages, counters, uptime"),
            "/api/chain/{underlying}": {
                "get": {
                    "summary": "The option chain with greeks and detector states",
                    "parameters": [
                        {
                            "name": "underlying",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {"description": "OK"},
                        "404": {"description": "unknown underlying"},
                    },
                }
            },
            "/api/chain/{underlying}/summary": {
                "get": {
                    "summary": "Chain summary at the latest bar close: PCR (OI, volume, ΔOI), max "
                    "pain and pain curve, OI walls, ΔOI since the previous close (doi_basis), "
                    "GEX (rupees per 1 % move; calls +, puts −) and zero-gamma level, ATM IV at "
                    "the forward, 25Δ risk reversal and butterfly, smile, ATM straddle, expected "
                    "move, IV rank/percentile; with [market] expiries = 2 the next expiry's "
                    "summary (next_expiry) and the term structure of ATM IV (term_structure)",
                    "parameters": [
                        {
                            "name": "underlying",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "enum": underlyings},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "OK",
                            "content": {"application/json": {"schema": CHAIN_SUMMARY_SCHEMA}},
                        },
                        "400": {"$ref": "#/components/responses/BadRequest"},
                        "404": {"description": "unknown underlying"},
                        **LIMITS,
                        "503": {
                            "description": "no bar has closed yet, or over [api] max_concurrent "
                            "requests in flight"
                        },
                    },
                }
            },
            "/api/history/{underlying}": _get(
                "A day's chain-summary snapshots (taken at the first bar close of each minute) "
                "with per-strike OI, ΔOI, IV and LTP",
                [
                    {
                        "name": "underlying",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": underlyings},
                    },
                    {
                        "name": "date",
                        "in": "query",
                        "required": False,
                        "description": "IST day, YYYY-MM-DD (default today)",
                        "schema": {"type": "string", "format": "date"},
                    },
                    {
                        "name": "interval",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["1m", "5m", "15m"], "default": "1m"},
                    },
                ],
                {
                    "200": {
                        "description": "OK",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "400": {"$ref": "#/components/responses/BadRequest"},
                    "404": {"description": "unknown underlying"},
                    **LIMITS,
                },
            ),
            "/api/signals": _get("Recent SmartMoneySignals", [since, limit, underlying]),
            "/healthz": {
                "get": {
                    "summary": "Health: 200 only when feed, kernels and router are healthy",
                    "responses": {
                        "200": {"description": "healthy"},
                        "503": {"description": "unhealthy"},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus exposition",
                    "responses": {
                        "200": {
                            "description": "text",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/api/openapi.json": _get("This document"),
            "/api/kill": kill,
            "/api/kill/reset": reset,
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "BadRequest": {
                    "description": "invalid query parameter",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "error": {"type": "string"},
                                    "status": {"type": "integer"},
                                },
                            }
                        }
                    },
                }
            },
        },
    }
