"""Order-flow kernels: OBV, VWAP, CVD (tick rule / Lee-Ready), OFI, book pressure, impact.

Definitions and golden series: ``reference/flow.md``. Every function is a pure numba kernel (scalars
and 1-D contiguous arrays in; scalars, tuples or preallocated ``out_*`` arrays out; never raises).
Prices are float64 **rupees**, quantities float64 **units** (contracts × lot, as SmartStream sends
them). The daemon calls the scalar ``*_step`` functions from inside its own kernels; the series
versions and VPIN (tests and offline work) are in ``flow_series.py``, which the daemon never
imports, and the decisions read from Python (urgency, confluence) are plain Python in
analytics/flow.py.

SmartStream sends snapshots, not trades. The quantity traded between two snapshots of a contract is
Δ(day volume), and it is classified by comparing the snapshot's LTP with the **previous** snapshot's
best bid/ask (the lagged, prevailing quote of Lee & Ready 1991). One snapshot can aggregate several
trades, so the classification is approximate.

Price equality (zero tick, "at the mid", "same level") uses a relative tolerance of 1e-9, so prices
converted from integer paise compare equal however they were computed.

The urgency and recommendation codes (``URGENCY_*``, ``REC_*``) and their names live here, next
to the other flow codes; analytics/flow.py computes them.
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
# bar windows
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, error_model="numpy")
def window_sums(
    bars: np.ndarray, row: int, cols: IntArray, head: int, n: int, out: FloatArray
) -> None:
    """``out[i]`` = NaN-as-0 sum of ``bars[row, cols[i]]`` over the ``n`` newest ring slots.

    The newest slot is ``head``; ``n`` ≤ 128 and the ring's length. Additions are done in
    numpy's order for a contiguous block this short — newest first, eight running sums from the
    eighth element on, folded pairwise — so each sum is bit-identical to ``np.nansum`` of the
    newest-first slots (what the flow views summed before; the test checks it).
    """
    size = bars.shape[2]
    r = np.empty(8)
    for ci in range(cols.size):
        col = cols[ci]
        res = 0.0
        if n < 8:
            for k in range(n):
                s = head - k
                if s < 0:
                    s += size
                x = bars[row, col, s]
                res += x if x == x else 0.0
        else:
            for j in range(8):
                s = head - j
                if s < 0:
                    s += size
                x = bars[row, col, s]
                r[j] = x if x == x else 0.0
            k = 8
            whole = n - n % 8
            while k < whole:
                for j in range(8):
                    s = head - k - j
                    if s < 0:
                        s += size
                    x = bars[row, col, s]
                    r[j] += x if x == x else 0.0
                k += 8
            res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
            while k < n:
                s = head - k
                if s < 0:
                    s += size
                x = bars[row, col, s]
                res += x if x == x else 0.0
                k += 1
        out[ci] = res
