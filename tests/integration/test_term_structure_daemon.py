"""A daemon in sim mode with ``[market] expiries = 2``, over real loopback sockets.

Both the near and the next weekly expiry are subscribed (ATM ± 3 each, one index, one future),
fill, and are summarised; the near summary carries the term structure of ATM IV, which must
agree with each chain's own ATM IV and time to expiry. At start the daemon loads yesterday's
closing OI from the simulator's historical OI endpoint, so ΔOI of both expiries is measured
from the simulator's previous close (``doi_source = "oi_data"``). The same shows in the
Prometheus gauges, the OpenAPI schema and the one-minute history.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
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
from smartflow.sim.market import Market


pytestmark = [pytest.mark.slow]

START_TIMEOUT_S = 180.0
WAIT_S = 90.0
EACH_SIDE = 3


def _config(state_dir: Path) -> Config:
    return Config(
        state_dir=str(state_dir),
        api=ApiConfig(listen="127.0.0.1:0"),
        market=MarketConfig(strikes_each_side=EACH_SIDE, expiries=2),
        detectors=DetectorConfig(bar_seconds=2),
        sim=SimConfig(ticks_per_second=80.0, speed=3.0, strikes_each_side=6),
        history=HistoryConfig(prev_close_requests_per_s=2.5),
    )


async def _until(probe: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT_S} s: {what}")
        await asyncio.sleep(0.1)


async def _get(http: aiohttp.ClientSession, path: str) -> Any:
    async with http.get(path) as r:
        assert r.status == 200, (path, r.status, await r.text())
        return await r.json()


async def test_two_expiries_fill_with_term_structure_and_doi_from_oi_data(tmp_path: Path) -> None:
    cfg = _config(tmp_path / "state")
    await asyncio.to_thread(warm_up, cfg.model, cfg.detectors)
    daemon = Daemon(cfg, Credentials(), RunOptions())
    want = 2 * EACH_SIDE + 1
    try:
        await asyncio.wait_for(daemon.start(), START_TIMEOUT_S)
        assert daemon.api is not None
        assert daemon.sim is not None
        async with aiohttp.ClientSession(f"http://127.0.0.1:{daemon.api.port}") as http:

            async def filled() -> bool:
                async with http.get("/api/chain/NIFTY/summary") as r:
                    if r.status != 200:
                        return False
                    s = await r.json()
                nxt = s.get("next_expiry") or {}
                return (
                    s["strikes_seen"] >= want
                    and nxt.get("strikes_seen", 0) >= want
                    and s.get("doi_source") == "oi_data"
                    and nxt.get("doi_source") == "oi_data"
                    and s["volatility"]["atm_iv"] is not None
                    and nxt["volatility"]["atm_iv"] is not None
                )

            await _until(filled, "both expiries summarised with ΔOI from getOIData")
            s = await _get(http, "/api/chain/NIFTY/summary")
            _check_term(s)
            _check_doi(s, daemon.sim.market)
            await _check_gauges(http, s["next_expiry"]["expiry"])
            spec = await _get(http, "/api/openapi.json")
            route = spec["paths"]["/api/chain/{underlying}/summary"]["get"]
            props = route["responses"]["200"]["content"]["application/json"]["schema"]
            assert set(s) <= set(props["properties"])
            assert set(s["next_expiry"]) <= set(props["properties"]["next_expiry"]["properties"])

            async def recorded() -> bool:
                body = await _get(http, "/api/history/NIFTY")
                return any("term_structure" in x["summary"] for x in body["snapshots"])

            await _until(recorded, "a one-minute snapshot with the term structure")
            body = await _get(http, "/api/history/NIFTY")
            summary = next(x for x in body["snapshots"] if "term_structure" in x["summary"])
            assert "strikes" not in summary["summary"]["next_expiry"]
        # Index, future, and ATM ± 3 calls and puts of each expiry.
        assert daemon.feed is not None
        assert len(daemon.feed.subscribed) == 2 + 2 * 2 * want
        asked = daemon.sim.rest.requests_to("getOIData")
        assert len({r.body["symboltoken"] for r in asked}) == 2 * 2 * want
    finally:
        await daemon.shutdown()


def _check_term(s: dict[str, Any]) -> None:
    nxt = s["next_expiry"]
    ts = s["term_structure"]
    assert ts["near_expiry"] == s["expiry"] < ts["next_expiry"] == nxt["expiry"]
    assert "term_structure" not in nxt
    assert ts["near_atm_iv"] == s["volatility"]["atm_iv"]
    assert ts["next_atm_iv"] == nxt["volatility"]["atm_iv"]
    assert ts["near_t_years"] == s["t_years"] < ts["next_t_years"] == nxt["t_years"]
    near, later = ts["near_atm_iv"], ts["next_atm_iv"]
    assert 0.02 < near < 1.0
    assert 0.02 < later < 1.0
    assert ts["spread"] == pytest.approx(later - near, abs=2e-6)
    assert ts["ratio"] == pytest.approx(later / near, abs=2e-4)
    t1, t2 = ts["near_t_years"], ts["next_t_years"]
    fwd_var = (later**2 * t2 - near**2 * t1) / (t2 - t1)
    if fwd_var > 0:
        assert ts["forward_vol"] == pytest.approx(math.sqrt(fwd_var), rel=1e-3)
    else:
        assert ts["forward_vol"] is None


def _check_doi(s: dict[str, Any], market: Market) -> None:
    token = {
        (i.expiry.isoformat(), i.strike, i.kind): i.token
        for i in market.instruments
        if i.expiry is not None and i.kind in ("CE", "PE")
    }
    checked = 0
    for chain in (s, s["next_expiry"]):
        assert chain["doi_basis"] == "prev_close"
        assert "doi_note" not in chain  # every contract asked for was loaded
        for k in chain["strikes"]:
            for kind in ("CE", "PE"):
                oi = k[f"{kind.lower()}_oi"]
                if oi:
                    prev = market.prev_close_oi(token[(chain["expiry"], k["strike"], kind)])
                    assert prev is not None
                    assert k[f"{kind.lower()}_oi_change"] == oi - prev, (chain["expiry"], k)
                    checked += 1
    assert checked >= 2 * 2 * (2 * EACH_SIDE + 1)


async def _check_gauges(http: aiohttp.ClientSession, next_expiry: str) -> None:
    async with http.get("/metrics") as r:
        text = await r.text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    (atm,) = families["smartflow_chain_next_atm_iv"].samples
    assert atm.labels == {"underlying": "NIFTY", "expiry": next_expiry}
    assert 0.02 < atm.value < 1.0
    (spread,) = families["smartflow_chain_term_spread"].samples
    assert spread.labels == {"underlying": "NIFTY"}
    assert math.isfinite(spread.value)
