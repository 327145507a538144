"""Replay with ``[market] expiries = 2``: the term structure in the ``chain_summary`` lines.

A tape of the simulator's own packets for both weekly expiries is replayed with one expiry and
with two. With two, each ``chain_summary`` line carries the next expiry's summary and the term
structure, consistent with each chain's own ATM IV and time to expiry, and the same tape gives
the same bytes twice. Adding the next expiry changes nothing of the near one: with the two new
keys removed, the lines equal the one-expiry replay's byte for byte.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import msgspec
import pytest

from smartflow.app.replay import Replayer
from smartflow.config import Config, DetectorConfig, MarketConfig, SimConfig
from smartflow.instruments.master import parse
from smartflow.sim.market import Market
from smartflow.sim.server import session_start
from smartflow.tape.format import TapeWriter, open_tape


SIM = SimConfig(seed=11, strikes_each_side=4, ticks_per_second=250.0, days_to_expiry=2)
SECONDS = 40


def _tape(path: Path) -> tuple[bytes, int]:
    start_ns, day = session_start("11:00")
    market = Market(SIM, ["NIFTY"], start_ns, day)
    with TapeWriter(path, {"test": "term structure"}) as w:
        for _, frame in market.advance(start_ns + SECONDS * 1_000_000_000):
            w.write(int.from_bytes(frame[35:43], "little") * 1_000_000, frame)
    return msgspec.json.encode(market.scrip_master()), start_ns


def _replay(path: Path, master: bytes, start_ns: int, expiries: int) -> list[dict[str, Any]]:
    cfg = Config(
        market=MarketConfig(strikes_each_side=4, expiries=expiries),
        detectors=DetectorConfig(bar_seconds=2),
        sim=SIM,
    )
    out = io.BytesIO()
    tape = open_tape(path)
    try:
        Replayer(cfg, parse(master, {"NIFTY"}), out, 5.0, start_ns).run(tape)
    finally:
        tape.close()
    return [msgspec.json.decode(ln) for ln in out.getvalue().splitlines()]


def test_replayed_term_structure_is_consistent_and_leaves_the_near_expiry_alone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "two.sft"
    master, start_ns = _tape(path)
    two = _replay(path, master, start_ns, 2)
    assert _replay(path, master, start_ns, 2) == two  # deterministic
    one = _replay(path, master, start_ns, 1)
    summaries = [x for x in two if x["kind"] == "chain_summary"]
    assert len(summaries) >= SECONDS // 5
    last = summaries[-1]
    nxt = last["next_expiry"]
    assert nxt["strikes_seen"] == last["strikes_seen"] == 9
    for s in summaries:
        ts, nxt = s["term_structure"], s["next_expiry"]
        assert ts["near_expiry"] == s["expiry"] < ts["next_expiry"] == nxt["expiry"]
        assert ts["near_atm_iv"] == s["volatility"]["atm_iv"]
        assert ts["next_atm_iv"] == nxt["volatility"]["atm_iv"]
        assert ts["near_t_years"] == s["t_years"] < ts["next_t_years"] == nxt["t_years"]
        if ts["near_atm_iv"] is not None and ts["next_atm_iv"] is not None:
            assert ts["spread"] == pytest.approx(ts["next_atm_iv"] - ts["near_atm_iv"], abs=2e-6)
            assert ts["ratio"] == pytest.approx(ts["next_atm_iv"] / ts["near_atm_iv"], abs=2e-4)
    # The simulator prices both expiries off one smile around iv_atm: both ATM IVs near it.
    assert last["volatility"]["atm_iv"] == pytest.approx(SIM.iv_atm, abs=0.03)
    assert nxt["volatility"]["atm_iv"] == pytest.approx(SIM.iv_atm, abs=0.03)
    assert math.isfinite(last["term_structure"]["spread"])
    # The near expiry is untouched by the second: strip the two keys and the lines are equal,
    # but for the last line's counts (one expiry leaves the next one's packets unknown).
    for x in two:
        x.pop("term_structure", None)
        x.pop("next_expiry", None)
    assert two[:-1] == one[:-1]
    end2, end1 = two[-1], one[-1]
    assert end2["kind"] == end1["kind"] == "summary"
    assert end1["unknown_token"] > 0
    assert (end2["applied"], end2["unknown_token"]) == (end1["applied"] + end1["unknown_token"], 0)
    for key in ("applied", "unknown_token"):
        del end1[key], end2[key]
    assert end2 == end1
    assert not any("term_structure" in x for x in one)
