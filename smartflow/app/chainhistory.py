"""The daemon's chain history: what it loads at start and what it records while running.

At start, per underlying: the stored daily ATM-IV closes before today (IV rank and percentile)
and the latest earlier day's closing OI (today's ΔOI baseline, ``doi_basis = "prev_close"``).

While running, the first bar close of each IST minute is queued (one deque append on the
bar-close path) and a task writes it as soon as the bar close is done: the summary and
per-strike OI, ΔOI, IV and LTP; in market hours the same ATM IV as the day's close so far. When
a session runs across midnight, the ended day's closing OI is written as the date rolls; at
shutdown, today's. Since minutes are picked by the bar clock and summaries are a function of the
packets, a replay of the day's tape selects the same minutes with the same values.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import sqlite3
from collections import deque
from typing import Any

import msgspec

from smartflow.analytics.summary import ChainSummaries, SummarySnapshot, ist_day_index
from smartflow.core.timeutil import NS_PER_S, is_market_hours
from smartflow.journal.history import HistoryStore, StrikeRow
from smartflow.kernels import summary as ks


MINUTE_NS = 60 * NS_PER_S
EPOCH = dt.date(1970, 1, 1)


def day_of(index: int) -> dt.date:
    """The IST date of a day index (``ist_day_index``)."""
    return EPOCH + dt.timedelta(days=index)


def strike_rows(snap: SummarySnapshot) -> list[StrikeRow]:
    """Per-strike OI, ΔOI, IV and LTP of a snapshot, CE and PE rows."""
    out: list[StrikeRow] = []

    def num(x: float, nd: int) -> float | None:
        return round(float(x), nd) if math.isfinite(x) else None

    for o in snap.per_strike:
        if o[ks.K_SEEN] == 0.0:
            continue
        k = float(o[ks.K_STRIKE])
        for side, oi, doi, iv, ltp in (
            ("CE", ks.K_CE_OI, ks.K_CE_DOI, ks.K_CE_IV, ks.K_CE_LTP),
            ("PE", ks.K_PE_OI, ks.K_PE_DOI, ks.K_PE_IV, ks.K_PE_LTP),
        ):
            out.append((k, side, int(o[oi]), int(o[doi]), num(o[iv], 6), num(o[ltp], 2)))
    return out


def minute_summary(snap: SummarySnapshot) -> dict[str, Any]:
    """The snapshot's summary without its per-strike rows (those go to ``minute_strike``)."""
    body: dict[str, Any] = msgspec.to_builtins(snap.to_struct())
    del body["strikes"]
    if "next_expiry" in body:
        del body["next_expiry"]["strikes"]
    return body


class ChainHistory:
    """Loads and records history for a ``ChainSummaries``."""

    def __init__(
        self, store: HistoryStore, summaries: ChainSummaries, retention_days: int, log: Any
    ) -> None:
        self.store = store
        self.summaries = summaries
        self.retention_days = retention_days
        self.log = log
        self.pending: deque[SummarySnapshot] = deque(maxlen=1024)
        self.closed_days: deque[tuple[str, int, dict[str, int]]] = deque()
        self.last_minute: dict[str, int] = {}
        self.purged_day = -1
        self.written = 0
        self.failures = 0
        self._queued = asyncio.Event()

    def load(self, now_ns: int) -> None:
        """Daily IV closes and the previous session's closing OI, for every underlying."""
        today = day_of(ist_day_index(now_ns))
        for root, s in sorted(self.summaries.by_root.items()):
            s.iv_closes = tuple(self.store.daily_iv(root, today))
            prev_day, oi = self.store.prev_oi_close(root, today)
            matched = (
                sum(x.set_prev_close(oi) for x in self.summaries.summarizers(root)) if oi else 0
            )
            for x in self.summaries.summarizers(root)[1:]:
                x.day = ist_day_index(now_ns)
            # The baseline belongs to today: the first bar close must not roll it over again.
            s.day = ist_day_index(now_ns)
            self.log.info(
                "history.loaded",
                underlying=root,
                iv_closes=len(s.iv_closes),
                prev_close_day=prev_day.isoformat() if prev_day else None,
                prev_close_contracts=matched,
            )

    def attach(self) -> None:
        """Queue minute snapshots and day closes from the summaries."""
        self.summaries.on_snapshot.append(self.on_snapshot)
        self.summaries.on_day_close.append(self.on_day_close)

    def on_snapshot(self, snap: SummarySnapshot, at_close: bool) -> None:
        """Keep the first bar close of each minute (cheap: runs on the bar-close path)."""
        if not at_close:
            return
        minute = (snap.ts_ns - 1) // MINUTE_NS
        if self.last_minute.get(snap.underlying) == minute:
            return
        self.last_minute[snap.underlying] = minute
        self.pending.append(snap)
        self._queued.set()

    def on_day_close(self, root: str, day: int, closing: dict[str, int]) -> None:
        """A date rolled over while running: record the ended day's closing OI."""
        self.closed_days.append((root, day, closing))
        self._queued.set()

    def drain(self) -> None:
        """Write what is queued."""
        while self.closed_days:
            root, ended, closing = self.closed_days.popleft()
            self.store.put_oi_close(root, day_of(ended), closing)
        while self.pending:
            snap = self.pending.popleft()
            day_index = ist_day_index(snap.ts_ns - 1)
            day = day_of(day_index)
            self.store.put_minute(
                snap.underlying, snap.ts_ns, day, minute_summary(snap), strike_rows(snap)
            )
            atm = snap.scalar(ks.S_ATM_IV)
            if math.isfinite(atm) and atm > 0 and is_market_hours(snap.ts_ns - 1):
                self.store.put_daily_iv(snap.underlying, day, atm, "live")
            self.written += 1
            if day_index != self.purged_day:
                self.purged_day = day_index
                self.store.purge(day_of(day_index - self.retention_days + 1))

    def record_close(self) -> None:
        """At shutdown: today's closing OI so far, for tomorrow's ΔOI."""
        self.drain()
        for root, s in sorted(self.summaries.by_root.items()):
            closing = self.summaries.closing_oi(root)
            if closing and s.day >= 0:
                self.store.put_oi_close(root, day_of(s.day), closing)

    async def run(self) -> None:
        """Write what is queued, right after the bar close that queued it, until cancelled.

        The writes take ~2 ms of the event loop once a minute. Started as the bar close yields,
        they have the whole bar to finish before the next close; a task polling once a second
        at its own phase held a close back by that much whenever the two phases met.

        History is analytics, not a record trading depends on: a failed write (disk full, a
        locked file) is logged and counted, and never stops the daemon.
        """
        while True:
            await self._queued.wait()
            self._queued.clear()
            try:
                self.drain()
            except sqlite3.Error as e:
                self.failures += 1
                self.log.error("history.write_failed", error=repr(e), failures=self.failures)
