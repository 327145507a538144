"""Order-flow kernels: OBV, VWAP, CVD (tick rule / Lee-Ready), OFI, book pressure, impact, VPIN.

Definitions and golden series: ``reference/flow.md``. Every function is a pure numba kernel (scalars
and 1-D contiguous arrays in; scalars, tuples or preallocated ``out_*`` arrays out; never raises).
Prices are float64 **rupees**, quantities float64 **units** (contracts × lot, as SmartStream sends
them). The daemon calls the scalar ``*_step`` functions from inside its own kernels; the
``*_series`` functions are for tests and offline work.

SmartStream sends snapshots, not trades. The quantity traded between two snapshots of a contract is
Δ(day volume), and it is classified by comparing the snapshot's LTP with the **previous** snapshot's
best bid/ask (the lagged, prevailing quote of Lee & Ready 1991). One snapshot can aggregate several
trades, so the classification is approximate.

Price equality (zero tick, "at the mid", "same level") uses a relative tolerance of 1e-9, so prices
converted from integer paise compare equal however they were computed.

Codes returned as ints (``URGENCY_*``, ``REC_*``) have their names in ``URGENCY_NAMES`` and
``RECOMMENDATION_NAMES``; those tuples are for logging and are never read by a kernel.
"""

import math

import numpy as np
import numpy.typing as npt
from numba import njit


URGENCY_LOW = 0
URGENCY_MEDIUM = 1
URGENCY_HIGH = 2
URGENCY_CRITICAL = 3
URGENCY_NAMES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")

REC_HOLD = 0
REC_CAUTIOUS_EXECUTE = 1
REC_EXECUTE = 2
REC_STRONG_EXECUTE = 3
RECOMMENDATION_NAMES = ("HOLD", "CAUTIOUS_EXECUTE", "EXECUTE", "STRONG_EXECUTE")

# Suggested (not enforced) whale parameters for callers/config. The seed's ">$1M" is a US equity
# notion; for NSE index options a rupee premium value is the analogue. Kernels take both as args.
DEFAULT_WHALE_VALUE_INR = 10_000_000  # ₹1 crore of premium traded in one snapshot interval
DEFAULT_WHALE_VOLUME_MULTIPLE = 3  # the seed's "3x average volume"

# Annotations only (numba ignores them): 1-D contiguous arrays.
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, error_model="numpy")
def _cmp_px(a: float, b: float) -> int:
    """-1/0/+1 comparison of two prices with a 1e-9 relative tolerance (equal infinities are 0)."""
    if a == b:
        return 0
    if abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1.0):
        return 0
    if a > b:
        return 1
    return -1


@njit(cache=True, nogil=True, error_model="numpy")
def _clip1(x: float) -> float:
    """Clip to [-1, 1]; NaN becomes 0."""
    if x != x:
        return 0.0
    if x > 1.0:
        return 1.0
    if x < -1.0:
        return -1.0
    return float(x)


@njit(cache=True, nogil=True, error_model="numpy")
def _sign(x: float) -> int:
    """Sign of ``x`` as an int (-1, 0, +1); NaN is 0."""
    if x > 0:
        return 1
    if x < 0:
        return -1
    return 0


@njit(cache=True, nogil=True, error_model="numpy")
def _pos(x: float) -> float:
    """``x`` if it is a positive finite number, else 0."""
    if x > 0 and math.isfinite(x):
        return float(x)
    return 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def _ratio(num: float, den: float) -> float:
    """``num / den`` clipped to [-1, 1], or 0 when ``den`` is not positive and finite."""
    if den > 0 and math.isfinite(den):
        return _clip1(num / den)
    return 0.0


