"""``smartflow bench replay [TAPE]``: the whole pipeline against the SDK merely parsing.

Ours is ``smartflow replay`` minus its output file: validate, decode, chain state, per-tick order
flow and greeks, bars, the six detectors, signals, the flow analytics, the strategy and the
paper router with its (in-memory) journal — on the tape's clock. The peer is the official SDK's
``_parse_binary_data`` over the same packets and nothing else. Without a TAPE, a seeded
simulator session is recorded first (every instrument, scenarios on).
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
from pathlib import Path

import msgspec

from smartflow.app.replay import Replayer
from smartflow.bench.common import markdown_table, sdk_parse_ns
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


def run_replay_bench(
    tape_path: str | None = None, instruments: str | None = None, repeat: int = 5
) -> str:
    """Return the Markdown report of one run."""
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
        _replay_once(path, master, cfg)  # JIT / cache load, not measured
        runs = [_replay_once(path, master, cfg) for _ in range(repeat)]
        sdk = sdk_parse_ns(frames, repeat=3)
    n = runs[0][1]
    per_frame = sorted(el / n * 1e6 for el, _ in runs)
    median_us = statistics.median(per_frame)
    worst_us = per_frame[-1]
    rows = [
        [
            f"smartflow replay: full pipeline (median of {repeat})",
            f"{median_us:.2f}",
            f"{1e6 / median_us:,.0f}",
            "",
        ],
        [
            f"smartflow replay: slowest of {repeat} runs",
            f"{worst_us:.2f}",
            f"{1e6 / worst_us:,.0f}",
            "",
        ],
    ]
    if "ns_total" in sdk:
        sdk_us = float(sdk["ns_total"]) / len(frames) / 1000
        rows[0][3] = f"{sdk_us / median_us:.1f}× the SDK's speed"
        rows.append(
            [
                "official SDK: parse only (best of 3)",
                f"{sdk_us:.2f}",
                f"{1e6 / sdk_us:,.0f}",
                "1.0×",
            ]
        )
    else:
        rows.append(["official SDK: parse only", "n/a", "n/a", str(sdk.get("error"))])
    head = f"replay: {n:,} packets of {source}\n\n"
    return head + markdown_table(["what", "µs / packet", "packets / s", "ratio"], rows)
