"""The simulator's two OI shapes, graded scenario strengths and per-seed scenario draws.

Packets are read back with the official SDK's parser (``sdk_oracle``), not ours.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise
from typing import Any

import pytest
from sdk_oracle import sdk_parse

from smartflow.config import ConfigError, ScenarioConfig, SimConfig, decode
from smartflow.sim.market import Market
from smartflow.sim.server import session_start


NS = 1_000_000_000


class Run:
    """A simulated session's packets, parsed by the SDK on demand per token."""

    def __init__(self, sim: SimConfig, seconds: float) -> None:
        start_ns, day = session_start("10:00")
        self.market = Market(sim, ["NIFTY"], start_ns, day)
        self.frames: dict[str, list[bytes]] = defaultdict(list)
        for k in range(1, int(seconds) + 1):
            for token, frame in self.market.advance(start_ns + k * NS):
                self.frames[token].append(frame)

    def series(self, token: str) -> list[dict[str, Any]]:
        """Every packet of ``token``, parsed by the SDK."""
        return [sdk_parse(f) for f in self.frames[token]]

    def options(self) -> list[str]:
        """Tokens of the options that traded."""
        kinds = {c.inst.token: c.inst.kind for c in self.market.by_token.values()}
        return [t for t in self.frames if kinds.get(t) in ("CE", "PE")]


def test_per_trade_oi_moves_in_lot_steps_on_most_ticks() -> None:
    run = Run(SimConfig(seed=4, oi_publish="per_trade"), 60)
    lot = run.market.chains["NIFTY"].options[0].inst.lot_size
    series = run.series(max(run.options(), key=lambda t: len(run.frames[t])))  # the busiest
    steps = [b["open_interest"] - a["open_interest"] for a, b in pairwise(series)]
    assert len(steps) > 100
    moved = [s for s in steps if s]
    # Each trade opens or closes at most its own quantity, in whole lots...
    assert all(s % lot == 0 for s in moved)
    assert all(abs(s) <= b["last_traded_quantity"] for s, b in zip(steps, series[1:], strict=True))
    # ...and most trades move it (30 % open, 30 % close, the rest change hands).
    assert len(moved) / len(steps) > 0.4


