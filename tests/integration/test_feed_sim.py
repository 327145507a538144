"""FeedSession against the simulator over real loopback sockets: subscribe, reconnect, stall,
auth, limits, heartbeats and malformed frames."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec
import pytest
import structlog
from aiohttp import WSMsgType, web
from simkit import (
    FAST_FEED,
    chain_pairs,
    eventually,
    good_headers,
    make_session,
    running,
    running_sim,
)
from structlog.testing import capture_logs
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from smartflow.core.clock import LiveClock
from smartflow.core.errors import AuthError, FatalError
from smartflow.core.mailbox import Conflator
from smartflow.feed import protocol as p
from smartflow.feed.session import FeedSession, Sink, static_headers
from smartflow.sim import server as sim_server


Frames = list[tuple[int, bytes, bytes]]


def _collector() -> tuple[Frames, Sink]:
    frames: Frames = []

    def sink(recv_ns: int, key: bytes, frame: bytes) -> None:
        frames.append((recv_ns, key, frame))

    return frames, sink


def _token(frame: bytes) -> str:
    return frame[2:27].split(b"\0", 1)[0].decode("ascii")


def _pairs_seen(frames: Frames, start: int = 0) -> set[tuple[int, str]]:
    return {(f[1], _token(f)) for _, _, f in frames[start:]}


async def test_chain_subscription_streams_every_token() -> None:
    async with running_sim() as server:
        mailbox: Conflator[bytes, tuple[int, bytes]] = Conflator(max_keys=64)
        frames: Frames = []

        def sink(recv_ns: int, key: bytes, frame: bytes) -> None:
            frames.append((recv_ns, key, frame))
            mailbox.put(key, (recv_ns, frame))

        session = make_session(server, sink)
        wanted = chain_pairs(server.market, options=6)
        assert len(wanted) == 8
        session.set_subscriptions(wanted)
        async with running(session):
            await asyncio.wait_for(session.wait_ready(), 5)
            await eventually(lambda: _pairs_seen(frames) == wanted and len(frames) > 60)

            decoder = p.Decoder()
            for recv_ns, key, frame in frames:
                d = decoder.decode(frame)
                assert (d["exchange_type"], d["token"]) in wanted
                assert d["subscription_mode"] == p.Mode.SNAP_QUOTE
                assert key == frame[:27]
                assert recv_ns > 0
            assert session.stats.rejected == Counter()
            assert sum(session.stats.frames.values()) == len(frames)

            # The conflator holds at most one (the latest) packet per token.
            latest = mailbox.take()
            assert 0 < len(latest) <= len(wanted)
            assert len({frame[:27] for _, frame in latest}) == len(latest)

            assert len(server.connections) == 1
            log = server.connections[0].subscribe_log
            assert Counter(log) == Counter({(3, exch, tok): 1 for exch, tok in wanted})


async def test_reconnect_after_drop_resubscribes_once() -> None:
    async with running_sim() as server:
        frames, sink = _collector()
        session = make_session(server, sink)
        wanted = chain_pairs(server.market, options=6)
        session.set_subscriptions(wanted)
        async with running(session):
            await asyncio.wait_for(session.wait_ready(), 5)
            await eventually(lambda: len(frames) > 20)
            old = server.connections[0]

            await server.drop_connections()

            def reconnected() -> bool:
                return (
                    session.stats.reconnects >= 1
                    and session.connected == 1
                    and len(server.connections) == 1
                    and server.connections[0] is not old
                )

            await eventually(reconnected)
            new = server.connections[0]
            mark = len(frames)
            await eventually(
                lambda: _pairs_seen(frames, mark) == wanted and len(frames) > mark + 50
            )
            expected = Counter({(3, exch, tok): 1 for exch, tok in wanted})
            assert Counter(new.subscribe_log) == expected
            assert session.stats.reconnects == 1
            assert session.stats.stalls == 0


async def test_stall_watchdog_reconnects_and_data_resumes() -> None:
    async with running_sim() as server:
        frames, sink = _collector()
        session = make_session(server, sink)
        session.set_subscriptions(chain_pairs(server.market, options=4))
        with capture_logs() as logs:
            async with running(session):
                await asyncio.wait_for(session.wait_ready(), 5)
                await eventually(lambda: len(frames) > 20)

                server.freeze(True)
                await eventually(
                    lambda: session.stats.stalls >= 1 and session.stats.reconnects >= 1, 10
                )
                server.freeze(False)

                mark = len(frames)
                await eventually(lambda: session.connected == 1 and len(frames) > mark + 30)
        assert any(e["event"] == "feed.stalled" for e in logs)


async def test_401_raises_auth_error_with_server_reason() -> None:
    async with running_sim() as server:
        frames, sink = _collector()
        bad = {**good_headers(server.creds), "x-feed-token": "not-the-feed-token"}
        session = make_session(server, sink, headers=bad)
        session.set_subscriptions(chain_pairs(server.market, options=2))
        with pytest.raises(AuthError, match="Invalid Header - Invalid Feed Token"):
            await asyncio.wait_for(session.run(), 5)
        assert session.stats.auth_failures == 1
        assert frames == []


async def test_401_with_relogin_hook_recovers() -> None:
    async with running_sim() as server:
        frames, sink = _collector()
        headers = {**good_headers(server.creds), "Authorization": "Bearer expired-jwt"}
        reasons: list[str] = []

        async def provider() -> dict[str, str]:
            return dict(headers)

        async def relogin(reason: str) -> None:
            reasons.append(reason)
            headers.update(good_headers(server.creds))

        session = FeedSession(
            FAST_FEED,
            server.url,
            provider,
            sink,
            server.clock,
            structlog.get_logger(),
            on_auth_failure=relogin,
            seed=3,
        )
        wanted = chain_pairs(server.market, options=2)
        session.set_subscriptions(wanted)
        async with running(session):
            await asyncio.wait_for(session.wait_ready(), 5)
            await eventually(lambda: _pairs_seen(frames) == wanted)
        assert reasons == ["Invalid Header - Invalid Auth token"]
        assert session.stats.auth_failures == 1
        assert session.stats.reconnects == 1


async def test_server_enforces_1000_pairs_per_socket() -> None:
    async with running_sim() as server:
        tokens = [f"9{i:06d}" for i in range(1001)]
        async with connect(server.url, additional_headers=good_headers()) as ws:
            await ws.send(p.subscription(p.SUBSCRIBE, 3, {2: tokens}, "over1001"))
            err = p.parse_text(str(await asyncio.wait_for(ws.recv(), 5)))
            assert err == p.ErrorFrame(
                correlationID="over1001",
                errorCode="E1002",
                errorMessage="Invalid Request. Subscription Limit Exceeded",
            )
            # Exactly 1000 is allowed: the pong to the ping sent after it comes back first.
            await ws.send(p.subscription(p.SUBSCRIBE, 3, {2: tokens[:1000]}, "exactly1k"))
            await ws.send("ping")
            assert await asyncio.wait_for(ws.recv(), 5) == "pong"
            assert server.connections[0].pairs == 1000
            # One more pair (same tokens in another mode count again) is over the limit.
            await ws.send(p.subscription(p.SUBSCRIBE, 1, {2: tokens[:1]}, "onemore"))
            err = p.parse_text(str(await asyncio.wait_for(ws.recv(), 5)))
            assert isinstance(err, p.ErrorFrame)
            assert (err.errorCode, err.correlationID) == ("E1002", "onemore")
            # A malformed request is E1001.
            await ws.send('{"action": 1}')
            err = p.parse_text(str(await asyncio.wait_for(ws.recv(), 5)))
            assert isinstance(err, p.ErrorFrame)
            assert err.errorCode == "E1001"
        assert server.text_errors == Counter({"E1002": 2, "E1001": 1})


async def test_refused_pairs_are_counted_retried_and_taken_once_the_quota_allows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Shrink the simulator's quota so a batch of the session's own subscriptions is refused.
    monkeypatch.setattr(sim_server, "MAX_PAIRS_PER_SOCKET", 5)
    async with running_sim() as server:
        frames, sink = _collector()
        cfg = msgspec.structs.replace(
            FAST_FEED,
            subscribe_batch=4,
            max_sockets=1,
            subscribe_confirm_s=0.5,
            subscribe_retry_s=0.2,
            subscribe_retry_max_s=0.5,
        )
        wanted = sorted(chain_pairs(server.market, options=6))
        with capture_logs() as logs:
            session = make_session(server, sink, cfg=cfg)
            session.set_subscriptions(set(wanted))
            async with running(session):
                await asyncio.wait_for(session.wait_ready(), 5)
                # The refused batch is retried (and refused again) while the quota is short.
                await eventually(lambda: session.stats.server_errors["E1002"] >= 2, 10)
                accepted = set(wanted[:4])
                assert _pairs_seen(frames) == accepted
                assert session._connections[0].sent == accepted
                assert session.stats.subscribe_rejected["E1002"] >= 8
                await eventually(lambda: session.stats.subscriptions.get("rejected") == 4, 10)
                assert session.stats.unconverged
                monkeypatch.setattr(sim_server, "MAX_PAIRS_PER_SOCKET", 1000)
                await eventually(lambda: _pairs_seen(frames) == set(wanted), 10)
                await eventually(
                    lambda: (
                        session.stats.subscriptions.get("confirmed") == len(wanted)
                        and not session.stats.unconverged
                    ),
                    10,
                )
        assert session.stats.subscribe_retries >= 2
        errors = [e for e in logs if e["event"] == "feed.server_error"]
        assert errors[0]["code"] == "E1002"
        assert errors[0]["unsubscribed"] == 4
        assert errors[0]["correlation_id"]


async def test_fourth_socket_gets_429() -> None:
    async with running_sim() as server, contextlib.AsyncExitStack() as stack:
        for _ in range(3):
            await stack.enter_async_context(connect(server.url, additional_headers=good_headers()))
        with pytest.raises(InvalidStatus) as excinfo:
            async with connect(server.url, additional_headers=good_headers()):
                pass
        assert excinfo.value.response.status_code == 429


async def test_concurrent_handshakes_never_exceed_three_sockets() -> None:
    async with running_sim() as server:

        async def attempt() -> ClientConnection | int:
            try:
                return await connect(server.url, additional_headers=good_headers())
            except InvalidStatus as e:
                return e.response.status_code

        results = await asyncio.gather(*(attempt() for _ in range(5)))
        opened = [r for r in results if not isinstance(r, int)]
        try:
            assert sorted(r for r in results if isinstance(r, int)) == [429, 429]
            assert len(opened) == len(server.connections) == 3
        finally:
            for ws in opened:
                await ws.close()


async def test_refused_handshakes_back_off_then_recover() -> None:
    async with running_sim() as server:
        frames, sink = _collector()
        session = make_session(server, sink)
        wanted = chain_pairs(server.market, options=2)
        session.set_subscriptions(wanted)
        with capture_logs() as logs:
            async with running(session):
                await asyncio.wait_for(session.wait_ready(), 5)
                server.refuse_handshakes = True
                await server.drop_connections()
                await eventually(lambda: session.stats.reconnects >= 4)
                assert session.connected == 0
                server.refuse_handshakes = False
                await asyncio.wait_for(session.wait_ready(), 5)
                mark = len(frames)
                await eventually(lambda: _pairs_seen(frames, mark) == wanted)
        refused = [e for e in logs if e["event"] == "feed.handshake_failed"]
        assert refused
        assert all(e["status"] == 503 for e in refused)
        delays = [e["delay_s"] for e in logs if e["event"] == "feed.reconnecting"]
        # Jittered exponential backoff, capped at backoff_max_s.
        assert all(0 < d <= FAST_FEED.backoff_max_s for d in delays)
        assert session.stats.auth_failures == 0


async def test_session_waits_out_connection_limit() -> None:
    async with running_sim() as server:
        frames, sink = _collector()
        session = make_session(server, sink)
        session.set_subscriptions(chain_pairs(server.market, options=2))
        raw: list[ClientConnection] = [
            await connect(server.url, additional_headers=good_headers()) for _ in range(3)
        ]
        try:
            async with running(session):
                await eventually(lambda: session.stats.connection_limit >= 2)
                assert session.connected == 0
                await raw.pop().close()
                await asyncio.wait_for(session.wait_ready(), 5)
                await eventually(lambda: len(frames) > 0)
        finally:
            for ws in raw:
                await ws.close()


async def test_text_ping_gets_pong() -> None:
    async with running_sim() as server:
        _, sink = _collector()
        session = make_session(server, sink)
        session.set_subscriptions(chain_pairs(server.market, options=1))
        async with running(session):
            await eventually(lambda: session.stats.text["pong"] >= 2)
        assert session.stats.text["unknown"] == 0


# ---- malformed frames from a scripted server ---------------------------------------------


def _snap(token: str, seq: int) -> bytes:
    return p.encode(
        {
            "subscription_mode": 3,
            "exchange_type": 2,
            "token": token,
            "sequence_number": seq,
            "exchange_timestamp": 1_700_000_000_000 + seq,
            "last_traded_price": 10_000 + seq,
            "best_5_buy_data": [{"quantity": 75, "price": 9_995, "no of orders": 1}],
            "best_5_sell_data": [{"quantity": 75, "price": 10_005, "no of orders": 1}],
        }
    )


@contextlib.asynccontextmanager
async def _serve(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """Serve ``handler`` as a SmartStream endpoint on a free loopback port; yield its URL."""
    app = web.Application()
    app.router.add_get("/smart-stream", handler)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"ws://127.0.0.1:{runner.addresses[0][1]}/smart-stream"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def _scripted_server(script: list[bytes]) -> AsyncIterator[str]:
    """A SmartStream look-alike that sends ``script`` after the first subscribe request."""

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sent = False
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            if msg.data == "ping":
                await ws.send_str("pong")
            elif not sent:
                sent = True
                for frame in script:
                    await ws.send_bytes(frame)
        return ws

    async with _serve(handler) as url:
        yield url


async def test_malformed_frames_are_counted_logged_once_and_lose_nothing() -> None:
    good = [_snap(str(1000 + i), i + 1) for i in range(6)]
    unknown_mode = b"\x09" + good[0][1:]
    bad_exchange = good[0][:1] + b"\x63" + good[0][2:]
    script = [
        good[0],
        b"",
        good[1],
        good[1][:200],
        good[2],
        unknown_mode,
        good[3],
        b"",
        good[4][:50],
        bad_exchange,
        good[5],
    ]
    valid = [f for f in script if f in good]
    assert len(valid) == 5
    frames, sink = _collector()
    with capture_logs() as logs:
        async with _scripted_server(script) as url:
            session = FeedSession(
                FAST_FEED,
                url,
                static_headers(good_headers()),
                sink,
                LiveClock(),
                structlog.get_logger().bind(stage="feed"),
                seed=1,
            )
            session.set_subscriptions({(2, "1000")})
            async with running(session):
                await eventually(lambda: len(frames) == len(valid))
                await eventually(lambda: sum(session.stats.rejected.values()) == 6)
    assert [f for _, _, f in frames] == valid
    assert session.stats.rejected == Counter(
        {"empty": 2, "truncated": 2, "unknown_mode": 1, "unknown_exchange": 1}
    )
    rejected_logs = [e for e in logs if e["event"] == "feed.frame_rejected"]
    assert Counter(e["kind"] for e in rejected_logs) == Counter(
        {"empty": 1, "truncated": 1, "unknown_mode": 1, "unknown_exchange": 1}
    )
    assert session.stats.bytes == sum(len(f) for f in script)


# ---- socket allocation --------------------------------------------------------------------


async def test_too_many_tokens_is_fatal() -> None:
    cfg = msgspec.structs.replace(FAST_FEED, max_tokens_per_socket=10, max_sockets=3)
    session = FeedSession(
        cfg, "ws://127.0.0.1:9/x", static_headers({}), lambda *a: None, LiveClock(), None
    )
    with pytest.raises(FatalError, match="31 tokens exceed"):
        session.set_subscriptions({(2, str(40_000 + i)) for i in range(31)})
    assert session.subscribed == frozenset()
    added, removed = session.set_subscriptions({(2, str(40_000 + i)) for i in range(30)})
    assert (len(added), len(removed)) == (30, 0)


async def test_tokens_spread_over_three_sockets() -> None:
    async with running_sim() as server:
        frames, sink = _collector()
        cfg = msgspec.structs.replace(FAST_FEED, max_tokens_per_socket=10)
        session = make_session(server, sink, cfg=cfg)
        wanted = chain_pairs(server.market, options=23)
        assert len(wanted) == 25
        session.set_subscriptions(wanted)
        async with running(session):
            await asyncio.wait_for(session.wait_ready(), 5)
            assert session.connected == 3
            await eventually(lambda: _pairs_seen(frames) == wanted)
            assert len(server.connections) == 3
            per_socket = [set(c.tokens) for c in server.connections]
            assert all(0 < len(s) <= 10 for s in per_socket)
            assert sum(len(s) for s in per_socket) == 25
            assert set().union(*per_socket) == {tok for _, tok in wanted}

            # After a drop every socket resubscribes its own share, once.
            old = list(server.connections)
            await server.drop_connections()
            await eventually(
                lambda: (
                    session.connected == 3
                    and len(server.connections) == 3
                    and not set(map(id, server.connections)) & set(map(id, old))
                    and sum(len(c.subscribe_log) for c in server.connections) == 25
                )
            )
            logs = [c.subscribe_log for c in server.connections]
            assert all(0 < len(log) <= 10 for log in logs)
            assert Counter(e for log in logs for e in log) == Counter(
                {(3, exch, tok): 1 for exch, tok in wanted}
            )
            mark = len(frames)
            await eventually(lambda: _pairs_seen(frames, mark) == wanted)


async def test_live_subscription_change_sends_only_the_delta() -> None:
    async with running_sim() as server:
        frames, sink = _collector()
        session = make_session(server, sink)
        first = chain_pairs(server.market, options=6)
        session.set_subscriptions(first)
        async with running(session):
            await asyncio.wait_for(session.wait_ready(), 5)
            await eventually(lambda: _pairs_seen(frames) == first)
            conn = server.connections[0]
            keep = set(sorted(first)[:4])
            more = chain_pairs(server.market, options=10) - first
            assert len(more) == 4
            added, removed = session.set_subscriptions(keep | more)
            assert (added, removed) == (more, first - keep)
            await eventually(lambda: len(conn.subscribe_log) == len(first) + len(more))
            assert Counter(conn.subscribe_log[len(first) :]) == Counter(
                {(3, exch, tok): 1 for exch, tok in more}
            )
            await eventually(lambda: all(not conn.tokens.get(tok) for _, tok in first - keep))
            # The server has applied the unsubscribe. Packets it sent before may still be in
            # flight; a pong answering a ping sent after now arrives behind all of them.
            pongs = session.stats.text["pong"]
            await eventually(lambda: session.stats.text["pong"] >= pongs + 2)
            mark = len(frames)
            await eventually(
                lambda: _pairs_seen(frames, mark) == keep | more and len(frames) > mark + 100
            )
            assert not _pairs_seen(frames, mark) & (first - keep)
            assert session.stats.reconnects == 0


@contextlib.asynccontextmanager
async def _one_silent_socket_server() -> AsyncIterator[tuple[str, Counter[str]]]:
    """Streams token 1000 steadily; a socket subscribing token 2000 never hears anything."""
    connects: Counter[str] = Counter()

    async def stream(ws: web.WebSocketResponse) -> None:
        seq = 0
        while not ws.closed:
            seq += 1
            await ws.send_bytes(_snap("1000", seq))
            await asyncio.sleep(0.01)

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        streamer: asyncio.Task[None] | None = None
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT or msg.data == "ping":
                    continue  # no pongs: only data keeps a socket alive here
                req = p.parse_subscription(msg.data)
                tokens = [t for _, toks in req.token_list for t in toks]
                if "1000" in tokens and streamer is None:
                    connects["1000"] += 1
                    streamer = asyncio.create_task(stream(ws))
                elif "2000" in tokens:
                    connects["2000"] += 1
        finally:
            if streamer is not None:
                streamer.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await streamer
        return ws

    async with _serve(handler) as url:
        yield url, connects


async def test_stall_is_detected_per_socket() -> None:
    # Frames on one socket must not hide a silent second socket from the watchdog.
    cfg = msgspec.structs.replace(FAST_FEED, max_tokens_per_socket=1)
    frames, sink = _collector()
    async with _one_silent_socket_server() as (url, connects):
        session = FeedSession(
            cfg,
            url,
            static_headers(good_headers()),
            sink,
            LiveClock(),
            structlog.get_logger().bind(stage="feed"),
            seed=1,
        )
        session.set_subscriptions({(2, "1000"), (2, "2000")})
        async with running(session):
            await asyncio.wait_for(session.wait_ready(), 5)
            await eventually(lambda: session.stats.stalls >= 1 and connects["2000"] >= 2)
            assert connects["1000"] == 1
            assert len(frames) > 0