# ---------------------------------------------------------------------------------------------
# OBV, VWAP, EWMA
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, error_model="numpy")
def obv_step(obv: float, prev_close: float, close: float, volume: float, is_first: bool) -> float:
    """One On-Balance-Volume update with TA-Lib ``TA_OBV`` semantics.

    The first bar seeds OBV with ``+volume`` (not 0). Afterwards a close above the previous close
    adds ``volume``, below subtracts it, equal leaves OBV unchanged. Any comparison involving a NaN
    close is false, so a NaN close counts as unchanged and, passed as the next ``prev_close``, also
    blocks the next comparison; a NaN volume poisons OBV only when it is added or subtracted. This
    is exactly the C loop of ``ta_OBV.c``.

    Args:
        obv: OBV after the previous bar, units (ignored when ``is_first``).
        prev_close: previous bar's close, rupees (may be NaN).
        close: this bar's close, rupees.
        volume: this bar's traded quantity, units.
        is_first: true for the seed bar.

    Returns:
        OBV after this bar, units.
    """
    if is_first:
        return float(volume)
    if close > prev_close:
        return obv + volume
    if close < prev_close:
        return obv - volume
    return float(obv)


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
def vwap_step(
    pv_sum: float, v_sum: float, price: float, volume: float
) -> tuple[float, float, float]:
    """Accumulate one print into a VWAP.

    A print with a non-finite or non-positive price, or a volume that is not a positive finite
    number, is skipped (the sums are returned unchanged).

    Args:
        pv_sum: Σ price·volume so far, rupees·units.
        v_sum: Σ volume so far, units.
        price: print price, rupees.
        volume: print quantity, units.

    Returns:
        ``(pv_sum, v_sum, vwap)``; ``vwap`` in rupees, NaN while ``v_sum`` is 0.
    """
    if price > 0 and math.isfinite(price) and volume > 0 and math.isfinite(volume):
        pv_sum = pv_sum + price * volume
        v_sum = v_sum + volume
    if v_sum > 0:
        return float(pv_sum), float(v_sum), pv_sum / v_sum
    return float(pv_sum), float(v_sum), math.nan


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
def vwap_deviation_pct(price: float, vwap: float) -> float:
    """Percentage distance of ``price`` from ``vwap``: (price − vwap)/vwap·100.

    Args:
        price: price, rupees.
        vwap: VWAP, rupees.

    Returns:
        Deviation in percent; NaN if ``vwap`` is not finite or ≤ 0 (or ``price`` is NaN).
    """
    if not (vwap > 0 and math.isfinite(vwap)):
        return math.nan
    return (price - vwap) / vwap * 100.0


@njit(cache=True, nogil=True, error_model="numpy")
def ewma_step(prev: float, x: float, alpha: float, is_first: bool) -> float:
    """Exponentially weighted moving average update ``prev + alpha·(x − prev)``.

    A non-finite ``x`` is skipped (``prev`` is returned). The first finite ``x`` (``is_first`` or a
    NaN ``prev``) seeds the average. ``alpha`` is clipped to [0, 1]; NaN counts as 0.

    Args:
        prev: previous average, in the unit of ``x``.
        x: new observation.
        alpha: smoothing weight of the new observation, dimensionless in (0, 1].
        is_first: true for the first observation.

    Returns:
        The updated average.
    """
    if not math.isfinite(x):
        return float(prev)
    if is_first or not math.isfinite(prev):
        return float(x)
    a = alpha
    if not a > 0:
        return float(prev)
    a = min(a, 1.0)
    return prev + a * (x - prev)


# ---------------------------------------------------------------------------------------------
# trade classification and CVD
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, error_model="numpy")
def tick_rule(price: float, prev_price: float, prev_sign: float) -> int:
    """Tick test: uptick +1, downtick −1, zero tick keeps ``prev_sign``, no previous price 0.

    Args:
        price: trade price, rupees.
        prev_price: previous trade price, rupees (NaN or ≤ 0 = none).
        prev_sign: sign to keep on a zero tick (only its sign is used).

    Returns:
        The sign, an int in {−1, 0, +1}; 0 also when ``price`` is not a positive finite number.
    """
    if not (price > 0 and math.isfinite(price)):
        return 0
    if not (prev_price > 0 and math.isfinite(prev_price)):
        return 0
    c = _cmp_px(price, prev_price)
    if c == 0:
        return _sign(prev_sign)
    return c


