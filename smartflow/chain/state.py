"""Chain state: one set of tables per underlying, one writer, bars on a shared clock.

``ChainBook`` owns every underlying's ``ChainState`` and is the single writer of their tables.
``process(frames)`` applies packets in receive order; whenever a packet's receive time crosses the
current bar's end, every chain first closes its bar *at the bar's end instant* (greeks recomputed
at that instant, then the bar rolled into the ring) and ``on_close`` (the pipeline's bar close,
app/pipeline.py) runs. A bar therefore holds exactly the packets received inside it and its
analytics depend only on those packets —
not on how they were batched, conflated into the mailbox or timed by the scheduler — which is
what makes live and replay agree. Bars are aligned to multiples of ``bar_seconds`` since the
epoch. ``advance_to(now)`` closes bars by the clock when the market is quiet.

Per-tick greeks (for the API and dashboards) are recomputed for the rows a batch touched, at each
row's own receive time and the current forward. When the forward moves (it does on most quotes
near the money) every row is re-priced too, but at most every ``FULL_REPRICE_NS`` of the
analytics clock: the parity forward moves by fractions of a point per quote, and re-pricing 160
rows on every one of them would cost ~50 µs a packet for a change nobody can see. Detectors never
read per-tick greeks: bars re-price every row exactly at the bar's end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from smartflow.config import DetectorConfig, ModelConfig
from smartflow.core.timeutil import NS_PER_S
from smartflow.instruments.master import Instrument, ScripMaster
from smartflow.instruments.universe import ChainUniverse, select_next
from smartflow.kernels import chain as kc, layout as L, wire


FORWARD_MODES = {"synthetic": 0, "future": 1, "spot": 2}
FULL_REPRICE_NS = 100_000_000


def row_key(exchange_type: int, token: str) -> bytes:
    """The 26 bytes (exchange type + NUL-padded token) that identify a packet's instrument."""
    return bytes([exchange_type]) + token.encode("ascii").ljust(25, b"\0")


@dataclass
class FlowParams:
    """Per-tick order-flow thresholds (whale detection)."""

    whale_value: float = 5_000_000.0
    whale_multiple: float = 3.0
    ewma_alpha: float = 0.1

    @classmethod
    def from_config(cls, detectors: DetectorConfig) -> FlowParams:
        """The whale thresholds of ``[detectors]``."""
        return cls(
            whale_value=detectors.whale_value_rupees, whale_multiple=detectors.whale_volume_multiple
        )


