"""Feed faults injected from outside the client, by a loopback proxy in front of the simulator.

A silent socket (market data dropped, pongs still flowing), refused subscriptions, one contract
going quiet, a cut connection and a slow link, first against a ``FeedSession`` and then against
a whole daemon whose ``/healthz``, metrics and watchdog rule must say what happened. Every wait is
on a condition with a generous timeout; nothing asserts how fast anything was.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families
from simkit import FAST_FEED, chain_pairs, eventually, good_headers, running, running_sim
from structlog.testing import capture_logs
from support.proxy import FaultProxy

from smartflow.app.daemon import Daemon, RunOptions
from smartflow.app.health import feed_health
from smartflow.app.warmup import warm_up
from smartflow.config import (
    ApiConfig,
    Config,
    Credentials,
    FeedConfig,
    MarketConfig,
    OrdersConfig,
    Secret,
    SimConfig,
)
from smartflow.feed.session import STALL_STEPS, FeedSession, Pair, Sink, static_headers
from smartflow.orders.angel_session import AngelSession
from smartflow.sim.server import STREAM_PATH, SimServer


# Short timers: a stall is one second of silence, a refusal is retried within a second.
FAULT_FEED = msgspec.structs.replace(
    FAST_FEED,
    # Long enough that the frame watchdog never fires while pongs flow: only the data rule may.
    stall_timeout_s=60.0,
    data_stall_s=1.0,
    subscribe_confirm_s=0.5,
    subscribe_retry_s=0.2,
    subscribe_retry_max_s=1.0,
    token_silent_s=2.0,
)
WAIT_S = 30.0


Frames = list[tuple[int, bytes, bytes]]


def _collector() -> tuple[Frames, Sink]:
    frames: Frames = []

    def sink(recv_ns: int, key: bytes, frame: bytes) -> None:
        frames.append((recv_ns, key, frame))

    return frames, sink


def _token(frame: bytes) -> str:
    return frame[2:27].split(b"\0", 1)[0].decode("ascii")


@contextlib.asynccontextmanager
async def proxied(server: SimServer) -> AsyncIterator[FaultProxy]:
    proxy = FaultProxy(server.http_url)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


def _session(
    server: SimServer, proxy: FaultProxy, sink: Sink, cfg: FeedConfig = FAULT_FEED, **kw: Any
) -> FeedSession:
    return FeedSession(
        cfg,
        proxy.ws_url(STREAM_PATH),
        static_headers(good_headers(server.creds)),
        sink,
        server.clock,
        structlog.get_logger().bind(stage="feed"),
        seed=1,
        **kw,
    )


def _converged(session: FeedSession, n: int) -> bool:
    subs = session.stats.subscriptions
    return subs.get("confirmed") == n and subs.get("wanted") == n and not session.stats.unconverged


# ---- FeedSession through the proxy ------------------------------------------------------


async def test_silent_socket_escalates_until_data_flows_again() -> None:
    relogins: list[str] = []

    async def relogin(reason: str) -> None:
        relogins.append(reason)

    async with running_sim() as server, proxied(server) as proxy:
        frames, sink = _collector()
        pairs = chain_pairs(server.market)
        session = _session(server, proxy, sink, relogin=relogin)
        session.set_subscriptions(pairs)
        with capture_logs() as logs:
            async with running(session):
                await asyncio.wait_for(session.wait_ready(), WAIT_S)
                await eventually(lambda: _converged(session, len(pairs)), WAIT_S)
                assert feed_health(session).problems == []
                proxy.drop_data = True
                pongs = proxy.counts["pongs_passed"]
                # Every step, then one more: the watchdog is withheld once in-process recovery
                # (resubscribe, reconnect, re-login) has run out.
                await eventually(lambda: bool(feed_health(session).withhold_watchdog), WAIT_S)
                health = feed_health(session)
                assert any(p.startswith("feed stale: no market data") for p in health.problems)
                steps = session.stats.stall_steps
                assert steps["resubscribe"] >= 1
                assert steps["reconnect"] >= 2
                assert steps["relogin"] >= 1
                assert relogins
                assert session.stats.data_stalls == 1
                # The socket was never silent: pongs kept coming, the frame watchdog stayed quiet.
                assert proxy.counts["pongs_passed"] > pongs
                assert session.stats.stalls == 0
                frames_at_resume = len(frames)
                proxy.drop_data = False
                await eventually(
                    lambda: not session.stats.stalled and not feed_health(session).problems,
                    WAIT_S,
                )
                await eventually(lambda: len(frames) > frames_at_resume, WAIT_S)
        stall_logs = [e["step"] for e in logs if e["event"] == "feed.data_stall"]
        assert stall_logs[:3] == list(STALL_STEPS)
        assert any(e["event"] == "feed.data_resumed" for e in logs)


async def test_relogin_step_logs_in_again_and_reconnects_with_new_tokens() -> None:
    # Live wiring: the escalation's re-login is AngelSession.relogin_for_stream (a TOTP login at
    # the simulator's REST side); the reconnect after it carries the new feed token.
    async with running_sim() as server, proxied(server) as proxy:
        c = server.creds
        creds = Credentials(
            api_key=Secret(c.api_key),
            client_code=Secret(c.client_code),
            pin=Secret(c.pin),
            totp_secret=Secret(c.totp_secret),
        )
        angel = AngelSession(
            creds,
            OrdersConfig(broker="angel", rest_url=server.http_url),
            min_relogin_interval_s=0.0,
        )
        frames, sink = _collector()
        feed = FeedSession(
            FAULT_FEED,
            proxy.ws_url(STREAM_PATH),
            angel.stream_headers,
            sink,
            server.clock,
            structlog.get_logger().bind(stage="feed"),
            seed=1,
            relogin=angel.relogin_for_stream,
        )
        feed.set_subscriptions(chain_pairs(server.market))
        try:
            async with running(feed):
                await asyncio.wait_for(feed.wait_ready(), WAIT_S)
                await eventually(lambda: len(frames) > 5, WAIT_S)
                first = (await angel.stream_headers())["x-feed-token"]
                assert angel.logins == 1
                proxy.drop_data = True
                await eventually(
                    lambda: feed.stats.stall_steps["relogin"] == 1 and angel.logins == 2, WAIT_S
                )
                proxy.drop_data = False
                await eventually(lambda: not feed.stats.stalled, WAIT_S)
                now = (await angel.stream_headers())["x-feed-token"]
                assert now != first
                assert server.rest.is_live_feed_token(now)
                assert feed.stats.auth_failures == 0
        finally:
            await angel.close()


async def test_a_market_that_never_traded_today_is_stale_but_not_restarted() -> None:
    # Hours know no exchange holidays: a feed silent since the open keeps retrying and reports
    # stale, but does not ask systemd for a restart (that would loop all day).
    async with running_sim() as server, proxied(server) as proxy:
        _frames, sink = _collector()
        proxy.drop_data = True
        session = _session(server, proxy, sink)
        session.set_subscriptions(chain_pairs(server.market))
        async with running(session):
            await asyncio.wait_for(session.wait_ready(), WAIT_S)
            await eventually(lambda: sum(session.stats.stall_steps.values()) > 4, WAIT_S)
            await eventually(lambda: bool(session.stats.stalled), WAIT_S)
            health = feed_health(session)
            assert any(p.startswith("feed stale") for p in health.problems)
            assert health.withhold_watchdog == []
            assert not session.market_seen


async def test_no_relogin_hook_means_the_step_reconnects() -> None:
    async with running_sim() as server, proxied(server) as proxy:
        _frames, sink = _collector()
        session = _session(server, proxy, sink)
        session.set_subscriptions(chain_pairs(server.market))
        async with running(session):
            await asyncio.wait_for(session.wait_ready(), WAIT_S)
            proxy.drop_data = True
            await eventually(lambda: session.stats.stall_steps["reconnect"] >= 2, WAIT_S)
            assert session.stats.stall_steps["relogin"] == 0


async def test_no_stall_outside_market_hours() -> None:
    async with running_sim() as server, proxied(server) as proxy:
        _frames, sink = _collector()
        pairs = chain_pairs(server.market)
        session = _session(server, proxy, sink, in_session=lambda _ns: False)
        session.set_subscriptions(pairs)
        async with running(session):
            await asyncio.wait_for(session.wait_ready(), WAIT_S)
            await eventually(lambda: _converged(session, len(pairs)), WAIT_S)
            proxy.drop_data = True
            dropped = proxy.counts["data_dropped"]
            pongs = proxy.counts["pongs_passed"]
            # Several stall timeouts of silence pass (ten pongs at one ping every 0.5 s: 5 s, by
            # the proxy's counts, not by a sleep), and still no step is taken.
            await eventually(
                lambda: (
                    proxy.counts["data_dropped"] > dropped + 50
                    and proxy.counts["pongs_passed"] > pongs + 10
                ),
                WAIT_S,
            )
            assert session.stats.data_stalls == 0
            assert not session.stats.stall_steps
            assert feed_health(session).problems == []


async def test_refused_subscription_is_retried_until_the_server_takes_it() -> None:
    async with running_sim() as server, proxied(server) as proxy:
        frames, sink = _collector()
        pairs = chain_pairs(server.market)
        proxy.reject_subscribe = "E1002"
        session = _session(server, proxy, sink)
        session.set_subscriptions(pairs)
        with capture_logs() as logs:
            async with running(session):
                await asyncio.wait_for(session.wait_ready(), WAIT_S)
                await eventually(
                    lambda: session.stats.subscribe_retries >= 2 and session.stats.unconverged,
                    WAIT_S,
                )
                assert session.stats.subscribe_rejected["E1002"] >= 2 * len(pairs)
                assert session.stats.subscriptions["rejected"] == len(pairs)
                problems = feed_health(session).problems
                assert any(p.startswith("subscriptions not converged: 0 of") for p in problems)
                # Nothing is subscribed at the server, so nothing streams — and that is not
                # mistaken for a data stall.
                assert proxy.counts["data_passed"] == 0
                assert not frames
                assert session.stats.data_stalls == 0
                proxy.reject_subscribe = None
                await eventually(lambda: _converged(session, len(pairs)), WAIT_S)
                assert feed_health(session).problems == []
                await eventually(lambda: {(f[1], _token(f)) for _, _, f in frames} == pairs)
        errors = [e for e in logs if e["event"] == "feed.server_error"]
        assert errors
        assert all(e["code"] == "E1002" and e["correlation_id"] for e in errors)
        assert errors[0]["unsubscribed"] == len(pairs)
        assert errors[0]["retry_in_s"] > 0
        assert any(e["event"] == "feed.subscribe_retry" for e in logs)


async def test_a_contract_silent_while_its_segment_streams_is_listed() -> None:
    async with running_sim() as server, proxied(server) as proxy:
        _frames, sink = _collector()
        pairs = chain_pairs(server.market)
        quiet: Pair = sorted(pair for pair in pairs if pair[0] == 2)[0]
        session = _session(server, proxy, sink)
        session.set_subscriptions(pairs)
        async with running(session):
            await asyncio.wait_for(session.wait_ready(), WAIT_S)
            proxy.drop_tokens = {quiet[1]}
            label = f"{quiet[0]}:{quiet[1]}"
            await eventually(lambda: label in session.stats.silent_list, WAIT_S)
            assert session.stats.silent_tokens >= 1
            snap = session.stats.snapshot()
            assert label in snap["silent_list"]
            # One quiet contract is visibility, not a feed fault.
            assert not session.stats.stalled
            proxy.drop_tokens = set()
            await eventually(lambda: label not in session.stats.silent_list, WAIT_S)


async def test_cut_connection_reconnects_and_converges_again() -> None:
    async with running_sim() as server, proxied(server) as proxy:
        frames, sink = _collector()
        pairs = chain_pairs(server.market)
        session = _session(server, proxy, sink)
        session.set_subscriptions(pairs)
        async with running(session):
            await asyncio.wait_for(session.wait_ready(), WAIT_S)
            await eventually(lambda: _converged(session, len(pairs)), WAIT_S)
            proxy.cut()
            await eventually(lambda: session.stats.reconnects >= 1, WAIT_S)
            await eventually(lambda: proxy.sockets == 1 and _converged(session, len(pairs)), WAIT_S)
            seen = len(frames)
            await eventually(lambda: len(frames) > seen, WAIT_S)
            assert proxy.counts["connections"] >= 2


async def test_a_slow_link_still_converges() -> None:
    async with running_sim() as server, proxied(server) as proxy:
        frames, sink = _collector()
        pairs = chain_pairs(server.market)
        proxy.delay_s = 0.3
        session = _session(server, proxy, sink)
        session.set_subscriptions(pairs)
        async with running(session):
            await asyncio.wait_for(session.wait_ready(), WAIT_S)
            await eventually(lambda: _converged(session, len(pairs)), WAIT_S)
            await eventually(lambda: {(f[1], _token(f)) for _, _, f in frames} == pairs, WAIT_S)


# ---- the daemon through the proxy -------------------------------------------------------

START_TIMEOUT_S = 180.0
DAEMON_WAIT_S = 60.0


def _daemon_config(state_dir: Path, sim: SimConfig, upstream: str) -> Config:
    return Config(
        state_dir=str(state_dir),
        api=ApiConfig(listen="127.0.0.1:0"),
        market=MarketConfig(underlyings=["NIFTY"], strikes_each_side=3),
        feed=FeedConfig(
            ping_interval_s=0.5,
            stall_timeout_s=60.0,
            data_stall_s=2.0,
            subscribe_confirm_s=1.0,
            subscribe_retry_s=0.3,
            subscribe_retry_max_s=1.0,
            backoff_initial_s=0.05,
            backoff_max_s=0.5,
            healthy_after_s=1.0,
        ),
        sim=msgspec.structs.replace(sim, external_url=upstream),
    )


async def _until(probe: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DAEMON_WAIT_S
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {DAEMON_WAIT_S} s: {what}")
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_daemon_health_follows_silent_socket_and_refused_subscriptions(
    tmp_path: Path,
) -> None:
    sim = SimConfig(ticks_per_second=100.0, speed=1.0, strikes_each_side=5, scenarios=[])
    async with running_sim(sim) as server, proxied(server) as proxy:
        cfg = _daemon_config(tmp_path / "state", sim, proxy.http_url)
        await asyncio.to_thread(warm_up, cfg.model, cfg.detectors)
        with capture_logs() as logs:
            daemon = Daemon(cfg, Credentials(), RunOptions())
            try:
                await asyncio.wait_for(daemon.start(), START_TIMEOUT_S)
                assert daemon.api is not None
                base = f"http://127.0.0.1:{daemon.api.port}"
                async with aiohttp.ClientSession(base_url=base) as http:

                    async def health() -> tuple[int, list[str]]:
                        async with http.get("/healthz") as r:
                            body = await r.json()
                            return r.status, body["problems"]

                    async def healthy() -> bool:
                        return (await health())[0] == 200

                    async def problem(prefix: str) -> bool:
                        status, problems = await health()
                        return status == 503 and any(p.startswith(prefix) for p in problems)

                    async def metric(name: str, **labels: str) -> float:
                        async with http.get("/metrics") as r:
                            text = await r.text()
                        for fam in text_string_to_metric_families(text):
                            for s in fam.samples:
                                if s.name == name and all(
                                    s.labels.get(k) == v for k, v in labels.items()
                                ):
                                    return float(s.value)
                        raise AssertionError(f"no sample {name} {labels}")

                    await _until(healthy, "healthy once subscribed")
                    assert await metric("smartflow_feed_converged") == 1

                    # Silent socket: data dropped, pongs flowing.
                    proxy.drop_data = True
                    await _until(lambda: problem("feed stale"), "/healthz stale")
                    assert await metric("smartflow_feed_stale") == 1

                    async def escalated() -> bool:
                        steps = "smartflow_feed_stall_steps_total"
                        return (
                            await metric(steps, step="resubscribe") >= 1
                            and await metric(steps, step="reconnect") >= 1
                        )

                    await _until(escalated, "resubscribe and reconnect counted")

                    async def watchdog_withheld() -> bool:
                        return any(s.startswith("feed data") for s in daemon.stale_stages())

                    await _until(watchdog_withheld, "watchdog withheld after every step")
                    assert daemon.feed is not None
                    assert daemon.feed.stats.stalls == 0
                    proxy.drop_data = False
                    await _until(healthy, "healthy again once data flows")
                    assert not daemon.stale_stages()
                    assert await metric("smartflow_feed_stale") == 0

                    # Refused subscriptions after a reconnect.
                    proxy.reject_subscribe = "E1002"
                    proxy.cut()
                    await _until(
                        lambda: problem("subscriptions not converged"), "/healthz degraded"
                    )

                    async def retried() -> bool:
                        return await metric("smartflow_feed_subscribe_retries_total") >= 2

                    await _until(retried, "refusals retried")
                    assert await metric("smartflow_feed_subscribe_rejected_total", code="E1002") > 0
                    assert await metric("smartflow_feed_converged") == 0
                    # A refusal is for /healthz, not for a restart: the watchdog keeps being fed.
                    assert not [s for s in daemon.stale_stages() if s.startswith("feed data")]
                    proxy.reject_subscribe = None
                    await _until(healthy, "healthy again once the server takes the pairs")
                    async with http.get("/api/smart-money/status") as r:
                        feed = (await r.json())["feed"]
                    assert feed["subscriptions_converged"] is True
                    assert feed["subscriptions"]["confirmed"] == feed["subscriptions"]["wanted"]
            finally:
                await daemon.shutdown()
        # The health loop said it too (systemd's STATUS line carries the same problems).
        feed_logs = [e for e in logs if e["event"] == "health.feed"]
        assert any(p.startswith("feed stale") for e in feed_logs for p in e["problems"])
