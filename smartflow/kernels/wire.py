"""SmartStream binary packet decoder: the one decoder the hot path, tapes and tests all use.

Layout (angel-smartapi.md §2.4), little-endian, offsets from the start of the packet:

=======  ======  ==========================================================================
offset   size    field
=======  ======  ==========================================================================
0        u8      subscription mode: 1 LTP (51 bytes), 2 QUOTE (123), 3 SNAP_QUOTE (379),
                 4 DEPTH-20 (443, deprecated)
1        u8      exchange type (1, 2, 3, 4, 5, 7, 13)
2        25 B    token, ASCII, NUL-padded
27       i64     sequence number (LTP/QUOTE/SNAP; DEPTH: exchange timestamp)
35       i64     exchange timestamp, epoch ms (DEPTH: dummy "packet received time")
43       i64     LTP, paise                                       — LTP ends here
51..123  QUOTE:  i64 LTQ, i64 ATP, i64 day volume, f64 total buy qty, f64 total sell qty,
                 i64 open, high, low, close (paise)
123..379 SNAP:   i64 last-trade time, i64 OI, i64 "OI change %" (a documented dummy),
                 10 × {u16 flag, i64 qty, i64 price, u16 orders} (5 bids then 5 asks),
                 i64 upper circuit, lower circuit, 52-week high, 52-week low
43..443  DEPTH:  20 × {i32 qty, i32 price, i16 orders} bids, then 20 asks
=======  ======  ==========================================================================

Integer widths and signedness follow the official SDK's parser (it is our test oracle), e.g. the
best-five flag and order count are unsigned 16-bit, DEPTH entries signed.

The decoder is strict where the SDK is not: a packet is accepted only when its length is exactly
the one its mode implies, its exchange type is known and its token is printable ASCII. Best-five
levels are read positionally (first five bids), as the docs and the Java/JS SDKs do; the flag of
every non-empty level is *checked* (1 = buy, 0 = sell) and a disagreement is reported as an
anomaly bit rather than trusted, together with a crossed-book check.
"""

import numpy as np
from numba import njit


MODE_LTP = 1
MODE_QUOTE = 2
MODE_SNAP_QUOTE = 3
MODE_DEPTH = 4

LEN_LTP = 51
LEN_QUOTE = 123
LEN_SNAP_QUOTE = 379
LEN_DEPTH = 443

# Decode status: 0 is OK, everything else names why the packet was rejected.
OK = 0
REJECT_EMPTY = 1
REJECT_UNKNOWN_MODE = 2
REJECT_TRUNCATED = 3
REJECT_BAD_LENGTH = 4
REJECT_BAD_TOKEN = 5
REJECT_UNKNOWN_EXCHANGE = 6
STATUS_NAMES = (
    "ok",
    "empty",
    "unknown_mode",
    "truncated",
    "bad_length",
    "bad_token",
    "unknown_exchange",
)

# Anomaly bits (the packet is accepted, the oddity is counted).
ANOMALY_DEPTH_FLAG = 1
ANOMALY_CROSSED_BOOK = 2

# Columns of the int64 output vector ``w``.
W_MODE = 0
W_EXCH = 1
W_SEQ = 2
W_EXCH_TS = 3
W_LTP = 4
W_LTQ = 5
W_ATP = 6
W_VOLUME = 7
W_OPEN = 8
W_HIGH = 9
W_LOW = 10
W_CLOSE = 11
W_LTT = 12
W_OI = 13
W_OI_CHG_RAW = 14
W_UPPER = 15
W_LOWER = 16
W_HIGH52 = 17
W_LOW52 = 18
W_PKT_RECV = 19
W_BID_FLAG = 20  # 5 columns each from here
W_BID_QTY = 25
W_BID_PX = 30
W_BID_ORD = 35
W_ASK_FLAG = 40
W_ASK_QTY = 45
W_ASK_PX = 50
W_ASK_ORD = 55
W_D20_BID_QTY = 60  # 20 columns each from here
W_D20_BID_PX = 80
W_D20_BID_ORD = 100
W_D20_ASK_QTY = 120
W_D20_ASK_PX = 140
W_D20_ASK_ORD = 160
W_ANOMALY = 180
W_SIZE = 181

# Columns of the float64 output vector ``f``.
F_TBQ = 0
F_TSQ = 1
F_SIZE = 2