class ChainState:
    """Tables and bookkeeping of one underlying's chain."""

    def __init__(
        self, universe: ChainUniverse, model: ModelConfig, flow: FlowParams | None = None
    ) -> None:
        self.universe = universe
        self.model = model
        self.root = universe.root
        options = universe.options
        self.instruments: list[Instrument | None] = [universe.index, universe.future, *options]
        n = len(self.instruments)
        self.n = n
        self.q = np.zeros((n, L.NQ), np.int64)
        self.f = np.full((n, L.NF), np.nan)
        self.bars = np.full((n, L.NB, L.RING), np.nan)
        self.dirty = np.zeros(n, np.bool_)
        self.rows_by_key: dict[bytes, int] = {}
        self.row_by_token: dict[str, int] = {}
        for col in (
            L.F_CVD,
            L.F_CVD_CONF_VOL,
            L.F_CVD_VOL,
            L.F_OFI,
            L.F_VWAP_PV,
            L.F_VWAP_V,
            L.F_HIDDEN,
            L.F_HIDDEN_BID,
            L.F_HIDDEN_ASK,
            L.F_WHALE_VALUE,
            L.F_OBV,
            L.F_BAR_CVD0,
            L.F_BAR_OFI0,
            L.F_BAR_HIDDEN0,
            L.F_EWMA_DVOL,
            L.F_LAST_SIGN,
            L.F_OFI_EWMA,
        ):
            self.f[:, col] = 0.0
        self.q[:, L.Q_PAIR_ROW] = -1
        by_strike: dict[tuple[int, str], int] = {}
        for row, inst in enumerate(self.instruments):
            if inst is None:
                continue
            kind = {
                "INDEX": L.KIND_INDEX,
                "FUT": L.KIND_FUTURE,
                "CE": L.KIND_CALL,
                "PE": L.KIND_PUT,
            }[inst.kind]
            self.q[row, L.Q_KIND] = kind
            self.q[row, L.Q_STRIKE] = inst.strike_paise
            self.q[row, L.Q_LOT] = inst.lot_size
            self.q[row, L.Q_TICK] = max(1, inst.tick_paise) if kind != L.KIND_INDEX else 1
            self.rows_by_key[row_key(inst.exchange_type, inst.token)] = row
            self.row_by_token[inst.token] = row
            if inst.kind in ("CE", "PE"):
                by_strike[(inst.strike_paise, inst.kind)] = row
        for (strike, side), row in by_strike.items():
            other = by_strike.get((strike, "PE" if side == "CE" else "CE"))
            if other is not None:
                self.q[row, L.Q_PAIR_ROW] = other
        if universe.index_fallback_token:
            # Ticks under the bare NSE code (26000) land on the same index row.
            key = row_key(universe.index.exchange_type, universe.index_fallback_token)
            self.rows_by_key[key] = L.ROW_INDEX
            self.row_by_token[universe.index_fallback_token] = L.ROW_INDEX
        self.option_rows = np.arange(L.ROW_FIRST_OPTION, n, dtype=np.int64)
        self.forward_mode = FORWARD_MODES[model.forward]
        self.use_mid = model.iv_price == "mid"
        self.max_spread_frac = model.max_spread_pct / 100.0
        self.future_expiry_ns = universe.future.expiry_ns if universe.future else 0
        # Model parameters and pricing state for the per-tick kernel (one dispatch per batch).
        self.mp = np.zeros(kc.NM)
        self.mp[kc.M_MODE] = self.forward_mode
        self.mp[kc.M_RATE] = model.rate
        self.mp[kc.M_DIV] = model.dividend_yield
        self.mp[kc.M_MAX_SPREAD] = self.max_spread_frac
        self.mp[kc.M_USE_MID] = 1.0 if self.use_mid else 0.0
        self.mp[kc.M_EXPIRY_NS] = universe.expiry_ns
        self.mp[kc.M_FUT_EXPIRY_NS] = self.future_expiry_ns
        self.mp[kc.M_FULL_REPRICE_NS] = FULL_REPRICE_NS
        self.st = np.array([math.nan, math.nan, 0.0])
        self.scratch_rows = np.zeros(n, np.int64)
        flow = flow or FlowParams()
        self.fp = np.array([flow.whale_value, flow.whale_multiple, flow.ewma_alpha])
        self.w = np.zeros(wire.W_SIZE, np.int64)
        self.wf = np.zeros(wire.F_SIZE, np.float64)

    # ---- pricing ------------------------------------------------------------------------

    @property
    def forward(self) -> float:
        """The expiry's forward as last computed (NaN before any price)."""
        return float(self.st[kc.S_FORWARD])

    @property
    def spot(self) -> float:
        """The index as last seen (NaN before the first index tick)."""
        return float(self.st[kc.S_SPOT])

    def update_forward(self, t_ns: int) -> None:
        """Recompute the forward and spot at ``t_ns``."""
        fwd, spot = kc.forward_and_spot(
            self.q,
            L.ROW_FIRST_OPTION,
            self.forward_mode,
            t_ns,
            self.universe.expiry_ns,
            self.future_expiry_ns,
            self.model.rate,
            self.model.dividend_yield,
            self.max_spread_frac,
        )
        self.st[kc.S_FORWARD] = fwd
        self.st[kc.S_SPOT] = spot

    def price_rows(self, rows: np.ndarray, t_ns: int, use_row_time: bool) -> int:
        """IV and greeks of ``rows`` at ``t_ns`` (or each row's own last tick time)."""
        return int(
            kc.compute_greeks(
                rows,
                use_row_time,
                t_ns,
                self.q,
                self.f,
                self.universe.expiry_ns,
                self.forward,
                self.spot,
                self.model.rate,
                self.use_mid,
                self.max_spread_frac,
            )
        )

    def price_all(self, t_ns: int) -> int:
        """Re-price every option at one instant (bar closes, snapshots)."""
        self.update_forward(t_ns)
        self.st[kc.S_LAST_FULL_NS] = t_ns
        return self.price_rows(self.option_rows, t_ns, use_row_time=False)

    def price_dirty(self, t_ns: int) -> None:
        """Per-tick update after a batch (one kernel call; policy in the module docs)."""
        kc.price_dirty_rows(
            self.q, self.f, self.dirty, self.option_rows, self.scratch_rows, t_ns, self.mp, self.st
        )

    # ---- views --------------------------------------------------------------------------

    def ltp(self, row: int) -> float:
        """Last traded price of ``row`` in rupees (NaN before the first tick)."""
        v = int(self.q[row, L.Q_LTP])
        return v / 100 if v > 0 else math.nan

    def spot_paise(self) -> int:
        """Index LTP in paise, 0 before the first index tick."""
        return int(self.q[L.ROW_INDEX, L.Q_LTP])


