"""Chain summary kernels: PCR, max pain, OI walls, ΔOI, GEX, the smile and its skew, straddle.

``summarize`` reads one expiry's chain tables (``smartflow.kernels.layout``) at an instant at
which every option has just been priced (a bar close or a snapshot) and writes one row of
``K_*`` columns per strike and the chain's ``S_*`` scalars. ``zero_gamma`` finds the spot level
at which the chain's dealer gamma changes sign; it costs ~40 times the rest and is run only when
a summary is read, not at every bar close.

Conventions (README "Chain summary" states them for traders):

* OI and volume are in units (contracts × lot), as Angel sends them, so payouts and exposures
  come out in rupees with no lot factor.
* ΔOI is against a per-contract baseline in ``base`` (``B_*`` columns): the previous session's
  closing OI when the caller knows it (``SRC_PREV_CLOSE``), else the OI of the day's first
  print, which this kernel fills in itself (``SRC_FIRST_PRINT``).
* PCR = Σ put ÷ Σ call of OI, day volume or ΔOI; NaN when the call side is 0.
* Max pain: the strike P minimising Σ call OI·max(P − K, 0) + put OI·max(K − P, 0), i.e. what
  option holders would be paid if the index settled at P; ties go to the lower strike.
* GEX per strike = (Γ_call·OI_call − Γ_put·OI_put)·S²·0.01: rupees of index delta that dealers
  who are long the calls and short the puts must trade for a 1 % move of the index (Γ per point
  of spot, as the chain's greeks). Positive GEX: dealers sell rallies and buy dips.
* The smile uses the out-of-the-money side at each strike (puts below the forward, calls at or
  above it, the other side when that one has no IV); "delta" is the undiscounted Black-76 forward
  delta N(d1) of the call at that IV (a put's is N(d1) − 1). ATM IV is the smile interpolated
  linearly in strike at the forward. The 25-delta risk reversal is IV(25Δ call) − IV(25Δ put);
  the butterfly is their mean minus ATM IV; both read the smile interpolated linearly in N(d1)
  (the 25-delta put sits at N(d1) = 0.75).
* The straddle is call + put premium (the price each IV was solved from: a sane mid, else the
  LTP) at the strike nearest the forward. Expected move: the straddle itself (the market's mean
  absolute move to expiry, ≈ 0.8 σ) and F·σ_ATM·√T (one standard deviation).
"""

import math

from numba import njit

from smartflow.kernels import layout as L
from smartflow.kernels.chain import S_FORWARD as S_FORWARD_IN, S_SPOT as S_SPOT_IN


# base: float64[n, NBASE] per chain row
B_OI = 0  # baseline OI (NaN: not yet known)
B_SRC = 1  # SRC_* of the baseline
B_LAST_OI = 2  # OI at the last bar close (the next session's previous close)
NBASE = 3
SRC_NONE = 0.0
SRC_FIRST_PRINT = 1.0
SRC_PREV_CLOSE = 2.0


# out_k: float64[m, NK] per strike (rows in strike order; K_SEEN = 0 rows are to be skipped)
K_STRIKE = 0
K_SEEN = 1
# ΔOI and volume sit 2 and 4 columns after OI on each side (``_side`` relies on it).
K_CE_OI = 2
K_PE_OI = 3
K_CE_DOI = 4
K_PE_DOI = 5
K_CE_VOL = 6
K_PE_VOL = 7
K_PCR_OI = 8
K_PCR_VOL = 9
K_PCR_DOI = 10
K_PAIN = 11  # rupees paid to holders if the index settled at this strike
K_GEX = 12  # rupees per 1 % move
K_CE_IV = 13
K_PE_IV = 14
K_IV = 15  # the smile: OTM side
K_CALL_DELTA = 16  # N(d1) at the smile IV
K_CE_PRICE = 17
K_PE_PRICE = 18
K_CE_GAMMA = 19
K_PE_GAMMA = 20
K_CE_LTP = 21
K_PE_LTP = 22
NK = 23

