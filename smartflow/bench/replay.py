"""``smartflow bench replay [TAPE]``: the whole pipeline's speed over a tape, on this machine.

``smartflow replay`` minus its output file: validate, decode, chain state, per-tick order flow
and greeks, bars, the six detectors, signals, the flow analytics, the strategy and the paper
router with its (in-memory) journal — on the tape's clock. Without a TAPE, a seeded simulator
session is recorded first (every instrument, scenarios on). The comparison with the official
SDK merely parsing the same packets is ``benchmarks/peers.py replay`` in a checkout.
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
from pathlib import Path

import msgspec

from smartflow.app.replay import Replayer
from smartflow.bench.common import markdown_table
from smartflow.config import Config, ScenarioConfig, SimConfig
from smartflow.instruments.master import parse
from smartflow.sim.market import Market
from smartflow.sim.server import session_start
from smartflow.tape.format import TapeWriter, open_tape


def record_session(
    path: Path, seconds: float = 120.0, rate: float = 1000.0, seed: int = 5
) -> tuple[bytes, SimConfig]:
    """Write a simulated session (every instrument) to ``path``; return its scrip master."""
    sim = SimConfig(
        seed=seed,
        ticks_per_second=rate,
        scenarios=[
            ScenarioConfig(kind="fresh_position", start_s=30, side="CE"),
            ScenarioConfig(kind="long_build_up", start_s=60, side="PE", strike_offset=-1),
            ScenarioConfig(kind="whale", start_s=90, strike_offset=1),
        ],
    )
    start_ns, day = session_start("10:00")
    market = Market(sim, ["NIFTY"], start_ns, day)
    end = start_ns + int(seconds * 1e9)
    with TapeWriter(path, {"bench": "replay", "seed": seed}) as tape:
        t = start_ns
        while t < end:
            t = min(end, t + 1_000_000_000)
            for _, frame in market.advance(t):
                tape.write(int.from_bytes(frame[35:43], "little") * 1_000_000, frame)
    return msgspec.json.encode(market.scrip_master()), sim


def _replay_once(path: Path, master: bytes, cfg: Config) -> tuple[float, int]:
    tape = open_tape(path)
    try:
        replayer = Replayer(
            cfg,
            parse(master, set(cfg.market.underlyings)),
            io.BytesIO(),
            60.0,
            int(tape.recv_ns[0]),
        )
        t0 = time.perf_counter()
        summary = replayer.run(tape)
        return time.perf_counter() - t0, summary.frames
    finally:
        tape.close()


class ReplayTimes(msgspec.Struct, frozen=True):
    """Seconds of each timed replay of one tape, and what was replayed."""

    seconds: list[float]
    packets: int
    """Packets the replay applied per run (the denominator of µs / packet)."""
    frames: list[bytes]
    source: str


def time_replays(
    tape_path: str | None = None, instruments: str | None = None, repeat: int = 5
) -> ReplayTimes:
    """Replay a tape ``repeat`` times after one untimed run (JIT / cache load)."""
    with tempfile.TemporaryDirectory() as tmp:
        if tape_path is None:
            path = Path(tmp) / "session.sft"
            master, sim = record_session(path)
            cfg = Config(sim=sim)
            source = "a recorded 120 s simulator session (1,000 packets/s, every instrument)"
        else:
            if instruments is None:
                raise ValueError("bench replay TAPE needs --instruments FILE")
            path = Path(tape_path)
            master = Path(instruments).read_bytes()
            cfg = Config()
            source = str(path)
        tape = open_tape(path)
        frames = [tape.payload(i) for i in range(len(tape))]
        tape.close()
        _replay_once(path, master, cfg)
        runs = [_replay_once(path, master, cfg) for _ in range(repeat)]
    return ReplayTimes([el for el, _ in runs], runs[0][1], frames, source)


def replay_rows(times: ReplayTimes) -> list[list[str]]:
    """Median and slowest run as [what, µs / packet, packets / s] rows."""
    n = times.packets
    per_frame = sorted(el / n * 1e6 for el in times.seconds)
    median_us = statistics.median(per_frame)
    repeat = len(per_frame)
    return [
        [
            f"smartflow replay: full pipeline (median of {repeat})",
            f"{median_us:.2f}",
            f"{1e6 / median_us:,.0f}",
        ],
        [
            f"smartflow replay: slowest of {repeat} runs",
            f"{per_frame[-1]:.2f}",
            f"{1e6 / per_frame[-1]:,.0f}",
        ],
    ]


def run_replay_bench(
    tape_path: str | None = None, instruments: str | None = None, repeat: int = 5
) -> str:
    """Return the Markdown report of one run (ours only)."""
    times = time_replays(tape_path, instruments, repeat)
    head = f"replay: {times.packets:,} packets of {times.source}\n\n"
    return head + markdown_table(["what", "µs / packet", "packets / s"], replay_rows(times))