def next_expiry_chains(
    master: ScripMaster,
    chains: Sequence[ChainState],
    now_ns: int,
    expiries: int,
    log: Any = None,
) -> list[ChainState]:
    """With ``[market] expiries = 2``, a chain of the next expiry per near chain (else none).

    Raises:
        ConfigError: an underlying lists no expiry after its near one.
    """
    if expiries < 2:
        return []
    out = [ChainState(select_next(master, c.universe, now_ns), c.model) for c in chains]
    for c in out if log is not None else ():
        log.info(
            "chain.universe",
            underlying=c.root,
            expiry=c.universe.expiry.isoformat(),
            strikes=len(c.universe.strikes_paise),
            role="next_expiry",
        )
    return out


@dataclass
class Segment:
    """Packets of one chain between two bar boundaries, ready for the apply kernel."""

    rows: list[int] = field(default_factory=list)
    recv: list[int] = field(default_factory=list)
    frames: list[bytes] = field(default_factory=list)


# (bar_end_ns, bar_seq, closed_at_ns): closed_at_ns is the receive time of the packet that
# closed the bar, or the bar's end when the clock closed it.
BarClose = Callable[[int, int, int], None]
# (chain, row, event bits, recv_ns, the packet's E_* payload)
EventHook = Callable[["ChainState", int, int, int, np.ndarray], None]


@dataclass
class ApplyStats:
    """Counters of what ``ChainBook`` applied or refused."""

    applied: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    unknown_token: int = 0
    anomalies: int = 0
    bars_closed: int = 0


