"""``smartflow bench all``: every yardstick in one run, as one Markdown report (ours only).

The tables that compare with peer libraries are ``benchmarks/peers.py all`` in a checkout.
"""

from __future__ import annotations

import os
import platform
import time

from smartflow.bench.api import run_api_bench
from smartflow.bench.decode import run_decode_bench
from smartflow.bench.detectors import run_detectors_bench
from smartflow.bench.e2e import run_e2e_bench
from smartflow.bench.greeks import run_greeks_bench
from smartflow.bench.replay import run_replay_bench
from smartflow.bench.summary import run_summary_bench


def run_all() -> str:
    """Run decode, greeks, detectors, summary, replay, e2e and api; return the combined report."""
    t0 = time.perf_counter()
    parts = [
        ("Decode", run_decode_bench()),
        ("IV and greeks", run_greeks_bench()),
        ("Detectors", run_detectors_bench()),
        ("Chain summary", run_summary_bench()),
        ("Replay", run_replay_bench()),
        ("End to end", run_e2e_bench()),
        ("API under load", run_api_bench()),
    ]
    cpu = platform.processor() or platform.machine()
    head = (
        f"# smartflow bench all\n\n{os.cpu_count()} CPUs ({cpu}), Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M %Z')}; our own speed "
        f"on this machine (peer tables: benchmarks/peers.py in a checkout). "
        f"Total {time.perf_counter() - t0:.0f} s.\n"
    )
    return head + "\n".join(f"\n## {title}\n\n{body}" for title, body in parts)
