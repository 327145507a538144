"""Chain kernels: apply packets to the chain tables, price the chain, close bars.

Everything here works on the tables of ``smartflow.kernels.layout``. A batch of packets is applied
in receive order by one call (``apply_frames``): decode, update the row's wire state, and update
the per-tick order-flow state from the change between this packet and the row's previous one.
The previous snapshot's best bid and ask are the *lagged* quote trades are signed against
(flow.md: Lee-Ready on snapshots); the traded quantity is the change in day volume.
"""

import math

import numpy as np
from numba import njit

from smartflow.kernels import flow, layout as L
from smartflow.kernels.iv import IV_OK, iv_greeks_one
from smartflow.kernels.wire import (
    F_TBQ as W_F_TBQ,
    F_TSQ as W_F_TSQ,
    MODE_QUOTE,
    MODE_SNAP_QUOTE,
    OK,
    W_ANOMALY,
    W_ASK_ORD,
    W_ASK_PX,
    W_ASK_QTY,
    W_ATP,
    W_BID_ORD,
    W_BID_PX,
    W_BID_QTY,
    W_CLOSE,
    W_EXCH_TS,
    W_HIGH,
    W_LOW,
    W_LOWER,
    W_LTP,
    W_LTQ,
    W_LTT,
    W_MODE,
    W_OI,
    W_OPEN,
    W_SEQ,
    W_UPPER,
    W_VOLUME,
    decode_frame,
)


# apply_frames statuses beyond the wire's reject codes
UNKNOWN_TOKEN = 100

# event bits per packet (out_events)
EV_WHALE = 1
EV_HIDDEN = 2
EV_OI_CHANGE = 4
EV_ANOMALY = 8

# ev: per-packet event payload (what a whale alert must describe, captured at that packet)
E_QTY = 0
E_PRICE = 1
E_VALUE = 2
E_IMPACT = 3
E_AVG_BEFORE = 4  # the average interval quantity the print was compared with
E_SIDE = 5  # +1 buyer-initiated, -1 seller-initiated, 0 undecided
NE = 6

# fp: float parameters of apply_frames
P_WHALE_VALUE = 0  # rupees traded in one interval
P_WHALE_MULT = 1  # or this multiple of the EWMA interval quantity
P_EWMA_ALPHA = 2
NP_APPLY = 3

NS = 1_000_000_000
YEAR_S = 365.0 * 86400.0


