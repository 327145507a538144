"""Per-contract smart-money detectors (seeds/phase4-integration-guide.md), run once per closed bar.

Every threshold comes in through ``p`` (``P_*`` columns, filled from ``SmartMoneyConfig``). Where
the seed is vague, these are the definitions, chosen to be defensible rather than decorative:

Units
    OI thresholds are in **lots** (contracts), the unit NSE's option chain and traders quote; the
    feed's OI (units) is divided by the lot size. ``trap_theta_aggressive_threshold`` is a **burn
    rate**: |θ per calendar day| / premium (0.5 = the option loses half its value per day to time),
    because a rupee theta means nothing without the premium it eats. Gamma thresholds are per
    **1 % move** of the underlying: Γ·S·0.01, the change of delta for a 1 % move (0.02 = "flat").

The horizon
    Exchanges publish OI in one-lot steps on most trades, or only every 30-90 s in lumps; a
    build-up read between two consecutive prints sees nothing in the first case and noise in the
    second. Every OI reading here is a change over a rolling **horizon** of
    ``buildup_horizon_s`` (whole bars): OI, premium (LTP) and day volume now against the same
    three at the close of the bar one horizon ago (``hist``, one sample per bar). While a
    contract's history is shorter, the window starts at its first bar and its changes are
    judged against a prior (below). The same change reads the same whichever shape OI arrives in.

Significance: a change against the contract's own noise
    Each contract learns what its OI and premium usually do over one horizon: a noise scale, the
    exponentially weighted mean |change over the horizon| sampled every bar (memory
    ``noise_memory_s``; a plain mean until that many samples), each sample winsorised at twice
    the scale so one event cannot teach the contract that events are normal. z = |change| ÷
    max(scale, one lot | one tick); only full horizons are sampled and judged. An OI change is
    **significant** when z ≥ ``buildup_oi_z`` *and* |ΔOI| ≥ ``buildup_min_oi_lots`` lots *and*
    |ΔOI| ≥ ``buildup_min_oi_change_pct`` % of the OI a horizon ago; a premium move when
    z ≥ ``buildup_price_z``, |Δp| ≥ ``buildup_min_price_change_pct`` % and at least one tick.
    Until the scales have seen max(``min_baseline_bars``, horizon ÷ 2) full-horizon samples (with
    5 s bars and the default two-minute horizon: the first three minutes of a contract) its noise
    is not known, and a prior stands for it: ``warmup_noise_pct`` of its OI and of its premium
    a horizon ago (or at its first bar), against which the change since then is judged.

OI build-up (with OI staleness)
    A build-up needs a significant OI change *and* a significant premium move over the horizon,
    and the horizon must have traded at least |ΔOI| (an OI change cannot come from less). Signs
    give the seed's four states (price ↑ OI ↑ LONG_BUILD_UP, ↓ ↑ SHORT_BUILD_UP, ↑ ↓
    SHORT_COVERING, ↓ ↓ LONG_UNWINDING). Re-read every bar: it lasts while the change is inside
    the horizon. Once OI has not moved for ``oi_stale_s`` while the contract kept trading, it is
    reported as *stale* (state NONE, ``oi_stale`` set) instead of "OI flat". Confidence
    = 0.4·(1 − e^{−z_OI ÷ buildup_oi_z}) + 0.35·(1 − e^{−z_p ÷ buildup_price_z}) + 0.25·min(1,
    horizon volume ratio ÷ 2): how far past noise the two moves are, and how busy the horizon was.

Volume state
    baseline = what a bar normally trades: an exponentially weighted mean of bar volumes (memory
    ``volume_baseline_s``; a plain mean until then), each bar winsorised at
    ``volume_spike_threshold`` × the baseline before it enters, so a surge is measured against
    the normal before it for minutes rather than becoming its own normal. ratio = bar volume ÷
    baseline (at least ``min_baseline_bars`` bars seen with a positive baseline, else NORMAL):
    NORMAL < spike ≤ SPIKE < burst ≤ BURST < aggressive ≤ AGGRESSIVE. Aggression ∈ [0, 1] =
    clip((ratio − 1) ÷ (aggressive − 1)) × (0.5 + 0.5·|bar CVD| ÷ bar volume): a spike that
    trades one-sidedly is more aggressive than one that crosses the spread both ways. Trend =
    sign of the least-squares slope of the last five bars' volume (±5 % of the mean counts as
    flat). The horizon volume ratio = volume over the horizon ÷ (baseline × its bars).

Cross-validation (OI × greeks × volume)
    Δ↑ means the contract *gained* delta, i.e. moved toward the money: delta rose for a call,
    fell for a put (the seed's "PE Δ −0.35 → −0.32, less bearish" is the same event read from the
    underlying's side). OI↑/↓ is the sign of a significant OI change over the horizon (the
    build-up's reading). Vol↑ = bar volume at or above its baseline. Patterns, strongest first:
    TRAP (Δ↑ OI↓ Vol↑, 0.05, BLOCK), THETA_TRAP (burn ≥ threshold and Vol↑, 0.1, BLOCK),
    EXPLOSIVE (Γ up ≥ ``explosive_gamma_rise_pct`` with a live fresh position, 0.9, PROCEED),
    SMART_ENTRY (Δ↑ OI↑ Vol↑, 0.95, PROCEED), REVERSAL (Δ↓ OI↑ Vol↑, 0.4, CAUTION); none →
    CAUTION 0.5 (nothing validated, nothing contradicted).

Fresh positions
    AGGRESSIVE_ENTRY: a significant OI rise over the horizon of at least
    ``fresh_position_oi_jump`` of the OI a horizon ago — in one print or thirty — with volume
    ≥ ``fresh_position_volume_surge`` × baseline in the bar or over the horizon. FIRST_ENTRY: a
    contract whose baseline is zero (it traded nothing in at least ``min_baseline_bars`` bars)
    trades now and its OI rose. ADJUSTMENT: volume ≥ the surge multiple with |ΔOI| under half the
    jump threshold (positions rolled or adjusted, not added). A detection lives
    ``fresh_position_max_age_seconds``; while it lives the same detection is not renewed, and
    AGGRESSIVE outranks the others. Strength = ½·min(1, jump ÷ (2·threshold)) + ½·min(1, volume
    ratio ÷ (2·surge)); expected move = the 1-σ premium move over the detection's lifetime:
    |Δ|·F·σ·√(lifetime/year). Its direction is read once, at detection: the way the trades of
    the bar that revealed it leaned (signed volume), else the horizon's, else the premium's move.
    It then votes that way for its life, whatever later bars do.

Traps (bits; probability = 1 − Π(1 − pᵢ); blocked when > 1 trap or probability > the block
probability)
    SCALPER_TRAP: volume without open interest. OI < ``trap_low_oi_threshold`` lots with volume
    ≥ 3 × baseline (bar or horizon) sets it (p 0.8–0.95 with the ratio: it blocks on its own);
    it then holds for as long as OI stays below the threshold and the horizon still trades at
    least ``volume_spike_threshold`` × its baseline. NOISE_TRAP Γ per 1 % <
    ``trap_noise_gamma_threshold`` and volume ≥ spike (0.4); THETA_CRUSH burn ≥ threshold and DTE
    < ``theta_crush_dte_days`` (0.6–0.9 with the burn); REVERSAL_TRAP volume ≥ burst in a bar of
    at least ``reversal_min_range_ticks`` that pushed to a new ``reversal_lookback_bars`` extreme
    and closed back more than ``reversal_retrace`` of its range (0.5); LIQUIDITY_TRAP far OTM
    (|Δ| ≤ ``liquidity_max_delta``) with OI < 2 × the low-OI threshold or a spread wider than
    ``liquidity_max_spread_pct`` of the mid (0.45).
"""

