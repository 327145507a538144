"""Smart-money detectors (seeds/phase4-integration-guide.md), run once per closed bar.

Every threshold comes in through ``p`` (``P_*`` columns, filled from ``SmartMoneyConfig``). Where
the seed is vague, these are the definitions, chosen to be defensible rather than decorative:

Units
    OI thresholds are in **lots** (contracts), the unit NSE's option chain and traders quote; the
    feed's OI (units) is divided by the lot size. ``trap_theta_aggressive_threshold`` is a **burn
    rate**: |θ per calendar day| / premium (0.5 = the option loses half its value per day to time),
    because a rupee theta means nothing without the premium it eats. Gamma thresholds are per
    **1 % move** of the underlying: Γ·S·0.01, the change of delta for a 1 % move (0.02 = "flat").

OI build-up (with OI staleness)
    Exchanges publish OI only every so often, so comparing OI bar to bar mostly reads "OI flat"
    and comparing it across a price move that happened between two OI prints reads noise. We
    classify the interval between the last two OI *updates*: ΔOI = OI − OI before the update,
    Δprice and volume over the same interval (prices and volumes stamped at each update). A
    direction needs |ΔOI| ≥ ``buildup_min_oi_change_pct`` of OI and |Δprice| ≥
    ``buildup_min_price_change_pct`` of the premium (and at least one tick); the interval must have
    traded at least |ΔOI| (an OI change cannot come from less). The state holds until the next
    update; once OI has not moved for ``oi_stale_s`` while the contract kept trading, it is
    reported as *stale* (state NONE, ``oi_stale`` set) instead of "OI flat". Confidence
    = 0.4·(1 − e^{−|ΔOI%|/2}) + 0.35·(1 − e^{−|Δp%|/1}) + 0.25·min(1, interval volume rate ÷
    average bar volume rate / 2).

Volume state
    ratio = bar volume ÷ mean volume of the previous ``baseline_bars`` bars (at least
    ``min_baseline_bars`` with a positive mean, else NORMAL): NORMAL < spike ≤ SPIKE < burst ≤
    BURST < aggressive ≤ AGGRESSIVE. Aggression ∈ [0, 1] = clip((ratio − 1) ÷ (aggressive − 1))
    × (0.5 + 0.5·|bar CVD| ÷ bar volume): a spike that trades one-sidedly is more aggressive than
    one that crosses the spread both ways. Trend = sign of the least-squares slope of the last
    five bars' volume (±5 % of the mean counts as flat).

Cross-validation (OI × greeks × volume)
    Δ↑ means the contract *gained* delta, i.e. moved toward the money: delta rose for a call,
    fell for a put (the seed's "PE Δ −0.35 → −0.32, less bearish" is the same event read from the
    underlying's side). Vol↑ = bar volume at or above its average. Patterns, strongest first:
    TRAP (Δ↑ OI↓ Vol↑, 0.05, BLOCK), THETA_TRAP (burn ≥ threshold and Vol↑, 0.1, BLOCK),
    EXPLOSIVE (Γ up ≥ ``explosive_gamma_rise_pct`` with a live fresh position, 0.9, PROCEED),
    SMART_ENTRY (Δ↑ OI↑ Vol↑, 0.95, PROCEED), REVERSAL (Δ↓ OI↑ Vol↑, 0.4, CAUTION); none →
    CAUTION 0.5 (nothing validated, nothing contradicted).

Fresh positions
    AGGRESSIVE_ENTRY: the last OI update (inside this bar) jumped ≥ ``fresh_position_oi_jump`` of
    the OI before it, with bar volume ≥ ``fresh_position_volume_surge`` × average. FIRST_ENTRY: a
    contract that traded nothing in its baseline bars trades now and its OI rose. ADJUSTMENT:
    volume ≥ the surge multiple with |ΔOI| < half the jump threshold (positions rolled or
    adjusted, not added). A detection lives ``fresh_position_max_age_seconds``. Strength =
    ½·min(1, jump ÷ (2·threshold)) + ½·min(1, ratio ÷ (2·surge)); expected move = the 1-σ premium
    move over the horizon: |Δ|·F·σ·√(horizon/year).

Traps (bits; probability = 1 − Π(1 − pᵢ); blocked when > 1 trap or probability > 0.75)
    SCALPER_TRAP OI < ``trap_low_oi_threshold`` lots and volume ratio ≥ 3 (p 0.8–0.95 with the
    ratio: it blocks on its own); NOISE_TRAP Γ per 1 % < ``trap_noise_gamma_threshold`` and
    volume ≥ spike (0.4); THETA_CRUSH burn ≥ threshold and DTE < ``theta_crush_dte_days``
    (0.6–0.9 with the burn); REVERSAL_TRAP volume ≥ burst in a bar of at least
    ``reversal_min_range_ticks`` that pushed to a new ``reversal_lookback_bars`` extreme and closed
    back more than ``reversal_retrace`` of its range (0.5); LIQUIDITY_TRAP far OTM
    (|Δ| ≤ ``liquidity_max_delta``) with OI < 2 × the low-OI threshold or a spread wider than
    ``liquidity_max_spread_pct`` of the mid (0.45).

Battlefield (ATM ± ``ce_pe_atm_range`` strikes)
    CE OI share = ΣOI_CE ÷ ΣOI; CE volume share over the last ``battle_window_bars`` bars (recent
    flow, not the day's total which the morning dominates); delta skew = share of delta-weighted
    OI held in calls, Σ|Δ|·OI over CE ÷ over both (0.5 balanced). BULLISH_CONTROL when all three
    exceed ``ce_pe_control_threshold``; BEARISH_CONTROL when all three are below 1 − it; BALANCED
    when all three lie within ±0.05 of 0.5; otherwise NEUTRAL_CHOP. (As the seed has it, call
    dominance reads bullish; OI alone cannot say who is long, which is why all three must agree.)
    War intensity = (1 − 2·|volume share − ½|) × min(1, recent zone volume ÷ its baseline): how
    contested *and* how busy. Trend = change of the CE OI share over the window (±0.01).
"""

import math

import numpy as np
from numba import njit

from smartflow.kernels import layout as L


# ---- codes (names live in smartflow.analytics.detectors) -------------------------------------
BUILDUP_NONE = 0
BUILDUP_LONG = 1
BUILDUP_SHORT = 2
BUILDUP_COVERING = 3
BUILDUP_UNWINDING = 4

VOL_NORMAL = 0
VOL_SPIKE = 1
VOL_BURST = 2
VOL_AGGRESSIVE = 3

FRESH_NONE = 0
FRESH_AGGRESSIVE = 1
FRESH_FIRST = 2
FRESH_ADJUSTMENT = 3

TRAP_SCALPER = 1
TRAP_NOISE = 2
TRAP_THETA = 4
TRAP_REVERSAL = 8
TRAP_LIQUIDITY = 16

