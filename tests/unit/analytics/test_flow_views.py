"""FlowAnalyzer views on hand-built chain tables: contract metrics, confluence, flow-scaled sizing.

The chain is the one-strike universe the warm-up uses (index, future, one CE/PE pair). Tests write
the per-tick flow state (``f``), the wire state (``q``) and the bar ring directly, so every number
in the views can be checked by hand against the definitions in analytics/flow.py and
kernels/flow.py. A few tests feed encoded packets through ``ChainBook.process`` instead, to pin
down what a whale alert reports.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import pytest
import structlog

from smartflow.analytics.detectors import SmartMoneyDetector
from smartflow.analytics.flow import Confluence, FlowAnalyzer
from smartflow.chain.state import ChainBook, ChainState, FlowParams
from smartflow.config import DetectorConfig, FlowConfig, ModelConfig, StrategyConfig
from smartflow.core.messages import Quote, SmartMoneySignal
from smartflow.core.timeutil import expiry_ns, ns_at_ist
from smartflow.feed import protocol as p
from smartflow.instruments.master import Instrument
from smartflow.instruments.universe import ChainUniverse
from smartflow.kernels import layout as L
from smartflow.strategy.entries_exits import Contract, Strategy


ROOT = "TEST"
STRIKE_PAISE = 10_000_00
LOT = 50
CE_ROW = L.ROW_FIRST_OPTION
PE_ROW = L.ROW_FIRST_OPTION + 1
T0 = 1_900_000_000 * 1_000_000_000  # a bar boundary for any bar length that divides 10 s


def _universe() -> ChainUniverse:
    expiry = dt.date(2030, 1, 1)
    index = Instrument("1", "IDX", ROOT, "INDEX", "NSE", 1, None, 0, 1, 0)
    fut = Instrument("2", "FUT", ROOT, "FUT", "NFO", 2, expiry, 0, LOT, 10)
    call = Instrument("3", "C", ROOT, "CE", "NFO", 2, expiry, STRIKE_PAISE, LOT, 5)
    put = Instrument("4", "P", ROOT, "PE", "NFO", 2, expiry, STRIKE_PAISE, LOT, 5)
    return ChainUniverse(
        root=ROOT,
        expiry=expiry,
        expiry_ns=expiry_ns(expiry),
        segment="NFO",
        exchange_type=2,
        index=index,
        future=fut,
        strikes_paise=[STRIKE_PAISE],
        calls={STRIKE_PAISE: call},
        puts={STRIKE_PAISE: put},
        lot_size=LOT,
        tick_paise=5,
    )


@dataclass
class Rig:
    chain: ChainState
    book: ChainBook
    det: SmartMoneyDetector
    flow: FlowAnalyzer


def _rig(
    cfg: FlowConfig | None = None,
    detectors: DetectorConfig | None = None,
    whale_multiple: float = 3.0,
) -> Rig:
    dcfg = detectors or DetectorConfig()
    chain = ChainState(
        _universe(),
        ModelConfig(),
        FlowParams(whale_value=dcfg.whale_value_rupees, whale_multiple=whale_multiple),
    )
    book = ChainBook([chain], dcfg)
    det = SmartMoneyDetector(chain, dcfg.thresholds(), dcfg.bar_seconds)
    flow = FlowAnalyzer(book, {ROOT: det}, cfg or FlowConfig())
    book.on_event = flow.on_event  # as the pipeline wires it
    return Rig(chain, book, det, flow)


def _quote(
    c: ChainState,
    row: int,
    ltp: float,
    vwap: float = math.nan,
    bid: float = 0.0,
    ask: float = 0.0,
    bid_qty: int = 500,
    ask_qty: int = 500,
    pressure: float = 0.0,
) -> None:
    """Write a row's wire state (rupees in, paise stored) and its VWAP / book pressure."""
    q, f = c.q[row], c.f[row]
    q[L.Q_TICKS] = 1
    q[L.Q_LTP] = round(ltp * 100)
    q[L.Q_BID_PX] = round(bid * 100)
    q[L.Q_ASK_PX] = round(ask * 100)
    q[L.Q_BID_QTY] = bid_qty
    q[L.Q_ASK_QTY] = ask_qty
    f[L.F_VWAP] = vwap
    f[L.F_PRESSURE] = pressure