@njit(cache=True, nogil=True, error_model="numpy")
def classify_trade(
    price: float, prev_bid: float, prev_ask: float, prev_price: float, prev_sign: float
) -> tuple[int, int]:
    """Lee-Ready classification of a trade against the previous snapshot's (lagged) quote.

    Exactly:

    1. ``price`` not a positive finite number → ``(0, 0)``.
    2. The quote is valid when both sides are finite, ``prev_bid > 0`` and
       ``prev_bid ≤ prev_ask`` (a crossed or one-sided quote is invalid). With a valid quote and
       ``price`` strictly above the mid → ``(+1, 1)``, strictly below → ``(−1, 1)``. Prices at or
       beyond a quote side are covered by this and are confident too.
    3. Otherwise (at the mid within 1e-9 relative, or no valid quote) the tick rule decides with
       ``confident = 0``: uptick vs ``prev_price`` → +1, downtick → −1, zero tick → sign of
       ``prev_sign``, no previous price (NaN or ≤ 0) → 0.

    For the textbook Lee-Ready, ``prev_sign`` is the previous trade's *tick-test* sign (the
    direction of the last non-zero price change), which is what ``cvd_step`` passes.

    Args:
        price: trade price (the snapshot's LTP), rupees.
        prev_bid: best bid of the previous snapshot, rupees (≤ 0 or NaN = empty).
        prev_ask: best ask of the previous snapshot, rupees (≤ 0 or NaN = empty).
        prev_price: previous trade price, rupees (NaN or ≤ 0 = none).
        prev_sign: tick-test sign of the previous trade, in {−1, 0, +1}.

    Returns:
        ``(sign, confident)``: sign in {−1, 0, +1}; confident 1 if the quote decided, else 0.
    """
    if not (price > 0 and math.isfinite(price)):
        return 0, 0
    if (
        math.isfinite(prev_bid)
        and math.isfinite(prev_ask)
        and prev_bid > 0
        and prev_bid <= prev_ask
    ):
        c = _cmp_px(2.0 * price, prev_bid + prev_ask)
        if c != 0:
            return c, 1
    return tick_rule(price, prev_price, prev_sign), 0


@njit(cache=True, nogil=True, error_model="numpy")
def cvd_step(
    cvd: float,
    price: float,
    volume: float,
    prev_bid: float,
    prev_ask: float,
    last_price: float,
    tick_sign: float,
) -> tuple[float, int, int, float, int]:
    """One snapshot of cumulative volume delta with Lee-Ready classification.

    A snapshot with no trade (``volume`` not a positive finite number, e.g. Δ(day volume) = 0, or a
    bad price) leaves every state unchanged and reports sign 0. Otherwise the trade is classified
    by ``classify_trade(price, prev_bid, prev_ask, last_price, tick_sign)``, ``cvd`` moves by
    ``sign·volume``, and the tick state advances: ``last_price = price`` and
    ``tick_sign = tick_rule(price, last_price, tick_sign)``. Pass NaN quotes for a pure tick rule.

    Args:
        cvd: CVD so far, units.
        price: this snapshot's LTP, rupees.
        volume: quantity traded since the previous snapshot (Δ day volume), units.
        prev_bid: previous snapshot's best bid, rupees (NaN/≤ 0 = none).
        prev_ask: previous snapshot's best ask, rupees (NaN/≤ 0 = none).
        last_price: price of the previous trade, rupees (NaN = none yet).
        tick_sign: tick-test sign of the previous trade, int in {−1, 0, +1}.

    Returns:
        ``(cvd, sign, confident, last_price, tick_sign)`` after this snapshot.
    """
    if not (volume > 0 and math.isfinite(volume) and price > 0 and math.isfinite(price)):
        return float(cvd), 0, 0, float(last_price), _sign(tick_sign)
    sign, confident = classify_trade(price, prev_bid, prev_ask, last_price, tick_sign)
    new_tick = tick_rule(price, last_price, tick_sign)
    return cvd + sign * volume, sign, confident, float(price), new_tick


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


