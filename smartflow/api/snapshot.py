"""What the trading loop publishes for the API, and the API's source over it.

The daemon builds an ``ApiSnapshot`` on its loop every ``[api] snapshot_interval_ms`` (and right
after a kill); the API process keeps the latest one and answers every read route from it, so a
request costs the trading loop nothing. Signals and whale prints arrive as increments and are
kept here, bounded like the daemon's own history.

The costly parts (``SECTIONS``: every contract's flow metrics, the chain views, the chain
summaries, the Prometheus text) are built only while someone reads them: a request for a section
the snapshots do not carry asks the daemon for it (``want``) and waits for the next snapshot,
which then carries it for ``KEEP_S`` after the last such request. An idle API costs the trading
loop next to nothing. The chain history is not in the snapshots: the API process reads the
history SQLite itself, through a read-only connection of its own per request.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import msgspec

from smartflow.journal.history import HistoryStore, snapshots


Section = Literal["zone", "contracts", "chains", "summaries", "prometheus", "ui"]
SECTIONS: tuple[Section, ...] = ("zone", "contracts", "chains", "summaries", "prometheus", "ui")
KEEP_S = 10.0
"""A section stays in the snapshots this long after it was last asked for (a request after a
longer pause waits for one snapshot to be built: milliseconds)."""


class ApiSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the read routes serve, as plain data."""

    seq: int
    full: bool
    """``signals`` and ``whales`` are the whole kept history, not the increment."""
    underlyings: list[str]
    today: str
    """The trading loop's IST date (YYYY-MM-DD; the simulator's clock may run on another)."""
    status: dict[str, Any]
    healthy: bool
    health: dict[str, Any]
    hidden_events: int
    correlation: dict[str, Any]
    signals: list[dict[str, Any]]
    whales: list[dict[str, Any]]
    zone: dict[str, Any] | None = None
    """Section ``zone``: per underlying, the metrics view (spot, forward, future flow,
    confluence, latest signal, ATM-zone contracts) and the default order-flow rows."""
    contracts: list[dict[str, Any]] | None = None
    """Section ``contracts``: every traded contract with its identity and flow metrics."""
    chains: dict[str, dict[str, Any]] | None = None
    """Section ``chains``: the Phase 2B view per underlying."""
    summaries: dict[str, dict[str, Any]] | None = None
    """Section ``summaries``: the latest bar close's ``ChainSummary`` per underlying (absent
    until its first bar has closed)."""
    prometheus: bytes | None = None
    """Section ``prometheus``: the text exposition."""
    ui: dict[str, Any] | None = None
    """Section ``ui``: the dashboard's ladder, orders, positions, P&L and latencies
    (``smartflow.app.uisource``)."""


CONTRACT_ID = ("underlying", "token", "symbol", "strike", "option_type", "ltp")
HIDDEN = (
    "hidden_volume",
    "hidden_bid",
    "hidden_ask",
    "hidden_share",
    "hidden_recent_share",
    "absorption",
)
DARK_POOLS_NOTE = (
    "NSE F&O has no dark pools; this is hidden (iceberg/replenished) liquidity: "
    "volume that traded at a best level which survived, beyond what it showed"
)

Command = Callable[..., Awaitable[dict[str, Any]]]
Want = Callable[[list[Section]], None]