def _bars(book: ChainBook, c: ChainState, row: int, **cols: list[float]) -> None:
    """Fill the first k ring slots of ``row`` (oldest first) and mark k bars as closed."""
    k = len(next(iter(cols.values())))
    names = {"volume": L.B_VOLUME, "cvd": L.B_CVD, "ofi": L.B_OFI, "hidden": L.B_HIDDEN}
    for name, values in cols.items():
        assert len(values) == k
        c.bars[row, names[name], :k] = values
    for name, col in names.items():
        if name not in cols:
            c.bars[row, col, :k] = 0.0
    book.bar_seq = k


# ---- contract_metrics ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ltp", "expected_dev", "deviated"),
    [
        (102.00, 2.0, True),  # exactly the seed's 2 % threshold counts
        (101.95, 1.95, False),
        (100.00, 0.0, False),
        (98.05, -1.95, False),
        (98.00, -2.0, True),
        (90.00, -10.0, True),
    ],
)
def test_vwap_deviation_against_the_2pct_threshold(
    ltp: float, expected_dev: float, deviated: bool
) -> None:
    r = _rig()
    _quote(r.chain, CE_ROW, ltp, vwap=100.0, bid=ltp - 0.05, ask=ltp)
    m = r.flow.contract_metrics(r.chain, CE_ROW)
    assert m["vwap"] == 100.0
    assert m["vwap_deviation_pct"] == pytest.approx(expected_dev, abs=1e-9)
    assert m["vwap_deviated"] is deviated


def test_vwap_threshold_comes_from_config() -> None:
    r = _rig(FlowConfig(vwap_deviation_pct=0.5))
    _quote(r.chain, CE_ROW, 100.60, vwap=100.0)
    assert r.flow.contract_metrics(r.chain, CE_ROW)["vwap_deviated"] is True
    _quote(r.chain, CE_ROW, 100.40, vwap=100.0)
    assert r.flow.contract_metrics(r.chain, CE_ROW)["vwap_deviated"] is False


def test_no_trades_yet_means_no_vwap_and_no_deviation() -> None:
    r = _rig()
    _quote(r.chain, CE_ROW, 100.0)  # VWAP NaN: nothing traded since we arrived
    m = r.flow.contract_metrics(r.chain, CE_ROW)
    assert m["vwap"] is None
    assert m["vwap_deviation_pct"] is None
    assert m["vwap_deviated"] is False
    assert m["cvd_confident_share"] is None
    assert m["cvd_recent_share"] is None
    assert m["hidden_share"] is None
    assert m["hidden_recent_share"] == 0.0
    assert m["absorption"] is False


def test_atp_is_reported_in_rupees() -> None:
    r = _rig()
    _quote(r.chain, CE_ROW, 100.0, vwap=100.0)
    r.chain.q[CE_ROW, L.Q_ATP] = 10_012
    assert r.flow.contract_metrics(r.chain, CE_ROW)["atp"] == 100.12
    r.chain.q[CE_ROW, L.Q_ATP] = 0
    assert r.flow.contract_metrics(r.chain, CE_ROW)["atp"] is None


def test_cvd_shares() -> None:
    r = _rig()
    c = r.chain
    _quote(c, CE_ROW, 100.0, vwap=100.0)
    f = c.f[CE_ROW]
    f[L.F_CVD] = 250.0
    f[L.F_CVD_VOL] = 1000.0  # volume signed at all
    f[L.F_CVD_CONF_VOL] = 800.0  # ... of which the lagged quote decided 800
    _bars(r.book, c, CE_ROW, volume=[100.0, 200.0, 300.0], cvd=[50.0, -100.0, 150.0])
    m = r.flow.contract_metrics(c, CE_ROW)
    assert m["cvd"] == 250.0
    assert m["cvd_confident_share"] == 0.8
    assert m["cvd_recent_share"] == round(100 / 600, 4)


