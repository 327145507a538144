"""The chain summary every Indian option-chain screen shows, computed at each bar close.

Per underlying and expiry: PCR (OI, volume, ΔOI; chain and per strike), max pain and its pain
curve, OI walls, ΔOI since the previous session's close (or the day's first print, and it says
which), dealer gamma exposure per strike with its total and the zero-gamma level, ATM IV at the
forward, 25-delta risk reversal and butterfly, the smile by strike and by delta, the ATM straddle
and the expected move, and IV rank / percentile over stored daily ATM-IV closes. Definitions are
in ``smartflow.kernels.summary`` (and, for traders, in the README).

Cost at a bar close: one kernel call per chain and two small array copies into an immutable
``SummarySnapshot`` — nothing else. The msgspec ``ChainSummary`` (rounded, JSON-ready) and the
zero-gamma search are built from a snapshot only when something reads it (the API, a replay
line, a history row) and cached on it. A snapshot never changes after it is made, so any thread
may read it.

ΔOI baselines. The previous session's close when known: ``set_prev_close`` (the daemon loads it
from Angel's historical OI endpoint, or the previous day's own record in ``state_dir``: see
``smartflow.app.prevclose``), or the last bar close before an IST date change when a session (or
a tape) runs across midnight. Otherwise the contract's first print of the day. Where the daemon
got them is ``doi_source`` / ``doi_note`` (unset in a replay, which loads nothing).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import msgspec
import numpy as np

from smartflow.chain.state import ChainBook, ChainState
from smartflow.core.timeutil import NS_PER_S
from smartflow.kernels import layout as L, summary as ks


IST_OFFSET_NS = (5 * 3600 + 30 * 60) * NS_PER_S
DAY_NS = 86_400 * NS_PER_S
IV_RANK_MIN_SESSIONS = 20
IV_RANK_MAX_SESSIONS = 252


def ist_day_index(ns: int) -> int:
    """Days since 1970-01-01 of the IST date of ``ns`` (integer arithmetic: no datetime)."""
    return (ns + IST_OFFSET_NS) // DAY_NS


class Pcr(msgspec.Struct, frozen=True, kw_only=True):
    """Put-call ratios: Σ put ÷ Σ call (null when the call side is 0)."""

    oi: float | None
    volume: float | None
    oi_change: float | None


class Totals(msgspec.Struct, frozen=True, kw_only=True):
    """Chain totals (units: contracts × lot)."""

    ce_oi: int
    pe_oi: int
    ce_oi_change: int
    pe_oi_change: int
    ce_volume: int
    pe_volume: int


class MaxPain(msgspec.Struct, frozen=True, kw_only=True):
    """The settlement strike that pays option holders least, and that payout in rupees."""

    strike: float | None
    payout: float | None


class Wall(msgspec.Struct, frozen=True, kw_only=True):
    """A strike and the OI (or ΔOI) that makes it a wall."""

    strike: float | None
    value: int | None


class Walls(msgspec.Struct, frozen=True, kw_only=True):
    """Largest call OI (resistance), put OI (support), and the same by OI added today."""

    resistance: Wall
    support: Wall
    resistance_added: Wall
    support_added: Wall


class Gex(msgspec.Struct, frozen=True, kw_only=True):
    """Dealer gamma exposure, rupees per 1 % move (calls +, puts −)."""

    total: float | None
    zero_gamma: float | None
    contracts_without_gamma: int


class Volatility(msgspec.Struct, frozen=True, kw_only=True):
    """ATM IV, skew, straddle and expected move (IVs as fractions)."""

    atm_iv: float | None
    atm_strike: float | None
    straddle: float | None
    expected_move_straddle: float | None
    expected_move_sigma: float | None
    rr_25d: float | None
    bf_25d: float | None
    iv_25d_call: float | None
    iv_25d_put: float | None
    iv_10d_call: float | None
    iv_10d_put: float | None


class IvRank(msgspec.Struct, frozen=True, kw_only=True):
    """ATM IV against stored daily ATM-IV closes (percent; null until enough sessions)."""

    status: str  # "ok" | "insufficient_history"
    sessions: int
    iv_rank: float | None = None
    iv_percentile: float | None = None
    low: float | None = None
    high: float | None = None


class StrikeSummary(msgspec.Struct, frozen=True):
    """One strike: OI, ΔOI, volume, PCRs, pain, GEX, the smile."""

    strike: float
    ce_oi: int
    pe_oi: int
    ce_oi_change: int
    pe_oi_change: int
    ce_volume: int
    pe_volume: int
    pcr_oi: float | None
    pcr_volume: float | None
    pcr_oi_change: float | None
    pain: float
    gex: float
    ce_iv: float | None
    pe_iv: float | None
    iv: float | None
    call_delta: float | None
    ce_price: float | None
    pe_price: float | None
    ce_ltp: float | None
    pe_ltp: float | None


class TermStructure(msgspec.Struct, frozen=True, kw_only=True):
    """ATM IV of the near and the next expiry (``[market] expiries = 2``; IVs as fractions).

    ``spread`` = next − near and ``ratio`` = next ÷ near, both from the unrounded ATM IVs;
    ``forward_vol`` is the volatility implied between the two expiries,
    √((σ²_next·T_next − σ²_near·T_near) ÷ (T_next − T_near)), null when that variance is not
    positive (a calendar arbitrage in the quotes, or one IV unknown).
    """

    near_expiry: str
    next_expiry: str
    near_atm_iv: float | None
    next_atm_iv: float | None
    near_t_years: float | None
    next_t_years: float | None
    spread: float | None
    ratio: float | None
    forward_vol: float | None


class ChainSummary(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The chain summary of one underlying and expiry at one instant (API and replay keys).

    The fields with defaults are left out of the JSON while unset: ``doi_source`` and
    ``doi_note`` once the daemon has tried to load the previous close, ``term_structure`` and
    ``next_expiry`` with ``[market] expiries = 2`` (the next expiry's own summary).
    """

    underlying: str
    expiry: str
    ts_ns: int
    spot: float | None
    forward: float | None
    t_years: float | None
    strikes_seen: int
    pcr: Pcr
    totals: Totals
    doi_basis: str  # "prev_close" | "first_print"
    doi_first_print_contracts: int
    doi_prev_close_contracts: int
    doi_source: str | None = None  # "oi_data" | "own_close" | "first_print"
    doi_note: str | None = None
    max_pain: MaxPain
    walls: Walls
    gex: Gex
    volatility: Volatility
    iv_rank: IvRank
    term_structure: TermStructure | None = None
    strikes: list[StrikeSummary]
    next_expiry: ChainSummary | None = None


