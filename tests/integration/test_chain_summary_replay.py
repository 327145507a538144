"""The chain summary of a recorded simulator session, against a straightforward numpy computation.

A 41-strike NIFTY chain is recorded from the simulator over loopback and replayed. Every
``chain_summary`` line is recomputed here from the ``chain`` line next to it (OI, volume, IV,
gamma, quotes) and from the tape itself (each contract's first printed OI, decoded with the
SDK-keyed decoder) with plain numpy: PCRs, ΔOI, max pain by brute force over every strike, the
walls, GEX, the smile, ATM IV, the 25-delta points, straddle and expected move. The replay is run
twice and must give the same bytes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import math
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
import structlog

from smartflow.app.replay import Replayer
from smartflow.config import Config, FeedConfig, MarketConfig, ModelConfig, SimConfig
from smartflow.core.clock import ScaledClock
from smartflow.core.timeutil import expiry_ns
from smartflow.feed import protocol as p
from smartflow.feed.session import FeedSession, headers_for, static_headers
from smartflow.instruments.master import parse
from smartflow.sim.market import Market
from smartflow.sim.server import SimServer, session_start
from smartflow.sim.universe import noise_records
from smartflow.tape.format import TapeWriter, open_tape


SIM = SimConfig(seed=23, iv_atm=0.14, ticks_per_second=3000, strikes_each_side=25, days_to_expiry=3)
EACH_SIDE = 20
MAX_SPREAD = 0.25


async def _record(tape_path: Path) -> tuple[Market, bytes]:
    start_ns, day = session_start("10:00")
    clock = ScaledClock(start_ns, speed=4.0)
    market = Market(SIM, ["NIFTY"], start_ns, day)
    server = SimServer(market, clock, log=structlog.get_logger())
    await server.start()
    recorder = TapeWriter(tape_path, {"test": "chain summary"})
    creds = server.creds
    seen: set[bytes] = set()
    feed = FeedSession(
        FeedConfig(),
        server.url,
        static_headers(headers_for(creds.jwt, creds.api_key, creds.client_code, creds.feed_token)),
        lambda t, k, f: seen.add(k),
        clock,
        structlog.get_logger(),
        recorder,
    )
    weekly = min(i.expiry for i in market.instruments if i.kind == "CE" and i.expiry)
    wanted = {(1, "99926000"), (2, "40000")}
    for inst in market.instruments:
        near = abs(inst.strike - 24000) <= 50 * EACH_SIDE
        if inst.kind in ("CE", "PE") and inst.expiry == weekly and near:
            wanted.add((2, inst.token))
    feed.set_subscriptions(wanted)
    task = asyncio.create_task(feed.run())
    await feed.wait_ready()
    # At least ~24 simulated seconds (most OIs move at least once), and until every contract
    # has printed, however slow the machine is.
    t0 = time.monotonic()
    while time.monotonic() - t0 < 6.0 or len(seen) < len(wanted):
        assert time.monotonic() - t0 < 120.0, f"{len(seen)} of {len(wanted)} tokens printed"
        await asyncio.sleep(0.1)
    await feed.stop()
    await task
    await server.stop()
    recorder.close()
    return market, msgspec.json.encode(market.scrip_master(noise_records(day)))


def _first_prints(tape_path: Path) -> dict[str, int]:
    """Each token's OI in its first SNAP_QUOTE packet, decoded independently of the chain."""
    tape = open_tape(tape_path)
    dec = p.Decoder()
    first: dict[str, int] = {}
    for i in range(len(tape)):
        try:
            pkt = dec.decode(tape.payload(i))
        except p.FrameError:
            continue
        if pkt["subscription_mode"] == 3 and pkt["token"] not in first:
            first[pkt["token"]] = pkt["open_interest"]
    tape.close()
    return first


def _ncdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.array([math.erfc(-v / math.sqrt(2)) for v in x])


def _interp_desc(x: np.ndarray, y: np.ndarray, target: float) -> float | None:
    """Linear interpolation at ``target`` along a decreasing ``x`` (None: not bracketed)."""
    for i in range(len(x) - 1):
        if x[i] >= target >= x[i + 1]:
            if x[i] == x[i + 1]:
                return float(y[i + 1])
            return float(y[i] + (x[i] - target) / (x[i] - x[i + 1]) * (y[i + 1] - y[i]))
    return None


def _premium(r: dict[str, Any]) -> float:
    bid, ask, ltp = r["bid"], r["ask"], r["ltp"]
    if bid and ask and ask >= bid and (ask - bid) <= MAX_SPREAD * 0.5 * (bid + ask):
        return 0.5 * (bid + ask)
    return float(ltp) if ltp else math.nan


