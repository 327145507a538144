"""Scoring the detectors against the simulator's ground truth, on both OI shapes.

A session is a seeded simulated market run straight through the analytics
(``support.session``), with every weekly option's per-bar contract states logged. What the
detectors said is turned into *episodes*: a maximal run of consecutive bars in which a contract
carries a label (a build-up class, AGGRESSIVE_ENTRY / FIRST_ENTRY, SCALPER_TRAP). A build-up may
flicker, so one scenario can yield several episodes.

* An episode is *true* when it starts on a scenario's contract between the scenario's onset and
  ``TRUTH_TAIL_S`` after its end, with a class the scenario implies. The tail covers what the
  market still shows afterwards: with periodic OI the window's last lots are published up to a
  period later, and a reading over the detectors' two-minute horizon keeps seeing the change for
  that long. After the window the scenario no longer bends the premium (the index moves it
  either way), so then any class with the scenario's OI direction is that change read again.
* A scenario is *found* when an episode of its own class starts between its onset and three bars
  after its end.
* Precision is scored where the orchestrator listens: strikes within ``ZONE_STRIKES`` of ATM
  for build-ups and fresh entries, the whole chain for scalper traps (those are injected far out,
  and the low OI they leave is never restored, so their truth is open-ended).
* The quiet rate is the share of per-bar snapshots of contracts near ATM (± ``ZONE_STRIKES``)
  that are not a scenario's (or are outside its window and tail) and still carry a build-up
  class. The detector rework aims at ≤ 2 %.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from smartflow.config import ScenarioConfig, SimConfig
from smartflow.sim.market import GroundTruth, Market
from smartflow.sim.server import session_start
from support.session import Session, run_session


NS = 1_000_000_000
BAR_NS = 5 * NS
RECALL_TAIL_NS = 3 * BAR_NS
TRUTH_TAIL_S = 120.0  # [detectors] buildup_horizon_s
ATM = 24_000.0
STEP = 50.0
ZONE_STRIKES = 10  # ± 2 × ce_pe_atm_range: the orchestrator's voting zone
TRACKED_STRIKES = 20  # scalper traps go up to 16 strikes out
BUILDUPS = ["LONG_BUILD_UP", "SHORT_BUILD_UP", "SHORT_COVERING", "LONG_UNWINDING"]
LABELS = [*BUILDUPS, "AGGRESSIVE_ENTRY", "FIRST_ENTRY", "SCALPER_TRAP"]
GRADES = ("weak", "moderate", "strong")

# The two ways open interest reaches the wire (sim/market.py): a step with every trade, or a
# lump every 30-90 s.
SHAPES: dict[str, dict[str, Any]] = {
    "per_trade": {"oi_publish": "per_trade"},
    "periodic": {"oi_publish": "periodic", "oi_period_s": (30.0, 90.0)},
}

PRIMARY = {
    "long_build_up": "LONG_BUILD_UP",
    "short_build_up": "SHORT_BUILD_UP",
    "short_covering": "SHORT_COVERING",
    "long_unwinding": "LONG_UNWINDING",
    "fresh_position": "AGGRESSIVE_ENTRY",
    "scalper_trap": "SCALPER_TRAP",
}
# What else a scenario may rightly be read as: OI opened on heavy volume is a fresh position
# however it arrived (one print or thirty), and a fresh position is an OI-up build-up whose
# premium direction is the index's (the scenario does not bend it).
IMPLIED: dict[str, set[str]] = {kind: {label} for kind, label in PRIMARY.items()}
IMPLIED["long_build_up"].add("AGGRESSIVE_ENTRY")
IMPLIED["short_build_up"].add("AGGRESSIVE_ENTRY")
IMPLIED["fresh_position"] |= {"LONG_BUILD_UP", "SHORT_BUILD_UP"}
OI_UP = {"LONG_BUILD_UP", "SHORT_BUILD_UP"}
OI_DOWN = {"SHORT_COVERING", "LONG_UNWINDING"}
# After the window: the scenario's OI change, whatever the premium does then.
AFTER: dict[str, set[str]] = {
    "long_build_up": OI_UP,
    "short_build_up": OI_UP,
    "fresh_position": OI_UP,
    "short_covering": OI_DOWN,
    "long_unwinding": OI_DOWN,
}

Where = dict[str, tuple[float, str]]  # token → (strike, side)
Episode = tuple[str, str, int]  # (token, label, first bar's end)


def weekly_options(sim: SimConfig) -> Where:
    """Token → (strike, side) of every nearest-weekly option of the simulated NIFTY chain."""
    start_ns, day = session_start("10:00")
    chain = Market(sim, ["NIFTY"], start_ns, day).chains["NIFTY"]
    weekly = min(c.inst.expiry for c in chain.options if c.inst.expiry is not None)
    return {
        c.inst.token: (c.inst.strike, c.inst.kind) for c in chain.options if c.inst.expiry == weekly
    }


def shape_config(shape: str, seed: int, scenarios: list[ScenarioConfig], **kw: Any) -> SimConfig:
    """A simulator config of one OI shape."""
    args: dict[str, Any] = {"ticks_per_second": 200.0, "days_to_expiry": 2.0, **SHAPES[shape]}
    return SimConfig(seed=seed, scenarios=scenarios, **{**args, **kw})


def labels_of(st: dict[str, object]) -> set[str]:
    """The scored labels one per-bar contract state carries."""
    out = set()
    if st["oi_buildup"] != "NONE":
        out.add(str(st["oi_buildup"]))
    if st["fresh_position"] in ("AGGRESSIVE_ENTRY", "FIRST_ENTRY"):
        out.add(str(st["fresh_position"]))
    if "SCALPER_TRAP" in st["trap_types"]:  # type: ignore[operator]
        out.add("SCALPER_TRAP")
    return out


def episodes(s: Session) -> list[Episode]:
    """Every label onset per contract (see the module docs)."""
    series: dict[str, list[tuple[int, set[str]]]] = defaultdict(list)
    for ts, token, st in s.contract_log:
        series[token].append((ts, labels_of(st)))
    out: list[Episode] = []
    for token, bars in series.items():
        prev: set[str] = set()
        for ts, labels in bars:
            out += [(token, label, ts) for label in sorted(labels - prev)]
            prev = labels
    return out


@dataclass
class Tally:
    """One detector's counts over one or more sessions."""

    tp: int = 0
    fp: int = 0
    found: dict[str, list[bool]] = field(default_factory=lambda: defaultdict(list))
    fps: list[str] = field(default_factory=list)
    # False positives on a scenario's contract inside its window + tail (a class confusion) and
    # on contracts no scenario touched then (noise read as a class).
    fp_confused: int = 0
    fp_noise: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    def recall(self, grade: str | None = None) -> float:
        hits = [h for g, hs in self.found.items() if grade in (None, g) for h in hs]
        return sum(hits) / len(hits) if hits else float("nan")

    def count(self, grade: str | None = None) -> str:
        hits = [h for g, hs in self.found.items() if grade in (None, g) for h in hs]
        return f"{sum(hits)}/{len(hits)}" if hits else "-"


