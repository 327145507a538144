"""IV and greeks over arrays of rows and per tick record: the kernels only the benchmarks call.

``smartflow bench greeks`` times these against peer libraries, and the kernel tests check the
array forms against the scalar ones. The daemon never imports this module (an import-linter
contract in pyproject.toml says so): its chain kernels call :func:`~smartflow.kernels.iv.
iv_greeks_one` row by row, so none of this is compiled at its start. Units and failure codes are
those of :mod:`smartflow.kernels.black` and :mod:`smartflow.kernels.iv`.
"""

import math

import numpy as np
from numba import njit
from numpy.typing import NDArray

from smartflow.kernels.black import (
    DAYS_PER_YEAR,
    VOL_POINTS,
    black_greeks,
    black_greeks_raw,
    black_price,
    erfcx,
    forward_from_spot,
    greeks_core,
    norm_cdf,
    norm_pdf,
    normalised_black,
    normalised_black_parts,
    synthetic_forward,
)
from smartflow.kernels.iv import IV_OK, implied_vol, iv_greeks_one, normalised_implied_s


@njit(cache=True, nogil=True, error_model="numpy")
def price_rows(
    rows: NDArray[np.int64],
    F: NDArray[np.float64],
    K: NDArray[np.float64],
    T: NDArray[np.float64],
    sigma: NDArray[np.float64],
    r: float,
    is_call: NDArray[np.bool_],
    out_price: NDArray[np.float64],
) -> int:
    """Discounted Black-76 premiums for a subset of rows.

    Args:
        rows: int64[m], indices into the row arrays.
        F: float64[n], forward (points).
        K: float64[n], strike (points).
        T: float64[n], years to expiry (ACT/365); ``<= 0`` prices at discounted intrinsic.
        sigma: float64[n], Black volatility (fraction).
        r: float, continuously compounded rate.
        is_call: bool_[n], call or put.
        out_price: float64[n], premium (points) written at ``rows``; NaN for invalid inputs.

    Returns:
        Number of rows given a finite premium.
    """
    n_ok = 0
    for j in range(rows.shape[0]):
        i = rows[j]
        t = T[i]
        df = math.exp(-r * t) if t > 0.0 else 1.0
        p = black_price(F[i], K[i], t, sigma[i], df, is_call[i])
        out_price[i] = p
        if math.isfinite(p):
            n_ok += 1
    return n_ok


@njit(cache=True, nogil=True, error_model="numpy")
def greeks_rows(
    rows: NDArray[np.int64],
    F: NDArray[np.float64],
    K: NDArray[np.float64],
    T: NDArray[np.float64],
    sigma: NDArray[np.float64],
    r: float,
    S: NDArray[np.float64],
    is_call: NDArray[np.bool_],
    out_delta: NDArray[np.float64],
    out_gamma: NDArray[np.float64],
    out_theta: NDArray[np.float64],
    out_vega: NDArray[np.float64],
) -> int:
    """Greeks at given volatilities for a subset of rows.

    Args:
        rows: int64[m], indices into the row arrays.
        F: float64[n], forward (points).
        K: float64[n], strike (points).
        T: float64[n], years to expiry (ACT/365).
        sigma: float64[n], Black volatility (fraction).
        r: float, continuously compounded rate.
        S: float64[n], spot index (points); ``<= 0`` or NaN for greeks per unit of F.
        is_call: bool_[n], call or put.
        out_delta: float64[n], delta per spot point.
        out_gamma: float64[n], gamma per spot point².
        out_theta: float64[n], theta per calendar day (points per day, negative for decay).
        out_vega: float64[n], vega per volatility point (points per 1 % of vol).

    Returns:
        Number of rows with finite greeks; rows with invalid inputs (``T``, ``sigma``, ``F``, ``K``
        not positive, or NaN) get NaN in every output.
    """
    n_ok = 0
    for j in range(rows.shape[0]):
        i = rows[j]
        f = F[i]
        k = K[i]
        t = T[i]
        sig = sigma[i]
        if not (
            f > 0.0 and k > 0.0 and t > 0.0 and sig > 0.0 and math.isfinite(f + k + t + sig + r)
        ):
            out_delta[i] = np.nan
            out_gamma[i] = np.nan
            out_theta[i] = np.nan
            out_vega[i] = np.nan
            continue
        # price=NaN: theta's r*V term from N(d1)/N(d2), half the cost of the tail-accurate price.
        d, g, th, v = greeks_core(
            f,
            k,
            t,
            math.sqrt(t),
            sig,
            math.exp(-r * t),
            math.log(f / k),
            r,
            S[i],
            is_call[i],
            np.nan,
        )
        out_delta[i] = d
        out_gamma[i] = g
        out_theta[i] = th / DAYS_PER_YEAR
        out_vega[i] = v / VOL_POINTS
        n_ok += 1
    return n_ok