# ---------------------------------------------------------------------------------------------
# order-flow imbalance and book pressure
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, error_model="numpy")
def _level_e(
    bp: float, bq: float, ap: float, aq: float, pbp: float, pbq: float, pap: float, paq: float
) -> float:
    """CKS e_n for one level; empty bids become (−inf, 0), empty asks (+inf, 0)."""
    if not (bp > 0 and math.isfinite(bp)):
        bp, bq = -math.inf, 0.0
    if not (pbp > 0 and math.isfinite(pbp)):
        pbp, pbq = -math.inf, 0.0
    if not (ap > 0 and math.isfinite(ap)):
        ap, aq = math.inf, 0.0
    if not (pap > 0 and math.isfinite(pap)):
        pap, paq = math.inf, 0.0
    bq = _pos(bq)
    pbq = _pos(pbq)
    aq = _pos(aq)
    paq = _pos(paq)
    cb = _cmp_px(bp, pbp)
    ca = _cmp_px(ap, pap)
    e = 0.0
    if cb >= 0:
        e += bq
    if cb <= 0:
        e -= pbq
    if ca <= 0:
        e -= aq
    if ca >= 0:
        e += paq
    return e


@njit(cache=True, nogil=True, error_model="numpy")
def ofi_step(
    bid_px: float,
    bid_qty: float,
    ask_px: float,
    ask_qty: float,
    prev_bid_px: float,
    prev_bid_qty: float,
    prev_ask_px: float,
    prev_ask_qty: float,
) -> float:
    """Order-flow imbalance e_n of one best-quote update (Cont, Kukanov & Stoikov 2014).

    e_n = 1{Pᵇ≥Pᵇ₋}qᵇ − 1{Pᵇ≤Pᵇ₋}qᵇ₋ − 1{Pᵃ≤Pᵃ₋}qᵃ + 1{Pᵃ≥Pᵃ₋}qᵃ₋. An empty side (price ≤ 0 or
    NaN) is treated as a bid at −∞ / an ask at +∞ with quantity 0, so a side that empties removes
    its previous quantity and a side that appears adds its new one. NaN or negative quantities
    count as 0. Positive e = buying pressure.

    Args:
        bid_px: best bid now, rupees.
        bid_qty: quantity at the best bid now, units.
        ask_px: best ask now, rupees.
        ask_qty: quantity at the best ask now, units.
        prev_bid_px: best bid at the previous update, rupees.
        prev_bid_qty: quantity at the previous best bid, units.
        prev_ask_px: best ask at the previous update, rupees.
        prev_ask_qty: quantity at the previous best ask, units.

    Returns:
        e_n, units.
    """
    return _level_e(
        bid_px, bid_qty, ask_px, ask_qty, prev_bid_px, prev_bid_qty, prev_ask_px, prev_ask_qty
    )