def _r(x: float, nd: int) -> float | None:
    return round(float(x), nd) if math.isfinite(x) else None


def _i(x: float) -> int:
    return int(x) if math.isfinite(x) else 0


def iv_rank(current: float, closes: Sequence[float]) -> IvRank:
    """IV rank and percentile of ``current`` over the last daily closes (today excluded).

    IV rank = 100 · (current − min) / (max − min); IV percentile = 100 · share of closes strictly
    below current. Both over the most recent ``IV_RANK_MAX_SESSIONS`` closes, and only once there
    are ``IV_RANK_MIN_SESSIONS`` of them.
    """
    window = [c for c in closes if math.isfinite(c)][-IV_RANK_MAX_SESSIONS:]
    if len(window) < IV_RANK_MIN_SESSIONS or not math.isfinite(current):
        return IvRank(status="insufficient_history", sessions=len(window))
    lo, hi = min(window), max(window)
    rank = 100.0 * (current - lo) / (hi - lo) if hi > lo else 50.0
    pct = 100.0 * sum(1 for c in window if c < current) / len(window)
    return IvRank(
        status="ok",
        sessions=len(window),
        iv_rank=round(rank, 2),
        iv_percentile=round(pct, 2),
        low=round(lo, 6),
        high=round(hi, 6),
    )


class ChainMeta(msgspec.Struct, frozen=True):
    """What every snapshot of one chain shares."""

    underlying: str
    expiry: str
    rate: float
    strikes: int  # rows of the per-strike table
    iv_closes: tuple[float, ...] = ()
    doi_source: str | None = None  # where the ΔOI baselines came from, once known
    doi_note: str | None = None  # why, when it is a fallback


