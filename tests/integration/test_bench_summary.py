"""``smartflow bench summary`` runs end to end on real bar closes (speed is never asserted)."""

from __future__ import annotations

import re

from smartflow.bench.summary import run_summary_bench


def test_summary_bench_times_real_bar_closes_and_agrees_with_its_numpy_peer() -> None:
    report = run_summary_bench(30.0)
    lines = [ln for ln in report.splitlines() if ln.startswith("|")]
    rows = {r[0]: r for r in ([c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:])}
    assert report.startswith("summary: NIFTY chain of 41 strikes (82 contracts)")
    warm = rows["bar close, rehearsed: what the summary adds (day check, kernel, snapshot)"]
    cold = rows["bar close, not rehearsed: the same, plus its buffer's allocation"]
    closes = rows["host jitter: fixed arithmetic at the same bar closes"][1]
    # ~20 one-second bars after the first third of a 30 s session, every other one rehearsed;
    # the second pass saw every close of the same session.
    assert int(closes) >= 10
    assert int(warm[1]) + int(cold[1]) == int(closes)
    assert abs(int(warm[1]) - int(cold[1])) <= 1
    rehearsals = int(rows["the rehearsal itself (before the close, on scratch state)"][1])
    assert int(warm[1]) - 1 <= rehearsals <= int(warm[1])
    second = [r for name, r in rows.items() if name.startswith("second pass")]
    assert len(second) == 4
    assert all(r[1] == closes for r in second)
    assert all(float(r[2]) > 0 for r in rows.values())
    agree = re.search(r"agree with it at (\d+) of (\d+) bar closes", report)
    assert agree is not None
    assert agree.group(1) == agree.group(2) == closes
