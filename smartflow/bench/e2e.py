"""``smartflow bench e2e``: a running daemon fed over loopback at a chosen packet rate.

A simulator process streams a recorded NIFTY window (index, future, ATM ± 20 strikes: exactly
what the daemon subscribes) at R packets/s. At each rate we measure, in the same run:

* a bare ``websockets`` receive loop (connect, subscribe, count) — the floor any client pays;
* the daemon (sim mode pointed at that simulator; paper router, strategy on, 1 s bars): packets
  applied per second, packets coalesced, and latencies from the packet's receive time —
  tick → decision (every batch: the strategy has evaluated the packet for exits, an intent
  would be queued), tick → bar decision (every bar close, from the packet that closed it, or
  the bar's end when the clock closed it: greeks repriced, detectors, flow, and the strategy
  has evaluated the bar's signal — where entries are decided), tick → signal (a material
  signal decided), tick → order intent (entries at bar closes, exits after batches).

A percentile is printed only from at least ``MIN_SAMPLES`` samples ("n<200 (n)" otherwise). So
that a run has order intents to measure, the daemon trades on a hair trigger: the recorded
market has a scenario every few seconds, the detectors' thresholds are low
(``DENSE_DETECTORS``: the same kernels do the same work at every bar whatever the thresholds),
and the strategy enters on any tradable signal with no cool-down and exits on the next tick's
move either way. Even so, entries come only from bar closes (one a second) whose signal can
trade (about 40 % of them: the cross-validation and trap verdicts are the market's), and each
waits for the previous round trip: about 0.7 intents a second at 500-1,000 packets/s, so 200
take about five minutes; at higher rates the recorded market plays faster than real time, its
scenarios blur within a bar and 200 intents take up to ten minutes at 10,000 packets/s
(``seconds`` caps the run). Entries are also shown alone: they are decided at bar closes, exits
after batches.

The simulator process runs on its own CPU (``split_cpus``): sharing the daemon's, it preempted
the daemon for half a millisecond at a time, a cost of the bench and not of a real feed.

Two measures say what the host itself does to a tail. Before the runs, a spin on the daemon's
CPU counts the time a thread that never blocks does not run (this machine, a 2-vCPU VM: 0.4-2.5 %
of the time, in stalls up to several ms). In the runs, each entry's bar close is timed twice,
wall clock and the thread's CPU time (which leaves out the hypervisor's steal); nothing in a close
blocks, so the difference is time the host took, and an entry of 1 ms or more whose close lost
≥ 0.3 ms that way is counted as the host's. The last column times a fixed piece of arithmetic
(~50 µs of square roots, no memory traffic) right after each bar close, in the daemon's own loop.

A flood run (the simulator sending as fast as it can) gives both ceilings; the report states the
highest rate at which the daemon keeps up with tick → decision and tick → bar decision p99 under
1 ms, and its ceiling as a share of the bare loop's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import structlog
from websockets.asyncio.client import connect

from smartflow.app.daemon import Daemon, RunOptions
from smartflow.app.latency import LatencySamples
from smartflow.app.logging import configure
from smartflow.bench.common import JITTER_STEPS, fixed_work, markdown_table, percentiles
from smartflow.config import (
    ApiConfig,
    Config,
    Credentials,
    DetectorConfig,
    HistoryConfig,
    LogConfig,
    OrdersConfig,
    RiskConfig,
    ScenarioConfig,
    ScenarioKind,
    SimConfig,
    StrategyConfig,
)
from smartflow.core.messages import OrderIntent
from smartflow.feed import protocol as p
from smartflow.feed.session import headers_for
from smartflow.instruments.master import parse
from smartflow.instruments.universe import StrikeWindow, select
from smartflow.sim.market import Market
from smartflow.sim.rest import SimCredentials
from smartflow.sim.server import SCRIP_MASTER_PATH, STREAM_PATH, session_start
from smartflow.tape.format import TapeWriter


NS = 1_000_000_000
SIM = SimConfig(
    seed=9,
    ticks_per_second=2000,
    strikes_each_side=25,
    scenarios=[
        ScenarioConfig(kind="fresh_position", start_s=20, side="CE"),
        ScenarioConfig(kind="long_build_up", start_s=45, side="PE", strike_offset=-1),
        ScenarioConfig(kind="short_build_up", start_s=70, side="CE", strike_offset=1),
    ],
)


_KINDS: tuple[ScenarioKind, ...] = (
    "fresh_position",
    "long_build_up",
    "short_build_up",
    "whale",
    "short_covering",
    "long_unwinding",
)
# The e2e bench's market: a strong scenario every 6 s on alternating sides and strikes, with
# about 650 window packets a market second, so the tape plays at about real time at the rates a
# real chain sends (500-1,000 packets/s) and the detectors see the scenarios unfold as they would.
DENSE_SIM = msgspec.structs.replace(
    SIM,
    ticks_per_second=800,
    scenarios=[
        ScenarioConfig(
            kind=_KINDS[k % len(_KINDS)],
            start_s=2 + 6 * k,
            duration_s=20,
            side="CE" if k % 2 else "PE",
            strike_offset=k % 5 - 2,
            strength="strong",
        )
        for k in range(70)
    ],
)
MIN_SAMPLES = 200
"""Fewer samples than this and a p99 is one or two values: print "n<200" instead."""
# The daemon's hair trigger (see the module docstring). The thresholds change which bars trade,
# not the work a bar close does.
DENSE_DETECTORS = DetectorConfig(
    bar_seconds=1,
    profile="scalping",
    overrides={
        "buildup_horizon_s": 10.0,
        "buildup_oi_z": 1.0,
        "buildup_price_z": 0.5,
        "min_net_vote": 0.05,
        "min_signal_probability": 0.0,
        "trap_block_probability": 1.0,
        # Any gamma rise reads EXPLOSIVE, a PROCEED pattern: ~60 % of bars can trade, not ~30 %.
        "explosive_gamma_rise_pct": 0.01,
    },
)
# A target ten times the stop: the Kelly sizing then trades any probability above 1/11 (with
# target = stop it needs more than 1/2, and half the tradable bars gave no entry).
DENSE_STRATEGY = StrategyConfig(
    cooldown_s=0.0, normal_entry_conviction=0.0, target_pct=0.1, stop_pct=0.01
)


def record_window(path: Path, seconds: float = 100.0, sim: SimConfig = SIM) -> set[tuple[int, str]]:
    """Record the market restricted to the daemon's window; return the (exchange, token) set."""
    start_ns, day = session_start("09:20")
    market = Market(sim, ["NIFTY"], start_ns, day)
    master = parse(msgspec.json.encode(market.scrip_master()), {"NIFTY"})
    universe = select(master, "NIFTY", start_ns)
    window = StrikeWindow(universe, 20, 3)
    window.update(round(market.chains["NIFTY"].spot * 100))
    pairs = window.tokens() | {(universe.index.exchange_type, universe.index.token)}
    if universe.future is not None:
        pairs.add((universe.future.exchange_type, universe.future.token))
    keep = {token for _, token in pairs}
    end = start_ns + int(seconds * NS)
    with TapeWriter(path, {"bench": "e2e"}) as tape:
        t = start_ns
        while t < end:
            t = min(end, t + NS)
            for token, frame in market.advance(t):
                if token in keep:
                    tape.write(t, frame)
    return pairs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def split_cpus() -> tuple[set[int], set[int]] | None:
    """(the daemon's CPUs, the simulator's CPU): the load generator off the measured cores.

    A real feed is generated on Angel's servers, not next to the daemon. Sharing a core, the
    simulator process preempts the daemon for ~0.5 ms at a time (seen as 0.5-0.7 ms gaps in the
    engine's pre-bar spin at 1,000 packets/s, none once the two were on separate cores). None
    when the machine has one CPU or this OS cannot pin.
    """
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return set(cpus[:-1]), {cpus[-1]}