def _check(chain: dict[str, Any], summ: dict[str, Any], first: dict[str, int]) -> None:
    rows = chain["rows"]
    ks = sorted({r["strike"] for r in rows})
    by = {(r["strike"], r["option_type"]): r for r in rows}

    def col(side: str, f: Any, missing: float = 0.0) -> np.ndarray:
        return np.array([f(by[(k, side)]) if (k, side) in by else missing for k in ks], float)

    K = np.array(ks, float)
    ce_oi, pe_oi = col("CE", lambda r: r["oi"]), col("PE", lambda r: r["oi"])
    ce_vol, pe_vol = col("CE", lambda r: r["volume"]), col("PE", lambda r: r["volume"])
    ce_doi = col("CE", lambda r: r["oi"] - first[r["token"]])
    pe_doi = col("PE", lambda r: r["oi"] - first[r["token"]])
    assert [s["strike"] for s in summ["strikes"]] == ks
    assert summ["doi_basis"] == "first_print"
    assert summ["strikes_seen"] == len(ks)
    full = len(ks) == 2 * EACH_SIDE + 1
    # PCR (null when the call side is 0)
    for key, pe_x, ce_x in (
        ("oi", pe_oi, ce_oi),
        ("volume", pe_vol, ce_vol),
        ("oi_change", pe_doi, ce_doi),
    ):
        if ce_x.sum() == 0:
            assert summ["pcr"][key] is None, key
        else:
            assert summ["pcr"][key] == pytest.approx(pe_x.sum() / ce_x.sum(), abs=5e-5), key
    assert summ["totals"]["ce_oi_change"] == ce_doi.sum()
    assert summ["totals"]["pe_oi_change"] == pe_doi.sum()
    per = summ["strikes"]
    assert [s["ce_oi_change"] for s in per] == ce_doi.tolist()
    assert [s["pe_oi_change"] for s in per] == pe_doi.tolist()
    with np.errstate(divide="ignore", invalid="ignore"):
        want_pcr = np.where(ce_oi > 0, pe_oi / np.where(ce_oi > 0, ce_oi, 1), np.nan)
    got_pcr = np.array([s["pcr_oi"] if s["pcr_oi"] is not None else np.nan for s in per])
    np.testing.assert_allclose(got_pcr, want_pcr, atol=5e-5)
    # Max pain by brute force over every strike.
    pain = np.array(
        [(ce_oi * np.maximum(P - K, 0)).sum() + (pe_oi * np.maximum(K - P, 0)).sum() for P in K]
    )
    np.testing.assert_allclose([s["pain"] for s in per], pain, atol=0.01)
    assert summ["max_pain"]["strike"] == K[int(np.argmin(pain))]
    assert summ["max_pain"]["payout"] == pytest.approx(pain.min(), abs=0.01)
    # Walls: first (lowest) strike of the maximum.
    walls = summ["walls"]
    assert walls["resistance"] == {"strike": K[ce_oi.argmax()], "value": ce_oi.max()}
    assert walls["support"] == {"strike": K[pe_oi.argmax()], "value": pe_oi.max()}
    assert walls["resistance_added"] == {"strike": K[ce_doi.argmax()], "value": ce_doi.max()}
    assert walls["support_added"] == {"strike": K[pe_doi.argmax()], "value": pe_doi.max()}
    # GEX = (Γc·OIc − Γp·OIp)·S²·1 %  (gamma from the chain line, rounded there to 1e-8).
    # Γ is per spot point; before the index's first print the kernel scales by the forward.
    spot = chain["spot"] if chain["spot"] is not None else chain["forward"]
    ce_g = col("CE", lambda r: r["gamma"] if r["gamma"] is not None else 0.0)
    pe_g = col("PE", lambda r: r["gamma"] if r["gamma"] is not None else 0.0)
    gex = (ce_g * ce_oi - pe_g * pe_oi) * spot**2 * 0.01
    # The chain line rounds gamma to 1e-8: at most 5e-9 of error per contract, scaled alike.
    bound = 5e-9 * (ce_oi + pe_oi) * spot**2 * 0.01 + 0.01
    got_gex = np.array([s["gex"] for s in per])
    assert spot is not None
    assert np.all(np.abs(got_gex - gex) <= bound), (got_gex - gex, bound)
    assert abs(summ["gex"]["total"] - gex.sum()) <= bound.sum()
    # The smile: OTM side's IV, the other side's when it has none.
    fwd = chain["forward"]
    if fwd is None:  # no price yet to read a forward from: nothing below is defined
        assert summ["volatility"]["atm_iv"] is None
        return
    ce_iv = col("CE", lambda r: r["iv"] if r["iv"] is not None else np.nan, np.nan)
    pe_iv = col("PE", lambda r: r["iv"] if r["iv"] is not None else np.nan, np.nan)
    otm = np.where(fwd > K, pe_iv, ce_iv)
    smile = np.where(np.isnan(otm), np.where(fwd > K, ce_iv, pe_iv), otm)
    got_smile = np.array([s["iv"] if s["iv"] is not None else np.nan for s in per])
    np.testing.assert_allclose(got_smile, smile, atol=1e-6)
    ok = ~np.isnan(smile)
    atm = float(np.interp(fwd, K[ok], smile[ok]))
    vol = summ["volatility"]
    assert vol["atm_iv"] == pytest.approx(atm, abs=2e-6)
    # N(d1) at the smile IV; 25Δ call at N(d1) = 0.25, 25Δ put at 0.75.
    t = (expiry_ns(dt_date(summ["expiry"])) - ts_ns(chain["ts"])) / 1e9 / (365 * 86400)
    s = smile[ok] * math.sqrt(t)
    nd1 = _ncdf(np.log(fwd / K[ok]) / s + 0.5 * s)
    for key, target in (("iv_25d_call", 0.25), ("iv_25d_put", 0.75)):
        want = _interp_desc(nd1, smile[ok], target)
        # ±1000 points of a 3-day chain reach 25 delta (once every strike has printed).
        assert want is not None or not full, key
        if want is None:
            assert vol[key] is None, key
        else:
            assert vol[key] == pytest.approx(want, abs=2e-5), key
    if vol["rr_25d"] is not None:
        assert vol["rr_25d"] == pytest.approx(vol["iv_25d_call"] - vol["iv_25d_put"], abs=2e-6)
        bf = 0.5 * (vol["iv_25d_call"] + vol["iv_25d_put"]) - vol["atm_iv"]
        assert vol["bf_25d"] == pytest.approx(bf, abs=2e-6)
    # Straddle at the strike nearest the forward, expected moves.
    prem = {
        k: _premium(by[(k, "CE")]) + _premium(by[(k, "PE")])
        for k in ks
        if (k, "CE") in by and (k, "PE") in by
    }
    both = sorted((abs(k - fwd), k) for k, v in prem.items() if math.isfinite(v))
    k_atm = both[0][1]
    straddle = prem[k_atm]
    assert vol["atm_strike"] == k_atm
    assert vol["straddle"] == pytest.approx(straddle, abs=1e-4)
    assert vol["expected_move_sigma"] == pytest.approx(fwd * atm * math.sqrt(t), rel=1e-4)
    # A straddle at the money is worth ≈ 0.8 σ√T·F: the two expected moves agree to ~10 %.
    assert 0.7 < vol["expected_move_straddle"] / vol["expected_move_sigma"] < 0.9