def test_recent_window_is_the_last_window_bars() -> None:
    r = _rig(FlowConfig(window_bars=2))
    c = r.chain
    _quote(c, CE_ROW, 100.0, vwap=100.0)
    # Oldest bar (slot 0) is outside a two-bar window.
    _bars(
        r.book,
        c,
        CE_ROW,
        volume=[1000.0, 200.0, 300.0],
        cvd=[-1000.0, -100.0, 150.0],
        hidden=[900.0, 0.0, 100.0],
    )
    m = r.flow.contract_metrics(c, CE_ROW)
    assert m["cvd_recent_share"] == 0.1  # (−100 + 150) / (200 + 300)
    assert m["hidden_recent_share"] == 0.2  # 100 / 500


def test_window_wraps_around_the_ring() -> None:
    r = _rig(FlowConfig(window_bars=3))
    c = r.chain
    _quote(c, CE_ROW, 100.0, vwap=100.0)
    c.bars[CE_ROW, :, :] = 0.0
    # Bars 0..RING+1 have been closed: the newest three sit in slots 1, 0 and RING−1.
    r.book.bar_seq = L.RING + 2
    for slot, vol, cvd in ((1, 100.0, 100.0), (0, 100.0, 100.0), (L.RING - 1, 200.0, -100.0)):
        c.bars[CE_ROW, L.B_VOLUME, slot] = vol
        c.bars[CE_ROW, L.B_CVD, slot] = cvd
    c.bars[CE_ROW, L.B_VOLUME, 2] = 10_000.0  # the oldest bar of the ring: outside the window
    c.bars[CE_ROW, L.B_CVD, 2] = -10_000.0
    assert r.flow.contract_metrics(c, CE_ROW)["cvd_recent_share"] == 0.25  # 100 / 400


def _urgency(r: Rig, ofi_depths: float, pressure: float, ltp: float, spread: float) -> str:
    c = r.chain
    depth = 500.0  # (bid_qty + ask_qty) / 2
    bid = ltp - spread
    _quote(c, CE_ROW, ltp, vwap=100.0, bid=bid, ask=ltp, pressure=pressure)
    window = math.sqrt(r.flow.cfg.window_bars)
    _bars(r.book, c, CE_ROW, volume=[1000.0], ofi=[ofi_depths * depth * window])
    name: str = r.flow.contract_metrics(c, CE_ROW)["urgency"]
    return name


@pytest.mark.parametrize(
    ("ofi_depths", "pressure", "ltp", "spread", "expected"),
    [
        # OFI, book pressure and price-vs-VWAP all bullish, 1-tick spread: score 1.0
        (10.0, 1.0, 102.0, 0.05, "CRITICAL"),
        # all bearish: urgency is about consensus, not direction
        (-10.0, -1.0, 98.0, 0.05, "CRITICAL"),
        # the same consensus across a 10-tick spread: one level lower
        (10.0, 1.0, 102.0, 0.50, "HIGH"),
        # OFI and pressure only: 0.4 + 0.3 = 0.7
        (10.0, 1.0, 100.0, 0.05, "HIGH"),
        # pressure only: 0.3
        (0.0, 1.0, 100.0, 0.05, "MEDIUM"),
        # OFI against pressure: |0.4 − 0.3| = 0.1
        (10.0, -1.0, 100.0, 0.05, "LOW"),
        # no flow at all
        (0.0, 0.0, 100.0, 0.05, "LOW"),
    ],
)
def test_urgency_names(
    ofi_depths: float, pressure: float, ltp: float, spread: float, expected: str
) -> None:
    assert _urgency(_rig(), ofi_depths, pressure, ltp, spread) == expected


