"""Implied volatility: textbook example, vollib grid round trip, forward modes, status codes."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from smartflow.kernels.black import (
    black_greeks,
    black_price,
    forward_from_spot,
    synthetic_forward,
)
from smartflow.kernels.greeks_bench import (
    NT,
    T_F,
    T_HALF_TICK,
    T_IS_CALL,
    T_IV,
    T_K,
    T_PRICE,
    T_R,
    T_S,
    T_T,
    greeks_rows,
    iv_greeks_rows,
    iv_greeks_tick,
    price_rows,
)
from smartflow.kernels.iv import (
    IV_ABOVE_BOUND,
    IV_BAD_INPUT,
    IV_BELOW_INTRINSIC,
    IV_EXPIRED,
    IV_NO_CONVERGENCE,
    IV_OK,
    IV_STATUS_NAMES,
    IV_TIME_VALUE_TOO_SMALL,
    implied_vol,
    iv_greeks_one,
    normalised_implied_s,
)


TICK = 0.05
HALF_TICK = 0.025
EPS = np.finfo(float).eps


def test_hull_implied_vol_example():
    # c = 1.875, S = 21, K = 20, r = 10 %, T = 0.25, no dividends: Black-76 on F = S*e^{rT}.
    F = forward_from_spot(21.0, 0.10, 0.0, 0.25)
    iv, status = implied_vol(1.875, F, 20.0, 0.25, 0.10, True, 0.0)
    assert status == IV_OK
    assert abs(iv - 0.235) <= 5e-4
    assert abs(iv - 0.234512913998) <= 1e-9


def test_status_names_cover_codes():
    codes = [
        IV_OK,
        IV_EXPIRED,
        IV_BAD_INPUT,
        IV_BELOW_INTRINSIC,
        IV_ABOVE_BOUND,
        IV_TIME_VALUE_TOO_SMALL,
        IV_NO_CONVERGENCE,
    ]
    assert codes == list(range(len(IV_STATUS_NAMES)))
    assert IV_STATUS_NAMES[IV_OK] == "ok"
    assert IV_STATUS_NAMES[IV_TIME_VALUE_TOO_SMALL] == "time_value_too_small"
    assert all(name == name.lower() for name in IV_STATUS_NAMES)


# --- vollib grid (greeks.md §3.1) ---------------------------------------------------------------
S0 = 24000.0
GRID_STRIKES = np.linspace(0.5, 1.5, 25) * S0
GRID_T = [m / 525600.0 for m in (1, 5, 15, 60, 180)] + [
    d / 365.0 for d in (1, 2, 7, 14, 30, 90, 180, 365)
]
GRID_VOLS = [0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.8, 1.2]


@pytest.fixture(scope="module")
def grid():
    """Premiums from vollib's tail-accurate Black-Scholes-Merton (q = 0) on the §3.1 grid."""
    from vollib.black_scholes_merton import black_scholes_merton
    from vollib.black_scholes_merton.greeks.analytical import vega as vollib_vega

    rows = [
        (K, T, sig, r, c)
        for r in (0.065, 0.10)
        for T in GRID_T
        for K in GRID_STRIKES
        for sig in GRID_VOLS
        for c in (True, False)
    ]
    K, T, sig, r, is_call = (np.array(v) for v in zip(*rows, strict=True))
    is_call = is_call.astype(np.bool_)
    n = K.size
    F = S0 * np.exp(r * T)
    premium = np.empty(n)
    otm_tv = np.empty(n)  # premium of the OTM twin = the option's time value
    vega_unit = np.empty(n)
    for i in range(n):
        flag = "c" if is_call[i] else "p"
        premium[i] = black_scholes_merton(flag, S0, K[i], T[i], r[i], sig[i], 0.0)
        otm_flag = "c" if K[i] >= F[i] else "p"
        otm_tv[i] = (
            premium[i]
            if otm_flag == flag
            else black_scholes_merton(otm_flag, S0, K[i], T[i], r[i], sig[i], 0.0)
        )
        vega_unit[i] = 100.0 * vollib_vega(flag, S0, K[i], T[i], r[i], sig[i], 0.0)
    return {
        "K": K,
        "T": T,
        "sig": sig,
        "r": r,
        "is_call": is_call,
        "F": F,
        "S": np.full(n, S0),
        "premium": premium,
        "otm_tv": otm_tv,
        "vega_unit": vega_unit,
    }


