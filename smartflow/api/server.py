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
=====================================  ===========================================================

Handlers only read state that the pipeline keeps current; none of them awaits a pipeline stage,
so a slow client cannot slow trading. Bad query parameters get 400 with a message.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import msgspec
from aiohttp import web

from smartflow.config import ApiConfig, Secret


class ApiSource(Protocol):
    """What the API reads; implemented by the composition root."""

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

    def history(self, underlying: str, day: dt.date | None, every_min: int) -> dict[str, Any]:
        """A day's one-minute snapshots, one per ``every_min`` (``day`` None: today)."""
        ...

    def underlyings(self) -> list[str]:
        """Configured roots."""
        ...

    def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, details)."""
        ...

    def prometheus(self) -> bytes:
        """Prometheus text exposition."""
        ...

    def kill(self, reason: str, source: str) -> Awaitable[dict[str, Any]]:
        """Trip the kill switch."""
        ...

    def reset_kill(self, source: str) -> Awaitable[dict[str, Any]]:
        """Re-arm trading."""
        ...


HISTORY_INTERVALS = {"1m": 1, "5m": 5, "15m": 15}


class BadRequest(ValueError):
    """A query parameter is invalid."""


_enc = msgspec.json.Encoder()


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=_enc.encode(data), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message, "status": status}, status)


def parse_since(text: str | None) -> int:
    """``since``: Unix nanoseconds, or an ISO-8601 time (IST assumed without an offset)."""
    if text is None or text == "":
        return 0
    if text.isdigit():
        return int(text)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"since: {text!r} is neither Unix nanoseconds nor ISO-8601") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))
    return int(when.timestamp() * 1_000_000_000)


def parse_limit(text: str | None, default: int = 100, maximum: int = 1000) -> int:
    """``limit``: 1 … ``maximum``."""
    if text is None or text == "":
        return default
    if not text.isdigit() or not 1 <= int(text) <= maximum:
        raise BadRequest(f"limit: expected an integer 1..{maximum}, got {text!r}")
    return int(text)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiServer:
    """aiohttp application bound to ``[api] listen``."""

    def __init__(
        self, cfg: ApiConfig, source: ApiSource, kill_token: Secret | None, log: Any
    ) -> None:
        self.cfg = cfg
        self.source = source
        self.kill_token = kill_token
        self.log = log
        self.requests = 0
        app = web.Application(middlewares=[self._errors])
        r = app.router
        r.add_get("/api/smart-money/metrics", self._metrics_view)
        r.add_get("/api/smart-money/whale-alerts", self._whales)
        r.add_get("/api/smart-money/order-flow", self._order_flow)
        r.add_get("/api/smart-money/dark-pools", self._dark_pools)
        r.add_get("/api/smart-money/correlation", self._correlation)
        r.add_get("/api/smart-money/status", self._status)
        r.add_get("/api/chain/{underlying}", self._chain)
        r.add_get("/api/chain/{underlying}/summary", self._chain_summary)
        r.add_get("/api/history/{underlying}", self._history)
        r.add_get("/api/signals", self._signals)
        r.add_get("/healthz", self._healthz)
        r.add_get("/metrics", self._prometheus)
        r.add_get("/api/openapi.json", self._openapi)
        r.add_post("/api/kill", self._kill)
        r.add_post("/api/kill/reset", self._kill_reset)
        self.app = app
        self._runner: web.AppRunner | None = None
        self.port = 0

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests += 1
        try:
            return await handler(request)
        except BadRequest as e:
            return _error(400, str(e))
        except web.HTTPException as e:
            if e.status >= 400:
                return _error(e.status, e.reason)
            raise
        except Exception as e:  # the per-request boundary: log it, answer 500
            self.log.exception("api.error", path=request.path, error=repr(e))
            return _error(500, "internal error (logged)")

    async def start(self) -> None:
        """Bind ``[api] listen``."""
        host, _, port = self.cfg.listen.rpartition(":")
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host.strip("[]"), int(port), reuse_address=True)
        await site.start()
        # Port 0 asks the kernel for one; the runner knows which it got.
        self.port = int(self._runner.addresses[0][1])
        self.log.info("api.listening", url=f"http://{host}:{self.port}")

    async def stop(self) -> None:
        """Close the listener."""
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
            raise BadRequest(f"underlying: {u!r} is not one of {', '.join(known)}")
        return u

    def _only(self, request: web.Request, allowed: set[str]) -> None:
        extra = sorted(set(request.query) - allowed)
        if extra:
            raise BadRequest(
                f"unknown query parameter `{extra[0]}`"
                + (f" (allowed: {', '.join(sorted(allowed))})" if allowed else "")
            )

    # ---- handlers -----------------------------------------------------------------------

    async def _metrics_view(self, request: web.Request) -> web.Response:
        self._only(request, {"underlying"})
        return _json(self.source.smart_money_metrics(self._underlying(request)))

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
        token = request.query.get("token") or None
        if token is not None and not token.isdigit():
            raise BadRequest(f"token: expected digits, got {token!r}")
        rows = self.source.order_flow(self._underlying(request), token)
        if token is not None and not rows:
            raise BadRequest(f"token: {token} is not a contract of the chain")
        return _json({"contracts": rows})

    async def _dark_pools(self, request: web.Request) -> web.Response:
        self._only(request, {"underlying"})
        return _json(self.source.dark_pools(self._underlying(request)))

    async def _correlation(self, request: web.Request) -> web.Response:
        self._only(request, set())
        return _json(self.source.correlation())

    async def _status(self, request: web.Request) -> web.Response:
        self._only(request, set())
        return _json(self.source.status())

    async def _chain(self, request: web.Request) -> web.Response:
        self._only(request, set())
        underlying = request.match_info["underlying"]
        view = self.source.chain(underlying)
        if view is None:
            return _error(
                404,
                f"no chain for {underlying!r} (configured: {', '.join(self.source.underlyings())})",
            )
        return _json(view)

    async def _chain_summary(self, request: web.Request) -> web.Response:
        self._only(request, set())
        underlying = request.match_info["underlying"]
        known = self.source.underlyings()
        if underlying not in known:
            return _error(404, f"no chain for {underlying!r} (configured: {', '.join(known)})")
        view = self.source.chain_summary(underlying)
        if view is None:
            return _error(503, f"no bar of {underlying} has closed yet")
        return _json(view)

    async def _history(self, request: web.Request) -> web.Response:
        self._only(request, {"date", "interval"})
        underlying = request.match_info["underlying"]
        known = self.source.underlyings()
        if underlying not in known:
            return _error(404, f"no chain for {underlying!r} (configured: {', '.join(known)})")
        q = request.query
        day = None
        if q.get("date"):
            try:
                day = dt.date.fromisoformat(q["date"])
            except ValueError:
                raise BadRequest(f"date: expected YYYY-MM-DD, got {q['date']!r}") from None
        interval = q.get("interval") or "1m"
        if interval not in HISTORY_INTERVALS:
            raise BadRequest(f"interval: expected one of 1m, 5m, 15m, got {interval!r}")
        return _json(self.source.history(underlying, day, HISTORY_INTERVALS[interval]))

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
        auth = request.headers.get("Authorization", "")
        given = auth[7:] if auth.startswith("Bearer ") else ""
        if not hmac.compare_digest(given.encode(), self.kill_token.reveal().encode()):
            self.log.warning("api.kill_unauthorized", peer=request.remote)
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
            },
        }
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
            "description": "Local API of the smartflow daemon (loopback by default).",
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
                    "move, IV rank/percentile",
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
                        "404": {"description": "unknown underlying"},
                        "503": {"description": "no bar has closed yet"},
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