XV_NONE = 0
XV_SMART_ENTRY = 1
XV_TRAP = 2
XV_REVERSAL = 3
XV_EXPLOSIVE = 4
XV_THETA_TRAP = 5

VERDICT_PROCEED = 0
VERDICT_CAUTION = 1
VERDICT_BLOCK = 2

CONTROL_BULLISH = 0
CONTROL_BEARISH = 1
CONTROL_BALANCED = 2
CONTROL_CHOP = 3

# ---- parameters (p) ----------------------------------------------------------------------------
P_VOLUME_SPIKE = 0
P_VOLUME_BURST = 1
P_VOLUME_AGGRESSIVE = 2
P_TRAP_LOW_OI = 3
P_TRAP_NOISE_GAMMA = 4
P_TRAP_THETA = 5
P_FRESH_OI_JUMP = 6
P_FRESH_VOL_SURGE = 7
P_FRESH_MAX_AGE_S = 8
P_ATM_RANGE = 9
P_CONTROL = 10
P_OI_STALE_S = 11
P_MIN_OI_PCT = 12
P_MIN_PX_PCT = 13
P_BASELINE_BARS = 14
P_MIN_BASELINE_BARS = 15
P_BATTLE_BARS = 16
P_CRUSH_DTE = 17
P_LIQ_DELTA = 18
P_LIQ_SPREAD_PCT = 19
P_REVERSAL_RETRACE = 20
P_REVERSAL_LOOKBACK = 21
P_EXPLOSIVE_GAMMA_PCT = 22
P_BLOCK_PROB = 23
P_BAR_SECONDS = 24
P_REVERSAL_MIN_TICKS = 25
P_MIN_NET_VOTE = 26
NP = 27

# ---- the assembled signal (``sig_i`` / ``sig_f`` of ``assemble``) ------------------------------
REC_NEUTRAL = 0
REC_BUY_CALL = 1
REC_BUY_PUT = 2
REC_AVOID = 3

SOURCE_BUILDUP = 0
SOURCE_FRESH = 1

SI_N_VOTES = 0
SI_DIRECTION = 1  # +1 bullish, -1 bearish, 0 below the net-vote threshold
SI_DRIVER = 2
SI_TRADE_ROW = 3
SI_PATTERN = 4  # the driver's cross-validation read in the signal's direction
SI_VERDICT = 5
SI_REC = 6  # REC_*: AVOID when a trap or the cross-validation blocks
SI_FRESH = 7  # a live fresh position on the driver or the trade contract
SI_OPPOSING = 8  # market control opposes the direction
SI_FRESH_NS = 9  # newest live fresh-position detection on any option
SI_N_TOP = 10
SI_TOP = 11  # .. SI_TOP + 4: indices into ``votes`` of the strongest voters
NSI = SI_TOP + 5

SF_NET = 0
SF_OI_CONVICTION = 1
SF_VOL_AGGRESSION = 2
SF_PROBABILITY = 3
SF_TRAP_PROB = 4
SF_QUALITY = 5
# As the signal shows them: the four scores rounded to 4 places, and the fresh position's strength
# on the contract to trade (0 without one).
SF_OI_CONVICTION_SHOWN = 6
SF_VOL_AGGRESSION_SHOWN = 7
SF_PROBABILITY_SHOWN = 8
SF_TRAP_PROB_SHOWN = 9
SF_FRESH_STRENGTH = 10
NSF = 11

V_ROW = 0
V_DIRECTION = 1
V_WEIGHT = 2
V_SOURCE = 3
NV = 4

# ---- evidence numbers (``ev`` of ``assemble``), rounded for display, NaN when not computed ----
# Rows: the top voters in rank order (EV_TOP …), then the driver and the contract to trade.
EV_TOP = 0
EV_DRIVER = 5
EV_TRADE = 6
NEV_ROWS = 7
E_ROW = 0
E_DIRECTION = 1
E_WEIGHT = 2
E_SOURCE = 3
E_BUILDUP_CONF = 4
E_OI_CHG_PCT = 5
E_PX_CHG_PCT = 6
E_INTERVAL_VOL = 7
E_OI_UPDATE_AGE_S = 8
E_VOL_RATIO = 9
E_AGGRESSION = 10
E_XV_QUALITY = 11
E_DELTA_CHG = 12
E_FRESH_OI_JUMP = 13
E_FRESH_VOL_RATIO = 14
E_FRESH_STRENGTH = 15
E_EXPECTED_MOVE = 16
E_TRAP_PROB = 17
E_OI_LOTS = 18
E_GAMMA_1PCT = 19
E_THETA_BURN = 20
E_DTE = 21
E_OI_AGE_S = 22
NE = 23

NS = 1e9
YEAR_S = 365.0 * 86400.0


@njit(cache=True, nogil=True)
def _slot(head, back, ring):
    """Ring slot ``back`` bars before the newest (``head``), for 0 ≤ back < 2·ring.

    Not ``%``: an integer division per ring read was most of the detectors' time.
    """
    s = head - back
    if s < 0:
        s += ring
    return s


@njit(cache=True, nogil=True)
def baseline_volume(bars, row, head, n_valid, n_back):
    """Mean volume of up to ``n_back`` bars before the newest; returns (mean, bars used)."""
    ring = bars.shape[2]
    total = 0.0
    used = 0
    for k in range(1, min(n_back, n_valid - 1) + 1):
        v = bars[row, L.B_VOLUME, _slot(head, k, ring)]
        if v == v:
            total += v
            used += 1
    if used == 0:
        return math.nan, 0
    return total / used, used


@njit(cache=True, nogil=True)
def _volume_state(ratio, p):
    if not (ratio >= p[P_VOLUME_SPIKE]):
        return VOL_NORMAL
    if ratio < p[P_VOLUME_BURST]:
        return VOL_SPIKE
    if ratio < p[P_VOLUME_AGGRESSIVE]:
        return VOL_BURST
    return VOL_AGGRESSIVE


@njit(cache=True, nogil=True)
def _volume_trend(bars, row, head, n_valid):
    ring = bars.shape[2]
    n = min(5, n_valid)
    if n < 3:
        return 0
    sx = sy = sxx = sxy = 0.0
    for k in range(n):
        x = float(k)
        y = bars[row, L.B_VOLUME, _slot(head, n - 1 - k, ring)]
        if y != y:
            return 0
        sx += x
        sy += y
        sxx += x * x
        sxy += x * y
    den = n * sxx - sx * sx
    mean = sy / n
    if den == 0 or mean <= 0:
        return 0
    slope = (n * sxy - sx * sy) / den
    if abs(slope) * n < 0.05 * mean:
        return 0
    return 1 if slope > 0 else -1