def test_urgency_is_lowered_without_a_valid_quote() -> None:
    r = _rig()
    c = r.chain
    _quote(c, CE_ROW, 102.0, vwap=100.0, bid=0.0, ask=0.0, pressure=1.0)
    _bars(r.book, c, CE_ROW, volume=[1000.0], ofi=[1e9])
    assert r.flow.contract_metrics(c, CE_ROW)["urgency"] == "HIGH"


@pytest.mark.parametrize(
    ("hidden", "volume", "absorbing"),
    [
        (300.0, 1000.0, True),
        (250.0, 1000.0, True),  # exactly absorption_hidden_share = 0.25
        (249.0, 1000.0, False),
        (0.0, 1000.0, False),
        (0.0, 0.0, False),  # no recent volume: nothing to absorb
    ],
)
def test_absorption(hidden: float, volume: float, absorbing: bool) -> None:
    r = _rig()
    c = r.chain
    _quote(c, CE_ROW, 100.0, vwap=100.0, bid=99.95, ask=100.0)
    f = c.f[CE_ROW]
    f[L.F_CVD_VOL] = 4000.0
    f[L.F_HIDDEN] = 1000.0
    f[L.F_HIDDEN_BID] = 900.0
    f[L.F_HIDDEN_ASK] = 100.0
    _bars(r.book, c, CE_ROW, volume=[volume], hidden=[hidden])
    m = r.flow.contract_metrics(c, CE_ROW)
    assert m["absorption"] is absorbing
    assert m["hidden_recent_share"] == (round(hidden / volume, 4) if volume else 0.0)
    assert m["hidden_volume"] == 1000.0
    assert m["hidden_bid"] == 900.0
    assert m["hidden_ask"] == 100.0
    assert m["hidden_share"] == 0.25


def test_absorption_threshold_comes_from_config() -> None:
    r = _rig(FlowConfig(absorption_hidden_share=0.5))
    c = r.chain
    _quote(c, CE_ROW, 100.0, vwap=100.0)
    _bars(r.book, c, CE_ROW, volume=[1000.0], hidden=[400.0])
    assert r.flow.contract_metrics(c, CE_ROW)["absorption"] is False
    _bars(r.book, c, CE_ROW, volume=[1000.0], hidden=[500.0])
    assert r.flow.contract_metrics(c, CE_ROW)["absorption"] is True


# ---- confluence ---------------------------------------------------------------------------


def _signal(recommendation: str, probability: float, conviction: float = 0.5) -> SmartMoneySignal:
    return SmartMoneySignal(
        underlying=ROOT,
        ts=T0,
        recommendation=recommendation,  # type: ignore[arg-type]
        oi_conviction_score=conviction,
        volume_aggression_score=0.0,
        smart_money_probability=probability,
        trap_probability=0.0,
        fresh_position_detected=True,
        market_control="BALANCED",
        can_trade=True,
        reason=None,
        strike=STRIKE_PAISE / 100,
        option_type="CE" if recommendation != "BUY_PUT" else "PE",
        token="3" if recommendation != "BUY_PUT" else "4",
        evidence=[],
    )


def _future_flow(r: Rig, cvd_share: float, ofi_depths: float, vwap_side: int) -> None:
    """The near-month future's recent flow: CVD share, OFI in depths, side of its VWAP."""
    c = r.chain
    ltp = 20_000.0 + 10.0 * vwap_side
    _quote(c, L.ROW_FUTURE, ltp, vwap=20_000.0, bid=ltp - 0.1, ask=ltp)
    window = math.sqrt(r.flow.cfg.window_bars)
    _bars(
        r.book,
        c,
        L.ROW_FUTURE,
        volume=[1000.0],
        cvd=[1000.0 * cvd_share],
        ofi=[ofi_depths * 500.0 * window],
    )


def _confluence(r: Rig, signal: SmartMoneySignal | None) -> Confluence:
    r.det.latest = signal
    r.flow.on_bar(T0)
    return r.flow.confluence[ROOT]


