"""Detectors against the simulator's ground truth, on both OI shapes: each injected scenario is
found inside its window, on its contract, with its class — and quiet contracts near the money
rarely carry a class at all.

Sessions run straight through ``ChainBook`` + ``SmartMoneyDetector`` (``support.session``), 200
packets per simulated second, seed 3, 5 s bars; the detector's per-bar contract states of the
scenario's contract (``track=``) are what is checked. A scenario starts at 240 s and lasts 120 s,
build-ups at the ``strong`` grade (16 % of the contract's OI, a 20 % premium move, 4.5× volume);
"inside its window" means a bar ending in [start, end + 3 bars]. The shapes are
``support.scoring.SHAPES``: OI moving with each trade, and OI published in lumps every 30-90 s (so
a build-up can only be read at a print).
"""

from __future__ import annotations

from functools import cache

import pytest
from support.scoring import ATM, SHAPES, STEP, ZONE_STRIKES, shape_config, weekly_options
from support.session import Session, run_session

from smartflow.config import ScenarioConfig
from smartflow.sim.market import GroundTruth


SEED = 3
NS = 1_000_000_000
BAR_NS = 5 * NS
GRACE_NS = 3 * BAR_NS
START_S = 240.0  # build-ups and fresh positions: after the detectors learnt each contract's noise
TRAP_START_S = 60.0  # traps do not depend on that
DURATION_S = 120.0

States = dict[str, object]


def _token(strike: float, side: str) -> str:
    where = weekly_options(shape_config("periodic", SEED, []))
    (token,) = [t for t, (k, s) in where.items() if k == strike and s == side]
    return token


Case = tuple[str, str, int]  # (kind, side, strike offset)


@cache
def _session(
    shape: str,
    cases: tuple[Case, ...],
    start_s: float = START_S,
    duration_s: float = DURATION_S,
    dte: float = 2.0,
    strength: str = "strong",
) -> tuple[Session, dict[Case, tuple[GroundTruth, list[tuple[int, States]]]]]:
    """One session with a scenario per case, all from ``start_s``, each on its own contract;
    returns it and, per case, its ground truth and its contract's per-bar states."""
    scenarios = [
        ScenarioConfig(
            kind=kind,  # type: ignore[arg-type]
            start_s=start_s,
            duration_s=duration_s,
            strike_offset=offset,
            side=side,  # type: ignore[arg-type]
            strength=strength,  # type: ignore[arg-type]
        )
        for kind, side, offset in cases
    ]
    seconds = start_s + duration_s + 15
    sim = shape_config(shape, SEED, scenarios, days_to_expiry=dte)
    tokens = {case: _token(ATM + case[2] * STEP, case[1]) for case in cases}
    s = run_session(sim, seconds, track=set(tokens.values()))
    assert len(s.every_bar) == seconds * NS // BAR_NS
    out = {}
    for case, token in tokens.items():
        (gt,) = [g for g in s.market.ground_truth if g.token == token]
        assert (gt.kind, gt.grade) == (case[0], strength)
        log = [(ts, st) for ts, tok, st in s.contract_log if tok == token]
        assert len(log) == len(s.every_bar)
        out[case] = (gt, log)
    return s, out


def _scenario(
    shape: str,
    kind: str,
    side: str = "CE",
    offset: int = 0,
    dte: float = 2.0,
    strength: str = "strong",
    duration_s: float = DURATION_S,
) -> tuple[Session, GroundTruth, list[tuple[int, States]]]:
    """A session with one scenario; returns it, its ground truth and the target's states."""
    start = START_S if kind in ("fresh_position", *BUILDUPS) else TRAP_START_S
    s, cases = _session(shape, ((kind, side, offset),), start, duration_s, dte, strength)
    ((gt, log),) = cases.values()
    return s, gt, log


def _inside(gt: GroundTruth, ts: int) -> bool:
    return gt.start_ns <= ts <= gt.end_ns + GRACE_NS