@contextlib.contextmanager
def feeder(tape: Path, rate: float, tmp: Path, cpus: set[int] | None = None) -> Any:
    """A ``smartflow sim --tape`` process streaming at ``rate`` (on ``cpus``); yields its URL."""
    port = _free_port()
    cfg = tmp / "sim.toml"
    cfg.write_text(
        f"[sim]\nseed = {SIM.seed}\nstrikes_each_side = {SIM.strikes_each_side}\n"
        '[log]\nlevel = "warning"\n'
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "smartflow",
            "sim",
            "--config",
            str(cfg),
            "--port",
            str(port),
            "--tape",
            str(tape),
            "--rate",
            str(rate),
            "--log-format",
            "json",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if cpus:
        os.sched_setaffinity(proc.pid, cpus)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + SCRIP_MASTER_PATH, timeout=1).read()  # noqa: S310
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the bench simulator did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def bare_loop(url: str, pairs: set[tuple[int, str]], seconds: float) -> float:
    """Packets per second a bare websockets client receives from ``url``."""
    demo = SimCredentials()
    headers = headers_for(demo.jwt, demo.api_key, demo.client_code, demo.feed_token)
    by_exch: dict[int, list[str]] = {}
    for exch, token in sorted(pairs):
        by_exch.setdefault(exch, []).append(token)
    ws_url = "ws" + url.removeprefix("http") + STREAM_PATH
    async with connect(
        ws_url, additional_headers=headers, proxy=None, compression=None, max_queue=None
    ) as ws:
        await ws.send(p.subscription(p.SUBSCRIBE, p.Mode.SNAP_QUOTE, by_exch))
        await ws.recv()  # the first packet: start counting from here
        n = 0
        t0 = time.perf_counter()
        end = t0 + seconds
        while time.perf_counter() < end:
            try:
                async with asyncio.timeout(max(0.0, end - time.perf_counter())):
                    await ws.recv()
            except TimeoutError:
                break
            n += 1
        return n / (time.perf_counter() - t0)