@njit(cache=True, nogil=True)
def _apply_flow(row, recv_ns, q, f, fp, old_volume, had_quote, ev):
    """Per-tick order flow from the change since the row's previous packet; returns events."""
    events = 0
    if not had_quote:
        return events
    dvol = float(q[row, L.Q_VOLUME] - old_volume)
    px = q[row, L.Q_LTP] / 100.0
    prev_bid = q[row, L.Q_PREV_BID_PX] / 100.0
    prev_ask = q[row, L.Q_PREV_ASK_PX] / 100.0
    bid = q[row, L.Q_BID_PX] / 100.0
    ask = q[row, L.Q_ASK_PX] / 100.0
    # Best-level order-flow imbalance (Cont, Kukanov & Stoikov).
    e = flow.ofi_step(
        bid,
        float(q[row, L.Q_BID_QTY]),
        ask,
        float(q[row, L.Q_ASK_QTY]),
        prev_bid,
        float(q[row, L.Q_PREV_BID_QTY]),
        prev_ask,
        float(q[row, L.Q_PREV_ASK_QTY]),
    )
    f[row, L.F_OFI] += e
    f[row, L.F_OFI_EWMA] = flow.ewma_step(
        f[row, L.F_OFI_EWMA], e, fp[P_EWMA_ALPHA], q[row, L.Q_TICKS] <= 2
    )
    f[row, L.F_LAST_DVOL] = dvol
    if dvol <= 0:
        return events
    cvd, sign, confident, last_px, tick_sign = flow.cvd_step(
        f[row, L.F_CVD],
        px,
        dvol,
        prev_bid,
        prev_ask,
        f[row, L.F_LAST_TRADE_PX],
        f[row, L.F_LAST_SIGN],
    )
    f[row, L.F_CVD] = cvd
    f[row, L.F_LAST_TRADE_PX] = last_px
    f[row, L.F_LAST_SIGN] = tick_sign
    if sign != 0:
        f[row, L.F_CVD_VOL] += dvol
        if confident:
            f[row, L.F_CVD_CONF_VOL] += dvol
    pv, v, vwap = flow.vwap_step(f[row, L.F_VWAP_PV], f[row, L.F_VWAP_V], px, dvol)
    f[row, L.F_VWAP_PV] = pv
    f[row, L.F_VWAP_V] = v
    f[row, L.F_VWAP] = vwap
    # Hidden liquidity: a trade at a best level that is still there, at the same price, after
    # trading more than was displayed at the start of the interval.
    hidden = 0.0
    if prev_bid > 0 and q[row, L.Q_LTP] == q[row, L.Q_PREV_BID_PX] and bid == prev_bid:
        hidden = flow.hidden_liquidity(float(q[row, L.Q_PREV_BID_QTY]), dvol, True)
        f[row, L.F_HIDDEN_BID] += hidden
    elif prev_ask > 0 and q[row, L.Q_LTP] == q[row, L.Q_PREV_ASK_PX] and ask == prev_ask:
        hidden = flow.hidden_liquidity(float(q[row, L.Q_PREV_ASK_QTY]), dvol, True)
        f[row, L.F_HIDDEN_ASK] += hidden
    if hidden > 0:
        f[row, L.F_HIDDEN] += hidden
        events |= EV_HIDDEN
    value = dvol * px
    f[row, L.F_LAST_TRADE_VALUE] = value
    avg = f[row, L.F_EWMA_DVOL]
    ev[E_QTY] = dvol
    ev[E_PRICE] = px
    ev[E_VALUE] = value
    ev[E_IMPACT] = math.nan
    ev[E_AVG_BEFORE] = avg
    ev[E_SIDE] = sign
    if flow.is_whale(value, dvol, avg, fp[P_WHALE_VALUE], fp[P_WHALE_MULT]) and avg > 0:
        events |= EV_WHALE
        if value > f[row, L.F_WHALE_VALUE]:
            f[row, L.F_WHALE_VALUE] = value
        # Impact of the same size walking today's visible book on the side it took.
        if sign >= 0:
            px5 = q[row, L.Q_ASK_PX : L.Q_ASK_PX + 5] / 100.0
            qty5 = q[row, L.Q_ASK_QTY : L.Q_ASK_QTY + 5].astype(np.float64)
            _, impact, _ = flow.walk_book_impact(dvol, px5, qty5, 1, q[row, L.Q_TICK] / 100.0)
        else:
            px5 = q[row, L.Q_BID_PX : L.Q_BID_PX + 5] / 100.0
            qty5 = q[row, L.Q_BID_QTY : L.Q_BID_QTY + 5].astype(np.float64)
            _, impact, _ = flow.walk_book_impact(dvol, px5, qty5, -1, q[row, L.Q_TICK] / 100.0)
        f[row, L.F_LAST_IMPACT] = impact
        ev[E_IMPACT] = impact
    elif value >= fp[P_WHALE_VALUE]:
        # A value print on the first trade seen (no baseline yet) still counts.
        events |= EV_WHALE
        f[row, L.F_WHALE_VALUE] = max(f[row, L.F_WHALE_VALUE], value)
    f[row, L.F_EWMA_DVOL] = flow.ewma_step(avg, dvol, fp[P_EWMA_ALPHA], avg <= 0)
    return events