BUILDUPS = {
    "long_build_up": "LONG_BUILD_UP",
    "short_build_up": "SHORT_BUILD_UP",
    "short_covering": "SHORT_COVERING",
    "long_unwinding": "LONG_UNWINDING",
}
# Every build-up kind on a call and a put, in one session per shape, each on its own contract
# within two strikes of ATM.
BUILDUP_CASES: tuple[Case, ...] = (
    ("long_build_up", "CE", 0),
    ("long_build_up", "PE", 0),
    ("short_build_up", "CE", 1),
    ("short_build_up", "PE", -1),
    ("short_covering", "CE", -1),
    ("short_covering", "PE", 1),
    ("long_unwinding", "CE", 2),
    ("long_unwinding", "PE", -2),
)
CASES = [(shape, case) for shape in SHAPES for case in BUILDUP_CASES]
IDS = [f"{shape}-{kind}-{side}" for shape, (kind, side, _) in CASES]


@pytest.mark.parametrize(("shape", "case"), CASES, ids=IDS)
def test_buildup_scenario_is_detected_in_its_window(shape: str, case: Case) -> None:
    kind = case[0]
    _, cases = _session(shape, BUILDUP_CASES)
    gt, log = cases[case]
    expected = BUILDUPS[kind]
    inside = [(ts, st) for ts, st in log if _inside(gt, ts)]
    # The right class, and only it, on the scenario's contract inside the window...
    read = {st["oi_buildup"] for _, st in inside} - {"NONE"}
    assert read == {expected}
    # ...read in the window itself (with periodic OI: at a print, and one comes within 90 s).
    first = min(ts for ts, st in inside if st["oi_buildup"] == expected)
    assert first <= gt.end_ns
    # The volume behind it is elevated (the scenario trades 4.5x).
    assert {st["volume_state"] for _, st in inside} & {"SPIKE", "BURST", "AGGRESSIVE"}
    # Nothing was read on this (liquid, near-ATM) contract before the scenario began.
    before = [st for ts, st in log if ts <= gt.start_ns]
    assert all(st["oi_buildup"] == "NONE" for st in before)
    assert all(st["trap_types"] == [] for st in before)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_fresh_position_is_an_aggressive_entry(shape: str) -> None:
    s, gt, log = _scenario(shape, "fresh_position", "CE")
    fresh = [ts for ts, st in log if _inside(gt, ts) and st["fresh_position"] == "AGGRESSIVE_ENTRY"]
    assert fresh
    # 20 % of the OI in 10 s: read once it is on the wire (with periodic OI, at the next print).
    assert min(fresh) <= gt.end_ns
    assert all(st["fresh_position"] != "AGGRESSIVE_ENTRY" for ts, st in log if ts < gt.start_ns)
    sig = next(x for x in s.every_bar if x.ts == min(fresh))
    assert sig.fresh_position_detected
    assert sig.recommendation == "BUY_CALL"
    assert sig.strike == gt.strike


@pytest.mark.parametrize("shape", list(SHAPES))
def test_scalper_trap_is_detected_and_blocks_its_contract(shape: str) -> None:
    s, gt, log = _scenario(shape, "scalper_trap", "CE", offset=12)
    inside = [(ts, st) for ts, st in log if _inside(gt, ts)]
    flagged = [(ts, st) for ts, st in inside if "SCALPER_TRAP" in st["trap_types"]]
    assert flagged
    assert min(ts for ts, _ in flagged) - gt.start_ns <= 2 * BAR_NS
    for _, st in flagged:
        assert st["can_trade"] is False
    assert all("SCALPER_TRAP" not in st["trap_types"] for ts, st in log if ts <= gt.start_ns)
    # Nobody is told to buy it.
    assert not [x for x in s.every_bar if x.token == gt.token and x.recommendation != "AVOID"]


@pytest.mark.parametrize("shape", list(SHAPES))
def test_theta_crush_on_expiry_day(shape: str) -> None:
    # days_to_expiry = 0.4 lists the weekly on the session date itself (the simulator counts
    # whole days), so at 10:00 the ATM call has ~5.5 h left: burn ≈ 1.3 of its premium per day.
    _, gt, log = _scenario(shape, "theta_crush", "CE", dte=0.4, strength="moderate", duration_s=40)
    inside = [st for ts, st in log if _inside(gt, ts) and ts > gt.start_ns]
    assert inside
    for st in inside:
        assert "THETA_CRUSH" in st["trap_types"]
        assert st["can_trade"] is False
    # Theta crush is a property of the contract near expiry, not of the price falling: the same
    # scenario two days out (burn ≈ 0.25/day, DTE 2) flags nothing.
    _, _, log2 = _scenario(shape, "theta_crush", "CE", dte=2.0, strength="moderate", duration_s=40)
    assert all("THETA_CRUSH" not in st["trap_types"] for _, st in log2)