@dataclass
class DaemonRun:
    """What one daemon run measured."""

    seconds: float = 0.0
    received_per_s: float = 0.0
    applied_per_s: float = 0.0
    conflated: int = 0
    decision_ns: list[int] = field(default_factory=list)
    bar_ns: list[int] = field(default_factory=list)
    signal_ns: list[int] = field(default_factory=list)
    intent_ns: list[int] = field(default_factory=list)
    entry_ns: list[int] = field(default_factory=list)
    entry_off_cpu_ns: list[int] = field(default_factory=list)
    """Per entry (aligned with ``entry_ns``): the time the daemon's thread did not run between
    the start of its bar close and the intent."""
    host_ns: list[int] = field(default_factory=list)


async def daemon_run(url: str, seconds: float, tmp: Path) -> DaemonRun:
    """Run the daemon against ``url`` after it is ready, for ``seconds`` at most.

    It stops sooner once tick → bar decision and tick → intent both have ``MIN_SAMPLES``.
    """
    cfg = Config(
        state_dir=str(tmp / "state"),
        sim=SimConfig(external_url=url, seed=SIM.seed),
        api=ApiConfig(enabled=False),
        log=LogConfig(stats_interval_s=3600),
        detectors=DENSE_DETECTORS,
        strategy=DENSE_STRATEGY,
        risk=RiskConfig(max_daily_loss=1e12, max_open_positions=10),
        orders=OrdersConfig(paper_latency_ms=0.0),
        # Steady state: the previous close's OI is fetched over HTTP for ~40 s after start-up,
        # a transient of the first minute, not the feed's rate.
        history=HistoryConfig(prev_close_oi_data=False),
    )
    daemon = Daemon(cfg, Credentials(), RunOptions(), structlog.get_logger())
    out = DaemonRun()
    try:
        await daemon.start()
        stages = daemon.stages
        observer, book = stages.pipeline.observer, stages.pipeline.book
        await asyncio.sleep(1.0)  # the window subscription and first bars settle
        observer.samples = LatencySamples(
            decision=out.decision_ns,
            signal=out.signal_ns,
            bar=out.bar_ns,
            intent=out.intent_ns,
            entry=out.entry_ns,
        )
        # The host's own jitter at the same moments: a fixed piece of arithmetic timed right
        # after each bar close (after the decision is stamped, so it delays no sample).
        close_bar = book.on_close
        assert close_bar is not None  # noqa: S101 — the pipeline's bar close

        # Off CPU: wall time minus the thread's CPU time (which leaves out the hypervisor's
        # steal) from the start of a bar close to an entry it queues. Nothing in a close blocks,
        # so that difference is time the host took, not time our code spent.
        close_start = [0, 0]

        def close_and_probe(bar_end_ns: int, seq: int, closed_at_ns: int) -> None:
            close_start[:] = time.perf_counter_ns(), time.thread_time_ns()
            close_bar(bar_end_ns, seq, closed_at_ns)
            close_start[0] = 0
            t = time.perf_counter_ns()
            fixed_work(JITTER_STEPS)
            out.host_ns.append(time.perf_counter_ns() - t)

        def entry_queued(intent: OrderIntent) -> None:
            # After the observer's own hook, on the same condition: one value per ``entry_ns``.
            if intent.purpose != "ENTRY" or not intent.tick_ns or observer.samples is None:
                return
            off_cpu = 0  # an entry outside a bar close: not attributed
            if close_start[0]:
                wall = time.perf_counter_ns() - close_start[0]
                off_cpu = max(0, wall - (time.thread_time_ns() - close_start[1]))
            out.entry_off_cpu_ns.append(off_cpu)

        fixed_work(JITTER_STEPS)
        book.on_close = close_and_probe
        router = stages.trading.router
        router.on_intent.append(entry_queued)
        feed, mailbox = stages.feed.stats, stages.mailbox
        received0 = sum(feed.frames.values())
        applied0, conflated0 = book.stats.applied, mailbox.conflated
        t0 = time.perf_counter()
        # The observer appends without a callback: poll for enough bar decisions and intents.
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            if min(len(out.bar_ns), len(out.intent_ns)) >= MIN_SAMPLES:
                break
            await asyncio.sleep(0.25)
        elapsed = out.seconds = time.perf_counter() - t0
        out.received_per_s = (sum(feed.frames.values()) - received0) / elapsed
        out.applied_per_s = (book.stats.applied - applied0) / elapsed
        out.conflated = mailbox.conflated - conflated0
        observer.samples = None
        book.on_close = close_bar
        router.on_intent.remove(entry_queued)
    finally:
        await daemon.shutdown()
    return out