def test_agreeing_flow_executes_strong() -> None:
    r = _rig()
    _future_flow(r, cvd_share=0.8, ofi_depths=10.0, vwap_side=+1)
    conf = _confluence(r, _signal("BUY_CALL", 0.9))
    # 0.9 · (0.4·0.8 + 0.4·tanh(10) + 0.2·1) / 1.0
    assert conf.score == pytest.approx(0.9 * (0.32 + 0.4 * math.tanh(10.0) + 0.2), abs=1e-4)
    assert conf.recommendation == "STRONG_EXECUTE"
    assert conf.size_multiplier == 1.5
    assert conf.signal == "BUY_CALL"
    assert conf.ts == T0
    assert conf.inputs == {
        "cvd_recent_share": 0.8,
        "ofi_recent_norm": round(math.tanh(10.0), 4),
        "vwap_side": 1.0,
        "signal_direction": 1.0,
        "signal_strength": 0.9,
    }


def test_bearish_flow_agrees_with_a_put_signal() -> None:
    r = _rig()
    _future_flow(r, cvd_share=-0.8, ofi_depths=-10.0, vwap_side=-1)
    conf = _confluence(r, _signal("BUY_PUT", 0.9))
    assert conf.score > 0.5
    assert conf.recommendation == "STRONG_EXECUTE"
    assert conf.size_multiplier == 1.5


def test_moderately_agreeing_flow_executes() -> None:
    r = _rig()
    _future_flow(r, cvd_share=0.5, ofi_depths=0.0, vwap_side=+1)
    conf = _confluence(r, _signal("BUY_CALL", 0.6))
    assert conf.score == pytest.approx(0.6 * (0.4 * 0.5 + 0.2), abs=1e-4)  # 0.24
    assert conf.recommendation == "EXECUTE"
    assert conf.size_multiplier == 1.0


def test_contradicting_flow_holds() -> None:
    r = _rig()
    _future_flow(r, cvd_share=0.8, ofi_depths=10.0, vwap_side=+1)
    conf = _confluence(r, _signal("BUY_PUT", 0.9))
    assert conf.score < -0.2
    assert conf.recommendation == "HOLD"
    assert conf.size_multiplier == 0.0


def test_neutral_flow_is_cautious_not_a_veto() -> None:
    r = _rig()
    _future_flow(r, cvd_share=0.0, ofi_depths=0.0, vwap_side=0)
    conf = _confluence(r, _signal("BUY_CALL", 0.9))
    assert conf.score == 0.0
    assert conf.recommendation == "CAUTIOUS_EXECUTE"
    assert conf.size_multiplier == 0.5


def test_slightly_contradicting_flow_is_still_cautious() -> None:
    # Score −0.04: inside the default [hold_below, execute_at) = [−0.2, 0.2) band.
    r = _rig()
    _future_flow(r, cvd_share=0.2, ofi_depths=0.0, vwap_side=0)
    conf = _confluence(r, _signal("BUY_PUT", 0.5))
    assert conf.score == pytest.approx(-0.04, abs=1e-4)
    assert conf.recommendation == "CAUTIOUS_EXECUTE"
    assert conf.size_multiplier == 0.5


@pytest.mark.parametrize("signal", [None, "NEUTRAL", "AVOID"])
def test_no_directional_signal_is_neutral(signal: str | None) -> None:
    r = _rig()
    _future_flow(r, cvd_share=0.8, ofi_depths=10.0, vwap_side=+1)
    conf = _confluence(r, _signal(signal, 0.9) if signal else None)
    assert conf.score == 0.0
    assert conf.recommendation == "CAUTIOUS_EXECUTE"
    assert conf.signal == (signal or "NEUTRAL")