class ChainBook:
    """Every underlying's chain, the routing of packets to rows, and the bar clock."""

    def __init__(
        self,
        chains: Sequence[ChainState],
        detectors: DetectorConfig,
        followers: Sequence[ChainState] = (),
    ) -> None:
        self.chains = list(chains)
        self.by_root = {c.root: c for c in self.chains}
        # Next-expiry chains (``[market] expiries = 2``): fed, priced and bar-closed like the
        # others but summarised only — no detector, strategy or view iterates them. They share
        # their root's index and future, whose packets route to the near chain and are copied.
        self.followers = list(followers)
        self._leaders = [self.by_root[f.root] for f in self.followers]
        self._all = self.chains + self.followers
        self.route: dict[bytes, tuple[int, int]] = {}
        for ci, c in enumerate(self._all):
            for key, row in c.rows_by_key.items():
                self.route.setdefault(key, (ci, row))
        self.bar_ns = detectors.bar_seconds * NS_PER_S
        self.bar_end_ns = 0
        self.bar_seq = 0
        # What a bar close runs (app/pipeline.py: Pipeline.close_bar) and where flagged packet
        # events go (the flow analytics); the book itself decides nothing.
        self.on_close: BarClose | None = None
        self.on_event: EventHook | None = None
        self.stats = ApplyStats()
        self.last_ns = 0

    def _bar_end_for(self, t_ns: int) -> int:
        return (t_ns // self.bar_ns + 1) * self.bar_ns

    def process(self, frames: Sequence[tuple[int, bytes]]) -> None:
        """Apply ``(recv_ns, packet)`` pairs in order, closing bars as time crosses them."""
        if not frames:
            return
        if self.bar_end_ns == 0:
            self.bar_end_ns = self._bar_end_for(frames[0][0])
        start = 0
        for i, (recv_ns, _) in enumerate(frames):
            if recv_ns >= self.bar_end_ns:
                self._apply(frames[start:i])
                start = i
                self._close_until(recv_ns, recv_ns)
        self._apply(frames[start:])
        self.last_ns = max(self.last_ns, frames[-1][0])
        for c in self.chains:
            c.price_dirty(self.last_ns)
        if self.followers:
            self._sync_followers()
            for c in self.followers:
                c.price_dirty(self.last_ns)

    def advance_to(self, now_ns: int) -> None:
        """Close every bar that ended at or before ``now_ns``."""
        if self.bar_end_ns == 0:
            # The bar clock starts at the first packet, never at an idle timer: a feed that is
            # slow to deliver must not shift live bars away from the replay of its own tape.
            return
        self._close_until(now_ns, 0)

    def _close_until(self, now_ns: int, packet_ns: int) -> None:
        """Close every bar ended by ``now_ns``.

        ``packet_ns`` is the receive time of the packet that crossed them (0: the clock did, so
        each closes at its own end).
        """
        while now_ns >= self.bar_end_ns:
            self._close_bar(self.bar_end_ns, packet_ns or self.bar_end_ns)
            self.bar_end_ns += self.bar_ns

    def _sync_followers(self) -> None:
        """Give each next-expiry chain its root's index and future as the near chain has them."""
        for f, lead in zip(self.followers, self._leaders, strict=True):
            f.q[: L.ROW_FIRST_OPTION] = lead.q[: L.ROW_FIRST_OPTION]

    def price_followers(self, t_ns: int) -> None:
        """Re-price every next-expiry chain at one instant (snapshots inside an open bar)."""
        self._sync_followers()
        for c in self.followers:
            c.price_all(t_ns)

    def _close_bar(self, bar_end_ns: int, closed_at_ns: int) -> None:
        slot = self.bar_seq % L.RING
        if self.followers:
            self._sync_followers()
        for c in self._all:
            c.price_all(bar_end_ns)
            c.dirty[:] = False
            kc.close_bar(c.q, c.f, c.bars, slot, bar_end_ns)
        self.stats.bars_closed += 1
        seq = self.bar_seq
        self.bar_seq += 1
        if self.on_close is not None:
            self.on_close(bar_end_ns, seq, closed_at_ns)

    def _apply(self, frames: Sequence[tuple[int, bytes]]) -> None:
        if not frames:
            return
        per_chain: dict[int, Segment] = {}
        route = self.route
        unknown = 0
        for recv_ns, frame in frames:
            hit = route.get(frame[1:27])
            if hit is None:
                unknown += 1
                continue
            seg = per_chain.get(hit[0])
            if seg is None:
                seg = per_chain[hit[0]] = Segment()
            seg.frames.append(frame)
            seg.rows.append(hit[1])
            seg.recv.append(recv_ns)
        self.stats.unknown_token += unknown
        traded = len(self.chains)
        for ci, seg in per_chain.items():
            self._apply_segment(self._all[ci], seg, ci < traded)

    def _apply_segment(self, c: ChainState, seg: Segment, hooks: bool = True) -> None:
        m = len(seg.frames)
        lengths = np.fromiter((len(fr) for fr in seg.frames), np.int64, m)
        offsets = np.zeros(m, np.int64)
        if m > 1:
            np.cumsum(lengths[:-1], out=offsets[1:])
        buf = np.frombuffer(b"".join(seg.frames), np.uint8)
        status = np.zeros(m, np.int8)
        events = np.zeros(m, np.int8)
        payload = np.full((m, kc.NE), np.nan)
        applied = kc.apply_frames(
            buf,
            offsets,
            lengths,
            np.array(seg.rows, np.int64),
            np.array(seg.recv, np.int64),
            c.q,
            c.f,
            c.fp,
            c.w,
            c.wf,
            status,
            events,
            payload,
            c.dirty,
        )
        self.stats.applied += int(applied)
        if applied != m:
            for s in status[status != 0]:
                name = wire.STATUS_NAMES[s] if s < len(wire.STATUS_NAMES) else "unknown_token"
                self.stats.rejected[name] = self.stats.rejected.get(name, 0) + 1
        if hooks and events.any():  # a next-expiry chain's events (whales) are not watched
            for i in np.flatnonzero(events):
                bits = int(events[i])
                if bits & kc.EV_ANOMALY:
                    self.stats.anomalies += 1
                if self.on_event is not None:
                    self.on_event(c, seg.rows[i], bits, seg.recv[i], payload[i])