class SummarySnapshot(msgspec.Struct):
    """What the kernel produced at one instant (a msgspec Struct: built in C, ~0.1 µs).

    Never changed once made: ``data`` is written by the kernel before the snapshot exists and by
    nothing after. The struct and the zero-gamma level are derived from it on first use and
    cached, so any thread may read it.
    """

    meta: ChainMeta
    ts_ns: int
    data: np.ndarray  # float64[strikes * ks.NK + ks.NSUM]
    next: SummarySnapshot | None = None  # the next expiry at the same instant (expiries = 2)
    cached_zero_gamma: float | None = None
    cached_struct: ChainSummary | None = None

    @property
    def underlying(self) -> str:
        """The chain's root."""
        return self.meta.underlying

    @property
    def expiry(self) -> str:
        """The expiry, ISO date."""
        return self.meta.expiry

    @property
    def rate(self) -> float:
        """The model's rate."""
        return self.meta.rate

    @property
    def iv_closes(self) -> tuple[float, ...]:
        """Daily ATM-IV closes before today (IV rank)."""
        return self.meta.iv_closes

    @property
    def per_strike(self) -> np.ndarray:
        """float64[m, ks.NK], one row per listed strike (``K_SEEN`` = 0: never seen)."""
        m = self.meta.strikes
        return self.data[: m * ks.NK].reshape(m, ks.NK)

    @property
    def scalars(self) -> np.ndarray:
        """float64[ks.NSUM]."""
        return self.data[self.meta.strikes * ks.NK :]

    @property
    def forward(self) -> float:
        """The forward used."""
        return self.scalar(ks.S_FORWARD)

    @property
    def spot(self) -> float:
        """The spot used (NaN: unknown)."""
        return self.scalar(ks.S_SPOT)

    @property
    def t_years(self) -> float:
        """Years to expiry."""
        return self.scalar(ks.S_T)

    def scalar(self, col: int) -> float:
        """One ``ks.S_*`` value."""
        return float(self.data[self.meta.strikes * ks.NK + col])

    def zero_gamma(self) -> float:
        """The zero-gamma level (computed on first use)."""
        if self.cached_zero_gamma is None:
            k = self.per_strike
            self.cached_zero_gamma = float(
                ks.zero_gamma(k, k.shape[0], self.forward, self.spot, self.t_years, self.rate)
            )
        return self.cached_zero_gamma

    def to_struct(self) -> ChainSummary:
        """The JSON-ready ``ChainSummary`` (built on first use)."""
        if self.cached_struct is None:
            self.cached_struct = self._build()
        return self.cached_struct

    def _build(self) -> ChainSummary:
        sv = self.scalars
        k = self.per_strike[self.per_strike[:, ks.K_SEEN] != 0.0]

        def col(c: int, nd: int) -> list[float | None]:
            # Python's round is correctly rounded (np.round can leave 0.30000000000000004).
            return [round(v, nd) if v == v else None for v in k[:, c].tolist()]

        def ints(c: int) -> list[int]:
            return [int(v) for v in np.nan_to_num(k[:, c]).tolist()]

        fields = zip(
            k[:, ks.K_STRIKE].tolist(),
            ints(ks.K_CE_OI),
            ints(ks.K_PE_OI),
            ints(ks.K_CE_DOI),
            ints(ks.K_PE_DOI),
            ints(ks.K_CE_VOL),
            ints(ks.K_PE_VOL),
            col(ks.K_PCR_OI, 4),
            col(ks.K_PCR_VOL, 4),
            col(ks.K_PCR_DOI, 4),
            [round(v, 2) for v in k[:, ks.K_PAIN].tolist()],
            [round(v, 2) for v in k[:, ks.K_GEX].tolist()],
            col(ks.K_CE_IV, 6),
            col(ks.K_PE_IV, 6),
            col(ks.K_IV, 6),
            col(ks.K_CALL_DELTA, 6),
            col(ks.K_CE_PRICE, 4),
            col(ks.K_PE_PRICE, 4),
            col(ks.K_CE_LTP, 2),
            col(ks.K_PE_LTP, 2),
            strict=True,
        )
        strikes = [StrikeSummary(*f) for f in fields]
        prev = _i(sv[ks.S_PREV_CLOSE])

        def wall(strike_col: int) -> Wall:
            v = float(sv[strike_col + 1])
            return Wall(strike=_r(sv[strike_col], 2), value=int(v) if math.isfinite(v) else None)

        atm = float(sv[ks.S_ATM_IV])
        return ChainSummary(
            underlying=self.underlying,
            expiry=self.expiry,
            ts_ns=self.ts_ns,
            spot=_r(self.spot, 2),
            forward=_r(self.forward, 4),
            t_years=_r(self.t_years, 8),
            strikes_seen=_i(sv[ks.S_STRIKES]),
            pcr=Pcr(
                oi=_r(sv[ks.S_PCR_OI], 4),
                volume=_r(sv[ks.S_PCR_VOL], 4),
                oi_change=_r(sv[ks.S_PCR_DOI], 4),
            ),
            totals=Totals(
                ce_oi=_i(sv[ks.S_CE_OI]),
                pe_oi=_i(sv[ks.S_PE_OI]),
                ce_oi_change=_i(sv[ks.S_CE_DOI]),
                pe_oi_change=_i(sv[ks.S_PE_DOI]),
                ce_volume=_i(sv[ks.S_CE_VOL]),
                pe_volume=_i(sv[ks.S_PE_VOL]),
            ),
            doi_basis="prev_close" if prev > 0 else "first_print",
            doi_first_print_contracts=_i(sv[ks.S_FIRST_PRINT]),
            doi_prev_close_contracts=prev,
            doi_source=self.meta.doi_source,
            doi_note=self.meta.doi_note,
            max_pain=MaxPain(
                strike=_r(sv[ks.S_MAX_PAIN], 2), payout=_r(sv[ks.S_MAX_PAIN_PAYOUT], 2)
            ),
            walls=Walls(
                resistance=wall(ks.S_CE_WALL),
                support=wall(ks.S_PE_WALL),
                resistance_added=wall(ks.S_CE_DOI_WALL),
                support_added=wall(ks.S_PE_DOI_WALL),
            ),
            gex=Gex(
                total=_r(sv[ks.S_GEX], 2),
                zero_gamma=_r(self.zero_gamma(), 2),
                contracts_without_gamma=_i(sv[ks.S_GEX_MISSING]),
            ),
            volatility=Volatility(
                atm_iv=_r(atm, 6),
                atm_strike=_r(sv[ks.S_ATM_STRIKE], 2),
                straddle=_r(sv[ks.S_STRADDLE], 4),
                expected_move_straddle=_r(sv[ks.S_STRADDLE], 4),
                expected_move_sigma=_r(sv[ks.S_EM_SIGMA], 4),
                rr_25d=_r(sv[ks.S_RR25], 6),
                bf_25d=_r(sv[ks.S_BF25], 6),
                iv_25d_call=_r(sv[ks.S_IV_25C], 6),
                iv_25d_put=_r(sv[ks.S_IV_25P], 6),
                iv_10d_call=_r(sv[ks.S_IV_10C], 6),
                iv_10d_put=_r(sv[ks.S_IV_10P], 6),
            ),
            iv_rank=iv_rank(atm, self.iv_closes),
            term_structure=self._term() if self.next is not None else None,
            strikes=strikes,
            next_expiry=self.next.to_struct() if self.next is not None else None,
        )

    def _term(self) -> TermStructure:
        nxt = self.next
        assert nxt is not None  # noqa: S101 — the caller checked
        iv1, iv2 = self.scalar(ks.S_ATM_IV), nxt.scalar(ks.S_ATM_IV)
        t1, t2 = self.t_years, nxt.t_years
        fwd_var = (iv2 * iv2 * t2 - iv1 * iv1 * t1) / (t2 - t1) if t2 > t1 else math.nan
        return TermStructure(
            near_expiry=self.expiry,
            next_expiry=nxt.expiry,
            near_atm_iv=_r(iv1, 6),
            next_atm_iv=_r(iv2, 6),
            near_t_years=_r(t1, 8),
            next_t_years=_r(t2, 8),
            spread=_r(iv2 - iv1, 6),
            ratio=_r(iv2 / iv1, 4) if iv1 > 0 else None,
            forward_vol=_r(math.sqrt(fwd_var), 6) if fwd_var > 0 else None,
        )


