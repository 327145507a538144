"""``smartflow bench summary`` runs end to end on real bar closes (speed is never asserted)."""

from __future__ import annotations

import re

from smartflow.bench.summary import run_summary_bench


def test_summary_bench_times_real_bar_closes_and_agrees_with_its_numpy_peer() -> None:
    report = run_summary_bench(30.0)
    lines = [ln for ln in report.splitlines() if ln.startswith("|")]
    rows = {r[0]: r for r in ([c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:])}
    assert report.startswith("summary: NIFTY chain of 41 strikes (82 contracts)")
    added = rows["bar close: what the summary adds (day check, one allocation, kernel, snapshot)"]
    # ~20 one-second bars after the first third of a 30 s session; every row saw each close.
    assert int(added[1]) >= 10
    assert {r[1] for r in rows.values()} == {added[1]}
    assert all(float(r[2]) > 0 for r in rows.values())
    agree = re.search(r"agree with it at (\d+) of (\d+) bar closes", report)
    assert agree is not None
    assert agree.group(1) == agree.group(2) == added[1]