@njit(cache=True, nogil=True, error_model="numpy")
def ofi_multilevel(
    bid_px5: FloatArray,
    bid_qty5: FloatArray,
    ask_px5: FloatArray,
    ask_qty5: FloatArray,
    prev_bid_px5: FloatArray,
    prev_bid_qty5: FloatArray,
    prev_ask_px5: FloatArray,
    prev_ask_qty5: FloatArray,
    out_e5: FloatArray,
) -> float:
    """Multi-level OFI (Xu, Gould & Howison 2019): the CKS e_n applied to each depth level m.

    Level m compares the m-th best bid/ask now with the m-th best at the previous update, exactly as
    ``ofi_step`` (an empty level, price ≤ 0, is a bid at −∞ / an ask at +∞ with quantity 0). The
    per-level vector goes to ``out_e5``; the return value is the **plain (unweighted) sum** over
    levels. The plain sum reduces exactly to ``ofi_step`` when only level 1 is populated and leaves
    any depth weighting (XGH fit per-level coefficients) to the caller, who has the vector.

    Args:
        bid_px5: float64[5] bid prices now, best first, rupees.
        bid_qty5: float64[5] bid quantities now, units.
        ask_px5: float64[5] ask prices now, best first, rupees.
        ask_qty5: float64[5] ask quantities now, units.
        prev_bid_px5: float64[5] bid prices at the previous update, rupees.
        prev_bid_qty5: float64[5] bid quantities at the previous update, units.
        prev_ask_px5: float64[5] ask prices at the previous update, rupees.
        prev_ask_qty5: float64[5] ask quantities at the previous update, units.
        out_e5: float64[5] out: e_n per level, units.

    Returns:
        Σ over levels of e_n, units.
    """
    m = min(
        len(bid_px5),
        len(bid_qty5),
        len(ask_px5),
        len(ask_qty5),
        len(prev_bid_px5),
        len(prev_bid_qty5),
        len(prev_ask_px5),
        len(prev_ask_qty5),
        len(out_e5),
    )
    total = 0.0
    for k in range(m):
        e = _level_e(
            bid_px5[k],
            bid_qty5[k],
            ask_px5[k],
            ask_qty5[k],
            prev_bid_px5[k],
            prev_bid_qty5[k],
            prev_ask_px5[k],
            prev_ask_qty5[k],
        )
        out_e5[k] = e
        total += e
    for k in range(m, len(out_e5)):
        out_e5[k] = 0.0
    return total


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
        out_e[i] = _level_e(
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
def book_pressure(
    total_buy_qty: float, total_sell_qty: float, bid_qty5: FloatArray, ask_qty5: FloatArray
) -> tuple[float, float]:
    """Bid/ask pressure from the exchange's total pending quantities and from the visible depth.

    NaN or negative quantities count as 0.

    Args:
        total_buy_qty: total pending buy quantity (SmartStream ``total_buy_quantity``), units.
        total_sell_qty: total pending sell quantity, units.
        bid_qty5: float64[5] quantities at the five best bids, units.
        ask_qty5: float64[5] quantities at the five best asks, units.

    Returns:
        ``(pressure, depth_imbalance)``, each in [−1, 1] and 0 when its denominator is 0:
        pressure = (tbq − tsq)/(tbq + tsq); depth_imbalance = (Σbid − Σask)/(Σbid + Σask).
    """
    b = _pos(total_buy_qty)
    s = _pos(total_sell_qty)
    pressure = _ratio(b - s, b + s)
    sb = 0.0
    for k in range(len(bid_qty5)):
        sb += _pos(bid_qty5[k])
    sa = 0.0
    for k in range(len(ask_qty5)):
        sa += _pos(ask_qty5[k])
    return pressure, _ratio(sb - sa, sb + sa)


# ---------------------------------------------------------------------------------------------
# impact, whales, hidden liquidity
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, error_model="numpy")
def walk_book_impact(
    qty: float, px5: FloatArray, qty5: FloatArray, side: int = 0, tick: float = 0.05
) -> tuple[float, float, float]:
    """Average fill and impact of a market order that walks the visible levels of one side.

    Levels are taken best first (asks ascending for a buy, bids descending for a sell); a level
    with price or quantity not a positive finite number is empty and skipped. If the visible depth
    is exhausted, the remainder is assumed to fill at ``last + gap`` where ``last`` is the last
    visible level and ``gap`` is one level-gap away from the touch: its magnitude is the mean
    spacing of the visible levels, ``|last − best|/(levels − 1)``, but at least ``tick``; its
    direction is ``side`` (+1 asks/up, −1 bids/down) or, when ``side`` is 0, the direction of the
    visible levels (with a single visible level and ``side`` 0 the gap is 0). An extrapolated bid
    price is floored at 0.

    Args:
        qty: quantity to execute, units.
        px5: float64[5] level prices of the side consumed, best first, rupees.
        qty5: float64[5] level quantities, units.
        side: +1 for a buy walking asks, −1 for a sell walking bids, 0 to infer (default 0).
        tick: minimum level-gap for extrapolation, rupees (default 0.05, the NSE option tick).

    Returns:
        ``(avg_fill_px, impact_px, filled_qty)``: average fill price in rupees (including any
        extrapolated remainder), ``|avg_fill_px − best|`` in rupees (≥ 0), and the quantity
        filled from visible depth in units. ``qty`` ≤ 0 or NaN gives ``(best, 0, 0)``; a side with
        no visible level gives ``(NaN, NaN, 0)``.
    """
    n = min(len(px5), len(qty5))
    best = math.nan
    last = math.nan
    levels = 0
    want = qty if (qty > 0 and math.isfinite(qty)) else 0.0
    remaining = want
    avg = 0.0
    filled = 0.0
    for k in range(n):
        p = px5[k]
        q = qty5[k]
        if not (p > 0 and math.isfinite(p) and q > 0 and math.isfinite(q)):
            continue
        if levels == 0:
            best = p
        last = p
        levels += 1
        if remaining > 0:
            take = min(q, remaining)
            avg += (take / want) * p  # fractions, so that tiny sizes do not underflow
            filled += take
            remaining -= take
    if levels == 0:
        return math.nan, math.nan, 0.0
    if want == 0.0:
        return float(best), 0.0, 0.0
    if remaining > 0:
        spacing = (last - best) / (levels - 1) if levels > 1 else 0.0
        direction = _sign(side) if side != 0 else _sign(spacing)
        mag = max(abs(spacing), tick if tick > 0 else 0.0)
        ext = max(last + direction * mag, 0.0)
        avg += (remaining / want) * ext
    return avg, abs(avg - best), filled


