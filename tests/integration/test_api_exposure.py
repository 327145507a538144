"""A daemon whose API needs a token, and what its API process logs, through the daemon.

The daemon runs in sim mode with its API process, logging JSON lines (with the production
redactor) into a buffer. Requests come over real loopback HTTP and raw sockets. A non-loopback
``listen`` is never bound here: the refusal happens before anything listens, and the token
rule is the same whatever the address.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import structlog
from structlog.testing import capture_logs

from smartflow.api.server import ROUTES
from smartflow.app.daemon import Daemon, RunOptions
from smartflow.app.logging import StdlibBridge, configure
from smartflow.app.warmup import warm_up
from smartflow.config import (
    ApiConfig,
    Config,
    Credentials,
    DetectorConfig,
    MarketConfig,
    Secret,
    SimConfig,
)
from smartflow.core.errors import FatalError


pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

KILL = "kill-me-softly-1234"
API = "api-token-5678-abcd"
START_TIMEOUT_S = 180.0
WAIT_S = 60.0


def config(state_dir: Path, listen: str = "127.0.0.1:0") -> Config:
    return Config(
        state_dir=str(state_dir),
        api=ApiConfig(listen=listen, error_log_interval_s=2.0),
        market=MarketConfig(strikes_each_side=3),
        detectors=DetectorConfig(bar_seconds=2),
        sim=SimConfig(ticks_per_second=40.0, speed=3.0, strikes_each_side=6),
    )


async def until(probe: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT_S} s: {what}")
        await asyncio.sleep(0.05)


# ---- a non-loopback listen ----------------------------------------------------------------------


async def test_non_loopback_listen_without_a_token_is_refused(tmp_path: Path) -> None:
    daemon = Daemon(
        config(tmp_path / "state", "0.0.0.0:0"), Credentials(kill_token=Secret(KILL)), RunOptions()
    )
    with pytest.raises(FatalError, match="api_token") as e:
        await daemon.start()
    assert "SMARTFLOW_API_TOKEN" in str(e.value)
    assert "0.0.0.0:0" in str(e.value)
    assert daemon.api is None  # refused before anything listened
    await daemon.shutdown()


async def test_the_cli_refuses_it_with_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "cfg.toml").write_text('[api]\nlisten = "0.0.0.0:8321"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTFLOW_")}
    env.pop("CREDENTIALS_DIRECTORY", None)
    run = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "smartflow", "run", "--config", "cfg.toml", "--log-format", "json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1
    assert "Traceback" not in run.stdout + run.stderr
    (fatal,) = [x for x in map(json.loads, run.stdout.splitlines()) if x["event"] == "daemon.fatal"]
    assert "api_token" in fatal["error"]


async def test_a_token_and_a_non_loopback_listen_start_with_a_warning(tmp_path: Path) -> None:
    daemon = Daemon(
        config(tmp_path / "state", "0.0.0.0:0"), Credentials(api_token=Secret(API)), RunOptions()
    )
    with capture_logs() as logs:
        daemon._check_api_exposure()
    (warning,) = logs
    assert warning["event"] == "api.exposed"
    assert warning["log_level"] == "warning"
    assert warning["listen"] == "0.0.0.0:0"
    assert "api_token" in warning["note"]


# ---- a daemon with an API token -----------------------------------------------------------------


@dataclass
class Exposed:
    daemon: Daemon
    base: str
    logs: io.StringIO

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.logs.getvalue().splitlines()]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def exposed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Exposed]:
    cfg = config(tmp_path_factory.mktemp("exposed") / "state")
    await asyncio.to_thread(warm_up, cfg.model, cfg.detectors)
    buf = io.StringIO()
    creds = Credentials(kill_token=Secret(KILL), api_token=Secret(API))
    configure("json", "info", creds.values(), stream=buf)
    daemon = Daemon(cfg, creds, RunOptions())
    try:
        await asyncio.wait_for(daemon.start(), START_TIMEOUT_S)
        assert daemon.api is not None
        yield Exposed(daemon, f"http://127.0.0.1:{daemon.api.port}", buf)
    finally:
        await daemon.shutdown()
        structlog.reset_defaults()
        root = logging.getLogger()
        root.handlers = [h for h in root.handlers if not isinstance(h, StdlibBridge)]


async def test_every_route_needs_the_api_token(exposed: Exposed) -> None:
    async with aiohttp.ClientSession(base_url=exposed.base) as http:
        for method, path, _ in ROUTES:
            url = path.replace("{underlying}", "NIFTY")
            if url.startswith("/api/kill"):
                continue
            for auth in (None, f"Bearer {KILL}", f"Bearer {API[:-1]}", API):
                headers = {"Authorization": auth} if auth is not None else {}
                async with http.request(method, url, headers=headers) as r:
                    assert r.status == 401, (url, auth)
            # A chain summary exists from the first bar close on: before it, 503 (past the auth).
            allowed = {200, 503} if url.endswith("/summary") else {200}
            async with http.request(method, url, headers={"Authorization": f"Bearer {API}"}) as r:
                assert r.status in allowed, (url, await r.text())


async def test_the_kill_reaches_the_trading_loop_and_waits_for_it(exposed: Exposed) -> None:
    trading = exposed.daemon.trading
    assert trading is not None
    async with aiohttp.ClientSession(base_url=exposed.base) as http:
        async with http.post("/api/kill", headers={"Authorization": f"Bearer {API}"}) as r:
            assert r.status == 401  # the API token does not kill
        assert not trading.guard.killed
        bearer = {"Authorization": f"Bearer {KILL}"}
        async with http.post("/api/kill", headers=bearer, json={"reason": "drill"}) as r:
            assert r.status == 200
            assert (await r.json())["kill_switch"] is True
        # Answered only once the trading loop has tripped it, with a fresh snapshot sent first.
        assert trading.guard.killed
        status = {"Authorization": f"Bearer {API}"}
        async with http.get("/api/smart-money/status", headers=status) as r:
            assert (await r.json())["kill_switch"] == {"on": True, "reason": "drill"}
        async with http.post("/api/kill/reset", headers=bearer) as r:
            assert r.status == 200
        assert not trading.guard.killed


async def test_a_burst_of_bad_requests_is_one_line_per_kind_and_never_the_token(
    exposed: Exposed,
) -> None:
    port = int(exposed.base.rpartition(":")[2])
    burst = 30

    async def oversized() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                + KILL.encode()
                + b"x" * 9000
                + b"\r\n\r\n"
            )
            await writer.drain()
            return await asyncio.wait_for(reader.read(), WAIT_S)
        finally:
            writer.close()

    replies = await asyncio.gather(*(oversized() for _ in range(burst)))
    assert all(b" 400 " in r.split(b"\r\n")[0] for r in replies)

    def errors() -> list[dict[str, Any]]:
        return [
            x
            for x in exposed.lines()
            if x["event"] == "api.http_error" and "LineTooLong" in x["kind"]
        ]

    async def all_counted() -> bool:
        return sum(x["count"] for x in errors()) == burst

    await until(all_counted, f"{burst} oversized requests counted")
    lines = errors()
    assert lines[0]["count"] == 1
    assert lines[0]["stage"] == "api"
    assert len(lines) < burst // 2  # the first, then one line per 2 s interval
    text = exposed.logs.getvalue()
    assert KILL not in text
    assert API not in text
    assert KILL[:10] not in text
    assert "Traceback" not in text


async def test_a_killed_api_process_is_restarted_and_trading_carries_on(exposed: Exposed) -> None:
    api, engine = exposed.daemon.api, exposed.daemon.stages.engine
    assert api is not None
    assert api.proc is not None
    os.kill(api.proc.pid, signal.SIGKILL)  # the child this daemon started, by its pid
    frames0 = engine.frames

    async def restarted() -> bool:
        return api.restarts == 1

    await until(restarted, "the API process started again")
    events = [x["event"] for x in exposed.lines()]
    assert "api.process_exited" in events
    assert "api.restarted" in events
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{api.port}/api/smart-money/status"
        async with http.get(url, headers={"Authorization": f"Bearer {API}"}) as r:
            assert r.status == 200
            assert (await r.json())["ready"] is True

    async def ticking() -> bool:
        return engine.frames > frames0

    await until(ticking, "the engine applying packets after the restart")