# out_s: float64[NSUM] chain scalars
S_STRIKES = 0  # strikes with at least one side seen
S_CE_OI = 1
S_PE_OI = 2
S_CE_DOI = 3
S_PE_DOI = 4
S_CE_VOL = 5
S_PE_VOL = 6
S_PCR_OI = 7
S_PCR_VOL = 8
S_PCR_DOI = 9
S_MAX_PAIN = 10
S_MAX_PAIN_PAYOUT = 11
S_CE_WALL = 12  # strike with the largest call OI (resistance)
S_CE_WALL_OI = 13
S_PE_WALL = 14  # largest put OI (support)
S_PE_WALL_OI = 15
S_CE_DOI_WALL = 16  # largest call OI added
S_CE_DOI_WALL_DOI = 17
S_PE_DOI_WALL = 18
S_PE_DOI_WALL_DOI = 19
S_GEX = 20
S_GEX_MISSING = 21  # contracts with OI but no gamma (no IV), left out of GEX
S_ATM_IV = 22
S_ATM_STRIKE = 23
S_STRADDLE = 24
S_EM_SIGMA = 25
S_IV_25C = 26
S_IV_25P = 27
S_IV_10C = 28
S_IV_10P = 29
S_RR25 = 30
S_BF25 = 31
S_FIRST_PRINT = 32  # contracts with OI whose ΔOI baseline is the day's first print
S_PREV_CLOSE = 33  # … whose baseline is the previous session's close
S_FORWARD = 34  # the inputs, as used
S_SPOT = 35  # NaN when unknown (GEX then scales by the forward)
S_T = 36  # years to expiry
NSUM = 37

YEAR_S = 365.0 * 86400.0
INV_SQRT2 = 0.7071067811865476
INV_SQRT_2PI = 0.3989422804014327


@njit(cache=True, nogil=True, error_model="numpy")
def _ncdf(x):
    return 0.5 * math.erfc(-x * INV_SQRT2)


@njit(cache=True, nogil=True, error_model="numpy")
def _baseline(row, q, bars, base, slot):
    """The row's ΔOI baseline, filling in the day's first print when none is known yet."""
    b = base[row, B_OI]
    if b == b:
        return b
    if q[row, L.Q_HAS_QUOTE] == 0:
        return math.nan
    # The OI at the start of the bar the row was first seen in is its first print: at a bar
    # close that bar is already in the ring; inside the open bar it is the bar's opening OI.
    if slot >= 0:
        b = bars[row, L.B_OI, slot] - bars[row, L.B_OI_DELTA, slot]
    else:
        b = float(q[row, L.Q_BAR_OI0])
    base[row, B_OI] = b
    base[row, B_SRC] = SRC_FIRST_PRINT
    return b


@njit(cache=True, nogil=True, error_model="numpy")
def _interp_delta(out_k, m, target):
    """Smile IV where the call's forward delta N(d1) is ``target`` (NaN: not bracketed).

    N(d1) falls with the strike, and the smile holds the OTM side's IV at each strike, so one
    walk serves both wings: a 25-delta put is where N(d1) = 0.75 (put delta N(d1) − 1 = −0.25).
    """
    prev_x = math.nan
    prev_iv = math.nan
    for i in range(m):
        if out_k[i, K_SEEN] == 0.0:
            continue
        x = out_k[i, K_CALL_DELTA]
        iv = out_k[i, K_IV]
        if not (x == x and iv == iv):
            continue
        if prev_x == prev_x and prev_x >= target >= x:
            if prev_x == x:
                return iv
            w = (prev_x - target) / (prev_x - x)
            return prev_iv + w * (iv - prev_iv)
        prev_x = x
        prev_iv = iv
    return math.nan


@njit(cache=True, nogil=True, error_model="numpy")
def _side(row, is_call, q, f, bars, base, slot, gex_scale, o, out_s):
    """One contract's OI, volume, ΔOI, IV, premium and signed GEX into strike row ``o``."""
    oi_col = K_CE_OI if is_call else K_PE_OI
    if row < 0 or q[row, L.Q_TICKS] == 0:
        o[oi_col] = 0.0
        o[oi_col + 2] = 0.0  # ΔOI
        o[oi_col + 4] = 0.0  # volume
        return 0.0
    o[K_SEEN] = 1.0
    oi = float(q[row, L.Q_OI])
    b = _baseline(row, q, bars, base, slot)
    doi = oi - b if b == b else 0.0
    if slot >= 0:
        base[row, B_LAST_OI] = oi
    if oi > 0 or doi != 0.0:
        if base[row, B_SRC] == SRC_PREV_CLOSE:
            out_s[S_PREV_CLOSE] += 1.0
        else:
            out_s[S_FIRST_PRINT] += 1.0
    o[oi_col] = oi
    o[oi_col + 2] = doi
    o[oi_col + 4] = float(q[row, L.Q_VOLUME])
    g = f[row, L.F_GAMMA]
    o[K_CE_IV if is_call else K_PE_IV] = f[row, L.F_IV]
    o[K_CE_PRICE if is_call else K_PE_PRICE] = f[row, L.F_IV_PRICE]
    o[K_CE_GAMMA if is_call else K_PE_GAMMA] = g
    ltp = q[row, L.Q_LTP]
    o[K_CE_LTP if is_call else K_PE_LTP] = ltp / 100.0 if ltp > 0 else math.nan
    if g != g:
        if oi > 0:
            out_s[S_GEX_MISSING] += 1.0
        return 0.0
    return (g if is_call else -g) * oi * gex_scale