import math

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
P_VOL_ALPHA = 14  # weight of a new bar in the volume baseline: bar_seconds ÷ volume_baseline_s
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
P_HORIZON_BARS = 27  # build-up horizon in whole bars
P_OI_Z = 28
P_PX_Z = 29
P_MIN_OI_LOTS = 30
P_NOISE_ALPHA = 31  # weight of a new sample in the noise scales: bar_seconds ÷ noise_memory_s
P_WARMUP_NOISE_PCT = 32
NP = 33

# ---- horizon history (``hist`` float64[HR, n, NH], one sample per bar, slot = seq % HR) -------
# Slot-major: a bar close writes one slot and reads one (a horizon ago), each a contiguous run
# over the rows in order, which the hardware prefetches; row-major it was two cold lines a row.
H_OI = 0  # OI at the bar's close (units)
H_LTP = 1  # LTP at the bar's close (rupees; NaN before the first trade)
H_VOLUME = 2  # day volume at the bar's close (units)
H_CVD = 3  # cumulative signed volume at the bar's close (units)
NH = 4

# A noise sample enters its scale clipped at this multiple of it (a Huber-style mean |change|).
NOISE_CLIP = 2.0

NS = 1e9
YEAR_S = 365.0 * 86400.0


@njit(cache=True, nogil=True)
def ring_slot(head, back, ring):
    """Ring slot ``back`` bars before the newest (``head``), for 0 ≤ back < 2·ring.

    Not ``%``: an integer division per ring read was most of the detectors' time.
    """
    s = head - back
    if s < 0:
        s += ring
    return s


