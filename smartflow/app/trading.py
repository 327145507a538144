"""Trading composition: strategy → risk → router → broker → journal.

Both the daemon and replay build their trading side here (``Pipeline.trade``), so paper trading
behaves the same in both: the pipeline hands each bar's signals to ``on_bar``, exits and paper
matching run after every batch of packets, and the router does the I/O (in its own task live,
inline in replay).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from smartflow.analytics.flow import Confluence
from smartflow.chain.state import ChainBook
from smartflow.chain.view import ChainMarketView
from smartflow.config import Config
from smartflow.core.clock import Clock
from smartflow.core.messages import OrderIntent, SmartMoneySignal
from smartflow.core.timeutil import ist_date
from smartflow.journal.store import Journal
from smartflow.orders.charges import ChargeModel, pnl_breakdown
from smartflow.orders.guard import RiskGuard
from smartflow.orders.paper import PaperBroker
from smartflow.orders.port import BrokerPort
from smartflow.orders.router import OrderRouter
from smartflow.strategy.entries_exits import Contract, Strategy


class Trading:
    """The order side of one process."""

    def __init__(
        self,
        cfg: Config,
        book: ChainBook,
        clock: Clock,
        journal: Journal,
        log: Any,
        broker: BrokerPort | None = None,
        speed: float = 1.0,
        tick_ns: Callable[[], int] = lambda: 0,
    ) -> None:
        self.cfg = cfg
        self.book = book
        self.clock = clock
        self.journal = journal
        self.market = ChainMarketView(book)
        self.guard = RiskGuard(cfg.risk, cfg.market.underlyings)
        self.paper: PaperBroker | None = None
        if broker is None:
            self.paper = PaperBroker(
                cfg.orders, self.market, clock, log.bind(stage="paper"), seed=cfg.sim.seed
            )
            broker = self.paper
        self.broker = broker
        self.router = OrderRouter(
            cfg.orders,
            cfg.risk,
            self.guard,
            broker,
            journal,
            self.market,
            clock,
            log.bind(stage="orders"),
            speed=speed,
        )
        self.router.charges = ChargeModel(cfg.costs)
        self._contracts = self._contract_table()
        self.entry_gate: Callable[[OrderIntent], bool] | None = None
        """Consulted before an entry reaches the router (alerts: pause, manual approval); it can
        only hold an entry back, and whatever it lets through passes every risk check."""
        self.strategy = Strategy(
            cfg.strategy,
            self._contracts.get,
            self.router,
            self.market,
            self.submit,
            log.bind(stage="strategy"),
            tick_ns=tick_ns,
            net_pnl=self.net_pnl,
            theta=self.market.theta,
        )

    def submit(self, intent: OrderIntent) -> bool:
        """The strategy's way to the router: entries pass the entry gate first."""
        if (
            intent.purpose == "ENTRY"
            and self.entry_gate is not None
            and not self.entry_gate(intent)
        ):
            return False
        return self.router.submit(intent)

    def _contract_table(self) -> dict[str, Contract]:
        out = {}
        for c in self.book.chains:
            for inst in c.universe.options:
                out[inst.token] = Contract(
                    token=inst.token,
                    symbol=inst.symbol,
                    exchange=inst.segment,
                    lot_size=inst.lot_size,
                    underlying=c.root,
                    option_type=inst.kind,
                    expiry=c.universe.expiry,
                )
        return out

    def on_bar(
        self, signals: Sequence[SmartMoneySignal], confluence: Mapping[str, Confluence]
    ) -> None:
        """A bar's signals, one per underlying, with the flow's confluence of the same bar."""
        if self.cfg.flow.size_from_flow:
            for underlying, conf in confluence.items():
                self.strategy.set_size_multiplier(underlying, conf.size_multiplier)
        for signal in signals:
            self.strategy.on_signal(signal)

    def net_pnl(self) -> float:
        """Today's P&L after charges, marked to market (the daily target and loss stop)."""
        realised, unrealised = self.router.day_pnl()
        return realised + unrealised - sum(p.charges for p in self.router.positions.values())

    def pnl(self) -> dict[str, Any]:
        """Today's P&L gross and net of charges (the API's status)."""
        realised, unrealised = self.router.day_pnl()
        return pnl_breakdown(list(self.router.positions.values()), realised, unrealised)

    def after_batch(self, now_ns: int) -> None:
        """After each batch of packets: paper matching, then exit checks."""
        if self.paper is not None:
            self.paper.on_market(now_ns)
        self.strategy.on_market(now_ns)

    async def restore(self) -> dict[str, int]:
        """Before any new order: journal → paper book → router reconciliation → strategy."""
        if self.paper is not None:
            self.paper.restore(self.journal.orders(ist_date(self.clock.now_ns()).isoformat()))
        counts = await self.router.restore()
        for token, pos in self.router.positions.items():
            if pos.net_quantity > 0:
                contract = self._contracts.get(token)
                if contract is not None:
                    self.strategy.adopt(token, 1 if contract.option_type == "CE" else -1)
        return counts
