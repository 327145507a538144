"""Order-flow analytics (the Smart Money Integration Framework seed), made real.

The per-tick state lives in the chain tables (``kernels/chain.py`` updates it on every packet):
OBV on bar closes (TA-Lib semantics), our session VWAP next to the exchange's ATP, CVD signed by
Lee-Ready against the previous snapshot's quote, best-level order-flow imbalance (Cont, Kukanov &
Stoikov), book pressure, whale prints and hidden liquidity. This module reads it into views:

* per contract: the metrics above, the VWAP deviation against the seed's 2 % threshold, the share
  of volume whose side the quote decided, and the execution urgency LOW…CRITICAL (from OFI,
  book pressure, VWAP deviation and spread: ``execution_urgency``);
* hidden liquidity — the seed's "dark pool" component, translated honestly: NSE F&O has no dark
  pools, but volume that trades at a best level which then survives, beyond what it displayed,
  reveals iceberg or replenished orders. Hidden share = that volume ÷ all signed volume; a
  contract whose recent hidden share exceeds ``absorption_hidden_share`` is *absorbing*
  (a large passive player soaking up the flow);
* whale alerts: one interval (between two packets) trading at least ``whale_value_rupees`` or at
  least ``whale_volume_multiple`` × its average interval quantity, with the impact the same size
  would have walking the visible book;
* confluence (the seed's "correlation"): agreement in [−1, 1] between the near-month future's
  flow (recent CVD share, OFI, side of VWAP) and the latest SmartMoneySignal, giving HOLD /
  CAUTIOUS_EXECUTE / EXECUTE / STRONG_EXECUTE, a size multiplier and the seed's 30–300 s timing
  window. HOLD (× 0) is reserved for flow that *contradicts* the signal: neutral flow carries no
  information and must not veto a trade.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from smartflow.analytics.detectors import SmartMoneyDetector
from smartflow.chain.state import ChainBook, ChainState
from smartflow.config import FlowConfig
from smartflow.core.timeutil import iso_ist
from smartflow.kernels import chain as kc, flow, layout as L


_WINDOW_COLS = np.array([L.B_VOLUME, L.B_HIDDEN, L.B_CVD, L.B_OFI], np.int64)


def _f(x: float, nd: int = 4) -> float | None:
    return round(float(x), nd) if math.isfinite(x) else None


# ---- decisions read from Python ---------------------------------------------------------------
# Plain Python: each runs a few times per bar or per API read, where a numba dispatch would cost
# more than the arithmetic. Same float operations in the same order as the kernels they were, so
# the replay output did not move.


def _clip1(x: float) -> float:
    """Clip to [-1, 1]; NaN becomes 0."""
    if x != x:
        return 0.0
    if x > 1.0:
        return 1.0
    if x < -1.0:
        return -1.0
    return float(x)


def _sign(x: float) -> int:
    """Sign of ``x`` as an int (-1, 0, +1); NaN is 0."""
    return 1 if x > 0 else (-1 if x < 0 else 0)


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


@dataclass(frozen=True)
class WhaleAlert:
    """One whale print."""

    ts: int
    underlying: str
    token: str
    symbol: str
    strike: float | None
    option_type: str
    side: str
    quantity: int
    price: float
    value: float
    avg_interval_quantity: float
    impact: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        d = dict(self.__dict__)
        d["ts"] = iso_ist(self.ts)
        d["ts_ns"] = self.ts
        return d


class _Core(NamedTuple):
    """One contract's flow numbers that both its view and its underlying's confluence read."""

    q: list[int]
    f: list[float]
    dev: float
    recent_vol: float
    recent_hidden: float
    recent_cvd: float
    ofi_norm: float
    pressure: float
    urgency: int


@dataclass
class Confluence:
    """Flow ↔ signal agreement for one underlying."""

    ts: int = 0
    score: float = 0.0
    recommendation: str = "HOLD"
    size_multiplier: float = 0.0
    urgency: str = "LOW"
    timing_window_s: float = 300.0
    signal: str = "NEUTRAL"
    inputs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        d = dict(self.__dict__)
        d["ts"] = iso_ist(self.ts) if self.ts else None
        return d


class FlowAnalyzer:
    """Reads the chain's per-tick flow state into views; confluence per bar."""

    def __init__(
        self, book: ChainBook, detectors: dict[str, SmartMoneyDetector], cfg: FlowConfig
    ) -> None:
        self.book = book
        self.detectors = detectors
        self.cfg = cfg
        self.whales: deque[WhaleAlert] = deque(maxlen=cfg.alerts_kept)
        self.hidden_events = 0
        self.confluence: dict[str, Confluence] = {c.root: Confluence() for c in book.chains}
        self._sums = np.zeros(len(_WINDOW_COLS))

    # ---- events -------------------------------------------------------------------------

    def on_event(self, c: ChainState, row: int, bits: int, recv_ns: int, ev: np.ndarray) -> None:
        """A packet the apply kernel flagged (``ChainBook.on_event``): count and keep whales."""
        if bits & kc.EV_HIDDEN:
            self.hidden_events += 1
        if not bits & kc.EV_WHALE:
            return
        inst = c.instruments[row]
        if inst is None:
            return
        # Everything comes from the packet's own payload: a later packet of the same contract
        # in the same batch has already moved the row on.
        side = int(ev[kc.E_SIDE])
        self.whales.append(
            WhaleAlert(
                ts=recv_ns,
                underlying=c.root,
                token=inst.token,
                symbol=inst.symbol,
                strike=inst.strike if inst.kind in ("CE", "PE") else None,
                option_type=inst.kind,
                side="BUY" if side > 0 else ("SELL" if side < 0 else "UNKNOWN"),
                quantity=int(ev[kc.E_QTY]),
                price=round(float(ev[kc.E_PRICE]), 2),
                value=round(float(ev[kc.E_VALUE]), 2),
                avg_interval_quantity=round(float(np.nan_to_num(ev[kc.E_AVG_BEFORE])), 1),
                impact=_f(ev[kc.E_IMPACT], 2),
            )
        )

    # ---- views --------------------------------------------------------------------------

    def _windows(self, c: ChainState, row: int) -> list[float]:
        """Volume, hidden, CVD and OFI summed over the last ``window_bars`` closed bars."""
        n = min(self.cfg.window_bars, self.book.bar_seq, L.RING)
        if n <= 0:
            return [0.0] * len(_WINDOW_COLS)
        # One kernel call: on the path to the strategy at every bar close, numpy's indexing and
        # four nansums cost ~100 µs on a cold cache.
        flow.window_sums(c.bars, row, _WINDOW_COLS, (self.book.bar_seq - 1) % L.RING, n, self._sums)
        sums: list[float] = self._sums.tolist()
        return sums

    def _core(self, c: ChainState, row: int) -> _Core:
        """What both the contract view and the bar's confluence read from one contract."""
        # Python lists: one conversion each instead of a numpy scalar per field.
        q: list[int] = c.q[row].tolist()
        f: list[float] = c.f[row].tolist()
        ltp = q[L.Q_LTP] / 100
        dev = vwap_deviation_pct(ltp, f[L.F_VWAP]) if ltp > 0 else math.nan
        recent_vol, recent_hidden, recent_cvd, recent_ofi = self._windows(c, row)
        bid, ask = q[L.Q_BID_PX] / 100, q[L.Q_ASK_PX] / 100
        tick = max(1, q[L.Q_TICK]) / 100
        depth = max(1.0, (q[L.Q_BID_QTY] + q[L.Q_ASK_QTY]) / 2)
        ofi_norm = math.tanh(recent_ofi / (depth * math.sqrt(max(1, self.cfg.window_bars))))
        spread_ticks = (ask - bid) / tick if bid > 0 and ask >= bid else math.nan
        pressure = f[L.F_PRESSURE] if math.isfinite(f[L.F_PRESSURE]) else 0.0
        urgency = execution_urgency(
            ofi_norm, pressure, dev if math.isfinite(dev) else 0.0, spread_ticks
        )
        return _Core(q, f, dev, recent_vol, recent_hidden, recent_cvd, ofi_norm, pressure, urgency)

    def contract_metrics(self, c: ChainState, row: int) -> dict[str, Any]:
        """Flow metrics of one contract (rupees, units)."""
        k = self._core(c, row)
        q, f = k.q, k.f
        vwap = f[L.F_VWAP]
        atp = q[L.Q_ATP] / 100
        signed = f[L.F_CVD_VOL]
        recent_vol = k.recent_vol
        hidden_share = k.recent_hidden / recent_vol if recent_vol > 0 else 0.0
        return {
            "obv": _f(f[L.F_OBV], 0),
            "vwap": _f(vwap, 2),
            "atp": atp if atp > 0 else None,
            "vwap_deviation_pct": _f(k.dev, 3),
            "vwap_deviated": bool(
                math.isfinite(k.dev) and abs(k.dev) >= self.cfg.vwap_deviation_pct
            ),
            "cvd": _f(f[L.F_CVD], 0),
            "cvd_confident_share": _f(f[L.F_CVD_CONF_VOL] / signed, 4) if signed > 0 else None,
            "cvd_recent_share": _f(k.recent_cvd / recent_vol, 4) if recent_vol > 0 else None,
            "ofi": _f(f[L.F_OFI], 0),
            "ofi_recent_norm": _f(k.ofi_norm, 4),
            "pressure": _f(k.pressure, 4),
            "depth_imbalance": _f(f[L.F_DEPTH_IMB], 4),
            "urgency": flow.URGENCY_NAMES[k.urgency],
            "whale_value_max": _f(f[L.F_WHALE_VALUE], 2),
            "hidden_volume": _f(f[L.F_HIDDEN], 0),
            "hidden_bid": _f(f[L.F_HIDDEN_BID], 0),
            "hidden_ask": _f(f[L.F_HIDDEN_ASK], 0),
            "hidden_share": _f(f[L.F_HIDDEN] / signed, 4) if signed > 0 else None,
            "hidden_recent_share": _f(hidden_share, 4),
            "absorption": bool(hidden_share >= self.cfg.absorption_hidden_share and recent_vol > 0),
        }

    def future_flow(self, c: ChainState) -> dict[str, Any] | None:
        """The near-month future's flow and the underlying's confluence (replay ``flow`` lines)."""
        fut = c.universe.future
        if fut is None or c.q[L.ROW_FUTURE, L.Q_TICKS] == 0:
            return None
        out = {
            "underlying": c.root,
            "token": fut.token,
            "symbol": fut.symbol,
            "ltp": int(c.q[L.ROW_FUTURE, L.Q_LTP]) / 100,
        }
        out |= self.contract_metrics(c, L.ROW_FUTURE)
        conf = self.confluence[c.root]
        out |= {
            "confluence": conf.score,
            "execution": conf.recommendation,
            "size_multiplier": conf.size_multiplier,
            "timing_window_s": conf.timing_window_s,
        }
        return out

    # ---- per bar ------------------------------------------------------------------------

    def on_bar(self, bar_end_ns: int) -> None:
        """Recompute each underlying's confluence with its latest signal."""
        for c in self.book.chains:
            det = self.detectors.get(c.root)
            sig = det.latest if det is not None else None
            direction, strength, name = 0.0, 0.0, "NEUTRAL"
            if sig is not None:
                name = sig.recommendation
                if sig.recommendation == "BUY_CALL":
                    direction = 1.0
                elif sig.recommendation == "BUY_PUT":
                    direction = -1.0
                strength = sig.smart_money_probability
            # The same inputs, rounded as the future's contract view shows them.
            cvd_share = ofi_norm = dev = 0.0
            urgency = "LOW"
            if c.q[L.ROW_FUTURE, L.Q_TICKS] > 0:
                k = self._core(c, L.ROW_FUTURE)
                if k.recent_vol > 0:
                    cvd_share = _f(k.recent_cvd / k.recent_vol, 4) or 0.0
                ofi_norm = _f(k.ofi_norm, 4) or 0.0
                dev = _f(k.dev, 3) or 0.0
                urgency = flow.URGENCY_NAMES[k.urgency]
            vwap_side = 1.0 if dev > 0 else (-1.0 if dev < 0 else 0.0)
            score = confluence_score(cvd_share, ofi_norm, vwap_side, direction, strength)
            code, mult = execution_recommendation(
                score, self.cfg.hold_below, self.cfg.execute_at, self.cfg.strong_at
            )
            conf = Confluence(
                ts=bar_end_ns,
                score=round(score, 4),
                recommendation=flow.RECOMMENDATION_NAMES[code],
                size_multiplier=mult,
                urgency=urgency,
                timing_window_s=timing_window_s(flow.URGENCY_NAMES.index(urgency)),
                signal=name,
                inputs={
                    "cvd_recent_share": cvd_share,
                    "ofi_recent_norm": ofi_norm,
                    "vwap_side": vwap_side,
                    "signal_direction": direction,
                    "signal_strength": strength,
                },
            )
            self.confluence[c.root] = conf