def test_thresholds_come_from_config() -> None:
    r = _rig(FlowConfig(hold_below=-0.5, execute_at=0.5, strong_at=0.9))
    _future_flow(r, cvd_share=0.8, ofi_depths=10.0, vwap_side=+1)
    assert _confluence(r, _signal("BUY_CALL", 0.9)).recommendation == "EXECUTE"  # 0.83
    assert _confluence(r, _signal("BUY_PUT", 0.5)).recommendation == "CAUTIOUS_EXECUTE"  # −0.46
    assert _confluence(r, _signal("BUY_PUT", 0.9)).recommendation == "HOLD"  # −0.83


def test_timing_window_follows_the_future_urgency() -> None:
    r = _rig()
    _future_flow(r, cvd_share=0.8, ofi_depths=10.0, vwap_side=+1)
    r.chain.f[L.ROW_FUTURE, L.F_PRESSURE] = 1.0
    conf = _confluence(r, _signal("BUY_CALL", 0.9))
    assert conf.urgency == r.flow.contract_metrics(r.chain, L.ROW_FUTURE)["urgency"]
    windows = {"LOW": 300.0, "MEDIUM": 120.0, "HIGH": 60.0, "CRITICAL": 30.0}
    assert conf.timing_window_s == windows[conf.urgency]
    # 0.4·tanh(10) + 0.3·1 + 0.3·(0.05 % / 2 %) ≈ 0.71 on a 1-tick spread
    assert conf.urgency == "HIGH"


def test_future_flow_carries_the_confluence() -> None:
    r = _rig()
    assert r.flow.future_flow(r.chain) is None  # the future has not ticked
    _future_flow(r, cvd_share=0.8, ofi_depths=10.0, vwap_side=+1)
    conf = _confluence(r, _signal("BUY_CALL", 0.9))
    out = r.flow.future_flow(r.chain)
    assert out is not None
    assert out["token"] == "2"
    assert out["ltp"] == 20_010.0
    assert out["confluence"] == conf.score
    assert out["execution"] == "STRONG_EXECUTE"
    assert out["size_multiplier"] == 1.5
    assert out["cvd_recent_share"] == 0.8


def test_no_future_ticks_means_neutral_confluence() -> None:
    r = _rig()
    conf = _confluence(r, _signal("BUY_CALL", 0.9))
    assert conf.score == 0.0
    assert conf.recommendation == "CAUTIOUS_EXECUTE"


# ---- Strategy.size ------------------------------------------------------------------------


class _Book:
    def net_lots(self, token: str) -> int:
        return 0

    def open_orders(self, token: str | None = None) -> list[Any]:
        return []

    def in_flight(self, token: str) -> bool:
        return False

    def entry_price(self, token: str) -> float:
        return 0.0


class _Quotes:
    def quote(self, token: str) -> Quote | None:
        return None


def _strategy(cfg: StrategyConfig | None = None) -> Strategy:
    return Strategy(
        cfg or StrategyConfig(),
        lambda token: None,
        _Book(),
        _Quotes(),
        lambda intent: True,
        structlog.get_logger(),
    )


@pytest.mark.parametrize(
    ("multiplier", "aggressive", "conviction", "lots"),
    [
        # aggressive: round(2 · (0.5 + 0.5)) = 2 lots before the multiplier
        (None, True, 0.5, 2),  # no confluence yet: unscaled
        (0.0, True, 0.5, 0),  # HOLD skips the trade
        (0.5, True, 0.5, 1),  # CAUTIOUS_EXECUTE halves
        (1.0, True, 0.5, 2),  # EXECUTE
        (1.5, True, 0.5, 3),  # STRONG_EXECUTE adds half
        # normal: round(1 · 0.7) = 1 lot; × 0.5 rounds to 0 but never below one lot
        (0.5, False, 0.2, 1),
        (0.0, False, 0.2, 0),
        (1.5, False, 0.2, 2),
    ],
)
def test_size_applies_the_flow_multiplier(
    multiplier: float | None, aggressive: bool, conviction: float, lots: int
) -> None:
    s = _strategy()
    if multiplier is not None:
        s.set_size_multiplier(ROOT, multiplier)
    sig = _signal("BUY_CALL", 0.9, conviction)
    assert s.size(sig, aggressive, premium=100.0, lot_size=LOT) == lots


