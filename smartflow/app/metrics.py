"""Prometheus metrics: counters read from the stages at scrape time, latencies observed live.

Scraping costs the pipeline nothing: the collector reads the counters each stage keeps anyway.
Only the latency histograms are observed on the hot path (a few hundred nanoseconds each):
engine batch time, tick → signal, tick → order intent, tick → order sent, and event-loop lag.
Latencies are wall-clock seconds (simulated time divided by the simulator's speed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from smartflow.analytics.summary import SummarySnapshot
from smartflow.kernels import summary as ks


LATENCY_BUCKETS = (
    25e-6,
    50e-6,
    100e-6,
    250e-6,
    500e-6,
    1e-3,
    2.5e-3,
    5e-3,
    10e-3,
    25e-3,
    50e-3,
    100e-3,
    250e-3,
    1.0,
    5.0,
)
LAG_BUCKETS = (1e-4, 5e-4, 1e-3, 5e-3, 10e-3, 50e-3, 100e-3, 500e-3, 1.0)


class Metrics:
    """The daemon's registry: live histograms plus a scrape-time collector."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)

        def h(name: str, doc: str, buckets: Sequence[float] = LATENCY_BUCKETS) -> Histogram:
            return Histogram(name, doc, buckets=buckets, registry=self.registry)

        self.batch = h(
            "smartflow_engine_batch_seconds",
            "Engine time per batch of packets (decode, chain, greeks, detectors)",
        )
        self.detector_update = h(
            "smartflow_detector_update_seconds",
            "Detector update at a bar close, per underlying (kernels, battlefield, the signal's "
            "decision)",
        )
        self.detector_kernels = h(
            "smartflow_detector_kernels_seconds",
            "The numba part of the detector update at a bar close, per underlying",
        )
        self.signal_explain = h(
            "smartflow_signal_explain_seconds",
            "The signal's reason and evidence, built after the strategy saw the bar",
        )
        self.tick_to_signal = h(
            "smartflow_tick_to_signal_seconds",
            "Receive of the packet that closed a bar → material signal decided",
        )
        self.tick_to_intent = h(
            "smartflow_tick_to_intent_seconds",
            "Receive of the packet behind a decision → order intent",
        )
        self.tick_to_decision = h(
            "smartflow_tick_to_decision_seconds",
            "Receive of the oldest packet of a batch → strategy evaluated "
            "it (every batch, whether or not it ordered)",
        )
        self.tick_to_sent = h(
            "smartflow_tick_to_order_sent_seconds",
            "Receive of the packet behind a decision → order request sent",
        )
        self.loop_lag = h(
            "smartflow_event_loop_lag_seconds",
            "How late a 250 ms timer fires (event-loop saturation)",
            LAG_BUCKETS,
        )
        self.registry.register(_Snapshot(snapshot))

    def add_chain_summaries(self, snapshots: Callable[[], Sequence[SummarySnapshot]]) -> None:
        """Gauges of the latest chain summary per underlying, read at scrape time."""
        self.registry.register(_ChainSummaryGauges(snapshots))

    def exposition(self) -> bytes:
        """Prometheus text format."""
        return generate_latest(self.registry)