@njit(cache=True, nogil=True)
def classify_buildup(d_oi, oi_before, d_px, px_before, interval_vol, tick, p):
    """Build-up state and confidence of one OI-update interval (see module docs).

    Args:
        d_oi: OI change over the interval (units).
        oi_before: OI before the update (units).
        d_px: premium change over the interval (rupees).
        px_before: premium at the interval's start (rupees).
        interval_vol: quantity traded over the interval (units).
        tick: tick size (rupees).
        p: float64[NP] parameters.

    Returns:
        (BUILDUP_* code, ΔOI %, Δprice %).
    """
    if not (oi_before > 0 and px_before > 0):
        return BUILDUP_NONE, math.nan, math.nan
    oi_pct = 100.0 * d_oi / oi_before
    px_pct = 100.0 * d_px / px_before
    if abs(oi_pct) < p[P_MIN_OI_PCT] or abs(px_pct) < p[P_MIN_PX_PCT] or abs(d_px) < tick * 0.999:
        return BUILDUP_NONE, oi_pct, px_pct
    if interval_vol < abs(d_oi):
        return BUILDUP_NONE, oi_pct, px_pct
    if d_oi > 0:
        state = BUILDUP_LONG if d_px > 0 else BUILDUP_SHORT
    else:
        state = BUILDUP_COVERING if d_px > 0 else BUILDUP_UNWINDING
    return state, oi_pct, px_pct


@njit(cache=True, nogil=True)
def buildup_confidence(oi_pct, px_pct, vol_rate_ratio):
    """Confidence of a classified build-up from the size of its moves (module docs)."""
    oi_s = 1.0 - math.exp(-abs(oi_pct) / 2.0)
    px_s = 1.0 - math.exp(-abs(px_pct) / 1.0)
    vol_s = min(1.0, max(0.0, vol_rate_ratio) / 2.0) if vol_rate_ratio == vol_rate_ratio else 0.0
    return min(1.0, 0.4 * oi_s + 0.35 * px_s + 0.25 * vol_s)


@njit(cache=True, nogil=True)
def _buildup(row, q, bars, head, n_valid, bar_end_ns, p, di, df, base_mean):
    ring = bars.shape[2]
    updated = bars[row, L.B_OI_UPDATES, head] > 0
    if updated and q[row, L.Q_OI_REF_NS] > 0:
        tick = q[row, L.Q_TICK] / 100.0
        d_oi = float(q[row, L.Q_OI] - q[row, L.Q_OI_PREV])
        px_ref = q[row, L.Q_OI_REF_LTP] / 100.0
        d_px = q[row, L.Q_OI_LAST_LTP] / 100.0 - px_ref
        ivol = float(q[row, L.Q_OI_LAST_VOL] - q[row, L.Q_OI_REF_VOL])
        state, oi_pct, px_pct = classify_buildup(
            d_oi, float(q[row, L.Q_OI_PREV]), d_px, px_ref, ivol, tick, p
        )
        span_s = (q[row, L.Q_OI_LAST_NS] - q[row, L.Q_OI_REF_NS]) / NS
        rate_ratio = math.nan
        if span_s > 0 and base_mean > 0:
            rate_ratio = (ivol / span_s) / (base_mean / p[P_BAR_SECONDS])
        di[row, L.DI_BUILDUP] = state
        di[row, L.DI_BUILDUP_NS] = q[row, L.Q_OI_LAST_NS]
        df[row, L.DF_OI_CHG_PCT] = oi_pct
        df[row, L.DF_PX_CHG_PCT] = px_pct
        df[row, L.DF_INTERVAL_VOL] = ivol
        df[row, L.DF_BUILDUP_CONF] = (
            buildup_confidence(oi_pct, px_pct, rate_ratio) if state != BUILDUP_NONE else 0.0
        )
        # A direction needs a change the build-up classifier would count: a print of a few lots
        # in 10⁵ is noise, and reading it as "OI↓" would turn ordinary bars into TRAPs.
        significant = oi_pct == oi_pct and abs(oi_pct) >= p[P_MIN_OI_PCT]
        di[row, L.DI_OI_DIR] = (1 if d_oi > 0 else -1) if significant else 0
        di[row, L.DI_OI_STALE] = 0
        return
    # No OI print in this bar: keep the last reading unless OI has gone stale while trading.
    last = q[row, L.Q_OI_CHANGED_NS]
    since = last if last > 0 else q[row, L.Q_FIRST_SEEN_NS]
    if not (since > 0 and (bar_end_ns - since) / NS > p[P_OI_STALE_S]):
        return
    # Stale only while it kept trading: any volume within the stale window (the ring's part).
    traded = False
    for k in range(min(n_valid, ring)):
        v = bars[row, L.B_VOLUME, _slot(head, k, ring)]
        if v > 0:
            traded = True
            break
        if (k + 1) * p[P_BAR_SECONDS] >= p[P_OI_STALE_S]:
            break
    if traded:
        di[row, L.DI_OI_STALE] = 1
        di[row, L.DI_BUILDUP] = BUILDUP_NONE
        df[row, L.DF_BUILDUP_CONF] = 0.0
        di[row, L.DI_OI_DIR] = 0


@njit(cache=True, nogil=True)
def _fresh(row, q, bars, head, bar_end_ns, p, di, df, ratio, base_mean, base_used):
    age_ok = (bar_end_ns - di[row, L.DI_FRESH_NS]) / NS <= p[P_FRESH_MAX_AGE_S]
    if di[row, L.DI_FRESH] != FRESH_NONE and not age_ok:
        di[row, L.DI_FRESH] = FRESH_NONE
        df[row, L.DF_FRESH_STRENGTH] = 0.0
    vol = bars[row, L.B_VOLUME, head]
    updated = bars[row, L.B_OI_UPDATES, head] > 0
    oi_before = float(q[row, L.Q_OI_PREV])
    jump = (q[row, L.Q_OI] - q[row, L.Q_OI_PREV]) / oi_before if oi_before > 0 else math.nan
    code = FRESH_NONE
    if updated and jump == jump and jump >= p[P_FRESH_OI_JUMP] and ratio >= p[P_FRESH_VOL_SURGE]:
        code = FRESH_AGGRESSIVE
    elif vol > 0 and base_used >= p[P_MIN_BASELINE_BARS] and base_mean == 0:
        oi_rose = updated and q[row, L.Q_OI] > q[row, L.Q_OI_PREV]
        if oi_rose:
            code = FRESH_FIRST
    if code == FRESH_NONE and ratio >= p[P_FRESH_VOL_SURGE]:
        small = not updated or (jump == jump and abs(jump) < 0.5 * p[P_FRESH_OI_JUMP])
        if small:
            code = FRESH_ADJUSTMENT
    if code == FRESH_NONE:
        return
    # A new detection replaces an older or weaker one (AGGRESSIVE outranks the others).
    cur = di[row, L.DI_FRESH]
    if cur == FRESH_AGGRESSIVE and code != FRESH_AGGRESSIVE:
        return
    di[row, L.DI_FRESH] = code
    di[row, L.DI_FRESH_NS] = bar_end_ns
    j = abs(jump) if jump == jump else 0.0
    r = ratio if ratio == ratio else 0.0
    strength = 0.5 * min(1.0, j / (2.0 * p[P_FRESH_OI_JUMP])) + 0.5 * min(
        1.0, r / (2.0 * p[P_FRESH_VOL_SURGE])
    )
    df[row, L.DF_FRESH_STRENGTH] = strength
    df[row, L.DF_FRESH_OI_JUMP] = j
    df[row, L.DF_FRESH_VOL_RATIO] = r