class ChainSummarizer:
    """The summary state of one chain: ΔOI baselines, kernel buffers, the latest snapshot."""

    def __init__(self, chain: ChainState) -> None:
        self.chain = chain
        u = chain.universe
        rows = np.full((len(u.strikes_paise), 2), -1, np.int64)
        for i, k in enumerate(u.strikes_paise):
            for side, book in enumerate((u.calls, u.puts)):
                inst = book.get(k)
                if inst is not None:
                    rows[i, side] = chain.row_by_token[inst.token]
        self.rows = rows
        self.base = np.full((chain.n, ks.NBASE), np.nan)
        self.base[:, ks.B_SRC] = ks.SRC_NONE
        self.size = rows.shape[0] * ks.NK + ks.NSUM
        self.meta = ChainMeta(chain.root, u.expiry.isoformat(), chain.model.rate, rows.shape[0])
        self.day = -1
        self.latest: SummarySnapshot | None = None

    @property
    def iv_closes(self) -> tuple[float, ...]:
        """Daily ATM-IV closes before today, oldest first (IV rank reads them)."""
        return self.meta.iv_closes

    @iv_closes.setter
    def iv_closes(self, closes: tuple[float, ...]) -> None:
        self.meta = msgspec.structs.replace(self.meta, iv_closes=tuple(closes))

    def set_doi_source(self, source: str, note: str | None = None) -> None:
        """Say where the ΔOI baselines came from (and why, for a fallback) in every summary."""
        self.meta = msgspec.structs.replace(self.meta, doi_source=source, doi_note=note)

    def prev_close_contracts(self) -> int:
        """Contracts whose ΔOI baseline is a previous session's close."""
        return int(np.count_nonzero(self.base[:, ks.B_SRC] == ks.SRC_PREV_CLOSE))

    def set_prev_close(self, oi_by_token: Mapping[str, int]) -> int:
        """Use these closing OIs as ΔOI baselines; returns how many contracts matched."""
        hits = 0
        for token, oi in sorted(oi_by_token.items()):
            row = self.chain.row_by_token.get(token)
            if row is None or row < L.ROW_FIRST_OPTION:
                continue
            self.base[row, ks.B_OI] = float(oi)
            self.base[row, ks.B_SRC] = ks.SRC_PREV_CLOSE
            hits += 1
        return hits

    def closing_oi(self) -> dict[str, int]:
        """Token → OI at the last bar close (what tomorrow's ΔOI is measured from)."""
        out = {}
        for row in range(L.ROW_FIRST_OPTION, self.chain.n):
            v = self.base[row, ks.B_LAST_OI]
            inst = self.chain.instruments[row]
            if inst is not None and math.isfinite(v):
                out[inst.token] = int(v)
        return out

    def roll_day(self, day: int) -> bool:
        """At the first bar close of a new IST date, roll yesterday into the baselines.

        Yesterday's last OI becomes each contract's ΔOI baseline and yesterday's last ATM IV
        joins the daily closes (IV rank).
        """
        if self.day == day:
            return False
        rolled = self.day >= 0
        self.day = day
        if rolled:
            atm = self.latest.scalar(ks.S_ATM_IV) if self.latest is not None else math.nan
            if math.isfinite(atm) and atm > 0:
                self.iv_closes = (*self.iv_closes, atm)
            last = self.base[:, ks.B_LAST_OI].copy()
            known = np.isfinite(last)
            self.base[:, ks.B_OI] = np.where(known, last, np.nan)
            self.base[:, ks.B_SRC] = np.where(known, ks.SRC_PREV_CLOSE, ks.SRC_NONE)
            self.base[:, ks.B_LAST_OI] = np.nan
            if self.meta.doi_source is not None:
                self.set_doi_source("own_close")
        return rolled

    def compute(self, t_ns: int, slot: int, nxt: SummarySnapshot | None = None) -> SummarySnapshot:
        """Run the kernel on the chain as last priced (at ``t_ns``); keep and return a snapshot.

        ``slot``: ring slot of the bar that closed at ``t_ns``, or -1 inside an open bar;
        ``nxt``: the next expiry's snapshot at the same instant (term structure). One
        allocation, one kernel call, one C-built Struct: what a cold bar close can afford.
        """
        c = self.chain
        data = np.empty(self.size)  # fresh every time: the snapshot owns it
        ks.summarize(
            c.q, c.f, c.bars, c.st, self.rows, self.base, data, t_ns, c.universe.expiry_ns, slot
        )
        snap = SummarySnapshot(self.meta, t_ns, data, nxt)
        self.latest = snap
        return snap