def _solve_grid(g, half_tick):
    n = g["K"].size
    out_iv = np.full(n, -7.0)
    status = np.full(n, -1, dtype=np.int8)
    greeks = [np.full(n, -7.0) for _ in range(4)]
    idx = np.arange(n, dtype=np.int64)
    solved = 0
    for rate in (0.065, 0.10):
        rows = idx[g["r"] == rate]
        solved += iv_greeks_rows(
            rows, g["premium"], g["F"], g["K"], g["T"], rate, g["S"], g["is_call"], half_tick,
            out_iv, status, *greeks,
        )  # fmt: skip
    assert solved == int((status == IV_OK).sum())
    return out_iv, status, greeks


def test_grid_round_trip_market_points(grid):
    out_iv, status, greeks = _solve_grid(grid, HALF_TICK)
    tv = grid["otm_tv"]
    market = tv >= TICK
    assert market.sum() > 2000
    assert (status[market] == IV_OK).all()
    err = np.abs(out_iv[market] - grid["sig"][market])
    assert err.max() <= 1e-8, err.max()
    # Anything solved between half a tick and a tick is just as accurate.
    ok = status == IV_OK
    assert np.abs(out_iv[ok] - grid["sig"][ok]).max() <= 1e-8
    # Below half a tick (away from the boundary, which rounding may flip): NaN and a reason.
    small = tv < HALF_TICK * (1 - 1e-9)
    assert small.sum() > 1000
    positive = grid["premium"] > 0.0
    assert np.isin(status[small & positive], [IV_TIME_VALUE_TOO_SMALL, IV_BELOW_INTRINSIC]).all()
    # A zero premium (far wings underflow) is not a price: the contract says bad input.
    assert (status[~positive] == IV_BAD_INPUT).all()
    assert np.isnan(out_iv[small]).all()
    for arr in greeks:
        assert np.isnan(arr[~ok]).all()
        assert np.isfinite(arr[ok]).all()


def test_grid_greeks_at_solved_iv_are_greeks_rows(grid):
    out_iv, status, greeks = _solve_grid(grid, HALF_TICK)
    idx = np.nonzero(status == IV_OK)[0].astype(np.int64)
    ref = [np.full(out_iv.size, np.nan) for _ in range(4)]
    for rate in (0.065, 0.10):
        rows = idx[grid["r"][idx] == rate]
        greeks_rows(rows, grid["F"], grid["K"], grid["T"], out_iv, rate, grid["S"],
                    grid["is_call"], *ref)  # fmt: skip
    for ours, expected in zip(greeks, ref, strict=True):
        np.testing.assert_allclose(ours[idx], expected[idx], rtol=1e-12, atol=1e-15)


def test_grid_round_trip_stress_points(grid):
    # half_tick = 0 inverts any positive time value: premiums down to 1e-300 must still round
    # trip wherever the premium determines the volatility (its rounding, eps*premium, moves
    # sigma by eps*premium/vega); no time value at all must give NaN and a reason.
    out_iv, status, _ = _solve_grid(grid, 0.0)
    tv = grid["otm_tv"]
    err_bound = 8 * EPS * grid["premium"] / np.maximum(grid["vega_unit"], 1e-300)
    conditioned = (tv >= 1e-290) & (err_bound <= 1e-10)
    stress = conditioned & (tv < TICK)
    assert stress.sum() > 500
    assert (status[conditioned] == IV_OK).all()
    err = np.abs(out_iv[conditioned] - grid["sig"][conditioned])
    assert err.max() <= 1e-8, err.max()
    assert grid["premium"][stress].min() < 1e-250
    no_time_value = tv == 0.0
    assert no_time_value.sum() > 500
    assert np.isin(
        status[no_time_value], [IV_TIME_VALUE_TOO_SMALL, IV_BELOW_INTRINSIC, IV_BAD_INPUT]
    ).all()
    assert np.isnan(out_iv[no_time_value]).all()
    # Ill-conditioned leftovers (time value lost in the premium's rounding) may go either way,
    # but never produce an exception, an infinite or a negative volatility.
    rest = ~conditioned & ~no_time_value
    assert (np.isnan(out_iv[rest]) | (out_iv[rest] > 0)).all()