class _Snapshot(Collector):
    """Turns one dict of stage counters into metric families at scrape time."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.snapshot = snapshot

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot()
        frames = CounterMetricFamily(
            "smartflow_frames", "Packets received by mode", labels=["mode"]
        )
        for mode, n in sorted(s["frames_by_mode"].items()):
            frames.add_metric([mode], n)
        yield frames
        rejected = CounterMetricFamily(
            "smartflow_frames_rejected", "Malformed packets by kind", labels=["kind"]
        )
        for kind, n in sorted(s["rejected"].items()):
            rejected.add_metric([kind], n)
        yield rejected
        for name, doc, value in (
            (
                "smartflow_frame_anomalies",
                "Accepted packets with a depth-flag or crossed-book anomaly",
                s["anomalies"],
            ),
            (
                "smartflow_coalesced_updates",
                "Packets overwritten in the per-token mailbox",
                s["coalesced"],
            ),
            ("smartflow_reconnects", "SmartStream reconnects", s["reconnects"]),
            ("smartflow_stalls", "Sockets aborted by the stall watchdog", s["stalls"]),
            ("smartflow_bars", "Bars closed", s["bars"]),
            ("smartflow_signals", "Signals emitted", s["signals"]),
            (
                "smartflow_order_requests",
                "Place/modify/cancel requests granted by the rate limiter",
                s["order_requests"],
            ),
            ("smartflow_fills", "Fills booked", s["fills"]),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        journal = CounterMetricFamily(
            "smartflow_journal_write_failures",
            "Journal writes that did not commit, by kind (signal, order, fill, ...)",
            labels=["kind"],
        )
        for kind, n in sorted(s.get("journal_write_failures", {}).items()):
            journal.add_metric([kind], n)
        yield journal
        risk = CounterMetricFamily(
            "smartflow_risk_rejections", "Intents refused, by reason", labels=["reason"]
        )
        for kind, n in sorted(s["risk_rejections"].items()):
            risk.add_metric([kind], n)
        yield risk
        depth = GaugeMetricFamily(
            "smartflow_queue_depth", "Items waiting per queue", labels=["queue"]
        )
        for queue, n in sorted(s["queues"].items()):
            depth.add_metric([queue], n)
        yield depth
        orders = GaugeMetricFamily(
            "smartflow_orders", "Non-final orders by state", labels=["state"]
        )
        for state in ("NEW", "SENT", "OPEN", "PARTIAL", "UNKNOWN"):
            orders.add_metric([state], s["orders_by_state"].get(state, 0))
        yield orders
        pnl = GaugeMetricFamily("smartflow_day_pnl_rupees", "Today's P&L", labels=["kind"])
        pnl.add_metric(["realised"], s["realised"])
        pnl.add_metric(["unrealised"], s["unrealised"])
        yield pnl
        yield from _feed_families(s["feed_health"])
        for name, doc, value in (
            ("smartflow_sockets_connected", "SmartStream sockets up", s["sockets"]),
            ("smartflow_kill_switch", "1 while the kill switch is tripped", s["kill_switch"]),
            ("smartflow_engine_busy_seconds", "Engine time spent (cumulative)", s["busy_s"]),
            ("smartflow_ready", "1 once the daemon reported ready", s["ready"]),
        ):
            yield GaugeMetricFamily(name, doc, value=value)


def _feed_families(f: dict[str, Any]) -> Iterator[Metric]:
    """Data stalls, their recovery steps, subscription convergence and silent contracts."""
    yield CounterMetricFamily(
        "smartflow_feed_data_stalls",
        "Episodes of no market data in market hours on a subscribed socket (pongs do not count)",
        value=f.get("data_stalls", 0),
    )
    steps = CounterMetricFamily(
        "smartflow_feed_stall_steps",
        "Data-stall recovery steps taken (resubscribe, reconnect, relogin)",
        labels=["step"],
    )
    for step in ("resubscribe", "reconnect", "relogin"):
        steps.add_metric([step], f.get("stall_steps", {}).get(step, 0))
    yield steps
    refused = CounterMetricFamily(
        "smartflow_feed_subscribe_rejected",
        "Subscription pairs refused by the server, by error code",
        labels=["code"],
    )
    for code, n in sorted(f.get("subscribe_rejected", {}).items()):
        refused.add_metric([code], n)
    yield refused
    yield CounterMetricFamily(
        "smartflow_feed_subscribe_retries",
        "Retries of refused subscriptions",
        value=f.get("subscribe_retries", 0),
    )
    pairs = GaugeMetricFamily(
        "smartflow_feed_subscriptions",
        "Wanted (token, mode) pairs by state at the server; confirmed = data or no error "
        "within the confirm window",
        labels=["state"],
    )
    counts = f.get("subscriptions", {})
    for state in ("wanted", "confirmed", "pending", "rejected", "unsent"):
        pairs.add_metric([state], counts.get(state, 0))
    yield pairs
    for name, doc, value in (
        (
            "smartflow_feed_stale",
            "1 while a subscribed socket has had no market data in market hours",
            1 if f.get("stalled") else 0,
        ),
        (
            "smartflow_feed_converged",
            "1 while the server carries every wanted pair (no refusal pending a retry)",
            1 if f.get("subscriptions_converged", True) else 0,
        ),
        (
            "smartflow_feed_silent_tokens",
            "Subscribed contracts with no packet for token_silent_s while their segment streams "
            "(listed in the status API)",
            f.get("silent_tokens", 0),
        ),
    ):
        yield GaugeMetricFamily(name, doc, value=value)


class _ChainSummaryGauges(Collector):
    """PCR, max pain, ATM IV and net GEX of each underlying's latest chain summary.

    With two expiries, also the next expiry's ATM IV and the term spread (next − near).
    """

    def __init__(self, snapshots: Callable[[], Sequence[SummarySnapshot]]) -> None:
        self.snapshots = snapshots

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        snaps = self.snapshots()
        pcr = GaugeMetricFamily(
            "smartflow_chain_pcr",
            "Put-call ratio of the nearest expiry (Σ put ÷ Σ call) by OI, day volume or ΔOI",
            labels=["underlying", "by"],
        )
        pain = GaugeMetricFamily(
            "smartflow_chain_max_pain",
            "Max pain strike: the settlement that pays option holders least",
            labels=["underlying"],
        )
        atm = GaugeMetricFamily(
            "smartflow_chain_atm_iv",
            "ATM implied volatility at the forward (fraction)",
            labels=["underlying"],
        )
        gex = GaugeMetricFamily(
            "smartflow_chain_gex_rupees",
            "Net dealer gamma exposure, rupees per 1 % move (calls +, puts −)",
            labels=["underlying"],
        )
        nxt_atm = GaugeMetricFamily(
            "smartflow_chain_next_atm_iv",
            "ATM implied volatility of the next expiry (fraction; [market] expiries = 2)",
            labels=["underlying", "expiry"],
        )
        spread = GaugeMetricFamily(
            "smartflow_chain_term_spread",
            "ATM IV of the next expiry minus the near one (fraction; > 0: upward term structure)",
            labels=["underlying"],
        )
        for s in snaps:
            u = s.underlying
            if s.next is not None:
                later = s.next.scalar(ks.S_ATM_IV)
                nxt_atm.add_metric([u, s.next.expiry], later)
                spread.add_metric([u], later - s.scalar(ks.S_ATM_IV))
            for by, col in (
                ("oi", ks.S_PCR_OI),
                ("volume", ks.S_PCR_VOL),
                ("oi_change", ks.S_PCR_DOI),
            ):
                pcr.add_metric([u, by], s.scalar(col))
            pain.add_metric([u], s.scalar(ks.S_MAX_PAIN))
            atm.add_metric([u], s.scalar(ks.S_ATM_IV))
            gex.add_metric([u], s.scalar(ks.S_GEX))
        yield pcr
        yield pain
        yield atm
        yield gex
        yield nxt_atm
        yield spread
