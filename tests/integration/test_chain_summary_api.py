"""The chain summary and history of a real daemon in sim mode, over real loopback HTTP.

Before the daemon starts, its ``state_dir`` is seeded the way an earlier run (and
``smartflow history import-iv``) would have left it: 25 daily ATM-IV closes and yesterday's
closing OI of every option (1,000 units each). The daemon must then report IV rank from those
closes, ΔOI against yesterday's close (``doi_basis = "prev_close"``), serve the summary, its
Prometheus gauges and its OpenAPI entry, record one-minute snapshots, and at shutdown write
today's closing OI for tomorrow. Synchronisation is by polling, never by fixed sleeps.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from smartflow.app.daemon import Daemon, RunOptions
from smartflow.app.warmup import warm_up
from smartflow.config import (
    ApiConfig,
    Config,
    Credentials,
    DetectorConfig,
    HistoryConfig,
    MarketConfig,
    SimConfig,
)
from smartflow.journal.history import HistoryStore
from smartflow.sim.market import Market
from smartflow.sim.server import session_start


pytestmark = [pytest.mark.slow]

START_TIMEOUT_S = 180.0
WAIT_S = 60.0
PREV_OI = 1000


def _config(state_dir: Path) -> Config:
    return Config(
        state_dir=str(state_dir),
        api=ApiConfig(listen="127.0.0.1:0"),
        market=MarketConfig(strikes_each_side=5),
        detectors=DetectorConfig(bar_seconds=2),
        sim=SimConfig(ticks_per_second=60.0, speed=3.0, strikes_each_side=10),
        # The baselines under test are state_dir's (test_term_structure_daemon: getOIData's).
        history=HistoryConfig(prev_close_oi_data=False),
    )


def _seed(cfg: Config) -> tuple[dt.date, list[float]]:
    start_ns, day = session_start(cfg.sim.session_start_ist)
    market = Market(cfg.sim, ["NIFTY"], start_ns, day)
    store = HistoryStore(Path(cfg.state_dir) / "history.sqlite3")
    closes = [0.10 + 0.004 * i for i in range(25)]
    for i, iv in enumerate(closes):
        store.put_daily_iv("NIFTY", day - dt.timedelta(days=25 - i), iv, "import")
    options = {i.token: PREV_OI for i in market.instruments if i.kind in ("CE", "PE")}
    store.put_oi_close("NIFTY", day - dt.timedelta(days=1), options)
    # An older record must not be the one used.
    store.put_oi_close("NIFTY", day - dt.timedelta(days=2), dict.fromkeys(options, 7))
    store.close()
    return day, closes


async def _until(probe: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT_S} s: {what}")
        await asyncio.sleep(0.05)


async def _get(http: aiohttp.ClientSession, path: str, status: int = 200) -> Any:
    async with http.get(path) as r:
        assert r.status == status, (path, r.status, await r.text())
        return await r.json()


async def test_summary_history_gauges_and_openapi_of_a_running_daemon(tmp_path: Path) -> None:
    cfg = _config(tmp_path / "state")
    day, closes = _seed(cfg)
    await asyncio.to_thread(warm_up, cfg.model, cfg.detectors)
    daemon = Daemon(cfg, Credentials(), RunOptions())
    try:
        await asyncio.wait_for(daemon.start(), START_TIMEOUT_S)
        assert daemon.api is not None
        base = f"http://127.0.0.1:{daemon.api.port}"
        async with aiohttp.ClientSession(base_url=base) as http:

            async def summarized() -> bool:
                async with http.get("/api/chain/NIFTY/summary") as r:
                    if r.status == 503:
                        return False
                    body = await r.json()
                    return r.status == 200 and body["strikes_seen"] >= 11

            await _until(summarized, "a summary of the whole ATM ± 5 window")
            s = await _get(http, "/api/chain/NIFTY/summary")
            await _check_summary(s, closes)
            await _check_gauges(http)
            spec = await _get(http, "/api/openapi.json")
            validate(spec)
            route = spec["paths"]["/api/chain/{underlying}/summary"]["get"]
            schema = route["responses"]["200"]["content"]["application/json"]["schema"]
            # Every key is documented; only the two-expiry ones are absent with one expiry.
            assert set(schema["properties"]) - set(s) == {"term_structure", "next_expiry"}
            assert set(schema["properties"]["strikes"]["items"]["properties"]) == set(
                s["strikes"][0]
            )
            assert "/api/history/{underlying}" in spec["paths"]
            await _check_history(http, day)
            assert (await _get(http, "/api/chain/BANKNIFTY/summary", 404))["status"] == 404
            assert "interval" in (await _get(http, "/api/history/NIFTY?interval=2m", 400))["error"]
            assert "date" in (await _get(http, "/api/history/NIFTY?date=today", 400))["error"]
    finally:
        await daemon.shutdown()
    # At shutdown today's closing OI was written: tomorrow's ΔOI baseline.
    store = HistoryStore(Path(cfg.state_dir) / "history.sqlite3", readonly=True)
    closed_day, oi = store.prev_oi_close("NIFTY", day + dt.timedelta(days=1))
    store.close()
    assert closed_day == day
    assert len(oi) >= 22
    assert any(v != PREV_OI for v in oi.values())


async def _check_summary(s: dict[str, Any], closes: list[float]) -> None:
    assert s["underlying"] == "NIFTY"
    assert s["doi_basis"] == "prev_close"
    assert s["doi_prev_close_contracts"] >= 22
    assert s["doi_first_print_contracts"] == 0
    assert s["doi_source"] == "own_close"
    assert s["doi_note"] == "getOIData not asked ([history] prev_close_oi_data = false)"
    for k in s["strikes"]:
        if k["ce_oi"]:
            assert k["ce_oi_change"] == k["ce_oi"] - PREV_OI, k
        if k["pe_oi"]:
            assert k["pe_oi_change"] == k["pe_oi"] - PREV_OI, k
    ce = sum(k["ce_oi"] for k in s["strikes"])
    pe = sum(k["pe_oi"] for k in s["strikes"])
    assert s["pcr"]["oi"] == pytest.approx(pe / ce, abs=5e-5)
    pains = [k["pain"] for k in s["strikes"]]
    assert s["max_pain"]["strike"] == s["strikes"][pains.index(min(pains))]["strike"]
    # IV rank from the 25 seeded closes (0.100 … 0.196).
    r = s["iv_rank"]
    assert r["status"] == "ok"
    assert r["sessions"] == 25
    atm = s["volatility"]["atm_iv"]
    assert atm is not None
    lo, hi = min(closes), max(closes)
    assert r["iv_rank"] == pytest.approx(100 * (atm - lo) / (hi - lo), abs=0.02)
    assert r["iv_percentile"] == pytest.approx(100 * sum(c < atm for c in closes) / 25, abs=0.01)


async def _check_gauges(http: aiohttp.ClientSession) -> None:
    async with http.get("/metrics") as r:
        text = await r.text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    pcr = {s.labels["by"] for s in families["smartflow_chain_pcr"].samples}
    assert pcr == {"oi", "volume", "oi_change"}
    for name in (
        "smartflow_chain_max_pain",
        "smartflow_chain_atm_iv",
        "smartflow_chain_gex_rupees",
    ):
        samples = families[name].samples
        assert [s.labels["underlying"] for s in samples] == ["NIFTY"], name
    pain = families["smartflow_chain_max_pain"].samples[0].value
    assert 20_000 < pain < 30_000


async def _check_history(http: aiohttp.ClientSession, day: dt.date) -> None:
    async def recorded() -> bool:
        body = await _get(http, f"/api/history/NIFTY?date={day.isoformat()}")
        return len(body["snapshots"]) >= 1

    await _until(recorded, "a one-minute snapshot in the history")
    body = await _get(http, "/api/history/NIFTY")  # today by default
    assert body["date"] == day.isoformat()
    assert body["interval_minutes"] == 1
    snap = body["snapshots"][0]
    assert "strikes" not in snap["summary"]
    assert snap["summary"]["doi_basis"] == "prev_close"
    assert {r["option_type"] for r in snap["strikes"]} == {"CE", "PE"}
    for r in snap["strikes"]:
        if r["oi"]:
            assert r["oi_change"] == r["oi"] - PREV_OI
    every5 = await _get(http, "/api/history/NIFTY?interval=5m")
    assert 1 <= len(every5["snapshots"]) <= len(body["snapshots"])
