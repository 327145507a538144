"""Precision and recall of the smart-money detectors, per detector and OI shape, over seeds.

Each session is 21 simulated minutes of the NIFTY chain (200 packets/s, two days to expiry) with
17 scenarios, each 120 s long on a contract of its own, from the fifth minute on (the detectors
learn each contract's noise first): every build-up kind at every strength
grade (weak / moderate / strong: 4 / 8 / 16 % of the contract's OI over the window, with a 5 / 10 /
20 % premium move and 2.25 / 3 / 4.5× volume), a fresh position at every grade (11 / 14 / 20 %
of OI in its first 10 s) and two scalper traps far out. Onsets are drawn in 55 s slots and
strikes within ± 6 of ATM, per seed, so each seed is a different arrangement. Every plan runs on
both OI shapes (``support.scoring.SHAPES``): OI moving with each trade, and OI published in
lumps every 30-90 s. Scoring (episodes, truth windows, the quiet rate) is in
``support.scoring``.

The full table is printed (``pytest -n 0 -s`` or ``-rP`` shows it); ``FLOORS`` holds what each
detector must at least reach on each shape, set below the measured values with room for seed
noise (see README, "Precision and recall").
"""

from __future__ import annotations

from functools import cache

import pytest
from support.scoring import ATM, BUILDUPS, SHAPES, STEP, Score, run_scored, table

from smartflow.config import ScenarioConfig


SEEDS = (3, 5, 11)
SECONDS = 1260.0
FIRST_S = 240.0  # the detectors learn each contract's noise over its first minutes
SLOT_S = 55.0

# (kind, grade, side), one per onset slot.
_SPECS: list[tuple[str, str, str]] = [
    ("long_build_up", "strong", "CE"),
    ("short_build_up", "strong", "PE"),
    ("short_covering", "strong", "CE"),
    ("long_unwinding", "strong", "PE"),
    ("fresh_position", "strong", "CE"),
    ("long_build_up", "weak", "PE"),
    ("short_build_up", "weak", "CE"),
    ("short_covering", "weak", "PE"),
    ("long_unwinding", "weak", "CE"),
    ("fresh_position", "weak", "PE"),
    ("long_build_up", "moderate", "CE"),
    ("short_build_up", "moderate", "PE"),
    ("short_covering", "moderate", "CE"),
    ("long_unwinding", "moderate", "PE"),
    ("fresh_position", "moderate", "CE"),
]


def plan() -> list[ScenarioConfig]:
    """The 17 scenarios of every session; onset and strike are drawn per seed."""
    out = [
        ScenarioConfig(
            kind=kind,  # type: ignore[arg-type]
            start_s=[FIRST_S + i * SLOT_S, FIRST_S + i * SLOT_S + 30],
            duration_s=120,
            strike_offset=[-6, 6],
            side=side,  # type: ignore[arg-type]
            strength=grade,  # type: ignore[arg-type]
        )
        for i, (kind, grade, side) in enumerate(_SPECS)
    ]
    out.append(ScenarioConfig(kind="scalper_trap", start_s=[300, 500], strike_offset=[12, 16]))
    out.append(
        ScenarioConfig(
            kind="scalper_trap", start_s=[800, 1000], strike_offset=[-16, -12], side="PE"
        )
    )
    return out


# (detector, shape) → (recall floor, precision floor). Measured values and how they were set:
# README "Precision and recall".
FLOORS: dict[tuple[str, str], tuple[float, float]] = {
    **{(label, shape): (0.75, 0.25) for label in BUILDUPS for shape in SHAPES},
    **{("AGGRESSIVE_ENTRY", shape): (0.85, 0.9) for shape in SHAPES},
    **{("SCALPER_TRAP", shape): (1.0, 0.9) for shape in SHAPES},
}
# Shape → the largest share of quiet near-ATM snapshots carrying a build-up class (the goal).
QUIET_MAX = {"per_trade": 0.02, "periodic": 0.02}


@cache
def scores(shape: str) -> Score:
    """Every seed's session of ``shape``, scored together."""
    total = Score()
    for seed in SEEDS:
        s = run_scored(shape, seed, plan(), SECONDS, total)
        truths = s.market.ground_truth
        assert len(truths) == len(plan())
        assert len({g.token for g in truths}) == len(truths)  # one contract per scenario
        # The voting zone is fixed by strike: the index stayed within two strikes of its start.
        assert abs(s.book.chains[0].spot - ATM) < 2 * STEP
    return total


@pytest.mark.slow
def test_precision_and_recall_floors_per_detector_and_shape() -> None:
    all_scores = {shape: scores(shape) for shape in SHAPES}
    print(table(f"precision / recall — seeds {SEEDS}, {SECONDS / 60:.0f} min each", all_scores))
    for shape, sc in all_scores.items():
        for fp in [f for t in sc.tallies.values() for f in t.fps]:
            print(f"  false positive ({shape}): {fp}")
    for (label, shape), (recall, precision) in FLOORS.items():
        t = all_scores[shape].tallies[label]
        assert t.recall() >= recall, (label, shape, t.count(), dict(t.found))
        assert t.precision >= precision, (label, shape, t.tp, t.fp, t.fps)
    for shape, sc in all_scores.items():
        assert sc.quiet_rate <= QUIET_MAX[shape], (shape, sc.quiet_classed, sc.quiet_snapshots)