@njit(cache=True, nogil=True, error_model="numpy")
def _ratio(num, den):
    return num / den if den != 0 else math.nan


@njit(cache=True, nogil=True, error_model="numpy")
def summarize(q, f, bars, st, rows, base, out, t_ns, expiry_ns, slot):
    """One chain's summary at ``t_ns``, the instant its options were last priced.

    One call and scalar arguments on purpose: at a bar close every Python-level step costs
    microseconds (cold caches), so the caller only allocates ``out`` and makes one call.

    Args:
        q: int64[n, L.NQ] chain wire table.
        f: float64[n, L.NF] chain analytics (IV, greeks, ``F_IV_PRICE`` at the instant).
        bars: float64[n, L.NB, R] bar rings (read only when ``slot >= 0``).
        st: float64[kernels.chain.NS_STATE] the chain's pricing state (forward, spot).
        rows: int64[m, 2] call and put row of each strike in ascending strike order (-1: none).
        base: float64[n, NBASE] ΔOI baselines (first prints filled in; ``B_LAST_OI`` written
            at bar closes).
        out: float64[m * NK + NSUM] out: the per-strike table (``K_*``, row-major) then the
            chain scalars (``S_*``).
        t_ns: the instant, Unix ns.
        expiry_ns: 15:30 IST of the expiry, Unix ns.
        slot: ring slot of the bar that closed at ``t_ns``, or -1 inside the open bar.

    Returns:
        Number of strikes seen.
    """
    m = rows.shape[0]
    out_k = out[: m * NK].reshape((m, NK))
    out_s = out[m * NK :]
    fwd = st[S_FORWARD_IN]
    spot = st[S_SPOT_IN]
    t = (expiry_ns - t_ns) / 1e9 / YEAR_S
    scale = spot if spot > 0 else fwd
    gex_scale = scale * scale * 0.01
    sqrt_t = math.sqrt(t) if t > 0 else math.nan
    for i in range(NSUM):
        out_s[i] = 0.0
    out_s[S_FORWARD] = fwd
    out_s[S_SPOT] = spot
    out_s[S_T] = t
    seen = 0
    for i in range(m):
        o = out_k[i]
        for c in range(NK):
            o[c] = math.nan
        o[K_SEEN] = 0.0
        ce = rows[i, 0]
        pe = rows[i, 1]
        any_row = ce if ce >= 0 else pe
        o[K_STRIKE] = q[any_row, L.Q_STRIKE] / 100.0 if any_row >= 0 else math.nan
        gex = _side(ce, True, q, f, bars, base, slot, gex_scale, o, out_s)
        gex += _side(pe, False, q, f, bars, base, slot, gex_scale, o, out_s)
        if o[K_SEEN] == 0.0:
            continue
        seen += 1
        o[K_GEX] = gex
        o[K_PCR_OI] = _ratio(o[K_PE_OI], o[K_CE_OI])
        o[K_PCR_VOL] = _ratio(o[K_PE_VOL], o[K_CE_VOL])
        o[K_PCR_DOI] = _ratio(o[K_PE_DOI], o[K_CE_DOI])
        # The smile: the out-of-the-money side, the other side when that one has no IV.
        k = o[K_STRIKE]
        first = o[K_PE_IV] if k < fwd else o[K_CE_IV]
        second = o[K_CE_IV] if k < fwd else o[K_PE_IV]
        iv = first if first == first else second
        o[K_IV] = iv
        if iv == iv and fwd > 0 and sqrt_t > 0:
            s = iv * sqrt_t
            o[K_CALL_DELTA] = _ncdf(math.log(fwd / k) / s + 0.5 * s)
        out_s[S_CE_OI] += o[K_CE_OI]
        out_s[S_PE_OI] += o[K_PE_OI]
        out_s[S_CE_DOI] += o[K_CE_DOI]
        out_s[S_PE_DOI] += o[K_PE_DOI]
        out_s[S_CE_VOL] += o[K_CE_VOL]
        out_s[S_PE_VOL] += o[K_PE_VOL]
        out_s[S_GEX] += gex
    out_s[S_STRIKES] = seen
    out_s[S_PCR_OI] = _ratio(out_s[S_PE_OI], out_s[S_CE_OI])
    out_s[S_PCR_VOL] = _ratio(out_s[S_PE_VOL], out_s[S_CE_VOL])
    out_s[S_PCR_DOI] = _ratio(out_s[S_PE_DOI], out_s[S_CE_DOI])
    _pain(out_k, m, out_s)
    _walls(out_k, m, out_s)
    _volatility(out_k, m, fwd, t, out_s)
    return seen