# --- round trip property ------------------------------------------------------------------------
@settings(max_examples=400, deadline=None)
@given(
    F=st.floats(100.0, 60000.0),
    m=st.floats(0.5, 2.0),
    T=st.floats(1 / 525600.0, 3.0),
    sigma=st.floats(0.01, 3.0),
    r=st.floats(0.0, 0.2),
    is_call=st.booleans(),
)
def test_iv_round_trip_property(F, m, T, sigma, r, is_call):
    K = F * m
    price, _, _, _, vega_pt = black_greeks(F, K, T, sigma, r, np.nan, is_call)
    df = math.exp(-r * T)
    intrinsic = df * max(F - K, 0.0) if is_call else df * max(K - F, 0.0)
    time_value = price - intrinsic
    iv, status = implied_vol(price, F, K, T, r, is_call, 0.0)
    conditioned = time_value > 1e-290 and 8 * EPS * price <= 1e-10 * 100.0 * vega_pt
    if conditioned:
        assert status == IV_OK
        assert abs(iv - sigma) <= 1e-8
    elif price <= 0.0:
        assert status == IV_BAD_INPUT  # underflowed to zero: not a price
    elif time_value <= 0.0:
        assert status in (IV_TIME_VALUE_TOO_SMALL, IV_BELOW_INTRINSIC)
        assert math.isnan(iv)


# --- the three forward modes --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("S", "r", "q", "days"), [(24000.0, 0.065, 0.012, 6.0), (51000.0, 0.10, 0.0, 0.2)]
)
def test_forward_modes_agree(S, r, q, days):
    T = days / 365.0
    F = forward_from_spot(S, r, q, T)
    df = math.exp(-r * T)
    strikes = np.round(S / 100.0) * 100.0 + np.arange(-30, 31) * 100.0
    sigma = 0.13 + 0.5 * np.log(strikes / F) ** 2 - 0.05 * np.log(strikes / F)
    n = strikes.size
    calls = np.array(
        [black_price(F, k, T, v, df, True) for k, v in zip(strikes, sigma, strict=True)]
    )
    puts = np.array(
        [black_price(F, k, T, v, df, False) for k, v in zip(strikes, sigma, strict=True)]
    )
    atm = int(np.argmin(np.abs(calls - puts)))
    forwards = {
        "spot": forward_from_spot(S, r, q, T),
        "future": F,
        "synthetic": synthetic_forward(strikes[atm], calls[atm], puts[atm], df),
    }
    for name, fwd in forwards.items():
        for is_call, prem in ((True, calls), (False, puts)):
            out = [np.empty(n) for _ in range(5)]
            status = np.empty(n, dtype=np.int8)
            iv_greeks_rows(
                np.arange(n, dtype=np.int64), prem, np.full(n, fwd), strikes, np.full(n, T), r,
                np.full(n, S), np.full(n, is_call), HALF_TICK, out[0], status, *out[1:],
            )  # fmt: skip
            # Market-relevant strikes: the OTM-equivalent time value is at least one tick.
            otm = np.minimum(calls, puts)
            market = otm >= TICK
            assert market.sum() >= 5
            assert (status[market] == IV_OK).all(), name
            assert np.abs(out[0][market] - sigma[market]).max() <= 1e-8, (name, is_call)


# --- status codes -------------------------------------------------------------------------------
F0, K0, T0, R0 = 24000.0, 23000.0, 7 / 365, 0.065
DF0 = math.exp(-R0 * T0)


