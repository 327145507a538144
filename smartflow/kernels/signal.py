"""The signal's numbers from the detector state: votes, driver, scores, evidence.

``smartflow.analytics.detectors`` documents the rules (votes, the driver, the contract to trade,
the scores, AVOID and can_trade); this module computes them in the same dispatch as the
detectors (``update_bar``), so a bar close is one call.
"""

import math

import numpy as np
from numba import njit

from smartflow.kernels import layout as L
from smartflow.kernels.battlefield import (
    BT_CONTROL,
    BT_OI_SHARE,
    BT_VOL_SHARE,
    CONTROL_BEARISH,
    CONTROL_BULLISH,
    battlefield,
    zone,
)
from smartflow.kernels.detect_contract import (
    BUILDUP_COVERING,
    BUILDUP_LONG,
    BUILDUP_NONE,
    BUILDUP_SHORT,
    FRESH_AGGRESSIVE,
    FRESH_FIRST,
    FRESH_NONE,
    P_ATM_RANGE,
    P_FRESH_MAX_AGE_S,
    P_MIN_NET_VOTE,
    VERDICT_BLOCK,
    XV_EXPLOSIVE,
    XV_NONE,
    XV_REVERSAL,
    XV_SMART_ENTRY,
    XV_THETA_TRAP,
    XV_TRAP,
    detect_rows,
    pattern_verdict,
    run_traps,
    set_gamma_and_move,
)


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
E_OI_Z = 23
E_PX_Z = 24
E_HORIZON_S = 25
NE = 26

NS = 1e9


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
def _votes(rows, lo, hi, q, di, df, votes):
    """Fill ``votes`` (rows ascending) with every option near ATM that votes; returns the count.

    A classified build-up votes its underlying direction (calls as named, puts mirrored) with its
    confidence × type weight (covering/unwinding 0.6) × 1.5 while a fresh position is live on
    it. A live fresh entry without one votes with its strength the way it went (read once, at
    its detection: the signed volume of the bar that revealed it, else the horizon's, else the
    premium's move).
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
            lean = di[row, L.DI_FRESH_DIR]
            if lean == 0:
                continue
            direction = lean * side
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
    out[E_OI_Z] = round_display(df[row, L.DF_OI_Z], 1e2)
    out[E_PX_Z] = round_display(df[row, L.DF_PX_Z], 1e2)
    out[E_HORIZON_S] = round_display(df[row, L.DF_HORIZON_S], 10.0)


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
def assemble(rows, lo, hi, q, bar_end_ns, p, di, df, battle, votes, sig_i, sig_f, ev):
    """The signal's numbers from the detector state (smartflow.analytics.detectors documents it).

    Args:
        rows: int64[m] option rows, ascending.
        lo: lowest voting strike (paise); lo > hi when there is no ATM.
        hi: highest voting strike (paise).
        q: int64[n, NQ] chain wire table.
        bar_end_ns: the bar's end, Unix ns (evidence ages are measured to it).
        p: float64[NP] parameters.
        di: int64[n, NDI] detector state after this bar's detectors.
        df: float64[n, NDF] detector values after this bar's detectors.
        battle: float64[NBT] battlefield (``battlefield``'s ``out``, ``BT_*``).
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
    m = _votes(rows, lo, hi, q, di, df, votes)
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
    oi_share = battle[BT_OI_SHARE]
    vol_share = battle[BT_VOL_SHARE]
    control = int(battle[BT_CONTROL])
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
    seq,
    bar_end_ns,
    spot,
    fwd,
    p,
    hist,
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
    detect_rows(rows, q, f, bars, head, n_valid, seq, bar_end_ns, p, hist, di, df)
    set_gamma_and_move(rows, f, spot, fwd, p[P_FRESH_MAX_AGE_S], df)
    run_traps(rows, q, f, bars, head, n_valid, p, di, df)
    k, lo, hi = zone(strikes, ce_rows, pe_rows, spot, fwd, int(p[P_ATM_RANGE]), calls, puts)
    battlefield(calls[:k], puts[:k], q, f, bars, head, n_valid, p, battle)
    assemble(rows, lo, hi, q, bar_end_ns, p, di, df, battle, votes, sig_i, sig_f, ev)
