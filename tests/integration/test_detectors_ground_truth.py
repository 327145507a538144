"""Detectors against the simulator's ground truth: each injected scenario is found inside its
window, on its contract, with its class — and a quiet session finds nothing near the money.

Sessions run straight through ``ChainBook`` + ``SmartMoneyDetector`` (``support.session``), 200
packets per simulated second, seed 3, 5 s bars; the detector's per-bar contract states of the
scenario's contract (``track=``) are what is checked, with the per-bar signals where the scenario
implies a recommendation. A scenario starts at 90 s and lasts 40 s; "inside its window" means a bar
ending in [start, end + 3 bars]: a build-up can only be read at the contract's next OI print and a
trap needs the bar to close.
"""

from __future__ import annotations

from functools import cache

import pytest
from support.session import Session, run_session

from smartflow.config import ScenarioConfig, SimConfig
from smartflow.core.messages import SmartMoneySignal
from smartflow.sim.market import GroundTruth, Market
from smartflow.sim.server import session_start


SEED = 3
TICKS = 200.0
NS = 1_000_000_000
BAR_NS = 5 * NS
GRACE_NS = 3 * BAR_NS
START_S = 90.0
DURATION_S = 40.0
SECONDS = 150.0
ATM = 24_000.0
STEP = 50.0

States = dict[str, object]


def _token(sim: SimConfig, strike: float, side: str) -> str:
    """Token of the nearest-weekly ``strike`` ``side`` option of the simulated NIFTY chain."""
    start_ns, day = session_start("10:00")
    market = Market(sim, ["NIFTY"], start_ns, day)
    opts = [i for i in market.instruments if i.root == "NIFTY" and i.kind in ("CE", "PE")]
    weekly = min(i.expiry for i in opts if i.expiry is not None)
    (inst,) = [i for i in opts if i.expiry == weekly and i.strike == strike and i.kind == side]
    return inst.token


@cache
def _scenario(
    kind: str, side: str = "CE", offset: int = 0, dte: float = 2.0
) -> tuple[Session, GroundTruth, list[tuple[int, States]]]:
    """One scenario session; returns it, its ground truth and the target's per-bar states."""
    sc = ScenarioConfig(
        kind=kind,  # type: ignore[arg-type]
        start_s=START_S,
        duration_s=DURATION_S,
        strike_offset=offset,
        side=side,  # type: ignore[arg-type]
    )
    sim = SimConfig(seed=SEED, ticks_per_second=TICKS, days_to_expiry=dte, scenarios=[sc])
    token = _token(sim, ATM + offset * STEP, side)
    s = run_session(sim, SECONDS, track={token})
    (gt,) = s.market.ground_truth
    assert gt.token == token
    assert gt.kind == kind
    log = [(ts, st) for ts, tok, st in s.contract_log if tok == token]
    assert len(log) == len(s.every_bar) == SECONDS * NS // BAR_NS
    return s, gt, log


def _inside(gt: GroundTruth, ts: int) -> bool:
    return gt.start_ns <= ts <= gt.end_ns + GRACE_NS


def _signal_at(s: Session, ts: int) -> SmartMoneySignal:
    (sig,) = [x for x in s.every_bar if x.ts == ts]
    return sig


BUILDUPS = {
    "long_build_up": "LONG_BUILD_UP",
    "short_build_up": "SHORT_BUILD_UP",
    "short_covering": "SHORT_COVERING",
    "long_unwinding": "LONG_UNWINDING",
}
CASES = [(kind, side) for kind in BUILDUPS for side in ("CE", "PE")]


@pytest.mark.parametrize(("kind", "side"), CASES)
def test_buildup_scenario_is_detected_in_its_window(kind: str, side: str) -> None:
    _, gt, log = _scenario(kind, side)
    expected = BUILDUPS[kind]
    inside = [(ts, st) for ts, st in log if _inside(gt, ts)]
    # The right class, and only it, on the scenario's contract inside the window...
    read = {st["oi_buildup"] for _, st in inside} - {"NONE"}
    assert read == {expected}
    first = min(ts for ts, st in inside if st["oi_buildup"] == expected)
    # ...read within the scenario's first 30 s: at 90 s into the session a contract's own noise
    # is not known yet, so its OI must have moved 4 % (4 × the 1 % warm-up prior) over its history.
    assert first - gt.start_ns <= 6 * BAR_NS
    # The volume behind it is elevated (the scenario trades 4x).
    assert {st["volume_state"] for _, st in inside} & {"SPIKE", "BURST", "AGGRESSIVE"}
    # Nothing was read on this (liquid, ATM) contract before the scenario began.
    before = [st for ts, st in log if ts <= gt.start_ns]
    assert all(st["oi_buildup"] == "NONE" for st in before)
    assert all(st["trap_types"] == [] for st in before)