def dt_date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def ts_ns(iso: str) -> int:
    when = dt.datetime.fromisoformat(iso)
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


def _replay(cfg: Config, master_json: bytes, tape_path: Path, every: float) -> bytes:
    tape = open_tape(tape_path)
    out = io.BytesIO()
    replayer = Replayer(cfg, parse(master_json, {"NIFTY"}), out, every, int(tape.recv_ns[0]))
    replayer.run(tape)
    tape.close()
    return out.getvalue()


@pytest.mark.slow
def test_summary_of_a_recorded_chain_matches_numpy(tmp_path: Path) -> None:
    tape_path = tmp_path / "session.sft"
    _, master_json = asyncio.run(_record(tape_path))
    cfg = Config(
        market=MarketConfig(strikes_each_side=EACH_SIDE),
        model=ModelConfig(forward="synthetic", rate=SIM.rate, max_spread_pct=MAX_SPREAD * 100),
        sim=SIM,
    )
    first = _first_prints(tape_path)
    raw = _replay(cfg, master_json, tape_path, 10.0)
    lines = [msgspec.json.decode(line) for line in raw.splitlines()]
    kinds = [ln["kind"] for ln in lines]
    pairs = [
        (ln, lines[i + 1])
        for i, ln in enumerate(lines)
        if ln["kind"] == "chain" and i + 1 < len(lines)
    ]
    assert pairs
    assert all(b["kind"] == "chain_summary" for _, b in pairs)
    assert kinds.count("chain") == kinds.count("chain_summary") >= 2
    moved = 0
    for chain, summ in pairs:
        assert summ["ts"] == chain["ts"]
        assert summ["underlying"] == "NIFTY"
        assert summ["expiry"] == chain["expiry"]
        _check(chain, summ, first)
        moved += sum(1 for s in summ["strikes"] if s["ce_oi_change"] or s["pe_oi_change"])
    assert moved > 0  # OI moved during the session, so ΔOI was exercised
    # By the end every strike of the window has printed: the full 41-strike chain was checked.
    assert pairs[-1][1]["strikes_seen"] == 2 * EACH_SIDE + 1
    # Same tape, same config: the same bytes.
    assert _replay(cfg, master_json, tape_path, 10.0) == raw
