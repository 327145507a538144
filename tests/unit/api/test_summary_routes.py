"""The chain summary and history routes as the API process serves them, over real loopback HTTP.

The summary comes from the trading loop's snapshot (section ``summaries``, asked for on demand);
the history from a real SQLite file the test writes, read through the API process's own
read-only connection.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import structlog

from smartflow.api.server import ApiServer
from smartflow.api.snapshot import ApiSnapshot, Section, SnapshotSource
from smartflow.config import ApiConfig
from smartflow.core.timeutil import ns_at_ist
from smartflow.journal.history import HistoryStore


DAY = dt.date(2026, 1, 5)
NS = 1_000_000_000
SUMMARY = {"underlying": "NIFTY", "pcr": {"oi": 1.25}, "strikes": []}
BARE = ApiSnapshot(
    seq=1,
    full=True,
    underlyings=["NIFTY", "SENSEX"],
    today=DAY.isoformat(),
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


@asynccontextmanager
async def serving(
    source: SnapshotSource,
) -> AsyncIterator[aiohttp.ClientSession]:
    server = ApiServer(ApiConfig(listen="127.0.0.1:0"), source, None, structlog.get_logger())
    await server.start()
    try:
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{server.port}") as http:
            yield http
    finally:
        await server.stop()


async def _get(http: aiohttp.ClientSession, path: str, status: int) -> Any:
    async with http.get(path) as r:
        assert r.status == status, (path, r.status, await r.text())
        return await r.json()


async def test_summary_is_served_from_the_snapshot_section_asked_for() -> None:
    asked: list[list[Section]] = []
    wanted = asyncio.Event()

    def want(sections: list[Section]) -> None:
        asked.append(sections)
        wanted.set()

    source = SnapshotSource(10, 10, 60.0, _no_command, want)
    source.update(BARE)
    async with serving(source) as http:
        # The snapshot lacks the section: the request asks for it and waits for the next one.
        pending = asyncio.ensure_future(_get(http, "/api/chain/NIFTY/summary", 200))
        await asyncio.wait_for(wanted.wait(), 30.0)
        assert asked == [["summaries"]]
        source.update(msgspec.structs.replace(BARE, seq=2, summaries={"NIFTY": SUMMARY}))
        assert await asyncio.wait_for(pending, 30.0) == SUMMARY
        # SENSEX is configured but no bar of it has closed yet.
        body = await _get(http, "/api/chain/SENSEX/summary", 503)
        assert "no bar of SENSEX" in body["error"]
        body = await _get(http, "/api/chain/BANKNIFTY/summary", 404)
        assert "BANKNIFTY" in body["error"]
        body = await _get(http, "/api/chain/NIFTY/summary?x=1", 400)
        assert "`x`" in body["error"]


def _minute(store: HistoryStore, minute: int) -> None:
    store.put_minute(
        "NIFTY",
        ns_at_ist(DAY, dt.time(9, 15)) + minute * 60 * NS,
        DAY,
        {"pcr": {"oi": 1.0 + minute / 100}},
        [(24000.0, "CE", 100 + minute, minute, 0.14, 101.5)],
    )


async def test_history_reads_the_sqlite_file_and_parses_strictly(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    source = SnapshotSource(10, 10, 60.0, _no_command, lambda s: None, path)
    source.update(BARE)
    async with serving(source) as http:
        # No file yet (no minute recorded): an empty day, not an error.
        body = await _get(http, "/api/history/NIFTY", 200)
        assert body == {
            "underlying": "NIFTY",
            "date": "2026-01-05",
            "interval_minutes": 1,
            "snapshots": [],
        }
        store = HistoryStore(path)
        for m in range(12):
            _minute(store, m)
        store.close()
        body = await _get(http, "/api/history/NIFTY?date=2026-01-05&interval=5m", 200)
        assert [s["summary"]["pcr"]["oi"] for s in body["snapshots"]] == [1.0, 1.05, 1.1]
        assert body["snapshots"][1]["strikes"] == [
            {
                "strike": 24000.0,
                "option_type": "CE",
                "oi": 105,
                "oi_change": 5,
                "iv": 0.14,
                "ltp": 101.5,
            }
        ]
        assert body["snapshots"][0]["ts"].startswith("2026-01-05T09:15:00")
        # The default day is the trading loop's, from the snapshot.
        assert len((await _get(http, "/api/history/NIFTY", 200))["snapshots"]) == 12
        assert (await _get(http, "/api/history/NIFTY?date=2026-01-06", 200))["snapshots"] == []
        for bad in ("２０２６-01-05", "2026-1-5", "2026-02-30", "today", "2026-01-05T00:00"):
            body = await _get(http, f"/api/history/NIFTY?date={bad}", 400)
            assert body["error"].startswith("date: "), bad
        body = await _get(http, "/api/history/NIFTY?interval=2m", 400)
        assert body["error"].startswith("interval: ")
        assert "BANKNIFTY" in (await _get(http, "/api/history/BANKNIFTY", 404))["error"]
        assert "`at`" in (await _get(http, "/api/history/NIFTY?at=1", 400))["error"]


async def test_history_disabled_says_so() -> None:
    source = SnapshotSource(10, 10, 60.0, _no_command, lambda s: None)
    source.update(BARE)
    async with serving(source) as http:
        body = await _get(http, "/api/history/NIFTY?date=2026-01-02", 200)
        assert body["snapshots"] == []
        assert body["date"] == "2026-01-02"
        assert "[history] enabled = false" in body["note"]
