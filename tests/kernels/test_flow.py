"""Order-flow kernels against reference/flow.md golden series, TA-Lib, pure-Python references."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
import talib
from hypothesis import given, settings, strategies as st

from smartflow.analytics import flow as decisions
from smartflow.kernels import flow, flow_series


SETTINGS = settings(max_examples=100, deadline=None)
NAN = math.nan
TICK = 0.05

unit = st.floats(-1.0, 1.0, allow_nan=False)
qty = st.floats(0.0, 1e6, allow_nan=False)
pos_qty = st.floats(1.0, 1e6, allow_nan=False)
ticks = st.integers(1, 4000)  # prices as integer multiples of the 0.05 tick (≤ ₹200)


def _px(t: int) -> float:
    return t * 5 / 100  # the paise → rupees conversion the daemon does


# ---------------------------------------------------------------------------------------------
# OBV
# ---------------------------------------------------------------------------------------------

OBV_CLOSE = np.array([10, 10.5, 10.2, 10.2, 10.8, 11.0, 10.9])
OBV_VOL = np.array([100, 200, 150, 120, 300, 250, 400], dtype=np.float64)
OBV_GOLDEN = np.array([100, 300, 150, 150, 450, 700, 300], dtype=np.float64)


def test_obv_golden_exact() -> None:
    out = np.empty(7)
    assert flow_series.obv_series(OBV_CLOSE, OBV_VOL, out) == 7
    np.testing.assert_array_equal(out, OBV_GOLDEN)
    np.testing.assert_array_equal(out, talib.OBV(OBV_CLOSE, OBV_VOL))


def test_obv_step_matches_series() -> None:
    obv, prev, got = 0.0, NAN, []
    for i in range(7):
        obv = flow.obv_step(obv, prev, OBV_CLOSE[i], OBV_VOL[i], i == 0)
        prev = OBV_CLOSE[i]
        got.append(obv)
    np.testing.assert_array_equal(got, OBV_GOLDEN)


def test_obv_matches_talib_random_5000() -> None:
    rng = np.random.default_rng(7)
    # Prices on the 0.05 tick so that equal closes (unchanged OBV) occur often.
    close = np.round(np.cumsum(rng.integers(-2, 3, 5000)) + 4000.0) * 5 / 100
    vol = rng.integers(1, 10_000, 5000).astype(np.float64) * 75
    out = np.empty(5000)
    flow_series.obv_series(close, vol, out)
    assert np.max(np.abs(out - talib.OBV(close, vol))) == 0.0


@pytest.mark.parametrize(
    ("close_nans", "vol_nans"),
    [
        ([0, 1], []),  # leading NaN closes: seed at the first valid bar
        ([], [0]),  # leading NaN volume
        ([3], []),  # mid NaN close: unchanged, and blocks the next comparison
        ([], [5]),  # NaN volume on a moving bar poisons everything after
        ([], [3]),  # NaN volume on an unchanged bar (10.2 → 10.2) does not
        ([3, 4], [2]),  # mixed
    ],
)
def test_obv_nan_handling_matches_talib(close_nans: list[int], vol_nans: list[int]) -> None:
    c, v = OBV_CLOSE.copy(), OBV_VOL.copy()
    c[close_nans] = NAN
    v[vol_nans] = NAN
    out = np.empty(7)
    flow_series.obv_series(c, v, out)
    np.testing.assert_array_equal(out, talib.OBV(c, v))


def test_obv_all_nan_is_all_nan() -> None:
    # talib.OBV's wrapper seeds at the last bar when no bar is valid; we return all NaN.
    out = np.empty(7)
    flow_series.obv_series(np.full(7, NAN), OBV_VOL, out)
    assert np.isnan(out).all()
    flow_series.obv_series(OBV_CLOSE, np.full(7, NAN), out)
    assert np.isnan(out).all()
    assert flow_series.obv_series(OBV_CLOSE[:0], OBV_VOL[:0], out[:0]) == 0


def test_obv_nan_cases_by_hand() -> None:
    c = OBV_CLOSE.copy()
    c[3] = NAN
    out = np.empty(7)
    flow_series.obv_series(c, OBV_VOL, out)
    # bar 3 NaN → unchanged 150; bar 4 compares with NaN → unchanged 150; then +250, −400
    np.testing.assert_array_equal(out, [100, 300, 150, 150, 150, 400, 0])
    v = OBV_VOL.copy()
    v[5] = NAN
    flow_series.obv_series(OBV_CLOSE, v, out)
    np.testing.assert_array_equal(out[:5], OBV_GOLDEN[:5])
    assert np.isnan(out[5:]).all()


# ---------------------------------------------------------------------------------------------
# VWAP
# ---------------------------------------------------------------------------------------------


def test_vwap_golden_session_reset() -> None:
    p = np.array([100.0, 101, 102, 50, 52])
    v = np.array([10.0, 20, 10, 5, 15])
    sid = np.array([20250102, 20250102, 20250102, 20250103, 20250103], dtype=np.int64)
    out = np.empty(5)
    assert flow_series.vwap_series(p, v, sid, out) == 5
    np.testing.assert_allclose(out, [100, 100.6667, 101, 50, 51.5], atol=1e-4)


def test_vwap_step_nan_until_volume_and_skips_bad_prints() -> None:
    pv, vs, w = flow.vwap_step(0.0, 0.0, 100.0, 0.0)
    assert (pv, vs) == (0.0, 0.0)
    assert math.isnan(w)
    pv, vs, w = flow.vwap_step(pv, vs, 100.0, 10.0)
    assert w == 100.0
    for bad_p, bad_v in [(NAN, 5.0), (101.0, NAN), (-1.0, 5.0), (101.0, -5.0), (math.inf, 1.0)]:
        assert flow.vwap_step(pv, vs, bad_p, bad_v) == (1000.0, 10.0, 100.0)


def test_vwap_deviation_pct() -> None:
    assert decisions.vwap_deviation_pct(102.0, 100.0) == pytest.approx(2.0)
    assert decisions.vwap_deviation_pct(98.0, 100.0) == pytest.approx(-2.0)
    for bad in (NAN, 0.0, -5.0, math.inf):
        assert math.isnan(decisions.vwap_deviation_pct(100.0, bad))


# ---------------------------------------------------------------------------------------------
# trade classification and CVD
# ---------------------------------------------------------------------------------------------

# Trades of the golden: the fifth (100.00 after 100.05) is a downtick but its prevailing quote is
# 99.90/100.00, so it is a buy by Lee-Ready (at the ask) and a sell by the tick rule. The fourth
# trade (100.05) sits exactly at its prevailing mid (100.00/100.10), so LR falls back to the tick
# rule there. The first trade has neither a previous price nor a quote: sign 0.
CVD_PRICE = np.array([100.00, 100.05, 100.10, 100.05, 100.00, 100.05])
CVD_VOL = np.array([10.0, 20, 5, 15, 10, 30])
CVD_PREV_BID = np.array([NAN, 99.95, 100.00, 100.00, 99.90, 99.95])
CVD_PREV_ASK = np.array([NAN, 100.05, 100.10, 100.10, 100.00, 100.05])


def _cvd(price, vol, bid, ask):
    n = len(price)
    out, sign = np.empty(n), np.empty(n, dtype=np.int64)
    assert flow_series.cvd_series(price, vol, bid, ask, out, sign) == n
    return out, sign


def test_cvd_golden_tick_rule() -> None:
    none = np.full(6, NAN)
    out, sign = _cvd(CVD_PRICE, CVD_VOL, none, none)
    np.testing.assert_array_equal(out, [0, 20, 25, 10, 0, 30])
    np.testing.assert_array_equal(sign, [0, 1, 1, -1, -1, 1])


def test_cvd_golden_lee_ready() -> None:
    out, sign = _cvd(CVD_PRICE, CVD_VOL, CVD_PREV_BID, CVD_PREV_ASK)
    np.testing.assert_array_equal(out, [0, 20, 25, 10, 20, 50])
    np.testing.assert_array_equal(sign, [0, 1, 1, -1, 1, 1])


def test_classify_trade_cases() -> None:
    # golden trade: at the ask of 99.90/100.00, a downtick from 100.05
    assert flow.classify_trade(100.00, 99.90, 100.00, 100.05, 1) == (1, 1)
    assert flow.classify_trade(99.90, 99.90, 100.00, 99.80, 1) == (-1, 1)  # at bid, uptick
    assert flow.classify_trade(100.10, 99.90, 100.00, 100.20, -1) == (1, 1)  # outside the ask
    assert flow.classify_trade(99.80, 99.90, 100.00, 99.0, 1) == (-1, 1)  # outside the bid
    assert flow.classify_trade(99.97, 99.90, 100.00, 99.0, -1) == (1, 1)  # inside, above mid
    # at mid (99.95): tick rule, not confident
    assert flow.classify_trade(99.95, 99.90, 100.00, 99.90, -1) == (1, 0)  # uptick
    assert flow.classify_trade(99.95, 99.90, 100.00, 100.00, 1) == (-1, 0)  # downtick
    assert flow.classify_trade(99.95, 99.90, 100.00, 99.95, -1) == (-1, 0)  # zero tick keeps
    assert flow.classify_trade(99.95, 99.90, 100.00, 99.95, 1) == (1, 0)
    assert flow.classify_trade(99.95, 99.90, 100.00, NAN, 1) == (0, 0)  # no previous price
    # mid computed from paise-converted prices compares equal despite binary rounding
    assert flow.classify_trade(_px(2001), _px(2000), _px(2002), _px(2001), 1) == (1, 0)


def test_classify_trade_no_valid_quote_uses_tick_rule() -> None:
    for bid, ask in [(NAN, NAN), (0.0, 100.0), (99.0, 0.0), (100.1, 100.0), (NAN, 100.0)]:
        assert flow.classify_trade(100.0, bid, ask, 99.95, -1) == (1, 0)
        assert flow.classify_trade(100.0, bid, ask, 100.05, 1) == (-1, 0)
        assert flow.classify_trade(100.0, bid, ask, 100.0, -1) == (-1, 0)
        assert flow.classify_trade(100.0, bid, ask, NAN, 1) == (0, 0)
    assert flow.classify_trade(NAN, 99.0, 101.0, 100.0, 1) == (0, 0)


def test_cvd_at_mid_uses_tick_test_sign_and_no_trade_snapshots_are_inert() -> None:
    # 100.00 first; 100.05 uptick (+); 100.00 at the ask of 99.90/100.00 → LR buy although the
    # tick test says −; a quote-only snapshot (volume 0); then 100.00 at the mid of 99.95/100.05
    # with a zero tick → the tick-test sign (−), not the previous LR sign (+).
    price = np.array([100.00, 100.05, 100.00, 100.00, 100.00])
    vol = np.array([10.0, 20, 10, 0, 5])
    bid = np.array([NAN, 99.95, 99.90, 99.90, 99.95])
    ask = np.array([NAN, 100.10, 100.00, 100.00, 100.05])
    out, sign = _cvd(price, vol, bid, ask)
    np.testing.assert_array_equal(sign, [0, 1, 1, 0, -1])
    np.testing.assert_array_equal(out, [0, 20, 30, 30, 25])


def _cvd_reference(price, vol, bid, ask):
    """Slow pure-Python Lee-Ready with the tick test as the at-mid fallback (integer ticks)."""
    cvd, last, tick_sign, out = 0, None, 0, []
    for p, v, b, a in zip(price, vol, bid, ask, strict=True):
        if v <= 0:
            out.append(cvd)
            continue
        if last is None:
            t = 0
        elif p != last:
            t = 1 if p > last else -1
        else:
            t = tick_sign
        s = t
        if b is not None and a is not None and b <= a and 2 * p != a + b:
            s = 1 if 2 * p > a + b else -1
        cvd += s * v
        out.append(cvd)
        last, tick_sign = p, t
    return out


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.integers(1990, 2010),
            st.integers(0, 50),
            st.one_of(st.none(), st.tuples(st.integers(1985, 2010), st.integers(0, 4))),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_cvd_matches_reference(rows: list[tuple[int, int, tuple[int, int] | None]]) -> None:
    price = [r[0] for r in rows]
    vol = [r[1] for r in rows]
    bid = [None if r[2] is None else r[2][0] for r in rows]
    ask = [None if r[2] is None else r[2][0] + r[2][1] for r in rows]
    want = _cvd_reference(price, vol, bid, ask)
    got, _ = _cvd(
        np.array([_px(p) for p in price]),
        np.array(vol, dtype=np.float64),
        np.array([NAN if b is None else _px(b) for b in bid]),
        np.array([NAN if a is None else _px(a) for a in ask]),
    )
    np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------------------------------------
# OFI
# ---------------------------------------------------------------------------------------------

OFI_BID = np.array([100.00, 100.00, 100.05, 100.00, 100.00])
OFI_BQ = np.array([50.0, 70, 30, 80, 60])
OFI_ASK = np.array([100.05, 100.05, 100.10, 100.05, 100.05])
OFI_AQ = np.array([40.0, 40, 60, 25, 25])


def test_ofi_golden() -> None:
    e = np.empty(5)
    assert flow_series.ofi_series(OFI_BID, OFI_BQ, OFI_ASK, OFI_AQ, e) == 5
    np.testing.assert_array_equal(e, [0, 20, 70, -55, -20])
    assert e.sum() == 15
    for i in range(1, 5):
        args = (OFI_BID[i], OFI_BQ[i], OFI_ASK[i], OFI_AQ[i])
        prev = (OFI_BID[i - 1], OFI_BQ[i - 1], OFI_ASK[i - 1], OFI_AQ[i - 1])
        assert flow.ofi_step(*args, *prev) == e[i]


def test_ofi_empty_sides() -> None:
    # ask side empties: the previous ask quantity is removed → +40 (buying pressure)
    assert flow.ofi_step(100.0, 50.0, 0.0, 0.0, 100.0, 50.0, 100.05, 40.0) == 40.0
    # bid side appears: +30
    assert flow.ofi_step(99.95, 30.0, 100.05, 40.0, 0.0, 0.0, 100.05, 40.0) == 30.0
    # bid side empties: −50; ask appears: −25
    assert flow.ofi_step(NAN, 0.0, 100.05, 25.0, 100.0, 50.0, 0.0, 0.0) == -75.0
    # both empty before and after
    assert flow.ofi_step(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0) == 0.0


def _lvl(bp: int, bq: float, ap: int, aq: float) -> tuple[float, float, float, float]:
    return _px(bp), bq, _px(ap), aq


level = st.tuples(ticks, qty, ticks, qty)


@SETTINGS
@given(level, level)
def test_ofi_multilevel_reduces_to_single_level(now: tuple, prev: tuple) -> None:
    a, b = _lvl(*now), _lvl(*prev)
    arrs = [np.zeros(5) for _ in range(8)]
    for k, x in enumerate(a + b):
        arrs[k][0] = x
    out = np.full(5, NAN)
    total = flow.ofi_multilevel(*arrs, out)
    assert total == flow.ofi_step(*a, *b)
    assert out[0] == total
    np.testing.assert_array_equal(out[1:], 0.0)


@SETTINGS
@given(st.lists(level, min_size=5, max_size=5), st.lists(level, min_size=5, max_size=5))
def test_ofi_multilevel_is_sum_of_levels(now: list, prev: list) -> None:
    a = [_lvl(*x) for x in now]
    b = [_lvl(*x) for x in prev]
    arrs = [np.array([lv[j] for lv in src]) for src in (a, b) for j in range(4)]
    out = np.empty(5)
    total = flow.ofi_multilevel(*arrs, out)
    per = [flow.ofi_step(*a[k], *b[k]) for k in range(5)]
    np.testing.assert_array_equal(out, per)
    assert total == pytest.approx(sum(per))


@SETTINGS
@given(level, level)
def test_ofi_mirror_symmetry(now: tuple, prev: tuple) -> None:
    # Reflect prices about 250 (5000 ticks) and swap sides: bids become asks, e flips sign.
    bp, bq, ap, aq = now
    pbp, pbq, pap, paq = prev
    e = flow.ofi_step(*_lvl(bp, bq, ap, aq), *_lvl(pbp, pbq, pap, paq))
    m = flow.ofi_step(*_lvl(5000 - ap, aq, 5000 - bp, bq), *_lvl(5000 - pap, paq, 5000 - pbp, pbq))
    assert m == pytest.approx(-e, rel=1e-12, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# book pressure
# ---------------------------------------------------------------------------------------------


def test_book_pressure_cases() -> None:
    bq = np.array([10.0, 20, 30, 0, 0])
    aq = np.array([5.0, 5, 0, 0, 0])
    p, d = flow.book_pressure(300.0, 100.0, bq, aq)
    assert p == pytest.approx(0.5)
    assert d == pytest.approx(50 / 70)
    assert flow.book_pressure(0.0, 0.0, np.zeros(5), np.zeros(5)) == (0.0, 0.0)
    assert flow.book_pressure(NAN, 100.0, np.zeros(5), aq) == (-1.0, -1.0)


@SETTINGS
@given(qty, qty, st.lists(qty, min_size=5, max_size=5), st.lists(qty, min_size=5, max_size=5))
def test_book_pressure_bounds_and_antisymmetry(b: float, s: float, bq: list, aq: list) -> None:
    p, d = flow.book_pressure(b, s, np.array(bq), np.array(aq))
    assert -1.0 <= p <= 1.0
    assert -1.0 <= d <= 1.0
    p2, d2 = flow.book_pressure(s, b, np.array(aq), np.array(bq))
    assert (p2, d2) == (-p, -d)


# ---------------------------------------------------------------------------------------------
# walk the book
# ---------------------------------------------------------------------------------------------

ASK5 = np.array([100.05, 100.10, 100.15, 100.20, 100.25])
ASKQ5 = np.array([40.0, 10, 10, 10, 10])


def test_walk_book_hand_cases() -> None:
    assert flow.walk_book_impact(30.0, ASK5, ASKQ5) == (100.05, 0.0, 30.0)
    avg, imp, filled = flow.walk_book_impact(50.0, ASK5, ASKQ5)
    assert avg == pytest.approx((40 * 100.05 + 10 * 100.10) / 50)
    assert imp == pytest.approx(avg - 100.05)
    assert filled == 50.0
    # 100 against 80 visible: the last 20 fill at 100.25 + mean spacing 0.05 = 100.30
    avg, imp, filled = flow.walk_book_impact(100.0, ASK5, ASKQ5)
    vis = 40 * 100.05 + 10 * (100.10 + 100.15 + 100.20 + 100.25)
    assert avg == pytest.approx((vis + 20 * 100.30) / 100)
    assert imp == pytest.approx(avg - 100.05)
    assert filled == 80.0


def test_walk_book_sell_side_and_empty_levels() -> None:
    bids = np.array([100.0, 99.95, 99.90, 0.0, 0.0])
    bq = np.array([10.0, 10, 10, 0, 0])
    avg, imp, filled = flow.walk_book_impact(40.0, bids, bq)
    assert avg == pytest.approx((1000 + 999.5 + 999 + 998.5) / 40)  # remainder at 99.85
    assert imp == pytest.approx(0.075)
    assert filled == 30.0
    assert flow.walk_book_impact(40.0, bids, bq, -1) == (avg, imp, filled)


def test_walk_book_single_level_and_degenerate() -> None:
    px = np.array([50.0, 0, 0, 0, 0])
    q = np.array([10.0, 0, 0, 0, 0])
    assert flow.walk_book_impact(20.0, px, q) == (50.0, 0.0, 10.0)  # side unknown: gap 0
    avg, imp, filled = flow.walk_book_impact(20.0, px, q, 1)  # buy: remainder at 50.05
    assert (avg, filled) == (pytest.approx(50.025), 10.0)
    assert imp == pytest.approx(0.025)
    avg, _, _ = flow.walk_book_impact(20.0, px, q, -1, 0.1)  # sell, tick 0.1: at 49.90
    assert avg == pytest.approx(49.95)
    assert flow.walk_book_impact(0.0, px, q) == (50.0, 0.0, 0.0)
    assert flow.walk_book_impact(NAN, px, q) == (50.0, 0.0, 0.0)
    avg, imp, filled = flow.walk_book_impact(5.0, np.zeros(5), np.zeros(5))
    assert math.isnan(avg)
    assert math.isnan(imp)
    assert filled == 0.0


@SETTINGS
@given(
    st.integers(1, 4000),
    st.lists(st.integers(1, 4), min_size=4, max_size=4),
    st.lists(pos_qty, min_size=5, max_size=5),
    st.floats(0.0, 1e7, allow_nan=False),
    st.floats(0.0, 1e7, allow_nan=False),
)
def test_walk_book_properties(
    best: int, gaps: list[int], q: list[float], q1: float, q2: float
) -> None:
    px = np.array([_px(best + sum(gaps[:k])) for k in range(5)])
    qa = np.array(q)
    lo, hi = sorted((q1, q2))
    a1, i1, f1 = flow.walk_book_impact(lo, px, qa)
    a2, i2, f2 = flow.walk_book_impact(hi, px, qa)
    for a, i, f, want in ((a1, i1, f1, lo), (a2, i2, f2, hi)):
        assert i >= 0.0
        assert 0.0 <= f <= min(want, qa.sum()) * (1 + 1e-12)
        assert px[0] - 1e-9 <= a <= px[4] + (px[4] - px[0]) / 4 + TICK + 1e-9
    assert i2 >= i1 - 1e-9  # impact is non-decreasing in size
    assert f2 >= f1


# ---------------------------------------------------------------------------------------------
# whales and hidden liquidity
# ---------------------------------------------------------------------------------------------


def test_is_whale_cases() -> None:
    assert flow.is_whale(1e7, 1.0, 100.0, 1e7, 3.0)  # value at threshold
    assert not flow.is_whale(9.99e6, 299.0, 100.0, 1e7, 3.0)
    assert flow.is_whale(1.0, 300.0, 100.0, 1e7, 3.0)  # exactly 3x the average volume
    assert not flow.is_whale(1.0, 300.0, 0.0, 1e7, 3.0)  # no average yet: value only
    assert not flow.is_whale(NAN, NAN, NAN, 1e7, 3.0)
    assert not flow.is_whale(0.0, 0.0, 100.0, 0.0, 0.0)  # nothing traded is never a whale


@SETTINGS
@given(qty, qty, qty, st.floats(0, 1e6), st.floats(0, 1e6))
def test_is_whale_monotone(value: float, dvol: float, avg: float, dv: float, dd: float) -> None:
    if flow.is_whale(value, dvol, avg, 1e6, 3.0):
        assert flow.is_whale(value + dv, dvol + dd, avg, 1e6, 3.0)


def test_hidden_liquidity_golden_and_cases() -> None:
    assert flow.hidden_liquidity(40.0, 95.0, True) == 55.0
    assert flow.hidden_liquidity(40.0, 95.0, False) == 0.0
    assert flow.hidden_liquidity(40.0, 30.0, True) == 0.0
    assert flow.hidden_liquidity(NAN, 95.0, True) == 0.0
    assert flow.hidden_liquidity(-5.0, 95.0, True) == 95.0


@SETTINGS
@given(qty, qty, st.booleans())
def test_hidden_liquidity_bounds(displayed: float, traded: float, survived: bool) -> None:
    h = flow.hidden_liquidity(displayed, traded, survived)
    assert 0.0 <= h <= traded
    if not survived:
        assert h == 0.0


# ---------------------------------------------------------------------------------------------
# EWMA
# ---------------------------------------------------------------------------------------------


def test_ewma_step() -> None:
    assert flow.ewma_step(NAN, 5.0, 0.2, True) == 5.0
    assert flow.ewma_step(5.0, 10.0, 0.2, False) == pytest.approx(6.0)
    assert flow.ewma_step(5.0, NAN, 0.2, False) == 5.0
    assert flow.ewma_step(NAN, 7.0, 0.2, False) == 7.0
    assert flow.ewma_step(5.0, 10.0, 1.0, False) == 10.0
    assert flow.ewma_step(5.0, 10.0, 3.0, False) == 10.0
    assert flow.ewma_step(5.0, 10.0, NAN, False) == 5.0


# ---------------------------------------------------------------------------------------------
# urgency, confluence, recommendation, timing
# ---------------------------------------------------------------------------------------------


def test_names() -> None:
    assert flow.URGENCY_NAMES == ("LOW", "MEDIUM", "HIGH", "CRITICAL")
    assert flow.RECOMMENDATION_NAMES == ("HOLD", "CAUTIOUS_EXECUTE", "EXECUTE", "STRONG_EXECUTE")


def test_urgency_cases() -> None:
    assert decisions.execution_urgency(0.0, 0.0, 0.0, 1.0) == flow.URGENCY_LOW
    # 0.4·0.5 + 0.3·0.3 + 0.3·(0.5/2) = 0.365 → MEDIUM
    assert decisions.execution_urgency(0.5, 0.3, 0.5, 1.0) == flow.URGENCY_MEDIUM
    # 0.4 + 0.3·0.5 + 0 = 0.55 → HIGH
    assert decisions.execution_urgency(1.0, 0.5, 0.0, 2.0) == flow.URGENCY_HIGH
    # everything aligned, price 3 % above VWAP (saturates at 2 %) → 1.0 → CRITICAL
    assert decisions.execution_urgency(1.0, 1.0, 3.0, 1.0) == flow.URGENCY_CRITICAL
    # the same with a wide or missing spread is one level lower
    assert decisions.execution_urgency(1.0, 1.0, 3.0, 8.0) == flow.URGENCY_HIGH
    assert decisions.execution_urgency(1.0, 1.0, 3.0, NAN) == flow.URGENCY_HIGH
    # disagreement cancels: strong buy OFI against sell pressure and price below VWAP → LOW
    assert decisions.execution_urgency(1.0, -1.0, -2.0, 1.0) == flow.URGENCY_LOW
    # NaN flow inputs count as 0
    assert decisions.execution_urgency(NAN, NAN, NAN, 1.0) == flow.URGENCY_LOW


@SETTINGS
@given(unit, unit, st.floats(-2.0, 2.0), st.floats(0.0, 20.0), st.floats(0.0, 1.0))
def test_urgency_properties(o: float, p: float, d: float, spread: float, lam: float) -> None:
    u = decisions.execution_urgency(o, p, d, spread)
    assert 0 <= u <= 3
    assert decisions.execution_urgency(-o, -p, -d, spread) == u  # sign symmetry
    assert decisions.execution_urgency(lam * o, lam * p, lam * d, spread) <= u  # weaker flow
    assert decisions.execution_urgency(o, p, d, spread + 10.0) <= u  # wider spread


def test_timing_window() -> None:
    got = [decisions.timing_window_s(u) for u in range(4)]
    assert got == [300.0, 120.0, 60.0, 30.0]
    assert decisions.timing_window_s(-1) == 300.0
    assert decisions.timing_window_s(7) == 30.0


def test_confluence_cases() -> None:
    assert decisions.confluence_score(1.0, 1.0, 1, 1, 1.0) == pytest.approx(1.0)
    assert decisions.confluence_score(1.0, 1.0, 1, -1, 1.0) == pytest.approx(-1.0)
    assert decisions.confluence_score(0.5, 0.5, 0, 1, 0.8) == pytest.approx(0.8 * 0.4)
    assert decisions.confluence_score(1.0, 1.0, 1, 0, 1.0) == 0.0
    assert decisions.confluence_score(1.0, 1.0, 1, 1, 0.0) == 0.0
    assert decisions.confluence_score(NAN, NAN, 0, 1, 1.0) == 0.0


@SETTINGS
@given(unit, unit, st.sampled_from([-1, 0, 1]), st.floats(0.0, 1.0), unit, st.floats(0.0, 1.0))
def test_confluence_properties(
    cvd: float, ofi: float, side: int, strength: float, bump: float, s2: float
) -> None:
    s = decisions.confluence_score(cvd, ofi, side, 1, strength)
    assert -1.0 <= s <= 1.0
    assert decisions.confluence_score(cvd, ofi, side, -1, strength) == -s  # direction flips sign
    assert decisions.confluence_score(-cvd, -ofi, -side, 1, strength) == pytest.approx(-s)
    # more agreeing flow never lowers the score; more strength never lowers |score|
    up = abs(bump)
    assert decisions.confluence_score(min(cvd + up, 1.0), ofi, side, 1, strength) >= s - 1e-12
    assert decisions.confluence_score(cvd, min(ofi + up, 1.0), side, 1, strength) >= s - 1e-12
    lo, hi = sorted((strength, s2))
    assert (
        abs(decisions.confluence_score(cvd, ofi, side, 1, hi))
        >= abs(decisions.confluence_score(cvd, ofi, side, 1, lo)) - 1e-12
    )


def test_recommendation_cases() -> None:
    assert decisions.execution_recommendation(-0.9) == (flow.REC_HOLD, 0.0)
    assert decisions.execution_recommendation(NAN) == (flow.REC_HOLD, 0.0)
    assert decisions.execution_recommendation(0.1) == (flow.REC_HOLD, 0.0)
    assert decisions.execution_recommendation(0.2) == (flow.REC_CAUTIOUS_EXECUTE, 0.5)
    assert decisions.execution_recommendation(0.5) == (flow.REC_EXECUTE, 1.0)
    assert decisions.execution_recommendation(0.6) == (flow.REC_STRONG_EXECUTE, 1.5)
    assert decisions.execution_recommendation(1.0) == (flow.REC_STRONG_EXECUTE, 1.5)


@SETTINGS
@given(unit, unit)
def test_recommendation_monotone(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    c1, m1 = decisions.execution_recommendation(lo)
    c2, m2 = decisions.execution_recommendation(hi)
    assert c1 <= c2
    assert m1 <= m2
    for c, m in ((c1, m1), (c2, m2)):
        assert 0.0 <= m <= 1.5
        assert (c == flow.REC_HOLD) == (m == 0.0)


# ---------------------------------------------------------------------------------------------
# VPIN
# ---------------------------------------------------------------------------------------------

VPIN_IMB = np.array([251.415375, 128.221863, 477.249868, 76.02247, 54.411902, 493.790335])
VPIN_GOLDEN = [0.571258, 0.454329, 0.405123, 0.41615]


def test_vpin_from_imbalances_golden() -> None:
    out = np.empty(6)
    assert flow_series.vpin_from_imbalances(VPIN_IMB, 500.0, 3, out) == 6
    assert np.isnan(out[:2]).all()
    np.testing.assert_allclose(out[2:], VPIN_GOLDEN, atol=1e-6)


def test_vpin_series_reproduces_golden_from_bars() -> None:
    # One 500-lot bar per bucket, ΔP chosen so that |V_S − V_B| is the golden imbalance.
    sigma = 0.2
    nd = NormalDist()
    sgn = [1, -1, 1, 1, -1, 1]
    dp = np.array(
        [sigma * nd.inv_cdf(0.5 + s * imb / 1000) for s, imb in zip(sgn, VPIN_IMB, strict=True)]
    )
    imb, vpin = np.empty(6), np.empty(6)
    assert flow_series.vpin_series(dp, np.full(6, 500.0), sigma, 500.0, 3, imb, vpin) == 6
    np.testing.assert_allclose(imb, VPIN_IMB, atol=1e-6)
    np.testing.assert_allclose(vpin[2:], VPIN_GOLDEN, atol=1e-6)


def test_vpin_series_splits_bars_across_buckets() -> None:
    # Bar 1: 750 all-buy (ΔP ≫ σ), bar 2: 250 all-sell. Bucket 1 = 500 buy → 500;
    # bucket 2 = 250 buy + 250 sell → 0. A zero-volume bar is skipped.
    dp = np.array([100.0, 0.0, -100.0])
    vol = np.array([750.0, 0.0, 250.0])
    imb, vpin = np.empty(4), np.empty(4)
    assert flow_series.vpin_series(dp, vol, 1.0, 500.0, 2, imb, vpin) == 2
    np.testing.assert_allclose(imb[:2], [500.0, 0.0], atol=1e-9)
    assert math.isnan(vpin[0])
    assert vpin[1] == pytest.approx(0.5)
    # σ ≤ 0: no information, every bucket balanced
    assert flow_series.vpin_series(dp, vol, 0.0, 500.0, 2, imb, vpin) == 2
    np.testing.assert_allclose(imb[:2], 0.0, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# bar windows
# ---------------------------------------------------------------------------------------------


def test_window_sums_are_numpys_nansum_bit_for_bit() -> None:
    # The flow views summed the newest-first slots with np.nansum; the kernel must give the same
    # bits (values of every magnitude, NaN gaps, -0.0, every window length, wrap-around heads).
    rng = np.random.default_rng(7)
    ring = 32
    cols = np.array([0, 2, 3], np.int64)
    out = np.zeros(cols.size)
    checked = 0
    for _ in range(400):
        bars = rng.standard_normal((2, 4, ring)) * 10.0 ** rng.integers(-3, 9, (2, 4, ring))
        bars[rng.random(bars.shape) < 0.15] = NAN
        bars[rng.random(bars.shape) < 0.03] = -0.0
        head, n = int(rng.integers(0, ring)), int(rng.integers(1, ring + 1))
        flow.window_sums(bars, 1, cols, head, n, out)
        idx = [(head - k) % ring for k in range(n)]
        for i, col in enumerate(cols):
            want = np.nansum(bars[1, col, idx])
            assert out[i].tobytes() == want.tobytes(), (head, n, col)
            checked += 1
    assert checked == 1200
