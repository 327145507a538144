"""Order-flow kernels over whole series, and VPIN: tests and offline work, never the daemon.

The daemon updates its flow state one packet at a time with the ``*_step`` kernels of
``flow.py``; these run the same steps over arrays (golden series: ``reference/flow.md``), and
VPIN is descriptive only. Keeping them in their own module keeps them out of the daemon's
imports and warm-up.
"""

import math

import numpy as np
import numpy.typing as npt
from numba import njit

from smartflow.kernels.flow import cvd_step, obv_step, ofi_step, vwap_step


FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@njit(cache=True, nogil=True, error_model="numpy")
def obv_series(close: FloatArray, volume: FloatArray, out: FloatArray) -> int:
    """OBV over a series, identical to ``talib.OBV`` including its NaN handling.

    Leading bars up to the first bar whose close and volume are both non-NaN are NaN in ``out``;
    that bar seeds OBV with its volume. If no such bar exists ``out`` is all NaN (the TA-Lib
    wrapper instead seeds at the last bar regardless of its NaNs, a quirk not reproduced). Later
    NaNs follow ``obv_step`` (NaN close = unchanged and blocks the next comparison; NaN volume
    poisons OBV from the first bar it is added on).

    Args:
        close: float64[n] closes, rupees.
        volume: float64[n] traded quantity per bar, units.
        out: float64[n] out: OBV, units.

    Returns:
        Number of values written, ``min(len(close), len(volume), len(out))``.
    """
    n = min(len(close), len(volume), len(out))
    start = n
    for i in range(n):
        if close[i] == close[i] and volume[i] == volume[i]:
            start = i
            break
    for i in range(start):
        out[i] = math.nan
    obv = 0.0
    prev = math.nan
    for i in range(start, n):
        obv = obv_step(obv, prev, close[i], volume[i], i == start)
        prev = close[i]
        out[i] = obv
    return n


@njit(cache=True, nogil=True, error_model="numpy")
def vwap_series(
    price: FloatArray, volume: FloatArray, session_id: IntArray, out: FloatArray
) -> int:
    """Session VWAP: Σp·v/Σv, reset whenever ``session_id`` changes (09:15 IST each day).

    Args:
        price: float64[n] print prices, rupees.
        volume: float64[n] print quantities, units.
        session_id: int64[n] session label per print (e.g. the trading date as yyyymmdd).
        out: float64[n] out: VWAP after each print, rupees (NaN until the session has volume).

    Returns:
        Number of values written.
    """
    n = min(len(price), len(volume), len(session_id), len(out))
    pv = 0.0
    v = 0.0
    for i in range(n):
        if i == 0 or session_id[i] != session_id[i - 1]:
            pv = 0.0
            v = 0.0
        pv, v, out[i] = vwap_step(pv, v, price[i], volume[i])
    return n


@njit(cache=True, nogil=True, error_model="numpy")
def cvd_series(
    price: FloatArray,
    volume: FloatArray,
    prev_bid: FloatArray,
    prev_ask: FloatArray,
    out_cvd: FloatArray,
    out_sign: IntArray,
) -> int:
    """CVD over a snapshot series (``cvd_step`` per element, state starting empty).

    Args:
        price: float64[n] LTP per snapshot, rupees.
        volume: float64[n] quantity traded since the previous snapshot, units.
        prev_bid: float64[n] best bid prevailing *before* each snapshot (i.e. already lagged by
            one snapshot), rupees; all-NaN gives the pure tick rule.
        prev_ask: float64[n] best ask prevailing before each snapshot, rupees.
        out_cvd: float64[n] out: CVD after each snapshot, units.
        out_sign: int64[n] out: trade sign per snapshot (0 = no trade or unclassified).

    Returns:
        Number of values written.
    """
    n = min(len(price), len(volume), len(prev_bid), len(prev_ask), len(out_cvd), len(out_sign))
    cvd = 0.0
    last = math.nan
    tick = 0
    for i in range(n):
        cvd, sign, _conf, last, tick = cvd_step(
            cvd, price[i], volume[i], prev_bid[i], prev_ask[i], last, tick
        )
        out_cvd[i] = cvd
        out_sign[i] = sign
    return n


