"""Column layout of the chain tables shared by every chain kernel.

A chain is a handful of 2-D tables with one row per instrument (row 0 the index, row 1 the
future, then every option of the expiry by strike, CE before PE) and named columns:

* ``q``    int64[n, NQ]        wire state: prices in paise, quantities in units, times in ns
* ``f``    float64[n, NF]      analytics: IV and greeks, order-flow state
* ``bars`` float64[n, NB, R]   ring buffers of closed bars (R ≥ 20), slot = bar_seq % R

Why tables and not one 1-D array per field: a numba call costs ~0.2 µs for a few array
arguments but ~4.6 µs for a namedtuple of forty (measured on this machine), and per-tick work is a
single call. The values are module constants, which numba freezes at compile time: they are a
layout, not configuration, and the numba cache directory is keyed by a digest of this package's
sources (``smartflow.app.jit``), so changing them can never load stale machine code.
"""

# ---- row kinds (column Q_KIND) ---------------------------------------------------------------
KIND_NONE = 0
KIND_INDEX = 1
KIND_FUTURE = 2
KIND_CALL = 3
KIND_PUT = 4

ROW_INDEX = 0
ROW_FUTURE = 1
ROW_FIRST_OPTION = 2

# ---- q: int64 wire state -----------------------------------------------------------------------
Q_KIND = 0
Q_STRIKE = 1  # paise
Q_LOT = 2
Q_TICK = 3  # paise
Q_LTP = 4
Q_LTQ = 5
Q_ATP = 6
Q_VOLUME = 7  # day-cumulative
Q_OPEN = 8
Q_HIGH = 9
Q_LOW = 10
Q_CLOSE = 11  # previous day's close
Q_LTT = 12
Q_OI = 13
Q_EXCH_TS = 14  # ms, as sent
Q_SEQ = 15
Q_RECV_NS = 16  # receive time of the last packet applied
Q_TICKS = 17  # packets applied
Q_UPPER = 18
Q_LOWER = 19
Q_BID_PX = 20  # 5 columns: best five bids, best first
Q_BID_QTY = 25
Q_BID_ORD = 30
Q_ASK_PX = 35  # 5 columns: best five asks, best first
Q_ASK_QTY = 40
Q_ASK_ORD = 45
Q_OI_CHANGED_NS = 50  # receive time at which OI last changed (0: never seen change)
Q_OI_PREV = 51  # OI before its last change
Q_ANOMALY = 52  # anomaly bits of the last packet
Q_PREV_BID_PX = 53  # best bid/ask of the previous packet (lagged quote for trade signing)
Q_PREV_BID_QTY = 54
Q_PREV_ASK_PX = 55
Q_PREV_ASK_QTY = 56
Q_PREV_LTP = 57
Q_IV_STATUS = 58
Q_BAR_VOLUME0 = 59  # day volume at the start of the open bar
Q_BAR_OI0 = 60  # OI at the start of the open bar
Q_BAR_TICKS0 = 61
Q_HAS_QUOTE = 62  # 1 once a QUOTE/SNAP packet has been applied
Q_MODE = 63  # mode of the last packet
Q_FIRST_SEEN_NS = 64  # receive time of the first packet
Q_BAR_OI_UPDATES = 65  # OI changes seen in the open bar
Q_PAIR_ROW = 66  # row of the other option at the same strike (-1: none)
Q_BARS = 67  # bars closed since the row was first seen
# OI staleness: the exchange moves OI only every so often, so a build-up is read across two OI
# updates (the reference = the one before the last), not across two packets or bars.
Q_OI_LAST_NS = 68  # receive time of the last OI update (or first sight)
Q_OI_LAST_LTP = 69  # LTP (paise) when it happened
Q_OI_LAST_VOL = 70  # day volume when it happened
Q_OI_REF_NS = 71  # the same three for the update before it
Q_OI_REF_LTP = 72
Q_OI_REF_VOL = 73
NQ = 74

# ---- f: float64 analytics ----------------------------------------------------------------------
F_TBQ = 0
F_TSQ = 1
F_IV = 2
F_DELTA = 3
F_GAMMA = 4
F_THETA = 5  # per calendar day
F_VEGA = 6  # per vol point
F_IV_PRICE = 7  # premium the IV was solved from, rupees
F_GREEKS_T = 8  # year fraction used
# order flow, per tick
F_CVD = 9  # cumulative signed volume (units)
F_CVD_CONF_VOL = 10  # volume whose side was decided by the quote
F_CVD_VOL = 11  # volume signed at all
F_LAST_SIGN = 12
F_OFI = 13  # cumulative best-level order-flow imbalance (units)
F_VWAP_PV = 14
F_VWAP_V = 15
F_VWAP = 16
F_HIDDEN = 17  # cumulative hidden (iceberg) volume estimate (units)
F_HIDDEN_BID = 18
F_HIDDEN_ASK = 19
F_PRESSURE = 20  # (tbq - tsq) / (tbq + tsq)
F_DEPTH_IMB = 21
F_WHALE_VALUE = 22  # largest single-interval traded value today, rupees
F_OBV = 23  # on bar closes
F_BAR_CVD0 = 24  # CVD at the start of the open bar
F_BAR_OFI0 = 25
F_BAR_HIDDEN0 = 26
F_LAST_TRADE_VALUE = 27
F_EWMA_DVOL = 28  # EWMA of per-interval traded quantity (whale baseline)
F_LAST_DVOL = 29
F_LAST_IMPACT = 30
F_OFI_EWMA = 31
F_LAST_TRADE_PX = 32  # price of the last snapshot that carried a trade (tick rule state)
F_BAR_CLOSE_PREV = 33  # previous bar's close, rupees (OBV state)
F_BAR_HIGH = 34  # running high / low of the open bar, rupees
F_BAR_LOW = 35
NF = 36