def test_periodic_oi_is_published_within_its_period() -> None:
    run = Run(SimConfig(seed=4, oi_publish="periodic", oi_period_s=(30.0, 90.0)), 400)
    gaps = []
    busiest = sorted(run.options(), key=lambda t: -len(run.frames[t]))[:12]
    for series in map(run.series, busiest):
        changes = [
            b["exchange_timestamp"]
            for a, b in pairwise(series)
            if b["open_interest"] != a["open_interest"]
        ]
        gaps += [(b - a) / 1000 for a, b in pairwise(changes)]
    assert len(gaps) > 40
    # A print is the first trade at or after the scheduled time, so a gap may exceed the
    # period's top by the wait for that trade, never undercut its bottom.
    assert min(gaps) >= 30.0
    assert sorted(gaps)[len(gaps) // 2] <= 90.0


def test_one_seed_makes_the_same_trades_under_both_shapes() -> None:
    def trades(shape: str) -> list[tuple[str, int, int, int]]:
        run = Run(SimConfig(seed=9, oi_publish=shape), 30)  # type: ignore[arg-type]
        return [
            (p["token"], p["exchange_timestamp"], p["last_traded_price"], p["last_traded_quantity"])
            for token in sorted(run.options())
            for p in run.series(token)
        ]

    assert trades("per_trade") == trades("periodic")


def _drawn(seed: int) -> list[tuple[str, str, int, float]]:
    sc = [
        ScenarioConfig(kind="long_build_up", start_s=[10, 50], strike_offset=[-3, 3]),
        ScenarioConfig(kind="short_build_up", start_s=[10, 50], strike_offset=[-3, 3]),
        ScenarioConfig(kind="fresh_position", start_s=30, strike_offset=[-3, 3], side="PE"),
    ]
    market = Run(SimConfig(seed=seed, scenarios=sc, ticks_per_second=50), 60).market
    return [(g.kind, g.token, g.start_ns - market.start_ns, g.strike) for g in market.ground_truth]


def test_scenario_onset_and_strike_are_drawn_per_seed_and_stay_in_range() -> None:
    first = _drawn(1)
    assert first == _drawn(1)  # the same seed draws the same
    assert first != _drawn(2)
    for seed in (1, 2, 3):
        drawn = _drawn(seed)
        assert len(drawn) == 3
        assert len({token for _, token, _, _ in drawn}) == 3  # a contract each
        for kind, _, onset_ns, strike in drawn:
            assert abs(strike - 24_000) <= 3 * 50
            if kind == "fresh_position":
                assert onset_ns == pytest.approx(30 * NS, abs=NS // 100)
            else:
                assert 10 * NS <= onset_ns <= 50 * NS + NS // 100


@pytest.mark.parametrize(
    ("grade", "oi_change"), [("weak", 0.04), ("moderate", 0.08), ("strong", 0.16)]
)
@pytest.mark.parametrize("shape", ["per_trade", "periodic"])
def test_graded_build_up_moves_oi_and_premium_by_its_grade(
    shape: str, grade: str, oi_change: float
) -> None:
    sc = ScenarioConfig(
        kind="long_build_up",
        start_s=60,
        duration_s=120,
        strength=grade,  # type: ignore[arg-type]
    )
    sim = SimConfig(seed=6, scenarios=[sc], oi_publish=shape, oi_period_s=(30, 90))  # type: ignore[arg-type]
    run = Run(sim, 280)
    (gt,) = run.market.ground_truth
    assert gt.grade == grade
    series = run.series(gt.token)
    before = [p for p in series if p["exchange_timestamp"] * 1_000_000 < gt.start_ns]
    after = [p for p in series if p["exchange_timestamp"] * 1_000_000 > gt.end_ns + 90 * NS]
    assert before
    assert after
    oi0, oi1 = before[-1]["open_interest"], after[-1]["open_interest"]
    # The path's change, within the churn on top of it (and what came after the window).
    assert (oi1 - oi0) / oi0 == pytest.approx(oi_change, abs=0.25 * oi_change + 0.005)
    # The premium was bent up by 10 % per unit of strength by the end of the window (the index
    # moves it too, so the bend is read from the model, not the tape).
    value = {"weak": 0.5, "moderate": 1.0, "strong": 2.0}[grade]
    assert run.market.by_token[gt.token].price_factor == pytest.approx(1 + 0.1 * value, abs=0.002)
    # The contract traded at least about its graded multiple of usual volume...
    mult = 1.5 + 1.5 * value
    inside = [p for p in series if gt.start_ns <= p["exchange_timestamp"] * 1_000_000 < gt.end_ns]
    rate_in = (inside[-1]["volume_trade_for_the_day"] - inside[0]["volume_trade_for_the_day"]) / 120
    day_volume = [p["volume_trade_for_the_day"] for p in before]
    rate_out = (day_volume[-1] - day_volume[0]) / 60
    # (more when the path needs blocks to keep up, as the strong grade's 16 % does).
    assert 0.6 * mult <= rate_in / rate_out <= 2 * mult


def test_a_fresh_position_is_put_on_in_its_first_ten_seconds() -> None:
    sc = ScenarioConfig(kind="fresh_position", start_s=20, duration_s=60, strength="strong")
    run = Run(SimConfig(seed=2, scenarios=[sc], oi_publish="per_trade"), 80)
    (gt,) = run.market.ground_truth
    series = run.series(gt.token)
    t = [(p["exchange_timestamp"] * 1_000_000 - gt.start_ns) / NS for p in series]
    oi = [p["open_interest"] for p in series]
    base = [o for o, s in zip(oi, t, strict=True) if s < 0][-1]
    at_front = next(o for o, s in zip(oi, t, strict=True) if 10 <= s < 12)
    # 8 + 6 × 2 = 20 % of the OI, reached by block trades within the first 10 s.
    assert (at_front - base) / base == pytest.approx(0.20, abs=0.03)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[sim]\noi_publish = 'hourly'\n", "key `sim.oi_publish`"),
        ("[sim]\noi_period_s = [90, 30]\n", "oi_period_s: need [low, high]"),
        ("[sim]\noi_period_s = [0, 30]\n", "oi_period_s: need [low, high]"),
        ("[sim]\noi_period_s = [30]\n", "key `sim.oi_period_s`"),
        ("[sim]\noi_lots_atm = 0\n", "key `sim.oi_lots_atm`"),
        ("[[sim.scenarios]]\nkind = 'whale'\nstart_s = [9, 1]\n", "start_s: need"),
        ("[[sim.scenarios]]\nkind = 'whale'\nstart_s = -1\n", "start_s: need"),
        (
            "[[sim.scenarios]]\nkind = 'whale'\nstart_s = 1\nstrike_offset = [2, 1]\n",
            "strike_offset",
        ),
        ("[[sim.scenarios]]\nkind = 'whale'\nstart_s = 1\nstrength = 'huge'\n", "strength"),
        ("[[sim.scenarios]]\nkind = 'whale'\nstart_s = 1\nstrength = 0\n", "strength: need"),
    ],
)
def test_bad_sim_values_name_their_field(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as e:
        decode(text, "x.toml")
    assert str(e.value).startswith("x.toml: ")
    assert fragment in str(e.value)


def test_graded_and_ranged_scenarios_decode() -> None:
    cfg = decode(
        "[sim]\noi_publish = 'per_trade'\noi_period_s = [30, 90]\n"
        "[[sim.scenarios]]\nkind = 'long_build_up'\nstart_s = [60, 120]\n"
        "strike_offset = [-2, 2]\nstrength = 'weak'\n"
    )
    (sc,) = cfg.sim.scenarios
    assert cfg.sim.oi_publish == "per_trade"
    assert cfg.sim.oi_period_s == (30.0, 90.0)
    assert sc.start_s == [60.0, 120.0]
    assert sc.strike_offset == [-2, 2]
    assert sc.strength_value() == 0.5
