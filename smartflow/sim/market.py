"""A synthetic index-options market, deterministic under a seed.

Per root: the index follows a geometric random walk (``spot_vol``); the near-month future trades
at ``S·e^{rT}``; every option is priced by Black-76 on ``F = S·e^{rT}`` at a smile around
``iv_atm`` (its *true* volatility, exposed for tests), quoted one or two ticks wide around that
price so that the mid is always within half a tick of it. Packets are scheduled on a fixed grid of
simulated time (``ticks_per_second`` per chain, plus the index every ``index_interval_s``), and
each packet's contract is drawn with weights that favour strikes near the money, so the content
of a session depends only on the seed and the config, never on wall-clock jitter.

Each option packet is one trade: the trade hits the bid or lifts the offer, the day volume and the
exchange VWAP move, and the trade opens, closes or transfers positions. How the open interest
reaches the wire is ``oi_publish``: ``per_trade`` — every packet carries the OI its trade left,
so OI moves in lot-sized steps on most ticks; ``periodic`` — each contract's OI is published only
every ``oi_period_s`` (drawn per publication, on its own schedule that no scenario changes), so
OI arrives in lumps. The publication schedule has its own random stream: one seed gives the same
trades under both shapes, and only what the OI field shows differs.

Scenarios (config ``[[sim.scenarios]]``) bend one contract for a window: build-ups, covering,
unwinding, fresh positions, scalper traps, theta crush, whale prints and icebergs. Onset and strike
may be ranges, drawn once per seed from a stream of their own. A strength s (``weak`` 0.5,
``moderate`` 1, ``strong`` 2, or a number) sets what the scenario does over its window:

=================  ============================  ================================  ===============
kind               volume                        open interest                     premium
=================  ============================  ================================  ===============
build-up kinds     (1.5 + 1.5 s) × usual rate    ± 8 s % of its OI, steadily       ± 10 s %
fresh_position     (2 + 1.5 s) × usual rate      + (8 + 6 s) % in the first 10 s   index only
=================  ============================  ================================  ===============

(build-ups and fresh positions add OI, covering and unwinding remove it; long build-up and short
covering lift the premium, short build-up and long unwinding press it.) The OI follows its path
through the contract's own trades (the volume column is how much more often it trades), each
moving it by at most its quantity; trades behind the path are blocks of up to ``BLOCK_LOTS`` when
the usual sizes cannot keep up (volume then runs above the multiple), with the usual random opening
and closing on top: the path is reached in steps and with noise. Each scenario is
recorded in ``ground_truth`` (with its grade) and logged when it starts, so detectors can be
scored against it.

Pricing here is deliberately written with ``math`` only, independent of ``smartflow.kernels``,
so that tests recovering volatility from simulated quotes check the kernels against something
that is not themselves.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import random
from dataclasses import dataclass, field
from typing import Any

from smartflow.config import ScenarioConfig, SimConfig
from smartflow.core.timeutil import NS_PER_S, SECONDS_PER_YEAR, expiry_ns
from smartflow.feed.protocol import EXCHANGE_BY_SEGMENT, SnapQuotePacker
from smartflow.sim.universe import PROFILES, SimInstrument, build_universe


SQRT2 = math.sqrt(2.0)
BARE_INDEX_TOKENS = {"99926000": "26000", "99926009": "26009", "99919000": "1"}
BUILDUP_KINDS = ("long_build_up", "short_build_up", "short_covering", "long_unwinding")
FRESH_FRONT_S = 10.0  # a fresh position's OI is put on within this long of its onset
BLOCK_LOTS = 40  # the largest trade a scenario's path makes, in lots


def _ncdf(x: float) -> float:
    return 0.5 * math.erfc(-x / SQRT2)


def black76(fwd: float, strike: float, t_yrs: float, vol: float, df: float, is_call: bool) -> float:
    """Discounted Black-76 premium (independent of the kernels on purpose)."""
    if t_yrs <= 0 or vol <= 0:
        intrinsic = max(fwd - strike, 0.0) if is_call else max(strike - fwd, 0.0)
        return df * intrinsic
    sd = vol * math.sqrt(t_yrs)
    d1 = math.log(fwd / strike) / sd + 0.5 * sd
    d2 = d1 - sd
    if is_call:
        return df * (fwd * _ncdf(d1) - strike * _ncdf(d2))
    return df * (strike * _ncdf(-d2) - fwd * _ncdf(-d1))


def smile_vol(iv_atm: float, fwd: float, strike: float, t_yrs: float) -> float:
    """True volatility at ``strike``: a skewed smile in standardised moneyness."""
    z = math.log(strike / fwd) / (iv_atm * math.sqrt(max(t_yrs, 1e-6)))
    z = max(-4.0, min(4.0, z))
    return iv_atm * max(0.5, 1.0 - 0.06 * z + 0.03 * z * z)


@dataclass
class GroundTruth:
    """One scenario as it was injected."""

    kind: str
    root: str
    token: str
    strike: float
    side: str
    start_ns: int
    end_ns: int
    strength: float
    grade: str = ""
    """``weak``/``moderate``/``strong`` when the scenario was graded, else empty."""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for logs and test fixtures."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class OiPath:
    """Where a scenario takes a contract's open interest.

    ``change`` × its OI at the onset, reached linearly between ``start_ns`` and ``full_ns`` and
    held until the window ends.
    """

    base: int
    change: float
    start_ns: int
    full_ns: int
    end_ns: int

    def target(self, now_ns: int) -> int:
        """The open interest the scenario wants at ``now_ns``."""
        progress = min(1.0, (now_ns - self.start_ns) / max(1, self.full_ns - self.start_ns))
        return round(self.base * (1.0 + self.change * progress))


@dataclass(frozen=True)
class Planned:
    """A configured scenario with its onset, strike and strength drawn for this seed."""

    sc: ScenarioConfig
    root: str
    start_s: float
    strike_offset: int
    strength: float


@dataclass
class Contract:
    """Mutable market state of one instrument."""

    inst: SimInstrument
    exch_type: int
    packer: SnapQuotePacker
    weight: float = 1.0
    seq: int = 0
    volume: int = 0
    oi: int = 0
    pending_oi: int = 0
    next_oi_ns: int = 0
    open_px: int = 0
    high_px: int = 0
    low_px: int = 0
    close_px: int = 0
    ltp: int = 0
    ltq: int = 0
    ltt_s: int = 0
    pv_sum: int = 0
    atp: int = 0
    bid: int = 0
    ask: int = 0
    true_vol: float = 0.0
    theo: float = 0.0
    # Scenario overrides, reset when the window ends.
    price_factor: float = 1.0
    volume_mult: float = 1.0
    """Multiple of its usual trading rate while a scenario runs."""
    size_mult: float = 1.0
    """Multiple of its usual trade size while a scenario runs (traps and icebergs)."""
    buy_prob: float = 0.5
    open_prob: float = 0.3
    close_prob: float = 0.3
    oi_path: OiPath | None = None
    hidden_bid_qty: int = 0
    displayed_bid_qty: int = 0
    last_packet: bytes = b""
    prev_close_oi: int = 0
    """OI at the previous session's close (served by the historical OI endpoint)."""