@njit(cache=True, nogil=True, error_model="numpy")
def is_whale(
    traded_value: float,
    dvol: float,
    avg_dvol: float,
    value_threshold: float,
    volume_multiple: float,
) -> bool:
    """Whale print: a large traded value or a volume spike over the average interval volume.

    True iff ``traded_value > 0 and traded_value ≥ value_threshold``, or
    ``avg_dvol > 0 and dvol > 0 and dvol ≥ volume_multiple·avg_dvol``. NaNs never match. (The
    ``> 0`` guards stop an interval with no trade from matching a zero threshold.)

    Args:
        traded_value: premium traded in the interval (Δvolume × price), rupees.
        dvol: quantity traded in the interval, units.
        avg_dvol: average quantity traded per interval (e.g. an EWMA of ``dvol``), units.
        value_threshold: value threshold, rupees (suggested ``DEFAULT_WHALE_VALUE_INR``).
        volume_multiple: spike multiple of ``avg_dvol``, dimensionless (the seed uses 3).

    Returns:
        Whether the interval is a whale print.
    """
    if traded_value > 0 and traded_value >= value_threshold:
        return True
    return bool(avg_dvol > 0 and dvol > 0 and dvol >= volume_multiple * avg_dvol)


@njit(cache=True, nogil=True, error_model="numpy")
def hidden_liquidity(
    displayed_qty_at_start: float, traded_qty_at_price: float, level_survived: bool
) -> float:
    """Lower bound of hidden/replenished quantity at a price level (flow.md proxy for "dark pool").

    If the level survived the interval (the same price is still the best level at its end), at
    least ``traded − displayed`` was not visible at the start: hidden = max(0, traded − displayed).
    If it did not survive, nothing can be inferred and 0 is returned. Non-finite inputs give 0;
    a negative displayed quantity counts as 0. On 1-s snapshots this measures icebergs plus rapid
    re-posting; sum it per strike and side and normalise by displayed depth downstream.

    Args:
        displayed_qty_at_start: quantity displayed at the level at the interval start, units.
        traded_qty_at_price: quantity traded at that price during the interval, units.
        level_survived: true if the same price is still the best level at the interval end.

    Returns:
        Hidden quantity lower bound, units (≥ 0).
    """
    if not level_survived:
        return 0.0
    if not (math.isfinite(displayed_qty_at_start) and math.isfinite(traded_qty_at_price)):
        return 0.0
    h = traded_qty_at_price - max(displayed_qty_at_start, 0.0)
    return h if h > 0 else 0.0


