"""Read-only views of the chain for other stages: quotes for the router and the paper broker."""

from __future__ import annotations

from smartflow.chain.state import ChainBook
from smartflow.core.messages import Quote
from smartflow.kernels import layout as L


class ChainMarketView:
    """``MarketView`` over a ``ChainBook``: token → current quote (copied, never a view)."""

    def __init__(self, book: ChainBook) -> None:
        self.book = book
        self._where = {
            token: (c, row) for c in book.chains for token, row in c.row_by_token.items()
        }

    def quote(self, token: str) -> Quote | None:
        """The contract's quote, or None when unknown or never ticked."""
        hit = self._where.get(token)
        if hit is None:
            return None
        c, row = hit
        # One conversion of the row to Python ints (the entry path reads it on a cold cache).
        q: list[int] = c.q[row].tolist()
        if q[L.Q_TICKS] == 0:
            return None
        bid_px, bid_qty = q[L.Q_BID_PX : L.Q_BID_PX + 5], q[L.Q_BID_QTY : L.Q_BID_QTY + 5]
        ask_px, ask_qty = q[L.Q_ASK_PX : L.Q_ASK_PX + 5], q[L.Q_ASK_QTY : L.Q_ASK_QTY + 5]
        return Quote(
            bid=q[L.Q_BID_PX] / 100,
            ask=q[L.Q_ASK_PX] / 100,
            ltp=q[L.Q_LTP] / 100,
            tick=max(1, q[L.Q_TICK]) / 100,
            bids=tuple((px / 100, qty) for px, qty in zip(bid_px, bid_qty, strict=True) if px > 0),
            asks=tuple((px / 100, qty) for px, qty in zip(ask_px, ask_qty, strict=True) if px > 0),
            seq=q[L.Q_TICKS],
        )

    def theta(self, token: str) -> float:
        """The contract's theta (rupees per calendar day, as last priced); NaN when unknown."""
        hit = self._where.get(token)
        if hit is None:
            return float("nan")
        c, row = hit
        return float(c.f[row, L.F_THETA])