@njit(cache=True, nogil=True)
def reversal_failed(row, bars, head, n_valid, p, tick):
    """True when the bar pushed to a new look-back extreme and closed back over ``retrace``.

    The bar's range must be at least ``reversal_min_range_ticks``: a one- or two-tick wiggle at
    a new extreme is what a random walk does all day, not a failed breakout.
    """
    ring = bars.shape[2]
    hi = bars[row, L.B_HIGH, head]
    lo = bars[row, L.B_LOW, head]
    close = bars[row, L.B_CLOSE, head]
    prev_hi = -math.inf
    prev_lo = math.inf
    for k in range(1, min(int(p[P_REVERSAL_LOOKBACK]), n_valid - 1) + 1):
        s = _slot(head, k, ring)
        h = bars[row, L.B_HIGH, s]
        lw = bars[row, L.B_LOW, s]
        if h == h and h > prev_hi:
            prev_hi = h
        if lw == lw and lw < prev_lo:
            prev_lo = lw
    rng = hi - lo
    if not (rng >= p[P_REVERSAL_MIN_TICKS] * tick) or close != close:
        return False
    up_fail = hi > prev_hi and (hi - close) > p[P_REVERSAL_RETRACE] * rng
    down_fail = lo < prev_lo and (close - lo) > p[P_REVERSAL_RETRACE] * rng
    return up_fail or down_fail


@njit(cache=True, nogil=True)
def _traps(row, q, f, bars, head, n_valid, p, di, df, ratio):
    bits = 0
    keep = 1.0
    lots = df[row, L.DF_OI_LOTS]
    if lots < p[P_TRAP_LOW_OI] and ratio >= 3.0:
        # The archetypal trap (a thin contract suddenly busy): it blocks on its own.
        bits |= TRAP_SCALPER
        keep *= 1.0 - min(0.95, 0.8 + 0.15 * min(1.0, (ratio - 3.0) / 3.0))
    g1 = df[row, L.DF_GAMMA_1PCT]
    if g1 == g1 and g1 < p[P_TRAP_NOISE_GAMMA] and ratio >= p[P_VOLUME_SPIKE]:
        bits |= TRAP_NOISE
        keep *= 1.0 - 0.4
    burn = df[row, L.DF_THETA_BURN]
    if burn == burn and burn >= p[P_TRAP_THETA] and df[row, L.DF_DTE] < p[P_CRUSH_DTE]:
        bits |= TRAP_THETA
        keep *= 1.0 - min(0.9, 0.6 + 0.3 * min(1.0, burn / (4.0 * p[P_TRAP_THETA])))
    tick = q[row, L.Q_TICK] / 100.0
    if (
        ratio >= p[P_VOLUME_BURST]
        and n_valid > 2
        and reversal_failed(row, bars, head, n_valid, p, tick)
    ):
        bits |= TRAP_REVERSAL
        keep *= 1.0 - 0.5
    delta = f[row, L.F_DELTA]
    bid = q[row, L.Q_BID_PX]
    ask = q[row, L.Q_ASK_PX]
    spread_pct = math.nan
    if bid > 0 and ask >= bid:
        spread_pct = 100.0 * (ask - bid) / (0.5 * (ask + bid))
    if delta == delta and abs(delta) <= p[P_LIQ_DELTA]:
        thin = lots < 2.0 * p[P_TRAP_LOW_OI] or (
            spread_pct == spread_pct and spread_pct > p[P_LIQ_SPREAD_PCT]
        )
        if thin:
            bits |= TRAP_LIQUIDITY
            keep *= 1.0 - 0.45
    prob = 1.0 - keep
    di[row, L.DI_TRAPS] = bits
    df[row, L.DF_TRAP_PROB] = prob
    n_traps = 0
    b = bits
    while b:
        n_traps += b & 1
        b >>= 1
    di[row, L.DI_BLOCKED] = 1 if (n_traps > 1 or prob > p[P_BLOCK_PROB]) else 0


@njit(cache=True, nogil=True)
def pattern_verdict(pattern):
    """The seed's (verdict, quality) of a cross-validation pattern."""
    if pattern == XV_TRAP:
        return VERDICT_BLOCK, 0.05
    if pattern == XV_THETA_TRAP:
        return VERDICT_BLOCK, 0.1
    if pattern == XV_EXPLOSIVE:
        return VERDICT_PROCEED, 0.9
    if pattern == XV_SMART_ENTRY:
        return VERDICT_PROCEED, 0.95
    if pattern == XV_REVERSAL:
        return VERDICT_CAUTION, 0.4
    return VERDICT_CAUTION, 0.5


@njit(cache=True, nogil=True)
def _cross_validate(row, q, bars, head, n_valid, p, di, df, is_call):
    ring = bars.shape[2]
    prev = _slot(head, 1, ring)
    d_now = bars[row, L.B_DELTA, head]
    d_prev = bars[row, L.B_DELTA, prev] if n_valid > 1 else math.nan
    d_chg = d_now - d_prev
    df[row, L.DF_DELTA_CHG] = d_chg
    gained = math.nan
    if d_chg == d_chg:
        gained = d_chg if is_call else -d_chg
    ddir = 0
    if gained == gained and abs(gained) > 1e-4:
        ddir = 1 if gained > 0 else -1
    di[row, L.DI_DELTA_DIR] = ddir
    g_now = bars[row, L.B_GAMMA, head]
    g_prev = bars[row, L.B_GAMMA, prev] if n_valid > 1 else math.nan
    g_chg = 100.0 * (g_now - g_prev) / g_prev if g_prev > 0 else math.nan
    df[row, L.DF_GAMMA_CHG_PCT] = g_chg
    oi_dir = di[row, L.DI_OI_DIR]
    # OI direction counts only while the OI reading is current (same bar or still live).
    vol_up = di[row, L.DI_VOL_UP] == 1
    pattern = XV_NONE
    if ddir > 0 and oi_dir < 0 and vol_up:
        pattern = XV_TRAP
    elif vol_up and df[row, L.DF_THETA_BURN] >= p[P_TRAP_THETA]:
        pattern = XV_THETA_TRAP
    elif (
        g_chg == g_chg
        and g_chg >= p[P_EXPLOSIVE_GAMMA_PCT]
        and di[row, L.DI_FRESH] == FRESH_AGGRESSIVE
    ):
        pattern = XV_EXPLOSIVE
    elif ddir > 0 and oi_dir > 0 and vol_up:
        pattern = XV_SMART_ENTRY
    elif ddir < 0 and oi_dir > 0 and vol_up:
        pattern = XV_REVERSAL
    di[row, L.DI_XV_PATTERN] = pattern
    verdict, quality = pattern_verdict(pattern)
    di[row, L.DI_XV_VERDICT] = verdict
    df[row, L.DF_XV_QUALITY] = quality


