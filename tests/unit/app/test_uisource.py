"""Latency percentiles for the dashboard, estimated from Prometheus histogram buckets."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

from smartflow.app.uisource import quantiles


def _hist(buckets: tuple[float, ...]) -> Histogram:
    return Histogram("t_seconds", "test", buckets=buckets, registry=CollectorRegistry())


def test_nothing_observed_has_no_percentiles() -> None:
    assert quantiles(_hist((0.001, 0.01))) == {"count": 0, "p50": None, "p90": None, "p99": None}


def test_percentiles_interpolate_within_their_bucket() -> None:
    h = _hist((0.001, 0.002, 0.004))
    for _ in range(50):
        h.observe(0.0005)  # bucket (0, 1 ms]
    for _ in range(50):
        h.observe(0.003)  # bucket (2, 4 ms]
    q = quantiles(h)
    assert q["count"] == 100
    # Rank 50 is the last of the first bucket: its upper bound.
    assert q["p50"] == 0.001
    # Rank 90 is 40 of the 50 in (2, 4 ms]: 80 % of the way up.
    assert abs(q["p90"] - 0.0036) < 1e-12
    assert abs(q["p99"] - 0.00396) < 1e-12


def test_beyond_the_last_bucket_only_its_bound_is_known() -> None:
    h = _hist((0.001,))
    h.observe(5.0)
    assert quantiles(h)["p99"] == 0.001