HOST_STALL_NS = 300_000
"""Off-CPU time in one entry's bar close that counts as the host's stall (a close is ~0.4 ms)."""


def host_stalls(seconds: float) -> tuple[float, float, float]:
    """Spin on this CPU for ``seconds``: what the host takes from a thread that never blocks.

    Returns the share of the time it did not run, stalls ≥ 1 ms a minute and the longest stall
    (ms); a stall is any gap over 50 µs between two clock reads.
    """
    clock = time.perf_counter_ns
    stalled = over_1ms = longest = 0
    last = clock()
    end = last + int(seconds * NS)
    while last < end:
        now = clock()
        gap = now - last
        if gap > 50_000:
            stalled += gap
            over_1ms += gap >= 1_000_000
            longest = max(longest, gap)
        last = now
    return stalled / (seconds * NS), over_1ms * 60 / seconds, longest / 1e6


def entries_over_1ms(run: DaemonRun) -> str:
    """Entries at 1 ms or more, and how many of them the host stalled: "k of n (h host)"."""
    over = sum(ns >= 1_000_000 for ns in run.entry_ns)
    stalls = sum(
        ns >= 1_000_000 and off >= HOST_STALL_NS
        for ns, off in zip(run.entry_ns, run.entry_off_cpu_ns, strict=True)
    )
    return f"{over} of {len(run.entry_ns)} ({stalls} host)"


def _cpus(cpus: set[int]) -> str:
    return ",".join(map(str, sorted(cpus)))


def _pct(samples: list[int]) -> str:
    s = percentiles(samples)
    if s["n"] < MIN_SAMPLES:
        return f"n<{MIN_SAMPLES} ({s['n']})"
    return f"{s['p50_us']:.0f} / {s['p99_us']:.0f} ({s['n']})"


def _p99_under_1ms(samples: list[int]) -> bool | None:
    """None when there are too few samples to say."""
    s = percentiles(samples)
    return None if s["n"] < MIN_SAMPLES else bool(s["p99_us"] < 1000)


GOAL_RATES = (500.0, 10_000.0)
"""The offered rates over which tick → intent p99 must stay under 1 ms (the feed's real range)."""


def run_e2e_bench(
    rates: tuple[float, ...] = (500, 1000, 2000, 5000, 10000, 20000),
    seconds: float = 600.0,
    flood: float = 200_000,
    flood_seconds: float = 20.0,
    bare_seconds: float = 8.0,
    host_seconds: float = 10.0,
) -> str:
    """Return the Markdown report of one run.

    Args:
        rates: offered packets/s, each measured on a fresh daemon and simulator.
        seconds: the most each rate's daemon runs (it stops sooner with ``MIN_SAMPLES`` bar
            decisions and intents).
        flood: the simulator's rate for the ceiling run.
        flood_seconds: how long the ceiling run lasts.
        bare_seconds: how long the bare websockets loop counts at each rate.
        host_seconds: how long the host's own stalls are measured (a spin on the daemon's CPU,
            before any run).
    """
    split = split_cpus()
    theirs = split[1] if split else None
    stalls = (0.0, 0.0, 0.0)

    async def main() -> list[tuple[float, float, DaemonRun]]:
        results = []
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            tape = tmp / "window.sft"
            # Long enough not to loop at 500-1,000 packets/s: the market's jump back to its
            # start would read as a burst of OI changes.
            pairs = record_window(tape, 420.0, DENSE_SIM)
            for rate in (*rates, flood):
                with feeder(tape, rate, tmp, theirs) as url:
                    bare = await bare_loop(url, pairs, bare_seconds)
                secs = flood_seconds if rate == flood else seconds
                with feeder(tape, rate, tmp, theirs) as url:
                    run = await daemon_run(url, secs, tmp / f"d{int(rate)}")
                results.append((rate, bare, run))
        return results

    # The daemon logs as it does in production (JSON lines), into /dev/null: the cost of
    # logging is part of the pipeline, the text is not part of the report.
    before = os.sched_getaffinity(0) if split else None
    with open(os.devnull, "w") as devnull:
        configure("json", "info", stream=devnull)
        try:
            if split:
                os.sched_setaffinity(0, split[0])
            stalls = host_stalls(host_seconds)
            results = _run(main)
        finally:
            if before:
                os.sched_setaffinity(0, before)
            structlog.reset_defaults()
    return _report(results, flood, split, stalls)