@njit(cache=True, nogil=True)
def _apply_decoded(row, recv_ns, w, wf, q, f, fp, ev):
    mode = w[W_MODE]
    had_quote = q[row, L.Q_HAS_QUOTE] == 1
    old_volume = q[row, L.Q_VOLUME]
    # The lagged quote: what the book looked like before this packet.
    q[row, L.Q_PREV_BID_PX] = q[row, L.Q_BID_PX]
    q[row, L.Q_PREV_BID_QTY] = q[row, L.Q_BID_QTY]
    q[row, L.Q_PREV_ASK_PX] = q[row, L.Q_ASK_PX]
    q[row, L.Q_PREV_ASK_QTY] = q[row, L.Q_ASK_QTY]
    q[row, L.Q_PREV_LTP] = q[row, L.Q_LTP]
    q[row, L.Q_MODE] = mode
    q[row, L.Q_SEQ] = w[W_SEQ]
    q[row, L.Q_EXCH_TS] = w[W_EXCH_TS]
    q[row, L.Q_LTP] = w[W_LTP]
    px = w[W_LTP] / 100.0
    if px > 0:
        if not (f[row, L.F_BAR_HIGH] >= px):
            f[row, L.F_BAR_HIGH] = px
        if not (f[row, L.F_BAR_LOW] <= px):
            f[row, L.F_BAR_LOW] = px
    q[row, L.Q_RECV_NS] = recv_ns
    q[row, L.Q_TICKS] += 1
    if q[row, L.Q_FIRST_SEEN_NS] == 0:
        q[row, L.Q_FIRST_SEEN_NS] = recv_ns
    q[row, L.Q_ANOMALY] = w[W_ANOMALY]
    events = 0
    if w[W_ANOMALY] != 0:
        events |= EV_ANOMALY
    if mode < MODE_QUOTE:
        return events
    q[row, L.Q_LTQ] = w[W_LTQ]
    q[row, L.Q_ATP] = w[W_ATP]
    q[row, L.Q_VOLUME] = w[W_VOLUME]
    q[row, L.Q_OPEN] = w[W_OPEN]
    q[row, L.Q_HIGH] = w[W_HIGH]
    q[row, L.Q_LOW] = w[W_LOW]
    q[row, L.Q_CLOSE] = w[W_CLOSE]
    f[row, L.F_TBQ] = wf[W_F_TBQ]
    f[row, L.F_TSQ] = wf[W_F_TSQ]
    if not had_quote:
        # Bars measure change from here on; the day's volume before we arrived is not a bar.
        q[row, L.Q_BAR_VOLUME0] = w[W_VOLUME]
    if mode == MODE_SNAP_QUOTE:
        q[row, L.Q_LTT] = w[W_LTT]
        oi = w[W_OI]
        if had_quote and oi != q[row, L.Q_OI]:
            q[row, L.Q_OI_PREV] = q[row, L.Q_OI]
            q[row, L.Q_OI_CHANGED_NS] = recv_ns
            q[row, L.Q_BAR_OI_UPDATES] += 1
            q[row, L.Q_OI_REF_NS] = q[row, L.Q_OI_LAST_NS]
            q[row, L.Q_OI_REF_LTP] = q[row, L.Q_OI_LAST_LTP]
            q[row, L.Q_OI_REF_VOL] = q[row, L.Q_OI_LAST_VOL]
            q[row, L.Q_OI_LAST_NS] = recv_ns
            q[row, L.Q_OI_LAST_LTP] = w[W_LTP]
            q[row, L.Q_OI_LAST_VOL] = w[W_VOLUME]
            events |= EV_OI_CHANGE
        elif not had_quote:
            q[row, L.Q_BAR_OI0] = oi
            q[row, L.Q_OI_PREV] = oi
            q[row, L.Q_OI_LAST_NS] = recv_ns
            q[row, L.Q_OI_LAST_LTP] = w[W_LTP]
            q[row, L.Q_OI_LAST_VOL] = w[W_VOLUME]
        q[row, L.Q_OI] = oi
        q[row, L.Q_UPPER] = w[W_UPPER]
        q[row, L.Q_LOWER] = w[W_LOWER]
        for i in range(5):
            q[row, L.Q_BID_PX + i] = w[W_BID_PX + i]
            q[row, L.Q_BID_QTY + i] = w[W_BID_QTY + i]
            q[row, L.Q_BID_ORD + i] = w[W_BID_ORD + i]
            q[row, L.Q_ASK_PX + i] = w[W_ASK_PX + i]
            q[row, L.Q_ASK_QTY + i] = w[W_ASK_QTY + i]
            q[row, L.Q_ASK_ORD + i] = w[W_ASK_ORD + i]
        pressure, imbalance = flow.book_pressure(
            f[row, L.F_TBQ],
            f[row, L.F_TSQ],
            q[row, L.Q_BID_QTY : L.Q_BID_QTY + 5].astype(np.float64),
            q[row, L.Q_ASK_QTY : L.Q_ASK_QTY + 5].astype(np.float64),
        )
        f[row, L.F_PRESSURE] = pressure
        f[row, L.F_DEPTH_IMB] = imbalance
    q[row, L.Q_HAS_QUOTE] = 1
    events |= _apply_flow(row, recv_ns, q, f, fp, old_volume, had_quote, ev)
    return events