@dataclass
class Score:
    """Per-detector tallies and the quiet rate of one shape (summed over sessions)."""

    tallies: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    quiet_snapshots: int = 0
    quiet_classed: int = 0

    @property
    def quiet_rate(self) -> float:
        return self.quiet_classed / self.quiet_snapshots if self.quiet_snapshots else float("nan")


def _truth_window(g: GroundTruth, end_ns: int) -> tuple[int, int]:
    if g.kind == "scalper_trap":
        return g.start_ns, end_ns  # the low OI it injected is never restored
    return g.start_ns, g.end_ns + int(TRUTH_TAIL_S * NS)


def score_session(s: Session, where: Where, seconds: float, into: Score | None = None) -> Score:
    """Add one session's detections to ``into`` (a new ``Score`` when None)."""
    out = into or Score()
    truths = s.market.ground_truth
    end_ns = s.market.start_ns + int(seconds * NS)
    eps = episodes(s)
    for token, label, ts in eps:
        strike, side = where[token]
        if abs(strike - ATM) > ZONE_STRIKES * STEP and label != "SCALPER_TRAP":
            continue
        true = confused = False
        for g in truths:
            lo, hi = _truth_window(g, end_ns)
            if g.token != token or not lo <= ts <= hi:
                continue
            implied = IMPLIED[g.kind] | (AFTER.get(g.kind, set()) if ts > g.end_ns else set())
            true = true or label in implied
            confused = True
        tally = out.tallies[label]
        if true:
            tally.tp += 1
        else:
            tally.fp += 1
            tally.fp_confused += confused
            tally.fp_noise += not confused
            tally.fps.append(f"{label} {strike:g} {side} at {(ts - s.market.start_ns) / NS:.0f} s")
    for g in truths:
        primary = PRIMARY.get(g.kind)
        if primary is None:
            continue
        hit = any(
            tok == g.token and label == primary and g.start_ns <= ts <= g.end_ns + RECALL_TAIL_NS
            for tok, label, ts in eps
        )
        out.tallies[primary].found[g.grade or "custom"].append(hit)
    busy = {g.token: _truth_window(g, end_ns) for g in truths}
    for ts, token, st in s.contract_log:
        strike, _ = where[token]
        if abs(strike - ATM) > ZONE_STRIKES * STEP:
            continue
        window = busy.get(token)
        if window is not None and window[0] <= ts <= window[1]:
            continue
        out.quiet_snapshots += 1
        out.quiet_classed += st["oi_buildup"] != "NONE"
    return out


