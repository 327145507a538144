"""What a running daemon tells its operators: Prometheus metrics, stats lines, systemd's status.

``Telemetry`` is built from the running stages and only reads them: the counters each stage keeps
anyway, gathered at scrape time (``Metrics``), every ``stats_interval_s`` (``StatsReporter``) and
for systemd's STATUS line. It also wires the pipeline's latency observer to the same registry, so
the latency histograms and the counters come from one place.
"""

from __future__ import annotations

import asyncio
from typing import Any

from smartflow.analytics.summary import SummarySnapshot
from smartflow.app.metrics import Metrics
from smartflow.app.packet_loop import Engine
from smartflow.app.pipeline import Pipeline
from smartflow.app.stats import StatsSource
from smartflow.app.trading import Trading
from smartflow.core.mailbox import Conflator
from smartflow.feed.session import FeedSession
from smartflow.journal.store import Journal


class Telemetry:
    """The daemon's metrics registry and stats sources, read from its stages."""

    def __init__(
        self,
        mode: str,
        pipeline: Pipeline,
        trading: Trading,
        feed: FeedSession,
        mailbox: Conflator[bytes, tuple[int, bytes]],
        engine: Engine,
        journal: Journal,
        ready: asyncio.Event,
        speed: float,
    ) -> None:
        self.mode = mode
        self.pipeline = pipeline
        self.book = pipeline.book
        self.trading = trading
        self.router = trading.router
        self.feed = feed
        self.mailbox = mailbox
        self.engine = engine
        self.journal = journal
        self.ready = ready
        self.metrics = Metrics(self.snapshot)
        self.metrics.add_chain_summaries(self.summary_snapshots)
        observer = pipeline.observer
        observer.speed = speed
        observer.metrics = self.metrics
        self.router.on_intent.append(observer.intent_queued)
        self.router.on_sent.append(observer.order_sent)

    def stats_sources(self) -> dict[str, StatsSource]:
        """Each stage's counters for its ``stats`` log line."""
        return {
            "feed": self.feed_stats,
            "engine": self.engine.stats,
            "signals": self.signal_stats,
            "orders": self.router.stats,
            "journal": self.journal_stats,
        }

    def feed_stats(self) -> dict[str, Any]:
        """The feed's counters, sockets up and tokens subscribed."""
        snap = self.feed.stats.snapshot()
        snap["sockets"] = self.feed.connected
        snap["tokens"] = len(self.feed.subscribed)
        return snap

    def signal_stats(self) -> dict[str, Any]:
        """Signals emitted and bars closed."""
        return {"signals": self.pipeline.signals_emitted, "bars": self.book.stats.bars_closed}

    def journal_stats(self) -> dict[str, Any]:
        """Journal writes, the failed ones by kind, and whether it is failing now."""
        return {
            "writes": self.journal.writes,
            "write_failures": dict(self.journal.write_failures),
            "failing": self.journal.failing,
        }

    def status_line(self) -> str:
        """One-line summary for systemd's STATUS= (and the alerts' start message)."""
        feed, router = self.feed, self.router
        realised, unrealised = router.day_pnl()
        return (
            f"{self.mode} sockets={feed.connected} "
            f"frames={sum(feed.stats.frames.values())} "
            f"signals={self.pipeline.signals_emitted} "
            f"orders={router.limiter.granted} "
            f"pnl={realised + unrealised:.2f}"
            f"{' KILLED' if self.trading.guard.killed else ''}"
            f"{' JOURNAL-FAILING' if self.journal.failing else ''}"
        )

    def snapshot(self) -> dict[str, Any]:
        """Every stage counter the Prometheus collector turns into metric families."""
        feed, router = self.feed.stats, self.router
        realised, unrealised = router.day_pnl()
        by_state: dict[str, int] = {}
        for o in router.orders.values():
            by_state[o.state] = by_state.get(o.state, 0) + 1
        return {
            "frames_by_mode": dict(feed.frames),
            "rejected": dict(feed.rejected),
            "anomalies": self.book.stats.anomalies,
            "coalesced": self.mailbox.conflated,
            "reconnects": feed.reconnects,
            "stalls": feed.stalls,
            "bars": self.book.stats.bars_closed,
            "signals": self.pipeline.signals_emitted,
            "order_requests": router.limiter.granted,
            "fills": router.fills,
            "risk_rejections": dict(router.refused_by_kind),
            "queues": {
                "feed_mailbox": len(self.mailbox),
                "intents": len(router.exits) + len(router.entries),
                "rate_budget": len(router.waiting),
            },
            "orders_by_state": by_state,
            "realised": realised,
            "unrealised": unrealised,
            "sockets": self.feed.connected,
            "kill_switch": 1 if self.trading.guard.killed else 0,
            "busy_s": self.engine.busy_ns / 1e9,
            "ready": 1 if self.ready.is_set() else 0,
            "feed_health": feed.snapshot(),
            "journal_write_failures": dict(self.journal.write_failures),
        }

    def summary_snapshots(self) -> list[SummarySnapshot]:
        """Each underlying's latest chain summary, by root."""
        summaries = self.pipeline.summaries
        snaps = (summaries.latest(root) for root in sorted(summaries.by_root))
        return [s for s in snaps if s is not None]
