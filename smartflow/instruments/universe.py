"""Chain universe per underlying: expiry, strikes, index and future, and the subscribed window.

``select`` picks, for one root (``NIFTY`` on NFO, ``SENSEX`` on BFO, …), the nearest expiry that
has not yet expired at start (or a configured one), every strike listed for it, the index spot
token on the cash segment and the nearest index future. ``StrikeWindow`` keeps ATM ± N strikes
subscribed and re-centres once spot has moved ``k`` strikes away from the window's centre, as a
subscribe/unsubscribe delta: the chain keeps a slot for every listed strike, so re-centring never
loses a contract's history.
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass, field

from smartflow.core.errors import ConfigError
from smartflow.instruments.master import Instrument, ScripMaster


# Bare NSE index codes that older clients subscribe instead of the 999… scrip-master tokens
# (angel-smartapi.md §2.9): used when no tick arrives for the prefixed token.
BARE_INDEX_TOKENS = {
    "99926000": "26000",
    "99926009": "26009",
    "99926037": "26037",
    "99926074": "26074",
}
_FO_SEGMENT_PREFERENCE = ("NFO", "BFO")


@dataclass
class ChainUniverse:
    """Everything listed for one underlying and expiry."""

    root: str
    expiry: dt.date
    expiry_ns: int
    segment: str
    exchange_type: int
    index: Instrument
    future: Instrument | None
    strikes_paise: list[int]
    calls: dict[int, Instrument]
    puts: dict[int, Instrument]
    lot_size: int
    tick_paise: int
    index_fallback_token: str | None = None

    @property
    def options(self) -> list[Instrument]:
        """Every option of the expiry, ordered by (strike, CE before PE)."""
        out = []
        for k in self.strikes_paise:
            for side in (self.calls, self.puts):
                inst = side.get(k)
                if inst is not None:
                    out.append(inst)
        return out

    def atm_index(self, spot_paise: int) -> int:
        """Index in ``strikes_paise`` of the strike nearest ``spot_paise``."""
        ks = self.strikes_paise
        i = bisect.bisect_left(ks, spot_paise)
        if i == 0:
            return 0
        if i == len(ks):
            return len(ks) - 1
        return i if ks[i] - spot_paise < spot_paise - ks[i - 1] else i - 1


def _fo_segment(candidates: list[Instrument], root: str) -> str:
    segments = {i.segment for i in candidates}
    for seg in _FO_SEGMENT_PREFERENCE:
        if seg in segments:
            return seg
    if not segments:
        raise ConfigError(f"market.underlyings: no index options for {root!r} in the scrip master")
    return sorted(segments)[0]


def _options(mine: list[Instrument], root: str) -> tuple[list[Instrument], str]:
    options_all = [i for i in mine if i.kind in ("CE", "PE")]
    segment = _fo_segment(options_all, root)
    return [i for i in options_all if i.segment == segment], segment


def _live_expiries(options: list[Instrument], now_ns: int) -> list[dt.date]:
    return sorted({i.expiry for i in options if i.expiry is not None and i.expiry_ns > now_ns})


def select_next(master: ScripMaster, near: ChainUniverse, now_ns: int) -> ChainUniverse:
    """The chain of the expiry right after ``near``'s (``[market] expiries = 2``).

    Raises:
        ConfigError: the scrip master lists no later expiry of the root.
    """
    mine = [i for i in master.instruments if i.root == near.root]
    later = [e for e in _live_expiries(_options(mine, near.root)[0], now_ns) if e > near.expiry]
    if not later:
        raise ConfigError(
            f"market.expiries: {near.root} lists no expiry after {near.expiry.isoformat()}"
        )
    return select(master, near.root, now_ns, later[0])


def select(
    master: ScripMaster, root: str, now_ns: int, expiry: dt.date | None = None
) -> ChainUniverse:
    """Choose the chain for ``root`` at time ``now_ns``.

    Raises:
        ConfigError: the root, the expiry or the index is not in the scrip master.
    """
    mine = [i for i in master.instruments if i.root == root]
    options_all, segment = _options(mine, root)
    live_expiries = _live_expiries(options_all, now_ns)
    if not live_expiries:
        raise ConfigError(f"market: every {root} expiry in the scrip master has passed")
    if expiry is None:
        expiry = live_expiries[0]
    elif expiry not in live_expiries:
        raise ConfigError(
            f"market.expiry: {root} has no live expiry {expiry.isoformat()} "
            f"(listed: {', '.join(e.isoformat() for e in live_expiries[:6])})"
        )
    chosen = [i for i in options_all if i.expiry == expiry]
    calls = {i.strike_paise: i for i in chosen if i.kind == "CE"}
    puts = {i.strike_paise: i for i in chosen if i.kind == "PE"}
    strikes = sorted(set(calls) | set(puts))
    indices = [i for i in mine if i.kind == "INDEX"]
    if not indices:
        raise ConfigError(f"market.underlyings: no index row (AMXIDX) for {root!r}")
    index = sorted(indices, key=lambda i: i.token)[0]
    futures = sorted(
        (i for i in mine if i.kind == "FUT" and i.segment == segment and i.expiry_ns > now_ns),
        key=lambda i: i.expiry_ns,
    )
    sample = chosen[0]
    return ChainUniverse(
        root=root,
        expiry=expiry,
        expiry_ns=sample.expiry_ns,
        segment=segment,
        exchange_type=sample.exchange_type,
        index=index,
        future=futures[0] if futures else None,
        strikes_paise=strikes,
        calls=calls,
        puts=puts,
        lot_size=sample.lot_size,
        tick_paise=max(1, sample.tick_paise),
        index_fallback_token=BARE_INDEX_TOKENS.get(index.token),
    )


@dataclass
class StrikeWindow:
    """ATM ± ``each_side`` strikes, re-centred when spot moves ``recenter_k`` strikes."""

    universe: ChainUniverse
    each_side: int
    recenter_k: int
    center: int | None = None
    strikes: set[int] = field(default_factory=set)

    def _strikes_around(self, center: int) -> set[int]:
        ks = self.universe.strikes_paise
        lo = max(0, center - self.each_side)
        hi = min(len(ks), center + self.each_side + 1)
        return set(ks[lo:hi])

    def update(self, spot_paise: int) -> bool:
        """Centre (or re-centre) on ``spot_paise``; True when the window changed."""
        atm = self.universe.atm_index(spot_paise)
        if self.center is not None and abs(atm - self.center) < self.recenter_k:
            return False
        self.center = atm
        new = self._strikes_around(atm)
        changed = new != self.strikes
        self.strikes = new
        return changed

    def tokens(self) -> set[tuple[int, str]]:
        """(exchange type, token) of every option in the window."""
        u = self.universe
        out = set()
        for k in self.strikes:
            for side in (u.calls, u.puts):
                inst = side.get(k)
                if inst is not None:
                    out.add((inst.exchange_type, inst.token))
        return out
