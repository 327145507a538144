"""Seeded simulated sessions run straight through the analytics (no sockets) for detector tests.

The frames are exactly what the simulator's server would send to a client subscribed to every
instrument, stamped with the simulated time as their receive time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from smartflow.analytics.detectors import SmartMoneyDetector
from smartflow.chain.state import ChainBook, ChainState, FlowParams
from smartflow.config import Config, SimConfig
from smartflow.core.messages import SmartMoneySignal
from smartflow.instruments.master import parse
from smartflow.instruments.universe import select
from smartflow.sim.market import Market
from smartflow.sim.server import session_start


@dataclass
class Session:
    market: Market
    book: ChainBook
    detectors: dict[str, SmartMoneyDetector]
    signals: list[SmartMoneySignal] = field(default_factory=list)
    every_bar: list[SmartMoneySignal] = field(default_factory=list)
    contract_log: list[tuple[int, str, dict[str, object]]] = field(default_factory=list)


def run_session(
    sim: SimConfig,
    seconds: float,
    cfg: Config | None = None,
    roots: tuple[str, ...] = ("NIFTY",),
    start_ist: str = "10:00",
    track: set[str] | None = None,
) -> Session:
    """Simulate ``seconds`` of market and feed every packet through chain + detectors."""
    cfg = cfg or Config(sim=sim)
    start_ns, day = session_start(start_ist)
    market = Market(sim, list(roots), start_ns, day)
    master = parse(msgspec.json.encode(market.scrip_master()), set(roots))
    chains = [
        ChainState(
            select(master, r, start_ns),
            cfg.model,
            FlowParams(
                whale_value=cfg.detectors.whale_value_rupees,
                whale_multiple=cfg.detectors.whale_volume_multiple,
            ),
        )
        for r in roots
    ]
    book = ChainBook(chains, cfg.detectors)
    t = cfg.detectors.thresholds()
    dets = {c.root: SmartMoneyDetector(c, t, cfg.detectors.bar_seconds) for c in chains}
    s = Session(market, book, dets)

    def per_bar(end_ns: int, seq: int, _closed_at: int) -> None:
        for det in dets.values():
            sig = det.on_bar(end_ns, seq)
            if det.material:
                s.signals.append(sig)
            s.every_bar.append(sig)
            if track:
                for token in track:
                    row = det.chain.row_by_token.get(token)
                    if row is not None:
                        s.contract_log.append((end_ns, token, det.contract_states(row)))

    book.on_close = per_bar
    step = 1_000_000_000
    end = start_ns + int(seconds * 1e9)
    t_ns = start_ns
    while t_ns < end:
        t_ns = min(end, t_ns + step)
        packets = market.advance(t_ns)
        book.process([(int.from_bytes(f[35:43], "little") * 1_000_000, f) for _, f in packets])
    book.advance_to(end)
    return s


def write_tape(
    sim: SimConfig,
    seconds: float,
    path: str,
    roots: tuple[str, ...] = ("NIFTY",),
    start_ist: str = "10:00",
) -> tuple[Market, bytes]:
    """Record ``seconds`` of the simulated market (every instrument) to a tape; return the
    market and its scrip master JSON."""
    from smartflow.tape.format import TapeWriter

    start_ns, day = session_start(start_ist)
    market = Market(sim, list(roots), start_ns, day)
    master = msgspec.json.encode(market.scrip_master())
    end = start_ns + int(seconds * 1e9)
    t_ns = start_ns
    with TapeWriter(path, {"sim_seed": sim.seed}) as tape:
        while t_ns < end:
            t_ns = min(end, t_ns + 1_000_000_000)
            for _, frame in market.advance(t_ns):
                tape.write(int.from_bytes(frame[35:43], "little") * 1_000_000, frame)
    return market, master