# ---------------------------------------------------------------------------------------------
# urgency, confluence, recommendation, timing
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, error_model="numpy")
def execution_urgency(
    ofi_norm: float,
    pressure: float,
    vwap_dev_pct: float,
    spread_ticks: float,
    vwap_dev_scale_pct: float = 2.0,
    w_ofi: float = 0.4,
    w_pressure: float = 0.3,
    w_vwap: float = 0.3,
    medium_at: float = 0.25,
    high_at: float = 0.5,
    critical_at: float = 0.75,
    wide_spread_ticks: float = 5.0,
) -> int:
    """Execution urgency from the directional consensus of book flow and price vs VWAP.

    score = |w_ofi·clip(ofi_norm) + w_pressure·clip(pressure) + w_vwap·clip(vwap_dev_pct/scale)|
    with each term clipped to [−1, 1] (NaN → 0) and the default weights summing to 1, so
    score ∈ [0, 1]. Signed terms make disagreement cancel: urgency is high only when OFI, resting
    pressure and the price's side of VWAP all point the same way. The VWAP term saturates at the
    seed's 2 % deviation threshold. Level: score ≥ ``critical_at`` → CRITICAL (3), ≥ ``high_at`` →
    HIGH (2), ≥ ``medium_at`` → MEDIUM (1), else LOW (0). Then one level is removed (not below LOW)
    when the spread is wide — ``spread_ticks`` > ``wide_spread_ticks``, negative or NaN (no valid
    quote) — since crossing a wide or missing quote is costly and patience pays there. The result
    is symmetric under flipping the sign of all three flow inputs.

    Args:
        ofi_norm: normalised OFI (e.g. OFI / visible depth), dimensionless in [−1, 1].
        pressure: book pressure from ``book_pressure``, dimensionless in [−1, 1].
        vwap_dev_pct: price deviation from VWAP, percent.
        spread_ticks: bid-ask spread of the traded contract, ticks.
        vwap_dev_scale_pct: deviation at which the VWAP term saturates, percent (default 2).
        w_ofi: weight of OFI (default 0.4: the strongest short-horizon price predictor, CKS).
        w_pressure: weight of book pressure (default 0.3).
        w_vwap: weight of the VWAP deviation (default 0.3).
        medium_at: score threshold for MEDIUM (default 0.25).
        high_at: score threshold for HIGH (default 0.5).
        critical_at: score threshold for CRITICAL (default 0.75).
        wide_spread_ticks: spread above which urgency is lowered by one level, ticks (default 5).

    Returns:
        Urgency code 0..3 (``URGENCY_NAMES``).
    """
    v = 0.0
    if vwap_dev_scale_pct > 0:
        v = _clip1(vwap_dev_pct / vwap_dev_scale_pct)
    score = abs(w_ofi * _clip1(ofi_norm) + w_pressure * _clip1(pressure) + w_vwap * v)
    level = 0
    if score >= critical_at:
        level = 3
    elif score >= high_at:
        level = 2
    elif score >= medium_at:
        level = 1
    if not (spread_ticks >= 0 and spread_ticks <= wide_spread_ticks) and level > 0:
        level -= 1
    return level


@njit(cache=True, nogil=True, error_model="numpy")
def timing_window_s(urgency: int) -> float:
    """Execution timing window for an urgency code (the seed's 30-300 s range).

    LOW → 300 s, MEDIUM → 120 s, HIGH → 60 s, CRITICAL → 30 s (roughly halving per level); codes
    outside 0..3 are clipped.

    Args:
        urgency: urgency code from ``execution_urgency``.

    Returns:
        Window length, seconds.
    """
    if urgency >= 3:
        return 30.0
    if urgency == 2:
        return 60.0
    if urgency == 1:
        return 120.0
    return 300.0