# ---------------------------------------------------------------------------------------------
# Quiet sessions: no scenario at all
# ---------------------------------------------------------------------------------------------

# The contracts within ± 10 strikes (± 500 points) of ATM, CE and PE, for five minutes, at the
# default OI depth (ATM ≈ 30,000 lots: the simulator's churn moves it by ~0.2 % a minute) and on
# a thin chain (ATM ≈ 3,000 lots: the same churn is ~2 % a minute). What share of their
# snapshots carries a build-up class is the false-class rate; the detector rework aims at ≤ 2 %.
# It is measured over the whole session and from the fourth minute on, once the detectors have
# learnt each contract's own noise (before that a prior of ``warmup_noise_pct`` stands in).
QUIET_SECONDS = 300.0
LEARNT_S = 180.0
DEPTHS = {"deep": 30_000, "thin": 3_000}
# (shape, depth) → the largest false-class rate allowed (whole session, after learning); the
# measured values are in README "Precision and recall".
QUIET_MAX: dict[tuple[str, str], tuple[float, float]] = {
    ("per_trade", "deep"): (0.02, 0.02),
    ("periodic", "deep"): (0.02, 0.02),
    ("per_trade", "thin"): (0.15, 0.02),
    ("periodic", "thin"): (0.15, 0.02),
}


@cache
def _quiet(shape: str, depth: str) -> tuple[Session, dict[str, tuple[float, str]]]:
    sim = shape_config(shape, SEED, [], oi_lots_atm=DEPTHS[depth])
    where = weekly_options(sim)
    near = {t: w for t, w in where.items() if abs(w[0] - ATM) <= ZONE_STRIKES * STEP}
    return run_session(sim, QUIET_SECONDS, track=set(near)), near


@pytest.mark.parametrize(("shape", "depth"), list(QUIET_MAX))
def test_quiet_contracts_near_the_money_rarely_carry_a_class(shape: str, depth: str) -> None:
    s, near = _quiet(shape, depth)
    assert len(s.contract_log) == len(near) * QUIET_SECONDS * NS // BAR_NS
    assert abs(s.book.chains[0].spot - ATM) < STEP  # the zone stayed the zone
    learnt_ns = s.market.start_ns + int(LEARNT_S * NS)
    rates = []
    for since in (0, learnt_ns):
        log = [(ts, near[tok], st) for ts, tok, st in s.contract_log if ts > since]
        classed = [(ts, where) for ts, where, st in log if st["oi_buildup"] != "NONE"]
        rates.append(len(classed) / len(log))
        frm = LEARNT_S if since else 0.0
        print(
            f"quiet {shape} {depth}, from {frm:.0f} s: {len(classed)} of {len(log)} snapshots"
            f" carry a build-up class ({100 * rates[-1]:.2f} %)"
        )
    whole, learnt = QUIET_MAX[(shape, depth)]
    assert rates[0] <= whole
    assert rates[1] <= learnt


# ATM ± 2 strikes (23 900 … 24 100, CE and PE): the contracts the simulator trades most, so every
# 5 s bar has trades and a real baseline, |Δ| is well above 0.1 (no liquidity trap), Γ per 1 % is
# ~0.1 (no noise trap), and two days out the burn is ~0.25/day (no theta crush).
CORE = [ATM + k * STEP for k in range(-2, 3)]


@pytest.mark.parametrize("shape", list(SHAPES))
def test_quiet_session_blocks_nothing_and_traps_nothing_at_the_money(shape: str) -> None:
    s, near = _quiet(shape, "deep")
    core = [(ts, near[tok], st) for ts, tok, st in s.contract_log if near[tok][0] in CORE]
    assert core
    for _, where, st in core:
        assert st["oi_stale"] is False, where
        assert st["fresh_position"] in (None, "ADJUSTMENT"), where
        assert st["trap_types"] == [], where
        assert st["can_trade"] is True, where
