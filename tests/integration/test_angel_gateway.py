"""AngelSession/AngelGateway against the simulator's REST side over real loopback sockets.

Login with a real TOTP, orders matched against the simulated market, the order-update stream,
the rate limit, every injected fault (and, by the simulator's request log, that an order in
doubt was never re-sent), re-login after AG8001, AG7002, read shapes, and no secret in any log.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pyotp
import pytest
import structlog
from simkit import FAST_FEED, chain_pairs, eventually, sim_config
from structlog.testing import capture_logs
from websockets.asyncio.client import connect

from smartflow.config import Credentials, OrdersConfig, Secret
from smartflow.core.clock import ScaledClock
from smartflow.core.errors import AuthError, FatalError
from smartflow.feed.session import FeedSession
from smartflow.orders import angel_wire as w
from smartflow.orders.angel import AngelGateway, AngelSession, check_limit_day, order_body
from smartflow.orders.port import BrokerOrder, PlaceRequest
from smartflow.sim.market import Contract, Market
from smartflow.sim.rest import ORDER_ROOT, ORDER_UPDATE_PATH, SimCredentials
from smartflow.sim.server import SimServer, session_start


# ---- fixtures -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def angel_sim(creds: SimCredentials | None = None) -> AsyncIterator[SimServer]:
    cfg = sim_config()
    start_ns, day = session_start(cfg.session_start_ist)
    market = Market(cfg, ["NIFTY"], start_ns, day)
    server = SimServer(
        market,
        ScaledClock(start_ns, cfg.speed),
        "127.0.0.1",
        0,
        creds=creds,
        log=structlog.get_logger().bind(stage="sim"),
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def orders_cfg(server: SimServer, timeout_s: float = 1.0) -> OrdersConfig:
    return OrdersConfig(
        broker="angel",
        rest_url=server.http_url,
        order_update_url=f"ws://{server.host}:{server.port}{ORDER_UPDATE_PATH}",
        request_timeout_s=timeout_s,
    )


def credentials(c: SimCredentials, **override: str) -> Credentials:
    values = {
        "api_key": c.api_key,
        "client_code": c.client_code,
        "pin": c.pin,
        "totp_secret": c.totp_secret,
        **override,
    }
    return Credentials(**{k: Secret(v) for k, v in values.items()})


@contextlib.asynccontextmanager
async def gateway(
    server: SimServer, timeout_s: float = 1.0, read_interval_s: dict[str, float] | None = None
) -> AsyncIterator[tuple[AngelGateway, list[BrokerOrder]]]:
    cfg = orders_cfg(server, timeout_s)
    session = AngelSession(credentials(server.creds), cfg)
    gw = AngelGateway(session, cfg, read_interval_s=read_interval_s, backoff_initial_s=0.05)
    updates: list[BrokerOrder] = []
    gw.subscribe_updates(updates.append)
    await gw.start()
    try:
        yield gw, updates
    finally:
        await gw.close()


def atm_option(server: SimServer) -> Contract:
    chain = server.market.chains["NIFTY"]
    return min(
        chain.options,
        key=lambda c: (c.inst.expiry, abs(c.inst.strike - chain.spot), c.inst.kind),
    )


def request(
    c: Contract, tag: str, price_paise: int, side: str = "BUY", lots: int = 1
) -> PlaceRequest:
    return PlaceRequest(
        tag=tag,
        symbol=c.inst.symbol,
        token=c.inst.token,
        exchange=c.inst.segment,
        side=side,  # type: ignore[arg-type]
        quantity=lots * c.inst.lot_size,
        price=price_paise / 100,
        lot_size=c.inst.lot_size,
    )


def marketable(c: Contract, tag: str, lots: int = 1) -> PlaceRequest:
    # A BUY 20 ticks through the ask: fills at the ask even if the quote moves a little.
    return request(c, tag, c.ask + 20 * c.inst.tick_paise, lots=lots)


def resting(c: Contract, tag: str, lots: int = 1) -> PlaceRequest:
    # A BUY at half the bid, on the tick grid: far from any fill during a test.
    tick = c.inst.tick_paise
    return request(c, tag, max(tick, c.bid // 2 // tick * tick), lots=lots)


def latest(updates: list[BrokerOrder], oid: str) -> BrokerOrder | None:
    mine = [u for u in updates if u.broker_order_id == oid]
    return mine[-1] if mine else None


def status_of(updates: list[BrokerOrder], oid: str) -> str:
    last = latest(updates, oid)
    return last.status if last else ""


# ---- login --------------------------------------------------------------------------------


async def test_login_with_real_totp_profile_refresh_and_logout() -> None:
    async with angel_sim() as server:
        cfg = orders_cfg(server)
        session = AngelSession(credentials(server.creds), cfg)
        try:
            await session.start()
            assert session.is_logged_in
            assert session.generation == 1
            assert len(server.rest.sessions) == 1
            first = server.rest.sessions[0]
            login = server.rest.requests_to("loginByPassword")[0]
            assert set(login.body) == {"clientcode", "password", "totp"}
            assert login.body["totp"].isdigit()
            assert len(login.body["totp"]) == 6

            profile = await session.profile()
            assert profile["clientcode"] == server.creds.client_code

            # SmartStream accepts the login's jwt + feed token (not only the static demo ones).
            headers = await session.stream_headers()
            assert headers["x-feed-token"] == first.feed
            async with connect(server.url, additional_headers=headers, proxy=None) as ws:
                await ws.send("ping")
                assert await asyncio.wait_for(ws.recv(), 5) == "pong"

            # A refresh replaces all three tokens; the previous ones stay valid until logout.
            await session.refresh()
            assert session.generation == 2
            second = server.rest.sessions[1]
            assert (await session.stream_headers())["x-feed-token"] == second.feed
            assert server.rest.is_live_jwt(first.jwt)
            assert server.rest.is_live_jwt(second.jwt)

            assert await session.logout()
            assert not session.is_logged_in
            assert not server.rest.is_live_jwt(first.jwt)
            assert not server.rest.is_live_jwt(second.jwt)
        finally:
            await session.close()


@pytest.mark.parametrize(
    ("override", "code"),
    [({"pin": "9999"}, "AB1007"), ({"totp_secret": "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"}, "AB1050")],
)
async def test_wrong_pin_or_totp_is_refused(override: dict[str, str], code: str) -> None:
    async with angel_sim() as server:
        session = AngelSession(credentials(server.creds, **override), orders_cfg(server))
        try:
            with pytest.raises(AuthError, match=code) as exc:
                await session.login()
            assert not session.is_logged_in
            assert "9999" not in str(exc.value)
            assert "KRSXG5CTMVRXEZLU" not in str(exc.value)
            assert server.rest.sessions == []
        finally:
            await session.close()


def test_missing_credentials_fail_before_any_request() -> None:
    with pytest.raises(AuthError, match="pin"):
        AngelSession(Credentials(api_key=Secret("k"), client_code=Secret("c")), OrdersConfig())


# ---- orders -------------------------------------------------------------------------------


async def test_marketable_limit_is_accepted_then_filled_via_update_stream() -> None:
    async with angel_sim() as server, gateway(server) as (gw, updates):
        c = atm_option(server)
        req = marketable(c, "fill-1")
        reply = await gw.place(req)
        assert reply.outcome == "ACCEPTED"
        oid = reply.broker_order_id
        assert oid is not None
        assert len(oid) == 15
        assert oid.isdigit()

        await eventually(lambda: (u := latest(updates, oid)) is not None and u.status == "FILLED")
        done = latest(updates, oid)
        assert done is not None
        assert done.tag == "fill-1"
        assert done.token == c.inst.token
        assert done.side == "BUY"
        assert done.filled_quantity == done.quantity == c.inst.lot_size
        assert 0 < done.average_price <= req.price
        assert done.price == req.price
        assert next(u.status for u in updates if u.broker_order_id == oid) == "OPEN"

        sim_order = server.rest.orders_with_tag("fill-1")[0]
        assert sim_order.status == "complete"
        assert done.average_price == round(sim_order.average_paise / 100, 2)

        details = await gw.order_details(oid)
        assert details is not None
        assert (details.status, details.filled_quantity) == ("FILLED", c.inst.lot_size)
        # The unique id from the place reply is what the details call used.
        assert server.rest.requests_to("details")[0].body["orderid"] == sim_order.uniqueorderid


async def test_resting_order_is_modified_then_cancelled() -> None:
    async with angel_sim() as server, gateway(server) as (gw, updates):
        c = atm_option(server)
        req = resting(c, "rest-1")
        reply = await gw.place(req)
        assert reply.outcome == "ACCEPTED"
        assert reply.broker_order_id
        oid = reply.broker_order_id
        await eventually(lambda: latest(updates, oid) is not None)
        assert status_of(updates, oid) == "OPEN"

        new_price = req.price - c.inst.tick_paise / 100
        reply = await gw.modify(oid, PlaceRequest(**{**_fields(req), "price": new_price}))
        assert reply.outcome == "ACCEPTED"
        assert reply.broker_order_id == oid
        sim_order = server.rest.orders_with_tag("rest-1")[0]
        assert sim_order.price_paise == round(new_price * 100)
        assert sim_order.status == "open"
        body = server.rest.requests_to("modifyOrder")[0].body
        assert (body["ordertype"], body["duration"], body["variety"]) == ("LIMIT", "DAY", "NORMAL")

        reply = await gw.cancel(oid)
        assert reply.outcome == "ACCEPTED"
        await eventually(lambda: status_of(updates, oid) == "CANCELLED")
        details = await gw.order_details(oid)
        assert details is not None
        assert details.status == "CANCELLED"

        # Cancelling again: Angel refuses (no effect), which is REJECTED, not UNKNOWN.
        again = await gw.cancel(oid)
        assert again.outcome == "REJECTED"
        assert again.code == "AB1007"


async def test_modify_to_a_marketable_price_fills() -> None:
    async with angel_sim() as server, gateway(server) as (gw, updates):
        c = atm_option(server)
        req = resting(c, "chase-1")
        oid = (await gw.place(req)).broker_order_id
        assert oid
        through = (c.ask + 20 * c.inst.tick_paise) / 100
        reply = await gw.modify(oid, PlaceRequest(**{**_fields(req), "price": through}))
        assert reply.outcome == "ACCEPTED"
        await eventually(lambda: status_of(updates, oid) == "FILLED")


async def test_market_and_ioc_orders_are_refused() -> None:
    async with angel_sim() as server, gateway(server) as (gw, _):
        c = atm_option(server)
        body = order_body(marketable(c, "mkt-1"))
        assert (body["ordertype"], body["duration"]) == ("LIMIT", "DAY")
        # Our code cannot build one, and refuses to send one.
        for bad in ({"ordertype": "MARKET", "price": "0"}, {"duration": "IOC"}):
            with pytest.raises(FatalError):
                check_limit_day({**body, **bad})
        # The simulator refuses them like Angel: a failure envelope explaining the rule.
        for bad in ({"ordertype": "MARKET", "price": "0"}, {"duration": "IOC"}):
            status, raw, _ = await gw.session.send("POST", f"{ORDER_ROOT}/placeOrder", body | bad)
            parsed = w.classify(status, raw)
            assert parsed.kind == "failed"
            assert parsed.code == "AB1007"
            assert "LIMIT" in parsed.message
            assert "algorithmic" in parsed.message
        assert server.rest.orders_with_tag("mkt-1") == []


async def test_ordertag_of_20_characters_is_ab4008() -> None:
    async with angel_sim() as server, gateway(server) as (gw, _):
        tag = "t" * 20
        reply = await gw.place(resting(atm_option(server), tag))
        assert (reply.outcome, reply.code) == ("REJECTED", "AB4008")
        assert server.rest.orders_with_tag(tag) == []
        ok = await gw.place(resting(atm_option(server), "t" * 19))
        assert ok.outcome == "ACCEPTED"


async def test_quantity_off_the_lot_size_is_rejected_after_acceptance() -> None:
    async with angel_sim() as server, gateway(server) as (gw, updates):
        c = atm_option(server)
        req = PlaceRequest(**{**_fields(resting(c, "odd-1")), "quantity": c.inst.lot_size + 1})
        reply = await gw.place(req)
        assert reply.outcome == "ACCEPTED"
        assert reply.broker_order_id
        oid = reply.broker_order_id
        await eventually(lambda: latest(updates, oid) is not None)
        final = latest(updates, oid)
        assert final is not None
        assert final.status == "REJECTED"
        assert "lot size" in final.text


async def test_rate_limit_refuses_the_excess_with_403_and_never_unknown() -> None:
    async with angel_sim() as server, gateway(server) as (gw, _):
        server.rest.rate_clock = lambda: 0  # all twelve land in the same second
        c = atm_option(server)
        replies = await asyncio.gather(*(gw.place(resting(c, f"burst-{i}")) for i in range(12)))
        outcomes = [r.outcome for r in replies]
        assert outcomes.count("ACCEPTED") == 9
        assert outcomes.count("RATE_LIMITED") == 3
        assert "UNKNOWN" not in outcomes
        placed = server.rest.requests_to("placeOrder")
        assert len(placed) == 12
        assert sorted(r.http_status for r in placed) == [200] * 9 + [403] * 3
        assert sum(len(server.rest.orders_with_tag(f"burst-{i}")) for i in range(12)) == 9
        for r in replies:
            if r.outcome == "RATE_LIMITED":
                assert "exceeding rate limit" in r.message


# ---- faults -------------------------------------------------------------------------------

PLACE_FAULTS = [
    # fault, outcome, does the simulator hold the order afterwards
    ("timeout", "UNKNOWN", True),
    ("empty_200", "UNKNOWN", True),
    ("http_500_accepted", "UNKNOWN", True),
    ("http_500_not_accepted", "UNKNOWN", False),
    ("non_json", "UNKNOWN", True),
    ("disconnect", "UNKNOWN", True),
    ("rate_limit", "RATE_LIMITED", False),
    ("reject", "REJECTED", False),
    ("ag7002", "REJECTED", False),
]


@pytest.mark.parametrize(("fault", "outcome", "held"), PLACE_FAULTS)
async def test_place_fault_outcome_and_never_resent(fault: str, outcome: str, held: bool) -> None:
    async with angel_sim() as server, gateway(server, timeout_s=0.5) as (gw, _):
        tag = f"f-{fault}"[:19]
        server.rest.inject("placeOrder", fault)
        with capture_logs() as logs:
            reply = await gw.place(resting(atm_option(server), tag))
        assert reply.outcome == outcome, reply
        # Placed exactly once: no retry after UNKNOWN (or anything else).
        assert len(server.rest.requests_to("placeOrder", tag)) == 1
        assert len(server.rest.orders_with_tag(tag)) == (1 if held else 0)
        # Reconciliation by tag finds the order exactly when the broker holds it.
        found = [o for o in await gw.order_book() if o.tag == tag]
        assert len(found) == (1 if held else 0)
        if fault == "ag7002":
            assert reply.code == "AG7002"
            assert any(e["event"] == "angel.unregistered_ip" for e in logs)
        if fault == "reject":
            assert reply.code == "AB1007"


@pytest.mark.parametrize(
    ("endpoint", "fault", "outcome"),
    [
        ("modifyOrder", "timeout", "UNKNOWN"),
        ("modifyOrder", "non_json", "UNKNOWN"),
        ("modifyOrder", "rate_limit", "RATE_LIMITED"),
        ("cancelOrder", "empty_200", "UNKNOWN"),
        ("cancelOrder", "http_500_not_accepted", "UNKNOWN"),
        ("cancelOrder", "reject", "REJECTED"),
    ],
)
async def test_modify_and_cancel_faults(endpoint: str, fault: str, outcome: str) -> None:
    async with angel_sim() as server, gateway(server, timeout_s=0.5) as (gw, _):
        c = atm_option(server)
        req = resting(c, "mc-1")
        oid = (await gw.place(req)).broker_order_id
        assert oid
        server.rest.inject(endpoint, fault)
        if endpoint == "modifyOrder":
            reply = await gw.modify(oid, req)
        else:
            reply = await gw.cancel(oid)
        assert reply.outcome == outcome
        assert len(server.rest.requests_to(endpoint)) == 1


async def test_expired_token_relogs_in_and_retries_once() -> None:
    async with angel_sim() as server, gateway(server) as (gw, _):
        server.rest.inject("placeOrder", "expire_token")
        reply = await gw.place(resting(atm_option(server), "exp-1"))
        assert reply.outcome == "ACCEPTED"
        sent = server.rest.requests_to("placeOrder", "exp-1")
        assert [r.http_status for r in sent] == [401, 200]
        assert len(server.rest.orders_with_tag("exp-1")) == 1
        assert gw.session.logins == 2
        assert gw.stats["relogins"] == 1

        # Refused twice: one retry only, then REJECTED (nothing was placed).
        server.rest.inject("placeOrder", "expire_token", count=2)
        reply = await gw.place(resting(atm_option(server), "exp-2"))
        assert (reply.outcome, reply.code) == ("REJECTED", "AG8001")
        assert len(server.rest.requests_to("placeOrder", "exp-2")) == 2
        assert server.rest.orders_with_tag("exp-2") == []


async def test_concurrent_ag8001_share_one_relogin() -> None:
    async with angel_sim() as server, gateway(server) as (gw, _):
        server.rest.expire_current()
        c = atm_option(server)
        replies = await asyncio.gather(*(gw.place(resting(c, f"cc-{i}")) for i in range(4)))
        assert [r.outcome for r in replies] == ["ACCEPTED"] * 4
        assert gw.session.logins == 2


async def test_reads_relogin_after_expiry_and_shapes() -> None:
    # No read pacing here: Angel's 1/s book limit would only make the test slow.
    async with angel_sim() as server, gateway(server, read_interval_s={}) as (gw, updates):
        assert await gw.order_book() == []  # Angel's ``data: null``
        assert await gw.positions() == []
        c = atm_option(server)
        filled = (await gw.place(marketable(c, "shape-f", lots=2))).broker_order_id
        open_ = (await gw.place(resting(c, "shape-o"))).broker_order_id
        assert filled
        assert open_
        await eventually(lambda: status_of(updates, filled) == "FILLED")

        server.rest.expire_current()
        book = {o.tag: o for o in await gw.order_book()}
        assert set(book) == {"shape-f", "shape-o"}
        assert book["shape-f"].broker_order_id == filled
        assert (book["shape-f"].status, book["shape-f"].filled_quantity) == (
            "FILLED",
            2 * c.inst.lot_size,
        )
        assert (book["shape-o"].status, book["shape-o"].filled_quantity) == ("OPEN", 0)
        assert book["shape-o"].token == c.inst.token
        assert book["shape-o"].side == "BUY"

        details = await gw.order_details(open_)
        assert details == book["shape-o"]
        assert await gw.order_details("999999999999999") is None

        (pos,) = await gw.positions()
        assert (pos.token, pos.symbol, pos.net_quantity) == (
            c.inst.token,
            c.inst.symbol,
            2 * c.inst.lot_size,
        )
        assert pos.average_price == book["shape-f"].average_price
        fills = await gw.trade_book()
        assert [f.tag for f in fills] == ["shape-f"]
        assert sum(f.quantity for f in fills) == 2 * c.inst.lot_size
        assert gw.session.logins == 2


async def test_partial_fills_arrive_as_partial_then_filled() -> None:
    async with angel_sim() as server, gateway(server) as (gw, updates):
        server.rest.oms.partial_fills = True
        c = atm_option(server)
        oid = (await gw.place(marketable(c, "part-1", lots=4))).broker_order_id
        assert oid
        await eventually(lambda: status_of(updates, oid) == "FILLED")
        statuses = [u.status for u in updates if u.broker_order_id == oid]
        assert "PARTIAL" in statuses
        fills = [u.filled_quantity for u in updates if u.broker_order_id == oid]
        assert fills == sorted(fills)
        assert fills[-1] == 4 * c.inst.lot_size


async def test_after_logout_nothing_logs_in_until_the_next_day() -> None:
    async with angel_sim() as server, gateway(server) as (gw, updates):
        c = atm_option(server)
        assert await gw.session.logout()
        reply = await gw.place(resting(c, "late-1"))
        assert (reply.outcome, reply.code) == ("REJECTED", "AUTH")
        assert server.rest.requests_to("placeOrder") == []
        assert gw.session.logins == 1

        await gw.session.new_day()  # the morning routine: logout (none held), fresh login
        assert gw.session.logins == 2
        await eventually(lambda: gw.stats["update_connects"] == 2)
        oid = (await gw.place(resting(c, "morning-1"))).broker_order_id
        assert oid
        await eventually(lambda: status_of(updates, oid) == "OPEN")


# ---- streams ------------------------------------------------------------------------------


async def test_update_socket_reconnects_and_replays_the_book() -> None:
    async with angel_sim() as server, gateway(server) as (gw, updates):
        c = atm_option(server)
        oid = (await gw.place(resting(c, "re-1"))).broker_order_id
        assert oid
        await eventually(lambda: latest(updates, oid) is not None)
        for sock in list(server.rest._sockets):
            await sock.ws.close()
        await eventually(lambda: gw.stats["update_connects"] == 2 and gw.updates_connected.is_set())
        # The replay delivered the resting order again, from the order book.
        await eventually(lambda: len([u for u in updates if u.broker_order_id == oid]) >= 2)
        through = (c.ask + 20 * c.inst.tick_paise) / 100
        req = PlaceRequest(**{**_fields(resting(c, "re-1")), "price": through})
        assert (await gw.modify(oid, req)).outcome == "ACCEPTED"
        await eventually(lambda: status_of(updates, oid) == "FILLED")


async def test_update_socket_answers_ping_and_refuses_bad_tokens() -> None:
    async with angel_sim() as server, gateway(server) as (gw, _):
        url = gw.cfg.order_update_url
        async with connect(url, additional_headers=gw.session.bearer_headers(), proxy=None) as ws:
            hello = w.ORDER_UPDATE.decode(await asyncio.wait_for(ws.recv(), 5))
            assert hello.order_status == "AB00"
            await ws.send("ping")
            assert await asyncio.wait_for(ws.recv(), 5) == "pong"
        with pytest.raises(Exception, match="401"):
            async with connect(url, additional_headers={"Authorization": "Bearer x"}, proxy=None):
                pass


async def test_feed_401_relogs_in_and_reconnects_with_the_new_feed_token() -> None:
    async with angel_sim() as server:
        cfg = orders_cfg(server)
        session = AngelSession(credentials(server.creds), cfg, min_relogin_interval_s=0.0)
        frames: list[bytes] = []
        feed = FeedSession(
            FAST_FEED,
            server.url,
            session.stream_headers,
            lambda _t, _k, f: frames.append(f),
            server.clock,
            structlog.get_logger().bind(stage="feed"),
            on_auth_failure=session.on_stream_auth_failure,
            seed=1,
        )
        feed.set_subscriptions(chain_pairs(server.market, options=2))
        task = asyncio.create_task(feed.run())
        try:
            await asyncio.wait_for(feed.wait_ready(), 5)
            await eventually(lambda: len(frames) > 5)
            server.rest.expire_current()
            await server.drop_connections()
            await eventually(lambda: feed.stats.auth_failures >= 1 and session.logins == 2)
            mark = len(frames)
            await eventually(lambda: feed.connected == 1 and len(frames) > mark + 5)
            assert server.rest.is_live_feed_token((await session.stream_headers())["x-feed-token"])
        finally:
            await feed.stop()
            await asyncio.wait_for(task, 5)
            await session.close()


# ---- secrets ------------------------------------------------------------------------------


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, (list, tuple, set)):
        return [s for v in value for s in _strings(v)]
    return [repr(value)] if not isinstance(value, (int, float)) else []


async def test_no_secret_in_logs_or_errors() -> None:
    creds = SimCredentials(
        api_key="api-key-7f3c9e", pin="pin-4096", totp_secret="GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    )
    async with angel_sim(creds) as server:
        with capture_logs() as logs:
            async with gateway(server) as (gw, _):
                c = atm_option(server)
                server.rest.inject("placeOrder", "expire_token")
                await gw.place(marketable(c, "sec-1"))
                server.rest.inject("placeOrder", "timeout")
                await gw.place(resting(c, "sec-2"))
                server.rest.inject("placeOrder", "ag7002")
                await gw.place(resting(c, "sec-3"))
                await gw.session.refresh()
                await gw.order_book()
                await gw.session.logout()
            bad = AngelSession(credentials(creds, pin="pin-0000"), orders_cfg(server))
            with pytest.raises(AuthError) as exc:
                await bad.login()
            await bad.close()
        assert len(logs) > 5
        totp = pyotp.TOTP(creds.totp_secret)
        # Every code valid around the test; matched as whole words (order ids are all digits).
        codes = [re.compile(rf"\b{totp.at(time.time() + d)}\b") for d in range(-90, 91, 30)]
        secrets = {creds.api_key, creds.pin, "pin-0000", creds.totp_secret, creds.client_code}
        for s in server.rest.sessions:
            secrets |= {s.jwt, s.refresh, s.feed}
        assert len(server.rest.sessions) >= 3
        texts = [t for event in logs for t in _strings(event)] + [str(exc.value)]
        for text in texts:
            for secret in secrets:
                assert secret not in text, (secret, text)
            for code in codes:
                assert not code.search(text), text


def _fields(req: PlaceRequest) -> dict[str, Any]:
    return {f: getattr(req, f) for f in req.__struct_fields__}
