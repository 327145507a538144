"""The API server under hostile input, over real loopback HTTP and raw sockets.

The server here is the one the API process runs, over a snapshot of a small chain; the kill
commands that would go to the trading loop are coroutines the tests control, so a kill can be
held "in the trading loop" for as long as a test needs. Nothing waits on a fixed sleep.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import msgspec
import pytest
import structlog
from structlog.testing import capture_logs

from smartflow.api.server import ROUTES, ApiServer
from smartflow.api.snapshot import ApiSnapshot, SnapshotSource
from smartflow.app.logging import StdlibBridge, configure
from smartflow.config import ApiConfig, Secret


KILL = "kill-me-softly-1234"
API = "api-token-5678-abcd"
WAIT_S = 30.0

CONTRACT = {
    "underlying": "NIFTY",
    "token": "40011",
    "symbol": "NIFTY24000CE",
    "strike": 24000.0,
    "option_type": "CE",
    "ltp": 101.5,
    "hidden_volume": 0,
}
BARE = ApiSnapshot(
    seq=1,
    full=True,
    underlyings=["NIFTY"],
    today="2026-01-05",
    status={"mode": "sim"},
    healthy=True,
    health={"problems": [], "ready": True},
    hidden_events=0,
    correlation={"underlyings": {}},
    signals=[],
    whales=[],
)
"""A snapshot without the costly sections (nobody has asked for them yet)."""
SNAPSHOT = msgspec.structs.replace(
    BARE,
    zone={"NIFTY": {"metrics": {"spot": 24000.0}, "order_flow": [CONTRACT]}},
    contracts=[CONTRACT],
    chains={"NIFTY": {"underlying": "NIFTY", "strikes": {}}},
    summaries={"NIFTY": {"underlying": "NIFTY", "strikes": []}},
    prometheus=b"smartflow_ready 1.0\n",
)

Command = Callable[..., Awaitable[dict[str, Any]]]


async def answered(op: str, **kw: Any) -> dict[str, Any]:
    return {"kill_switch": op == "kill", **kw}


@asynccontextmanager
async def serving(
    cfg: ApiConfig | None = None,
    command: Command = answered,
    api_token: str | None = None,
    source: SnapshotSource | None = None,
    log: Any = None,
) -> AsyncIterator[tuple[ApiServer, aiohttp.ClientSession]]:
    if source is None:
        source = SnapshotSource(100, 100, 60.0, command, lambda sections: None)
        source.update(SNAPSHOT)
    server = ApiServer(
        cfg or ApiConfig(listen="127.0.0.1:0"),
        source,
        Secret(KILL),
        log or structlog.get_logger(),
        Secret(api_token) if api_token else None,
    )
    await server.start()
    try:
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{server.port}") as http:
            yield server, http
    finally:
        await server.stop()


async def _status_and_body(http: aiohttp.ClientSession, path: str) -> tuple[int, Any]:
    async with http.get(path) as r:
        return r.status, await r.json()


# ---- parsing: nothing a client sends makes a 500 -------------------------------------------------

HUGE = "9" * 4300


@pytest.mark.parametrize(
    ("query", "mentions"),
    [
        ("limit=²", "limit"),
        ("limit=٣", "limit"),  # Arabic-Indic three: int() would read it as 3
        ("limit=１０", "limit"),  # full-width digits
        (f"limit={HUGE}", "limit"),
        ("limit=00000000000000000001", "limit"),
        ("since=²", "since"),
        (f"since={HUGE}", "since"),
        ("since=99999999999999999999", "since"),
        ("since=0001-01-01T00:00:00+14:00", "since"),
        (f"since=2026-01-01T{HUGE}", "since"),
        ("underlying=%00", "underlying"),
        (f"underlying={HUGE}", "underlying"),
    ],
)
async def test_unicode_and_huge_numbers_are_400(query: str, mentions: str) -> None:
    async with serving() as (_, http):
        for path in ("/api/signals", "/api/smart-money/whale-alerts"):
            status, body = await _status_and_body(http, f"{path}?{query}")
            assert status == 400, (path, query, body)
            assert mentions in body["error"]
            assert len(body["error"]) < 300  # the value is echoed cut short


@pytest.mark.parametrize("token", ["²", "٣", HUGE, "12 3", "-1"])
async def test_bad_token_is_400(token: str) -> None:
    async with serving() as (_, http):
        status, body = await _status_and_body(http, f"/api/smart-money/order-flow?token={token}")
        assert status == 400
        assert "token" in body["error"]


async def test_good_values_still_parse() -> None:
    async with serving() as (_, http):
        for q in (
            "limit=1000",
            "limit=1",
            "since=0",
            f"since={2**63 - 1}",
            "since=2026-11-23",
            "since=9999-12-31T23:59:59-23:59",
        ):
            status, _ = await _status_and_body(http, f"/api/signals?{q}")
            assert status == 200, q
        status, body = await _status_and_body(http, "/api/smart-money/order-flow?token=40011")
        assert status == 200
        assert [c["token"] for c in body["contracts"]] == ["40011"]


async def test_unknown_underlying_in_the_path_is_404() -> None:
    async with serving() as (_, http):
        for name in ("BANKNIFTY", "nifty", "%C2%B2", HUGE):
            status, body = await _status_and_body(http, f"/api/chain/{name}")
            assert status == 404, name
            assert "NIFTY" in body["error"]  # names what is configured


async def test_a_section_nobody_asked_for_is_asked_for_and_awaited() -> None:
    asked: list[list[str]] = []
    source = SnapshotSource(100, 100, 60.0, answered, lambda sections: asked.append(sections))
    source.update(BARE)
    async with serving(source=source) as (_, http):
        pending = asyncio.create_task(_status_and_body(http, "/api/chain/NIFTY"))

        async def asked_for_it() -> bool:
            return asked == [["chains"]]

        await _until(asked_for_it, "the chains section asked for")
        assert not pending.done()  # waiting for a snapshot that carries it
        source.update(msgspec.structs.replace(BARE, seq=2, full=False))
        await asyncio.sleep(0)
        assert not pending.done()  # still not there
        source.update(SNAPSHOT)
        status, body = await pending
        assert status == 200
        assert body == {"underlying": "NIFTY", "strikes": {}}
        # Once carried, reads are served at once and not asked for again (until KEEP_S / 3).
        status, _ = await _status_and_body(http, "/api/chain/NIFTY")
        assert status == 200
        assert asked == [["chains"]]
        status, _ = await _status_and_body(http, "/api/smart-money/dark-pools")
        assert asked == [["chains"], ["contracts"]]


# ---- unexpected errors: once per kind, with a count ----------------------------------------------


class Broken(SnapshotSource):
    """A source with a fault in one view (the kind of bug a 500 is for)."""

    def correlation(self) -> dict[str, Any]:
        return self._s.status["BANKNIFTY"]  # type: ignore[no-any-return]


async def test_a_burst_of_failures_is_one_line_and_a_count() -> None:
    source = Broken(100, 100, 60.0, answered, lambda sections: None)
    source.update(SNAPSHOT)
    # A long interval, then one flush by hand: the lines do not depend on how fast this VM is.
    cfg = ApiConfig(listen="127.0.0.1:0", error_log_interval_s=3600)
    with capture_logs() as logs:
        async with serving(cfg, source=source) as (server, http):

            async def one() -> None:
                async with http.get("/api/smart-money/correlation") as r:
                    assert r.status == 500
                    body = await r.json()
                    assert body == {"error": "internal error (logged)", "status": 500}

            for _ in range(5):
                await asyncio.gather(*(one() for _ in range(10)))
            first = [e for e in logs if e["event"] == "api.error"]
            server.errors.flush(3600)
    errors = [e for e in logs if e["event"] == "api.error"]
    assert len(first) == 1  # 50 failures so far, one line
    assert first[0]["count"] == 1
    assert first[0]["kind"].startswith("KeyError at test_server_limits.py:")
    assert "/api/smart-money/correlation" in first[0]["kind"]
    assert "BANKNIFTY" in first[0]["error"]
    (repeats,) = errors[1:]
    assert repeats["kind"] == first[0]["kind"]
    assert repeats["count"] == 49
    assert repeats["total"] == 50
    assert all("Traceback" not in json.dumps(e, default=str) for e in logs)
    assert not [e for e in logs if "exc_info" in e]


async def _until(probe: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not await probe():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {WAIT_S} s: {what}")
        await asyncio.sleep(0.02)


# ---- bounded concurrency, rate and time ---------------------------------------------------------


async def test_over_the_concurrency_limit_is_503_at_once() -> None:
    release = asyncio.Event()
    held = 0

    async def slow_kill(op: str, **kw: Any) -> dict[str, Any]:
        nonlocal held
        held += 1
        await release.wait()  # the trading loop is busy
        return {"kill_switch": True}

    cfg = ApiConfig(listen="127.0.0.1:0", max_concurrent=2)
    async with serving(cfg, slow_kill) as (server, http):
        bearer = {"Authorization": f"Bearer {KILL}"}
        pending = [asyncio.create_task(http.post("/api/kill", headers=bearer)) for _ in range(2)]

        async def both_held() -> bool:
            return held == 2

        await _until(both_held, "two kills in flight")
        # Both slots are taken and stay taken until `release`: this answer cannot wait for them.
        status, body = await _status_and_body(http, "/api/smart-money/status")
        assert status == 503
        assert "in flight" in body["error"]
        assert not any(t.done() for t in pending)
        release.set()
        for t in pending:
            async with await t as r:
                assert r.status == 200
        assert server.in_flight == 0
        status, _ = await _status_and_body(http, "/api/smart-money/status")
        assert status == 200


async def test_over_the_rate_is_429_with_retry_after() -> None:
    # Two a second: 30 requests in a row outrun it on any machine that answers one in 0.5 s.
    cfg = ApiConfig(listen="127.0.0.1:0", requests_per_second=2)
    async with serving(cfg) as (_, http):
        seen: dict[int, int] = {}
        for _ in range(30):
            async with http.get("/healthz") as r:
                seen[r.status] = seen.get(r.status, 0) + 1
                if r.status == 429:
                    assert r.headers["Retry-After"] == "1"
                    assert "too many requests" in (await r.json())["error"]
        assert seen.get(200, 0) >= 2
        assert seen.get(429, 0) >= 1


async def test_a_kill_the_trading_loop_does_not_answer_is_504() -> None:
    async def never(op: str, **kw: Any) -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    cfg = ApiConfig(listen="127.0.0.1:0", request_timeout_s=0.3)
    async with serving(cfg, never) as (server, http):
        async with http.post("/api/kill", headers={"Authorization": f"Bearer {KILL}"}) as r:
            assert r.status == 504
            assert "not answered" in (await r.json())["error"]
        assert server.in_flight == 0


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"POST /api/kill HTTP/1.1\r\nContent-"],
    ids=["idle", "half-sent headers", "half-sent line"],
)
async def test_idle_and_half_sent_connections_are_closed(sent: bytes) -> None:
    cfg = ApiConfig(listen="127.0.0.1:0", idle_timeout_s=0.3)
    async with serving(cfg) as (server, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(sent)
            await writer.drain()
            # The server closes it: EOF (or a 4xx then EOF), long before this generous bound.
            data = await asyncio.wait_for(reader.read(), WAIT_S)
            assert data == b"" or data.startswith(b"HTTP/1.")
            assert reader.at_eof()
        finally:
            writer.close()


async def test_a_kept_alive_connection_is_closed_once_idle() -> None:
    cfg = ApiConfig(listen="127.0.0.1:0", idle_timeout_s=0.3)
    async with serving(cfg) as (server, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
            assert head.startswith(b"HTTP/1.1 200")
            await asyncio.wait_for(reader.read(), WAIT_S)
            assert reader.at_eof()
        finally:
            writer.close()


# ---- the API token -------------------------------------------------------------------------------


async def test_with_an_api_token_every_route_needs_it() -> None:
    async with serving(api_token=API) as (_, http):
        for method, path, _ in ROUTES:
            url = path.replace("{underlying}", "NIFTY")
            if url.startswith("/api/kill"):
                continue
            for auth in (None, "", f"Bearer {API}x", f"Bearer {KILL}", API, "Bearer ²"):
                headers = {"Authorization": auth} if auth is not None else {}
                async with http.request(method, url, headers=headers) as r:
                    assert r.status == 401, (url, auth)
                    assert "api_token" in (await r.json())["error"]
            async with http.request(method, url, headers={"Authorization": f"Bearer {API}"}) as r:
                assert r.status == 200, url
        # Unknown routes are not revealed without the token.
        async with http.get("/nothing") as r:
            assert r.status == 401
        # The kill routes take the kill token (and only it).
        for auth, status in ((f"Bearer {API}", 401), (f"Bearer {KILL}", 200)):
            async with http.post("/api/kill", headers={"Authorization": auth}) as r:
                assert r.status == status, auth


# ---- aiohttp's own logs go through the redaction -------------------------------------------------


@pytest.fixture
def json_logs() -> Any:
    buf = io.StringIO()
    configure("json", "info", [KILL, API], stream=buf)
    try:
        yield buf
    finally:
        structlog.reset_defaults()
        root = logging.getLogger()
        root.handlers = [h for h in root.handlers if not isinstance(h, StdlibBridge)]


async def test_an_oversized_authorization_header_never_prints_the_token(json_logs: Any) -> None:
    async with serving() as (server, _):
        for raw in (
            b"Authorization: Bearer " + KILL.encode() + b"x" * 9000,
            b"Authorization: " + KILL.encode() + b"\x01",
            b"X-Kill: " + KILL.encode() + b"y" * 9000,
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + raw + b"\r\n\r\n")
            await writer.drain()
            reply = await asyncio.wait_for(reader.read(), WAIT_S)
            assert reply.startswith(b"HTTP/1.")
            assert b" 400 " in reply.split(b"\r\n")[0]
            writer.close()
    text = json_logs.getvalue()
    lines = [json.loads(x) for x in text.splitlines()]
    assert [x for x in lines if x.get("logger") == "aiohttp.server"]  # aiohttp did log them
    assert KILL not in text
    assert KILL[:8] not in text