# What the orchestrator makes of each build-up (seed Phase 4 + analytics/detectors.py): a call
# long build-up is bullish (BUY_CALL on it), a call short build-up bearish (BUY_PUT on the put of
# the same strike), a put the mirror image; covering and unwinding are the seed's TRAP pattern
# (Δ moved the signal's way while OI fell, Δ↑ OI↓ Vol↑) and are avoided.
SIGNALS: dict[tuple[str, str], tuple[str, str | None]] = {
    ("long_build_up", "CE"): ("BUY_CALL", "CE"),
    ("short_build_up", "CE"): ("BUY_PUT", "PE"),
    ("long_build_up", "PE"): ("BUY_PUT", "PE"),
    ("short_build_up", "PE"): ("BUY_CALL", "CE"),
    ("short_covering", "CE"): ("AVOID", None),
    ("long_unwinding", "CE"): ("AVOID", None),
    ("short_covering", "PE"): ("AVOID", None),
    ("long_unwinding", "PE"): ("AVOID", None),
}


@pytest.mark.parametrize(("kind", "side"), CASES)
def test_buildup_scenario_drives_the_signal(kind: str, side: str) -> None:
    s, gt, log = _scenario(kind, side)
    rec, trade_side = SIGNALS[(kind, side)]
    reading = [ts for ts, st in log if _inside(gt, ts) and st["oi_buildup"] == BUILDUPS[kind]]
    assert reading
    # While the scenario trades (its window): the signal it implies. After it, the reading stays
    # for the horizon but the volume behind it is gone: no trade is allowed but the implied one.
    for ts in reading:
        if ts > gt.end_ns:
            sig = _signal_at(s, ts)
            assert not sig.can_trade or sig.recommendation == rec, (ts - gt.start_ns, sig.reason)
            continue
        sig = _signal_at(s, ts)
        assert sig.recommendation == rec, (ts - gt.start_ns, sig.reason)
        assert sig.strike == gt.strike
        if rec == "AVOID":
            assert not sig.can_trade
            assert sig.reason is not None
            assert "cross-validation TRAP" in sig.reason
        else:
            assert sig.option_type == trade_side
            assert sig.can_trade, (ts - gt.start_ns, sig.reason)
    # While nothing is read, the signal is NEUTRAL (no build-up anywhere near the money).
    first = min(reading)
    assert all(x.recommendation == "NEUTRAL" for x in s.every_bar if x.ts < first)


def test_fresh_position_is_an_aggressive_entry_and_a_buy() -> None:
    s, gt, log = _scenario("fresh_position", "CE")
    inside = [(ts, st) for ts, st in log if _inside(gt, ts)]
    fresh = [ts for ts, st in inside if st["fresh_position"] == "AGGRESSIVE_ENTRY"]
    assert fresh
    # The scenario's decisive OI print comes 3.5 s in: detected at the first or second bar close.
    assert min(fresh) - gt.start_ns <= 2 * BAR_NS
    assert all(st["fresh_position"] != "AGGRESSIVE_ENTRY" for ts, st in log if ts < gt.start_ns)
    sig = _signal_at(s, min(fresh))
    assert sig.recommendation == "BUY_CALL"
    assert sig.can_trade, sig.reason
    assert sig.fresh_position_detected
    assert sig.token == gt.token
    assert any(e.rule == "FRESH_POSITION" and e.token == gt.token for e in sig.evidence)
    # The emitted stream announces it (a new fresh position is material).
    assert any(x.ts == min(fresh) and x.fresh_position_detected for x in s.signals)