# ---- bars: float64 ring buffers (row, field, slot) ------------------------------------------
B_VOLUME = 0  # traded in the bar
B_OI = 1  # OI at bar close
B_OI_DELTA = 2  # OI change over the bar
B_CLOSE = 3  # LTP at close, rupees
B_BID = 4
B_ASK = 5
B_IV = 6
B_DELTA = 7
B_GAMMA = 8
B_THETA = 9
B_VEGA = 10
B_OI_AGE = 11  # seconds since OI last changed, at close
B_TICKS = 12
B_CVD = 13  # signed volume in the bar
B_OFI = 14
B_HIDDEN = 15
B_OI_UPDATES = 16
B_TBQ = 17
B_TSQ = 18
B_HIGH = 19  # highest / lowest LTP seen inside the bar, rupees
B_LOW = 20
NB = 21
RING = 32

# ---- detector tables: di int64[n, NDI] and df float64[n, NDF] --------------------------------
# states (di); names in smartflow.analytics.detectors
DI_BUILDUP = 0  # BUILDUP_* code
DI_OI_STALE = 1  # 1: OI has not moved for oi_stale_s while the contract traded
DI_VOLUME_STATE = 2  # VOL_* code
DI_VOL_TREND = 3  # -1 falling, 0 flat, +1 rising
DI_FRESH = 4  # FRESH_* code (0 none)
DI_FRESH_NS = 5  # when it was detected
DI_TRAPS = 6  # TRAP_* bits
DI_XV_PATTERN = 7  # XV_* code
DI_XV_VERDICT = 8  # VERDICT_* code
DI_OI_DIR = 9  # sign of a significant OI change over the horizon (0: none, or stale)
DI_DELTA_DIR = 10  # +1 the contract gained delta (toward the money), -1 lost, 0 flat
DI_VOL_UP = 11  # 1: bar volume at or above its baseline
DI_BLOCKED = 12  # 1: the trap filter blocks this contract
DI_HIST_FROM = 13  # 1 + the bar sequence of the row's first horizon sample (0: none yet)
DI_NOISE_N = 14  # horizon changes the noise scales have seen
DI_VOL_N = 15  # bars the volume baseline has seen
DI_FRESH_DIR = 16  # +1 the fresh position bought the contract, −1 sold it (read at detection)
NDI = 17

DF_BUILDUP_CONF = 0
DF_OI_CHG_PCT = 1  # over the build-up horizon
DF_PX_CHG_PCT = 2  # premium change over the same horizon
DF_INTERVAL_VOL = 3  # traded over the same horizon (units)
DF_VOL_RATIO = 4  # bar volume / the volume baseline
DF_AGGRESSION = 5
DF_FRESH_STRENGTH = 6
DF_FRESH_OI_JUMP = 7
DF_FRESH_VOL_RATIO = 8
DF_EXPECTED_MOVE = 9  # 1-sigma premium move over the fresh-position horizon, rupees
DF_TRAP_PROB = 10
DF_XV_QUALITY = 11
DF_DELTA_CHG = 12
DF_GAMMA_1PCT = 13  # change of delta for a 1 % move of the underlying
DF_THETA_BURN = 14  # |theta per day| / premium
DF_DTE = 15  # calendar days to expiry at the bar's end
DF_OI_LOTS = 16
DF_GAMMA_CHG_PCT = 17
DF_OI_NOISE = 18  # typical |OI change| over the horizon (units), from the contract's history
DF_PX_NOISE = 19  # typical |premium change| over the horizon (rupees)
DF_OI_Z = 20  # this horizon's |OI change| in units of DF_OI_NOISE
DF_PX_Z = 21
DF_VOL_BASE = 22  # volume baseline: what a bar normally trades (units)
DF_HORIZON_VOL_RATIO = 23  # horizon volume / (baseline × bars in the horizon)
DF_HORIZON_S = 24  # seconds the horizon spans (shorter while the history is)
NDF = 25