@njit(cache=True, nogil=True)
def ew_update(mean, n, x, alpha):
    """One step of an exponentially weighted mean that is a plain mean until 1/alpha samples."""
    a = 1.0 / (n + 1.0)
    if a < alpha:
        a = alpha
    return mean + a * (x - mean) if n > 0 else x


@njit(cache=True, nogil=True)
def volume_state(ratio, p):
    """VOL_* code of a volume ratio (NaN → NORMAL)."""
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
        y = bars[row, L.B_VOLUME, ring_slot(head, n - 1 - k, ring)]
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
def classify_buildup(d_oi, d_px, oi_significant, px_significant, horizon_vol):
    """Build-up state of one horizon's changes (see module docs).

    Args:
        d_oi: OI change over the horizon (units).
        d_px: premium change over the horizon (rupees).
        oi_significant: the OI change passed its noise test and floors.
        px_significant: the premium move passed its noise test and floors.
        horizon_vol: quantity traded over the horizon (units).

    Returns:
        A BUILDUP_* code.
    """
    if not (oi_significant and px_significant) or horizon_vol < abs(d_oi):
        return BUILDUP_NONE
    if d_oi > 0:
        return BUILDUP_LONG if d_px > 0 else BUILDUP_SHORT
    return BUILDUP_COVERING if d_px > 0 else BUILDUP_UNWINDING


@njit(cache=True, nogil=True)
def buildup_confidence(z_oi, z_px, vol_ratio, p):
    """Confidence of a classified build-up from how far past noise its moves are (module docs)."""
    oi_s = 1.0 - math.exp(-abs(z_oi) / p[P_OI_Z])
    px_s = 1.0 - math.exp(-abs(z_px) / p[P_PX_Z])
    vol_s = min(1.0, max(0.0, vol_ratio) / 2.0) if vol_ratio == vol_ratio else 0.0
    return min(1.0, 0.4 * oi_s + 0.35 * px_s + 0.25 * vol_s)


@njit(cache=True, nogil=True)
def noise_z(x, scale, floor):
    """|change| ``x`` in units of the noise ``scale``, never less than ``floor``."""
    return x / (scale if scale > floor else floor)


@njit(cache=True, nogil=True)
def _record(row, q, f, hist, seq, di):
    """This bar's horizon sample of ``row``."""
    s = seq % hist.shape[0]
    hist[s, row, H_CVD] = f[row, L.F_CVD]
    hist[s, row, H_OI] = float(q[row, L.Q_OI])
    ltp = q[row, L.Q_LTP]
    hist[s, row, H_LTP] = ltp / 100.0 if ltp > 0 else math.nan
    hist[s, row, H_VOLUME] = float(q[row, L.Q_VOLUME])
    if di[row, L.DI_HIST_FROM] == 0:
        di[row, L.DI_HIST_FROM] = seq + 1