@njit(cache=True, nogil=True)
def apply_frames(
    buf, offsets, lengths, rows, recv_ns, q, f, fp, w, wf, out_status, out_events, out_ev, dirty
):
    """Decode packets and apply them to their rows, in order.

    Args:
        buf: uint8[:] bytes holding the packets.
        offsets: int64[m] packet offsets in ``buf``.
        lengths: int64[m] packet lengths.
        rows: int64[m] chain row of each packet (-1: token not in this chain).
        recv_ns: int64[m] receive times, Unix ns.
        q: int64[n, L.NQ] chain wire table (updated).
        f: float64[n, L.NF] chain analytics table (updated).
        fp: float64[NP_APPLY] parameters (``P_*``).
        w: int64[W_SIZE] decode scratch.
        wf: float64[F_SIZE] decode scratch.
        out_status: int8[m] out: wire status, or ``UNKNOWN_TOKEN``.
        out_events: int8[m] out: ``EV_*`` bits.
        out_ev: float64[m, NE] out: the packet's trade (``E_*``), for event consumers.
        dirty: bool_[n] set for every row touched.

    Returns:
        Number of packets applied.
    """
    applied = 0
    for i in range(offsets.size):
        row = rows[i]
        s = decode_frame(buf, offsets[i], lengths[i], w, wf)
        if s != OK:
            out_status[i] = s
            out_events[i] = 0
            continue
        if row < 0:
            out_status[i] = UNKNOWN_TOKEN
            out_events[i] = 0
            continue
        out_status[i] = OK
        out_events[i] = _apply_decoded(row, recv_ns[i], w, wf, q, f, fp, out_ev[i])
        dirty[row] = True
        applied += 1
    return applied


@njit(cache=True, nogil=True)
def option_price(q, row, use_mid, max_spread_frac):
    """Premium (rupees) the IV is solved from: a sane mid, else the LTP; NaN if neither."""
    bid = q[row, L.Q_BID_PX]
    ask = q[row, L.Q_ASK_PX]
    if use_mid and bid > 0 and ask >= bid:
        mid = 0.5 * (bid + ask)
        if (ask - bid) <= max_spread_frac * mid:
            return mid / 100.0
    ltp = q[row, L.Q_LTP]
    if ltp > 0:
        return ltp / 100.0
    return math.nan


@njit(cache=True, nogil=True)
def synthetic_forward_at(q, first, n, t_yrs, rate, max_spread_frac):
    """Put-call-parity forward from mid quotes at the strike with the smallest |C − P|.

    Returns:
        (forward, strike_row) or (NaN, -1) when no strike has sane quotes on both sides.
    """
    df = math.exp(-rate * t_yrs)
    best = math.inf
    fwd = math.nan
    best_row = -1
    for row in range(first, n):
        if q[row, L.Q_KIND] != L.KIND_CALL:
            continue
        put = q[row, L.Q_PAIR_ROW]
        if put < 0:
            continue
        c = option_price(q, row, True, max_spread_frac)
        p = option_price(q, put, True, max_spread_frac)
        if not (c > 0 and p > 0):
            continue
        # Only true mids: a parity forward from stale LTPs is worse than none.
        if q[row, L.Q_BID_PX] <= 0 or q[put, L.Q_BID_PX] <= 0:
            continue
        gap = abs(c - p)
        if gap < best:
            best = gap
            fwd = q[row, L.Q_STRIKE] / 100.0 + (c - p) / df
            best_row = row
    return fwd, best_row