@njit(cache=True, nogil=True)
def detect_rows(rows, q, f, bars, head, n_valid, bar_end_ns, p, di, df):
    """Run every per-contract detector for the bar just closed in ring slot ``head``.

    Args:
        rows: int64[m] option rows to evaluate.
        q: int64[n, NQ] chain wire table.
        f: float64[n, NF] chain analytics (greeks at the bar's end).
        bars: float64[n, NB, R] closed bars; ``head`` is the newest.
        head: ring slot of the bar just closed.
        n_valid: bars closed so far (caps every look-back).
        bar_end_ns: the bar's end, Unix ns.
        p: float64[NP] parameters.
        di: int64[n, NDI] detector state (updated in place; some states persist across bars).
        df: float64[n, NDF] detector values (updated in place).

    Returns:
        Number of rows evaluated.
    """
    done = 0
    for i in range(rows.size):
        row = rows[i]
        kind = q[row, L.Q_KIND]
        if kind != L.KIND_CALL and kind != L.KIND_PUT:
            continue
        if q[row, L.Q_TICKS] == 0:
            continue
        is_call = kind == L.KIND_CALL
        lot = max(1, q[row, L.Q_LOT])
        df[row, L.DF_OI_LOTS] = q[row, L.Q_OI] / lot
        base_mean, base_used = baseline_volume(bars, row, head, n_valid, int(p[P_BASELINE_BARS]))
        vol = bars[row, L.B_VOLUME, head]
        ratio = math.nan
        if base_used >= p[P_MIN_BASELINE_BARS] and base_mean > 0:
            ratio = vol / base_mean
        df[row, L.DF_VOL_RATIO] = ratio
        di[row, L.DI_VOLUME_STATE] = _volume_state(ratio, p)
        di[row, L.DI_VOL_UP] = 1 if (ratio == ratio and ratio >= 1.0 and vol > 0) else 0
        di[row, L.DI_VOL_TREND] = _volume_trend(bars, row, head, n_valid)
        aggression = 0.0
        if ratio == ratio and vol > 0:
            one_sided = abs(bars[row, L.B_CVD, head]) / vol
            span = p[P_VOLUME_AGGRESSIVE] - 1.0
            aggression = min(1.0, max(0.0, (ratio - 1.0) / span)) * (
                0.5 + 0.5 * min(1.0, one_sided)
            )
        df[row, L.DF_AGGRESSION] = aggression
        # Greeks-derived normalisations (NaN when the IV was not solvable).
        t_yrs = f[row, L.F_GREEKS_T]
        df[row, L.DF_DTE] = t_yrs * 365.0 if t_yrs == t_yrs else math.nan
        premium = f[row, L.F_IV_PRICE]
        theta = f[row, L.F_THETA]
        df[row, L.DF_THETA_BURN] = abs(theta) / premium if premium > 0 else math.nan
        _buildup(row, q, bars, head, n_valid, bar_end_ns, p, di, df, base_mean)
        _fresh(row, q, bars, head, bar_end_ns, p, di, df, ratio, base_mean, base_used)
        _cross_validate(row, q, bars, head, n_valid, p, di, df, is_call)
        done += 1
    return done


@njit(cache=True, nogil=True)
def set_gamma_and_move(rows, f, spot, fwd, horizon_s, df):
    """Fill Γ per 1 % of the underlying and the fresh-position expected move for ``rows``.

    Args:
        rows: int64[m] option rows.
        f: float64[n, NF] chain analytics (greeks).
        spot: index level (rupees); the forward is used when NaN.
        fwd: forward (rupees).
        horizon_s: fresh-position lifetime, seconds.
        df: float64[n, NDF] out: ``DF_GAMMA_1PCT``, ``DF_EXPECTED_MOVE``.
    """
    level = spot if spot > 0 else fwd
    for i in range(rows.size):
        row = rows[i]
        g = f[row, L.F_GAMMA]
        df[row, L.DF_GAMMA_1PCT] = g * level * 0.01 if level > 0 else math.nan
        iv = f[row, L.F_IV]
        d = f[row, L.F_DELTA]
        df[row, L.DF_EXPECTED_MOVE] = (
            abs(d) * level * iv * math.sqrt(horizon_s / YEAR_S) if level > 0 else math.nan
        )


@njit(cache=True, nogil=True)
def run_traps(rows, q, f, bars, head, n_valid, p, di, df):
    """Trap filter for ``rows`` (after ``detect_rows`` and ``set_gamma_and_move``).

    Args:
        rows: int64[m] option rows.
        q: int64[n, NQ].
        f: float64[n, NF].
        bars: float64[n, NB, R].
        head: newest ring slot.
        n_valid: bars closed so far.
        p: float64[NP].
        di: int64[n, NDI] (``DI_TRAPS``, ``DI_BLOCKED`` written).
        df: float64[n, NDF] (``DF_TRAP_PROB`` written).
    """
    for i in range(rows.size):
        row = rows[i]
        if q[row, L.Q_TICKS] == 0:
            continue
        _traps(row, q, f, bars, head, n_valid, p, di, df, df[row, L.DF_VOL_RATIO])


@njit(cache=True, nogil=True)
def _zone_sums(rows, q, f, bars, head, n_valid, window, acc):
    """Accumulate one side's OI, window volume, |Δ|·OI, OI at the window's start, baseline.

    ``acc``: float64[6] += (OI, volume, delta-weighted OI, old OI, baseline volume, baseline n).
    """
    ring = bars.shape[2]
    for i in range(rows.size):
        row = rows[i]
        oi = float(q[row, L.Q_OI])
        acc[0] += oi
        for k in range(window):
            v = bars[row, L.B_VOLUME, _slot(head, k, ring)]
            if v == v:
                acc[1] += v
        d = f[row, L.F_DELTA]
        if d == d:
            acc[2] += abs(d) * oi
        if n_valid > window:
            old = bars[row, L.B_OI, _slot(head, window, ring)]
            if old == old:
                acc[3] += old
        for k in range(window, min(n_valid, ring)):
            v = bars[row, L.B_VOLUME, _slot(head, k, ring)]
            if v == v:
                acc[4] += v
                acc[5] += 1.0


@njit(cache=True, nogil=True)
def _share(a, b):
    return a / (a + b) if a + b > 0 else 0.5


@njit(cache=True, nogil=True)
def control_of(oi_share, vol_share, skew, thr):
    """BULLISH/BEARISH when OI share, volume share and skew all agree past ``thr``."""
    if oi_share > thr and vol_share > thr and skew > thr:
        return CONTROL_BULLISH
    if oi_share < 1.0 - thr and vol_share < 1.0 - thr and skew < 1.0 - thr:
        return CONTROL_BEARISH
    if abs(oi_share - 0.5) <= 0.05 and abs(vol_share - 0.5) <= 0.05 and abs(skew - 0.5) <= 0.05:
        return CONTROL_BALANCED
    return CONTROL_CHOP


