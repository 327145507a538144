"""The API's view of a running daemon: the snapshot the trading loop publishes.

Everything here reads state synchronously and copies it out as plain data; nothing keeps a numpy
view past the call, and nothing waits on a pipeline stage. ``snapshot()`` gathers what every
route serves into one ``ApiSnapshot``; the API process (``smartflow.api.worker``) answers from
the latest one, so requests never run on the trading loop. Signals and whale prints are sent as
increments (each is converted once); the costly sections are rebuilt each time, but only while
requests read them (``smartflow.api.snapshot``).
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from collections import deque
from collections.abc import Collection
from typing import Any

import msgspec
from prometheus_client import generate_latest
from prometheus_client.core import Metric

from smartflow.analytics.detectors import SmartMoneyDetector
from smartflow.analytics.flow import WhaleAlert
from smartflow.analytics.summary import SummarySnapshot
from smartflow.api.snapshot import ApiSnapshot, Section
from smartflow.app.health import DaemonHealth
from smartflow.app.metrics import Metrics
from smartflow.app.packet_loop import Engine
from smartflow.app.pipeline import Pipeline
from smartflow.app.replay import chain_rows
from smartflow.app.trading import Trading
from smartflow.app.uisource import UiSection
from smartflow.chain.state import ChainState
from smartflow.config import ApiConfig
from smartflow.core.clock import Clock
from smartflow.core.messages import SmartMoneySignal
from smartflow.core.timeutil import iso_ist, ist_date
from smartflow.feed.session import FeedSession
from smartflow.journal.store import Journal
from smartflow.kernels import layout as L


SLICE_NS = 200_000
CHAIN_ROWS_PER_SLICE = 12
"""Snapshot work between two yields to the event loop (one contract's metrics may overrun it)."""


class _Pace:
    """Awaitable that yields to the loop once ``SLICE_NS`` of work has run since the last yield.

    It also counts the work: CPU time of this thread between yields (what the trading loop
    spent on the snapshot, not what other tasks did while it waited), and the longest slice.
    """

    def __init__(self, source: DaemonApiSource) -> None:
        self.source = source
        self.since = time.perf_counter_ns()
        self.cpu_since = time.thread_time_ns()

    def _count(self) -> None:
        cpu = time.thread_time_ns() - self.cpu_since
        self.source.snapshot_cpu_ns += cpu
        self.source.slice_max_ns = max(self.source.slice_max_ns, cpu)

    async def __call__(self) -> None:
        if time.perf_counter_ns() - self.since >= SLICE_NS:
            self._count()
            await asyncio.sleep(0)
            self.since = time.perf_counter_ns()
            self.cpu_since = time.thread_time_ns()

    def done(self) -> None:
        """Count the last slice."""
        self._count()


class _Families:
    """One metric family, shaped like the registry ``generate_latest`` renders."""

    def __init__(self, family: Metric) -> None:
        self.family = family

    def collect(self) -> list[Metric]:
        return [self.family]


def signal_view(sig: SmartMoneySignal) -> dict[str, Any]:
    """A signal as JSON-ready data, ``ts`` in ISO-8601 IST plus ``ts_ns``."""
    body: dict[str, Any] = msgspec.to_builtins(sig)
    body["ts_ns"] = sig.ts
    body["ts"] = iso_ist(sig.ts)
    return body


class DaemonApiSource:
    """Reads a running daemon's stages for the HTTP API."""

    def __init__(
        self,
        api: ApiConfig,
        mode: str,
        pipeline: Pipeline,
        trading: Trading,
        feed: FeedSession,
        engine: Engine,
        journal: Journal,
        metrics: Metrics,
        health: DaemonHealth,
        ready: asyncio.Event,
        clock: Clock,
    ) -> None:
        self.mode = mode
        self.pipeline = pipeline
        self.book = pipeline.book
        self.flow = pipeline.flow
        self.trading = trading
        self.feed = feed
        self.engine = engine
        self.journal = journal
        self.metrics = metrics
        self.daemon_health = health
        self.ready = ready
        self.clock = clock
        self.recent_signals: deque[SmartMoneySignal] = deque(maxlen=api.signals_kept)
        self.started = time.monotonic()
        self.signals_seen = 0
        self._signals_sent = 0
        self._last_whale: WhaleAlert | None = None
        self._summaries: dict[str, tuple[SummarySnapshot, dict[str, Any]]] = {}
        self.seq = 0
        self.snapshot_cpu_ns = 0
        """Trading-loop CPU time spent building snapshots, in total."""
        self.slice_max_ns = 0
        """The most CPU time of snapshot work between two yields to the loop."""
        self._ui: UiSection | None = None

    def on_signal(self, signal: SmartMoneySignal) -> None:
        """An emitted signal, published by the daemon after its batch."""
        self.recent_signals.append(signal)
        self.signals_seen += 1

    # ---- helpers ------------------------------------------------------------------------

    def _zone_rows(self, c: ChainState, each_side: int) -> list[int]:
        centre = c.spot if c.spot > 0 else c.forward
        if not centre > 0:
            return []
        u = c.universe
        atm = u.atm_index(round(centre * 100))
        rows = []
        for k in u.strikes_paise[max(0, atm - each_side) : atm + each_side + 1]:
            for side in (u.calls, u.puts):
                inst = side.get(k)
                if inst is not None:
                    rows.append(c.row_by_token[inst.token])
        return rows

    def _contract(self, c: ChainState, row: int) -> dict[str, Any]:
        inst = c.instruments[row]
        assert inst is not None  # noqa: S101
        ltp = int(c.q[row, L.Q_LTP])
        return {
            "token": inst.token,
            "symbol": inst.symbol,
            "strike": inst.strike if inst.kind in ("CE", "PE") else None,
            "option_type": inst.kind,
            "ltp": ltp / 100 if ltp > 0 else None,
        }

    # ---- ApiSource ----------------------------------------------------------------------

    def underlyings(self) -> list[str]:
        """Configured roots."""
        return [c.root for c in self.book.chains]

    def status(self) -> dict[str, Any]:
        """Stages, counters, uptime."""
        feed, guard = self.feed, self.trading.guard
        return {
            "mode": self.mode,
            "broker": self.trading.broker.name,
            "ready": self.ready.is_set(),
            "uptime_s": round(time.monotonic() - self.started, 1),
            "clock_ns": self.clock.now_ns(),
            "underlyings": self.underlyings(),
            "feed": feed.stats.snapshot()
            | {"sockets": feed.connected, "tokens": len(feed.subscribed)},
            "engine": self.engine.stats(),
            "orders": self.trading.router.stats() | self.trading.pnl(),
            "signals_emitted": self.pipeline.signals_emitted,
            "kill_switch": {"on": guard.killed, "reason": guard.kill_reason},
        }

    def correlation(self) -> dict[str, Any]:
        """Confluence per underlying."""
        return {"underlyings": {u: conf.to_dict() for u, conf in self.flow.confluence.items()}}

    async def _chain_view(self, c: ChainState, pace: _Pace) -> dict[str, Any]:
        """Phase 2B view of one chain, a few rows per slice."""
        det: SmartMoneyDetector | None = self.pipeline.detectors.get(c.root)
        enrich = [self._enrich(det)]
        strikes: dict[str, dict[str, Any]] = {}
        for start in range(L.ROW_FIRST_OPTION, c.n, CHAIN_ROWS_PER_SLICE):
            for r in chain_rows(c, enrich, range(start, min(c.n, start + CHAIN_ROWS_PER_SLICE))):
                strikes.setdefault(f"{r['strike']:g}", {})[r.pop("option_type")] = r
            await pace()
        return {
            "underlying": c.root,
            "expiry": c.universe.expiry.isoformat(),
            "spot": c.spot if math.isfinite(c.spot) else None,
            "forward": round(c.forward, 4) if math.isfinite(c.forward) else None,
            "strikes": strikes,
        }

    def _enrich(self, det: SmartMoneyDetector | None) -> Any:
        def add(c: ChainState, row: int, out: dict[str, Any]) -> None:
            if det is not None and det.latest is not None:
                out.update(det.contract_states(row))

        return add

    async def snapshot(self, full: bool = False, sections: Collection[Section] = ()) -> ApiSnapshot:
        """What the read routes serve, as plain data, built in slices between engine batches.

        The costly sections (a few ms each: every contract's flow metrics, the chain views,
        the Prometheus text) are built only when asked for, and the work yields to the event
        loop whenever a slice's budget is spent, so a packet waits for at most one slice,
        never for the whole snapshot. Parts are therefore read a few batches apart; each part
        is consistent on its own.

        Args:
            full: send every kept signal and whale print (a new API process), not only those
                since the previous snapshot.
            sections: the costly sections to include.
        """
        pace = _Pace(self)
        self.seq += 1
        chains = self.book.chains
        # Each contract's metrics once per snapshot, shared by the two sections that show them.
        rows: dict[tuple[str, int], dict[str, Any]] = {}
        contracts = await self._contracts_section(pace, rows) if "contracts" in sections else None
        zone = await self._zone_section(pace, rows) if "zone" in sections else None
        views = None
        if "chains" in sections:
            views = {c.root: await self._chain_view(c, pace) for c in chains}
        summaries = await self._summaries_section(pace) if "summaries" in sections else None
        exposition = None
        if "prometheus" in sections:
            parts = []
            for family in self.metrics.registry.collect():
                parts.append(generate_latest(_Families(family)))
                await pace()
            exposition = b"".join(parts)
        ui = self._ui_section().build() if "ui" in sections else None
        # Signals and whale prints last, with no await between reading and marking them sent:
        # an increment is exactly what the previous snapshot did not carry.
        kept = list(self.recent_signals)
        fresh = min(self.signals_seen - (0 if full else self._signals_sent), len(kept))
        signals = [signal_view(s) for s in kept[len(kept) - fresh :]]
        self._signals_sent = self.signals_seen
        whales: list[dict[str, Any]] = []
        for w in reversed(self.flow.whales):
            if w is self._last_whale and not full:
                break
            whales.append(w.to_dict())
        whales.reverse()
        if self.flow.whales:
            self._last_whale = self.flow.whales[-1]
        ok, health = self.health()
        status, correlation = self.status(), self.correlation()
        pace.done()
        return ApiSnapshot(
            seq=self.seq,
            full=full,
            underlyings=[c.root for c in chains],
            today=ist_date(self.clock.now_ns()).isoformat(),
            status=status,
            healthy=ok,
            health=health,
            hidden_events=self.flow.hidden_events,
            correlation=correlation,
            signals=signals,
            whales=whales,
            zone=zone,
            contracts=contracts,
            chains=views,
            summaries=summaries,
            prometheus=exposition,
            ui=ui,
        )

    def _ui_section(self) -> UiSection:
        if self._ui is None:
            m = self.metrics
            latency = {"tick_to_signal": m.tick_to_signal, "tick_to_intent": m.tick_to_intent}
            try:
                orders = self.journal.orders(ist_date(self.clock.now_ns()).isoformat())
            except sqlite3.Error:  # a failing journal is reported by health; the list starts empty
                orders = []
            self._ui = UiSection(
                self.book,
                self.pipeline.detectors,
                self.trading,
                self.clock.now_ns,
                latency,
                self.daemon_health.stale,
                orders,
            )
        return self._ui

    async def _summaries_section(self, pace: _Pace) -> dict[str, dict[str, Any]]:
        """Each chain's latest summary as plain data, converted once per bar close."""
        out: dict[str, dict[str, Any]] = {}
        summaries = self.pipeline.summaries
        for c in self.book.chains:
            snap = summaries.latest(c.root)
            if snap is None:
                continue
            done = self._summaries.get(c.root)
            if done is None or done[0] is not snap:
                body: dict[str, Any] = msgspec.to_builtins(snap.to_struct())
                body["ts"] = iso_ist(snap.ts_ns)
                done = self._summaries[c.root] = (snap, body)
                await pace()
            out[c.root] = done[1]
        return out

    def _row(
        self, c: ChainState, row: int, done: dict[tuple[str, int], dict[str, Any]]
    ) -> dict[str, Any]:
        key = (c.root, row)
        if key not in done:
            done[key] = self._contract(c, row) | self.flow.contract_metrics(c, row)
        return done[key]

    async def _zone_section(
        self, pace: _Pace, done: dict[tuple[str, int], dict[str, Any]]
    ) -> dict[str, Any]:
        """Per underlying: the metrics view and the default order-flow rows."""
        out = {}
        for c in self.book.chains:
            rows = {}
            for row in [L.ROW_FUTURE, *self._zone_rows(c, 5)]:
                if c.instruments[row] is None or c.q[row, L.Q_TICKS] == 0:
                    continue
                rows[row] = self._row(c, row, done)
                await pace()
            det = self.pipeline.detectors.get(c.root)
            out[c.root] = {
                "metrics": {
                    "spot": c.spot if math.isfinite(c.spot) else None,
                    "forward": round(c.forward, 4) if math.isfinite(c.forward) else None,
                    "future": self.flow.future_flow(c),
                    "confluence": self.flow.confluence[c.root].to_dict(),
                    "signal": signal_view(det.latest) if det and det.latest else None,
                    "zone": [m for row, m in rows.items() if row != L.ROW_FUTURE],
                },
                "order_flow": [{"underlying": c.root} | m for m in rows.values()],
            }
            await pace()
        return out

    async def _contracts_section(
        self, pace: _Pace, done: dict[tuple[str, int], dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Every traded contract with its identity and flow metrics."""
        contracts = []
        for c in self.book.chains:
            for row in [L.ROW_FUTURE, *c.option_rows.tolist()]:
                if c.instruments[row] is None or c.q[row, L.Q_TICKS] == 0:
                    continue
                contracts.append({"underlying": c.root} | self._row(c, row, done))
                await pace()
        return contracts

    def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, details)."""
        problems = self.daemon_health.problems()
        return not problems, {"problems": problems, "ready": self.ready.is_set()}

    async def kill(self, reason: str, source: str) -> dict[str, Any]:
        """Trip the kill switch."""
        done = await self.trading.router.kill(reason, source)
        return {"kill_switch": True, "reason": reason, **done}

    async def reset_kill(self, source: str) -> dict[str, Any]:
        """Re-arm trading."""
        await self.trading.router.reset_kill(source)
        return {"kill_switch": False}