@njit(cache=True, nogil=True)
def forward_and_spot(
    q, first_option, mode, t_ns, expiry_ns, future_expiry_ns, rate, dividend_yield, max_spread_frac
):
    """The option expiry's forward under ``mode`` and the index spot (NaN when unknown).

    ``mode``: 0 synthetic (put-call parity; falls back to the spot or future forward until a
    strike has sane quotes on both sides), 1 future (same-expiry future's mid; a different-expiry
    future is carried to the option expiry at the carry it implies against spot, or at ``rate``
    when spot is unknown), 2 spot (S·e^{(r − q)T}, NSE-compatible Black-Scholes).
    """
    n = q.shape[0]
    t_opt = max(0.0, (expiry_ns - t_ns) / NS / YEAR_S)
    spot = q[L.ROW_INDEX, L.Q_LTP] / 100.0 if q[L.ROW_INDEX, L.Q_LTP] > 0 else math.nan
    fut = math.nan
    if q[L.ROW_FUTURE, L.Q_KIND] == L.KIND_FUTURE:
        fut = option_price(q, L.ROW_FUTURE, True, max_spread_frac)
    t_fut = max(0.0, (future_expiry_ns - t_ns) / NS / YEAR_S)
    fut_fwd = math.nan
    if fut > 0:
        if future_expiry_ns == expiry_ns:
            fut_fwd = fut
        elif spot > 0 and t_fut > 0:
            carry = math.log(fut / spot) / t_fut
            fut_fwd = spot * math.exp(carry * t_opt)
        else:
            fut_fwd = fut * math.exp(-rate * (t_fut - t_opt))
    spot_fwd = spot * math.exp((rate - dividend_yield) * t_opt) if spot > 0 else math.nan
    if mode == 2:
        return spot_fwd, spot
    if mode == 1:
        return (fut_fwd if fut_fwd > 0 else spot_fwd), spot
    fwd, _ = synthetic_forward_at(q, first_option, n, t_opt, rate, max_spread_frac)
    if fwd > 0:
        return fwd, spot
    return (spot_fwd if spot_fwd > 0 else fut_fwd), spot


@njit(cache=True, nogil=True)
def compute_greeks(
    rows, use_row_time, t_ns, q, f, expiry_ns, fwd, spot, rate, use_mid, max_spread_frac
):
    """IV and greeks of option ``rows`` into ``f`` (units of layout: Θ per day, vega per point).

    Args:
        rows: int64[m] rows to price (non-option rows are skipped).
        use_row_time: price each row at its own last receive time (per-tick updates) instead
            of ``t_ns`` (bar closes and snapshots, where every row shares one instant).
        t_ns: int, the shared instant.
        q: int64[n, L.NQ] (``L.Q_IV_STATUS`` written).
        f: float64[n, L.NF] (IV, greeks, price used and T written).
        expiry_ns: int, 15:30 IST of the expiry.
        fwd: forward of the expiry, rupees.
        spot: index, rupees (NaN: greeks per unit of the forward).
        rate: continuously compounded rate.
        use_mid: solve from a sane mid when there is one (else always the LTP).
        max_spread_frac: widest (ask − bid) / mid still called sane.

    Returns:
        Number of rows with a solved IV.
    """
    solved = 0
    for i in range(rows.size):
        row = rows[i]
        t = q[row, L.Q_RECV_NS] if use_row_time else t_ns
        solved += _price_row(row, t, q, f, expiry_ns, fwd, spot, rate, use_mid, max_spread_frac)
    return solved