@pytest.mark.parametrize(
    ("price", "F", "K", "T", "r", "is_call", "half_tick", "expected"),
    [
        (1000.0, F0, K0, 0.0, R0, True, HALF_TICK, IV_EXPIRED),
        (1000.0, F0, K0, -1e-3, R0, True, HALF_TICK, IV_EXPIRED),
        (np.nan, F0, K0, T0, R0, True, HALF_TICK, IV_BAD_INPUT),
        (np.inf, F0, K0, T0, R0, True, HALF_TICK, IV_BAD_INPUT),
        (0.0, F0, K0, T0, R0, True, HALF_TICK, IV_BAD_INPUT),
        (-5.0, F0, K0, T0, R0, True, HALF_TICK, IV_BAD_INPUT),
        (1000.0, 0.0, K0, T0, R0, True, HALF_TICK, IV_BAD_INPUT),
        (1000.0, np.nan, K0, T0, R0, True, HALF_TICK, IV_BAD_INPUT),
        (1000.0, F0, -1.0, T0, R0, True, HALF_TICK, IV_BAD_INPUT),
        (1000.0, F0, np.inf, T0, R0, True, HALF_TICK, IV_BAD_INPUT),
        (1000.0, F0, K0, np.nan, R0, True, HALF_TICK, IV_BAD_INPUT),
        (1000.0, F0, K0, np.inf, R0, True, HALF_TICK, IV_BAD_INPUT),
        (1000.0, F0, K0, T0, np.nan, True, HALF_TICK, IV_BAD_INPUT),
        (1000.0, F0, K0, T0, R0, True, np.nan, IV_BAD_INPUT),
        (1000.0, F0, K0, T0, R0, True, -0.01, IV_BAD_INPUT),
        (DF0 * 1000.0 - 0.5, F0, K0, T0, R0, True, HALF_TICK, IV_BELOW_INTRINSIC),
        (DF0 * 1000.0 - 1e-9, F0, K0, T0, R0, False, 0.0, IV_OK),  # OTM put: no intrinsic
        (DF0 * 500.0, K0, F0, T0, R0, False, HALF_TICK, IV_BELOW_INTRINSIC),
        (DF0 * F0, F0, K0, T0, R0, True, HALF_TICK, IV_ABOVE_BOUND),
        (DF0 * F0 * 2, F0, K0, T0, R0, True, HALF_TICK, IV_ABOVE_BOUND),
        (DF0 * K0, F0, K0, T0, R0, False, HALF_TICK, IV_ABOVE_BOUND),
        (0.02, F0, K0, T0, R0, False, HALF_TICK, IV_TIME_VALUE_TOO_SMALL),
        (DF0 * 1000.0 + 0.02, F0, K0, T0, R0, True, HALF_TICK, IV_TIME_VALUE_TOO_SMALL),
        (DF0 * 1000.0, F0, K0, T0, R0, True, 0.0, IV_TIME_VALUE_TOO_SMALL),
        (DF0 * 1000.0 + 0.03, F0, K0, T0, R0, True, HALF_TICK, IV_OK),
    ],
)
def test_status_codes(price, F, K, T, r, is_call, half_tick, expected):
    iv, status = implied_vol(price, F, K, T, r, is_call, half_tick)
    assert status == expected, IV_STATUS_NAMES[status]
    if expected == IV_OK:
        assert 0.0 < iv < np.inf
    else:
        assert math.isnan(iv)
    one = iv_greeks_one(price, F, K, T, r, F, is_call, half_tick)
    assert one[1] == expected
    assert all(math.isnan(v) for v in one[2:]) == (expected != IV_OK)


def test_no_convergence_is_reported_not_raised():
    # Validated inputs always converge (the bracket forbids divergence), so the failure signal
    # is exercised at the solver: a broken price function (NaN) ends the iteration at once.
    s, n_eval = normalised_implied_s(-0.1, np.nan)
    assert math.isnan(s)
    assert n_eval < 0
    # implied_vol maps that signal (n_eval < 0 or non-finite s) to IV_NO_CONVERGENCE; the
    # extremes of the valid domain still converge.
    for price, F, K in ((1e-300, 24000.0, 24001.0), (23999.999999, 24000.0, 1e-3)):
        iv, status = implied_vol(price, F, K, 1.0, 0.0, True, 0.0)
        assert status in (IV_OK, IV_TIME_VALUE_TOO_SMALL, IV_ABOVE_BOUND)
        assert status != IV_OK or iv > 0