@njit(cache=True, nogil=True)
def atm_index(strikes, centre_paise):
    """Index of the strike nearest ``centre_paise`` in ascending ``strikes`` (lower on a tie)."""
    n = strikes.size
    lo, hi = 0, n
    while lo < hi:  # bisect_left
        mid = (lo + hi) // 2
        if strikes[mid] < centre_paise:
            lo = mid + 1
        else:
            hi = mid
    if lo == 0:
        return 0
    if lo == n:
        return n - 1
    return lo if strikes[lo] - centre_paise < centre_paise - strikes[lo - 1] else lo - 1


@njit(cache=True, nogil=True)
def zone(strikes, ce_rows, pe_rows, spot, fwd, each_side, calls, puts):
    """The battlefield's rows and the voting strikes around ATM.

    ATM is the strike nearest the spot (the forward before the first index tick). ``calls`` and
    ``puts`` receive the CE and PE rows of the strikes within ``each_side`` of ATM that list both;
    votes come from the strikes within ± 2 × ``each_side``.

    Args:
        strikes: int64[s] strikes, paise, ascending.
        ce_rows: int64[s] chain row of each strike's call (−1: not listed).
        pe_rows: int64[s] the same for puts.
        spot: index level, rupees (NaN before the first tick).
        fwd: forward, rupees.
        each_side: ``ce_pe_atm_range``.
        calls: int64[s] out.
        puts: int64[s] out.

    Returns:
        (rows written to ``calls``/``puts``, lowest voting strike, highest) — lo > hi without a
        price to centre on.
    """
    centre = spot if spot > 0 else fwd
    if not centre > 0 or strikes.size == 0:
        return 0, 1, 0
    atm = atm_index(strikes, np.int64(np.rint(centre * 100.0)))
    k = 0
    for i in range(max(0, atm - each_side), min(strikes.size, atm + each_side + 1)):
        if ce_rows[i] >= 0 and pe_rows[i] >= 0:
            calls[k] = ce_rows[i]
            puts[k] = pe_rows[i]
            k += 1
    span = 2 * each_side
    return k, strikes[max(0, atm - span)], strikes[min(strikes.size - 1, atm + span)]


@njit(cache=True, nogil=True)
def battlefield(calls, puts, q, f, bars, head, n_valid, p, out):
    """CE vs PE control over the zone (module docs).

    Args:
        calls: int64[k] CE rows of the zone.
        puts: int64[k] PE rows of the zone.
        q: int64[n, NQ].
        f: float64[n, NF] (deltas at the bar's end).
        bars: float64[n, NB, R].
        head: newest ring slot.
        n_valid: bars closed so far.
        p: float64[NP].
        out: float64[8] out: control code, CE OI share, CE volume share, delta skew, war
            intensity, trend (−1/0/+1), zone volume (window), zone OI.

    Returns:
        The control code.
    """
    window = int(min(p[P_BATTLE_BARS], n_valid))
    ce = np.zeros(6)
    pe = np.zeros(6)
    _zone_sums(calls, q, f, bars, head, n_valid, window, ce)
    _zone_sums(puts, q, f, bars, head, n_valid, window, pe)
    oi_share = _share(ce[0], pe[0])
    vol_share = _share(ce[1], pe[1])
    skew = _share(ce[2], pe[2])
    control = control_of(oi_share, vol_share, skew, p[P_CONTROL])
    zone_vol = ce[1] + pe[1]
    activity = 1.0
    base_n = ce[5] + pe[5]
    if base_n > 0:
        # Baseline: the zone's average volume per contract-bar before the window.
        expected = (ce[4] + pe[4]) / base_n * (calls.size + puts.size) * window
        activity = min(1.0, zone_vol / expected) if expected > 0 else 1.0
    trend = 0
    if ce[3] + pe[3] > 0:
        moved = oi_share - _share(ce[3], pe[3])
        trend = 1 if moved > 0.01 else (-1 if moved < -0.01 else 0)
    out[0] = control
    out[1] = oi_share
    out[2] = vol_share
    out[3] = skew
    out[4] = (1.0 - 2.0 * abs(vol_share - 0.5)) * activity
    out[5] = trend
    out[6] = zone_vol
    out[7] = ce[0] + pe[0]
    return control


@njit(cache=True, nogil=True)
def _min1(x):
    """``min(1.0, x)`` with Python's semantics (NaN → 1.0), so scores match the spec bit for bit."""
    return x if x < 1.0 else 1.0


@njit(cache=True, nogil=True)
def _max0(x):
    """``max(0.0, x)`` with Python's semantics (NaN → 0.0)."""
    return x if x > 0.0 else 0.0


@njit(cache=True, nogil=True)
def _num(x):
    return x if x == x else 0.0


@njit(cache=True, nogil=True)
def _live_fresh(code):
    return code in (FRESH_AGGRESSIVE, FRESH_FIRST)


@njit(cache=True, nogil=True)
def signal_pattern(q, di, row, direction):
    """The cross-validation pattern of ``row`` read in the signal's ``direction``.

    The seed's Δ↑ means "delta moved the underlying's way" (its put example), so a contract on
    the other side than the signal's flips its contract-relative delta direction; THETA_TRAP
    and EXPLOSIVE are properties of the contract and stay.
    """
    own = di[row, L.DI_XV_PATTERN]
    if own in (XV_THETA_TRAP, XV_EXPLOSIVE):
        return own
    is_call = q[row, L.Q_KIND] == L.KIND_CALL
    d = di[row, L.DI_DELTA_DIR] * (1 if is_call == (direction > 0) else -1)
    oi = di[row, L.DI_OI_DIR]
    if not di[row, L.DI_VOL_UP]:
        return XV_NONE
    if d > 0 and oi < 0:
        return XV_TRAP
    if d > 0 and oi > 0:
        return XV_SMART_ENTRY
    if d < 0 and oi > 0:
        return XV_REVERSAL
    return XV_NONE


