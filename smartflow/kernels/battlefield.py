"""CE vs PE battlefield over the zone around ATM (seeds/phase4-integration-guide.md, component 4).

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

import numpy as np
from numba import njit

from smartflow.kernels import layout as L
from smartflow.kernels.detect_contract import P_BATTLE_BARS, P_CONTROL, ring_slot


CONTROL_BULLISH = 0
CONTROL_BEARISH = 1
CONTROL_BALANCED = 2
CONTROL_CHOP = 3

# ---- the battlefield's numbers (``out`` of ``battlefield``) -----------------------------------
BT_CONTROL = 0  # CONTROL_* code
BT_OI_SHARE = 1  # CE share of the zone's OI
BT_VOL_SHARE = 2  # CE share of the zone's volume over the window
BT_SKEW = 3  # CE share of the delta-weighted OI
BT_WAR = 4  # war intensity
BT_TREND = 5  # −1 PE gaining, 0 stable, +1 CE gaining
BT_ZONE_VOL = 6  # the zone's volume over the window
BT_ZONE_OI = 7
NBT = 8

# ---- one side's sums (``acc`` of ``_zone_sums``) -------------------------------------------
ZS_OI = 0
ZS_VOLUME = 1  # over the window
ZS_DELTA_OI = 2  # Σ|Δ|·OI
ZS_OLD_OI = 3  # OI at the window's start
ZS_BASE_VOLUME = 4  # volume in the bars before the window
ZS_BASE_N = 5  # contract-bars in that baseline
NZS = 6


@njit(cache=True, nogil=True)
def _zone_sums(rows, q, f, bars, head, n_valid, window, acc):
    """Accumulate one side's sums into ``acc`` (float64[NZS], the ``ZS_*`` fields)."""
    ring = bars.shape[2]
    for i in range(rows.size):
        row = rows[i]
        oi = float(q[row, L.Q_OI])
        acc[ZS_OI] += oi
        for k in range(window):
            v = bars[row, L.B_VOLUME, ring_slot(head, k, ring)]
            if v == v:
                acc[ZS_VOLUME] += v
        d = f[row, L.F_DELTA]
        if d == d:
            acc[ZS_DELTA_OI] += abs(d) * oi
        if n_valid > window:
            old = bars[row, L.B_OI, ring_slot(head, window, ring)]
            if old == old:
                acc[ZS_OLD_OI] += old
        for k in range(window, min(n_valid, ring)):
            v = bars[row, L.B_VOLUME, ring_slot(head, k, ring)]
            if v == v:
                acc[ZS_BASE_VOLUME] += v
                acc[ZS_BASE_N] += 1.0


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
        out: float64[NBT] out (``BT_*``).

    Returns:
        The control code.
    """
    window = int(min(p[P_BATTLE_BARS], n_valid))
    ce = np.zeros(NZS)
    pe = np.zeros(NZS)
    _zone_sums(calls, q, f, bars, head, n_valid, window, ce)
    _zone_sums(puts, q, f, bars, head, n_valid, window, pe)
    oi_share = _share(ce[ZS_OI], pe[ZS_OI])
    vol_share = _share(ce[ZS_VOLUME], pe[ZS_VOLUME])
    skew = _share(ce[ZS_DELTA_OI], pe[ZS_DELTA_OI])
    control = control_of(oi_share, vol_share, skew, p[P_CONTROL])
    zone_vol = ce[ZS_VOLUME] + pe[ZS_VOLUME]
    activity = 1.0
    base_n = ce[ZS_BASE_N] + pe[ZS_BASE_N]
    if base_n > 0:
        # Baseline: the zone's average volume per contract-bar before the window.
        per_bar = (ce[ZS_BASE_VOLUME] + pe[ZS_BASE_VOLUME]) / base_n
        expected = per_bar * (calls.size + puts.size) * window
        activity = min(1.0, zone_vol / expected) if expected > 0 else 1.0
    trend = 0
    if ce[ZS_OLD_OI] + pe[ZS_OLD_OI] > 0:
        moved = oi_share - _share(ce[ZS_OLD_OI], pe[ZS_OLD_OI])
        trend = 1 if moved > 0.01 else (-1 if moved < -0.01 else 0)
    out[BT_CONTROL] = control
    out[BT_OI_SHARE] = oi_share
    out[BT_VOL_SHARE] = vol_share
    out[BT_SKEW] = skew
    out[BT_WAR] = (1.0 - 2.0 * abs(vol_share - 0.5)) * activity
    out[BT_TREND] = trend
    out[BT_ZONE_VOL] = zone_vol
    out[BT_ZONE_OI] = ce[ZS_OI] + pe[ZS_OI]
    return control
