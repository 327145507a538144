"""Order-flow analytics (the Smart Money Integration Framework seed), made real.

The per-tick state lives in the chain tables (``kernels/chain.py`` updates it on every packet):
OBV on bar closes (TA-Lib semantics), our session VWAP next to the exchange's ATP, CVD signed by
Lee-Ready against the previous snapshot's quote, best-level order-flow imbalance (Cont, Kukanov &
Stoikov), book pressure, whale prints and hidden liquidity. This module reads it into views:

* per contract: the metrics above, the VWAP deviation against the seed's 2 % threshold, the share
  of volume whose side the quote decided, and the execution urgency LOW…CRITICAL (from OFI,
  book pressure, VWAP deviation and spread; kernels/flow.py);
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
from typing import Any

import numpy as np

from smartflow.analytics.detectors import SmartMoneyDetector
from smartflow.chain.state import ChainBook, ChainState
from smartflow.config import FlowConfig
from smartflow.core.timeutil import iso_ist
from smartflow.kernels import chain as kc, flow, layout as L


# Every argument is passed explicitly when calling these kernels from Python: a call that
# relies on a numba function's defaults misses the dispatcher's fast path (~150 µs a call).
URGENCY_ARGS = (2.0, 0.4, 0.3, 0.3, 0.25, 0.5, 0.75, 5.0)
CONFLUENCE_WEIGHTS = (0.4, 0.4, 0.2)
_WINDOW_COLS = [L.B_VOLUME, L.B_HIDDEN, L.B_CVD, L.B_OFI]


def _f(x: float, nd: int = 4) -> float | None:
    return round(float(x), nd) if math.isfinite(x) else None


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
        head = (self.book.bar_seq - 1) % L.RING
        idx = [(head - k) % L.RING for k in range(n)]
        block = c.bars[row][_WINDOW_COLS][:, idx]
        # Row by row: a 2-D nansum sums in another order and would move the last bits.
        return [float(np.nansum(block[i])) for i in range(len(_WINDOW_COLS))]

    def contract_metrics(self, c: ChainState, row: int) -> dict[str, Any]:
        """Flow metrics of one contract (rupees, units)."""
        # Python lists: one conversion each instead of a numpy scalar per field.
        q: list[int] = c.q[row].tolist()
        f: list[float] = c.f[row].tolist()
        ltp = q[L.Q_LTP] / 100
        vwap = f[L.F_VWAP]
        atp = q[L.Q_ATP] / 100
        dev = flow.vwap_deviation_pct(ltp, vwap) if ltp > 0 else math.nan
        signed = f[L.F_CVD_VOL]
        recent_vol, recent_hidden, recent_cvd, recent_ofi = self._windows(c, row)
        bid, ask = q[L.Q_BID_PX] / 100, q[L.Q_ASK_PX] / 100
        tick = max(1, q[L.Q_TICK]) / 100
        depth = max(1.0, (q[L.Q_BID_QTY] + q[L.Q_ASK_QTY]) / 2)
        ofi_norm = math.tanh(recent_ofi / (depth * math.sqrt(max(1, self.cfg.window_bars))))
        spread_ticks = (ask - bid) / tick if bid > 0 and ask >= bid else math.nan
        pressure = f[L.F_PRESSURE] if math.isfinite(f[L.F_PRESSURE]) else 0.0
        urgency = int(
            flow.execution_urgency(
                ofi_norm, pressure, dev if math.isfinite(dev) else 0.0, spread_ticks, *URGENCY_ARGS
            )
        )
        hidden_share = recent_hidden / recent_vol if recent_vol > 0 else 0.0
        return {
            "obv": _f(f[L.F_OBV], 0),
            "vwap": _f(vwap, 2),
            "atp": atp if atp > 0 else None,
            "vwap_deviation_pct": _f(dev, 3),
            "vwap_deviated": bool(math.isfinite(dev) and abs(dev) >= self.cfg.vwap_deviation_pct),
            "cvd": _f(f[L.F_CVD], 0),
            "cvd_confident_share": _f(f[L.F_CVD_CONF_VOL] / signed, 4) if signed > 0 else None,
            "cvd_recent_share": _f(recent_cvd / recent_vol, 4) if recent_vol > 0 else None,
            "ofi": _f(f[L.F_OFI], 0),
            "ofi_recent_norm": _f(ofi_norm, 4),
            "pressure": _f(pressure, 4),
            "depth_imbalance": _f(f[L.F_DEPTH_IMB], 4),
            "urgency": flow.URGENCY_NAMES[urgency],
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
            m = self.contract_metrics(c, L.ROW_FUTURE) if c.q[L.ROW_FUTURE, L.Q_TICKS] > 0 else {}
            cvd_share = m.get("cvd_recent_share") or 0.0
            ofi_norm = m.get("ofi_recent_norm") or 0.0
            dev = m.get("vwap_deviation_pct") or 0.0
            vwap_side = 1.0 if dev > 0 else (-1.0 if dev < 0 else 0.0)
            score = float(
                flow.confluence_score(
                    cvd_share, ofi_norm, vwap_side, direction, strength, *CONFLUENCE_WEIGHTS
                )
            )
            code, mult = flow.execution_recommendation(
                score, self.cfg.hold_below, self.cfg.execute_at, self.cfg.strong_at
            )
            urgency = m.get("urgency", "LOW")
            conf = Confluence(
                ts=bar_end_ns,
                score=round(score, 4),
                recommendation=flow.RECOMMENDATION_NAMES[code],
                size_multiplier=mult,
                urgency=urgency,
                timing_window_s=float(flow.timing_window_s(flow.URGENCY_NAMES.index(urgency))),
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