class SnapshotSource:
    """``ApiSource`` over the latest snapshot; kill commands go back to the trading loop."""

    def __init__(
        self,
        signals_kept: int,
        whales_kept: int,
        stale_after_s: float,
        command: Command,
        want: Want,
        history: Path | None = None,
    ) -> None:
        self.snap: ApiSnapshot | None = None
        self.history_path = history
        """The daemon's history SQLite (None: ``[history] enabled = false``)."""
        self.received = 0.0
        self.signals_kept: deque[dict[str, Any]] = deque(maxlen=signals_kept)
        self.whales_kept: deque[dict[str, Any]] = deque(maxlen=whales_kept)
        self.stale_after_s = stale_after_s
        self.command = command
        self.want = want
        self._asked: dict[Section, float] = {}
        self._next: asyncio.Future[None] | None = None
        self._by_token: dict[str, list[dict[str, Any]]] = {}

    def update(self, snap: ApiSnapshot) -> None:
        """Take a newly published snapshot."""
        if snap.full:
            self.signals_kept.clear()
            self.whales_kept.clear()
        self.signals_kept.extend(snap.signals)
        self.whales_kept.extend(snap.whales)
        by_token: dict[str, list[dict[str, Any]]] = {}
        for c in snap.contracts or ():
            by_token.setdefault(c["token"], []).append(c)
        self._by_token = by_token
        self.snap = snap
        self.received = time.monotonic()
        if self._next is not None:
            self._next.set_result(None)
            self._next = None

    async def need(self, *sections: Section) -> None:
        """Return once the snapshot carries ``sections``, asking the daemon for them."""
        now = time.monotonic()
        # Re-ask well before the daemon's KEEP_S runs out, so a section in use never lapses.
        ask = [s for s in sections if now - self._asked.get(s, -KEEP_S) > KEEP_S / 3]
        if ask:
            for s in ask:
                self._asked[s] = now
            self.want(ask)
        while any(getattr(self._s, s) is None for s in sections):
            if self._next is None:
                self._next = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._next)

    @property
    def _s(self) -> ApiSnapshot:
        # The worker serves only after the first snapshot has arrived.
        assert self.snap is not None  # noqa: S101
        return self.snap

    @property
    def _zone(self) -> dict[str, Any]:
        assert self._s.zone is not None  # noqa: S101 — after need("zone")
        return self._s.zone

    @property
    def _contracts(self) -> list[dict[str, Any]]:
        assert self._s.contracts is not None  # noqa: S101 — after need("contracts")
        return self._s.contracts

    def underlyings(self) -> list[str]:
        """Configured roots."""
        return self._s.underlyings

    def status(self) -> dict[str, Any]:
        """Stages, counters, uptime (as of the snapshot)."""
        return self._s.status

    def smart_money_metrics(self, underlying: str | None) -> dict[str, Any]:
        """Per underlying: future flow, confluence, signal, zone contracts."""
        return {
            "underlyings": {
                u: z["metrics"]
                for u, z in self._zone.items()
                if underlying is None or u == underlying
            }
        }

    def whale_alerts(
        self, since_ns: int, limit: int, underlying: str | None
    ) -> list[dict[str, Any]]:
        """Whale prints newer than ``since_ns``, newest last."""
        hits = [
            w
            for w in self.whales_kept
            if w["ts_ns"] > since_ns and (underlying is None or w["underlying"] == underlying)
        ]
        return hits[-limit:]

    def order_flow(self, underlying: str | None, token: str | None) -> list[dict[str, Any]]:
        """Order-flow metrics per contract: one token, or each chain's future and ATM zone."""
        if token is not None:
            return [
                c
                for c in self._by_token.get(token, [])
                if underlying is None or c["underlying"] == underlying
            ]
        rows: list[dict[str, Any]] = []
        for u, z in self._zone.items():
            if underlying is None or u == underlying:
                rows += z["order_flow"]
        return rows

    def dark_pools(self, underlying: str | None) -> dict[str, Any]:
        """Hidden-liquidity view, largest hidden volume first."""
        contracts = [
            {k: c[k] for k in (*CONTRACT_ID, *HIDDEN)}
            for c in self._contracts
            if c["hidden_volume"] and (underlying is None or c["underlying"] == underlying)
        ]
        contracts.sort(key=lambda x: -(x["hidden_volume"] or 0))
        return {
            "note": DARK_POOLS_NOTE,
            "hidden_events": self._s.hidden_events,
            "contracts": contracts,
        }

    def correlation(self) -> dict[str, Any]:
        """Confluence per underlying."""
        return self._s.correlation

    def chain(self, underlying: str) -> dict[str, Any] | None:
        """Phase 2B view of one chain."""
        return (self._s.chains or {}).get(underlying)

    def chain_summary(self, underlying: str) -> dict[str, Any] | None:
        """The latest bar close's chain summary (None: no bar has closed yet)."""
        return (self._s.summaries or {}).get(underlying)

    async def history(self, underlying: str, day: dt.date | None, every_min: int) -> dict[str, Any]:
        """A day's snapshots, one per ``every_min``, read off this process's event loop."""
        when = day or dt.date.fromisoformat(self._s.today)
        body: dict[str, Any] = {
            "underlying": underlying,
            "date": when.isoformat(),
            "interval_minutes": every_min,
            "snapshots": [],
        }
        if self.history_path is None:
            body["note"] = "history is disabled ([history] enabled = false)"
            return body
        body["snapshots"] = await asyncio.to_thread(
            _read_history, self.history_path, underlying, when, every_min
        )
        return body

    def signals(self, since_ns: int, limit: int, underlying: str | None) -> list[dict[str, Any]]:
        """Emitted signals newer than ``since_ns``, newest last."""
        hits = [
            s
            for s in self.signals_kept
            if s["ts_ns"] > since_ns and (underlying is None or s["underlying"] == underlying)
        ]
        return hits[-limit:]

    def health(self) -> tuple[bool, dict[str, Any]]:
        """The trading loop's health as of the snapshot, and whether it is still publishing."""
        s = self._s
        age = time.monotonic() - self.received
        if age <= self.stale_after_s:
            return s.healthy, s.health
        problems = [
            *s.health.get("problems", []),
            f"no snapshot from the trading loop for {age:.0f} s",
        ]
        return False, s.health | {"problems": problems}

    def prometheus(self) -> bytes:
        """Prometheus text exposition (as of the snapshot)."""
        return self._s.prometheus or b""

    def kill(self, reason: str, source: str) -> Awaitable[dict[str, Any]]:
        """Trip the kill switch on the trading loop; resolves with its answer."""
        return self.command("kill", reason=reason, source=source)

    def reset_kill(self, source: str) -> Awaitable[dict[str, Any]]:
        """Re-arm trading on the trading loop."""
        return self.command("reset", reason="", source=source)


def _read_history(
    path: Path, underlying: str, day: dt.date, every_min: int
) -> list[dict[str, Any]]:
    """Through a read-only connection of its own: the daemon keeps writing meanwhile."""
    try:
        store = HistoryStore(path, readonly=True)
    except FileNotFoundError:  # no minute recorded yet
        return []
    try:
        return snapshots(store, underlying, day, every_min)
    finally:
        store.close()
