"""What the feed should stream, derived from the chain: index, future, and ATM ± N options.

Start-up subscribes each chain's index and future. The first price (the index, else the future)
centres the strike window; afterwards the window re-centres when spot has moved ``k`` strikes
from its centre, and the feed receives only the subscribe/unsubscribe delta. If no index tick has
arrived ``spot_fallback_s`` after the feed is up, the bare NSE index code (26000) is subscribed
as well (angel-smartapi.md §2.9); whichever form streams lands on the same chain row. With
``[market] expiries = 2`` the next expiry's ATM ± N options follow the near chain's centre (its
index and future are the near chain's); ``Config`` refuses a set that exceeds the feed's budget
(1000 tokens a socket, angel-smartapi.md §2.6).
"""

from __future__ import annotations

import math
from typing import Any

from smartflow.chain.state import ChainBook, ChainState
from smartflow.config import MarketConfig
from smartflow.feed.session import FeedSession, Pair
from smartflow.instruments.universe import StrikeWindow
from smartflow.kernels import layout as L


class SubscriptionManager:
    """Keeps ``FeedSession`` subscriptions in step with each chain's window."""

    def __init__(
        self, book: ChainBook, feed: FeedSession, market: MarketConfig, rate: float, log: Any
    ) -> None:
        self.book = book
        self.rate = rate
        self.feed = feed
        self.cfg = market
        self.log = log
        self.windows = {
            c.root: StrikeWindow(c.universe, market.strikes_each_side, market.recenter_strikes)
            for c in book.chains
        }
        self.next_windows = {
            c.root: StrikeWindow(c.universe, market.strikes_each_side, market.recenter_strikes)
            for c in book.followers
        }
        self.fallback_on: set[str] = set()
        self.recenters = 0
        self._ready_ns = 0

    def _base(self, c: ChainState) -> set[Pair]:
        u = c.universe
        pairs: set[Pair] = {(u.index.exchange_type, u.index.token)}
        if u.future is not None:
            pairs.add((u.future.exchange_type, u.future.token))
        if c.root in self.fallback_on and u.index_fallback_token:
            pairs.add((u.index.exchange_type, u.index_fallback_token))
        return pairs

    def wanted(self) -> set[Pair]:
        """Every pair that should be streamed now."""
        out: set[Pair] = set()
        for c in self.book.chains:
            out |= self._base(c)
            out |= self.windows[c.root].tokens()
        for w in self.next_windows.values():
            out |= w.tokens()
        return out

    def start(self, now_ns: int) -> None:
        """Initial subscriptions (index and future of every chain)."""
        self._ready_ns = now_ns
        self.feed.set_subscriptions(self.wanted())

    def _centre_paise(self, c: ChainState, now_ns: int) -> int:
        """Spot, or — once the index has had its chance — the future carried back to spot."""
        spot = c.spot_paise()
        if spot > 0:
            return spot
        fut = int(c.q[L.ROW_FUTURE, L.Q_LTP])
        waited = now_ns - self._ready_ns > self.cfg.spot_fallback_s * 2e9
        if fut > 0 and waited and c.universe.future is not None:
            t_yrs = max(0.0, (c.universe.future.expiry_ns - now_ns) / 1e9 / (365 * 86400))
            return round(fut * math.exp(-self.rate * t_yrs))
        return 0

    def on_tick(self, now_ns: int) -> None:
        """Re-centre windows and switch on index fallbacks as the chain moves."""
        changed = False
        for c in self.book.chains:
            centre_px = self._centre_paise(c, now_ns)
            nxt = self.next_windows.get(c.root)
            if centre_px > 0 and nxt is not None and nxt.update(centre_px):
                changed = True
            if centre_px > 0 and self.windows[c.root].update(centre_px):
                changed = True
                self.recenters += 1
                self.log.info(
                    "subscriptions.window",
                    underlying=c.root,
                    atm=c.universe.strikes_paise[self.windows[c.root].center or 0] / 100,
                    strikes=len(self.windows[c.root].strikes),
                )
            if (
                c.root not in self.fallback_on
                and c.universe.index_fallback_token
                and c.q[L.ROW_INDEX, L.Q_TICKS] == 0
                and now_ns - self._ready_ns > self.cfg.spot_fallback_s * 1e9
            ):
                self.fallback_on.add(c.root)
                changed = True
                self.log.warning(
                    "subscriptions.index_fallback",
                    underlying=c.root,
                    token=c.universe.index_fallback_token,
                    waited_s=self.cfg.spot_fallback_s,
                )
        if changed:
            added, removed = self.feed.set_subscriptions(self.wanted())
            self.log.info("subscriptions.delta", added=len(added), removed=len(removed))