@njit(cache=True, nogil=True, error_model="numpy")
def _pain(out_k, m, out_s):
    """Pain curve by prefix sums (O(m)) and max pain, the lowest strike of least pain."""
    # Calls below P pay P − K: running Σ OI and Σ OI·K from the left; puts above P from the right.
    c_oi = 0.0
    c_oik = 0.0
    for i in range(m):
        if out_k[i, K_SEEN] == 0.0:
            continue
        k = out_k[i, K_STRIKE]
        out_k[i, K_PAIN] = k * c_oi - c_oik
        c_oi += out_k[i, K_CE_OI]
        c_oik += out_k[i, K_CE_OI] * k
    p_oi = 0.0
    p_oik = 0.0
    for i in range(m - 1, -1, -1):
        if out_k[i, K_SEEN] == 0.0:
            continue
        k = out_k[i, K_STRIKE]
        out_k[i, K_PAIN] += p_oik - k * p_oi
        p_oi += out_k[i, K_PE_OI]
        p_oik += out_k[i, K_PE_OI] * k
    best = math.inf
    out_s[S_MAX_PAIN] = math.nan
    out_s[S_MAX_PAIN_PAYOUT] = math.nan
    for i in range(m):
        if out_k[i, K_SEEN] != 0.0 and out_k[i, K_PAIN] < best:
            best = out_k[i, K_PAIN]
            out_s[S_MAX_PAIN] = out_k[i, K_STRIKE]
            out_s[S_MAX_PAIN_PAYOUT] = best


@njit(cache=True, nogil=True, error_model="numpy")
def _walls(out_k, m, out_s):
    """Strike of the largest call OI, put OI, call ΔOI and put ΔOI (the lowest on ties)."""
    walls = (S_CE_WALL, S_PE_WALL, S_CE_DOI_WALL, S_PE_DOI_WALL)
    cols = (K_CE_OI, K_PE_OI, K_CE_DOI, K_PE_DOI)
    for j in range(4):
        w = walls[j]
        out_s[w] = math.nan
        out_s[w + 1] = math.nan
        best = -math.inf
        for i in range(m):
            v = out_k[i, cols[j]]
            if out_k[i, K_SEEN] != 0.0 and v > best:
                best = v
                out_s[w] = out_k[i, K_STRIKE]
                out_s[w + 1] = v


