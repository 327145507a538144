"""Latency stamps of the path from a packet to an order, kept in one place.

The analytics and the strategy carry no timing: the pipeline tells this observer when a bar
closes (and which packet closed it), when a signal is decided, when a bar's decisions are done
and when a batch is done; the router tells it when an intent is queued and an order sent. It
turns those moments into the daemon's latency histograms and, when a benchmark asks for them
(``samples``), raw nanosecond samples. Latencies are wall-clock: simulated time divided by the
simulator's speed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from smartflow.analytics.detectors import SmartMoneyDetector
from smartflow.core.clock import Clock
from smartflow.core.messages import OrderIntent


if TYPE_CHECKING:
    from smartflow.app.metrics import Metrics


@dataclass
class LatencySamples:
    """Raw latencies (ns) for a benchmark, each from the packet behind the decision."""

    decision: list[int] = field(default_factory=list)
    """Oldest packet of a batch → the batch applied and the strategy's checks done."""
    signal: list[int] = field(default_factory=list)
    """Packet that closed a bar → a material signal decided."""
    bar: list[int] = field(default_factory=list)
    """Packet that closed a bar → the strategy has acted on every underlying's signal."""
    intent: list[int] = field(default_factory=list)
    """Packet behind a decision → its order intent queued."""
    entry: list[int] = field(default_factory=list)
    """The entries among ``intent`` (decided at bar closes; exits are decided after batches)."""


class LatencyObserver:
    """Where every latency of the tick → order path is measured from and recorded."""

    def __init__(self, clock: Clock, speed: float = 1.0, metrics: Metrics | None = None) -> None:
        self.clock = clock
        self.speed = speed
        self.metrics = metrics
        self.samples: LatencySamples | None = None
        self.trigger_ns = 0
        """Receive time of the packet behind the latest decision point (a bar close or the end
        of a batch); order intents carry it as their ``tick_ns``."""
        self._signal_waits: list[int] = []

    def _wall_ns(self, since_ns: int, now_ns: int | None = None) -> int:
        now = self.clock.now_ns() if now_ns is None else now_ns
        return max(0, int((now - since_ns) / self.speed))

    # ---- the analytics' moments ------------------------------------------------------------

    def bar_closing(self, closed_at_ns: int) -> None:
        """A bar is closing: decisions from here on answer the packet received at ``closed_at_ns``.

        That is the bar's end instant when the clock closed it.
        """
        self.trigger_ns = closed_at_ns

    def batch_applied(self, last_recv_ns: int) -> None:
        """A batch is applied: exit checks from here on answer its newest packet."""
        self.trigger_ns = last_recv_ns

    def signal_decided(self) -> None:
        """A detector decided a material signal."""
        waited = self._wall_ns(self.trigger_ns)
        # Into the histogram once the bar is explained: off the path to the strategy.
        self._signal_waits.append(waited)
        if self.samples is not None:
            self.samples.signal.append(waited)

    def bar_decided(self, detectors: Iterable[SmartMoneyDetector]) -> None:
        """The strategy has acted on every underlying's signal of the bar."""
        if self.samples is not None:
            self.samples.bar.append(self._wall_ns(self.trigger_ns))
        if self.metrics is not None:
            for det in detectors:
                self.metrics.detector_update.observe(det.update_ns / 1e9)
                self.metrics.detector_kernels.observe(det.kernel_ns / 1e9)

    def bar_explained(self, detectors: Iterable[SmartMoneyDetector]) -> None:
        """The bar's signals have their reason and evidence."""
        if self.metrics is not None:
            for det in detectors:
                self.metrics.signal_explain.observe(det.explain_ns / 1e9)
            for waited in self._signal_waits:
                self.metrics.tick_to_signal.observe(waited / 1e9)
        self._signal_waits.clear()

    def batch_done(self, spent_ns: int, oldest_recv_ns: int) -> None:
        """The engine finished a batch that took ``spent_ns`` of its own time."""
        waited = self._wall_ns(oldest_recv_ns)
        if self.metrics is not None:
            self.metrics.batch.observe(spent_ns / 1e9)
            self.metrics.tick_to_decision.observe(waited / 1e9)
        if self.samples is not None:
            self.samples.decision.append(waited)

    # ---- the router's moments --------------------------------------------------------------

    def intent_queued(self, intent: OrderIntent) -> None:
        """The router accepted an intent (router ``on_intent`` hook)."""
        if not intent.tick_ns:
            return
        waited = self._wall_ns(intent.tick_ns)
        if self.metrics is not None:
            self.metrics.tick_to_intent.observe(waited / 1e9)
        if self.samples is not None:
            self.samples.intent.append(waited)
            if intent.purpose == "ENTRY":
                self.samples.entry.append(waited)

    def order_sent(self, _order_id: str, tick_ns: int, sent_ns: int) -> None:
        """The router sent an order request (router ``on_sent`` hook)."""
        if self.metrics is not None:
            self.metrics.tick_to_sent.observe(self._wall_ns(tick_ns, sent_ns) / 1e9)
