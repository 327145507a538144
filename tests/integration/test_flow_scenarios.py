"""Order-flow analytics on simulated sessions: whale prints, icebergs, CVD, VWAP and OBV.

The simulated market is run straight into ``ChainBook`` + detectors + ``FlowAnalyzer`` (no
sockets), one packet per ``process`` call, stamped with its exchange time: exactly what the daemon
sees when no two packets of a token are conflated. Every packet is also kept, and the checks that
recompute a metric decode them with the official SDK's parser (``sdk_oracle``), not ours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import msgspec
import numpy as np
import pytest
import talib
from sdk_oracle import sdk_parse

from smartflow.analytics.detectors import SmartMoneyDetector
from smartflow.analytics.flow import FlowAnalyzer, WhaleAlert
from smartflow.chain.state import ChainBook, ChainState, FlowParams
from smartflow.config import Config, DetectorConfig, ScenarioConfig, SimConfig
from smartflow.instruments.master import parse
from smartflow.instruments.universe import select
from smartflow.kernels import layout as L
from smartflow.sim.market import GroundTruth, Market
from smartflow.sim.server import session_start


ROOT = "NIFTY"
NS = 1_000_000_000


@dataclass
class BarSample:
    """One contract at one bar close."""

    end_ns: int
    metrics: dict[str, Any]
    close: float
    volume: float
    obv: float
    day_volume: int


@dataclass
class Run:
    market: Market
    book: ChainBook
    chain: ChainState
    flow: FlowAnalyzer
    packets: list[tuple[int, str, bytes]] = field(default_factory=list)
    samples: dict[str, list[BarSample]] = field(default_factory=dict)

    def truth(self) -> GroundTruth:
        (gt,) = self.market.ground_truth
        return gt

    def row(self, token: str) -> int:
        return self.chain.row_by_token[token]

    def metrics(self, token: str) -> dict[str, Any]:
        return self.flow.contract_metrics(self.chain, self.row(token))

    def decoded(self, token: str) -> list[tuple[int, dict[str, Any]]]:
        return [(t, sdk_parse(f)) for t, tok, f in self.packets if tok == token]

    def whales(self, token: str) -> list[WhaleAlert]:
        return [w for w in self.flow.whales if w.token == token]


def simulate(
    sim: SimConfig,
    seconds: float,
    detectors: DetectorConfig | None = None,
    sample: tuple[str, ...] = (),
) -> Run:
    """Run ``seconds`` of the simulated market through the analytics, one packet at a time."""
    cfg = Config(sim=sim, detectors=detectors or DetectorConfig())
    start_ns, day = session_start("10:00")
    market = Market(sim, [ROOT], start_ns, day)
    master = parse(msgspec.json.encode(market.scrip_master()), {ROOT})
    chain = ChainState(
        select(master, ROOT, start_ns),
        cfg.model,
        FlowParams(
            whale_value=cfg.detectors.whale_value_rupees,
            whale_multiple=cfg.detectors.whale_volume_multiple,
        ),
    )
    book = ChainBook([chain], cfg.detectors)
    det = SmartMoneyDetector(chain, cfg.detectors.thresholds(), cfg.detectors.bar_seconds)
    flow = FlowAnalyzer(book, {ROOT: det}, cfg.flow)
    book.on_event = flow.on_event
    run = Run(market, book, chain, flow, samples={t: [] for t in sample})

    def on_bar(end_ns: int, seq: int, _closed_at: int) -> None:
        det.on_bar(end_ns, seq)
        flow.on_bar(end_ns)
        slot = seq % L.RING
        for token, out in run.samples.items():
            row = chain.row_by_token[token]
            out.append(
                BarSample(
                    end_ns,
                    flow.contract_metrics(chain, row),
                    float(chain.bars[row, L.B_CLOSE, slot]),
                    float(chain.bars[row, L.B_VOLUME, slot]),
                    float(chain.f[row, L.F_OBV]),
                    int(chain.q[row, L.Q_VOLUME]),
                )
            )

    book.on_close = on_bar
    end = start_ns + int(seconds * NS)
    t = start_ns
    while t < end:
        t = min(end, t + NS)
        for token, frame in market.advance(t):
            recv_ns = int.from_bytes(frame[35:43], "little") * 1_000_000  # exchange time, ms
            book.process([(recv_ns, frame)])
            run.packets.append((recv_ns, token, frame))
    book.advance_to(end)
    return run


def scenario_contracts(sim: SimConfig) -> tuple[str, str, str]:
    """Tokens of the scenario's contract, of the other option at its strike (a liquid bystander)
    and of the future."""
    start_ns, day = session_start("10:00")
    market = Market(sim, [ROOT], start_ns, day)
    sc = sim.scenarios[0]
    target = market._target(sc, ROOT)
    other = market._target(
        msgspec.structs.replace(sc, side="PE" if sc.side == "CE" else "CE"), ROOT
    )
    return target.inst.token, other.inst.token, market.chains[ROOT].future.inst.token


def _walk(qty: float, levels: list[tuple[float, float]], side: int, tick: float) -> float:
    """Impact (rupees) of ``qty`` walking ``levels`` (price, qty) best first; beyond the visible
    depth the rest fills one mean level-gap (at least a tick) past the last level."""
    levels = [(px, q) for px, q in levels if px > 0 and q > 0]
    best, last = levels[0][0], levels[-1][0]
    left, cost = qty, 0.0
    for px, q in levels:
        take = min(q, left)
        cost += take * px
        left -= take
    if left > 0:
        gap = max(abs(last - best) / (len(levels) - 1) if len(levels) > 1 else 0.0, tick)
        cost += left * (last + side * gap)
    return abs(cost / qty - best)


# ---- whale --------------------------------------------------------------------------------

# The simulator's whale buys ~₹50,000 × strength of premium at the ask (see the default-threshold
# test below): at strength 10, ~₹5 lakh. On a call three strikes out of the money (~₹40) that is
# ~12,000 units, several levels of the visible book, so the impact estimate is not trivially 0;
# an ordinary print there (a handful of 75-lots) is worth a few ₹10,000s, so ₹4 lakh separates
# the whale from the crowd.
WHALE_STRENGTH = 10.0
WHALE_RUPEES = 400_000.0


@pytest.fixture(scope="module")
def whale_run() -> Run:
    sim = SimConfig(
        ticks_per_second=50,
        strikes_each_side=10,
        scenarios=[
            ScenarioConfig(kind="whale", start_s=20, strength=WHALE_STRENGTH, strike_offset=3)
        ],
    )
    return simulate(sim, 60, DetectorConfig(whale_value_rupees=WHALE_RUPEES))


def test_whale_scenario_raises_a_whale_alert(whale_run: Run) -> None:
    gt = whale_run.truth()
    big = [w for w in whale_run.whales(gt.token) if w.value >= WHALE_RUPEES]
    assert big, f"no whale alert of ≥ ₹{WHALE_RUPEES:,.0f} on the scenario contract"
    for w in big:  # ... and only the scenario's print is that big
        assert gt.start_ns <= w.ts < gt.end_ns, w
    alert = big[0]
    assert alert.underlying == ROOT
    assert alert.option_type == gt.side
    assert alert.strike == gt.strike
    assert alert.impact is not None
    assert alert.impact > 0.0  # it walked past the best offer
    assert whale_run.metrics(gt.token)["whale_value_max"] >= alert.value


def test_whale_alert_matches_the_packet(whale_run: Run) -> None:
    """Quantity = Δ day volume, value = quantity × LTP, impact = that size walking the visible
    book on the side the lagged quote says it took — recomputed from SDK-decoded packets."""
    gt = whale_run.truth()
    alert = next(w for w in whale_run.whales(gt.token) if w.value >= WHALE_RUPEES)
    packets = whale_run.decoded(gt.token)
    i = next(k for k, (t, _) in enumerate(packets) if t == alert.ts)
    prev, cur = packets[i - 1][1], packets[i][1]
    qty = cur["volume_trade_for_the_day"] - prev["volume_trade_for_the_day"]
    ltp = cur["last_traded_price"] / 100
    assert alert.quantity == qty
    assert alert.price == ltp
    assert alert.value == pytest.approx(qty * ltp, abs=0.01)
    bid = prev["best_5_buy_data"][0]["price"] / 100
    ask = prev["best_5_sell_data"][0]["price"] / 100
    side = 1 if 2 * ltp > bid + ask else -1  # Lee-Ready against the previous snapshot's quote
    book = cur["best_5_sell_data"] if side > 0 else cur["best_5_buy_data"]
    levels = [(lv["price"] / 100, float(lv["quantity"])) for lv in book]
    assert alert.impact == pytest.approx(_walk(qty, levels, side, 0.05), abs=0.006)


def test_whale_scenario_crosses_the_default_value_threshold() -> None:
    sim = SimConfig(
        ticks_per_second=50,
        strikes_each_side=10,
        scenarios=[ScenarioConfig(kind="whale", start_s=10, strength=1.0)],
    )
    run = simulate(sim, 20)
    gt = run.truth()
    default = DetectorConfig().whale_value_rupees
    assert any(w.value >= default and gt.start_ns <= w.ts < gt.end_ns for w in run.whales(gt.token))


# ---- iceberg ------------------------------------------------------------------------------

ICEBERG = ScenarioConfig(kind="iceberg", start_s=20, duration_s=30, strength=3.0)


@pytest.fixture(scope="module")
def iceberg_run() -> Run:
    # spot_vol = 0 pins the quotes: the simulator's iceberg sits on whatever the model's bid is,
    # so with a moving index its price level (rightly) does not survive from one packet to the
    # next and the survival-based proxy cannot see it; a real iceberg rests at a fixed price.
    sim = SimConfig(ticks_per_second=50, strikes_each_side=10, spot_vol=0.0, scenarios=[ICEBERG])
    target, other, _ = scenario_contracts(sim)
    return simulate(sim, 60, sample=(target, other))


def _hidden_bid_from_packets(run: Run, token: str) -> float:
    """flow.md proxy: a trade at the previous best bid which is still the best bid afterwards
    hides at least (Δ volume − quantity displayed there before)."""
    hidden = 0.0
    packets = run.decoded(token)
    for (_, prev), (_, cur) in pairwise(packets):
        dvol = cur["volume_trade_for_the_day"] - prev["volume_trade_for_the_day"]
        prev_bid = prev["best_5_buy_data"][0]
        if (
            dvol > 0
            and prev_bid["price"] > 0
            and cur["last_traded_price"] == prev_bid["price"]
            and cur["best_5_buy_data"][0]["price"] == prev_bid["price"]
        ):
            hidden += max(0, dvol - prev_bid["quantity"])
    return hidden


def test_iceberg_shows_hidden_liquidity_on_the_bid(iceberg_run: Run) -> None:
    gt = iceberg_run.truth()
    m = iceberg_run.metrics(gt.token)
    assert m["hidden_bid"] > 0
    assert m["hidden_bid"] >= 0.9 * m["hidden_volume"]
    assert m["hidden_bid"] == _hidden_bid_from_packets(iceberg_run, gt.token)
    threshold = iceberg_run.flow.cfg.absorption_hidden_share
    before = [s for s in iceberg_run.samples[gt.token] if s.end_ns <= gt.start_ns]
    during = [s for s in iceberg_run.samples[gt.token] if gt.start_ns < s.end_ns <= gt.end_ns]
    assert before
    assert during
    assert not any(s.metrics["absorption"] for s in before)
    assert any(s.metrics["absorption"] for s in during)
    assert max(s.metrics["hidden_recent_share"] for s in during) >= threshold


def test_a_quiet_liquid_contract_shows_little_hidden_liquidity(iceberg_run: Run) -> None:
    gt = iceberg_run.truth()
    (quiet,) = [t for t in iceberg_run.samples if t != gt.token]
    samples = iceberg_run.samples[quiet]
    assert samples[-1].day_volume > samples[0].day_volume  # it traded all along
    assert all(s.metrics["hidden_recent_share"] <= 0.05 for s in samples)
    assert not any(s.metrics["absorption"] for s in samples)


# ---- CVD ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "sign"), [("long_build_up", 1), ("short_build_up", -1)])
def test_cvd_follows_one_sided_flow(kind: str, sign: int) -> None:
    sim = SimConfig(
        ticks_per_second=50,
        strikes_each_side=10,
        scenarios=[ScenarioConfig(kind=kind, start_s=15, duration_s=30)],  # type: ignore[arg-type]
    )
    target, _, _ = scenario_contracts(sim)
    run = simulate(sim, 50, sample=(target,))
    gt = run.truth()
    samples = run.samples[target]
    start = max((s for s in samples if s.end_ns <= gt.start_ns), key=lambda s: s.end_ns)
    end = min((s for s in samples if s.end_ns >= gt.end_ns), key=lambda s: s.end_ns)
    d_cvd = end.metrics["cvd"] - start.metrics["cvd"]
    d_vol = end.day_volume - start.day_volume
    assert d_vol > 0
    # 75 % of the scenario's prints hit one side: the expected CVD share is ±0.5.
    assert sign * d_cvd / d_vol >= 0.3
    assert sign * end.metrics["cvd_recent_share"] > 0
    # The simulator trades at the bid or the offer, so the lagged quote decides almost always.
    assert end.metrics["cvd_confident_share"] >= 0.9


# ---- VWAP and OBV -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain_run() -> Run:
    sim = SimConfig(
        ticks_per_second=50,
        strikes_each_side=10,
        scenarios=[ScenarioConfig(kind="long_build_up", start_s=20, duration_s=60)],
    )
    return simulate(sim, 90, sample=scenario_contracts(sim))


def _liquid_tokens(run: Run) -> list[str]:
    """The sampled contracts (ATM call and put, future) and a far OTM call."""
    u = run.chain.universe
    return [*run.samples, u.calls[u.strikes_paise[-3]].token]


def test_vwap_is_sum_pv_over_sum_v_of_the_ticks_seen(plain_run: Run) -> None:
    for token in _liquid_tokens(plain_run):
        packets = plain_run.decoded(token)
        assert len(packets) > 5, token
        pv = v = 0.0
        # The first packet only sets the baseline: the day's volume before we arrived is not ours.
        for (_, prev), (_, cur) in pairwise(packets):
            dvol = cur["volume_trade_for_the_day"] - prev["volume_trade_for_the_day"]
            if dvol > 0:
                pv += cur["last_traded_price"] / 100 * dvol
                v += dvol
        vwap = float(plain_run.chain.f[plain_run.row(token), L.F_VWAP])
        assert vwap == pytest.approx(pv / v, rel=1e-12), token
        assert plain_run.metrics(token)["vwap"] == round(pv / v, 2)


def test_vwap_agrees_with_the_exchange_atp(plain_run: Run) -> None:
    """The exchange's ATP is the *day* VWAP: it includes the volume traded before we arrived, so
    the two differ by however far the price has moved since the open. Putting that volume back
    (from the first packet's ATP and volume) must reproduce the last ATP to floor rounding:
    the simulator sends ⌊Σpv/Σv⌋ in paise, so each ATP is within 1 paisa of the true mean,
    which bounds the reconstruction error by 1 + V₀/Vₙ < 2 paise, under half an option tick."""
    for token in _liquid_tokens(plain_run):
        packets = plain_run.decoded(token)
        first, last = packets[0][1], packets[-1][1]
        v0, a0 = first["volume_trade_for_the_day"], first["average_traded_price"]
        vn, an = last["volume_trade_for_the_day"], last["average_traded_price"]
        f = plain_run.chain.f[plain_run.row(token)]
        pv_ours, v_ours = float(f[L.F_VWAP_PV]), float(f[L.F_VWAP_V])
        assert v0 + v_ours == vn, token  # the kernel saw every unit traded since the first packet
        day_vwap_paise = (a0 * v0 + 100 * pv_ours) / vn
        assert abs(an - day_vwap_paise) < 2.0, token
        assert plain_run.metrics(token)["atp"] == an / 100


def test_obv_over_bar_closes_matches_talib(plain_run: Run) -> None:
    for token in plain_run.samples:
        samples = plain_run.samples[token]
        seen = [s for s in samples if math.isfinite(s.close)]
        assert len(seen) >= 15, token
        assert samples.index(seen[0]) == len(samples) - len(seen)  # seen from then on
        close = np.array([s.close for s in seen])
        volume = np.array([s.volume for s in seen])
        expected = talib.OBV(close, volume)
        np.testing.assert_array_equal(np.array([s.obv for s in seen]), expected, err_msg=token)
        assert plain_run.metrics(token)["obv"] == expected[-1]
    # The build-up's target rose on rising volume: OBV ends well above its seed.
    target = plain_run.truth().token
    target_obv = [s.obv for s in plain_run.samples[target] if math.isfinite(s.close)]
    assert target_obv[-1] > target_obv[0]