@njit(cache=True, nogil=True, error_model="numpy")
def _volatility(out_k, m, fwd, t, out_s):
    """ATM IV at the forward, straddle, expected move, 10/25-delta points, RR and butterfly."""
    lo = -1
    hi = -1
    for i in range(m):
        if out_k[i, K_SEEN] == 0.0 or out_k[i, K_IV] != out_k[i, K_IV]:
            continue
        if out_k[i, K_STRIKE] <= fwd:
            lo = i
        elif hi < 0:
            hi = i
    atm = math.nan
    if lo >= 0 and hi >= 0:
        k0 = out_k[lo, K_STRIKE]
        k1 = out_k[hi, K_STRIKE]
        w = (fwd - k0) / (k1 - k0)
        atm = out_k[lo, K_IV] + w * (out_k[hi, K_IV] - out_k[lo, K_IV])
    elif lo >= 0:
        atm = out_k[lo, K_IV]
    elif hi >= 0:
        atm = out_k[hi, K_IV]
    out_s[S_ATM_IV] = atm
    out_s[S_EM_SIGMA] = fwd * atm * math.sqrt(t) if t > 0 else math.nan
    # Straddle at the strike nearest the forward that has both premiums.
    best = math.inf
    out_s[S_ATM_STRIKE] = math.nan
    out_s[S_STRADDLE] = math.nan
    for i in range(m):
        if out_k[i, K_SEEN] == 0.0:
            continue
        c = out_k[i, K_CE_PRICE]
        pp = out_k[i, K_PE_PRICE]
        if not (c == c and pp == pp):
            continue
        gap = abs(out_k[i, K_STRIKE] - fwd)
        if gap < best:
            best = gap
            out_s[S_ATM_STRIKE] = out_k[i, K_STRIKE]
            out_s[S_STRADDLE] = c + pp
    out_s[S_IV_25C] = _interp_delta(out_k, m, 0.25)
    out_s[S_IV_25P] = _interp_delta(out_k, m, 0.75)
    out_s[S_IV_10C] = _interp_delta(out_k, m, 0.10)
    out_s[S_IV_10P] = _interp_delta(out_k, m, 0.90)
    out_s[S_RR25] = out_s[S_IV_25C] - out_s[S_IV_25P]
    out_s[S_BF25] = 0.5 * (out_s[S_IV_25C] + out_s[S_IV_25P]) - atm


@njit(cache=True, nogil=True, error_model="numpy")
def _total_gex(out_k, m, fwd, spot, t, rate, s_new):
    """Chain GEX (rupees per 1 %) if spot were ``s_new``, every IV held (sticky strike)."""
    f_new = fwd * s_new / spot
    df = math.exp(-rate * t)
    sqrt_t = math.sqrt(t)
    total = 0.0
    for i in range(m):
        if out_k[i, K_SEEN] == 0.0:
            continue
        k = out_k[i, K_STRIKE]
        for side in range(2):
            oi = out_k[i, K_CE_OI] if side == 0 else out_k[i, K_PE_OI]
            iv = out_k[i, K_CE_IV] if side == 0 else out_k[i, K_PE_IV]
            if not (oi > 0 and iv > 0):
                continue
            s = iv * sqrt_t
            d1 = math.log(f_new / k) / s + 0.5 * s
            # Γ per spot point = Γ_F·(F/S)², Γ_F = df·φ(d1)/(F·s); × S²·1 % = df·φ·F·0.01/s.
            g = df * INV_SQRT_2PI * math.exp(-0.5 * d1 * d1) * f_new * 0.01 / s
            total += g * oi if side == 0 else -g * oi
    return total


@njit(cache=True, nogil=True, error_model="numpy")
def zero_gamma(out_k, m, fwd, spot, t, rate):
    """The index level nearest ``spot`` at which chain GEX changes sign (NaN: none in range).

    GEX is re-evaluated at each seen strike as a hypothetical spot (forward moved with it, IVs
    held), the sign change nearest the current spot is bracketed, then bisected to 0.01 point.
    """
    if not (spot > 0 and fwd > 0 and t > 0):
        return math.nan
    best = math.nan
    best_gap = math.inf
    prev_x = math.nan
    prev_g = math.nan
    for i in range(m):
        if out_k[i, K_SEEN] == 0.0:
            continue
        x = out_k[i, K_STRIKE]
        g = _total_gex(out_k, m, fwd, spot, t, rate, x)
        if prev_g == prev_g and (prev_g < 0.0) != (g < 0.0):
            lo = prev_x
            hi = x
            g_lo = prev_g
            for _ in range(60):
                if hi - lo < 0.01:
                    break
                mid = 0.5 * (lo + hi)
                g_mid = _total_gex(out_k, m, fwd, spot, t, rate, mid)
                if (g_mid < 0.0) == (g_lo < 0.0):
                    lo = mid
                    g_lo = g_mid
                else:
                    hi = mid
            root = 0.5 * (lo + hi)
            if abs(root - spot) < best_gap:
                best_gap = abs(root - spot)
                best = root
        prev_x = x
        prev_g = g
    return best