@njit(cache=True, nogil=True, error_model="numpy")
def ofi_series(
    bid_px: FloatArray,
    bid_qty: FloatArray,
    ask_px: FloatArray,
    ask_qty: FloatArray,
    out_e: FloatArray,
) -> int:
    """CKS e_n for a series of best-quote updates; ``out_e[0] = 0`` (no previous update).

    Args:
        bid_px: float64[n] best bid, rupees.
        bid_qty: float64[n] best-bid quantity, units.
        ask_px: float64[n] best ask, rupees.
        ask_qty: float64[n] best-ask quantity, units.
        out_e: float64[n] out: e_n, units (OFI over an interval = the sum over its updates).

    Returns:
        Number of values written.
    """
    n = min(len(bid_px), len(bid_qty), len(ask_px), len(ask_qty), len(out_e))
    if n > 0:
        out_e[0] = 0.0
    for i in range(1, n):
        out_e[i] = ofi_step(
            bid_px[i],
            bid_qty[i],
            ask_px[i],
            ask_qty[i],
            bid_px[i - 1],
            bid_qty[i - 1],
            ask_px[i - 1],
            ask_qty[i - 1],
        )
    return n


@njit(cache=True, nogil=True, error_model="numpy")
def _norm_cdf(x: float) -> float:
    """Standard normal CDF."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


@njit(cache=True, nogil=True, error_model="numpy")
def vpin_from_imbalances(
    imbalance: FloatArray, bucket_volume: float, n_window: int, out_vpin: FloatArray
) -> int:
    """Rolling VPIN = Σ of the last ``n_window`` bucket imbalances / (n_window·bucket_volume).

    Args:
        imbalance: float64[k] |V_S − V_B| per completed bucket, units.
        bucket_volume: bucket size V, units.
        n_window: number of buckets n in the window.
        out_vpin: float64[k] out: VPIN after each bucket, dimensionless; NaN until n buckets exist
            (or everywhere if ``n_window`` < 1 or ``bucket_volume`` ≤ 0).

    Returns:
        Number of values written.
    """
    k = min(len(imbalance), len(out_vpin))
    ok = n_window >= 1 and bucket_volume > 0
    acc = 0.0
    for i in range(k):
        acc += imbalance[i]
        if ok and i >= n_window:
            acc -= imbalance[i - n_window]
        if ok and i + 1 >= n_window:
            out_vpin[i] = acc / (n_window * bucket_volume)
        else:
            out_vpin[i] = math.nan
    return k


@njit(cache=True, nogil=True, error_model="numpy")
def vpin_series(
    dprice: FloatArray,
    volume: FloatArray,
    sigma: float,
    bucket_volume: float,
    n_window: int,
    out_imbalance: FloatArray,
    out_vpin: FloatArray,
) -> int:
    """VPIN with bulk volume classification (Easley, López de Prado & O'Hara 2012).

    Each time bar's volume V is split V_B = V·Φ(ΔP/σ), V_S = V − V_B and poured into buckets of
    exactly ``bucket_volume``; a bar may split across buckets (each part keeps the bar's buy
    fraction). A bar with non-positive or NaN volume is skipped; a NaN ΔP or σ ≤ 0 gives a buy
    fraction of 0.5. Descriptive only: BVC-VPIN has no predictive power once volume and volatility
    are controlled for (Andersen & Bondarenko 2014).

    Args:
        dprice: float64[n] price change per time bar, rupees.
        volume: float64[n] volume per time bar, units.
        sigma: standard deviation of ΔP, rupees.
        bucket_volume: bucket size V (typically ADV/50), units.
        n_window: number of buckets in the VPIN window (typically 50).
        out_imbalance: float64[k] out: |V_S − V_B| per completed bucket, units.
        out_vpin: float64[k] out: VPIN after each completed bucket (see ``vpin_from_imbalances``).

    Returns:
        Number of completed buckets written (at most ``min(len(out_imbalance), len(out_vpin))``).
    """
    cap = min(len(out_imbalance), len(out_vpin))
    if not (bucket_volume > 0 and math.isfinite(bucket_volume)):
        return 0
    n = min(len(dprice), len(volume))
    k = 0
    filled = 0.0
    buy = 0.0
    sell = 0.0
    for i in range(n):
        if k >= cap:
            break
        v = volume[i]
        if not (v > 0 and math.isfinite(v)):
            continue
        z = 0.5
        if sigma > 0 and dprice[i] == dprice[i]:
            z = _norm_cdf(dprice[i] / sigma)
        remaining = v
        while remaining > 0 and k < cap:
            room = bucket_volume - filled
            take = room if remaining >= room else remaining
            buy += take * z
            sell += take * (1.0 - z)
            remaining -= take
            if take == room:
                out_imbalance[k] = abs(sell - buy)
                k += 1
                filled = 0.0
                buy = 0.0
                sell = 0.0
            else:
                filled += take
    vpin_from_imbalances(out_imbalance[:k], bucket_volume, n_window, out_vpin[:k])
    return k