EXCHANGE_TYPES = (1, 2, 3, 4, 5, 7, 13)


# Integers are assembled from bytes: a slice-and-view read builds a temporary array that numba
# does not optimise away, and measured 4x slower. Only the two doubles per packet use a view
# (numba has no scalar bit-cast).
@njit(cache=True, nogil=True, inline="always")
def _u64(b, o):
    v = np.uint64(0)
    for k in range(8):
        v |= np.uint64(b[o + k]) << np.uint64(8 * k)
    return v


@njit(cache=True, nogil=True, inline="always")
def _i64(b, o):
    return np.int64(_u64(b, o))


@njit(cache=True, nogil=True, inline="always")
def _f64(b, o):
    return b[o : o + 8].view(np.float64)[0]


@njit(cache=True, nogil=True, inline="always")
def _u16(b, o):
    return np.int64(b[o]) | (np.int64(b[o + 1]) << 8)


@njit(cache=True, nogil=True, inline="always")
def _i32(b, o):
    v = np.int64(b[o]) | (np.int64(b[o + 1]) << 8) | (np.int64(b[o + 2]) << 16)
    v |= np.int64(b[o + 3]) << 24
    return v - (np.int64(1) << 32) if v >= (np.int64(1) << 31) else v


@njit(cache=True, nogil=True, inline="always")
def _i16(b, o):
    v = _u16(b, o)
    return v - 65536 if v >= 32768 else v


@njit(cache=True, nogil=True)
def expected_length(mode):
    """Return the packet length a mode implies, or 0 for an unknown mode."""
    if mode == MODE_LTP:
        return LEN_LTP
    if mode == MODE_QUOTE:
        return LEN_QUOTE
    if mode == MODE_SNAP_QUOTE:
        return LEN_SNAP_QUOTE
    if mode == MODE_DEPTH:
        return LEN_DEPTH
    return 0


@njit(cache=True, nogil=True)
def check_frame(b, o, n):
    """Validate the packet ``b[o:o+n]`` without decoding its values.

    Args:
        b: uint8[:] buffer holding one or more packets.
        o: offset of the packet in ``b``.
        n: packet length in bytes.

    Returns:
        ``OK`` or a ``REJECT_*`` status.
    """
    if n <= 0:
        return REJECT_EMPTY
    want = expected_length(b[o])
    if want == 0:
        return REJECT_UNKNOWN_MODE
    if n < want:
        return REJECT_TRUNCATED
    if n > want:
        return REJECT_BAD_LENGTH
    exch = b[o + 1]
    known = False
    for e in EXCHANGE_TYPES:
        if exch == e:
            known = True
    if not known:
        return REJECT_UNKNOWN_EXCHANGE
    # Token: at least one printable ASCII byte, then NUL padding (trailing bytes after the
    # first NUL are ignored, exactly as the SDK's parser does).
    if b[o + 2] == 0:
        return REJECT_BAD_TOKEN
    for k in range(2, 27):
        c = b[o + k]
        if c == 0:
            break
        if c < 0x21 or c > 0x7E:
            return REJECT_BAD_TOKEN
    return OK


@njit(cache=True, nogil=True)
def token_length(b, o):
    """Return the number of token bytes before the NUL padding (at most 25)."""
    for k in range(25):
        if b[o + 2 + k] == 0:
            return k
    return 25


@njit(cache=True, nogil=True)
def _decode_best_five(b, o, w):
    anomaly = 0
    for i in range(10):
        e = o + 147 + 20 * i
        flag = _u16(b, e)
        qty = _i64(b, e + 2)
        px = _i64(b, e + 10)
        orders = _u16(b, e + 18)
        base = 0 if i < 5 else 20
        lvl = i if i < 5 else i - 5
        w[W_BID_FLAG + base + lvl] = flag
        w[W_BID_QTY + base + lvl] = qty
        w[W_BID_PX + base + lvl] = px
        w[W_BID_ORD + base + lvl] = orders
        # An empty level (no price, no size) carries no side information worth checking.
        if (qty != 0 or px != 0) and flag != (1 if i < 5 else 0):
            anomaly |= ANOMALY_DEPTH_FLAG
    best_bid = w[W_BID_PX]
    best_ask = w[W_ASK_PX]
    if best_bid > 0 and best_ask > 0 and best_bid > best_ask:
        anomaly |= ANOMALY_CROSSED_BOOK
    return anomaly


