"""``smartflow bench detectors``: one full detector update of a 50-strike chain, and per tick.

The chain comes from the simulator's market model (50 strikes, CE and PE, with build-up and
fresh-position scenarios so every component has work), fed through the same ``ChainBook`` the
daemon uses. Measured separately:

* full update: what runs at every bar close — the six detector kernels over all 100 contracts,
  the battlefield, and the signal assembly with its evidence (``SmartMoneyDetector.on_bar``);
* detector kernels alone (the numba part of the above);
* per-tick incremental update: one packet applied (decode, chain state, order flow, IV and
  greeks of the touched contract) through ``ChainBook.process``.
"""

from __future__ import annotations

import time

import msgspec
import numpy as np

from smartflow.analytics.detectors import SmartMoneyDetector
from smartflow.bench.common import markdown_table, percentiles
from smartflow.chain.state import ChainBook, ChainState
from smartflow.config import Config, ScenarioConfig, SimConfig
from smartflow.instruments.master import parse
from smartflow.instruments.universe import select
from smartflow.kernels import detect as K, layout as L
from smartflow.sim.market import Market
from smartflow.sim.server import session_start


def _session(seconds: float) -> tuple[ChainBook, SmartMoneyDetector, list[tuple[int, bytes]]]:
    sim = SimConfig(
        seed=11,
        strikes_each_side=25,
        ticks_per_second=400,
        scenarios=[
            ScenarioConfig(kind="long_build_up", start_s=40, duration_s=60),
            ScenarioConfig(kind="fresh_position", start_s=80, side="PE", strike_offset=-1),
        ],
    )
    cfg = Config(sim=sim)
    start_ns, day = session_start("10:00")
    market = Market(sim, ["NIFTY"], start_ns, day)
    master = parse(msgspec.json.encode(market.scrip_master()), {"NIFTY"})
    chain = ChainState(select(master, "NIFTY", start_ns), cfg.model)
    book = ChainBook([chain], cfg.detectors)
    det = SmartMoneyDetector(chain, cfg.detectors.thresholds(), cfg.detectors.bar_seconds)
    book.on_bar.append(det.on_bar)
    frames = [
        (int.from_bytes(f[35:43], "little") * 1_000_000, f)
        for _, f in market.advance(start_ns + int(seconds * 1e9))
    ]
    return book, det, frames


def run_detectors_bench(seconds: float = 150.0) -> str:
    """Return the Markdown report of one run."""
    book, det, frames = _session(seconds)
    split = len(frames) * 2 // 3
    book.process(frames[:split])  # history for the baselines (and JIT)
    c = det.chain
    rows_opts = c.option_rows
    n_contracts = int(np.count_nonzero(c.q[rows_opts, L.Q_TICKS] > 0))
    head = (book.bar_seq - 1) % L.RING
    n_valid = min(book.bar_seq, L.RING)
    full, kern = [], []
    for _ in range(300):
        t = time.perf_counter_ns()
        det.on_bar(book.bar_end_ns, book.bar_seq - 1)
        full.append(time.perf_counter_ns() - t)
        t = time.perf_counter_ns()
        K.detect_rows(
            rows_opts, c.q, c.f, c.bars, head, n_valid, book.bar_end_ns, det.p, det.di, det.df
        )
        K.run_traps(rows_opts, c.q, c.f, c.bars, head, n_valid, det.p, det.di, det.df)
        kern.append(time.perf_counter_ns() - t)
    tick = []
    for fr in frames[split:]:
        if fr[0] >= book.bar_end_ns:
            book.advance_to(fr[0])  # bar closes are measured above, not as ticks
        t = time.perf_counter_ns()
        book.process([fr])
        tick.append(time.perf_counter_ns() - t)
    out = []
    for name, samples in (
        ("full update at a bar close (kernels + battlefield + signal)", full),
        ("detector kernels only", kern),
        ("per-tick incremental update (1 packet → state, flow, greeks)", tick),
    ):
        s = percentiles(samples)
        out.append(
            [name, str(s["n"]), f"{s['p50_us']:.1f}", f"{s['p99_us']:.1f}", f"{s['max_us']:.1f}"]
        )
    text = (
        f"detectors: NIFTY chain of {len(c.universe.strikes_paise)} strikes "
        f"({n_contracts} contracts traded), bars of {book.bar_ns // 1_000_000_000} s; "
        "seed claim: 50 strikes in < 100 ms\n\n"
    )
    return text + markdown_table(["what", "samples", "p50 µs", "p99 µs", "max µs"], out)
