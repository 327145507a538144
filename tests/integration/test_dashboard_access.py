"""Who may open ``/ui`` and its stream, and the stale banner on a feed stall, without a daemon.

A real ``ApiServer`` (the API process's server) runs on loopback in a thread of its own, over a
``SnapshotSource`` the test feeds snapshots to, as the daemon would over its channel. With an
``api_token`` every ``/ui`` path but the login form needs the token or the login's session
cookie (which is not the token); the stream refuses other sites' pages; nothing secret is ever
in what the page gets. The same rule holds on any listen address (a non-loopback one cannot
start without the token at all: tests/integration/test_api_exposure.py). In Chromium: the
login form opens the dashboard, and the "stale" banner shows when the health the daemon
publishes says the feed has stalled (the feed's data-stall rule) and when snapshots stop.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any
from urllib.parse import urlencode

import pytest
from support.browser import browser, new_page, shoot
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from smartflow.api.server import ApiServer
from smartflow.api.snapshot import ApiSnapshot, SnapshotSource
from smartflow.api.stream import StreamHub
from smartflow.api.ui import COOKIE, Dashboard
from smartflow.config import ApiConfig, Secret


__all__ = ["browser"]

API_TOKEN = "ui-api-token-8086-zz"
KILL_TOKEN = "ui-kill-token-6502-yy"
STALL = "feed stale: no market data for 21 s (data_stall_s 20)"


def snapshot(seq: int, problems: list[str] | None = None) -> ApiSnapshot:
    side = [101.5, 150_000, 0.131, 0.52, "LONG_BUILD_UP", ["NOISE_TRAP"]]
    ui = {
        "ts_ns": 1_764_820_000_000_000_000 + seq * 250_000_000,
        "columns": ["ltp", "oi", "iv", "delta", "buildup", "traps"],
        "chains": {
            "NIFTY": {
                "spot": 24001.5,
                "forward": 24020.0,
                "atm": 24000.0,
                "expiry": "2026-12-08",
                "strikes": [[24000.0 + 50 * i, side, side] for i in range(-3, 4)],
                "battle": None,
            }
        },
        "orders": [],
        "latency": {},
        "stale_stages": [],
        "positions": [],
        "pnl": {"realised": 0.0, "unrealised": float(seq)},
        "kill_switch": {"on": False, "reason": None},
    }
    return ApiSnapshot(
        seq=seq,
        full=seq == 1,
        underlyings=["NIFTY"],
        today="2026-12-04",
        status={"mode": "sim", "feed": {"sockets": 1}},
        healthy=not problems,
        health={"problems": problems or [], "ready": True},
        hidden_events=0,
        correlation={},
        signals=[],
        whales=[],
        ui=ui,
    )


class Served:
    """An ApiServer with the dashboard, on its own event loop in a thread."""

    def __init__(self, api_token: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.wanted: list[list[str]] = []
        self.source = SnapshotSource(100, 100, 1.5, self._command, self.wanted.append)
        self.source.update(snapshot(1))
        self.hub = StreamHub(self.source, True, _Log())
        self.server = ApiServer(
            ApiConfig(listen="127.0.0.1:0"),
            self.source,
            Secret(KILL_TOKEN),
            _Log(),
            Secret(api_token) if api_token else None,
            Dashboard(self.hub, api_token.encode(), 5.0),
        )
        self.call(self.server.start())
        self.port = self.server.port
        self.seq = 1

    async def _command(self, op: str, **kw: Any) -> dict[str, Any]:
        return {"op": op}

    def call(self, coro: Any) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(30)

    def publish(self, problems: list[str] | None = None) -> None:
        async def go() -> None:
            self.seq += 1
            snap = snapshot(self.seq, problems)
            self.source.update(snap)
            self.hub.on_snapshot(snap)

        self.call(go())

    def request(
        self, method: str, path: str, body: str = "", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request(method, path, body=body or None, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def close(self) -> None:
        self.call(self.hub.close())
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class _Log:
    def info(self, event: str, **kw: Any) -> None:
        pass

    warning = error = info


@pytest.fixture(scope="module")
def guarded() -> Iterator[Served]:
    s = Served(API_TOKEN)
    yield s
    s.close()


@pytest.fixture(scope="module")
def open_loopback() -> Iterator[Served]:
    s = Served("")
    yield s
    s.close()


def _login(s: Served, token: str) -> tuple[int, dict[str, str], bytes]:
    return s.request(
        "POST",
        "/ui/login",
        urlencode({"token": token}),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )


def test_with_a_token_the_ui_needs_it(guarded: Served) -> None:
    status, headers, _ = guarded.request("GET", "/ui/")
    assert (status, headers["location"]) == (303, "/ui/login")
    for path in ("/ui/static/app.js", "/ui/static/vendor/uplot/uPlot.esm.js", "/ui/stream"):
        assert guarded.request("GET", path)[0] == 401, path
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{guarded.port}/ui/stream").close()
    assert refused.value.response.status_code == 401
    status, _, body = guarded.request("GET", "/ui/login")
    assert status == 200
    assert b'name="token"' in body
    assert API_TOKEN.encode() not in body
    status, headers, body = _login(guarded, "wrong-token")
    assert status == 401
    assert "set-cookie" not in headers
    assert b"Wrong token" in body


def test_login_sets_a_session_cookie_that_is_not_the_token(guarded: Served) -> None:
    status, headers, _ = _login(guarded, API_TOKEN)
    assert (status, headers["location"]) == (303, "/ui/")
    cookie = headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert API_TOKEN not in cookie
    value = cookie.split(";", 1)[0]
    status, headers, body = guarded.request("GET", "/ui/", headers={"Cookie": value})
    assert status == 200
    assert b"<title>smartflow</title>" in body
    assert "default-src 'self'" in headers["content-security-policy"]
    assert guarded.request("GET", "/ui/static/app.js", headers={"Cookie": value})[0] == 200
    # A bearer token works as well (scripts); a forged cookie does not.
    bearer = {"Authorization": f"Bearer {API_TOKEN}"}
    assert guarded.request("GET", "/ui/static/app.js", headers=bearer)[0] == 200
    forged = {"Cookie": f"{COOKIE}={API_TOKEN}"}
    assert guarded.request("GET", "/ui/static/app.js", headers=forged)[0] == 401
    with connect(
        f"ws://127.0.0.1:{guarded.port}/ui/stream", additional_headers={"Cookie": value}
    ) as ws:
        hello = json.loads(ws.recv(10))
        assert hello["type"] == "hello"
        assert hello["kill_enabled"] is True
        text = json.dumps(hello)
        assert API_TOKEN not in text
        assert KILL_TOKEN not in text
        guarded.publish()
        tick = json.loads(ws.recv(10))
        assert tick["type"] == "tick"
        assert tick["ui"]["chains"]["NIFTY"]["atm"] == 24000.0
        assert API_TOKEN not in json.dumps(tick)
    # An open stream asks the trading loop for what it shows.
    assert ["ui", "summaries"] in guarded.wanted


def test_the_stream_refuses_other_sites(open_loopback: Served) -> None:
    url = f"ws://127.0.0.1:{open_loopback.port}/ui/stream"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, origin="http://evil.example").close()  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403
    with connect(url, origin=f"http://127.0.0.1:{open_loopback.port}") as ws:  # type: ignore[arg-type]
        assert json.loads(ws.recv(10))["type"] == "hello"


def test_loopback_without_a_token_is_open(open_loopback: Served) -> None:
    status, _, body = open_loopback.request("GET", "/ui/")
    assert status == 200
    assert b"app.js" in body
    status, headers, _ = open_loopback.request("GET", "/ui/login")
    assert (status, headers["location"]) == (303, "/ui/")
    assert open_loopback.request("GET", "/ui/static/nope.js")[0] == 404
    assert open_loopback.request("GET", "/ui/static/../server.py")[0] == 404


def test_stale_banner_on_a_feed_stall_and_when_snapshots_stop(
    browser: Any, open_loopback: Served
) -> None:
    page, log = new_page(browser)
    try:
        page.goto(f"http://127.0.0.1:{open_loopback.port}/ui/")
        page.wait_for_selector("#conn.ok")

        def publish_until(selector: str, visible: bool, problems: list[str] | None) -> None:
            deadline = time.monotonic() + 30
            while page.locator(selector).is_visible() != visible:
                assert time.monotonic() < deadline, (selector, visible)
                open_loopback.publish(problems)
                time.sleep(0.3)

        publish_until("#ladder tr.atm", True, None)
        assert page.locator("#stale").is_hidden()
        publish_until("#stale", True, [STALL])
        assert STALL in page.locator("#stale").inner_text()
        shoot(page, "dashboard-feed-stall")
        publish_until("#stale", False, None)
        # No snapshot for longer than stale_after_s (1.5 s here): the hub says so.
        page.wait_for_selector("#stale", state="visible", timeout=20_000)
        assert "no snapshot" in page.locator("#stale").inner_text()
        assert log.errors == [], log.errors
    finally:
        page.context.close()


def test_the_login_form_opens_the_dashboard_in_the_browser(browser: Any, guarded: Served) -> None:
    page, log = new_page(browser)
    try:
        page.goto(f"http://127.0.0.1:{guarded.port}/ui/")
        page.wait_for_selector("input[name=token]")
        assert page.url.endswith("/ui/login")
        page.fill("input[name=token]", API_TOKEN)
        page.click("button[type=submit]")
        page.wait_for_selector("#conn.ok")
        deadline = time.monotonic() + 30
        while not page.locator("#ladder tr.atm").is_visible():
            assert time.monotonic() < deadline
            guarded.publish()
            time.sleep(0.3)
        # The cookie is HttpOnly: the page's scripts cannot read it, let alone the token.
        assert page.evaluate("document.cookie") == ""
        assert API_TOKEN not in page.content()
        assert log.errors == [], log.errors
    finally:
        page.context.close()
