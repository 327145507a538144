"""The HTTP API of a real daemon in sim mode, over real loopback HTTP.

One daemon serves the whole module (a second one, without a kill token, checks the 403): its
simulated session runs three times faster than the wall clock with two-second bars, so a few
bars, signals and whale alerts exist before the first request, and it injects a whale print and
an iceberg 24 simulated seconds in, once the daemon is surely subscribed. Synchronisation is by
polling the API itself, never by sleeping for a fixed time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
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
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from smartflow.api.server import ROUTES, ApiServer
from smartflow.api.snapshot import ApiSnapshot, SnapshotSource
from smartflow.app.daemon import Daemon, RunOptions
from smartflow.app.warmup import warm_up
from smartflow.config import (
    ApiConfig,
    Config,
    Credentials,
    DetectorConfig,
    MarketConfig,
    ScenarioConfig,
    Secret,
    SimConfig,
)
from smartflow.kernels.flow import RECOMMENDATION_NAMES, URGENCY_NAMES
from smartflow.sim.market import GroundTruth


pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

KILL_TOKEN = "kill-me-softly-1234"
# The first start in a fresh numba cache compiles every kernel.
START_TIMEOUT_S = 180.0
WAIT_S = 60.0
WHALE_RUPEES = 400_000.0

CONTRACT_METRICS = {
    "obv",
    "vwap",
    "atp",
    "vwap_deviation_pct",
    "vwap_deviated",
    "cvd",
    "cvd_confident_share",
    "cvd_recent_share",
    "ofi",
    "ofi_recent_norm",
    "pressure",
    "depth_imbalance",
    "urgency",
    "whale_value_max",
    "hidden_volume",
    "hidden_bid",
    "hidden_ask",
    "hidden_share",
    "hidden_recent_share",
    "absorption",
}
CONTRACT_ID = {"token", "symbol", "strike", "option_type", "ltp"}
CONFLUENCE = {
    "ts",
    "score",
    "recommendation",
    "size_multiplier",
    "urgency",
    "timing_window_s",
    "signal",
    "inputs",
}
WHALE = {
    "ts",
    "ts_ns",
    "underlying",
    "token",
    "symbol",
    "strike",
    "option_type",
    "side",
    "quantity",
    "price",
    "value",
    "avg_interval_quantity",
    "impact",
}
HIDDEN = {
    "hidden_volume",
    "hidden_bid",
    "hidden_ask",
    "hidden_share",
    "hidden_recent_share",
    "absorption",
}
CHAIN_SIDE = {
    "token",
    "strike",
    "ltp",
    "bid",
    "ask",
    "volume",
    "oi",
    "iv",
    "delta",
    "gamma",
    "theta",
    "vega",
    "oi_buildup",
    "volume_state",
    "fresh_position",
    "trap_types",
    "can_trade",
}


EMPTY = ApiSnapshot(
    seq=1,
    full=True,
    underlyings=["NIFTY"],
    today="2026-01-05",
    status={},
    healthy=True,
    health={"problems": [], "ready": True},
    hidden_events=0,
    correlation={},
    signals=[],
    whales=[],
)


async def _no_command(op: str, **kw: Any) -> dict[str, Any]:
    raise AssertionError(f"{op} must not reach the trading loop")


def config(state_dir: Path, **sim: Any) -> Config:
    """Sim mode on an ephemeral loopback port with a whale and an iceberg scenario."""
    kw: dict[str, Any] = {
        "ticks_per_second": 40.0,
        "speed": 3.0,
        "strikes_each_side": 10,
        "scenarios": [
            # Late enough that the daemon has subscribed: a print before that is invisible.
            ScenarioConfig(kind="whale", start_s=24, strength=10, strike_offset=3),
            ScenarioConfig(kind="iceberg", start_s=24, duration_s=200, strength=3, side="PE"),
        ],
    }
    kw.update(sim)
    return Config(
        state_dir=str(state_dir),
        api=ApiConfig(listen="127.0.0.1:0"),
        market=MarketConfig(strikes_each_side=5),
        # Only the value rule: ₹4 lakh (the strength-10 whale is ~₹5 lakh, the future's every
        # lot ₹18 lakh); the volume-spike rule is pushed out of the way.
        detectors=DetectorConfig(
            bar_seconds=2, whale_value_rupees=WHALE_RUPEES, whale_volume_multiple=1000.0
        ),
        sim=SimConfig(**kw),
    )


@dataclass
class Api:
    daemon: Daemon
    http: aiohttp.ClientSession
    logs: list[dict[str, Any]]
    ready_ns: int
    """Simulated time at which the daemon was subscribed and ready."""

    async def get(self, path: str, status: int = 200, **kw: Any) -> Any:
        async with self.http.get(path, **kw) as r:
            assert r.status == status, (path, r.status, await r.text())
            assert r.content_type == "application/json", (path, r.content_type)
            return await r.json()

    async def status(self) -> dict[str, Any]:
        body: dict[str, Any] = await self.get("/api/smart-money/status")
        return body


async def until(probe: Callable[[], Awaitable[bool]], what: str, within: float = WAIT_S) -> None:
    """Poll ``probe`` until it holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.05)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    cfg = config(tmp_path_factory.mktemp("api") / "state")
    # Compile (or load) the kernels first: the simulated session starts when the daemon does,
    # and a cold JIT inside start() would let the scenarios play out before we subscribe.
    await asyncio.to_thread(warm_up, cfg.model, cfg.detectors)
    with capture_logs() as logs:
        daemon = Daemon(cfg, Credentials(kill_token=Secret(KILL_TOKEN)), RunOptions())
        try:
            await asyncio.wait_for(daemon.start(), START_TIMEOUT_S)
            assert daemon.api is not None
            base = f"http://127.0.0.1:{daemon.api.port}"
            async with aiohttp.ClientSession(base_url=base) as http:
                a = Api(daemon, http, logs, daemon.clock.now_ns())

                async def warmed_up() -> bool:
                    s = await a.status()
                    signals = (await a.get("/api/signals"))["signals"]
                    whales = (await a.get("/api/smart-money/whale-alerts"))["alerts"]
                    return bool(
                        s["ready"] and s["engine"]["bars"] >= 6 and len(signals) >= 2 and whales
                    )

                await until(warmed_up, "6 bars, 2 signals and a whale alert")
                yield a
        finally:
            await daemon.shutdown()