@njit(cache=True, nogil=True)
def _price_row(row, t, q, f, expiry_ns, fwd, spot, rate, use_mid, max_spread_frac):
    """IV and greeks of one row at instant ``t`` (``compute_greeks``); 1 when solved."""
    kind = q[row, L.Q_KIND]
    if kind != L.KIND_CALL and kind != L.KIND_PUT:
        return 0
    t_yrs = (expiry_ns - t) / NS / YEAR_S
    price = option_price(q, row, use_mid, max_spread_frac)
    f[row, L.F_IV_PRICE] = price
    f[row, L.F_GREEKS_T] = t_yrs
    # One solve whose intermediate terms the greeks reuse (theta's r·V takes the market premium).
    iv, status, delta, gamma, theta, vega = iv_greeks_one(
        price,
        fwd,
        q[row, L.Q_STRIKE] / 100.0,
        t_yrs,
        rate,
        spot,
        kind == L.KIND_CALL,
        0.5 * q[row, L.Q_TICK] / 100.0,
    )
    q[row, L.Q_IV_STATUS] = status
    f[row, L.F_IV] = iv
    f[row, L.F_DELTA] = delta
    f[row, L.F_GAMMA] = gamma
    f[row, L.F_THETA] = theta
    f[row, L.F_VEGA] = vega
    return 1 if status == IV_OK else 0


@njit(cache=True, nogil=True)
def close_bar(q, f, bars, slot, bar_end_ns):
    """Close the open bar of every row into ring ``slot`` and open the next one.

    Greeks must have been computed at ``bar_end_ns`` just before (``compute_greeks``), so the
    bar carries the chain as it stood at the bar's end, whatever the packet timing was.

    Args:
        q: int64[n, L.NQ] (bar-start snapshots reset).
        f: float64[n, L.NF] (bar-start snapshots reset, OBV advanced).
        bars: float64[n, L.NB, R] out.
        slot: int ring slot.
        bar_end_ns: int.
    """
    n = q.shape[0]
    for row in range(n):
        kind = q[row, L.Q_KIND]
        if kind == 0:
            continue
        b = bars[row]
        seen = q[row, L.Q_TICKS] > 0
        b[L.B_VOLUME, slot] = float(q[row, L.Q_VOLUME] - q[row, L.Q_BAR_VOLUME0]) if seen else 0.0
        b[L.B_OI, slot] = float(q[row, L.Q_OI])
        b[L.B_OI_DELTA, slot] = float(q[row, L.Q_OI] - q[row, L.Q_BAR_OI0]) if seen else 0.0
        close = q[row, L.Q_LTP] / 100.0 if q[row, L.Q_LTP] > 0 else math.nan
        b[L.B_CLOSE, slot] = close
        b[L.B_BID, slot] = q[row, L.Q_BID_PX] / 100.0
        b[L.B_ASK, slot] = q[row, L.Q_ASK_PX] / 100.0
        b[L.B_IV, slot] = f[row, L.F_IV]
        b[L.B_DELTA, slot] = f[row, L.F_DELTA]
        b[L.B_GAMMA, slot] = f[row, L.F_GAMMA]
        b[L.B_THETA, slot] = f[row, L.F_THETA]
        b[L.B_VEGA, slot] = f[row, L.F_VEGA]
        if q[row, L.Q_OI_CHANGED_NS] > 0:
            b[L.B_OI_AGE, slot] = (bar_end_ns - q[row, L.Q_OI_CHANGED_NS]) / NS
        elif seen:
            b[L.B_OI_AGE, slot] = (bar_end_ns - q[row, L.Q_FIRST_SEEN_NS]) / NS
        else:
            b[L.B_OI_AGE, slot] = math.nan
        b[L.B_TICKS, slot] = float(q[row, L.Q_TICKS] - q[row, L.Q_BAR_TICKS0])
        b[L.B_CVD, slot] = f[row, L.F_CVD] - f[row, L.F_BAR_CVD0]
        b[L.B_OFI, slot] = f[row, L.F_OFI] - f[row, L.F_BAR_OFI0]
        b[L.B_HIDDEN, slot] = f[row, L.F_HIDDEN] - f[row, L.F_BAR_HIDDEN0]
        b[L.B_OI_UPDATES, slot] = float(q[row, L.Q_BAR_OI_UPDATES])
        b[L.B_TBQ, slot] = f[row, L.F_TBQ]
        b[L.B_TSQ, slot] = f[row, L.F_TSQ]
        b[L.B_HIGH, slot] = f[row, L.F_BAR_HIGH]
        b[L.B_LOW, slot] = f[row, L.F_BAR_LOW]
        # The next bar starts at the last price, so a quiet bar has high = low = close.
        f[row, L.F_BAR_HIGH] = close
        f[row, L.F_BAR_LOW] = close
        if seen and kind != L.KIND_INDEX and close == close:
            f[row, L.F_OBV] = flow.obv_step(
                f[row, L.F_OBV],
                f[row, L.F_BAR_CLOSE_PREV],
                close,
                b[L.B_VOLUME, slot],
                q[row, L.Q_BARS] == 0,
            )
            f[row, L.F_BAR_CLOSE_PREV] = close
            q[row, L.Q_BARS] += 1
        q[row, L.Q_BAR_VOLUME0] = q[row, L.Q_VOLUME]
        q[row, L.Q_BAR_OI0] = q[row, L.Q_OI]
        q[row, L.Q_BAR_TICKS0] = q[row, L.Q_TICKS]
        q[row, L.Q_BAR_OI_UPDATES] = 0
        f[row, L.F_BAR_CVD0] = f[row, L.F_CVD]
        f[row, L.F_BAR_OFI0] = f[row, L.F_OFI]
        f[row, L.F_BAR_HIDDEN0] = f[row, L.F_HIDDEN]


