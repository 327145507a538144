"""What an index-option fill costs on an Indian exchange besides its premium (``[costs]``).

Per fill, on its premium turnover ``quantity × price`` (rupees):

- brokerage: ``brokerage_per_order`` per executed order or ``brokerage_pct`` of the order's
  turnover, whichever is lower. It is charged per order, not per fill: a fill pays the order's
  brokerage so far minus what the order's earlier fills already paid, so partial fills add up to
  exactly one order's brokerage;
- STT: ``stt_sell_pct`` of the turnover, sell side only;
- exchange transaction charge: ``exchange_pct_nse`` (NFO) or ``exchange_pct_bse`` (BFO), both sides;
- SEBI turnover fee: ``sebi_per_crore`` per crore (10⁷ rupees) of turnover, both sides;
- stamp duty: ``stamp_buy_pct`` of the turnover, buy side only;
- GST: ``gst_pct`` of brokerage + exchange charge + SEBI fee.

Each component is rounded to paise (half up) on its own, and GST is taken on the rounded
components, as a contract note shows them. Defaults and sources: README, "Backtests".
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from smartflow.config import CostsConfig
from smartflow.journal.store import FillCharges, PositionRow


CRORE = 10_000_000.0
BSE_SEGMENTS = ("BFO", "BSE")


def paise(x: float) -> float:
    """Rupees rounded to paise, half up as contract notes do (``round`` goes half-even)."""
    return float(Decimal(repr(x)).quantize(Decimal("0.01"), ROUND_HALF_UP))


class ChargeModel:
    """Charges of fills under one ``[costs]`` section."""

    def __init__(self, cfg: CostsConfig) -> None:
        self.cfg = cfg

    def brokerage(self, turnover: float) -> float:
        """Brokerage of an order with this much premium turnover, unrounded."""
        c = self.cfg
        return min(c.brokerage_per_order, turnover * c.brokerage_pct / 100)

    def fill(
        self, exchange: str, side: str, quantity: int, price: float, order_turnover: float = 0.0
    ) -> FillCharges:
        """Charges of one fill; ``order_turnover`` is what the order's earlier fills traded."""
        c = self.cfg
        if not c.enabled or quantity <= 0:
            return FillCharges()
        turnover = quantity * price
        brokerage = paise(
            self.brokerage(order_turnover + turnover) - self.brokerage(order_turnover)
        )
        pct = c.exchange_pct_bse if exchange.upper() in BSE_SEGMENTS else c.exchange_pct_nse
        exch = paise(turnover * pct / 100)
        sebi = paise(turnover * c.sebi_per_crore / CRORE)
        return FillCharges(
            brokerage=brokerage,
            stt=paise(turnover * c.stt_sell_pct / 100) if side == "SELL" else 0.0,
            exchange=exch,
            sebi=sebi,
            stamp=paise(turnover * c.stamp_buy_pct / 100) if side == "BUY" else 0.0,
            gst=paise((brokerage + exch + sebi) * c.gst_pct / 100),
        )


def pnl_breakdown(
    positions: list[PositionRow], realised: float, unrealised: float
) -> dict[str, Any]:
    """Gross and net P&L of the day's positions: net = realised + unrealised − charges."""
    charges = round(sum(p.charges for p in positions), 2)
    gross = realised + unrealised
    return {
        "gross_pnl": round(gross, 2),
        "charges": charges,
        "net_pnl": round(gross - charges, 2),
    }