@njit(cache=True, nogil=True)
def _horizon(row, q, hist, seq, p, di, df, base):
    """Changes over the horizon, their noise z-scores and significance; updates the scales.

    Returns:
        (ΔOI units, Δpremium rupees, horizon volume units, OI a horizon ago, OI significant,
        premium significant, horizon volume ratio).
    """
    hr = hist.shape[0]
    hb = int(p[P_HORIZON_BARS])
    first = di[row, L.DI_HIST_FROM] - 1
    start = seq - hb
    if start < first:
        start = first
    w = seq - start
    df[row, L.DF_HORIZON_S] = w * p[P_BAR_SECONDS]
    if w < 1:
        df[row, L.DF_OI_CHG_PCT] = math.nan
        df[row, L.DF_PX_CHG_PCT] = math.nan
        df[row, L.DF_INTERVAL_VOL] = math.nan
        df[row, L.DF_OI_Z] = math.nan
        df[row, L.DF_PX_Z] = math.nan
        df[row, L.DF_HORIZON_VOL_RATIO] = math.nan
        return 0.0, math.nan, 0.0, math.nan, False, False, math.nan
    now = seq % hr
    ref = start % hr
    oi_ref = hist[ref, row, H_OI]
    px_ref = hist[ref, row, H_LTP]
    d_oi = hist[now, row, H_OI] - oi_ref
    d_px = hist[now, row, H_LTP] - px_ref
    hvol = hist[now, row, H_VOLUME] - hist[ref, row, H_VOLUME]
    # Only a full horizon is compared with noise (or teaches it): a shorter window of a contract
    # whose OI arrives in lumps mostly holds no print, and would teach it that OI never moves.
    full = w == hb
    x_oi = abs(d_oi) if full else math.nan
    x_px = abs(d_px) if full else math.nan
    lot = float(max(1, q[row, L.Q_LOT]))
    tick = q[row, L.Q_TICK] / 100.0
    n = di[row, L.DI_NOISE_N]
    oi_scale = df[row, L.DF_OI_NOISE]
    px_scale = df[row, L.DF_PX_NOISE]
    if n >= max(p[P_MIN_BASELINE_BARS], float(hb // 2)):
        z_oi = noise_z(x_oi, oi_scale, lot)
        z_px = noise_z(x_px, px_scale, tick)
    else:
        # The contract's own noise is not known yet: a prior of warmup_noise_pct of its OI and
        # of its premium stands for it (a change over a shorter window, too, is judged on it).
        prior = p[P_WARMUP_NOISE_PCT] / 100.0
        z_oi = noise_z(abs(d_oi), prior * oi_ref, lot)
        z_px = noise_z(abs(d_px), prior * px_ref, tick)
    oi_pct = 100.0 * d_oi / oi_ref if oi_ref > 0 else math.nan
    px_pct = 100.0 * d_px / px_ref if px_ref > 0 else math.nan
    oi_sig = (
        z_oi >= p[P_OI_Z] and abs(d_oi) >= p[P_MIN_OI_LOTS] * lot and abs(oi_pct) >= p[P_MIN_OI_PCT]
    )
    px_sig = z_px >= p[P_PX_Z] and abs(px_pct) >= p[P_MIN_PX_PCT] and abs(d_px) >= tick * 0.999
    # The scales learn from every sample, winsorised at NOISE_CLIP × the scale so that one burst
    # cannot teach the contract that bursts are normal.
    if x_px == x_px:
        if n > 0:
            x_oi = min(x_oi, NOISE_CLIP * max(oi_scale, lot))
            x_px = min(x_px, NOISE_CLIP * max(px_scale, tick))
        df[row, L.DF_OI_NOISE] = ew_update(oi_scale, n, x_oi, p[P_NOISE_ALPHA])
        df[row, L.DF_PX_NOISE] = ew_update(px_scale, n, x_px, p[P_NOISE_ALPHA])
        di[row, L.DI_NOISE_N] = n + 1
    hratio = math.nan
    if base > 0:
        hratio = hvol / (base * w)
    df[row, L.DF_OI_CHG_PCT] = oi_pct
    df[row, L.DF_PX_CHG_PCT] = px_pct
    df[row, L.DF_INTERVAL_VOL] = hvol
    df[row, L.DF_OI_Z] = z_oi
    df[row, L.DF_PX_Z] = z_px
    df[row, L.DF_HORIZON_VOL_RATIO] = hratio
    return d_oi, d_px, hvol, oi_ref, oi_sig, px_sig, hratio


@njit(cache=True, nogil=True)
def _stale(row, q, bars, head, n_valid, bar_end_ns, p):
    """OI has not moved for ``oi_stale_s`` while the contract kept trading."""
    ring = bars.shape[2]
    last = q[row, L.Q_OI_CHANGED_NS]
    since = last if last > 0 else q[row, L.Q_FIRST_SEEN_NS]
    if not (since > 0 and (bar_end_ns - since) / NS > p[P_OI_STALE_S]):
        return False
    # Stale only while it kept trading: any volume within the stale window (the ring's part).
    for k in range(min(n_valid, ring)):
        v = bars[row, L.B_VOLUME, ring_slot(head, k, ring)]
        if v > 0:
            return True
        if (k + 1) * p[P_BAR_SECONDS] >= p[P_OI_STALE_S]:
            break
    return False


@njit(cache=True, nogil=True)
def _buildup(row, q, bars, head, n_valid, bar_end_ns, p, di, df, h):
    d_oi, d_px, hvol, _oi_ref, oi_sig, px_sig, hratio = h
    if _stale(row, q, bars, head, n_valid, bar_end_ns, p):
        di[row, L.DI_OI_STALE] = 1
        di[row, L.DI_BUILDUP] = BUILDUP_NONE
        df[row, L.DF_BUILDUP_CONF] = 0.0
        di[row, L.DI_OI_DIR] = 0
        return
    di[row, L.DI_OI_STALE] = 0
    state = classify_buildup(d_oi, d_px, oi_sig, px_sig, hvol)
    di[row, L.DI_BUILDUP] = state
    df[row, L.DF_BUILDUP_CONF] = (
        buildup_confidence(df[row, L.DF_OI_Z], df[row, L.DF_PX_Z], hratio, p)
        if state != BUILDUP_NONE
        else 0.0
    )
    # A direction needs a change the classifier would count: a few lots of drift are noise, and
    # reading them as "OI↓" would turn ordinary bars into TRAPs.
    di[row, L.DI_OI_DIR] = (1 if d_oi > 0 else -1) if oi_sig else 0


@njit(cache=True, nogil=True)
def _lean(row, bars, head, hist, seq, p, di, d_px):
    """Which way a fresh position went (+1 bought, −1 sold, 0 unknown).

    The signed volume of the bar that revealed it, else the horizon's, else the premium's move.
    """
    hr = hist.shape[0]
    start = max(seq - int(p[P_HORIZON_BARS]), di[row, L.DI_HIST_FROM] - 1)
    moved = bars[row, L.B_CVD, head]
    if moved != moved or moved == 0.0:
        moved = hist[seq % hr, row, H_CVD] - hist[start % hr, row, H_CVD]
    if moved != moved or moved == 0.0:
        moved = d_px
    if moved != moved or moved == 0.0:
        return 0
    return 1 if moved > 0 else -1


@njit(cache=True, nogil=True)
def _fresh(row, vol, bars, head, bar_end_ns, p, hist, seq, di, df, ratio, base, base_n, h):
    d_oi, d_px, _hvol, oi_ref, oi_sig, _px_sig, hratio = h
    cur = di[row, L.DI_FRESH]
    live = cur != FRESH_NONE and (bar_end_ns - di[row, L.DI_FRESH_NS]) / NS <= p[P_FRESH_MAX_AGE_S]
    if cur != FRESH_NONE and not live:
        cur = FRESH_NONE
        di[row, L.DI_FRESH] = FRESH_NONE
        df[row, L.DF_FRESH_STRENGTH] = 0.0
    jump = d_oi / oi_ref if oi_ref > 0 else math.nan
    # The surge shows in this bar or across the horizon (a build-up of thirty small prints).
    surge = ratio
    if hratio == hratio and not (surge >= hratio):
        surge = hratio
    code = FRESH_NONE
    if oi_sig and jump >= p[P_FRESH_OI_JUMP] and surge >= p[P_FRESH_VOL_SURGE]:
        code = FRESH_AGGRESSIVE
    elif vol > 0 and base_n >= p[P_MIN_BASELINE_BARS] and base == 0 and d_oi > 0:
        code = FRESH_FIRST
    elif surge >= p[P_FRESH_VOL_SURGE] and not (abs(jump) >= 0.5 * p[P_FRESH_OI_JUMP]):
        code = FRESH_ADJUSTMENT
    if code in (FRESH_NONE, cur):
        return  # a live detection is not renewed by the same reading
    if cur == FRESH_AGGRESSIVE:
        return  # AGGRESSIVE outranks the others while it lives
    di[row, L.DI_FRESH] = code
    di[row, L.DI_FRESH_NS] = bar_end_ns
    di[row, L.DI_FRESH_DIR] = _lean(row, bars, head, hist, seq, p, di, d_px)
    j = abs(jump) if jump == jump else 0.0
    r = surge if surge == surge else 0.0
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
        s = ring_slot(head, k, ring)
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
    hratio = df[row, L.DF_HORIZON_VOL_RATIO]
    busy = ratio
    if hratio == hratio and not (busy >= hratio):
        busy = hratio
    low_oi = lots < p[P_TRAP_LOW_OI]
    was = (di[row, L.DI_TRAPS] & TRAP_SCALPER) != 0
    if low_oi and (busy >= 3.0 or (was and hratio >= p[P_VOLUME_SPIKE])):
        # The archetypal trap (a thin contract suddenly busy): it blocks on its own, and for as
        # long as the contract keeps trading heavily against an OI that does not grow.
        bits |= TRAP_SCALPER
        keep *= 1.0 - min(0.95, 0.8 + 0.15 * min(1.0, max(0.0, busy - 3.0) / 3.0))
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
def _cross_validate(row, bars, head, n_valid, p, di, df, is_call):
    ring = bars.shape[2]
    prev = ring_slot(head, 1, ring)
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
def _volume(row, bars, head, n_valid, p, di, df):
    """Volume ratio, state, aggression and trend; then the baseline learns this bar.

    Returns:
        (bar volume, ratio, baseline before this bar, bars the baseline had seen).
    """
    vol = bars[row, L.B_VOLUME, head]
    n = di[row, L.DI_VOL_N]
    base = df[row, L.DF_VOL_BASE] if n > 0 else math.nan
    ratio = math.nan
    if n >= p[P_MIN_BASELINE_BARS] and base > 0:
        ratio = vol / base
    df[row, L.DF_VOL_RATIO] = ratio
    di[row, L.DI_VOLUME_STATE] = volume_state(ratio, p)
    di[row, L.DI_VOL_UP] = 1 if (ratio == ratio and ratio >= 1.0 and vol > 0) else 0
    di[row, L.DI_VOL_TREND] = _volume_trend(bars, row, head, n_valid)
    aggression = 0.0
    if ratio == ratio and vol > 0:
        one_sided = abs(bars[row, L.B_CVD, head]) / vol
        span = p[P_VOLUME_AGGRESSIVE] - 1.0
        aggression = min(1.0, max(0.0, (ratio - 1.0) / span)) * (0.5 + 0.5 * min(1.0, one_sided))
    df[row, L.DF_AGGRESSION] = aggression
    if vol == vol:
        x = vol
        if ratio == ratio and x > p[P_VOLUME_SPIKE] * base:
            x = p[P_VOLUME_SPIKE] * base  # a surge is measured against the normal before it
        df[row, L.DF_VOL_BASE] = ew_update(base, n, x, p[P_VOL_ALPHA])
        di[row, L.DI_VOL_N] = n + 1
    return vol, ratio, base, n


@njit(cache=True, nogil=True)
def detect_rows(rows, q, f, bars, head, n_valid, seq, bar_end_ns, p, hist, di, df):
    """Run every per-contract detector for the bar just closed in ring slot ``head``.

    Args:
        rows: int64[m] option rows to evaluate.
        q: int64[n, NQ] chain wire table.
        f: float64[n, NF] chain analytics (greeks at the bar's end).
        bars: float64[n, NB, R] closed bars; ``head`` is the newest.
        head: ring slot of the bar just closed.
        n_valid: bars closed so far (caps every look-back).
        seq: sequence number of the bar just closed.
        bar_end_ns: the bar's end, Unix ns.
        p: float64[NP] parameters.
        hist: float64[HR, n, NH] horizon samples (this bar's written here), HR > horizon bars.
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
        vol, ratio, base, base_n = _volume(row, bars, head, n_valid, p, di, df)
        # Greeks-derived normalisations (NaN when the IV was not solvable).
        t_yrs = f[row, L.F_GREEKS_T]
        df[row, L.DF_DTE] = t_yrs * 365.0 if t_yrs == t_yrs else math.nan
        premium = f[row, L.F_IV_PRICE]
        theta = f[row, L.F_THETA]
        df[row, L.DF_THETA_BURN] = abs(theta) / premium if premium > 0 else math.nan
        _record(row, q, f, hist, seq, di)
        h = _horizon(row, q, hist, seq, p, di, df, base)
        _buildup(row, q, bars, head, n_valid, bar_end_ns, p, di, df, h)
        _fresh(row, vol, bars, head, bar_end_ns, p, hist, seq, di, df, ratio, base, base_n, h)
        _cross_validate(row, bars, head, n_valid, p, di, df, is_call)
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
        di: int64[n, NDI] (``DI_TRAPS``, ``DI_BLOCKED`` written; the last bar's bits are read).
        df: float64[n, NDF] (``DF_TRAP_PROB`` written).
    """
    for i in range(rows.size):
        row = rows[i]
        if q[row, L.Q_TICKS] == 0:
            continue
        _traps(row, q, f, bars, head, n_valid, p, di, df, df[row, L.DF_VOL_RATIO])