# mp: model parameters of price_dirty_rows / price_all_rows
M_MODE = 0  # forward mode: 0 synthetic, 1 future, 2 spot
M_RATE = 1
M_DIV = 2
M_MAX_SPREAD = 3
M_USE_MID = 4
M_EXPIRY_NS = 5
M_FUT_EXPIRY_NS = 6
M_FULL_REPRICE_NS = 7
NM = 8

# st: pricing state of a chain (forward, spot, time of the last full re-price)
S_FORWARD = 0
S_SPOT = 1
S_LAST_FULL_NS = 2
NS_STATE = 3


@njit(cache=True, nogil=True)
def price_dirty_rows(q, f, dirty, option_rows, scratch_rows, t_ns, mp, st):
    """Per-tick pricing after a batch, in one call (see chain/state.py for the policy).

    Recomputes the forward at ``t_ns``; prices the dirty option rows at their own receive
    times, or every option row when the forward moved and the last full re-price is older
    than ``mp[M_FULL_REPRICE_NS]``; clears ``dirty``.

    Args:
        q: int64[n, NQ] chain wire table.
        f: float64[n, NF] chain analytics table (greeks written).
        dirty: bool_[n] rows touched since the last call (cleared).
        option_rows: int64[k] every option row.
        scratch_rows: int64[n] scratch for the dirty row list.
        t_ns: the batch's last receive time.
        mp: float64[NM] model parameters (``M_*``).
        st: float64[NS_STATE] pricing state (``S_*``), updated.

    Returns:
        Number of rows priced.
    """
    n = q.shape[0]
    m = 0
    for row in range(n):
        if dirty[row]:
            scratch_rows[m] = row
            m += 1
            dirty[row] = False
    if m == 0:
        return 0
    expiry = np.int64(mp[M_EXPIRY_NS])
    fwd, spot = forward_and_spot(
        q,
        L.ROW_FIRST_OPTION,
        int(mp[M_MODE]),
        t_ns,
        expiry,
        np.int64(mp[M_FUT_EXPIRY_NS]),
        mp[M_RATE],
        mp[M_DIV],
        mp[M_MAX_SPREAD],
    )
    old = st[S_FORWARD]
    moved = not (fwd == old or (fwd != fwd and old != old))
    st[S_FORWARD] = fwd
    st[S_SPOT] = spot
    use_mid = mp[M_USE_MID] > 0
    if moved and t_ns - st[S_LAST_FULL_NS] >= mp[M_FULL_REPRICE_NS]:
        st[S_LAST_FULL_NS] = t_ns
        return compute_greeks(
            option_rows, True, t_ns, q, f, expiry, fwd, spot, mp[M_RATE], use_mid, mp[M_MAX_SPREAD]
        )
    return compute_greeks(
        scratch_rows[:m], True, t_ns, q, f, expiry, fwd, spot, mp[M_RATE], use_mid, mp[M_MAX_SPREAD]
    )