@njit(cache=True, nogil=True)
def decode_frame(b, o, n, w, f):
    """Validate and decode one packet into preallocated vectors.

    Columns not present in the packet's mode are left as they were (callers reuse ``w``).

    Args:
        b: uint8[:] buffer.
        o: int, offset of the packet in ``b``.
        n: int, packet length.
        w: int64[W_SIZE] out: integer fields (prices in paise, quantities in units, times in
            epoch ms as sent), columns ``W_*``; ``w[W_ANOMALY]`` gets the anomaly bits.
        f: float64[F_SIZE] out: total buy / sell quantity (sent as doubles).

    Returns:
        ``OK`` or a ``REJECT_*`` status.
    """
    status = check_frame(b, o, n)
    if status != OK:
        return status
    mode = np.int64(b[o])
    w[W_MODE] = mode
    w[W_EXCH] = np.int64(b[o + 1])
    w[W_ANOMALY] = 0
    if mode == MODE_DEPTH:
        w[W_EXCH_TS] = _i64(b, o + 27)
        w[W_PKT_RECV] = _i64(b, o + 35)
        for i in range(20):
            e = o + 43 + 10 * i
            w[W_D20_BID_QTY + i] = _i32(b, e)
            w[W_D20_BID_PX + i] = _i32(b, e + 4)
            w[W_D20_BID_ORD + i] = _i16(b, e + 8)
            e2 = e + 200
            w[W_D20_ASK_QTY + i] = _i32(b, e2)
            w[W_D20_ASK_PX + i] = _i32(b, e2 + 4)
            w[W_D20_ASK_ORD + i] = _i16(b, e2 + 8)
        return OK
    w[W_SEQ] = _i64(b, o + 27)
    w[W_EXCH_TS] = _i64(b, o + 35)
    w[W_LTP] = _i64(b, o + 43)
    if mode >= MODE_QUOTE:
        w[W_LTQ] = _i64(b, o + 51)
        w[W_ATP] = _i64(b, o + 59)
        w[W_VOLUME] = _i64(b, o + 67)
        f[F_TBQ] = _f64(b, o + 75)
        f[F_TSQ] = _f64(b, o + 83)
        w[W_OPEN] = _i64(b, o + 91)
        w[W_HIGH] = _i64(b, o + 99)
        w[W_LOW] = _i64(b, o + 107)
        w[W_CLOSE] = _i64(b, o + 115)
    if mode == MODE_SNAP_QUOTE:
        w[W_LTT] = _i64(b, o + 123)
        w[W_OI] = _i64(b, o + 131)
        w[W_OI_CHG_RAW] = _i64(b, o + 139)
        w[W_ANOMALY] = _decode_best_five(b, o, w)
        w[W_UPPER] = _i64(b, o + 347)
        w[W_LOWER] = _i64(b, o + 355)
        w[W_HIGH52] = _i64(b, o + 363)
        w[W_LOW52] = _i64(b, o + 371)
    return OK


@njit(cache=True, nogil=True)
def check_frames(b, offsets, lengths, out_status):
    """Validate many packets at once (tape scans, benchmarks).

    Args:
        b: uint8[:] buffer.
        offsets: int64[m] packet offsets.
        lengths: int64[m] packet lengths.
        out_status: int8[m] out: status per packet.

    Returns:
        Number of packets accepted.
    """
    ok = 0
    for i in range(offsets.size):
        s = check_frame(b, offsets[i], lengths[i])
        out_status[i] = s
        if s == OK:
            ok += 1
    return ok


@njit(cache=True, nogil=True)
def decode_frames(b, offsets, lengths, out_status, out_w, out_f):
    """Decode many packets into rows of ``out_w``/``out_f`` (benchmarks and bulk tools).

    Args:
        b: uint8[:] buffer.
        offsets: int64[m] packet offsets.
        lengths: int64[m] packet lengths.
        out_status: int8[m] out.
        out_w: int64[m, W_SIZE] out.
        out_f: float64[m, F_SIZE] out.

    Returns:
        Number of packets accepted.
    """
    ok = 0
    for i in range(offsets.size):
        s = decode_frame(b, offsets[i], lengths[i], out_w[i], out_f[i])
        out_status[i] = s
        if s == OK:
            ok += 1
    return ok