SnapshotHook = Callable[[SummarySnapshot, bool], None]  # (snapshot, at a bar close)


class ChainSummaries:
    """Every chain's summarizer, run after each bar close (off the path to an order intent).

    With next-expiry chains in the book (``[market] expiries = 2``), each is summarised right
    before its near chain, and the near snapshot carries it (``next``): hooks and readers see one
    snapshot per underlying, with the term structure.
    """

    def __init__(self, book: ChainBook) -> None:
        self.book = book
        self.by_root = {c.root: ChainSummarizer(c) for c in book.chains}
        self.next_by_root = {c.root: ChainSummarizer(c) for c in book.followers}
        self.ordered = [self.by_root[root] for root in sorted(self.by_root)]
        # Called with each new snapshot (history, metrics); at bar closes and snapshots alike.
        self.on_snapshot: list[SnapshotHook] = []
        # Called with (root, day index that ended, token → closing OI) when a date rolls over.
        self.on_day_close: list[Callable[[str, int, dict[str, int]], None]] = []

    def on_bar(self, bar_end_ns: int, seq: int) -> None:
        """Summarize every chain at the bar that just closed."""
        day = (bar_end_ns - 1 + IST_OFFSET_NS) // DAY_NS
        slot = seq % L.RING
        for s in self.ordered:
            nxt = self.next_by_root.get(s.meta.underlying)
            if s.day != day:
                ended = s.day
                closing = self.closing_oi(s.meta.underlying) if ended >= 0 else {}
                if nxt is not None:
                    nxt.roll_day(day)
                if s.roll_day(day):
                    for hook in self.on_day_close:
                        hook(s.meta.underlying, ended, closing)
            later = nxt.compute(bar_end_ns, slot) if nxt is not None else None
            snap = s.compute(bar_end_ns, slot, later)
            for h in self.on_snapshot:
                h(snap, True)

    def snapshot(self, t_ns: int) -> list[SummarySnapshot]:
        """Summaries at ``t_ns`` inside the open bar (the chains priced at ``t_ns`` already)."""
        out = []
        for s in self.ordered:
            snap = self.compute_root(s.meta.underlying, t_ns)
            out.append(snap)
            for h in self.on_snapshot:
                h(snap, False)
        return out

    def compute_root(self, root: str, t_ns: int) -> SummarySnapshot:
        """The summary of ``root`` inside the open bar (its chains priced at ``t_ns`` already)."""
        nxt = self.next_by_root.get(root)
        return self.by_root[root].compute(t_ns, -1, nxt.compute(t_ns, -1) if nxt else None)

    def summarizers(self, root: str) -> list[ChainSummarizer]:
        """The near summarizer of ``root`` and, with two expiries, the next one."""
        nxt = self.next_by_root.get(root)
        return [self.by_root[root], *([nxt] if nxt is not None else [])]

    def closing_oi(self, root: str) -> dict[str, int]:
        """Token → OI at the last bar close, every expiry of ``root``."""
        out: dict[str, int] = {}
        for s in self.summarizers(root):
            out.update(s.closing_oi())
        return out

    def latest(self, root: str) -> SummarySnapshot | None:
        """The newest snapshot of ``root`` (None before the first bar close)."""
        s = self.by_root.get(root)
        return s.latest if s is not None else None
