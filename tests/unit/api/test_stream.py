"""The dashboard stream's hub: what a snapshot turns into, and the tick rate limit."""

from __future__ import annotations

from typing import Any

from smartflow.api.snapshot import ApiSnapshot, SnapshotSource
from smartflow.api.stream import StreamHub


def snap(seq: int, summary_ts: int | None = None, signals: int = 0) -> ApiSnapshot:
    summaries = None
    if summary_ts is not None:
        summaries = {
            "NIFTY": {
                "ts_ns": summary_ts,
                "spot": 24000.0,
                "forward": 24010.0,
                "pcr": {"oi": 0.9},
                "volatility": {"atm_iv": 0.13, "straddle": 190.0},
            }
        }
    return ApiSnapshot(
        seq=seq,
        full=False,
        underlyings=["NIFTY"],
        today="2026-12-04",
        status={"orders": {"realised": 1.0, "unrealised": 2.0}, "clock_ns": seq},
        healthy=True,
        health={"problems": []},
        hidden_events=0,
        correlation={},
        signals=[{"ts_ns": seq, "underlying": "NIFTY"}] * signals,
        whales=[],
        summaries=summaries,
        ui={"chains": {}},
    )


async def _cmd(op: str, **kw: Any) -> dict[str, Any]:
    return {}


def feed(hub: StreamHub, s: ApiSnapshot) -> None:
    """As the API process does with each snapshot from the daemon."""
    hub.source.update(s)
    hub.on_snapshot(s)


def hub_at(now: list[float]) -> tuple[StreamHub, list[dict[str, Any]]]:
    source = SnapshotSource(10, 10, 5.0, _cmd, lambda sections: None)
    hub = StreamHub(source, False, None, clock=lambda: now[0])
    sent: list[dict[str, Any]] = []
    hub._broadcast = sent.append  # type: ignore[method-assign]
    return hub, sent


def test_at_most_four_ticks_in_any_second() -> None:
    now = [100.0]
    hub, sent = hub_at(now)
    times = []
    # Snapshots every 0.1 s for 3 s, with jitter: ticks go out at most 4 in any 1 s window.
    for i in range(30):
        now[0] = 100.0 + i * 0.1 + (0.003 if i % 2 else -0.003)
        n = len(sent)
        feed(hub, snap(i + 1))
        if len(sent) > n:
            times.append(now[0])
    assert all(m["type"] == "tick" for m in sent)
    assert all(b - a >= 1.0 for a, b in zip(times, times[4:], strict=False))
    assert len(times) >= 10  # and not much fewer: the limit is a window, not a gap


def test_snapshots_as_an_open_page_gets_them_all_go_out() -> None:
    # The daemon publishes every 250 ms plus the build: a little under four a second.
    now = [0.0]
    hub, sent = hub_at(now)
    for i in range(40):
        now[0] = i * 0.26 + (0.004 if i % 3 == 0 else -0.004)
        feed(hub, snap(i + 1))
    assert len(sent) == 40


def test_bars_signals_and_pnl_points() -> None:
    now = [0.0]
    hub, sent = hub_at(now)
    feed(hub, snap(1, summary_ts=5, signals=2))
    now[0] = 0.5
    feed(hub, snap(2, summary_ts=5))  # the same bar: no new point
    now[0] = 1.5
    feed(hub, snap(3, summary_ts=10))
    kinds = [m["type"] for m in sent]
    assert kinds.count("signal") == 2
    assert kinds.count("bar") == 2
    assert [p[0] for p in hub.series["NIFTY"]] == [5, 10]
    assert hub.series["NIFTY"][0] == [5, 24000.0, 24010.0, 0.9, 0.13, 190.0]
    assert hub.latest["NIFTY"]["ts_ns"] == 10
    # A P&L point a second at most, from the status: [clock_ns, realised, unrealised, charges].
    assert list(hub.pnl) == [[1, 1.0, 2.0, 0.0], [3, 1.0, 2.0, 0.0]]