def test_iv_greeks_rows_writes_only_rows_and_nan_on_failure():
    n = 5
    F = np.full(n, 24000.0)
    K = np.array([24000.0, 24100.0, 23900.0, 30000.0, 24000.0])
    T = np.array([2 / 365, 2 / 365, 2 / 365, 2 / 365, 0.0])
    S = np.full(n, 23990.0)
    is_call = np.array([True, True, False, True, True])
    sigma = np.full(n, 0.13)
    price = np.empty(n)
    price_rows(np.arange(n, dtype=np.int64), F, K, T, sigma, 0.065, is_call, price)
    outs = [np.full(n, -7.0) for _ in range(5)]
    status = np.full(n, -1, dtype=np.int8)
    rows = np.array([0, 2, 3, 4], dtype=np.int64)
    solved = iv_greeks_rows(rows, price, F, K, T, 0.065, S, is_call, HALF_TICK,
                            outs[0], status, *outs[1:])  # fmt: skip
    assert solved == 2
    assert status[1] == -1
    assert all(o[1] == -7.0 for o in outs)
    assert list(status[[0, 2, 3, 4]]) == [IV_OK, IV_OK, IV_TIME_VALUE_TOO_SMALL, IV_EXPIRED]
    for o in outs:
        assert np.isnan(o[[3, 4]]).all()
    np.testing.assert_allclose(outs[0][[0, 2]], 0.13, atol=1e-12)
    for i in (0, 2):
        _, d, g, th, v = black_greeks(F[i], K[i], T[i], outs[0][i], 0.065, S[i], is_call[i])
        assert (outs[1][i], outs[2][i], outs[3][i], outs[4][i]) == pytest.approx(
            (d, g, th, v), rel=1e-12
        )
        one = iv_greeks_one(price[i], F[i], K[i], T[i], 0.065, S[i], is_call[i], HALF_TICK)
        assert one[1] == IV_OK
        assert one[0] == outs[0][i]
        assert one[2:] == tuple(o[i] for o in outs[1:])


@pytest.mark.parametrize("is_call", [True, False])
@pytest.mark.parametrize(("K", "T"), [(24000.0, 2 / 365), (25500.0, 30 / 365), (24000.0, 0.0)])
def test_iv_greeks_tick_is_the_scalar_kernel_in_place(K: float, T: float, is_call: bool) -> None:
    F, S, r = 24010.0, 23990.0, 0.065
    price = black_price(F, K, T, 0.15, math.exp(-r * T), is_call) if T > 0 else 50.0
    rec = np.zeros(NT)
    rec[[T_PRICE, T_F, T_K, T_T, T_R, T_S, T_IS_CALL, T_HALF_TICK]] = (
        price, F, K, T, r, S, float(is_call), HALF_TICK
    )  # fmt: skip
    inputs = rec[:T_IV].copy()
    status = iv_greeks_tick(rec)
    iv, one_status, *greeks = iv_greeks_one(price, F, K, T, r, S, is_call, HALF_TICK)
    assert status == one_status
    assert (status == IV_OK) == (T > 0)
    np.testing.assert_array_equal(rec[T_IV:], [iv, *greeks])  # NaN == NaN on failure
    np.testing.assert_array_equal(rec[:T_IV], inputs)


def test_one_minute_to_expiry_deep_wings():
    # T = 1 minute: the ATM straddle is tiny and the wings vanish; nothing may blow up.
    T = 1 / 525600.0
    F = 24000.0
    for K, sig in ((24000.0, 0.12), (24010.0, 0.15), (23990.0, 0.15), (24050.0, 0.4)):
        for is_call in (True, False):
            p = black_price(F, K, T, sig, math.exp(-0.065 * T), is_call)
            iv, status = implied_vol(p, F, K, T, 0.065, is_call, 0.0)
            assert status == IV_OK
            assert abs(iv - sig) <= 1e-8


def test_warm_up_compiles_every_kernel_of_black_iv_and_greeks_bench():
    # In a fresh interpreter: here, earlier tests have compiled most kernels already. Private
    # helpers are compiled inside their callers (and not at all when those load from the cache),
    # so the public kernels are the ones a caller from Python would otherwise compile late.
    script = (
        "from numba.core.registry import CPUDispatcher\n"
        "from smartflow.kernels import black, greeks_bench, iv\n"
        "greeks_bench.warm_up()\n"
        "for m in (black, iv, greeks_bench):\n"
        "    for name, obj in vars(m).items():\n"
        "        public = isinstance(obj, CPUDispatcher) and not name.startswith('_')\n"
        "        if public and obj.__module__ == m.__name__:\n"
        "            print(m.__name__, name, len(obj.signatures))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    ).stdout
    counts = {tuple(line.split()[:2]): int(line.split()[2]) for line in out.splitlines()}
    assert ("smartflow.kernels.greeks_bench", "iv_greeks_rows") in counts
    assert ("smartflow.kernels.black", "black_price") in counts
    cold = [name for name, n in counts.items() if n == 0]
    assert not cold, cold