def test_size_multiplier_is_per_underlying() -> None:
    s = _strategy()
    s.set_size_multiplier("OTHER", 0.0)
    assert s.size(_signal("BUY_CALL", 0.9), True, premium=100.0, lot_size=LOT) == 2


def test_kelly_and_per_signal_caps_apply_after_the_multiplier() -> None:
    s = _strategy(StrategyConfig(max_lots_per_signal=2))
    s.set_size_multiplier(ROOT, 1.5)
    assert s.size(_signal("BUY_CALL", 0.9), True, premium=100.0, lot_size=LOT) == 2
    s = _strategy()
    s.set_size_multiplier(ROOT, 1.5)
    # Kelly: p = 0.9, b = 10/8 → f* = 0.82; stake 0.25 · 0.82 · 5 lakh = ₹102,500 → 1 lot of
    # ₹75,000 premium.
    assert s.size(_signal("BUY_CALL", 0.9), True, premium=1500.0, lot_size=LOT) == 1


@pytest.mark.parametrize(
    ("recommendation", "cvd_share", "ofi_depths", "vwap_side", "lots"),
    [
        ("BUY_CALL", 0.8, 10.0, +1, 3),  # STRONG_EXECUTE × 1.5
        ("BUY_CALL", 0.0, 0.0, 0, 1),  # neutral flow: CAUTIOUS_EXECUTE × 0.5
        ("BUY_PUT", 0.8, 10.0, +1, 0),  # contradiction: HOLD
    ],
)
def test_confluence_drives_strategy_size(
    recommendation: str, cvd_share: float, ofi_depths: float, vwap_side: int, lots: int
) -> None:
    r = _rig()
    s = _strategy()
    _future_flow(r, cvd_share=cvd_share, ofi_depths=ofi_depths, vwap_side=vwap_side)
    sig = _signal(recommendation, 0.9)
    s.set_size_multiplier(ROOT, _confluence(r, sig).size_multiplier)  # as Trading.on_bar does
    assert s.size(sig, True, premium=100.0, lot_size=LOT) == lots


# ---- whale alerts from packets ------------------------------------------------------------


def _packet(token: str, volume: int, ltp: int, bid: int, ask: int, qty: int = 750) -> bytes:
    """A SNAP_QUOTE packet (paise) with a 5-level book ``qty`` deep at each level."""
    return p.encode(
        {
            "subscription_mode": p.Mode.SNAP_QUOTE,
            "exchange_type": 2,
            "token": token,
            "last_traded_price": ltp,
            "volume_trade_for_the_day": volume,
            "open_interest": 100_000,
            "best_5_buy_data": [
                {"flag": 1, "quantity": qty, "price": bid - 5 * i, "no of orders": 1}
                for i in range(5)
            ],
            "best_5_sell_data": [
                {"flag": 0, "quantity": qty, "price": ask + 5 * i, "no of orders": 1}
                for i in range(5)
            ],
        }
    )


def _warm_contract(r: Rig, packets: int = 8) -> tuple[int, int]:
    """Quiet trading in the CE (one lot per interval at the ask); returns (volume, time)."""
    volume = 10_000
    t = T0
    for _ in range(packets):
        t += 1_000_000
        volume += LOT
        r.book.process([(t, _packet("3", volume, 10_000, 9_995, 10_000))])
    return volume, t


def _whale_rig() -> Rig:
    # ₹5 lakh per interval is a whale; the volume rule is out of the way.
    return _rig(detectors=DetectorConfig(whale_value_rupees=500_000.0), whale_multiple=1e9)


def _whale_then_small(volume: int) -> list[bytes]:
    whale = _packet("3", volume + 100 * LOT, 10_010, 10_005, 10_010)  # 5,000 × ₹100.10
    small = _packet("3", volume + 101 * LOT, 10_005, 10_000, 10_005)  # 50 more at ₹100.05
    return [whale, small]


