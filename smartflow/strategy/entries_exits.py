"""Seed Phase 5: SmartMoneySignals → order intents (entries, exits, sizing).

Entries (on each bar's signal, only when ``can_trade``):
    AGGRESSIVE when a fresh position is detected, NORMAL when ``oi_conviction_score`` exceeds
    ``normal_entry_conviction``, otherwise skip. Never a second entry on a contract already held
    or with an order in flight, none within ``cooldown_s`` of exiting it, none after the day's
    cut-off or on too few days to expiry.

Sizing:
    lots = round(base × (0.5 + conviction)), base = ``aggressive_lots`` or ``normal_lots``, then
    capped by a fractional Kelly stake: with p = smart-money probability and b = target ÷ stop
    (reward to risk), f* = p − (1 − p) ÷ b; no trade when f* ≤ 0; otherwise at most
    ``kelly_fraction`` × f* × ``capital_rupees`` of premium, and at most ``max_lots_per_signal``.
    The flow recommendation's size multiplier (``set_size_multiplier``) scales the conviction
    lots first: 0 (HOLD, the flow contradicts the signal) skips the trade, anything else keeps
    at least one lot; the Kelly and per-signal caps still apply after it.

Exits (checked on every batch of ticks for each held contract, marked at the best bid):
    target = entry × (1 + target % × (1 + fresh-position strength)); stop = entry × (1 − stop % ×
    (1 − trap probability at entry)) — a riskier entry gets a tighter stop; time: from
    ``exit_cutoff_ist``, or ``expiry_day_cutoff_ist`` on expiry day, before theta crush; contrary
    signal: the opposite recommendation with probability ≥ ``contrary_min_probability``.
    Then the rules of strategy/exits.py (trailing stop, break-even, theta, daily target and loss
    stop, re-entry cap), each off unless configured.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from smartflow.config import StrategyConfig
from smartflow.core.messages import OrderIntent, Quote, SmartMoneySignal
from smartflow.core.timeutil import NS_PER_S, ist_datetime, parse_hhmm
from smartflow.strategy.exits import ExitRules


class PositionBook(Protocol):
    """What the strategy reads of the router: held quantity and orders in flight."""

    def net_lots(self, token: str) -> int:
        """Held lots of ``token``."""
        ...

    def open_orders(self, token: str | None = None) -> list[Any]:
        """Orders not yet final."""
        ...

    def in_flight(self, token: str) -> bool:
        """An intent queued or an order not yet final for ``token``."""
        ...

    def entry_price(self, token: str) -> float:
        """Average price of the open position (0 when flat)."""
        ...


class Quotes(Protocol):
    """Current quotes."""

    def quote(self, token: str) -> Quote | None:
        """Quote of ``token``."""
        ...


@dataclass(frozen=True)
class Contract:
    """What an intent needs to know about a contract."""

    token: str
    symbol: str
    exchange: str
    lot_size: int
    underlying: str
    option_type: str
    expiry: dt.date


@dataclass
class Held:
    """Exit plan of one held contract, fixed at entry."""

    contract: Contract
    target_pct: float
    stop_pct: float
    direction: int  # +1 bought a call (bullish), -1 bought a put
    peak: float = 0.0
    """Highest mark since entry (trailing stop, break-even)."""


class Strategy:
    """Turns signals into entries and watches held contracts for exits."""

    def __init__(
        self,
        cfg: StrategyConfig,
        contracts: Callable[[str], Contract | None],
        book: PositionBook,
        quotes: Quotes,
        submit: Callable[[OrderIntent], bool],
        log: Any,
        tick_ns: Callable[[], int] = lambda: 0,
        net_pnl: Callable[[], float] = lambda: 0.0,
        theta: Callable[[str], float] = lambda _token: math.nan,
    ) -> None:
        self.cfg = cfg
        self.net_pnl = net_pnl
        self.theta = theta
        self.rules = ExitRules(cfg)
        self.tick_ns = tick_ns
        self.contracts = contracts
        self.book = book
        self.quotes = quotes
        self.submit = submit
        self.log = log
        self.cutoff = parse_hhmm(cfg.exit_cutoff_ist)
        self.expiry_cutoff = parse_hhmm(cfg.expiry_day_cutoff_ist)
        self.held: dict[str, Held] = {}
        self.last_exit_ns: dict[str, int] = {}
        self.latest: dict[str, SmartMoneySignal] = {}
        self.size_multiplier: dict[str, float] = {}
        # Exit intents queued but not yet orders: the router de-duplicates exits against the
        # quantity already in flight; this only keeps one batch after another from re-queueing.
        self._exit_queued_ns: dict[str, int] = {}
        self._n = 0
        self.entries = 0
        self.exits = 0

    # ---- helpers ------------------------------------------------------------------------

    def _intent_id(self, kind: str, now_ns: int) -> str:
        self._n += 1
        return f"{kind}-{now_ns}-{self._n}"

    def past_cutoff(self, now_ns: int, expiry: dt.date) -> bool:
        """True once new risk must not be taken and held positions must go."""
        return self._past_cutoff(ist_datetime(now_ns), expiry)

    def _past_cutoff(self, local: dt.datetime, expiry: dt.date) -> bool:
        if local.date() >= expiry and local.time() >= self.expiry_cutoff:
            return True
        return local.time() >= self.cutoff

    def set_size_multiplier(self, underlying: str, multiplier: float) -> None:
        """The flow recommendation's size multiplier for ``underlying`` (0 = hold off)."""
        self.size_multiplier[underlying] = multiplier

    def size(
        self, signal: SmartMoneySignal, aggressive: bool, premium: float, lot_size: int
    ) -> int:
        """Lots for an entry (0: do not trade); see the module docs."""
        cfg = self.cfg
        base = cfg.aggressive_lots if aggressive else cfg.normal_lots
        lots = round(base * (0.5 + signal.oi_conviction_score))
        mult = self.size_multiplier.get(signal.underlying, 1.0)
        if mult <= 0:
            return 0
        lots = max(1, round(lots * mult))
        p = signal.smart_money_probability
        b = cfg.target_pct / cfg.stop_pct
        kelly = p - (1 - p) / b
        if kelly <= 0 or premium <= 0:
            return 0
        stake = cfg.kelly_fraction * kelly * cfg.capital_rupees
        return min(lots, int(stake // (premium * lot_size)), cfg.max_lots_per_signal)

    # ---- signals ------------------------------------------------------------------------

    def on_signal(self, signal: SmartMoneySignal) -> None:
        """Every bar's signal, at its bar's end: contrary exits first, then at most one entry."""
        now_ns = signal.ts
        self.latest[signal.underlying] = signal
        self._contrary_exits(signal, now_ns)
        if not self.cfg.enabled or not signal.can_trade or signal.token is None:
            return
        if signal.recommendation not in ("BUY_CALL", "BUY_PUT"):
            return
        aggressive = signal.fresh_position_detected
        if not aggressive and signal.oi_conviction_score <= self.cfg.normal_entry_conviction:
            return
        contract = self.contracts(signal.token)
        if contract is None:
            return
        token = contract.token
        if self.book.net_lots(token) or self.book.in_flight(token):
            return
        if now_ns - self.last_exit_ns.get(token, -(10**18)) < self.cfg.cooldown_s * NS_PER_S:
            return
        local = ist_datetime(now_ns)
        today = local.date()
        dte = (contract.expiry - today).days
        if dte < self.cfg.min_dte_for_entry or self._past_cutoff(local, contract.expiry):
            return
        day = today.isoformat()
        if self.rules.entry_refusal(day, token) is not None:
            return
        q = self.quotes.quote(token)
        premium = (q.ask if q and q.ask > 0 else q.ltp) if q else 0.0
        lots = self.size(signal, aggressive, premium, contract.lot_size)
        if lots <= 0:
            return
        strength = signal.fresh_strength
        kind = "AGGRESSIVE" if aggressive else "NORMAL"
        intent = OrderIntent(
            intent_id=self._intent_id("entry", now_ns),
            ts=now_ns,
            underlying=contract.underlying,
            token=token,
            symbol=contract.symbol,
            exchange=contract.exchange,
            side="BUY",
            lots=lots,
            lot_size=contract.lot_size,
            purpose="ENTRY",
            reason=f"{kind} {signal.recommendation} p={signal.smart_money_probability:.2f}",
            ttl_ns=int(self.cfg.intent_ttl_s * NS_PER_S),
            tick_ns=self.tick_ns(),
            signal_ts=signal.ts,
        )
        if self.submit(intent):
            self.entries += 1
            self.rules.entered(day, token)
            self.held[token] = Held(
                contract=contract,
                target_pct=self.cfg.target_pct * (1 + strength),
                stop_pct=self.cfg.stop_pct * (1 - min(0.9, signal.trap_probability)),
                direction=1 if signal.recommendation == "BUY_CALL" else -1,
            )
            self.log.info(
                "strategy.entry",
                symbol=contract.symbol,
                lots=lots,
                kind=kind,
                probability=signal.smart_money_probability,
            )

    def _contrary_exits(self, signal: SmartMoneySignal, now_ns: int) -> None:
        if signal.recommendation not in ("BUY_CALL", "BUY_PUT"):
            return
        if signal.smart_money_probability < self.cfg.contrary_min_probability:
            return
        direction = 1 if signal.recommendation == "BUY_CALL" else -1
        for token, held in list(self.held.items()):
            if held.contract.underlying == signal.underlying and held.direction != direction:
                self._exit(token, now_ns, f"contrary signal {signal.recommendation}")

    # ---- ticks --------------------------------------------------------------------------

    def on_market(self, now_ns: int) -> None:
        """Check every held contract for its target, stop, time and exits.py exits."""
        day_rules = bool(self.cfg.daily_profit_target_rupees or self.cfg.daily_loss_stop_rupees)
        if not (self.held or day_rules):
            return
        local = ist_datetime(now_ns)
        halted = ""
        if day_rules:
            self.rules.day_exit(local.date().isoformat(), self.net_pnl())
            halted = self.rules.days.halted
        for token in list(self.held):
            held = self.held[token]
            lots = self.book.net_lots(token)
            if lots <= 0:
                # Not filled yet (entry in flight) or already flat.
                if not self.book.in_flight(token):
                    self.held.pop(token, None)
                    self._exit_queued_ns.pop(token, None)
                continue
            if self._past_cutoff(local, held.contract.expiry):
                self._exit(token, now_ns, "time exit before theta crush")
                continue
            if halted:
                self._exit(token, now_ns, halted)
                continue
            entry = self.book.entry_price(token)
            q = self.quotes.quote(token)
            mark = (q.bid if q.bid > 0 else q.ltp) if q else 0.0
            if not (entry > 0 and mark > 0):
                continue
            change = 100 * (mark / entry - 1)
            if change >= held.target_pct:
                self._exit(token, now_ns, f"target +{change:.1f}% (≥ {held.target_pct:.1f}%)")
            elif change <= -held.stop_pct:
                self._exit(token, now_ns, f"stop {change:.1f}% (≤ -{held.stop_pct:.1f}%)")
            else:
                held.peak = max(held.peak, mark)
                why = self.rules.position_exit(entry, held.peak, mark, self.theta(token), now_ns)
                if why is not None:
                    self._exit(token, now_ns, why)

    def _exit(self, token: str, now_ns: int, reason: str) -> None:
        held = self.held.get(token)
        lots = self.book.net_lots(token)
        if held is None or lots <= 0:
            return
        if now_ns - self._exit_queued_ns.get(token, -(10**18)) < NS_PER_S:
            return
        if any(o.side == "SELL" for o in self.book.open_orders(token)):
            return
        c = held.contract
        intent = OrderIntent(
            intent_id=self._intent_id("exit", now_ns),
            ts=now_ns,
            underlying=c.underlying,
            token=token,
            symbol=c.symbol,
            exchange=c.exchange,
            side="SELL",
            lots=lots,
            lot_size=c.lot_size,
            purpose="EXIT",
            reason=reason,
            ttl_ns=int(self.cfg.intent_ttl_s * NS_PER_S),
            tick_ns=self.tick_ns(),
        )
        if self.submit(intent):
            self._exit_queued_ns[token] = now_ns
            self.exits += 1
            self.last_exit_ns[token] = now_ns
            self.log.info("strategy.exit", symbol=c.symbol, lots=lots, reason=reason)

    def adopt(self, token: str, direction: int) -> None:
        """After a restart: manage an open position with the default exit plan."""
        contract = self.contracts(token)
        if contract is not None and token not in self.held:
            self.held[token] = Held(
                contract=contract,
                target_pct=self.cfg.target_pct,
                stop_pct=self.cfg.stop_pct,
                direction=direction,
            )