# ---- one contract's tick record (``iv_greeks_tick``) --------------------------------------------
T_PRICE = 0  # in: discounted premium
T_F = 1  # in: forward
T_K = 2  # in: strike
T_T = 3  # in: years to expiry
T_R = 4  # in: rate
T_S = 5  # in: spot for per-spot greeks (<= 0 or NaN: per forward)
T_IS_CALL = 6  # in: 1.0 call, 0.0 put
T_HALF_TICK = 7  # in: smallest reportable time value
T_IV = 8  # out, and T_DELTA … T_VEGA as iv_greeks_one
T_DELTA = 9
T_GAMMA = 10
T_THETA = 11
T_VEGA = 12
NT = 13


@njit(cache=True, nogil=True, error_model="numpy")
def iv_greeks_tick(rec: NDArray[np.float64]) -> int:
    """One contract's tick, in place on its record: IV and greeks from the ``T_*`` inputs.

    The per-tick call for a caller that keeps one float64[NT] record per contract: numba
    unboxes one array instead of eight scalars and boxes one int instead of a 6-tuple, so the
    call from Python costs about half of :func:`iv_greeks_one`'s dispatch. Same maths and units.

    Returns:
        The ``IV_*`` status; ``rec[T_IV:]`` holds iv, delta, gamma, theta per day and vega per
        vol point (NaN on failure).
    """
    iv, status, delta, gamma, theta, vega = iv_greeks_one(
        rec[T_PRICE],
        rec[T_F],
        rec[T_K],
        rec[T_T],
        rec[T_R],
        rec[T_S],
        rec[T_IS_CALL] > 0.0,
        rec[T_HALF_TICK],
    )
    rec[T_IV] = iv
    rec[T_DELTA] = delta
    rec[T_GAMMA] = gamma
    rec[T_THETA] = theta
    rec[T_VEGA] = vega
    return status


@njit(cache=True, nogil=True, error_model="numpy")
def implied_vol_rows(
    rows: NDArray[np.int64],
    price: NDArray[np.float64],
    F: NDArray[np.float64],
    K: NDArray[np.float64],
    T: NDArray[np.float64],
    r: float,
    is_call: NDArray[np.bool_],
    half_tick: float,
    out_iv: NDArray[np.float64],
    out_status: NDArray[np.int8],
) -> int:
    """Implied volatility only, for a subset of rows (arguments as in :func:`iv_greeks_rows`).

    Returns:
        Number of rows solved; failed rows get NaN and their ``IV_*`` status.
    """
    n_ok = 0
    for j in range(rows.shape[0]):
        i = rows[j]
        sigma, status = implied_vol(price[i], F[i], K[i], T[i], r, is_call[i], half_tick)
        out_iv[i] = sigma
        out_status[i] = status
        if status == IV_OK:
            n_ok += 1
    return n_ok