def run_scored(
    shape: str, seed: int, scenarios: list[ScenarioConfig], seconds: float, into: Score
) -> Session:
    """Run one seeded session of ``shape`` and add its score to ``into``."""
    sim = shape_config(shape, seed, scenarios)
    # What is scored: the zone, and the wings as far as the scalper traps are injected.
    where = {
        t: w for t, w in weekly_options(sim).items() if abs(w[0] - ATM) <= TRACKED_STRIKES * STEP
    }
    s = run_session(sim, seconds, track=set(where))
    score_session(s, where, seconds, into)
    return s


def table(title: str, scores: dict[str, Score], labels: Iterable[str] = LABELS) -> str:
    """The precision / recall table per detector and shape, as printed by the suites."""
    head = f"{'detector':<18}{'shape':<11}{'weak':>7}{'moderate':>10}{'strong':>8}{'recall':>8}"
    head += f"{'TP':>5}{'FP':>5}{'precision':>11}  FP: confused / noise"
    lines = ["", title, head]
    for label in labels:
        for shape, sc in scores.items():
            t = sc.tallies[label]
            if not t.found and not t.tp + t.fp:
                lines.append(f"{label:<18}{shape:<11}{'(no scenario, no episode)':>54}")
                continue
            lines.append(
                f"{label:<18}{shape:<11}{t.count('weak'):>7}{t.count('moderate'):>10}"
                f"{t.count('strong'):>8}{t.recall():>8.2f}{t.tp:>5}{t.fp:>5}{t.precision:>11.2f}"
                f"  {t.fp_confused:>5} / {t.fp_noise}"
            )
    lines.append("FP confused: another class on a scenario's contract in its window + tail;")
    lines.append("FP noise: a class on a contract no scenario touched then.")
    for shape, sc in scores.items():
        lines.append(
            f"quiet contracts ± {ZONE_STRIKES} strikes, {shape}: {sc.quiet_classed} of "
            f"{sc.quiet_snapshots} snapshots carry a build-up class ({100 * sc.quiet_rate:.2f} %)"
        )
    return "\n".join(lines)
