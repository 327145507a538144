"""The daemon's history writer: it writes what a bar close queued as soon as that close yields."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import structlog

from smartflow.app.chainhistory import ChainHistory, day_of
from smartflow.journal.history import HistoryStore


async def test_a_queued_day_close_is_written_when_the_loop_next_turns(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite3")
    summaries: Any = None  # the writer task only drains what was queued
    history = ChainHistory(store, summaries, 30, structlog.get_logger())
    task = asyncio.create_task(history.run())
    try:
        await asyncio.sleep(0)  # the writer is waiting for work
        ended = 20_400  # a day index
        history.on_day_close("NIFTY", ended, {"1": 10, "2": 20})
        # A few turns of the loop, no timer: the write does not wait for a poll.
        for _ in range(3):
            await asyncio.sleep(0)
        day = day_of(ended)
        assert store.prev_oi_close("NIFTY", day + dt.timedelta(days=1)) == (
            day,
            {"1": 10, "2": 20},
        )
        assert not history.closed_days
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        store.close()