@njit(cache=True, nogil=True, error_model="numpy")
def iv_greeks_rows(
    rows: NDArray[np.int64],
    price: NDArray[np.float64],
    F: NDArray[np.float64],
    K: NDArray[np.float64],
    T: NDArray[np.float64],
    r: float,
    S: NDArray[np.float64],
    is_call: NDArray[np.bool_],
    half_tick: float,
    out_iv: NDArray[np.float64],
    out_status: NDArray[np.int8],
    out_delta: NDArray[np.float64],
    out_gamma: NDArray[np.float64],
    out_theta: NDArray[np.float64],
    out_vega: NDArray[np.float64],
) -> int:
    """Implied volatility, then greeks at it, for a subset of rows (one chain update).

    Args:
        rows: int64[m], indices of the rows to (re)compute, e.g. the dirty rows of a tick batch.
        price: float64[n], discounted premium per row (rupees / points; mid or LTP).
        F: float64[n], forward of each row's expiry (points).
        K: float64[n], strike (points).
        T: float64[n], years to expiry (ACT/365).
        r: float, continuously compounded rate discounting the premiums.
        S: float64[n], spot index (points) for per-spot greeks; ``<= 0`` or NaN for per-F greeks.
        is_call: bool_[n], call or put.
        half_tick: float, minimum OTM-equivalent time value (rupees) for an IV to be reported.
        out_iv: float64[n], implied volatility (fraction), NaN on failure.
        out_status: int8[n], ``IV_*`` status code.
        out_delta: float64[n], delta per spot point, NaN on failure.
        out_gamma: float64[n], gamma per spot point², NaN on failure.
        out_theta: float64[n], theta per calendar day (points/day), NaN on failure.
        out_vega: float64[n], vega per volatility point (points per 1 % vol), NaN on failure.

    Returns:
        Number of rows solved (status ``IV_OK``). Rows not in ``rows`` are left untouched.
    """
    n_ok = 0
    for j in range(rows.shape[0]):
        i = rows[j]
        sigma, status, delta, gamma, theta, vega = iv_greeks_one(
            price[i], F[i], K[i], T[i], r, S[i], is_call[i], half_tick
        )
        out_iv[i] = sigma
        out_status[i] = status
        out_delta[i] = delta
        out_gamma[i] = gamma
        out_theta[i] = theta
        out_vega[i] = vega
        if status == IV_OK:
            n_ok += 1
    return n_ok


def warm_up() -> None:
    """Compile (or load from the numba cache) every kernel of black.py, iv.py and this module.

    For the benchmarks and the kernel tests, which call these from Python. The daemon does not:
    it compiles what it uses by running its own pipeline once (app/warmup.py), which reaches the
    scalar kernels here only from inside the chain kernels. It runs each kernel once on tiny
    arrays and discards the results.
    """
    n = 2
    rows = np.arange(n, dtype=np.int64)
    F = np.full(n, 24000.0)
    K = np.array([23900.0, 24100.0])
    T = np.full(n, 2.0 / 365.0)
    sigma = np.full(n, 0.13)
    S = np.full(n, 23990.0)
    is_call = np.array([True, False])
    out = [np.empty(n) for _ in range(6)]
    status = np.empty(n, dtype=np.int8)
    norm_cdf(0.1)
    norm_pdf(0.1)
    erfcx(0.1)
    normalised_black(-0.01, 0.02)
    normalised_black_parts(-0.01, 0.02)
    black_price(24000.0, 24100.0, 0.01, 0.13, 0.999, True)
    black_greeks(24000.0, 24100.0, 0.01, 0.13, 0.065, 23990.0, True)
    black_greeks_raw(24000.0, 24100.0, 0.01, 0.13, 0.065, 23990.0, True)
    forward_from_spot(24000.0, 0.065, 0.0, 0.01)
    synthetic_forward(24000.0, 100.0, 90.0, 0.999)
    implied_vol(100.0, 24000.0, 24100.0, 0.01, 0.065, True, 0.025)
    iv_greeks_one(100.0, 24000.0, 24100.0, 0.01, 0.065, 23990.0, True, 0.025)
    iv_greeks_tick(
        np.array([100.0, 24000.0, 24100.0, 0.01, 0.065, 23990.0, 1.0, 0.025] + [0.0] * 5)
    )
    implied_vol_rows(rows, out[0], F, K, T, 0.065, is_call, 0.025, out[5], status)
    greeks_core(24000.0, 24100.0, 0.01, 0.1, 0.13, 0.999, -0.004, 0.065, 23990.0, True, 100.0)
    normalised_implied_s(-0.01, 0.01)
    price_rows(rows, F, K, T, sigma, 0.065, is_call, out[0])
    greeks_rows(rows, F, K, T, sigma, 0.065, S, is_call, out[1], out[2], out[3], out[4])
    iv_greeks_rows(rows, out[0], F, K, T, 0.065, S, is_call, 0.025, out[5], status, *out[1:5])
