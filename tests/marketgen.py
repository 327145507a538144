"""A market generator that is not ``smartflow sim``: for judging the detectors on other shapes.

It writes SNAP_QUOTE packets for a 21-strike NIFTY-like chain (±500 points, lot 50) and feeds
them through the production ``ChainBook`` and ``SmartMoneyDetector``. Two OI shapes:

* ``per_trade``: OI moves in one-lot steps on most packets (+1 / −1 lot with probability 0.4
  each, published at once);
* ``periodic``: the same steps accumulate unseen and OI is published every 30-90 s.

Premiums are Black-Scholes on a random-walk spot (13 % a year over trading seconds), so quiet
contracts move with the underlying and nothing else. Build-up events ramp a contract's OI by
10-25 % over two minutes (one-lot steps, or lumps on the periodic shape) with a premium move of
0.6-1.0 × the OI move in the matching direction and a 4× busier tape. Nothing here imports the
simulator.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, field

from smartflow.analytics.detectors import BUILDUP_NAMES, SmartMoneyDetector
from smartflow.chain.state import ChainBook, ChainState
from smartflow.config import DetectorConfig, ModelConfig
from smartflow.core.timeutil import expiry_ns, ns_at_ist
from smartflow.feed import protocol as p
from smartflow.instruments.master import Instrument
from smartflow.instruments.universe import ChainUniverse
from smartflow.kernels import layout as L


NS = 1_000_000_000
LOT = 50
STEP = 50
SPOT0 = 20_000.0
STRIKES = [int(SPOT0) + STEP * i for i in range(-10, 11)]
DAY = dt.date(2030, 1, 7)
EXPIRY = DAY + dt.timedelta(days=7)
T0 = ns_at_ist(DAY, dt.time(10, 0))
SPOT_VOL_PER_S = SPOT0 * 0.13 / math.sqrt(252 * 6.25 * 3600)
IV = 0.13
RAMP_S = 120.0

# The four build-ups: (OI direction, premium direction).
KINDS = {
    "LONG_BUILD_UP": (1, 1),
    "SHORT_BUILD_UP": (1, -1),
    "SHORT_COVERING": (-1, 1),
    "LONG_UNWINDING": (-1, -1),
}


def _bs(spot: float, strike: float, t: float, call: bool) -> float:
    s = IV * math.sqrt(t)
    d1 = (math.log(spot / strike) + 0.5 * s * s) / s
    n1 = 0.5 * (1 + math.erf(d1 / math.sqrt(2)))
    n2 = 0.5 * (1 + math.erf((d1 - s) / math.sqrt(2)))
    c = spot * n1 - strike * n2
    return c if call else c - spot + strike


@dataclass
class Event:
    """One build-up: what the generator did, for scoring."""

    kind: str
    row: int
    start_ns: int
    oi_move: float  # fraction of OI
    px_move: float  # fraction of premium


@dataclass
class Contract:
    token: str
    strike: int
    call: bool
    oi: int  # lots, true
    published: int  # lots, on the wire
    rate: float  # packets per second
    volume: int = 0  # lots, day
    next_pub_ns: int = 0
    event: Event | None = None
    target: float = 0.0
    oi0: int = 0


@dataclass
class Session:
    """A generated session's detector readings, per bar."""

    det: SmartMoneyDetector
    rows: dict[str, int]
    events: list[Event]
    # classes[row][bar] = BUILDUP_* name; published[row][bar] = OI (lots) the chain had at the close
    classes: dict[int, list[str]] = field(default_factory=dict)
    published: dict[int, list[int]] = field(default_factory=dict)
    premium: dict[int, list[float]] = field(default_factory=dict)  # LTP at the close
    bar_ends: list[int] = field(default_factory=list)


def _universe() -> ChainUniverse:
    index = Instrument("99926000", "Nifty 50", "NIFTY", "INDEX", "NSE", 1, None, 0, 1, 0)
    fut = Instrument("35001", "NIFTYFUT", "NIFTY", "FUT", "NFO", 2, EXPIRY, 0, LOT, 10)
    calls, puts = {}, {}
    for i, k in enumerate(STRIKES):
        kp = k * 100
        calls[kp] = Instrument(
            str(40_000 + i), f"N{k}CE", "NIFTY", "CE", "NFO", 2, EXPIRY, kp, LOT, 5
        )
        puts[kp] = Instrument(
            str(41_000 + i), f"N{k}PE", "NIFTY", "PE", "NFO", 2, EXPIRY, kp, LOT, 5
        )
    return ChainUniverse(
        root="NIFTY",
        expiry=EXPIRY,
        expiry_ns=expiry_ns(EXPIRY),
        segment="NFO",
        exchange_type=2,
        index=index,
        future=fut,
        strikes_paise=[k * 100 for k in STRIKES],
        calls=calls,
        puts=puts,
        lot_size=LOT,
        tick_paise=5,
    )


