"""The daemon in live mode against the simulator's Angel REST, SmartStream and order updates.

Everything a live session does happens here over real sockets: TOTP login, the scrip master by
HTTP, SmartStream with the session's tokens, LIMIT orders to placeOrder, fills from the
order-update socket, the journal on disk. Only Angel's servers are replaced, by the simulator.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog

from smartflow.app.daemon import Daemon, RunOptions
from smartflow.config import (
    ApiConfig,
    Config,
    Credentials,
    DetectorConfig,
    FeedConfig,
    MarketConfig,
    OrdersConfig,
    RiskConfig,
    ScenarioConfig,
    Secret,
    SimConfig,
    StrategyConfig,
)
from smartflow.core.clock import ScaledClock
from smartflow.journal.store import Journal
from smartflow.sim.market import Market
from smartflow.sim.rest import ORDER_UPDATE_PATH
from smartflow.sim.server import SCRIP_MASTER_PATH, SimCredentials, SimServer, session_start


@pytest.mark.slow
async def test_live_daemon_trades_through_the_angel_gateway(tmp_path: Path) -> None:
    sim_cfg = SimConfig(
        seed=5,
        speed=10.0,
        ticks_per_second=150,
        scenarios=[
            ScenarioConfig(kind="fresh_position", start_s=60, duration_s=40, side="CE"),
            ScenarioConfig(
                kind="long_build_up", start_s=150, duration_s=40, side="PE", strike_offset=-1
            ),
            ScenarioConfig(
                kind="short_build_up", start_s=240, duration_s=40, side="CE", strike_offset=1
            ),
        ],
    )
    start_ns, day = session_start(sim_cfg.session_start_ist)
    market = Market(sim_cfg, ["NIFTY"], start_ns, day)
    server = SimServer(market, ScaledClock(start_ns, sim_cfg.speed), log=structlog.get_logger())
    await server.start()
    demo = SimCredentials()
    creds = Credentials(
        api_key=Secret(demo.api_key),
        client_code=Secret(demo.client_code),
        pin=Secret(demo.pin),
        totp_secret=Secret(demo.totp_secret),
    )
    ws = "ws" + server.http_url.removeprefix("http")
    cfg = Config(
        mode="live",
        state_dir=str(tmp_path / "state"),
        market=MarketConfig(scrip_master_url=server.http_url + SCRIP_MASTER_PATH),
        feed=FeedConfig(url=server.url),
        orders=OrdersConfig(
            broker="angel", rest_url=server.http_url, order_update_url=ws + ORDER_UPDATE_PATH
        ),
        # Live mode runs on the wall clock, whatever time of day CI runs at.
        risk=RiskConfig(enforce_market_hours=False),
        # This test is about the order path, not the entry thresholds: any tradable signal enters.
        strategy=StrategyConfig(
            exit_cutoff_ist="23:59", expiry_day_cutoff_ist="23:59", normal_entry_conviction=0.3
        ),
        api=ApiConfig(listen="127.0.0.1:0"),
        # Live bars run on the wall clock while the simulator runs 10x: a 1 s bar holds the
        # 10 simulated seconds of market a 5 s bar would at speed 2.
        detectors=DetectorConfig(bar_seconds=1),
    )
    daemon = Daemon(cfg, creds, RunOptions(live=True, duration=36.0), structlog.get_logger())
    try:
        assert await daemon.run() == 0
    finally:
        await server.stop()
    logins = server.rest.requests_to("loginByPassword")
    assert logins, "the daemon never logged in"
    placed = server.rest.requests_to("placeOrder")
    assert placed, "no order reached the broker"
    # Live sends LIMIT orders only, priced, and always under the daemon's own tag.
    for r in placed:
        assert r.body["ordertype"] == "LIMIT", r.body
        assert float(r.body["price"]) > 0, r.body
        assert r.tag.startswith("SF"), r.body
    journal = Journal(tmp_path / "state" / "journal.sqlite3", readonly=True)
    try:
        orders = journal.orders()
        fills = journal.fills()
    finally:
        journal.close()
    # Every journalled order reached placeOrder exactly once, under its own tag.
    for o in orders:
        if o.state not in ("NEW", "CANCELLED") or o.broker_order_id:
            assert len(server.rest.requests_to("placeOrder", tag=o.order_id)) == 1, o
            assert len(server.rest.orders_with_tag(o.order_id)) == 1
    assert fills, "no fill came back from the order-update stream or the order book"
    # What the journal holds as filled is exactly what the broker's book says was filled.
    filled: dict[str, int] = {}
    for f in fills:
        filled[f.order_id] = filled.get(f.order_id, 0) + f.quantity
    for order_id, quantity in filled.items():
        (at_broker,) = server.rest.orders_with_tag(order_id)
        assert at_broker.filled == quantity, (order_id, at_broker)
