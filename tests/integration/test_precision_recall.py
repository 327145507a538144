"""Precision and recall of the smart-money detectors on a 15-minute seeded session.

22 scenarios — four of each build-up kind, three fresh positions, three scalper traps — at
different strikes, sides and times, each on its own contract, run straight through ``ChainBook`` +
``SmartMoneyDetector``; every weekly option's per-bar states are logged.

Scoring:

* A *detection* is an episode: a maximal run of consecutive bars in which a contract carries a
  label (a build-up class, AGGRESSIVE_ENTRY / FIRST_ENTRY, SCALPER_TRAP). A build-up holds until
  the next OI print and may flicker between prints, so one scenario can yield several episodes.
* It is *true* when it starts on a scenario's contract inside the scenario's window + 3 bars with
  a class the scenario implies: its own class, and for a fresh position (≥ 12 % of OI opened on
  heavy volume) also an OI-up build-up, LONG or SHORT — the scenario does not move the premium,
  the index does, so either direction is the classifier reading it correctly.
* A build-up reading lasts while its OI change is inside the two-minute horizon: in the scored
  table, an episode starting on a scenario's contract within its window + the horizon with the
  injected OI direction (either premium direction) is that scenario read later, not noise.
* Recall: a scenario is found when its own class starts inside its window + 3 bars.
* Precision is scored where the orchestrator listens: the strikes within ± 10 of ATM (2 ×
  ce_pe_atm_range, the voting zone) for build-ups and fresh entries. Further out the simulator
  trades a strike a few times a minute with OI of a few hundred lots, so "first activity" and
  ≥ 0.5 % OI moves happen by themselves; those counts are printed (whole chain) but not scored.
* Scalper traps are scored over the whole chain (the injected ones sit 12-16 strikes out), with
  their truth open-ended: the simulator cuts the contract's OI to 10-40 lots and never restores
  it, so the trap's defining condition (OI < 50 lots) outlives the window and later volume
  bursts on that contract are the same injected trap, not noise. The strict count (window + 3
  bars only) is printed too.

Floors: recall must be 1.0 — every injected scenario is found. Precision must be ≥ 0.75 per
class. Seeds 3, 5 and 11 all score 1.0 on the scored contracts; the one kind of miss seen in
exploratory runs is a first-print class confusion, where the index moves the premium against the
injected push before the scenario's price bend has built up (LONG_UNWINDING read at the first
print of a short-covering window). 0.75 leaves room for one or two such in a class's 6-13
episodes; anything noisier would be a detector firing on quiet contracts near the money.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import pytest
from support.session import Session, run_session

from smartflow.config import ScenarioConfig, SimConfig
from smartflow.sim.market import GroundTruth, Market
from smartflow.sim.server import session_start


SEED = 11
SECONDS = 900.0
NS = 1_000_000_000
GRACE_NS = 3 * 5 * NS
ATM = 24_000.0
ZONE = 10 * 50.0  # ± 2 × ce_pe_atm_range strikes

PLAN: list[tuple[str, float, int, str]] = [
    ("long_build_up", 60, 0, "CE"),
    ("short_build_up", 100, 1, "PE"),
    ("short_covering", 140, -3, "CE"),
    ("long_unwinding", 180, 2, "CE"),
    ("fresh_position", 220, 4, "PE"),
    ("scalper_trap", 250, 12, "CE"),
    ("long_build_up", 280, -2, "PE"),
    ("short_build_up", 320, -1, "CE"),
    ("short_covering", 360, 1, "CE"),
    ("long_unwinding", 400, 0, "PE"),
    ("fresh_position", 440, -4, "CE"),
    ("scalper_trap", 470, -14, "PE"),
    ("long_build_up", 500, 3, "CE"),
    ("short_build_up", 540, 2, "PE"),
    ("short_covering", 580, -3, "PE"),
    ("long_unwinding", 620, -1, "PE"),
    ("fresh_position", 660, 5, "CE"),
    ("scalper_trap", 690, 16, "PE"),
    ("long_build_up", 720, -5, "CE"),
    ("short_build_up", 760, 6, "CE"),
    ("short_covering", 800, 3, "PE"),
    ("long_unwinding", 840, -6, "PE"),
]
PRIMARY = {
    "long_build_up": "LONG_BUILD_UP",
    "short_build_up": "SHORT_BUILD_UP",
    "short_covering": "SHORT_COVERING",
    "long_unwinding": "LONG_UNWINDING",
    "fresh_position": "AGGRESSIVE_ENTRY",
    "scalper_trap": "SCALPER_TRAP",
}
IMPLIED = {kind: {label} for kind, label in PRIMARY.items()}
IMPLIED["fresh_position"] |= {"LONG_BUILD_UP", "SHORT_BUILD_UP"}
# A build-up is read over a two-minute horizon ([detectors] buildup_horizon_s), so its injected
# OI change stays in the reading for up to that long after the window, re-read with whatever the
# premium does then (the simulator drops the scenario's price bend at its end): in the scored
# table, a class with the injected OI direction starting within that horizon is the same event.
HORIZON_NS = 120 * NS
OI_UP = {"LONG_BUILD_UP", "SHORT_BUILD_UP"}
OI_DOWN = {"SHORT_COVERING", "LONG_UNWINDING"}
LINGER = {
    "long_build_up": OI_UP,
    "short_build_up": OI_UP,
    "fresh_position": OI_UP,
    "short_covering": OI_DOWN,
    "long_unwinding": OI_DOWN,
}
SCORED = ["LONG_BUILD_UP", "SHORT_BUILD_UP", "SHORT_COVERING", "LONG_UNWINDING"]
SCORED += ["AGGRESSIVE_ENTRY", "SCALPER_TRAP"]


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fps: list[str] = field(default_factory=list)
    causes: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")


def _labels(st: dict[str, object]) -> set[str]:
    out = set()
    if st["oi_buildup"] != "NONE":
        out.add(str(st["oi_buildup"]))
    if st["fresh_position"] in ("AGGRESSIVE_ENTRY", "FIRST_ENTRY"):
        out.add(str(st["fresh_position"]))
    if "SCALPER_TRAP" in st["trap_types"]:  # type: ignore[operator]
        out.add("SCALPER_TRAP")
    return out


def _true(
    token: str, label: str, ts: int, truths: list[GroundTruth], end_ns: int, strict: bool
) -> bool:
    for g in truths:
        if g.token != token:
            continue
        lingers = label in LINGER.get(g.kind, set())
        if not strict and lingers and g.start_ns <= ts <= g.end_ns + HORIZON_NS:
            return True
        if label not in IMPLIED[g.kind]:
            continue
        end = g.end_ns + GRACE_NS
        if g.kind == "scalper_trap" and not strict:
            end = end_ns  # the low OI it injected is never restored
        if g.start_ns <= ts <= end:
            return True
    return False


Episode = tuple[str, str, int]  # (token, label, first bar's end)
Where = dict[str, tuple[float, str]]  # token → (strike, side)


def _session() -> tuple[Session, Where]:
    sim = SimConfig(
        seed=SEED,
        ticks_per_second=200,
        days_to_expiry=2,
        scenarios=[
            ScenarioConfig(kind=k, start_s=t, duration_s=40, strike_offset=o, side=s)  # type: ignore[arg-type]
            for k, t, o, s in PLAN
        ],
    )
    start_ns, day = session_start("10:00")
    chain = Market(sim, ["NIFTY"], start_ns, day).chains["NIFTY"]
    weekly = min(c.inst.expiry for c in chain.options if c.inst.expiry is not None)
    where = {
        c.inst.token: (c.inst.strike, c.inst.kind) for c in chain.options if c.inst.expiry == weekly
    }
    return run_session(sim, SECONDS, track=set(where)), where


def _episodes(s: Session) -> list[Episode]:
    series: dict[str, list[tuple[int, set[str]]]] = defaultdict(list)
    for ts, token, st in s.contract_log:
        series[token].append((ts, _labels(st)))
    episodes: list[Episode] = []
    for token, bars in series.items():
        prev: set[str] = set()
        for ts, labels in bars:
            episodes += [(token, label, ts) for label in sorted(labels - prev)]
            prev = labels
    return episodes


def _score(
    s: Session, where: Where, episodes: list[Episode]
) -> tuple[dict[str, Score], dict[str, Score]]:
    """(scored, strict) tables; see the module docs."""
    truths = s.market.ground_truth
    end_ns = s.market.start_ns + int(SECONDS * NS)
    scalped = {g.token: g.end_ns + GRACE_NS for g in truths if g.kind == "scalper_trap"}
    scored: dict[str, Score] = defaultdict(Score)
    strict: dict[str, Score] = defaultdict(Score)
    for token, label, ts in episodes:
        strike, side = where[token]
        in_zone = abs(strike - ATM) <= ZONE
        if token in scalped and ts > scalped[token]:
            cause = "aftermath"
        else:
            cause = "zone" if in_zone else "far"
        rel = f"{label} {strike:g} {side} at {(ts - s.market.start_ns) / NS:.0f} s"
        for table, is_strict in ((scored, False), (strict, True)):
            if table is scored and not (in_zone or label == "SCALPER_TRAP"):
                continue
            if _true(token, label, ts, truths, end_ns, is_strict):
                table[label].tp += 1
            else:
                table[label].fp += 1
                table[label].fps.append(rel)
                table[label].causes[cause] += 1
    return scored, strict


def _recall(s: Session, episodes: list[Episode]) -> dict[str, list[bool]]:
    found: dict[str, list[bool]] = defaultdict(list)
    for g in s.market.ground_truth:
        primary = PRIMARY[g.kind]
        hit = any(
            tok == g.token and label == primary and g.start_ns <= ts <= g.end_ns + GRACE_NS
            for tok, label, ts in episodes
        )
        found[primary].append(hit)
    return found


def _table(found: dict[str, list[bool]], scored: dict[str, Score], strict: dict[str, Score]) -> str:
    lines = [
        "",
        f"precision / recall — seed {SEED}, {SECONDS / 60:.0f} min, {len(PLAN)} scenarios",
        f"{'detector':<18}{'found':>8}{'recall':>8}{'TP':>5}{'FP':>5}{'precision':>11}"
        f"  │ {'strict TP/FP':>12}{'precision':>11}  strict FP by cause",
    ]
    for label in [*SCORED, "FIRST_ENTRY"]:
        hits = found.get(label, [])
        recall = sum(hits) / len(hits) if hits else float("nan")
        sc, st = scored[label], strict[label]
        causes = ", ".join(f"{k} {v}" for k, v in sorted(st.causes.items())) or "-"
        lines.append(
            f"{label:<18}{f'{sum(hits)}/{len(hits)}':>8}{recall:>8.2f}{sc.tp:>5}{sc.fp:>5}"
            f"{sc.precision:>11.2f}  │ {f'{st.tp}/{st.fp}':>12}{st.precision:>11.2f}  {causes}"
        )
    lines.append("scored: ± 10 strikes of ATM (scalper traps: whole chain, open-ended truth).")
    lines.append("strict: whole chain, window + 3 bars only; FP causes: 'aftermath' = on a")
    lines.append("scalper-trap contract after its window (OI left at 10-40 lots), 'far' = beyond")
    lines.append("± 10 strikes, 'zone' = within them.")
    lines += [f"  false positive (scored): {fp}" for label in SCORED for fp in scored[label].fps]
    return "\n".join(lines)


@pytest.mark.slow
def test_precision_and_recall_per_detector() -> None:
    s, where = _session()
    truths = s.market.ground_truth
    assert len(truths) == len(PLAN)
    assert len({g.token for g in truths}) == len(PLAN)  # one contract per scenario
    # The voting zone is fixed by strike: the index stayed within a strike of where it began.
    assert abs(s.book.chains[0].spot - ATM) < 50
    episodes = _episodes(s)
    scored, strict = _score(s, where, episodes)
    found = _recall(s, episodes)
    print(_table(found, scored, strict))
    for label in SCORED:
        assert all(found[label]), (label, found[label])
        assert scored[label].tp > 0
        assert scored[label].precision >= 0.75, (label, scored[label])
    # Nothing near the money looks like a first entry: liquid contracts never fall silent.
    assert scored["FIRST_ENTRY"].tp + scored["FIRST_ENTRY"].fp == 0
