"""The analytics pipeline: one packet's path to an order, in the order it happens.

``build_pipeline`` assembles it the same way for the daemon, replay, the kernel warm-up and the
benchmarks. A batch of ``(receive ns, packet)`` pairs goes to ``Pipeline.process``, which hands it
to the ``ChainBook`` (chain/state.py: routes packets to rows, applies them with the numba wire and
chain kernels, closes bars as receive time crosses their end). Each packet event the apply kernel
flags (a whale print, hidden liquidity) goes to ``FlowAnalyzer.on_event``. Whenever a bar closes,
the book calls ``Pipeline.close_bar``, which runs, in this order:

1. every underlying's ``SmartMoneyDetector.decide`` (analytics/detectors.py: the detector kernels
   of kernels/signal.py → the signal's decision, without its explanation);
2. ``FlowAnalyzer.on_bar`` (analytics/flow.py): each underlying's flow/signal confluence;
3. ``Trading.on_bar`` (app/trading.py): the confluence's size multipliers, then
   ``Strategy.on_signal(signal)`` for every underlying (strategy/entries_exits.py), which queues
   order intents with ``OrderRouter.submit`` (orders/router.py; the router task sends them);
4. ``SmartMoneyDetector.explain``: the signal's reason and evidence — after the strategy, as
   building them costs more than the decision — and a signal that changed materially is queued
   for publishing (``take_signals``: the daemon logs, journals and serves it, replay writes it);
5. ``ChainSummaries.on_bar`` (analytics/summary.py): PCR, max pain, walls, GEX, smile.

After each batch, ``after_batch`` lets the paper broker match and the strategy check its exits.
Latencies are stamped by a ``LatencyObserver`` (app/latency.py), never by the objects above.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from smartflow.analytics.detectors import SmartMoneyDetector
from smartflow.analytics.flow import FlowAnalyzer
from smartflow.analytics.summary import ChainSummaries
from smartflow.app.latency import LatencyObserver
from smartflow.app.trading import Trading
from smartflow.chain.state import ChainBook, ChainState, FlowParams, next_expiry_chains
from smartflow.config import Config
from smartflow.core.clock import Clock
from smartflow.core.messages import SmartMoneySignal
from smartflow.instruments.master import ScripMaster
from smartflow.instruments.universe import select
from smartflow.journal.store import Journal
from smartflow.orders.port import BrokerPort


class Pipeline:
    """Chains, detectors, flow, summaries and (optionally) trading, driven bar by bar."""

    def __init__(
        self,
        cfg: Config,
        chains: Sequence[ChainState],
        clock: Clock,
        followers: Sequence[ChainState] = (),
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        # Next-expiry chains (``[market] expiries = 2``) are priced and summarised only.
        self.book = ChainBook(chains, cfg.detectors, followers)
        thresholds = cfg.detectors.thresholds()
        self.detectors = {
            c.root: SmartMoneyDetector(c, thresholds, cfg.detectors.bar_seconds)
            for c in self.book.chains
        }
        self.flow = FlowAnalyzer(self.book, self.detectors, cfg.flow)
        self.summaries = ChainSummaries(self.book)
        self.observer = LatencyObserver(clock)
        self.trading: Trading | None = None
        self._unpublished: list[SmartMoneySignal] = []
        self.book.on_event = self.flow.on_event
        self.book.on_close = self.close_bar

    def trade(
        self,
        journal: Journal,
        log: Any,
        broker: BrokerPort | None = None,
        speed: float = 1.0,
    ) -> Trading:
        """Add the order side: strategy, risk, router and broker (paper unless ``broker``)."""
        self.trading = Trading(
            self.cfg,
            self.book,
            self.clock,
            journal,
            log,
            broker=broker,
            speed=speed,
            tick_ns=lambda: self.observer.trigger_ns,
        )
        return self.trading

    # ---- the path -------------------------------------------------------------------------

    def process(self, frames: Sequence[tuple[int, bytes]]) -> None:
        """Apply a batch of ``(recv_ns, packet)`` pairs; bars close inside it as time crosses."""
        if frames:
            self.book.process(frames)
            self.observer.batch_applied(frames[-1][0])

    def advance_to(self, now_ns: int) -> None:
        """Close the bars that ended by ``now_ns`` with no packet to close them."""
        self.book.advance_to(now_ns)

    def close_bar(self, bar_end_ns: int, seq: int, closed_at_ns: int) -> None:
        """Everything a bar close does, in order (the module docs say why this order)."""
        observer = self.observer
        observer.bar_closing(closed_at_ns)
        signals = []
        for det in self.detectors.values():
            signals.append(det.decide(bar_end_ns, seq))
            if det.material:
                observer.signal_decided()
        self.flow.on_bar(bar_end_ns)
        if self.trading is not None:
            self.trading.on_bar(signals, self.flow.confluence)
        observer.bar_decided(self.detectors.values())
        for det in self.detectors.values():
            signal = det.explain(bar_end_ns, seq)
            if det.material:
                self._unpublished.append(signal)
        observer.bar_explained(self.detectors.values())
        self.summaries.on_bar(bar_end_ns, seq)

    def after_batch(self, now_ns: int) -> None:
        """After each batch of packets: paper matching, then the strategy's exit checks."""
        if self.trading is not None:
            self.trading.after_batch(now_ns)

    def take_signals(self) -> list[SmartMoneySignal]:
        """The signals emitted (changed materially) since the last call, in emission order."""
        out, self._unpublished = self._unpublished, []
        return out

    @property
    def signals_emitted(self) -> int:
        """Signals emitted so far, every underlying."""
        return sum(det.emitted for det in self.detectors.values())


def build_pipeline(cfg: Config, master: ScripMaster, clock: Clock) -> Pipeline:
    """The pipeline of ``cfg.market``'s underlyings, each at its expiry as of ``clock``'s now."""
    now = clock.now_ns()
    expiry = dt.date.fromisoformat(cfg.market.expiry) if cfg.market.expiry else None
    flow = FlowParams.from_config(cfg.detectors)
    chains = [
        ChainState(select(master, root, now, expiry), cfg.model, flow)
        for root in cfg.market.underlyings
    ]
    followers = next_expiry_chains(master, chains, now, cfg.market.expiries)
    return Pipeline(cfg, chains, clock, followers)
