"""The yardsticks run end to end and report what they claim to measure.

Speed is never asserted here (that is what the commands print); these check that each benchmark
still drives the real pipeline and produces a complete report, so `smartflow bench all` cannot
rot between the runs that fill the README's table.
"""

from __future__ import annotations

import re

import pytest

from smartflow.bench.api import run_api_bench
from smartflow.bench.decode import run_decode_bench
from smartflow.bench.detectors import run_detectors_bench
from smartflow.bench.e2e import DaemonRun, entries_over_1ms, host_stalls, run_e2e_bench
from smartflow.bench.greeks import run_greeks_bench
from smartflow.bench.replay import run_replay_bench


def _rows(report: str) -> list[list[str]]:
    """The Markdown table's body rows, cells stripped."""
    lines = [ln for ln in report.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]


def _numbers(cell: str) -> list[float]:
    return [float(x.replace(",", "")) for x in re.findall(r"[\d,]*\.?\d+", cell)]


def test_decode_bench_times_our_three_paths() -> None:
    report = run_decode_bench(2_000, repeat=1)
    rows = _rows(report)
    assert len(rows) == 3
    assert all(r[0].startswith("smartflow: ") for r in rows)
    assert all(_numbers(r[1])[0] > 0 for r in rows)


def test_detectors_bench_times_real_bar_closes() -> None:
    rows = _rows(run_detectors_bench(40.0))
    by_name = {r[0]: r for r in rows}
    # ~27 one-second bars after the first third of a 40 s session.
    full = by_name["bar close: full update to the decision"]
    assert int(full[1]) >= 20
    kernels = by_name["bar close: of which detector kernels"]
    assert kernels[1] == full[1]
    assert 0 < float(kernels[2]) <= float(full[2])
    assert int(by_name["per-tick incremental update (1 packet → state, flow, greeks)"][1]) > 1_000


def test_greeks_bench_times_ours_only() -> None:
    report = run_greeks_bench(40, repeat=5)
    rows = _rows(report)
    assert rows
    assert {r[0] for r in rows} <= {"ours", "timer"}


@pytest.mark.slow
def test_replay_bench_runs_the_whole_pipeline() -> None:
    report = run_replay_bench(repeat=1)
    rows = _rows(report)
    assert any("full pipeline" in r[0] for r in rows)
    assert not any("SDK" in r[0] for r in rows)


@pytest.mark.slow
def test_e2e_bench_measures_every_latency_and_quotes_no_percentile_from_few_samples() -> None:
    report = run_e2e_bench(
        rates=(1_000,),
        seconds=3.0,
        flood=20_000,
        flood_seconds=2.0,
        bare_seconds=2.0,
        host_seconds=0.5,
    )
    rows = _rows(report)
    assert [r[0] for r in rows] == ["1,000", "flood"]
    at_rate = rows[0]
    bare, received = _numbers(at_rate[2])[0], _numbers(at_rate[3])[0]
    # Packets flowed through both clients.
    assert bare > 500
    assert received > 500
    # Thousands of batches in 3 s: tick → decision has a percentile (p50 / p99 (n)).
    assert "/" in at_rate[6]
    assert _numbers(at_rate[6])[-1] >= 200
    # Three bar closes and a handful of intents: counted, never turned into a p99.
    for cell in (at_rate[7], at_rate[9]):
        assert cell.startswith("n<200 ("), cell
        assert "/" not in cell
    assert _numbers(at_rate[7])[-1] >= 2
    # Every sampled entry is counted against 1 ms, with the host's share attributed.
    over, entries, host = _numbers(at_rate[11])
    assert entries == _numbers(at_rate[10])[-1]
    assert host <= over <= entries
    assert re.search(
        r"host alone .*: off CPU [\d.]+% of the time, \d+ stalls ≥ 1 ms a minute", report
    )
    assert "goal tick → intent p99 < 1 ms from 500 to 10,000 packets/s: n<200 at 1,000" in report


def test_entries_over_1ms_are_attributed_to_the_host_only_when_it_stalled_their_close() -> None:
    run = DaemonRun(
        entry_ns=[400_000, 1_200_000, 2_500_000, 1_000_000],
        entry_off_cpu_ns=[900_000, 100_000, 2_000_000, 300_000],
    )
    # The 0.4 ms entry lost time too but stayed under 1 ms: not counted.
    assert entries_over_1ms(run) == "3 of 4 (2 host)"
    assert entries_over_1ms(DaemonRun()) == "0 of 0 (0 host)"


def test_host_stalls_is_a_share_of_the_spin() -> None:
    share, per_minute, longest_ms = host_stalls(0.2)
    assert 0.0 <= share < 1.0
    assert per_minute >= 0.0
    assert 0.0 <= longest_ms < 200.0


def test_api_bench_measures_both_phases_of_both_daemons() -> None:
    report = run_api_bench(rate=1_000, seconds=2.0, rounds=1, clients=20)
    rows = _rows(report)
    assert [r[0] for r in rows] == ["default limits", "limits lifted"]
    for row in rows:
        # tick → decision has samples in the quiet and the loaded phase (p50 / p99 (n)).
        assert _numbers(row[1])[-1] > 100, row
        assert _numbers(row[2])[-1] > 100, row
        # The clients were answered, and the trading loop kept publishing snapshots.
        assert "200: " in row[5], row
        assert "errors" not in row[5], row
        assert _numbers(row[6])[0] > 0, row
        # The trading loop's snapshot work was measured in both kinds of phase.
        assert row[7].count("ms/s") == 2, row
    assert "goal p99 delta < 1 ms: default limits: " in report
