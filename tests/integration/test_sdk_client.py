"""The official SDK's SmartWebSocketV2 as a client of our simulator, next to our FeedSession.

Both clients subscribe the same tokens in SNAP_QUOTE mode; every packet both received (same
token, sequence number and exchange timestamp) must decode to the same dict in both.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from sdk_oracle import SmartWebSocketV2
from simkit import chain_pairs, eventually, make_session, running, running_sim

from smartflow.feed import protocol as p


Key = tuple[str, int, int]


def _key(d: dict[str, Any]) -> Key:
    return (d["token"], d["sequence_number"], d["exchange_timestamp"])


async def test_sdk_and_feed_session_decode_identically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK writes ./logs/<date>/app.log and keeps subscriptions in a class attribute.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(SmartWebSocketV2, "input_request_dict", {})
    async with running_sim() as server:
        wanted = chain_pairs(server.market, options=6)
        by_exch: dict[int, list[str]] = {}
        for exch, token in sorted(wanted):
            by_exch.setdefault(exch, []).append(token)
        c = server.creds
        # max_retry_attempt=0: the SDK's close path goes through on_error (its on_close has the
        # wrong arity) and would otherwise sleep and reconnect.
        sws = SmartWebSocketV2(
            f"Bearer {c.jwt}", c.api_key, c.client_code, c.feed_token, max_retry_attempt=0
        )
        sws.ROOT_URI = server.url
        sdk_ticks: list[dict[str, Any]] = []
        sdk_errors: list[tuple[Any, ...]] = []
        stop = threading.Event()
        closed: list[bool] = []

        def on_open(wsapp: Any) -> None:
            token_list = [{"exchangeType": e, "tokens": t} for e, t in by_exch.items()]
            sws.subscribe("sdkoracle1", 3, token_list)

        def on_data(wsapp: Any, message: dict[str, Any]) -> None:
            sdk_ticks.append(message)
            if stop.is_set() and not closed:
                # Closed from the SDK's own thread: its dispatcher then sees ``keep_running``
                # drop at once, where a close from another thread leaves it in a 10 s select.
                closed.append(True)
                sws.close_connection()

        def on_error(*args: Any) -> None:
            sdk_errors.append(args)

        sws.on_open = on_open
        sws.on_data = on_data
        sws.on_error = on_error
        sws.on_close = lambda wsapp: None

        ours: list[bytes] = []
        session = make_session(server, lambda _t, _k, frame: ours.append(frame))
        session.set_subscriptions(wanted)
        thread = threading.Thread(target=sws.connect, name="sdk-ws", daemon=True)
        async with running(session):
            thread.start()
            try:
                decoder = p.Decoder()
                mine: set[Key] = set()

                def overlap() -> set[Key]:
                    for f in ours[len(mine) :]:
                        mine.add(_key(decoder.decode(f)))
                    return mine & {_key(d) for d in list(sdk_ticks)}

                await eventually(
                    lambda: (
                        len(overlap()) >= 150
                        and {d["token"] for d in list(sdk_ticks)} == {t for _, t in wanted}
                    ),
                    8,
                )
            finally:
                stop.set()
                await asyncio.to_thread(thread.join, 5)
        assert not thread.is_alive()

    decoded: dict[Key, dict[str, Any]] = {}
    for frame in ours:
        d = decoder.decode(frame)
        assert d.pop("anomalies") == []
        decoded[_key(d)] = d
    compared = 0
    for theirs in sdk_ticks:
        same = decoded.get(_key(theirs))
        if same is None:
            continue
        assert same == theirs
        compared += 1
    assert compared >= 150
    # The simulator's sockets carried both clients at once.
    assert {(d["exchange_type"], d["token"]) for d in sdk_ticks} == wanted
    # The only "error" the SDK reports is its own close path (see above), never a parse error.
    assert all(e[0] == "Max retry attempt reached" for e in sdk_errors)