def test_scalper_trap_is_detected_and_blocks_its_contract() -> None:
    s, gt, log = _scenario("scalper_trap", "CE", offset=12)
    inside = [(ts, st) for ts, st in log if _inside(gt, ts)]
    flagged = [(ts, st) for ts, st in inside if "SCALPER_TRAP" in st["trap_types"]]
    assert flagged
    assert min(ts for ts, _ in flagged) - gt.start_ns <= 2 * BAR_NS
    # A 600-point OTM call with its OI cut to 10-40 lots is also a liquidity trap: two traps,
    # blocked whatever the probability.
    for _, st in flagged:
        assert st["can_trade"] is False
        assert "LIQUIDITY_TRAP" in st["trap_types"]
    assert all("SCALPER_TRAP" not in st["trap_types"] for ts, st in log if ts <= gt.start_ns)
    # Nobody is told to buy it.
    assert not [x for x in s.every_bar if x.token == gt.token and x.recommendation != "AVOID"]


def test_theta_crush_on_expiry_day() -> None:
    # days_to_expiry = 0.4 lists the weekly on the session date itself (the simulator counts
    # whole days), so at 10:00 the ATM call has ~5.5 h left: burn ≈ 1.3 of its premium per day.
    _, gt, log = _scenario("theta_crush", "CE", dte=0.4)
    inside = [st for ts, st in log if _inside(gt, ts) and ts > gt.start_ns]
    assert inside
    for st in inside:
        assert "THETA_CRUSH" in st["trap_types"]
        assert st["can_trade"] is False
    # Theta crush is a property of the contract near expiry, not of the price falling: the same
    # scenario two days out (burn ≈ 0.25/day, DTE 2) flags nothing.
    _, _, log2 = _scenario("theta_crush", "CE", dte=2.0)
    assert all("THETA_CRUSH" not in st["trap_types"] for _, st in log2)


# ---------------------------------------------------------------------------------------------
# A quiet session
# ---------------------------------------------------------------------------------------------

# ATM ± 2 strikes (23 900 … 24 100, CE and PE): the contracts the simulator trades most (activity
# weight ≥ 0.8 of the ATM's), so every 5 s bar has trades and a real baseline, their OI is ~10⁵
# lots (the noise OI drift of a few lots is < 0.01 %), |Δ| is well above 0.1 (no liquidity trap),
# Γ per 1 % is ~0.1 (no noise trap), and two days out the burn is ~0.25/day (no theta crush).
# Further out the simulator trades a strike a few times a minute, where "first activity" and
# ≥ 0.5 % OI moves are routine; the orchestrator weighs those strikes less, and they are not
# what "quiet" is about.
QUIET_SECONDS = 300.0
QUIET_STRIKES = [ATM + k * STEP for k in range(-2, 3)]


@cache
def _quiet() -> tuple[Session, dict[str, tuple[float, str]]]:
    sim = SimConfig(seed=SEED, ticks_per_second=TICKS, days_to_expiry=2.0)
    tokens = {_token(sim, k, side): (k, side) for k in QUIET_STRIKES for side in ("CE", "PE")}
    return run_session(sim, QUIET_SECONDS, track=set(tokens)), tokens


def test_quiet_session_reads_no_buildup_and_no_trap_near_the_money() -> None:
    s, tokens = _quiet()
    assert len(s.contract_log) == len(tokens) * QUIET_SECONDS * NS // BAR_NS
    assert abs(s.book.chains[0].spot - ATM) < STEP  # ATM ± 2 stayed ATM ± 2
    for _, token, st in s.contract_log:
        where = tokens[token]
        assert st["oi_buildup"] == "NONE", where
        assert st["oi_stale"] is False, where
        assert st["fresh_position"] in (None, "ADJUSTMENT"), where
        traps = set(st["trap_types"])  # type: ignore[arg-type]
        assert not traps & {"SCALPER_TRAP", "NOISE_TRAP", "THETA_CRUSH", "LIQUIDITY_TRAP"}, where
    assert {x.recommendation for x in s.every_bar} == {"NEUTRAL"}


def test_quiet_session_has_no_reversal_trap_near_the_money() -> None:
    s, tokens = _quiet()
    hits = [(ts, tokens[tok]) for ts, tok, st in s.contract_log if st["trap_types"]]
    assert hits == []


def test_quiet_session_blocks_no_contract_near_the_money() -> None:
    s, tokens = _quiet()
    blocked = [(ts, tokens[tok]) for ts, tok, st in s.contract_log if not st["can_trade"]]
    assert blocked == []