def _run(main: Any) -> list[tuple[float, float, DaemonRun]]:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    return uvloop.run(main())


def _report(
    results: list[tuple[float, float, DaemonRun]],
    flood: float,
    split: tuple[set[int], set[int]] | None,
    stalls: tuple[float, float, float],
) -> str:
    rows = []
    held = 0.0
    goal: dict[str, list[str]] = {"met": [], "NOT met": [], f"n<{MIN_SAMPLES}": []}
    for rate, bare, run in results:
        label = "flood" if rate == flood else f"{rate:,.0f}"
        # Held: every packet the bare loop could receive, the daemon received and either
        # applied or coalesced (lossless for state), with tick → decision and tick → bar
        # decision p99 under 1 ms, each from enough samples to have a p99.
        kept_up = run.received_per_s >= 0.98 * bare
        fast = _p99_under_1ms(run.decision_ns) and _p99_under_1ms(run.bar_ns)
        if rate != flood and fast and kept_up:
            held = max(held, rate)
        if rate != flood and GOAL_RATES[0] <= rate <= GOAL_RATES[1]:
            verdict = _p99_under_1ms(run.intent_ns)
            key = f"n<{MIN_SAMPLES}" if verdict is None else "met" if verdict else "NOT met"
            goal[key].append(label)
        rows.append(
            [
                label,
                f"{run.seconds:.0f}",
                f"{bare:,.0f}",
                f"{run.received_per_s:,.0f}",
                f"{run.applied_per_s:,.0f}",
                f"{run.conflated:,}",
                _pct(run.decision_ns),
                _pct(run.bar_ns),
                _pct(run.signal_ns),
                _pct(run.intent_ns),
                _pct(run.entry_ns),
                entries_over_1ms(run),
                _pct(run.host_ns),
            ]
        )
    bare_ceiling = results[-1][1]
    ours_ceiling = results[-1][2].received_per_s
    share = ours_ceiling / bare_ceiling if bare_ceiling > 0 else float("nan")
    head = (
        "e2e: simulator process → loopback WebSocket → daemon (paper router, JSON logs, hair "
        "trigger); latencies from each packet's receive time, µs, p50 / p99 (samples), "
        f"printed from ≥ {MIN_SAMPLES} samples; "
        + (
            f"daemon and bare loop on CPU {_cpus(split[0])}, simulator on CPU {_cpus(split[1])}"
            if split
            else "simulator and daemon share the CPUs (one CPU, or no affinity on this OS)"
        )
        + (
            f"; host alone (a spin on the daemon's CPU before the runs): off CPU "
            f"{stalls[0]:.1%} of the time, {stalls[1]:.0f} stalls ≥ 1 ms a minute, longest "
            f"{stalls[2]:.1f} ms"
        )
        + "\n\n"
    )
    table = markdown_table(
        [
            "offered packets/s",
            "s",
            "bare websockets loop recv/s",
            "daemon recv/s",
            "daemon applied/s",
            "coalesced",
            "tick → decision",
            "tick → bar decision",
            "tick → signal",
            "tick → intent",
            "of which entries",
            "entries ≥ 1 ms (host stalled ≥ 0.3 ms in the close)",
            "host: fixed 50 µs at bar closes",
        ],
        rows,
    )
    verdicts = "; ".join(f"{k} at {', '.join(v)}" for k, v in goal.items() if v) or "no rate"
    tail = (
        f"\n\ngoal tick → intent p99 < 1 ms from {GOAL_RATES[0]:,.0f} to "
        f"{GOAL_RATES[1]:,.0f} packets/s: {verdicts}"
        "\n\nhighest offered rate held (kept up; tick → decision and tick → bar decision p99 "
        "< 1 ms): "
        f"{held:,.0f} packets/s; ceiling: daemon receives {ours_ceiling:,.0f}/s vs bare "
        f"loop {bare_ceiling:,.0f}/s = {share:.0%} (coalescing keeps the state exact)"
    )
    return head + table + tail
