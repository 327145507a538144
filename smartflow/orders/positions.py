"""Today's positions by contract: held quantity, average entry, realised and marked P&L, exposure.

The router books every fill here once (the journal deduplicates fills first); the strategy and
the risk guard read it. Quantities are units, lots are derived from each contract's lot size.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from smartflow.core.messages import OrderIntent
from smartflow.journal.store import OrderRow, PositionRow
from smartflow.orders.guard import Exposure
from smartflow.orders.port import MarketView


class Positions:
    """Net position per token, with the contract facts needed to express it in lots."""

    def __init__(self, market: MarketView) -> None:
        self.market = market
        self.rows: dict[str, PositionRow] = {}  # today's, by token
        self._contracts: dict[str, tuple[int, str]] = {}  # token -> (lot size, exchange)

    def note_contract(self, token: str, lot_size: int, exchange: str) -> None:
        """Remember ``token``'s lot size and exchange (from an intent or a journalled order)."""
        self._contracts[token] = (lot_size, exchange)

    def contract(self, token: str) -> tuple[int, str]:
        """(lot size, exchange) of ``token``.

        Raises:
            KeyError: no order of ``token`` was ever seen.
        """
        return self._contracts[token]

    def load(self, rows: Iterable[PositionRow]) -> None:
        """Adopt journalled positions (restart)."""
        for pos in rows:
            self.rows[pos.token] = pos

    def held(self, token: str) -> int:
        """Signed net quantity of ``token`` in units (0 when flat or never traded)."""
        pos = self.rows.get(token)
        return pos.net_quantity if pos is not None else 0

    def net_lots(self, token: str) -> int:
        """Open position of ``token`` in lots."""
        pos = self.rows.get(token)
        if pos is None or pos.net_quantity == 0:
            return 0
        return pos.net_quantity // self._contracts.get(token, (1, ""))[0]

    def entry_price(self, token: str) -> float:
        """Average price of the open position in ``token`` (0 when flat)."""
        pos = self.rows.get(token)
        return pos.average_price if pos is not None and pos.net_quantity else 0.0

    def long(self) -> list[PositionRow]:
        """Positions held long (what a kill switch flattens)."""
        return [p for p in self.rows.values() if p.net_quantity > 0]

    def open_quantities(self) -> dict[str, int]:
        """Token → net quantity of every non-flat position."""
        return {t: p.net_quantity for t, p in self.rows.items() if p.net_quantity}

    def apply_fill(self, row: OrderRow, quantity: int, price: float, now_ns: int) -> PositionRow:
        """Move ``row``'s position by one fill of ``quantity`` at ``price``; return it."""
        pos = self.rows.get(row.token)
        if pos is None:
            pos = self.rows[row.token] = PositionRow(
                day=row.day, token=row.token, symbol=row.symbol, underlying=row.underlying
            )
        pos.apply_fill(row.side, quantity, price)
        pos.updated_ns = now_ns
        return pos

    def day_pnl(self) -> tuple[float, float]:
        """(realised, marked-to-market unrealised) P&L of today's positions, rupees.

        A long is marked at the bid and a short at the ask (what closing it would get); without
        that side, at the LTP; with no positive price at all, at its average price (no P&L claimed).
        """
        realised = unrealised = 0.0
        for pos in self.rows.values():
            realised += pos.realised_pnl
            if pos.net_quantity:
                q = self.market.quote(pos.token)
                mark = (q.bid if pos.net_quantity > 0 else q.ask) if q else 0.0
                if not mark > 0:
                    mark = q.ltp if q else 0.0
                if not mark > 0:
                    # A quote with no usable price is no evidence of a loss: marking at 0 would
                    # show the whole premium lost and could trip the daily-loss kill.
                    mark = pos.average_price
                unrealised += (mark - pos.average_price) * pos.net_quantity
        return realised, unrealised

    def exposure(self, intent: OrderIntent, orders: Collection[OrderRow]) -> Exposure:
        """Positions and in-flight ``orders`` (the non-terminal ones) relevant to ``intent``."""
        open_tokens = {t for t, p in self.rows.items() if p.net_quantity != 0}
        open_tokens |= {o.token for o in orders if o.side == "BUY"}
        lots_contract = self.net_lots(intent.token) + pending_lots(orders, intent.token)
        lots_under = 0
        for token in open_tokens:
            if self._underlying_of(token, orders) == intent.underlying:
                lots_under += self.net_lots(token) + pending_lots(orders, token)
        realised, unrealised = self.day_pnl()
        return Exposure(
            open_positions=len(open_tokens),
            lots_in_contract=lots_contract,
            lots_in_underlying=lots_under,
            day_pnl=realised + unrealised,
        )

    def _underlying_of(self, token: str, orders: Collection[OrderRow]) -> str:
        pos = self.rows.get(token)
        if pos is not None:
            return pos.underlying
        for o in orders:
            if o.token == token:
                return o.underlying
        return ""


def pending_lots(orders: Iterable[OrderRow], token: str) -> int:
    """Lots of unfilled BUY quantity among ``orders`` for ``token``."""
    return sum(
        (o.quantity - o.filled_quantity) // max(1, o.lot_size)
        for o in orders
        if o.token == token and o.side == "BUY"
    )
