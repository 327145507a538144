"""The API's view of a running daemon (implements ``smartflow.api.server.ApiSource``).

Everything here reads state synchronously and copies it out as plain data; nothing keeps a numpy
view past the call, and nothing waits on a pipeline stage.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import msgspec

from smartflow.analytics.detectors import SmartMoneyDetector
from smartflow.analytics.flow import FlowAnalyzer
from smartflow.app.historytools import history_path, snapshots
from smartflow.app.replay import chain_rows
from smartflow.chain.state import ChainBook, ChainState
from smartflow.core.messages import SmartMoneySignal
from smartflow.core.timeutil import iso_ist, ist_date
from smartflow.journal.history import HistoryStore
from smartflow.kernels import layout as L


if TYPE_CHECKING:
    from smartflow.app.daemon import Daemon

HEARTBEAT_STALE_S = 5.0


def signal_view(sig: SmartMoneySignal) -> dict[str, Any]:
    """A signal as JSON-ready data, ``ts`` in ISO-8601 IST plus ``ts_ns``."""
    body: dict[str, Any] = msgspec.to_builtins(sig)
    body["ts_ns"] = sig.ts
    body["ts"] = iso_ist(sig.ts)
    return body


class DaemonApiSource:
    """Reads a ``Daemon``'s stages for the HTTP API."""

    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon
        self.recent_signals: deque[SmartMoneySignal] = deque(maxlen=daemon.cfg.api.signals_kept)
        self.started = time.monotonic()
        daemon.signal_hooks.append(self.recent_signals.append)

    # ---- helpers ------------------------------------------------------------------------

    @property
    def book(self) -> ChainBook:
        """The chain book."""
        assert self.d.book is not None  # noqa: S101 — the API starts after the chain
        return self.d.book

    @property
    def flow(self) -> FlowAnalyzer:
        """The flow analyzer."""
        assert self.d.flow is not None  # noqa: S101
        return self.d.flow

    def _chains(self, underlying: str | None) -> list[ChainState]:
        return [c for c in self.book.chains if underlying is None or c.root == underlying]

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
        d = self.d
        feed = d.feed
        return {
            "mode": d.cfg.mode,
            "broker": d.trading.broker.name if d.trading else None,
            "ready": d.ready.is_set(),
            "uptime_s": round(time.monotonic() - self.started, 1),
            "underlyings": self.underlyings(),
            "feed": feed.stats.snapshot()
            | {"sockets": feed.connected, "tokens": len(feed.subscribed)}
            if feed
            else None,
            "engine": d.engine.stats() if d.engine else None,
            "orders": d.trading.router.stats() if d.trading else None,
            "signals_emitted": d.signals_emitted,
            "kill_switch": {"on": d.trading.guard.killed, "reason": d.trading.guard.kill_reason}
            if d.trading
            else None,
        }

    def smart_money_metrics(self, underlying: str | None) -> dict[str, Any]:
        """Per underlying: future flow, confluence, signal, zone contracts."""
        out = {}
        for c in self._chains(underlying):
            det = self.d.detectors.get(c.root)
            zone = [
                self._contract(c, r) | self.flow.contract_metrics(c, r)
                for r in self._zone_rows(c, 5)
                if c.q[r, L.Q_TICKS] > 0
            ]
            out[c.root] = {
                "spot": c.spot if math.isfinite(c.spot) else None,
                "forward": round(c.forward, 4) if math.isfinite(c.forward) else None,
                "future": self.flow.future_flow(c),
                "confluence": self.flow.confluence[c.root].to_dict(),
                "signal": signal_view(det.latest) if det and det.latest else None,
                "zone": zone,
            }
        return {"underlyings": out}

    def whale_alerts(
        self, since_ns: int, limit: int, underlying: str | None
    ) -> list[dict[str, Any]]:
        """Whale prints newer than ``since_ns``."""
        hits = [
            w
            for w in self.flow.whales
            if w.ts > since_ns and (underlying is None or w.underlying == underlying)
        ]
        return [w.to_dict() for w in hits[-limit:]]

    def order_flow(self, underlying: str | None, token: str | None) -> list[dict[str, Any]]:
        """Order-flow metrics per contract."""
        rows = []
        for c in self._chains(underlying):
            if token is not None:
                row = c.row_by_token.get(token)
                candidates = [row] if row is not None else []
            else:
                candidates = [L.ROW_FUTURE, *self._zone_rows(c, 5)]
            for row in candidates:
                if c.instruments[row] is None or c.q[row, L.Q_TICKS] == 0:
                    continue
                rows.append(
                    {"underlying": c.root}
                    | self._contract(c, row)
                    | self.flow.contract_metrics(c, row)
                )
        return rows

    def dark_pools(self, underlying: str | None) -> dict[str, Any]:
        """Hidden-liquidity view."""
        contracts = []
        for c in self._chains(underlying):
            for row in [L.ROW_FUTURE, *c.option_rows.tolist()]:
                if c.instruments[row] is None or c.q[row, L.Q_TICKS] == 0:
                    continue
                m = self.flow.contract_metrics(c, row)
                if not m["hidden_volume"]:
                    continue
                contracts.append(
                    {"underlying": c.root}
                    | self._contract(c, row)
                    | {
                        k: m[k]
                        for k in (
                            "hidden_volume",
                            "hidden_bid",
                            "hidden_ask",
                            "hidden_share",
                            "hidden_recent_share",
                            "absorption",
                        )
                    }
                )
        contracts.sort(key=lambda x: -(x["hidden_volume"] or 0))
        return {
            "note": (
                "NSE F&O has no dark pools; this is hidden (iceberg/replenished) liquidity: "
                "volume that traded at a best level which survived, beyond what it showed"
            ),
            "hidden_events": self.flow.hidden_events,
            "contracts": contracts,
        }

    def correlation(self) -> dict[str, Any]:
        """Confluence per underlying."""
        return {"underlyings": {u: conf.to_dict() for u, conf in self.flow.confluence.items()}}

    def chain(self, underlying: str) -> dict[str, Any] | None:
        """Phase 2B view of one chain."""
        chains = self._chains(underlying)
        if not chains:
            return None
        c = chains[0]
        det: SmartMoneyDetector | None = self.d.detectors.get(c.root)
        enrich = [self._enrich(det)]
        strikes: dict[str, dict[str, Any]] = {}
        for r in chain_rows(c, enrich):
            strikes.setdefault(f"{r['strike']:g}", {})[r.pop("option_type")] = r
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

    def chain_summary(self, underlying: str) -> dict[str, Any] | None:
        """The latest bar close's chain summary (an immutable snapshot; built once, cached)."""
        snap = self.d.summaries.latest(underlying) if self.d.summaries else None
        if snap is None:
            return None
        body: dict[str, Any] = msgspec.to_builtins(snap.to_struct())
        body["ts"] = iso_ist(snap.ts_ns)
        return body

    def history(self, underlying: str, day: dt.date | None, every_min: int) -> dict[str, Any]:
        """A day's snapshots, read through a connection of its own (read-only)."""
        when = day or ist_date(self.d.clock.now_ns())
        body: dict[str, Any] = {
            "underlying": underlying,
            "date": when.isoformat(),
            "interval_minutes": every_min,
            "snapshots": [],
        }
        if not self.d.cfg.history.enabled:
            body["note"] = "history is disabled ([history] enabled = false)"
            return body
        try:
            store = HistoryStore(history_path(self.d.cfg), readonly=True)
        except FileNotFoundError:
            return body
        try:
            body["snapshots"] = snapshots(store, underlying, when, every_min)
        finally:
            store.close()
        return body

    def signals(self, since_ns: int, limit: int, underlying: str | None) -> list[dict[str, Any]]:
        """Emitted signals newer than ``since_ns``."""
        hits = [
            s
            for s in self.recent_signals
            if s.ts > since_ns and (underlying is None or s.underlying == underlying)
        ]
        return [signal_view(s) for s in hits[-limit:]]

    def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, details)."""
        d = self.d
        problems = []
        now = time.monotonic_ns()
        if not d.kernels_warm:
            problems.append("kernels not warm")
        if d.feed is None or d.feed.connected == 0:
            problems.append("feed not connected")
        elif d.feed.connected < len(d.feed._connections):
            problems.append("a feed socket is down")
        if d.engine is None or (now - d.engine.heartbeat_ns) / 1e9 > HEARTBEAT_STALE_S:
            problems.append("engine heartbeat stale")
        if d.trading is None:
            problems.append("router not running")
        else:
            task = d.tasks.get("orders")
            if task is None or task.done():
                problems.append("router task ended")
            if d.trading.router.fatal:
                problems.append(d.trading.router.fatal)
            if d.trading.broker.auth_failed:
                problems.append(f"broker login refused: {d.trading.broker.auth_failed}")
        return not problems, {"problems": problems, "ready": d.ready.is_set()}

    def prometheus(self) -> bytes:
        """Prometheus text exposition."""
        assert self.d.metrics is not None  # noqa: S101
        return self.d.metrics.exposition()

    async def kill(self, reason: str, source: str) -> dict[str, Any]:
        """Trip the kill switch."""
        assert self.d.trading is not None  # noqa: S101
        done = await self.d.trading.router.kill(reason, source)
        return {"kill_switch": True, "reason": reason, **done}

    async def reset_kill(self, source: str) -> dict[str, Any]:
        """Re-arm trading."""
        assert self.d.trading is not None  # noqa: S101
        await self.d.trading.router.reset_kill(source)
        return {"kill_switch": False}
