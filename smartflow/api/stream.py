"""The dashboard's live stream: one WebSocket per open page, fed from the snapshots.

Messages are JSON text frames, each an object with ``type``:

* ``hello`` (once, on connect): ``underlyings``, ``kill_enabled`` (whether a kill token is
  configured; never the token), ``series`` (per underlying, today's points: one a minute from
  the history SQLite, then every bar close this process has seen since), ``pnl`` (a point a
  second since the API process started), ``summaries`` (each underlying's latest chain summary
  seen), ``signals`` (the newest kept, oldest first),
  ``stale_after_s``.
* ``tick`` (at most 4 a second): ``ui`` (``smartflow.app.uisource``: ladder, orders,
  positions, P&L, latencies), ``healthy``, ``health`` (problems, the feed stall rule's among
  them), ``status`` (feed counters, kill switch), ``age_s`` of the snapshot.
* ``bar`` (each bar close, per underlying): ``underlying``, ``summary`` (the chain summary, as
  ``/api/chain/{u}/summary``) and ``point`` (what the session charts plot).
* ``signal``: one emitted signal, as ``/api/signals`` gives it (evidence: the rules that fired
  with their numbers).
* ``stale``: no snapshot from the trading loop for ``stale_after_s`` (the daemon is hung or
  stopping); the next ``tick`` clears it.

A point is ``[ts_ns, spot, forward, pcr_oi, atm_iv, straddle]``; a P&L point ``[ts_ns,
realised, unrealised, charges]``. While a page is open the hub keeps asking the trading loop for the
``ui`` and ``summaries`` sections, which it then publishes four times a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from smartflow.api.snapshot import KEEP_S, ApiSnapshot, SnapshotSource


TICKS_PER_S = 4
"""At most four tick updates in any second, whatever the snapshot rate."""
SERIES_KEPT = 8000
"""Bar-close points kept per underlying: a whole session of 5 s bars."""
PNL_KEPT = 8000
PNL_EVERY_S = 1.0
SIGNALS_ON_HELLO = 100
MAX_CLIENTS = 16
MAX_BUFFERED = 1 << 20

_enc = msgspec.json.Encoder()


def chart_point(summary: dict[str, Any]) -> list[Any]:
    """What the session charts plot from one chain summary."""
    vol = summary.get("volatility") or {}
    return [
        summary.get("ts_ns"),
        summary.get("spot"),
        summary.get("forward"),
        (summary.get("pcr") or {}).get("oi"),
        vol.get("atm_iv"),
        vol.get("straddle"),
    ]


class StreamHub:
    """Fans snapshot-derived updates out to the open dashboards."""

    def __init__(
        self,
        source: SnapshotSource,
        kill_enabled: bool,
        log: Any,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.clock = clock
        self.kill_enabled = kill_enabled
        self.log = log
        self.clients: dict[web.WebSocketResponse, asyncio.BaseTransport | None] = {}
        self.series: dict[str, deque[list[Any]]] = {}
        self.pnl: deque[list[Any]] = deque(maxlen=PNL_KEPT)
        self._bar_ts: dict[str, int] = {}
        self.latest: dict[str, dict[str, Any]] = {}
        """Each underlying's latest chain summary, for a page that opens between bar closes."""
        self._ticks: deque[float] = deque(maxlen=TICKS_PER_S)
        self._last_pnl = -math.inf
        self._asked = -KEEP_S
        self._stale_sent = False
        self._watch: asyncio.Task[None] | None = None
        self.sent = 0
        self.dropped = 0

    # ---- snapshots in -------------------------------------------------------------------

    def on_snapshot(self, snap: ApiSnapshot) -> None:
        """Turn a new snapshot into bar, signal and (throttled) tick messages."""
        for sig in snap.signals:
            self._broadcast({"type": "signal", "signal": sig})
        for u, summary in sorted((snap.summaries or {}).items()):
            ts = summary.get("ts_ns")
            if not isinstance(ts, int) or ts == self._bar_ts.get(u):
                continue
            self._bar_ts[u] = ts
            self.latest[u] = summary
            point = chart_point(summary)
            self.series.setdefault(u, deque(maxlen=SERIES_KEPT)).append(point)
            self._broadcast({"type": "bar", "underlying": u, "summary": summary, "point": point})
        now = self.clock()
        orders = snap.status.get("orders")
        clock_ns = snap.status.get("clock_ns")
        if orders and clock_ns and now - self._last_pnl >= PNL_EVERY_S:
            # From the status every snapshot carries: the curve covers the whole run, not only
            # the time a page was open.
            self._last_pnl = now
            self.pnl.append(
                [clock_ns, orders["realised"], orders["unrealised"], orders.get("charges", 0.0)]
            )
        if snap.ui is None:
            return
        # A window over the last four, not a minimum gap: snapshots four a second with a little
        # jitter would otherwise lose every other one.
        if len(self._ticks) == TICKS_PER_S and now - self._ticks[0] < 1.0:
            return
        self._ticks.append(now)
        self._stale_sent = False
        self._broadcast(self._tick(snap))

    def _tick(self, snap: ApiSnapshot) -> dict[str, Any]:
        healthy, health = self.source.health()
        status = snap.status
        return {
            "type": "tick",
            "seq": snap.seq,
            "ui": snap.ui,
            "healthy": healthy,
            "health": health,
            "status": {
                "mode": status.get("mode"),
                "ready": status.get("ready"),
                "uptime_s": status.get("uptime_s"),
                "feed": status.get("feed"),
                "engine": status.get("engine"),
                "signals_emitted": status.get("signals_emitted"),
                "kill_switch": status.get("kill_switch"),
            },
            "age_s": round(time.monotonic() - self.source.received, 3),
        }

    # ---- clients ------------------------------------------------------------------------

    async def _session_series(self, underlyings: list[str]) -> dict[str, list[list[Any]]]:
        """Today's minutes from the history SQLite, then the bar closes seen since."""
        out = {}
        for u in underlyings:
            day = await self.source.history(u, None, 1)
            points = [chart_point(m["summary"] | {"ts_ns": m["ts_ns"]}) for m in day["snapshots"]]
            last = points[-1][0] if points else 0
            points += [p for p in self.series.get(u, ()) if p[0] > last]
            out[u] = points
        return out

    async def _hello(self) -> dict[str, Any]:
        snap = self.source.snap
        underlyings = snap.underlyings if snap else []
        return {
            "type": "hello",
            "underlyings": underlyings,
            "kill_enabled": self.kill_enabled,
            "series": await self._session_series(underlyings),
            "summaries": self.latest,
            "pnl": list(self.pnl),
            "signals": self.source.signals(0, SIGNALS_ON_HELLO, None),
            "stale_after_s": self.source.stale_after_s,
        }

    def _want(self) -> None:
        now = time.monotonic()
        if now - self._asked > KEEP_S / 3:
            self._asked = now
            self.source.want(["ui", "summaries"])

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``GET /ui/stream``: the WebSocket, until the page goes away."""
        if len(self.clients) >= MAX_CLIENTS:
            raise web.HTTPServiceUnavailable(reason=f"over {MAX_CLIENTS} dashboards open")
        ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=4096)
        await ws.prepare(request)
        self.clients[ws] = request.transport
        self._want()
        if self._watch is None or self._watch.done():
            self._watch = asyncio.create_task(self._watchdog())
        try:
            await ws.send_str(_enc.encode(await self._hello()).decode())
            async for msg in ws:
                # The page sends nothing that matters; reading keeps pings and close flowing.
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.clients.pop(ws, None)
        return ws

    def _broadcast(self, msg: dict[str, Any]) -> None:
        if not self.clients:
            return
        text = _enc.encode(msg).decode()
        for ws, transport in list(self.clients.items()):
            if ws.closed:
                self.clients.pop(ws, None)
                continue
            # A page that cannot keep up loses ticks rather than growing our buffers.
            if isinstance(transport, asyncio.WriteTransport) and (
                transport.get_write_buffer_size() > MAX_BUFFERED
            ):
                self.dropped += 1
                continue
            self.sent += 1
            task = asyncio.ensure_future(ws.send_str(text))
            task.add_done_callback(_ignore)

    async def _watchdog(self) -> None:
        """While pages are open: keep the sections asked for; say so when snapshots stop."""
        while self.clients:
            self._want()
            age = time.monotonic() - self.source.received
            if age > self.source.stale_after_s and not self._stale_sent:
                self._stale_sent = True
                self._broadcast(
                    {
                        "type": "stale",
                        "reason": f"no snapshot from the trading loop for {age:.0f} s",
                    }
                )
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        """Close every stream (the API process is stopping)."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        for ws in list(self.clients):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"daemon stopping")


def _ignore(task: asyncio.Future[None]) -> None:
    # A page that went away mid-send: its handler's loop ends and drops it.
    if not task.cancelled():
        task.exception()
