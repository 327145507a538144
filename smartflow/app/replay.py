"""``smartflow replay``: a tape through the live analytics code, on the tape's clock, as JSON Lines.

Output (design.md §4.2), one object per line, each with ``kind`` and ``ts`` (ISO-8601 IST from
the tape clock): ``signal`` lines as the detectors emit them (written after their batch),
``chain`` snapshots every ``--chain-every`` tape seconds (aligned to multiples of it) and one at
the end, each followed by its ``chain_summary`` (PCR, max pain, walls, ΔOI, GEX, smile:
analytics/summary.py), ``order``/``fill``
lines from the paper router, and a final ``summary``. Packets are validated exactly as the live
feed validates them and applied by the same pipeline (app/pipeline.py); nothing reads the wall
clock, so the same tape and config give the same bytes on every run. (Processing time would
break that; it is logged to stderr, and added to the summary only with ``--timing``.)
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

import msgspec
import numpy as np

from smartflow.analytics.summary import SummarySnapshot
from smartflow.app.chainhistory import ChainHistory
from smartflow.app.pipeline import build_pipeline
from smartflow.app.trading import Trading
from smartflow.chain.state import ChainState
from smartflow.config import Config
from smartflow.core.clock import ReplayClock
from smartflow.core.messages import SmartMoneySignal
from smartflow.core.timeutil import NS_PER_S, iso_ist
from smartflow.instruments.master import ScripMaster
from smartflow.journal.history import HistoryStore
from smartflow.journal.store import FillRow, Journal, OrderRow
from smartflow.kernels import layout as L, wire
from smartflow.tape.format import Tape


CHUNK = 4096
# With trading on, batches are also cut every 50 ms of tape time so that paper matching and exit
# checks see the book about as often as they do live.
TRADING_BATCH_NS = 50_000_000
RowEnricher = Callable[[ChainState, int, dict[str, Any]], None]


@dataclass
class ReplaySummary:
    """What a replay read and produced."""

    frames: int = 0
    applied: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    unknown_token: int = 0
    signals: int = 0
    orders: int = 0
    fills: int = 0
    chain_snapshots: int = 0
    truncated_bytes: int = 0


def _r(x: float, nd: int) -> float | None:
    return round(x, nd) if math.isfinite(x) else None


def chain_rows(
    c: ChainState, enrich: list[RowEnricher], rows_of: range | None = None
) -> list[dict[str, Any]]:
    """One dict per option that has traded or quoted, in chain order (design.md §4.2 fields).

    ``rows_of`` limits it to some rows (the API builds its view a few rows at a time).
    """
    rows = []
    q, f = c.q, c.f
    for row in range(L.ROW_FIRST_OPTION, c.n) if rows_of is None else rows_of:
        if q[row, L.Q_TICKS] == 0:
            continue
        inst = c.instruments[row]
        assert inst is not None  # noqa: S101 — option rows always have an instrument
        ltp, bid, ask = int(q[row, L.Q_LTP]), int(q[row, L.Q_BID_PX]), int(q[row, L.Q_ASK_PX])
        out: dict[str, Any] = {
            "token": inst.token,
            "strike": inst.strike,
            "option_type": inst.kind,
            "ltp": ltp / 100 if ltp > 0 else None,
            "bid": bid / 100 if bid > 0 else None,
            "ask": ask / 100 if ask > 0 else None,
            "volume": int(q[row, L.Q_VOLUME]),
            "oi": int(q[row, L.Q_OI]),
            "iv": _r(float(f[row, L.F_IV]), 6),
            "delta": _r(float(f[row, L.F_DELTA]), 6),
            "gamma": _r(float(f[row, L.F_GAMMA]), 8),
            "theta": _r(float(f[row, L.F_THETA]), 4),
            "vega": _r(float(f[row, L.F_VEGA]), 4),
            "oi_buildup": None,
            "volume_state": None,
            "fresh_position": None,
            "trap_types": None,
            "can_trade": None,
        }
        for e in enrich:
            e(c, row, out)
        rows.append(out)
    return rows


def signal_body(signal: SmartMoneySignal) -> dict[str, Any]:
    """A signal as plain data without its ``ts`` (callers render the time)."""
    body: dict[str, Any] = msgspec.to_builtins(signal)
    del body["ts"]
    return body


def summary_body(snap: SummarySnapshot) -> dict[str, Any]:
    """A chain summary as plain data without its time (the line's ``ts`` carries it)."""
    body: dict[str, Any] = msgspec.to_builtins(snap.to_struct())
    del body["ts_ns"]
    return body


class ReplayWriter:
    """Writes replay lines; every line starts with ``kind`` then ``ts``."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self._enc = msgspec.json.Encoder()

    def line(self, kind: str, ts_ns: int, body: dict[str, Any]) -> None:
        """Write one line."""
        self.out.write(self._enc.encode({"kind": kind, "ts": iso_ist(ts_ns), **body}) + b"\n")


class Replayer:
    """Drives the analytics pipeline (app/pipeline.py) from a tape."""

    def __init__(
        self,
        cfg: Config,
        master: ScripMaster,
        out: IO[bytes],
        chain_every_s: float,
        start_ns: int,
        log: Any = None,
        history: HistoryStore | None = None,
    ) -> None:
        self.cfg = cfg
        self.clock = ReplayClock(start_ns)
        self.writer = ReplayWriter(out)
        self.summary = ReplaySummary()
        self.pipeline = build_pipeline(cfg, master, self.clock)
        self.book = self.pipeline.book
        self.detectors = self.pipeline.detectors
        self.flow = self.pipeline.flow
        self.summaries = self.pipeline.summaries
        # Every signal written, in order (the determinism tests compare them with a live run).
        self.signals: list[SmartMoneySignal] = []
        # The same one-minute series a live run records (``--history FILE``).
        self.history: ChainHistory | None = None
        if history is not None:
            self.history = ChainHistory(
                history, self.summaries, cfg.history.retention_days, _NullLog()
            )
            self.history.attach()
        self.every_ns = int(chain_every_s * NS_PER_S)
        self.next_snapshot_ns = (start_ns // self.every_ns + 1) * self.every_ns
        self.enrich: list[RowEnricher] = [self._detector_columns, self._flow_columns]
        self.last_ns = start_ns
        self.trading: Trading | None = None
        self.journal: Journal | None = None
        if cfg.strategy.enabled:
            self.journal = Journal(":memory:", synchronous="OFF")
            self.trading = self.pipeline.trade(self.journal, log or _NullLog())
            self.trading.router.on_event.append(self._order_event)

    def _order_event(self, kind: str, row: OrderRow, fill: FillRow | None) -> None:
        if kind == "fill" and fill is not None:
            self.summary.fills += 1
            self.writer.line(
                "fill",
                fill.ts_ns,
                {
                    "order_id": fill.order_id,
                    "token": fill.token,
                    "symbol": fill.symbol,
                    "side": fill.side,
                    "quantity": fill.quantity,
                    "price": fill.price,
                },
            )
            return
        if row.state == "NEW":
            self.summary.orders += 1
        self.writer.line(
            "order",
            row.updated_ns,
            {
                "order_id": row.order_id,
                "state": row.state,
                "token": row.token,
                "symbol": row.symbol,
                "side": row.side,
                "quantity": row.quantity,
                "limit_price": row.limit_price,
                "purpose": row.purpose,
                "reason": row.reason,
                "filled_quantity": row.filled_quantity,
                "average_price": row.average_price,
                "text": row.text,
            },
        )

    def _flow_columns(self, c: ChainState, row: int, out: dict[str, Any]) -> None:
        out.update(self.flow.contract_metrics(c, row))

    def _detector_columns(self, c: ChainState, row: int, out: dict[str, Any]) -> None:
        det = self.detectors[c.root]
        if det.latest is not None:
            out.update(det.contract_states(row))

    def write_signals(self) -> None:
        """Write a ``signal`` line for each signal emitted since the last call."""
        for signal in self.pipeline.take_signals():
            self.signals.append(signal)
            self.summary.signals += 1
            self.writer.line("signal", signal.ts, signal_body(signal))

    def snapshot(self, t_ns: int) -> None:
        """Write a ``chain`` line per underlying, priced at ``t_ns``."""
        self.book.price_followers(t_ns)
        for c in self.book.chains:
            c.price_all(t_ns)
            self.writer.line(
                "chain",
                t_ns,
                {
                    "underlying": c.root,
                    "spot": c.spot if math.isfinite(c.spot) else None,
                    "forward": _r(c.forward, 4),
                    "expiry": c.universe.expiry.isoformat(),
                    "rows": chain_rows(c, self.enrich),
                },
            )
            self.writer.line(
                "chain_summary",
                t_ns,
                summary_body(self.summaries.compute_root(c.root, t_ns)),
            )
            fut = self.flow.future_flow(c)
            if fut is not None:
                self.writer.line("flow", t_ns, fut)
        self.summary.chain_snapshots += 1

    async def _apply(self, frames: list[tuple[int, bytes]]) -> None:
        self.pipeline.process(frames)
        self.write_signals()
        if self.trading is not None and frames:
            now = frames[-1][0]
            self.clock.set(now)
            self.pipeline.after_batch(now)
            await self.trading.router.pump(now)

    def run(self, tape: Tape, timing: bool = False) -> ReplaySummary:
        """Replay every record; return the summary (also written as the last line)."""
        return asyncio.run(self.arun(tape, timing))

    async def arun(self, tape: Tape, timing: bool = False) -> ReplaySummary:
        """``run`` for callers that already have an event loop."""
        try:
            return await self._run(tape, timing)
        finally:
            if self.journal is not None:
                self.journal.close()

    async def _run(self, tape: Tape, timing: bool) -> ReplaySummary:
        t0 = time.perf_counter()
        s = self.summary
        s.frames = len(tape)
        s.truncated_bytes = tape.truncated_bytes
        status = np.zeros(len(tape), np.int8)
        wire.check_frames(tape.data, tape.offsets, tape.lengths, status)
        for code in np.flatnonzero(status):
            s.rejected[wire.STATUS_NAMES[status[code]]] += 1
        valid = np.flatnonzero(status == wire.OK)
        pending: list[tuple[int, bytes]] = []
        batch_ns = TRADING_BATCH_NS if self.trading is not None else 1 << 62
        batch_end = 0
        for i in valid:
            recv_ns = int(tape.recv_ns[i])
            if recv_ns >= self.next_snapshot_ns or len(pending) >= CHUNK or recv_ns >= batch_end:
                await self._apply(pending)
                pending = []
                batch_end = recv_ns + batch_ns
                while recv_ns >= self.next_snapshot_ns:
                    self.pipeline.advance_to(self.next_snapshot_ns)
                    self.write_signals()
                    self.snapshot(self.next_snapshot_ns)
                    self.next_snapshot_ns += self.every_ns
            pending.append((recv_ns, tape.payload(int(i))))
            self.last_ns = recv_ns
        await self._apply(pending)
        self.snapshot(self.last_ns)
        if self.history is not None:
            self.history.record_close()
        s.applied = self.book.stats.applied
        s.unknown_token = self.book.stats.unknown_token
        body: dict[str, Any] = {
            "frames": s.frames,
            "applied": s.applied,
            "rejected": dict(sorted(s.rejected.items())),
            "unknown_token": s.unknown_token,
            "anomalies": self.book.stats.anomalies,
            "bars": self.book.stats.bars_closed,
            "signals": s.signals,
            "orders": s.orders,
            "fills": s.fills,
            "chain_snapshots": s.chain_snapshots,
        }
        if s.truncated_bytes:
            body["truncated_bytes"] = s.truncated_bytes
        if timing:
            body["processing_s"] = round(time.perf_counter() - t0, 3)
        self.writer.line("summary", self.last_ns, body)
        return s


class _NullLog:
    """Replay has no log stream of its own: its output is the JSON Lines."""

    def bind(self, **_: Any) -> _NullLog:
        return self

    def __getattr__(self, _name: str) -> Any:
        return lambda *_a, **_k: None