def _check_whale(r: Rig, whale_ts: int) -> None:
    (alert,) = [w for w in r.flow.whales if w.token == "3"]
    assert alert.ts == whale_ts
    assert alert.quantity == 100 * LOT
    assert alert.price == 100.10
    assert alert.value == pytest.approx(100 * LOT * 100.10)
    assert alert.side == "BUY"  # lifted the ₹100.00 offer and more
    assert alert.option_type == "CE"
    assert alert.strike == STRIKE_PAISE / 100
    # 5,000 walking five ₹100.10… asks of 750 each: 3,750 visible, 1,250 one tick beyond.
    visible = sum(750 * (100.10 + 0.05 * i) for i in range(5))
    avg = (visible + 1250 * (100.10 + 0.05 * 5)) / 5000
    assert alert.impact == pytest.approx(avg - 100.10, abs=0.006)  # reported to the paisa
    m = r.flow.contract_metrics(r.chain, CE_ROW)
    assert m["whale_value_max"] == pytest.approx(100 * LOT * 100.10)


def test_whale_alert_describes_the_print_packet_by_packet() -> None:
    r = _whale_rig()
    volume, t = _warm_contract(r)
    assert not r.flow.whales
    whale, small = _whale_then_small(volume)
    r.book.process([(t + 1_000_000, whale)])
    r.book.process([(t + 2_000_000, small)])
    _check_whale(r, t + 1_000_000)


def test_whale_alert_describes_the_print_within_a_batch() -> None:
    r = _whale_rig()
    volume, t = _warm_contract(r)
    whale, small = _whale_then_small(volume)
    r.book.process([(t + 1_000_000, whale), (t + 2_000_000, small)])
    _check_whale(r, t + 1_000_000)


def test_volume_spike_alert_reports_the_baseline_it_beat() -> None:
    r = _rig(detectors=DetectorConfig(whale_value_rupees=1e12))  # only the volume rule
    volume, t = _warm_contract(r)  # every interval traded one lot: baseline 50
    r.book.process([(t + 1_000_000, _packet("3", volume + 160, 10_000, 9_995, 10_000))])
    (alert,) = r.flow.whales
    assert alert.quantity == 160  # ≥ 3 × 50
    assert alert.quantity >= 3.0 * alert.avg_interval_quantity
    assert alert.avg_interval_quantity == 50.0


def test_quiet_intervals_raise_no_whale() -> None:
    r = _rig()
    _warm_contract(r, packets=20)
    assert not r.flow.whales
    assert np.isclose(r.chain.f[CE_ROW, L.F_EWMA_DVOL], LOT)


@pytest.mark.parametrize("fresh_strength", [0.0, 0.5, 0.8765])
def test_entry_target_widens_with_the_signals_fresh_strength(fresh_strength: float) -> None:
    """target = target % × (1 + the fresh position's strength on the contract bought)."""
    contract = Contract(
        token="3",
        symbol="C",
        exchange="NFO",
        lot_size=LOT,
        underlying=ROOT,
        option_type="CE",
        expiry=dt.date(2030, 1, 1),
    )

    class Quotes:
        def quote(self, token: str) -> Quote | None:
            return Quote(bid=99.5, ask=100.0, ltp=99.8, tick=0.05)

    submitted = []
    s = Strategy(
        StrategyConfig(),
        lambda token: contract if token == "3" else None,
        _Book(),
        Quotes(),
        lambda intent: submitted.append(intent) is None,
        structlog.get_logger(),
    )
    now = ns_at_ist(dt.date(2029, 12, 3), dt.time(10, 0))
    sig = msgspec.structs.replace(_signal("BUY_CALL", 0.9), ts=now, fresh_strength=fresh_strength)
    s.on_signal(sig)
    assert len(submitted) == 1
    assert s.held["3"].target_pct == StrategyConfig().target_pct * (1 + fresh_strength)