@njit(cache=True, nogil=True, error_model="numpy")
def confluence_score(
    cvd_slope_norm: float,
    ofi_norm: float,
    vwap_side: float,
    signal_direction: float,
    signal_strength: float,
    w_cvd: float = 0.4,
    w_ofi: float = 0.4,
    w_vwap: float = 0.2,
) -> float:
    """Agreement of the underlying future's flow with an options signal, in [−1, 1].

    flow = (w_cvd·clip(cvd_slope_norm) + w_ofi·clip(ofi_norm) + w_vwap·sign(vwap_side)) / Σw,
    score = sign(signal_direction) · clip(signal_strength, 0, 1) · flow.
    Positive = the future's flow confirms the signal, negative = it contradicts it; 0 for a
    neutral signal or zero strength. Default weights: CVD 0.4 (aggressor volume actually traded)
    and OFI 0.4 (resting-book pressure, the best short-horizon predictor) share most of the
    weight; the VWAP side 0.2 is a coarse, lagging regime flag. NaN inputs count as 0.

    Args:
        cvd_slope_norm: normalised CVD slope of the future, dimensionless in [−1, 1].
        ofi_norm: normalised OFI of the future, dimensionless in [−1, 1].
        vwap_side: side of the future's price vs its VWAP, in {−1, 0, +1}.
        signal_direction: options signal direction, +1 calls / −1 puts / 0 neutral.
        signal_strength: options signal strength, dimensionless in [0, 1].
        w_cvd: weight of the CVD slope (default 0.4).
        w_ofi: weight of OFI (default 0.4).
        w_vwap: weight of the VWAP side (default 0.2).

    Returns:
        Confluence score in [−1, 1].
    """
    d = _sign(signal_direction)
    s = signal_strength if signal_strength > 0 else 0.0
    s = min(s, 1.0)
    wsum = abs(w_cvd) + abs(w_ofi) + abs(w_vwap)
    if d == 0 or s == 0.0 or not wsum > 0:
        return 0.0
    flow = w_cvd * _clip1(cvd_slope_norm) + w_ofi * _clip1(ofi_norm) + w_vwap * _sign(vwap_side)
    return _clip1(d * s * flow / wsum)


@njit(cache=True, nogil=True, error_model="numpy")
def execution_recommendation(
    score: float, cautious_at: float = 0.2, execute_at: float = 0.4, strong_at: float = 0.6
) -> tuple[int, float]:
    """Recommendation and position-size multiplier from a confluence score.

    score < ``cautious_at`` (including every negative score: the flow contradicts the signal, and
    NaN) → HOLD ×0; < ``execute_at`` → CAUTIOUS_EXECUTE ×0.5; < ``strong_at`` → EXECUTE ×1.0;
    otherwise STRONG_EXECUTE ×1.5. The multiplier is non-decreasing in the score and 0 for HOLD.
    With the default even 0.2 steps, STRONG needs e.g. strength ≥ 0.6 with full flow agreement.

    Args:
        score: confluence score from ``confluence_score``, in [−1, 1].
        cautious_at: lowest score for CAUTIOUS_EXECUTE (default 0.2).
        execute_at: lowest score for EXECUTE (default 0.4).
        strong_at: lowest score for STRONG_EXECUTE (default 0.6).

    Returns:
        ``(code, size_multiplier)``: code 0..3 (``RECOMMENDATION_NAMES``), multiplier in [0, 1.5].
    """
    if score >= strong_at:
        return 3, 1.5
    if score >= execute_at:
        return 2, 1.0
    if score >= cautious_at:
        return 1, 0.5
    return 0, 0.0


# ---------------------------------------------------------------------------------------------
# VPIN (descriptive only)
# ---------------------------------------------------------------------------------------------


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
