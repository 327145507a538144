"""``smartflow bench api``: tick → decision with and without 200 API clients, in the same run.

A simulator process streams the e2e bench's recorded NIFTY window at R packets/s to a daemon
(sim mode, paper router, the HTTP API on loopback). The run alternates quiet and loaded phases
of S seconds each (quiet, load, quiet, load…), so the VM's drift hits both alike (a quiet phase
starts once the API is idle again: no snapshot section still built for the load); in a loaded
phase ``smartflow.bench.apiload`` (another process, loopback only, bounded in time and count)
runs C clients that request the read routes as fast as they are answered. Tick → decision is
the engine's own measure (e2e bench): from a packet's receive to the strategy having seen it.

Two daemons are measured, one after the other: the default ``[api]`` limits (most of the load
is answered 429 at once), and limits lifted so every request is served in full (the API
process encodes chain views as fast as it can). The goal: p99 rises by less than 1 ms. The
trading loop's own cost of the API is reported too: the CPU time it spent building snapshots
per second of each kind of phase, and the most CPU time it spent between two yields to the loop
(what a packet arriving meanwhile waits for at most, preemption aside).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import structlog

from smartflow.api.snapshot import KEEP_S
from smartflow.app.apisource import DaemonApiSource
from smartflow.app.daemon import Daemon, RunOptions
from smartflow.app.latency import LatencySamples
from smartflow.app.logging import configure
from smartflow.bench.common import markdown_table, percentiles
from smartflow.bench.e2e import SIM, feeder, record_window
from smartflow.config import ApiConfig, Config, Credentials, DetectorConfig, LogConfig, SimConfig


GOAL_US = 1000.0


@dataclass
class Phases:
    """Tick → decision samples (ns) of the quiet and loaded phases, and what the load got."""

    quiet: list[int] = field(default_factory=list)
    loaded: list[int] = field(default_factory=list)
    load: list[dict[str, Any]] = field(default_factory=list)
    cpu_ns: dict[str, int] = field(default_factory=lambda: {"quiet": 0, "loaded": 0})
    """Trading-loop CPU time spent building API snapshots, per kind of phase."""
    seconds: dict[str, float] = field(default_factory=lambda: {"quiet": 0.0, "loaded": 0.0})
    slice_max_ns: dict[str, int] = field(default_factory=lambda: {"quiet": 0, "loaded": 0})
    published: int = 0
    skipped: int = 0


async def _load(
    port: int, clients: int, seconds: float, nice: int, samples: list[int], latency: Any
) -> Any:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "smartflow.bench.apiload",
        f"http://127.0.0.1:{port}",
        "--clients",
        str(clients),
        "--seconds",
        str(seconds),
        "--requests",
        str(int(clients * seconds * 1000)),
        "--nice",
        str(nice),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None  # noqa: S101 — piped above
    await proc.stdout.readline()  # {"started": true}: the clients are connecting now
    latency.samples = LatencySamples(decision=samples)
    out = await proc.stdout.read()
    latency.samples = None
    await proc.wait()
    return msgspec.json.decode(out.splitlines()[-1])


async def measure(
    url: str, api: ApiConfig, seconds: float, rounds: int, clients: int, nice: int, tmp: Path
) -> Phases:
    """One daemon against ``url``: ``rounds`` × (quiet, loaded) phases of ``seconds``."""
    cfg = Config(
        state_dir=str(tmp / "state"),
        sim=SimConfig(external_url=url, seed=SIM.seed),
        detectors=DetectorConfig(bar_seconds=1),
        api=api,
        log=LogConfig(stats_interval_s=3600),
    )
    daemon = Daemon(cfg, Credentials(), RunOptions(), structlog.get_logger())
    out = Phases()
    try:
        await daemon.start()
        assert daemon.api is not None  # noqa: S101 — [api] enabled
        latency, proc = daemon.stages.pipeline.observer, daemon.api
        src = proc.source
        assert isinstance(src, DaemonApiSource)  # noqa: S101 — the daemon's own
        await asyncio.sleep(1.0)  # the window subscription and first bars settle

        def phase(kind: str, since: tuple[float, int]) -> tuple[float, int]:
            now = (time.perf_counter(), src.snapshot_cpu_ns)
            if kind:
                out.seconds[kind] += now[0] - since[0]
                out.cpu_ns[kind] += now[1] - since[1]
                out.slice_max_ns[kind] = max(out.slice_max_ns[kind], src.slice_max_ns)
            src.slice_max_ns = 0
            return now

        mark = phase("", (0.0, 0))
        for i in range(rounds):
            if i:
                # Quiet means an idle API: past KEEP_S, the snapshots no longer carry the
                # sections the load was reading.
                await asyncio.sleep(KEEP_S + 1.0)
                mark = phase("", mark)
            latency.samples = LatencySamples(decision=out.quiet)
            await asyncio.sleep(seconds)
            latency.samples = None
            mark = phase("quiet", mark)
            out.load.append(await _load(proc.port, clients, seconds, nice, out.loaded, latency))
            mark = phase("loaded", mark)
        out.published, out.skipped = proc.published, proc.skipped
    finally:
        await daemon.shutdown()
    return out


def run_api_bench(
    rate: float = 2000,
    seconds: float = 6.0,
    rounds: int = 3,
    clients: int = 200,
    client_nice: int = 0,
) -> str:
    """Return the Markdown report of one run."""

    async def main() -> list[tuple[str, Phases]]:
        results = []
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            tape = tmp / "window.sft"
            record_window(tape)
            for label, api in (
                ("default limits", ApiConfig(listen="127.0.0.1:0")),
                (
                    "limits lifted",
                    ApiConfig(
                        listen="127.0.0.1:0", requests_per_second=100_000.0, max_concurrent=10_000
                    ),
                ),
            ):
                with feeder(tape, rate, tmp) as url:
                    run = await measure(
                        url, api, seconds, rounds, clients, client_nice, tmp / label[:7]
                    )
                results.append((label, run))
        return results

    with open(os.devnull, "w") as devnull:
        configure("json", "info", stream=devnull)
        try:
            t0 = time.perf_counter()
            results = _loop(main)
            total = time.perf_counter() - t0
        finally:
            structlog.reset_defaults()
    return _report(results, rate, seconds, rounds, clients, client_nice, total)


def _loop(
    main: Callable[[], Coroutine[Any, Any, list[tuple[str, Phases]]]],
) -> list[tuple[str, Phases]]:
    # The daemon's own loop, as `smartflow run` picks it.
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    return uvloop.run(main())


def _us(x: float) -> str:
    return f"{x:,.0f}"


def _report(
    results: list[tuple[str, Phases]],
    rate: float,
    seconds: float,
    rounds: int,
    clients: int,
    client_nice: int,
    total: float,
) -> str:
    rows = []
    verdicts = []
    for label, run in results:
        q, ld = percentiles(run.quiet), percentiles(run.loaded)
        delta = ld["p99_us"] - q["p99_us"]
        statuses: dict[str, int] = {}
        sent = 0
        per_s = 0.0
        for r in run.load:
            sent += r["sent"]
            per_s += r["per_s"] / len(run.load)
            for k, v in r["statuses"].items():
                statuses[k] = statuses.get(k, 0) + v
        errors = sum(sum(r["errors"].values()) for r in run.load)
        rows.append(
            [
                label,
                f"{_us(q['p50_us'])} / {_us(q['p99_us'])} ({q['n']:,})",
                f"{_us(ld['p50_us'])} / {_us(ld['p99_us'])} ({ld['n']:,})",
                f"{delta:+,.0f}",
                f"{per_s:,.0f}",
                " ".join(f"{k}: {v:,}" for k, v in sorted(statuses.items()))
                + (f" errors: {errors}" if errors else ""),
                f"{run.published} / {run.skipped}",
                " / ".join(
                    f"{run.cpu_ns[k] / 1e6 / max(run.seconds[k], 1e-9):.1f} ms/s, "
                    f"{run.slice_max_ns[k] / 1e3:,.0f}"
                    for k in ("quiet", "loaded")
                ),
            ]
        )
        verdicts.append(f"{label}: {'met' if delta < GOAL_US else 'missed'} ({delta:+,.0f} µs)")
    head = (
        f"api: daemon fed {rate:,.0f} packets/s over loopback; {rounds} × (quiet, loaded) phases "
        f"of {seconds:g} s; load = {clients} clients in another process (smartflow.bench.apiload"
        f"{f', nice {client_nice}' if client_nice else ''}); tick → decision µs, p50 / p99 "
        f"(samples). Total {total:.0f} s.\n\n"
    )
    table = markdown_table(
        [
            "API limits",
            "tick → decision, quiet",
            "tick → decision, 200 clients",
            "p99 delta µs",
            "API requests/s",
            "answers",
            "snapshots sent / skipped",
            "snapshot work on the trading loop (CPU per s, largest slice µs): quiet / loaded",
        ],
        rows,
    )
    return head + table + "\n\ngoal p99 delta < 1 ms: " + "; ".join(verdicts)
