"""The daemon in live mode against the simulator's Angel REST, SmartStream and order updates.

Everything a live session does happens here over real sockets: TOTP login, the scrip master by
HTTP, SmartStream with the session's tokens, LIMIT orders to placeOrder, fills from the
order-update socket, the journal on disk. Only Angel's servers are replaced, by the simulator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog

from smartflow.app.daemon import Daemon, RunOptions
from smartflow.config import (
    ApiConfig,
    Config,
    Credentials,
    FeedConfig,
    MarketConfig,
    OrdersConfig,
    RiskConfig,
    Secret,
    SimConfig,
    StrategyConfig,
)
from smartflow.core.clock import ScaledClock
from smartflow.core.messages import SmartMoneySignal
from smartflow.journal.store import Journal
from smartflow.sim.market import Market
from smartflow.sim.rest import ORDER_UPDATE_PATH, SimCredentials
from smartflow.sim.server import SCRIP_MASTER_PATH, SimServer, session_start


def _signal(
    underlying: str, token: str, strike: float, side: str, now_ns: int, can_trade: bool = True
) -> SmartMoneySignal:
    """A confident signal on ``token`` as the detector would emit it."""
    return SmartMoneySignal(
        underlying=underlying,
        ts=now_ns,
        recommendation="BUY_CALL" if side == "CE" else "BUY_PUT",
        oi_conviction_score=0.8,
        volume_aggression_score=0.7,
        smart_money_probability=0.8,
        trap_probability=0.0,
        fresh_position_detected=True,
        market_control="BALANCED",
        can_trade=can_trade,
        reason=None,
        strike=strike,
        option_type=side,  # type: ignore[arg-type]
        token=token,
        evidence=[],
    )


async def _until(done: Callable[[], bool], what: str, within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not done():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_live_daemon_trades_through_the_angel_gateway(tmp_path: Path) -> None:
    sim_cfg = SimConfig(seed=5, ticks_per_second=150)
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
        strategy=StrategyConfig(exit_cutoff_ist="23:59", expiry_day_cutoff_ist="23:59"),
        api=ApiConfig(listen="127.0.0.1:0"),
    )
    daemon = Daemon(cfg, creds, RunOptions(live=True), structlog.get_logger())
    try:
        await daemon.start()
        assert daemon.book is not None
        assert daemon.trading is not None
        strategy, router = daemon.trading.strategy, daemon.trading.router
        # Which signals the detectors produce depends on wall-clock bars; this test is about
        # the order path, so it hands the strategy a tradable signal on the ATM call itself and
        # lets everything after it (sizing, risk, router, gateway, order updates) run for real.
        chain = daemon.book.chains[0]
        await _until(lambda: chain.spot > 0, "no index tick arrived")
        u = chain.universe
        strike_paise = u.strikes_paise[u.atm_index(round(chain.spot * 100))]
        call = u.calls[strike_paise]
        await _until(lambda: daemon.trading.market.quote(call.token) is not None, "no ATM quote")
        now = daemon.clock.now_ns()
        strategy.on_signal(_signal(chain.root, call.token, call.strike, "CE", now))
        await _until(lambda: router.net_lots(call.token) > 0, "the entry never filled")
        # A confident contrary signal (not itself tradable) exits the call the same way.
        now = daemon.clock.now_ns()
        put = u.puts[strike_paise]
        strategy.on_signal(_signal(chain.root, put.token, put.strike, "PE", now, False))
        await _until(
            lambda: router.net_lots(call.token) == 0 and not router.in_flight(call.token),
            "the exit never filled",
        )
    finally:
        await daemon.shutdown()
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
