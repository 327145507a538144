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
        q = c.q[row]
        if q[L.Q_TICKS] == 0:
            return None
        levels = q[L.Q_BID_PX : L.Q_BID_PX + 5].tolist(), q[L.Q_BID_QTY : L.Q_BID_QTY + 5].tolist()
        asks = q[L.Q_ASK_PX : L.Q_ASK_PX + 5].tolist(), q[L.Q_ASK_QTY : L.Q_ASK_QTY + 5].tolist()
        return Quote(
            bid=int(q[L.Q_BID_PX]) / 100,
            ask=int(q[L.Q_ASK_PX]) / 100,
            ltp=int(q[L.Q_LTP]) / 100,
            tick=max(1, int(q[L.Q_TICK])) / 100,
            bids=tuple((px / 100, qty) for px, qty in zip(*levels, strict=True) if px > 0),
            asks=tuple((px / 100, qty) for px, qty in zip(*asks, strict=True) if px > 0),
            seq=int(q[L.Q_TICKS]),
        )

    def theta(self, token: str) -> float:
        """The contract's theta (rupees per calendar day, as last priced); NaN when unknown."""
        hit = self._where.get(token)
        if hit is None:
            return float("nan")
        c, row = hit
        return float(c.f[row, L.F_THETA])
