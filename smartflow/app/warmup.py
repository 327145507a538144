"""Kernel warm-up: compile (or load from the numba cache) every kernel the daemon calls.

A first call of each kernel costs 0.1-2 s of JIT without a cache; paying it at start-up instead of
on the first tick of the day is the point. The warm-up runs the daemon's own pipeline
(app/pipeline.py) on a one-strike synthetic chain, so anything the hot path calls is compiled
with the exact argument types — and nothing else (the benchmarks' batch kernels are not).
"""

from __future__ import annotations

import datetime as dt
import time

import numpy as np

from smartflow.app.pipeline import Pipeline
from smartflow.chain.state import ChainState, FlowParams
from smartflow.config import Config, DetectorConfig, ModelConfig
from smartflow.core.clock import ReplayClock
from smartflow.core.timeutil import expiry_ns
from smartflow.feed import protocol as p
from smartflow.instruments.master import Instrument
from smartflow.instruments.universe import ChainUniverse
from smartflow.kernels import wire


def _universe() -> ChainUniverse:
    expiry = dt.date(2030, 1, 1)
    index = Instrument("1", "IDX", "WARM", "INDEX", "NSE", 1, None, 0, 1, 0)
    fut = Instrument("2", "FUT", "WARM", "FUT", "NFO", 2, expiry, 0, 50, 10)
    call = Instrument("3", "C", "WARM", "CE", "NFO", 2, expiry, 10_000_00, 50, 5)
    put = Instrument("4", "P", "WARM", "PE", "NFO", 2, expiry, 10_000_00, 50, 5)
    return ChainUniverse(
        root="WARM",
        expiry=expiry,
        expiry_ns=expiry_ns(expiry),
        segment="NFO",
        exchange_type=2,
        index=index,
        future=fut,
        strikes_paise=[10_000_00],
        calls={10_000_00: call},
        puts={10_000_00: put},
        lot_size=50,
        tick_paise=5,
    )


def warm_up(model: ModelConfig, detectors: DetectorConfig) -> float:
    """Run every hot-path kernel once, through the daemon's own pipeline; return the seconds."""
    t0 = time.perf_counter()
    now = time.time_ns()
    chain = ChainState(_universe(), model, FlowParams.from_config(detectors))
    pipeline = Pipeline(Config(model=model, detectors=detectors), [chain], ReplayClock(now))
    frames = []
    for i, (exch, token, ltp) in enumerate(
        ((1, "1", 10_000_00), (2, "2", 10_010_00), (2, "3", 200_00), (2, "4", 190_00))
    ):
        pkt = {
            "subscription_mode": 3,
            "exchange_type": exch,
            "token": token,
            "last_traded_price": ltp,
            "volume_trade_for_the_day": 100 + i,
            "open_interest": 1000,
            "best_5_buy_data": [{"flag": 1, "quantity": 50, "price": ltp - 5, "no of orders": 1}],
            "best_5_sell_data": [{"flag": 0, "quantity": 50, "price": ltp + 5, "no of orders": 1}],
        }
        frames.append((now + i, p.encode(pkt)))
    for _, frame in frames:
        # The feed validates every frame as it arrives, before the engine sees it.
        wire.check_frame(np.frombuffer(frame, np.uint8), 0, len(frame))
    pipeline.process(frames)
    # A second packet for a contract exercises the per-tick order-flow path.
    pipeline.process([(now + 10, frames[2][1])])
    pipeline.advance_to(now + pipeline.book.bar_ns * 2)
    # What readers call from Python (API, history, replay lines): flow views, summary structs.
    for row in range(chain.n):
        pipeline.flow.contract_metrics(chain, row)
    for snap in pipeline.summaries.snapshot(now + pipeline.book.bar_ns * 2):
        snap.to_struct()
    return time.perf_counter() - t0