def _iso(text: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(text)
    assert when.utcoffset() == dt.timedelta(hours=5, minutes=30), text
    return when


def _finite_or_none(x: Any) -> bool:
    return x is None or (isinstance(x, int | float) and math.isfinite(x))


def _check_contract_metrics(m: dict[str, Any]) -> None:
    assert set(m) >= CONTRACT_METRICS, CONTRACT_METRICS - set(m)
    assert m["urgency"] in URGENCY_NAMES
    assert isinstance(m["vwap_deviated"], bool)
    assert isinstance(m["absorption"], bool)
    for k in CONTRACT_METRICS - {"urgency", "vwap_deviated", "absorption"}:
        assert _finite_or_none(m[k]), (k, m[k])


# ---- the six smart-money endpoints ------------------------------------------------------------


async def test_status(api: Api) -> None:
    s = await api.status()
    assert s["mode"] == "sim"
    assert s["broker"] == "paper"
    assert s["ready"] is True
    assert s["underlyings"] == ["NIFTY"]
    assert s["uptime_s"] >= 0
    assert s["feed"]["sockets"] >= 1
    assert s["feed"]["tokens"] > 2
    assert s["feed"]["frames"] > 0
    assert s["engine"]["frames"] > 0
    assert s["engine"]["bars"] >= 6
    assert s["engine"]["rejected"] == {}
    assert s["signals_emitted"] >= 2
    assert s["kill_switch"] == {"on": False, "reason": ""}
    assert isinstance(s["orders"], dict)
    o = s["orders"]  # paper P&L gross and net of the fills' charges
    assert o["net_pnl"] == pytest.approx(o["gross_pnl"] - o["charges"], abs=0.011)


async def test_metrics_view(api: Api) -> None:
    body = await api.get("/api/smart-money/metrics")
    assert set(body) == {"underlyings"}
    n = body["underlyings"]["NIFTY"]
    assert {"spot", "forward", "future", "confluence", "signal", "zone"} <= set(n)
    assert n["spot"] > 0
    assert n["forward"] > 0
    fut = n["future"]
    _check_contract_metrics(fut)
    assert fut["underlying"] == "NIFTY"
    assert fut["ltp"] > 0
    assert fut["execution"] in RECOMMENDATION_NAMES
    assert fut["size_multiplier"] in (0.0, 0.5, 1.0, 1.5)
    assert set(n["confluence"]) >= CONFLUENCE
    assert n["signal"]["underlying"] == "NIFTY"
    assert isinstance(n["signal"]["ts_ns"], int)
    assert n["zone"]
    for c in n["zone"]:
        assert set(c) >= CONTRACT_ID
        assert c["option_type"] in ("CE", "PE")
        _check_contract_metrics(c)
    assert body == {"underlyings": {"NIFTY": body["underlyings"]["NIFTY"]}}
    filtered = await api.get("/api/smart-money/metrics?underlying=NIFTY")
    assert set(filtered["underlyings"]) == {"NIFTY"}


async def test_whale_alerts(api: Api) -> None:
    alerts = (await api.get("/api/smart-money/whale-alerts?limit=1000"))["alerts"]
    assert alerts
    for a in alerts:
        assert set(a) == WHALE
        assert a["underlying"] == "NIFTY"
        assert a["side"] in ("BUY", "SELL")
        assert a["option_type"] in ("FUT", "CE", "PE")
        assert (a["strike"] is None) == (a["option_type"] == "FUT")
        assert a["quantity"] > 0
        assert a["value"] == pytest.approx(a["quantity"] * a["price"], rel=1e-6, abs=0.01)
        assert _finite_or_none(a["impact"])
    times = [_iso(a["ts"]) for a in alerts]
    assert times == sorted(times)  # oldest first, newest last
    (newest,) = (await api.get("/api/smart-money/whale-alerts?limit=1"))["alerts"]
    assert _iso(newest["ts"]) >= times[-1]


async def scenario(api: Api, kind: str) -> GroundTruth:
    """The simulator's record of scenario ``kind`` once it has started."""
    market = api.daemon.sim.market if api.daemon.sim else None
    assert market is not None

    async def started() -> bool:
        return any(g.kind == kind for g in market.ground_truth)

    await until(started, f"the {kind} scenario")
    (gt,) = [g for g in market.ground_truth if g.kind == kind]
    assert api.ready_ns < gt.start_ns, f"the daemon subscribed after the {kind} began"
    return gt


async def test_whale_scenario_is_alerted(api: Api) -> None:
    # ₹50,000 × strength 10 of a call three strikes out of the money
    whale = await scenario(api, "whale")

    async def alerted() -> bool:
        alerts = (await api.get("/api/smart-money/whale-alerts?limit=1000"))["alerts"]
        return any(a["token"] == whale.token and a["value"] >= WHALE_RUPEES for a in alerts)

    await until(alerted, f"a whale alert of ≥ ₹{WHALE_RUPEES:,.0f} on {whale.token}")


async def test_whale_alerts_since(api: Api) -> None:
    alerts = (await api.get("/api/smart-money/whale-alerts?limit=1000"))["alerts"]
    cut = _iso(alerts[len(alerts) // 2]["ts"]).replace(microsecond=0)
    older = [a for a in alerts if _iso(a["ts"]) < cut]
    for since in (cut.isoformat(), str(int(cut.timestamp()) * 1_000_000_000)):
        query = {"limit": "1000", "since": since}
        later = (await api.get("/api/smart-money/whale-alerts", params=query))["alerts"]
        assert later, since
        assert all(_iso(a["ts"]) >= cut for a in later), since
        assert not [a for a in older if a in later], since
    future = (await api.get("/api/smart-money/whale-alerts?since=2999-01-01T00:00:00"))["alerts"]
    assert future == []
    mine = (await api.get("/api/smart-money/whale-alerts?underlying=NIFTY"))["alerts"]
    assert mine


async def test_whale_thresholds_come_from_config(api: Api) -> None:
    async def enough() -> bool:
        body = await api.get("/api/smart-money/whale-alerts?limit=1000")
        return len(body["alerts"]) >= 20

    await until(enough, "20 whale alerts")
    alerts = (await api.get("/api/smart-money/whale-alerts?limit=1000"))["alerts"]
    low = [a for a in alerts if a["value"] < WHALE_RUPEES]
    assert not low, f"{len(low)} alerts below the configured ₹{WHALE_RUPEES:,.0f}: {low[0]}"


async def test_order_flow(api: Api) -> None:
    rows = (await api.get("/api/smart-money/order-flow"))["contracts"]
    assert rows
    for r in rows:
        assert {"underlying", *CONTRACT_ID} <= set(r)
        _check_contract_metrics(r)
    fut = api.daemon.book.chains[0].universe.future if api.daemon.book else None
    assert fut is not None
    assert rows[0]["token"] == fut.token
    assert rows[0]["option_type"] == "FUT"
    (one,) = (await api.get(f"/api/smart-money/order-flow?token={fut.token}"))["contracts"]
    assert one["token"] == fut.token
    assert one["symbol"] == fut.symbol
    both = await api.get(f"/api/smart-money/order-flow?underlying=NIFTY&token={fut.token}")
    assert [c["token"] for c in both["contracts"]] == [fut.token]


async def test_dark_pools(api: Api) -> None:
    iceberg = await scenario(api, "iceberg")

    async def iceberg_seen() -> bool:
        body = await api.get("/api/smart-money/dark-pools")
        return any(c["token"] == iceberg.token and c["hidden_bid"] > 0 for c in body["contracts"])

    await until(iceberg_seen, f"hidden bid liquidity on the iceberg {iceberg.token}")
    body = await api.get("/api/smart-money/dark-pools?underlying=NIFTY")
    assert set(body) == {"note", "hidden_events", "contracts"}
    assert "no dark pools" in body["note"]
    assert body["hidden_events"] >= 1
    volumes = [c["hidden_volume"] for c in body["contracts"]]
    assert volumes == sorted(volumes, reverse=True)
    for c in body["contracts"]:
        assert {"underlying", *CONTRACT_ID, *HIDDEN} <= set(c)
        assert c["hidden_volume"] > 0
        assert c["hidden_bid"] + c["hidden_ask"] == pytest.approx(c["hidden_volume"])
        assert isinstance(c["absorption"], bool)


async def test_correlation(api: Api) -> None:
    body = await api.get("/api/smart-money/correlation")
    conf = body["underlyings"]["NIFTY"]
    assert set(conf) == CONFLUENCE
    assert -1.0 <= conf["score"] <= 1.0
    assert conf["recommendation"] in RECOMMENDATION_NAMES
    expected = {"HOLD": 0.0, "CAUTIOUS_EXECUTE": 0.5, "EXECUTE": 1.0, "STRONG_EXECUTE": 1.5}
    assert conf["size_multiplier"] == expected[conf["recommendation"]]
    assert conf["urgency"] in URGENCY_NAMES
    assert 30.0 <= conf["timing_window_s"] <= 300.0
    assert conf["signal"] in ("BUY_CALL", "BUY_PUT", "NEUTRAL", "AVOID")
    _iso(conf["ts"])
    assert set(conf["inputs"]) == {
        "cvd_recent_share",
        "ofi_recent_norm",
        "vwap_side",
        "signal_direction",
        "signal_strength",
    }


# ---- chain, signals, health, metrics, OpenAPI ----------------------------------------------


async def test_chain(api: Api) -> None:
    body = await api.get("/api/chain/NIFTY")
    assert {"underlying", "expiry", "spot", "forward", "strikes"} <= set(body)
    assert body["underlying"] == "NIFTY"
    dt.date.fromisoformat(body["expiry"])
    assert body["spot"] > 0
    strikes = body["strikes"]
    assert len(strikes) >= 5
    full = 0
    for key, sides in strikes.items():
        assert set(sides) <= {"CE", "PE"}
        for side, row in sides.items():
            assert set(row) >= CHAIN_SIDE, CHAIN_SIDE - set(row)
            assert f"{row['strike']:g}" == key
            assert row["volume"] > 0
            assert row["oi"] > 0
            assert isinstance(row["trap_types"], list)
            assert isinstance(row["can_trade"], bool)
            assert isinstance(row["oi_buildup"], str)
            if row["delta"] is not None:
                assert (0 < row["delta"] < 1) if side == "CE" else (-1 < row["delta"] < 0)
            if row["bid"] is not None and row["ask"] is not None:
                assert row["bid"] <= row["ask"]
        full += set(sides) == {"CE", "PE"}
    assert full >= 3
    keys = sorted(strikes, key=float)
    assert list(strikes) == keys  # strike order


async def test_signals_since_and_limit(api: Api) -> None:
    signals = (await api.get("/api/signals?limit=1000"))["signals"]
    assert len(signals) >= 2
    for s in signals:
        assert s["underlying"] == "NIFTY"
        assert isinstance(s["ts_ns"], int)
        assert _iso(s["ts"]).timestamp() * 1e9 == pytest.approx(s["ts_ns"], abs=1e3)
    stamps = [s["ts_ns"] for s in signals]
    assert stamps == sorted(stamps)
    first = signals[0]
    by_ns = (await api.get(f"/api/signals?limit=1000&since={first['ts_ns']}"))["signals"]
    assert by_ns[: len(signals) - 1] == signals[1:]  # exclusive; newer ones may have arrived
    for since in (first["ts"], first["ts"].removesuffix("+05:30")):  # offset given or IST
        body = await api.get("/api/signals", params={"limit": "1000", "since": since})
        by_iso = body["signals"]
        assert by_iso[: len(signals) - 1] == signals[1:], since
    (newest,) = (await api.get("/api/signals?limit=1"))["signals"]
    assert newest["ts_ns"] >= signals[-1]["ts_ns"]
    assert (await api.get("/api/signals?underlying=NIFTY&limit=1"))["signals"]
    assert (await api.get(f"/api/signals?since={2**62}"))["signals"] == []


async def test_healthz(api: Api) -> None:
    body = await api.get("/healthz")
    assert body == {"healthy": True, "problems": [], "ready": True}


async def test_prometheus(api: Api) -> None:
    async with api.http.get("/metrics") as r:
        assert r.status == 200
        assert r.content_type == "text/plain"
        text = await r.text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    frames = families["smartflow_frames"]
    assert frames.type == "counter"
    assert sum(s.value for s in frames.samples) > 0
    assert {s.labels["mode"] for s in frames.samples} == {"SNAP_QUOTE"}
    assert families["smartflow_frames_rejected"].type == "counter"
    depth = families["smartflow_queue_depth"]
    assert depth.type == "gauge"
    assert {s.labels["queue"] for s in depth.samples} >= {"feed_mailbox", "intents"}
    for name in (
        "smartflow_engine_batch_seconds",
        "smartflow_tick_to_signal_seconds",
        "smartflow_tick_to_intent_seconds",
        "smartflow_tick_to_order_sent_seconds",
        "smartflow_event_loop_lag_seconds",
    ):
        h = families[name]
        assert h.type == "histogram", name
        assert any(s.name == f"{name}_bucket" and s.labels["le"] == "+Inf" for s in h.samples)
    count = {s.name: s.value for f in families.values() for s in f.samples}
    assert count["smartflow_engine_batch_seconds_count"] > 0
    assert count["smartflow_tick_to_signal_seconds_count"] >= 2
    assert count["smartflow_bars_total"] >= 6
    assert count["smartflow_ready"] == 1.0
    assert count["smartflow_kill_switch"] == 0.0


async def test_openapi_is_valid_and_lists_every_route(api: Api) -> None:
    spec = await api.get("/api/openapi.json")
    validate(spec)
    assert spec["openapi"].startswith("3.1")
    served = {(path, method) for method, path, _ in ROUTES}
    documented = {(path, m.upper()) for path, ops in spec["paths"].items() for m in ops}
    assert documented == served
    enum = spec["paths"]["/api/smart-money/metrics"]["get"]["parameters"][0]["schema"]["enum"]
    assert enum == ["NIFTY"]


# ---- errors -----------------------------------------------------------------------------------

GET_ROUTES = [
    "/api/smart-money/metrics",
    "/api/smart-money/whale-alerts",
    "/api/smart-money/order-flow",
    "/api/smart-money/dark-pools",
    "/api/smart-money/correlation",
    "/api/smart-money/status",
    "/api/chain/NIFTY",
    "/api/signals",
    "/api/openapi.json",
]


async def _bad(api: Api, url: str, status: int = 400) -> str:
    async with api.http.get(url) as r:
        body = await r.json()
        assert r.status == status, (url, r.status, body)
    assert body["status"] == status
    assert isinstance(body["error"], str)
    assert body["error"]
    message: str = body["error"]
    return message


@pytest.mark.parametrize("path", GET_ROUTES)
async def test_unknown_query_key_is_400(api: Api, path: str) -> None:
    message = await _bad(api, f"{path}?bogus=1")
    assert "unknown query parameter `bogus`" in message


@pytest.mark.parametrize(
    ("url", "mentions"),
    [
        ("/api/signals?limit=0", "limit"),
        ("/api/signals?limit=abc", "limit"),
        ("/api/signals?limit=1001", "limit"),
        ("/api/signals?limit=2.5", "limit"),
        ("/api/smart-money/whale-alerts?limit=-1", "limit"),
        ("/api/signals?since=yesterday", "since"),
        ("/api/signals?since=-5", "since"),
        ("/api/smart-money/whale-alerts?since=2026-13-01T00:00:00", "since"),
        ("/api/smart-money/metrics?underlying=BANKNIFTY", "underlying"),
        ("/api/smart-money/order-flow?underlying=nifty", "underlying"),
        ("/api/smart-money/dark-pools?underlying=SENSEX", "underlying"),
        ("/api/smart-money/whale-alerts?underlying=X", "underlying"),
        ("/api/signals?underlying=X", "underlying"),
        ("/api/smart-money/order-flow?token=abc", "token"),
        ("/api/smart-money/order-flow?token=12a", "token"),
        ("/api/smart-money/order-flow?token=99999999", "token"),
        ("/api/smart-money/correlation?underlying=NIFTY", "unknown query parameter"),
    ],
)
async def test_bad_parameter_is_400_with_a_message(api: Api, url: str, mentions: str) -> None:
    message = await _bad(api, url)
    assert mentions in message


async def test_unknown_chain_and_route_are_404(api: Api) -> None:
    message = await _bad(api, "/api/chain/BANKNIFTY", 404)
    assert "BANKNIFTY" in message
    assert "NIFTY" in message  # names what is configured
    await _bad(api, "/api/nothing-here", 404)


async def test_wrong_method_is_405(api: Api) -> None:
    async with api.http.post("/api/signals") as r:
        assert r.status == 405
        assert (await r.json())["status"] == 405
    async with api.http.get("/api/kill") as r:
        assert r.status == 405


# ---- kill switch --------------------------------------------------------------------------------


async def _post(api: Api, path: str, token: str | None, **kw: Any) -> tuple[int, Any]:
    headers = {"Authorization": token} if token is not None else {}
    async with api.http.post(path, headers=headers, **kw) as r:
        return r.status, await r.json()


async def test_kill_switch_needs_the_token(api: Api) -> None:
    bearer = f"Bearer {KILL_TOKEN}"
    for token in (None, "", "Bearer", "Bearer wrong", f"Basic {KILL_TOKEN}", f"{KILL_TOKEN}"):
        status, body = await _post(api, "/api/kill", token)
        assert status == 401, token
        assert body["error"]
        status, _ = await _post(api, "/api/kill/reset", token)
        assert status == 401, token
    assert (await api.status())["kill_switch"]["on"] is False

    status, body = await _post(api, "/api/kill", bearer, data=b"{not json")
    assert status == 400
    assert "body" in body["error"]
    assert (await api.status())["kill_switch"]["on"] is False

    status, body = await _post(api, "/api/kill", bearer, json={"reason": "fire drill"})
    assert status == 200, body
    assert body["kill_switch"] is True
    assert body["reason"] == "fire drill"
    s = await api.status()
    assert s["kill_switch"] == {"on": True, "reason": "fire drill"}
    assert api.daemon.trading is not None
    assert api.daemon.trading.guard.killed
    async with api.http.get("/metrics") as r:
        assert "smartflow_kill_switch 1.0" in await r.text()

    status, body = await _post(api, "/api/kill/reset", bearer)
    assert status == 200, body
    assert body == {"kill_switch": False}
    assert (await api.status())["kill_switch"]["on"] is False


async def test_kill_switch_without_a_configured_token_is_403(api: Api, tmp_path: Path) -> None:
    # A second daemon, started with no kill_token credential at all.
    daemon = Daemon(config(tmp_path / "state", scenarios=[]), Credentials(), RunOptions())
    try:
        await asyncio.wait_for(daemon.start(), START_TIMEOUT_S)
        assert daemon.api is not None
        base = f"http://127.0.0.1:{daemon.api.port}"
        async with aiohttp.ClientSession(base_url=base) as http:
            for path in ("/api/kill", "/api/kill/reset"):
                for token in (None, f"Bearer {KILL_TOKEN}", "Bearer "):
                    headers = {"Authorization": token} if token is not None else {}
                    async with http.post(path, headers=headers) as r:
                        assert r.status == 403, (path, token)
                        assert "kill_token" in (await r.json())["error"]
            async with http.get("/api/smart-money/status") as r:
                assert (await r.json())["kill_switch"]["on"] is False
    finally:
        await daemon.shutdown()
    # An empty secret is no token either (the server's own guard, over a snapshot of nothing).
    source = SnapshotSource(10, 10, 60.0, _no_command, lambda sections: None)
    source.update(EMPTY)
    server = ApiServer(ApiConfig(listen="127.0.0.1:0"), source, Secret(""), structlog.get_logger())
    await server.start()
    try:
        async with api.http.post(
            f"http://127.0.0.1:{server.port}/api/kill",
            headers={"Authorization": "Bearer "},
        ) as r:
            assert r.status == 403
    finally:
        await server.stop()


# ---- the API never holds up the pipeline ------------------------------------------------------


async def test_the_engine_keeps_applying_ticks_under_api_load(api: Api) -> None:
    """200 clients hammer the API from another process (bounded in requests and time) while
    the engine keeps applying packets and closing bars; the API answers every request with
    data or a fast 429/503, never a 500 or a dropped connection."""
    engine = api.daemon.stages.engine
    assert api.daemon.api is not None
    base = f"http://127.0.0.1:{api.daemon.api.port}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "smartflow.bench.apiload",
        base,
        "--clients",
        "200",
        "--seconds",
        "6",
        "--requests",
        "20000",
        stdout=asyncio.subprocess.PIPE,
    )
    out_task = asyncio.create_task(proc.communicate())
    frames0, bars0 = engine.frames, engine.book.stats.bars_closed
    progressed_under_load = False
    while not out_task.done():
        if engine.frames > frames0 and engine.book.stats.bars_closed > bars0:
            progressed_under_load = True
        await asyncio.sleep(0.02)
    stdout, _ = await out_task
    assert proc.returncode == 0
    load = json.loads(stdout.splitlines()[-1])
    assert load["sent"] >= 200, load
    assert set(load["statuses"]) <= {"200", "429", "503"}, load
    assert load["statuses"].get("200", 0) > 0, load
    assert not load["errors"], load
    assert progressed_under_load, "the engine applied nothing while the API was under load"

    async def served() -> bool:
        async with api.http.get("/api/smart-money/status") as r:
            return r.status == 200

    await until(served, "the API serving again once the load stops")


async def test_no_handler_failed(api: Api) -> None:
    """Every read route, asked well and badly, leaves no handler failure and no error log."""

    async def status_of(path: str) -> int:
        # The earlier load test may have spent this second's request budget: 429 is the limiter
        # speaking, not a handler, so ask again (the deadline is ``until``'s).
        got: list[int] = []

        async def answered() -> bool:
            async with api.http.get(path) as r:
                await r.read()
                got.append(r.status)
            return got[-1] != 429

        await until(answered, f"{path} answered without 429")
        return got[-1]

    mark = len(api.logs)
    for path in (*GET_ROUTES, "/metrics"):
        assert await status_of(path) == 200, path
    assert await status_of("/healthz") in (200, 503)  # a verdict either way, never a 500
    for path in GET_ROUTES:
        assert await status_of(f"{path}?no_such_key=1") == 400, path
    assert await status_of("/api/chain/NOSUCH") == 404
    assert await status_of("/api/no-such-route") == 404
    logs = api.logs[mark:]
    errors = [e for e in logs if e.get("event") == "api.error" or e.get("log_level") == "error"]
    assert not errors, errors[:3]