@njit(cache=True, nogil=True)
def _votes(rows, lo, hi, q, bars, head, di, df, votes):
    """Fill ``votes`` (rows ascending) with every option near ATM that votes; returns the count.

    A classified build-up votes its underlying direction (calls as named, puts mirrored) with its
    confidence × type weight (covering/unwinding 0.6) × 1.5 while a fresh position is live on
    it. A live fresh entry without one votes with its strength the way the bar's trades leaned
    (bar CVD), or the premium moved when the bar was balanced.
    """
    m = 0
    for i in range(rows.size):
        row = rows[i]
        if q[row, L.Q_TICKS] <= 0:
            continue
        k = q[row, L.Q_STRIKE]
        if k < lo or k > hi:
            continue
        st = di[row, L.DI_BUILDUP]
        live = _live_fresh(di[row, L.DI_FRESH])
        if st == BUILDUP_NONE and not live:
            continue
        side = 1 if q[row, L.Q_KIND] == L.KIND_CALL else -1
        if st != BUILDUP_NONE:
            type_w = 1.0 if st in (BUILDUP_LONG, BUILDUP_SHORT) else 0.6
            w = df[row, L.DF_BUILDUP_CONF] * type_w
            if live:
                w *= 1.5
            call_dir = 1 if st in (BUILDUP_LONG, BUILDUP_COVERING) else -1
            direction = call_dir * side
            source = SOURCE_BUILDUP
        else:
            moved = bars[row, L.B_CVD, head]
            if moved - moved != 0.0 or moved == 0.0:
                moved = df[row, L.DF_PX_CHG_PCT]
            if moved - moved != 0.0 or moved == 0.0:
                continue
            direction = (1 if moved > 0 else -1) * side
            w = df[row, L.DF_FRESH_STRENGTH]
            source = SOURCE_FRESH
        votes[m, V_ROW] = row
        votes[m, V_DIRECTION] = direction
        votes[m, V_WEIGHT] = w
        votes[m, V_SOURCE] = source
        m += 1
    return m


@njit(cache=True, nogil=True)
def _product_error(a, b, p):
    """The exact ``a·b − p`` for ``p = fl(a·b)`` (Dekker's product, no fma in numba)."""
    c = 134217729.0 * a  # 2**27 + 1 splits a double into two 26-bit halves
    a_hi = c - (c - a)
    a_lo = a - a_hi
    c = 134217729.0 * b
    b_hi = c - (c - b)
    b_lo = b - b_hi
    return ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo


@njit(cache=True, nogil=True)
def round_display(x, scale):
    """Python's ``round(x, n)`` for ``scale = 10**n`` (0 ≤ n ≤ 22); NaN when ``x`` is not finite.

    Python rounds the exact binary value; ``rint(x·scale)`` alone is wrong when the product
    rounds onto a tie (3.45 → 34.5 → 34, where 3.45 is 3.4500000000000002 and rounds to 3.5),
    so on a tie the product's exact error decides. Evidence shows these numbers; they must not
    depend on whether Python or a kernel rounded them.
    """
    if x - x != 0.0:
        return math.nan
    y = x * scale
    r = np.rint(y)
    if abs(y - r) == 0.5:
        err = _product_error(x, scale, y)
        if err > 0.0:
            r = math.floor(y) + 1.0
        elif err < 0.0:
            r = math.floor(y)
    return r / scale


@njit(cache=True, nogil=True)
def _evidence_row(row, q, df, now_ns, out):
    """The numbers the evidence shows for one contract, rounded as displayed."""
    out[E_ROW] = row
    out[E_BUILDUP_CONF] = round_display(df[row, L.DF_BUILDUP_CONF], 1e4)
    out[E_OI_CHG_PCT] = round_display(df[row, L.DF_OI_CHG_PCT], 1e4)
    out[E_PX_CHG_PCT] = round_display(df[row, L.DF_PX_CHG_PCT], 1e4)
    out[E_INTERVAL_VOL] = round_display(df[row, L.DF_INTERVAL_VOL], 1.0)
    out[E_OI_UPDATE_AGE_S] = round_display((now_ns - q[row, L.Q_OI_LAST_NS]) / NS, 10.0)
    out[E_VOL_RATIO] = round_display(df[row, L.DF_VOL_RATIO], 1e4)
    out[E_AGGRESSION] = round_display(df[row, L.DF_AGGRESSION], 1e4)
    out[E_XV_QUALITY] = round_display(df[row, L.DF_XV_QUALITY], 1e4)
    out[E_DELTA_CHG] = round_display(df[row, L.DF_DELTA_CHG], 1e5)
    out[E_FRESH_OI_JUMP] = round_display(df[row, L.DF_FRESH_OI_JUMP], 1e4)
    out[E_FRESH_VOL_RATIO] = round_display(df[row, L.DF_FRESH_VOL_RATIO], 1e4)
    out[E_FRESH_STRENGTH] = round_display(df[row, L.DF_FRESH_STRENGTH], 1e4)
    out[E_EXPECTED_MOVE] = round_display(df[row, L.DF_EXPECTED_MOVE], 1e2)
    out[E_TRAP_PROB] = round_display(df[row, L.DF_TRAP_PROB], 1e4)
    out[E_OI_LOTS] = round_display(df[row, L.DF_OI_LOTS], 10.0)
    out[E_GAMMA_1PCT] = round_display(df[row, L.DF_GAMMA_1PCT], 1e4)
    out[E_THETA_BURN] = round_display(df[row, L.DF_THETA_BURN], 1e4)
    out[E_DTE] = round_display(df[row, L.DF_DTE], 1e3)
    out[E_OI_AGE_S] = round_display((now_ns - q[row, L.Q_OI_CHANGED_NS]) / NS, 10.0)


@njit(cache=True, nogil=True)
def _rank_votes(votes, m, direction, sig_i):
    """The driver and its source; the five strongest voters go to ``sig_i[SI_TOP..]``.

    Driver: the strongest voter in ``direction``, the lowest row on a tie; the top five are by
    weight descending, row ascending.
    """
    best = -1
    for i in range(m):
        if votes[i, V_DIRECTION] == direction and (
            best < 0 or votes[i, V_WEIGHT] > votes[best, V_WEIGHT]
        ):
            best = i
    n_top = min(5, m)
    for t in range(n_top):
        pick = -1
        for i in range(m):
            taken = False
            for u in range(t):
                if sig_i[SI_TOP + u] == i:
                    taken = True
            if not taken and (pick < 0 or votes[i, V_WEIGHT] > votes[pick, V_WEIGHT]):
                pick = i
        sig_i[SI_TOP + t] = pick
    sig_i[SI_N_TOP] = n_top
    return int(votes[best, V_ROW]), int(votes[best, V_SOURCE])