def _packet(token: str, ltp: float, volume_lots: int, oi_lots: int) -> bytes:
    px = max(5, round(ltp * 20) * 5)
    return p.encode(
        {
            "subscription_mode": p.Mode.SNAP_QUOTE,
            "exchange_type": 2,
            "token": token,
            "last_traded_price": px,
            "last_traded_quantity": LOT,
            "volume_trade_for_the_day": volume_lots * LOT,
            "open_interest": oi_lots * LOT,
            "best_5_buy_data": [{"flag": 1, "quantity": LOT, "price": px - 5, "no of orders": 1}],
            "best_5_sell_data": [{"flag": 0, "quantity": LOT, "price": px + 5, "no of orders": 1}],
        }
    )


def run(  # noqa: C901 — one loop that is the market; split, it would hide the model
    seed: int, shape: str, minutes: float = 20.0, events: int = 4, bar_seconds: int = 5
) -> Session:
    """Generate one session and run the detectors over it."""
    rng = random.Random(seed * 7919 + (0 if shape == "per_trade" else 1))
    chain = ChainState(_universe(), ModelConfig())
    cfg = DetectorConfig(bar_seconds=bar_seconds)
    book = ChainBook([chain], cfg)
    det = SmartMoneyDetector(chain, cfg.thresholds(), bar_seconds)
    u = chain.universe
    contracts: list[Contract] = []
    rows: dict[str, int] = {}
    for k in STRIKES:
        for call in (True, False):
            inst = (u.calls if call else u.puts)[k * 100]
            away = abs(k - SPOT0) / STEP
            oi = int(rng.uniform(800, 4_000) * math.exp(-away / 8))
            c = Contract(inst.token, k, call, oi, oi, rate=2.0 * math.exp(-away / 6) + 0.2)
            c.next_pub_ns = T0 + int(rng.uniform(0, 60) * NS)
            contracts.append(c)
            rows[inst.token] = chain.row_by_token[inst.token]
    # Build-ups on strikes within ±3 of ATM, after a 4-minute warm-up, two minutes apart.
    near = [c for c in contracts if abs(c.strike - SPOT0) <= 3 * STEP]
    evs: list[Event] = []
    chosen = rng.sample(near, events)
    kinds = list(KINDS)
    for i, c in enumerate(chosen):
        kind = kinds[i % 4]
        start = T0 + int((240 + 150 * i) * NS)
        oi_move = rng.uniform(0.10, 0.25)
        ev = Event(kind, rows[c.token], start, oi_move, oi_move * rng.uniform(0.6, 1.0))
        c.event = ev
        evs.append(ev)
    session = Session(det, rows, evs)
    for r in rows.values():
        session.classes[r] = []
        session.published[r] = []
        session.premium[r] = []

    def on_bar(end_ns: int, seq: int, _closed_at: int) -> None:
        det.on_bar(end_ns, seq)
        session.bar_ends.append(end_ns)
        for c in contracts:
            r = rows[c.token]
            session.classes[r].append(BUILDUP_NAMES[int(det.di[r, L.DI_BUILDUP])])
            session.published[r].append(int(chain.q[r, L.Q_OI]) // LOT)  # as the chain saw it
            session.premium[r].append(int(chain.q[r, L.Q_LTP]) / 100)

    book.on_close = on_bar
    end_ns = T0 + int(minutes * 60 * NS)
    spot = SPOT0
    t = T0
    dt_s = 0.05
    frames: list[tuple[int, bytes]] = []
    next_index = T0
    while t < end_ns:
        t += int(dt_s * NS)
        spot += rng.gauss(0.0, SPOT_VOL_PER_S * math.sqrt(dt_s))
        if t >= next_index:
            frames.append(
                (
                    t,
                    p.encode(
                        {
                            "subscription_mode": p.Mode.LTP,
                            "exchange_type": 1,
                            "token": "99926000",
                            "last_traded_price": round(spot * 100),
                        }
                    ),
                )
            )
            next_index += NS
        years = (expiry_ns(EXPIRY) - t) / NS / (365 * 86400)
        for c in contracts:
            ev = c.event
            busy = 1.0
            factor = 1.0
            if ev is not None and t >= ev.start_ns:
                prog = min(1.0, (t - ev.start_ns) / NS / RAMP_S)
                oi_dir, px_dir = KINDS[ev.kind]
                if c.oi0 == 0:
                    c.oi0 = c.oi
                c.target = c.oi0 * (1 + oi_dir * ev.oi_move * prog)
                factor = 1 + px_dir * ev.px_move * prog
                busy = 4.0 if prog < 1.0 else 1.0
                # Enough packets for the ramp to be made of one-lot steps.
                need = c.oi0 * ev.oi_move / RAMP_S * 1.6
                rate = max(c.rate * busy, need) if prog < 1.0 else c.rate
            else:
                rate = c.rate
            if rng.random() >= rate * dt_s:
                continue
            lots = 1 + min(int(rng.expovariate(0.6)), 20)
            c.volume += lots * (2 if busy > 1 else 1)
            if ev is not None and t >= ev.start_ns and abs(c.target - c.oi) >= 1:
                c.oi += 1 if c.target > c.oi else -1
            else:
                x = rng.random()
                c.oi += 1 if x < 0.4 else (-1 if x < 0.8 else 0)
            c.oi = max(1, c.oi)
            if shape == "per_trade":
                c.published = c.oi
            elif t >= c.next_pub_ns:
                c.published = c.oi
                c.next_pub_ns = t + int(rng.uniform(30, 90) * NS)
            ltp = _bs(spot, c.strike, years, c.call) * factor
            frames.append((t, _packet(c.token, ltp, c.volume, c.published)))
        if len(frames) > 2_000:
            book.process(frames)
            frames = []
    book.process(frames)
    book.advance_to(end_ns)
    return session


@dataclass
class Score:
    """What one shape scored over its sessions."""

    quiet_snapshots: int = 0
    quiet_classified: int = 0
    events: int = 0
    # An event's strong bars: its 2-min OI change (as published) ≥ 10 % and its premium moved
    # ≥ 5 % the matching way over the same two minutes (the tape's, whatever the spot did).
    events_caught_at_10pct: int = 0  # classified right at its first strong bar
    events_caught: int = 0  # classified right at some strong bar
    strong_snapshots: int = 0
    strong_classified: int = 0
    misses: list[str] = field(default_factory=list)
    by_min_n: list[int] = field(default_factory=lambda: [0] * 60)
    by_min_c: list[int] = field(default_factory=lambda: [0] * 60)

    @property
    def quiet_rate(self) -> float:
        return self.quiet_classified / max(1, self.quiet_snapshots)


def score(session: Session, score: Score, horizon_bars: int = 24) -> None:
    """Add one session's quiet-contract class rate and event detections to ``score``."""
    event_rows = {e.row for e in session.events}
    for row, classes in session.classes.items():
        if row in event_rows:
            continue
        score.quiet_snapshots += len(classes)
        score.quiet_classified += sum(c != "NONE" for c in classes)
        for i, c in enumerate(classes):
            m = (session.bar_ends[i] - T0) // (60 * NS)
            score.by_min_n[m] += 1
            score.by_min_c[m] += c != "NONE"
    for ev in session.events:
        score.events += 1
        pub = session.published[ev.row]
        classes = session.classes[ev.row]
        px = session.premium[ev.row]
        oi_dir, px_dir = KINDS[ev.kind]
        strong = [
            i
            for i in range(horizon_bars, len(pub))
            if session.bar_ends[i] >= ev.start_ns
            and oi_dir * (pub[i] / pub[i - horizon_bars] - 1) >= 0.10
            and px_dir * (px[i] / px[i - horizon_bars] - 1) >= 0.05
        ]
        if not strong:
            score.misses.append(f"{ev.kind}: never a 10 % OI change with a 5 % premium move")
            continue
        right = [classes[i] == ev.kind for i in strong]
        score.strong_snapshots += len(strong)
        score.strong_classified += sum(right)
        score.events_caught_at_10pct += right[0]
        score.events_caught += any(right)
        if not right[0]:
            score.misses.append(
                f"{ev.kind} oi {ev.oi_move:.2f} px {ev.px_move:.2f}: {classes[strong[0]]} "
                f"at the first 10 % bar"
            )
