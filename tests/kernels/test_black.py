"""Black-76 kernels: textbook values, vollib / QuantLib cross-checks, tail accuracy, properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from smartflow.kernels.black import (
    black_greeks,
    black_greeks_raw,
    black_price,
    erfcx,
    forward_from_spot,
    norm_cdf,
    norm_pdf,
    normalised_black,
    synthetic_forward,
)
from smartflow.kernels.greeks_bench import greeks_rows, price_rows


# --- greeks.md §1.1: textbook values ------------------------------------------------------------
# (case, S, K, T, r, q, sigma, is_call, quantity, published, published_tol, computed)
# Spot cases are BSM: F = S*exp((r - q)T) and S is passed, so delta/gamma/theta are per spot.
# Black-76 cases (b = 0, i.e. q = r) have S = F. Published values are checked to half a unit of
# their last printed digit (5e-5 for Haug's 4-digit values); the 10-digit computed values to 1e-9.
# fmt: off
TEXTBOOK = [
    ("hull-bsm-call", 42, 40, 0.5, 0.10, 0.0, 0.20, True, "price", 4.76, 5e-3, 4.7594223929),
    ("hull-bsm-put", 42, 40, 0.5, 0.10, 0.0, 0.20, False, "price", 0.81, 5e-3, 0.8085993729),
    ("hull-greeks", 49, 50, 0.3846, 0.05, 0.0, 0.20, True, "price", 2.40, 5e-3, 2.4004610870),
    ("hull-greeks", 49, 50, 0.3846, 0.05, 0.0, 0.20, True, "delta", 0.522, 5e-4, 0.5216016340),
    ("hull-greeks", 49, 50, 0.3846, 0.05, 0.0, 0.20, True, "gamma", 0.066, 5e-4, 0.0655453773),
    ("hull-greeks", 49, 50, 0.3846, 0.05, 0.0, 0.20, True, "theta_yr", -4.31, 5e-3, -4.3053899645),
    ("hull-greeks", 49, 50, 0.3846, 0.05, 0.0, 0.20, True, "theta_day", -0.0118, 5e-5, None),
    ("hull-greeks", 49, 50, 0.3846, 0.05, 0.0, 0.20, True, "vega_unit", 12.1, 5e-2, 12.1052427542),
    ("hull-greeks", 49, 50, 0.3846, 0.05, 0.0, 0.20, True, "vega_pt", 0.121, 5e-4, 0.121052427542),
    ("haug-bsm-call", 60, 65, 0.25, 0.08, 0.0, 0.30, True, "price", 2.1334, 5e-5, 2.1333684449),
    ("haug-merton-put", 100, 95, 0.5, 0.10, 0.05, 0.20, False, "price", 2.4648, 5e-5, 2.4647876468),
    ("haug-b76-call", 19, 19, 0.75, 0.10, 0.10, 0.28, True, "price", 1.7011, 5e-5, 1.7010507252),
    ("haug-b76-put", 19, 19, 0.75, 0.10, 0.10, 0.28, False, "price", 1.7011, 5e-5, 1.7010507252),
    ("haug-b0-call", 110, 100, 0.1, 0.10, 0.10, 0.15, True, "price", 9.9413, 5e-5, 9.9412773955),
    ("haug-b0-put", 90, 100, 0.5, 0.10, 0.10, 0.35, False, "price", 14.4452, 5e-5, 14.4451716755),
    ("haug-b0-delta", 105, 100, 0.5, 0.10, 0.10, 0.36, True, "delta", 0.5946, 5e-5, 0.5946286597),
    ("haug-b0-delta", 105, 100, 0.5, 0.10, 0.10, 0.36, False, "delta", -0.3566, 5e-5,
     -0.3566007648),
    ("haug-gamma", 55, 60, 0.75, 0.10, 0.0, 0.30, True, "gamma", 0.0278, 5e-5, 0.0278211605),
    ("haug-vega", 55, 60, 0.75, 0.10, 0.0, 0.30, True, "vega_unit", 18.9358, 5e-5, 18.9357773496),
    ("haug-theta", 430, 405, 1 / 12, 0.07, 0.05, 0.20, False, "theta_yr", -31.1924, 5e-5,
     -31.1923503043),
    ("haug-theta", 430, 405, 1 / 12, 0.07, 0.05, 0.20, False, "theta_day", -0.0855, 5e-5, None),
    ("vollib-doctest", 100, 100, 0.5, 0.01, 0.0, 0.20, True, "price", 5.87602423383, 5e-12,
     5.8760242338),
]
# fmt: on


def _quantities(S, K, T, r, q, sigma, is_call):
    F = forward_from_spot(S, r, q, T)
    price, delta, gamma, theta_yr, vega_unit = black_greeks_raw(F, K, T, sigma, r, S, is_call)
    _, delta2, gamma2, theta_day, vega_pt = black_greeks(F, K, T, sigma, r, S, is_call)
    assert (delta2, gamma2) == (delta, gamma)
    return {
        "price": price,
        "delta": delta,
        "gamma": gamma,
        "theta_yr": theta_yr,
        "theta_day": theta_day,
        "vega_unit": vega_unit,
        "vega_pt": vega_pt,
    }


@pytest.mark.parametrize(
    ("case", "S", "K", "T", "r", "q", "sigma", "is_call", "what", "published", "tol", "computed"),
    TEXTBOOK,
)
def test_textbook_values(case, S, K, T, r, q, sigma, is_call, what, published, tol, computed):
    value = _quantities(float(S), float(K), T, r, q, sigma, is_call)[what]
    assert abs(value - published) <= tol, (case, what, value)
    if computed is not None:
        assert abs(value - computed) <= 1e-9, (case, what, value)


def test_per_day_and_per_point_units():
    q = _quantities(49.0, 50.0, 0.3846, 0.05, 0.0, 0.20, True)
    assert q["theta_day"] == pytest.approx(-4.3053899645 / 365.0, abs=1e-12)
    assert q["vega_pt"] == pytest.approx(12.1052427542 / 100.0, abs=1e-12)
    # Haug's put theta per day as QuantLib's thetaPerDay reports it.
    q = _quantities(430.0, 405.0, 1 / 12, 0.07, 0.05, 0.20, False)
    assert q["theta_day"] == pytest.approx(-31.1923503043 / 365.0, abs=1e-11)


def test_black76_without_spot_is_forward_delta_and_zero_carry_theta():
    F, K, T, r, sigma = 105.0, 100.0, 0.5, 0.10, 0.36
    with_spot = black_greeks_raw(F, K, T, sigma, r, F, True)
    no_spot = black_greeks_raw(F, K, T, sigma, r, np.nan, True)
    zero_spot = black_greeks_raw(F, K, T, sigma, r, 0.0, True)
    assert with_spot == pytest.approx(no_spot, abs=1e-13)
    assert zero_spot == no_spot


# --- scalar helpers -----------------------------------------------------------------------------
def test_norm_cdf_pdf_and_erfcx():
    assert norm_cdf(0.0) == 0.5
    assert norm_cdf(1.96) == pytest.approx(0.9750021048517795, rel=1e-15)
    # Lower tail keeps relative precision (1 - N(30) would be 0). Reference: scipy.special.ndtr.
    assert norm_cdf(-30.0) == pytest.approx(4.906713927147908e-198, rel=1e-13)
    assert norm_pdf(0.0) == pytest.approx(1 / math.sqrt(2 * math.pi), rel=1e-15)
    # Reference values: scipy.special.erfcx.
    erfcx_ref = {
        -5.0: 144009798674.66104,
        -0.3: 1.4537492328427655,
        0.0: 1.0,
        0.2: 0.8090195199015808,
        0.46875: 0.632069689249556,
        1.0: 0.427583576155807,
        3.9: 0.14031418160068973,
        4.1: 0.13383411641865198,
        30.0: 0.018795888861416754,
        1e8: 5.641895835477563e-09,
    }
    for x, expected in erfcx_ref.items():
        assert erfcx(x) == pytest.approx(expected, rel=1e-14), x


def test_forward_helpers():
    assert forward_from_spot(24000.0, 0.065, 0.01, 0.5) == pytest.approx(
        24000.0 * math.exp(0.055 * 0.5), rel=1e-15
    )
    df = math.exp(-0.065 * 0.1)
    F = 24123.0
    c = black_price(F, 24100.0, 0.1, 0.15, df, True)
    p = black_price(F, 24100.0, 0.1, 0.15, df, False)
    assert synthetic_forward(24100.0, c, p, df) == pytest.approx(F, rel=1e-14)


def test_price_edges():
    df = 0.99
    assert black_price(100.0, 90.0, 0.0, 0.2, df, True) == pytest.approx(df * 10.0)
    assert black_price(100.0, 90.0, 0.5, 0.0, df, False) == 0.0
    assert math.isnan(black_price(-1.0, 90.0, 0.5, 0.2, df, True))
    assert math.isnan(black_price(100.0, np.nan, 0.5, 0.2, df, True))
    assert math.isnan(black_price(100.0, 90.0, np.nan, 0.2, df, True))
    price, *greeks = black_greeks_raw(100.0, 90.0, 0.0, 0.2, 0.05, 100.0, True)
    assert price == pytest.approx(10.0)
    assert all(math.isnan(g) for g in greeks)


# --- tail accuracy vs vollib's LetsBeRational Black ---------------------------------------------
def test_deep_otm_prices_keep_relative_precision():
    from vollib.black import black as vollib_black

    F, r = 24000.0, 0.065
    checked = 0
    for K in (24500.0, 26000.0, 30000.0, 36000.0, 12000.0, 18000.0, 23000.0):
        for minutes in (1, 5, 60, 1440, 10080, 525600):
            T = minutes / 525600.0
            for sigma in (0.05, 0.1, 0.3, 0.8, 1.2):
                is_call = K > F
                flag = "c" if is_call else "p"
                ref = vollib_black(flag, F, K, T, r, sigma)
                ours = black_price(F, K, T, sigma, math.exp(-r * T), is_call)
                if ref < 1e-300:
                    assert ours < 1e-290
                    continue
                checked += 1
                assert ours == pytest.approx(ref, rel=1e-12), (K, minutes, sigma)
    assert checked > 100


def test_normalised_black_matches_lets_be_rational_in_every_region():
    from py_lets_be_rational import normalised_black_call

    for x in (0.0, -1e-6, -0.01, -0.3, -2.0, -8.0):
        for s in (1e-5, 1e-3, 0.05, 0.3, 0.5, 1.0, 2.0, 6.0):
            ref = normalised_black_call(x, s)
            if ref > 1e-300:
                assert normalised_black(x, s) == pytest.approx(ref, rel=5e-15), (x, s)


# --- vollib analytical greeks on the greeks.md §3.1 grid ----------------------------------------
S0 = 24000.0
GRID_STRIKES = np.linspace(0.5, 1.5, 25) * S0
GRID_T = [m / 525600.0 for m in (1, 5, 15, 60, 180)] + [
    d / 365.0 for d in (1, 2, 7, 14, 30, 90, 180, 365)
]
GRID_VOLS = [0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.8, 1.2]


def _grid():
    rows = [
        (K, T, sig, r, c)
        for r in (0.065, 0.10)
        for T in GRID_T
        for K in GRID_STRIKES
        for sig in GRID_VOLS
        for c in (True, False)
    ]
    K, T, sig, r, c = (np.array(v) for v in zip(*rows, strict=True))
    return K, T, sig, r, c.astype(np.bool_)


def test_greeks_rows_match_vollib_bsm_on_grid():
    from vollib.black_scholes_merton import black_scholes_merton
    from vollib.black_scholes_merton.greeks import analytical as va

    K, T, sig, r, is_call = _grid()
    n = K.size
    S = np.full(n, S0)
    F = S0 * np.exp(r * T)
    out = [np.full(n, -7.0) for _ in range(4)]
    prices = np.full(n, -7.0)
    idx = np.arange(n, dtype=np.int64)
    # r is a scalar argument: run the two rate blocks separately.
    for rate in (0.065, 0.10):
        rows = idx[r == rate]
        assert greeks_rows(rows, F, K, T, sig, rate, S, is_call, *out) == rows.size
        assert price_rows(rows, F, K, T, sig, rate, is_call, prices) == rows.size
    delta, gamma, theta, vega = out
    worst = np.zeros(5)
    for i in range(n):
        flag = "c" if is_call[i] else "p"
        args = (flag, S0, K[i], T[i], r[i], sig[i], 0.0)
        ref = (
            black_scholes_merton(*args),
            va.delta(*args),
            va.gamma(*args),
            va.theta(*args),  # vollib: per calendar day
            va.vega(*args),  # vollib: per volatility point
        )
        ours = (prices[i], delta[i], gamma[i], theta[i], vega[i])
        scale = (S0, 1.0, 1.0 / S0, S0 / 365.0, S0 / 100.0)
        for j in range(5):
            worst[j] = max(worst[j], abs(ours[j] - ref[j]) / scale[j])
    assert worst.max() <= 1e-9, worst


def test_rows_kernels_leave_other_rows_and_flag_invalid():
    n = 4
    F = np.array([24000.0, 24000.0, np.nan, 24000.0])
    K = np.array([24100.0, 23900.0, 24000.0, 24000.0])
    T = np.array([0.01, 0.01, 0.01, -0.01])
    sig = np.array([0.12, 0.12, 0.12, 0.12])
    S = np.full(n, 23990.0)
    is_call = np.array([True, False, True, True])
    rows = np.array([0, 2, 3], dtype=np.int64)
    outs = [np.full(n, -7.0) for _ in range(4)]
    assert greeks_rows(rows, F, K, T, sig, 0.065, S, is_call, *outs) == 1
    for o in outs:
        assert o[1] == -7.0  # not in rows
        assert math.isnan(o[2])
        assert math.isnan(o[3])
    ref = black_greeks(F[0], K[0], T[0], sig[0], 0.065, S[0], True)
    assert [o[0] for o in outs] == pytest.approx(list(ref[1:]), rel=1e-14)
    prices = np.full(n, -7.0)
    assert price_rows(rows, F, K, T, sig, 0.065, is_call, prices) == 2
    assert prices[1] == -7.0
    assert math.isnan(prices[2])
    assert prices[3] == 0.0  # expired at the money: intrinsic, undiscounted
    assert prices[0] == black_price(F[0], K[0], T[0], sig[0], math.exp(-0.065 * T[0]), True)


def test_quantlib_black_calculator_cross_check():
    ql = pytest.importorskip("QuantLib")
    cases = [
        (24000.0, 24100.0, 2 / 365, 0.065, 0.0, 0.13, True),
        (24000.0, 23500.0, 2 / 365, 0.065, 0.0, 0.15, False),
        (24000.0, 25000.0, 30 / 365, 0.10, 0.0, 0.18, True),
        (100.0, 95.0, 0.5, 0.10, 0.05, 0.20, False),
        (49.0, 50.0, 0.3846, 0.05, 0.0, 0.20, True),
    ]
    for S, K, T, r, q, sigma, is_call in cases:
        F = forward_from_spot(S, r, q, T)
        df = math.exp(-r * T)
        kind = ql.Option.Call if is_call else ql.Option.Put
        bc = ql.BlackCalculator(ql.PlainVanillaPayoff(kind, K), F, sigma * math.sqrt(T), df)
        price, delta, gamma, theta, vega = black_greeks_raw(F, K, T, sigma, r, S, is_call)
        assert price == pytest.approx(bc.value(), rel=1e-10, abs=1e-12)
        assert delta == pytest.approx(bc.delta(S), rel=1e-10, abs=1e-12)
        assert gamma == pytest.approx(bc.gamma(S), rel=1e-10, abs=1e-14)
        assert theta == pytest.approx(bc.theta(S, T), rel=1e-10, abs=1e-10)
        assert vega == pytest.approx(bc.vega(T), rel=1e-10, abs=1e-10)


# --- hypothesis properties ----------------------------------------------------------------------
forwards = st.floats(100.0, 60000.0)
moneyness = st.floats(0.5, 2.0)
years = st.floats(1 / 525600.0, 3.0)
vols = st.floats(0.01, 3.0)
rates = st.floats(0.0, 0.2)


@settings(max_examples=300, deadline=None)
@given(F=forwards, m=moneyness, T=years, sigma=vols, r=rates)
def test_put_call_parity_and_bounds(F, m, T, sigma, r):
    K = F * m
    df = math.exp(-r * T)
    c = black_price(F, K, T, sigma, df, True)
    p = black_price(F, K, T, sigma, df, False)
    assert c - p == pytest.approx(df * (F - K), abs=1e-12 * max(F, K))
    assert df * max(F - K, 0.0) <= c <= df * F
    assert df * max(K - F, 0.0) <= p <= df * K


@settings(max_examples=300, deadline=None)
@given(F=forwards, m=moneyness, T=years, s1=vols, s2=vols, r=rates, is_call=st.booleans())
def test_price_monotone_in_vol(F, m, T, s1, s2, r, is_call):
    lo, hi = min(s1, s2), max(s1, s2)
    df = math.exp(-r * T)
    p_lo = black_price(F, F * m, T, lo, df, is_call)
    p_hi = black_price(F, F * m, T, hi, df, is_call)
    # Vols one ulp apart can round the other way; the price's rounding error scales with F (a deep
    # OTM price of 2.8e-6 at F = 100 came out 1.7e-20 lower at the higher vol).
    assert p_lo <= p_hi + 1e-15 * F


@settings(max_examples=300, deadline=None)
@given(S=forwards, m=moneyness, T=years, sigma=vols, r=rates, q=st.floats(0.0, 0.1))
def test_greek_signs_and_delta_bounds(S, m, T, sigma, r, q):
    # Spot mode F = S*exp((r - q)T): delta_S = df*N(d1)*F/S = exp(-qT)*N(d1), so a call's delta
    # lies in [0, exp(-qT)] and a put's in [-exp(-qT), 0]. Without a spot the bounds are
    # [0, df] and [-df, 0] (forward delta).
    F = forward_from_spot(S, r, q, T)
    K = S * m
    eq = math.exp(-q * T)
    df = math.exp(-r * T)
    tol = 1e-15
    _, dc, gc, _, vc = black_greeks_raw(F, K, T, sigma, r, S, True)
    _, dp, gp, _, vp = black_greeks_raw(F, K, T, sigma, r, S, False)
    assert -tol <= dc <= eq * (1 + tol)
    assert -eq * (1 + tol) <= dp <= tol
    assert dc - dp == pytest.approx(eq, rel=1e-12)
    assert gc >= 0.0
    assert vc >= 0.0
    assert gc == gp
    assert vc == vp
    _, fc, _, _, _ = black_greeks_raw(F, K, T, sigma, r, np.nan, True)
    _, fp, _, _, _ = black_greeks_raw(F, K, T, sigma, r, np.nan, False)
    assert -tol <= fc <= df * (1 + tol)
    assert -df * (1 + tol) <= fp <= tol