@njit(cache=True, nogil=True)
def assemble(rows, lo, hi, q, bars, head, bar_end_ns, p, di, df, battle, votes, sig_i, sig_f, ev):
    """The signal's numbers from the detector state (smartflow.analytics.detectors documents it).

    Args:
        rows: int64[m] option rows, ascending.
        lo: lowest voting strike (paise); lo > hi when there is no ATM.
        hi: highest voting strike (paise).
        q: int64[n, NQ] chain wire table.
        bars: float64[n, NB, R] closed bars.
        head: ring slot of the bar just closed.
        bar_end_ns: the bar's end, Unix ns (evidence ages are measured to it).
        p: float64[NP] parameters.
        di: int64[n, NDI] detector state after this bar's detectors.
        df: float64[n, NDF] detector values after this bar's detectors.
        battle: float64[8] battlefield (``battlefield``'s ``out``).
        votes: float64[n, NV] out: the voters (row, direction, weight, source), rows ascending.
        sig_i: int64[NSI] out (``SI_*``).
        sig_f: float64[NSF] out (``SF_*``).
        ev: float64[NEV_ROWS, NE] out: the evidence numbers of the top voters, the driver and
            the contract to trade (``E_*``), when the signal has a direction.
    """
    sig_i[:] = 0
    sig_f[:] = 0.0
    fresh_ns = 0
    for i in range(rows.size):
        row = rows[i]
        if _live_fresh(di[row, L.DI_FRESH]) and di[row, L.DI_FRESH_NS] > fresh_ns:
            fresh_ns = di[row, L.DI_FRESH_NS]
    sig_i[SI_FRESH_NS] = fresh_ns
    m = _votes(rows, lo, hi, q, bars, head, di, df, votes)
    sig_i[SI_N_VOTES] = m
    # Summed in row order, as the spec's reference (and every earlier output) did.
    total = 0.0
    for i in range(m):
        total += votes[i, V_WEIGHT]
    net = 0.0
    if total > 0:
        s = 0.0
        for i in range(m):
            s += votes[i, V_DIRECTION] * votes[i, V_WEIGHT]
        net = s / total
    sig_f[SF_NET] = net
    if m == 0 or abs(net) < p[P_MIN_NET_VOTE]:
        sig_i[SI_REC] = REC_NEUTRAL
        return
    direction = 1 if net > 0 else -1
    sig_i[SI_DIRECTION] = direction
    driver, source = _rank_votes(votes, m, direction, sig_i)
    is_call = q[driver, L.Q_KIND] == L.KIND_CALL
    trade = driver
    if is_call != (direction > 0) and q[driver, L.Q_PAIR_ROW] >= 0:
        trade = q[driver, L.Q_PAIR_ROW]
    blocked = di[trade, L.DI_BLOCKED] != 0 or di[driver, L.DI_BLOCKED] != 0
    pattern = signal_pattern(q, di, driver, direction)
    verdict, quality = pattern_verdict(pattern)
    xv_block = verdict == VERDICT_BLOCK or di[trade, L.DI_XV_VERDICT] == VERDICT_BLOCK
    if blocked or xv_block:
        rec = REC_AVOID
    else:
        rec = REC_BUY_CALL if direction > 0 else REC_BUY_PUT
    if source == SOURCE_BUILDUP:
        conf = df[driver, L.DF_BUILDUP_CONF]
    else:
        conf = df[driver, L.DF_FRESH_STRENGTH]
    oi_share = battle[1]
    vol_share = battle[2]
    control = int(battle[0])
    agree_oi = _min1(_max0((oi_share - 0.5) * 2 * direction))
    agree_vol = _min1(_max0((vol_share - 0.5) * 2 * direction))
    oi_conv = _min1(0.5 * conf + 0.3 * abs(net) + 0.2 * agree_oi)
    vol_aggr = _min1(0.7 * _num(df[trade, L.DF_AGGRESSION]) + 0.3 * agree_vol)
    trap_a = _num(df[trade, L.DF_TRAP_PROB])
    trap_b = _num(df[driver, L.DF_TRAP_PROB])
    trap_p = trap_b if trap_b > trap_a else trap_a
    opposing = (direction > 0 and control == CONTROL_BEARISH) or (
        direction < 0 and control == CONTROL_BULLISH
    )
    agrees = (direction > 0 and control == CONTROL_BULLISH) or (
        direction < 0 and control == CONTROL_BEARISH
    )
    battle_agree = 1.0 if agrees else (0.0 if opposing else 0.5)
    prob = (0.35 * oi_conv + 0.2 * vol_aggr + 0.3 * quality + 0.15 * battle_agree) * (1.0 - trap_p)
    fresh = _live_fresh(di[driver, L.DI_FRESH]) or _live_fresh(di[trade, L.DI_FRESH])
    sig_i[SI_DRIVER] = driver
    sig_i[SI_TRADE_ROW] = trade
    sig_i[SI_PATTERN] = pattern
    sig_i[SI_VERDICT] = verdict
    sig_i[SI_REC] = rec
    sig_i[SI_FRESH] = 1 if fresh else 0
    sig_i[SI_OPPOSING] = 1 if opposing else 0
    sig_f[SF_OI_CONVICTION] = oi_conv
    sig_f[SF_VOL_AGGRESSION] = vol_aggr
    sig_f[SF_PROBABILITY] = prob
    sig_f[SF_TRAP_PROB] = trap_p
    sig_f[SF_QUALITY] = quality
    sig_f[SF_OI_CONVICTION_SHOWN] = round_display(oi_conv, 1e4)
    sig_f[SF_VOL_AGGRESSION_SHOWN] = round_display(vol_aggr, 1e4)
    sig_f[SF_PROBABILITY_SHOWN] = round_display(prob, 1e4)
    sig_f[SF_TRAP_PROB_SHOWN] = round_display(trap_p, 1e4)
    for t in range(sig_i[SI_N_TOP]):
        v = sig_i[SI_TOP + t]
        out = ev[EV_TOP + t]
        _evidence_row(int(votes[v, V_ROW]), q, df, bar_end_ns, out)
        out[E_DIRECTION] = votes[v, V_DIRECTION]
        out[E_WEIGHT] = round_display(votes[v, V_WEIGHT], 1e4)
        out[E_SOURCE] = votes[v, V_SOURCE]
    _evidence_row(driver, q, df, bar_end_ns, ev[EV_DRIVER])
    _evidence_row(trade, q, df, bar_end_ns, ev[EV_TRADE])
    if di[trade, L.DI_FRESH] != FRESH_NONE:
        sig_f[SF_FRESH_STRENGTH] = _num(ev[EV_TRADE, E_FRESH_STRENGTH])


@njit(cache=True, nogil=True)
def update_bar(
    rows,
    strikes,
    ce_rows,
    pe_rows,
    q,
    f,
    bars,
    head,
    n_valid,
    bar_end_ns,
    spot,
    fwd,
    p,
    di,
    df,
    calls,
    puts,
    battle,
    votes,
    sig_i,
    sig_f,
    ev,
):
    """Everything a bar close computes, in one call.

    Per-contract detectors, Γ and expected move, traps, the zone around ATM (``zone``: its rows
    go to ``calls``/``puts``), the battlefield over it (written to ``battle``), then the signal's
    numbers (``assemble``). One dispatch instead of six: at a bar close the caller's caches are
    cold, and type-checking a dozen array arguments per call is then a measurable part of the
    update.
    """
    detect_rows(rows, q, f, bars, head, n_valid, bar_end_ns, p, di, df)
    set_gamma_and_move(rows, f, spot, fwd, p[P_FRESH_MAX_AGE_S], df)
    run_traps(rows, q, f, bars, head, n_valid, p, di, df)
    k, lo, hi = zone(strikes, ce_rows, pe_rows, spot, fwd, int(p[P_ATM_RANGE]), calls, puts)
    battlefield(calls[:k], puts[:k], q, f, bars, head, n_valid, p, battle)
    assemble(rows, lo, hi, q, bars, head, bar_end_ns, p, di, df, battle, votes, sig_i, sig_f, ev)