@dataclass
class Chain:
    """One root's instruments and scheduling state."""

    root: str
    spot: float
    index: Contract
    future: Contract
    options: list[Contract]
    weekly_expiry_ns: int
    tradables: list[Contract] = field(default_factory=list)
    cum_weights: list[float] = field(default_factory=list)
    weights_spot: float = 0.0
    next_tick_ns: int = 0
    next_index_ns: int = 0
    day_open: float = 0.0


class Market:
    """The whole simulated market for the configured roots."""

    def __init__(
        self, cfg: SimConfig, roots: list[str], session_start_ns: int, session_date: dt.date
    ) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.start_ns = session_start_ns
        self.session_date = session_date
        self.now_ns = session_start_ns
        self.instruments = build_universe(
            roots, session_date, cfg.days_to_expiry, cfg.strikes_each_side
        )
        self.chains: dict[str, Chain] = {}
        self.by_token: dict[str, Contract] = {}
        self.ground_truth: list[GroundTruth] = []
        self._pending: list[Planned] = []
        self._active: list[tuple[GroundTruth, Contract, Planned]] = []
        self._tick_step_ns = int(NS_PER_S / cfg.ticks_per_second)
        self._index_step_ns = int(cfg.index_interval_s * NS_PER_S)
        self._per_trade_oi = cfg.oi_publish == "per_trade"
        # Streams of their own, so neither the OI publication schedule nor the scenario draws
        # change the trades a seed makes.
        self._oi_rng = random.Random(f"oi-schedule:{cfg.seed}")
        # Yesterday's closing OI has a stream of its own too: serving it changes no trade.
        self._prev_rng = random.Random(f"prev-close:{cfg.seed}")
        for root in roots:
            self._build_chain(root)
        self._pending = self._plan(roots)

    # ---- construction -------------------------------------------------------------------

    def _contract(self, inst: SimInstrument) -> Contract:
        exch = int(EXCHANGE_BY_SEGMENT[inst.segment])
        c = Contract(inst=inst, exch_type=exch, packer=SnapQuotePacker(exch, inst.token))
        self.by_token[inst.token] = c
        return c

    def _build_chain(self, root: str) -> None:
        prof = PROFILES[root]
        insts = [i for i in self.instruments if i.root == root]
        index = self._contract(next(i for i in insts if i.kind == "INDEX"))
        future = self._contract(next(i for i in insts if i.kind == "FUT"))
        opts = [i for i in insts if i.kind in ("CE", "PE")]
        weekly = min(i.expiry for i in opts if i.expiry is not None)
        options = [self._contract(i) for i in opts]
        chain = Chain(
            root=root,
            spot=prof.spot,
            index=index,
            future=future,
            options=options,
            weekly_expiry_ns=expiry_ns(weekly),
            day_open=prof.spot,
        )
        chain.next_tick_ns = self.start_ns
        chain.next_index_ns = self.start_ns
        self.chains[root] = chain
        rng = self.rng
        index.ltp = index.open_px = index.high_px = index.low_px = round(prof.spot * 100)
        index.close_px = round(prof.spot * (1 + rng.uniform(-0.005, 0.005)) * 100)
        for c in [future, *options]:
            c.weight = self._activity_weight(chain, c)
            lots = max(1, int(c.weight * 40_000 * rng.uniform(0.7, 1.3)))
            c.volume = lots * c.inst.lot_size
            oi_lots = c.weight * self.cfg.oi_lots_atm * rng.uniform(0.7, 1.3)
            c.oi = max(1, int(oi_lots)) * c.inst.lot_size
            # The session opens with the OI traded since yesterday's close already on it.
            overnight = self._prev_rng.uniform(-0.15, 0.15)
            c.prev_close_oi = max(1, round(int(oi_lots) * (1 - overnight))) * c.inst.lot_size
            # Publication phases spread over the mean period, so prints do not come in waves.
            mean_period = sum(self.cfg.oi_period_s) / 2
            c.next_oi_ns = self.start_ns + int(self._oi_rng.uniform(0, mean_period) * NS_PER_S)
            self._reprice(chain, c)
            c.ltp = c.open_px = c.high_px = c.low_px = c.bid if rng.random() < 0.5 else c.ask
            c.close_px = max(5, round(c.ltp * rng.uniform(0.8, 1.25) / 5) * 5)
            c.pv_sum = c.ltp * c.volume
            c.atp = c.ltp
            c.last_packet = self._pack(c)
        index.last_packet = self._index_packets(chain)[0][1]
        self._refresh_weights(chain)

    def _activity_weight(self, chain: Chain, c: Contract) -> float:
        if c.inst.kind == "FUT":
            return 1.5
        step = PROFILES[chain.root].strike_step
        d = abs(c.inst.strike - chain.spot) / step
        near = 1.0 / (1.0 + (d / 4.0) ** 2)
        # The next weekly trades a fraction of the nearest one.
        return near * (1.0 if expiry_ns(c.inst.expiry) == chain.weekly_expiry_ns else 0.15)  # type: ignore[arg-type]

    def _refresh_weights(self, chain: Chain) -> None:
        chain.tradables = [chain.future, *chain.options]
        total = 0.0
        cum = []
        for c in chain.tradables:
            c.weight = self._activity_weight(chain, c) * c.volume_mult
            total += c.weight
            cum.append(total)
        chain.cum_weights = cum
        chain.weights_spot = chain.spot

    def prev_session_date(self) -> dt.date:
        """The weekday before the session date (the simulator lists no holidays)."""
        day = self.session_date - dt.timedelta(days=1)
        while day.weekday() >= 5:
            day -= dt.timedelta(days=1)
        return day

    def prev_close_oi(self, token: str) -> int | None:
        """OI of an option or future at the previous session's close (None: not listed)."""
        c = self.by_token.get(token)
        if c is None or c.inst.kind == "INDEX":
            return None
        return c.prev_close_oi

    # ---- pricing ------------------------------------------------------------------------

    def t_years(self, c: Contract) -> float:
        """Year fraction from now to the contract's 15:30 IST expiry."""
        return max(0.0, (expiry_ns(c.inst.expiry) - self.now_ns) / NS_PER_S / SECONDS_PER_YEAR)  # type: ignore[arg-type]

    def forward(self, chain: Chain, c: Contract) -> float:
        """The model forward for the contract's expiry."""
        return chain.spot * math.exp(self.cfg.rate * self.t_years(c))

    def true_vol(self, token: str) -> float:
        """The volatility the contract is priced at right now (NaN for non-options)."""
        c = self.by_token[token]
        if c.inst.kind not in ("CE", "PE"):
            return math.nan
        chain = self.chains[c.inst.root]
        return smile_vol(self.cfg.iv_atm, self.forward(chain, c), c.inst.strike, self.t_years(c))

    def _reprice(self, chain: Chain, c: Contract) -> None:
        tick = c.inst.tick_paise
        t = self.t_years(c)
        fwd = self.forward(chain, c)
        if c.inst.kind == "FUT":
            theo = fwd
            spread_ticks = 1
        else:
            vol = smile_vol(self.cfg.iv_atm, fwd, c.inst.strike, t)
            c.true_vol = vol
            theo = (
                black76(
                    fwd, c.inst.strike, t, vol, math.exp(-self.cfg.rate * t), c.inst.kind == "CE"
                )
                * c.price_factor
            )
            spread_ticks = 1 if theo < 200 else 2
        c.theo = theo
        theo_paise = theo * 100
        # Quote so that the mid is within half a tick of the model price.
        if spread_ticks == 1:
            bid = math.floor(theo_paise / tick) * tick
        else:
            bid = round(theo_paise / tick) * tick - tick
        c.bid = max(0, bid)
        c.ask = max(tick, bid + spread_ticks * tick)

    # ---- time ---------------------------------------------------------------------------

    def next_event_ns(self) -> int:
        """Simulated time of the next packet anywhere in the market."""
        return min(min(ch.next_tick_ns, ch.next_index_ns) for ch in self.chains.values())

    def advance(self, until_ns: int) -> list[tuple[str, bytes]]:
        """Generate every packet scheduled up to ``until_ns``: (token, SNAP_QUOTE packet) pairs."""
        out: list[tuple[str, bytes]] = []
        while True:
            chain = min(self.chains.values(), key=lambda ch: min(ch.next_tick_ns, ch.next_index_ns))
            t = min(chain.next_tick_ns, chain.next_index_ns)
            if t > until_ns:
                break
            self.now_ns = t
            self._scenarios()
            if chain.next_index_ns <= chain.next_tick_ns:
                chain.next_index_ns += self._index_step_ns
                out.extend(self._index_packets(chain))
            else:
                chain.next_tick_ns += self._tick_step_ns
                out.append(self._trade_packet(chain))
        return out

    def _move_spot(self, chain: Chain, dt_s: float) -> None:
        vol = self.cfg.spot_vol
        if vol <= 0:
            return
        dt_y = dt_s / SECONDS_PER_YEAR
        z = self.rng.gauss(0.0, 1.0)
        chain.spot *= math.exp(vol * math.sqrt(dt_y) * z - 0.5 * vol * vol * dt_y)
        if abs(chain.spot - chain.weights_spot) >= PROFILES[chain.root].strike_step:
            self._refresh_weights(chain)

    # ---- packets ------------------------------------------------------------------------

    def _index_packets(self, chain: Chain) -> list[tuple[str, bytes]]:
        c = chain.index
        px = round(chain.spot * 100)
        c.ltp = px
        c.high_px = max(c.high_px, px)
        c.low_px = min(c.low_px, px)
        ms = self.now_ns // 1_000_000
        zero = [(0, 0, 0)] * 5
        packets = []
        tokens = []
        form = self.cfg.index_token_form
        if form in ("prefixed", "both"):
            tokens.append(c.inst.token)
        if form in ("bare", "both"):
            tokens.append(BARE_INDEX_TOKENS.get(c.inst.token, c.inst.token))
        for token in tokens:
            packer = c.packer if token == c.inst.token else SnapQuotePacker(c.exch_type, token)
            # Indices carry no sequence number, volume, OI or depth (angel-smartapi.md §2.4.1).
            packets.append(
                (
                    token,
                    packer.pack(
                        0,
                        ms,
                        px,
                        0,
                        0,
                        0,
                        0.0,
                        0.0,
                        (c.open_px, c.high_px, c.low_px, c.close_px),
                        0,
                        0,
                        zero,
                        zero,
                        (0, 0, 0, 0),
                    ),
                )
            )
        return packets

    def snapshot(self, token: str) -> bytes | None:
        """The contract's latest packet, sent to a client when it subscribes (None: unknown)."""
        c = self.by_token.get(token)
        if c is None:
            bare = {v: k for k, v in BARE_INDEX_TOKENS.items()}.get(token)
            c = self.by_token.get(bare) if bare else None
            if c is None or self.cfg.index_token_form == "prefixed":
                return None
            return SnapQuotePacker(c.exch_type, token).pack(
                0,
                self.now_ns // 1_000_000,
                c.ltp,
                0,
                0,
                0,
                0.0,
                0.0,
                (c.open_px, c.high_px, c.low_px, c.close_px),
                0,
                0,
                [(0, 0, 0)] * 5,
                [(0, 0, 0)] * 5,
                (0, 0, 0, 0),
            )
        if c.inst.kind == "INDEX" and self.cfg.index_token_form == "bare":
            return None
        return c.last_packet or None

    def _pick(self, chain: Chain) -> Contract:
        r = self.rng.random() * chain.cum_weights[-1]
        return chain.tradables[bisect.bisect_right(chain.cum_weights, r)]

    def _trade_packet(self, chain: Chain) -> tuple[str, bytes]:
        rng = self.rng
        self._move_spot(chain, self._tick_step_ns / NS_PER_S)
        c = self._pick(chain)
        self._reprice(chain, c)
        lot = c.inst.lot_size
        lots = 1 + min(int(rng.expovariate(0.5)), 40)
        # A graded scenario's volume multiple makes the contract trade more often (the pick
        # weight carries it), so its volume is that multiple of usual; traps and icebergs also
        # trade in bigger clips.
        qty = max(1, int(lots * c.size_mult)) * lot
        path = c.oi_path
        if path is not None and self.now_ns < path.end_ns:
            # Behind its path the scenario trades in blocks: the position is what it is about.
            gap = abs(path.target(self.now_ns) - (c.oi + c.pending_oi))
            qty = max(qty, min(gap // lot, BLOCK_LOTS) * lot)
        is_buy = rng.random() < c.buy_prob
        px = c.ask if is_buy else c.bid
        if px <= 0:
            px = c.ask
        self._trade(c, px, qty, is_buy)
        if self._per_trade_oi or self.now_ns >= c.next_oi_ns:
            self._update_oi(c)
        c.last_packet = self._pack(c)
        return c.inst.token, c.last_packet

    def _trade(self, c: Contract, px: int, qty: int, is_buy: bool) -> None:
        rng = self.rng
        c.ltp = px
        c.ltq = qty
        c.volume += qty
        c.pv_sum += px * qty
        c.atp = c.pv_sum // c.volume
        c.high_px = max(c.high_px, px)
        c.low_px = min(c.low_px, px) if c.low_px else px
        c.ltt_s = self.now_ns // NS_PER_S
        u = rng.random()
        change = 0
        if u < c.open_prob:
            change = qty
        elif u < c.open_prob + c.close_prob:
            change = -qty
        path = c.oi_path
        if path is not None and self.now_ns < path.end_ns:
            # Towards the scenario's OI path, with the usual churn on top; a trade opens or
            # closes at most its own quantity.
            gap = path.target(self.now_ns) - (c.oi + c.pending_oi)
            change = max(-qty, min(qty, gap + change))
        c.pending_oi += change
        if c.hidden_bid_qty and not is_buy:
            # An iceberg on the bid: the displayed size is refilled from the hidden reserve.
            c.hidden_bid_qty = max(0, c.hidden_bid_qty - qty)

    def _update_oi(self, c: Contract) -> None:
        c.oi = max(0, c.oi + c.pending_oi)
        c.pending_oi = 0
        if not self._per_trade_oi:
            period = self._oi_rng.uniform(*self.cfg.oi_period_s)
            c.next_oi_ns = self.now_ns + int(period * NS_PER_S)

    def _depth(self, c: Contract) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        rng = self.rng
        lot = c.inst.lot_size
        tick = c.inst.tick_paise
        scale = max(1, int(c.weight * 30))
        bids = []
        asks = []
        for i in range(5):
            bp = c.bid - i * tick
            q = lot * rng.randint(1, 4 * scale)
            if i == 0 and c.displayed_bid_qty:
                q = c.displayed_bid_qty
            bids.append((q, bp, max(1, q // lot // 2)) if bp > 0 else (0, 0, 0))
            q = lot * rng.randint(1, 4 * scale)
            asks.append((q, c.ask + i * tick, max(1, q // lot // 2)))
        return bids, asks

    def _pack(self, c: Contract) -> bytes:
        c.seq += 1
        bids, asks = self._depth(c)
        depth_bid = sum(q for q, _, _ in bids)
        depth_ask = sum(q for q, _, _ in asks)
        lean = (c.buy_prob - 0.5) * 2
        tbq = float(int(depth_bid * self.rng.uniform(3, 6) * (1 + lean)))
        tsq = float(int(depth_ask * self.rng.uniform(3, 6) * (1 - lean)))
        upper = c.close_px * 3
        lower = max(5, c.close_px // 20)
        return c.packer.pack(
            c.seq,
            self.now_ns // 1_000_000,
            c.ltp,
            c.ltq,
            c.atp,
            c.volume,
            tbq,
            tsq,
            (c.open_px, c.high_px, c.low_px, c.close_px),
            c.ltt_s,
            c.oi,
            bids,
            asks,
            (upper, lower, c.high_px * 4, max(5, c.low_px // 10)),
        )

    # ---- scenarios ----------------------------------------------------------------------

    def _plan(self, roots: list[str]) -> list[Planned]:
        """Draw each scenario's onset, strike and strength for this seed; order by onset.

        A drawn strike avoids contracts an earlier scenario already uses, so each scenario's
        ground truth is about a contract of its own whenever its range allows it.
        """
        rng = random.Random(f"scenarios:{self.cfg.seed}")
        used: set[tuple[str, int, str]] = set()
        plan: list[Planned] = []
        for sc in self.cfg.scenarios:
            root = sc.underlying or roots[0]
            if root not in self.chains:
                raise ValueError(f"scenario {sc.kind}: underlying {root} is not simulated")
            start = sc.start_s if isinstance(sc.start_s, list) else [sc.start_s, sc.start_s]
            start_s = rng.uniform(start[0], start[1]) if start[0] < start[1] else start[0]
            if isinstance(sc.strike_offset, list):
                low, high = sc.strike_offset
                offset = rng.randint(low, high)
                for _ in range(8 * (high - low + 1)):
                    if (root, offset, sc.side) not in used:
                        break
                    offset = rng.randint(low, high)
            else:
                offset = sc.strike_offset
            used.add((root, offset, sc.side))
            plan.append(Planned(sc, root, start_s, offset, sc.strength_value()))
        plan.sort(key=lambda p: p.start_s)
        return plan

    def _target(self, sc: ScenarioConfig, root: str, offset: int | None = None) -> Contract:
        """The weekly option ``sc`` bends (``offset``: the drawn strike offset, if a range)."""
        chain = self.chains[root]
        step = PROFILES[root].strike_step
        atm = round(PROFILES[root].spot / step) * step
        if offset is None:
            offset = sc.strike_offset if isinstance(sc.strike_offset, int) else sc.strike_offset[0]
        strike = atm + offset * step
        for c in chain.options:
            if (
                c.inst.strike == strike
                and c.inst.kind == sc.side
                and c.inst.expiry is not None
                and expiry_ns(c.inst.expiry) == chain.weekly_expiry_ns
            ):
                return c
        raise ValueError(f"scenario {sc.kind}: no {root} {strike:g} {sc.side} in the universe")

    def _scenarios(self) -> None:
        now = self.now_ns
        while self._pending and self.start_ns + int(self._pending[0].start_s * NS_PER_S) <= now:
            p = self._pending.pop(0)
            c = self._target(p.sc, p.root, p.strike_offset)
            end = now + int(p.sc.duration_s * NS_PER_S)
            grade = p.sc.strength if isinstance(p.sc.strength, str) else ""
            truth = GroundTruth(
                p.sc.kind,
                p.root,
                c.inst.token,
                c.inst.strike,
                p.sc.side,
                now,
                end,
                p.strength,
                grade,
            )
            self.ground_truth.append(truth)
            self._active.append((truth, c, p))
            self._begin(c, p, end)
        for item in list(self._active):
            truth, c, p = item
            if now >= truth.end_ns:
                self._active.remove(item)
                self._end(c)
            else:
                self._during(c, p, (now - truth.start_ns) / max(1, truth.end_ns - truth.start_ns))

    def _begin(self, c: Contract, p: Planned, end_ns: int) -> None:
        s = p.strength
        kind = p.sc.kind
        chain = self.chains[c.inst.root]
        now = self.now_ns
        if kind in BUILDUP_KINDS:
            c.volume_mult = 1.5 + 1.5 * s
            up = kind in ("long_build_up", "short_covering")
            c.buy_prob = 0.75 if up else 0.25
            opening = kind in ("long_build_up", "short_build_up")
            change = 0.08 * s * (1 if opening else -1)
            c.oi_path = OiPath(c.oi + c.pending_oi, change, now, end_ns, end_ns)
        elif kind == "fresh_position":
            c.volume_mult = 2.0 + 1.5 * s
            c.buy_prob = 0.7
            full = min(end_ns, now + int(FRESH_FRONT_S * NS_PER_S))
            c.oi_path = OiPath(c.oi + c.pending_oi, 0.08 + 0.06 * s, now, full, end_ns)
        elif kind == "scalper_trap":
            c.oi = c.inst.lot_size * self.rng.randint(10, 40)
            c.pending_oi = 0
            c.open_prob, c.close_prob = 0.0, 0.0
            c.volume_mult = c.size_mult = 4.0 + 2 * s
        elif kind == "theta_crush":
            c.volume_mult = c.size_mult = 2.5 + s
            c.buy_prob = 0.3
        elif kind == "whale":
            px = c.ask
            # ₹50 lakh × strength: the default whale threshold (px is in paise).
            lots = int(5_000_000 * s / (max(px, 1) / 100) / c.inst.lot_size) + 1
            self._trade(c, px, lots * c.inst.lot_size, True)
        elif kind == "iceberg":
            c.buy_prob = 0.1
            c.volume_mult = c.size_mult = 3.0 + s
            c.displayed_bid_qty = c.inst.lot_size * 10
            c.hidden_bid_qty = c.inst.lot_size * int(400 * s)
        self._refresh_weights(chain)

    def _during(self, c: Contract, p: Planned, progress: float) -> None:
        kind = p.sc.kind
        if kind in ("long_build_up", "short_covering"):
            c.price_factor = 1.0 + 0.1 * p.strength * progress
        elif kind in ("short_build_up", "long_unwinding"):
            c.price_factor = max(0.2, 1.0 - 0.1 * p.strength * progress)
        elif kind == "theta_crush":
            c.price_factor = max(0.2, 1.0 - 0.5 * p.strength * progress)
        elif kind == "iceberg" and c.hidden_bid_qty == 0:
            c.displayed_bid_qty = 0

    def _end(self, c: Contract) -> None:
        c.volume_mult = c.size_mult = 1.0
        c.buy_prob = 0.5
        c.open_prob, c.close_prob = 0.3, 0.3
        c.oi_path = None
        c.displayed_bid_qty = 0
        c.hidden_bid_qty = 0
        self._refresh_weights(self.chains[c.inst.root])

    # ---- scrip master -------------------------------------------------------------------

    def scrip_master(self, extra: list[dict[str, str]] | None = None) -> list[dict[str, str]]:
        """Every instrument as Angel's scrip-master records (plus ``extra`` rows)."""
        return [i.record() for i in self.instruments] + list(extra or [])
