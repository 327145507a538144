"""What remote control acts on: the entry gate, and the ``Control`` the app implements.

The Telegram command loop that drives them lives in ``smartflow.alerts.telegram`` (it needs
aiogram); nothing here does, so a daemon with alerts but without Telegram never imports it.

``EntryGate`` is what the trading side consults before an entry intent reaches the router:
paused → the entry is dropped; ``approval = "manual"`` → it is held and offered with Approve /
Reject buttons, expiring after ``approval_timeout_s``. An approved intent is handed to the
router unchanged and passes every risk check there: approval can only block, never create or
modify an order. Exits never pass through the gate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from smartflow.alerts.events import Alert, Publish
from smartflow.core.messages import OrderIntent


class Control(Protocol):
    """What remote commands may do to the daemon (implemented by the app)."""

    def status(self) -> str:
        """One-screen status."""
        ...

    def positions(self) -> str:
        """Open positions."""
        ...

    def pnl(self) -> str:
        """Today's P&L."""
        ...

    async def orders(self) -> str:
        """Open orders and today's counts."""
        ...

    async def flatten(self, who: str) -> str:
        """Pause entries and exit every position."""
        ...

    async def kill(self, who: str) -> str:
        """Trip the kill switch."""
        ...


@dataclass
class _Held:
    intent: OrderIntent
    deadline: float


class EntryGate:
    """Pause and manual approval of entries, between the strategy and the router."""

    def __init__(
        self,
        publish: Publish,
        release: Callable[[OrderIntent], bool],
        approval_timeout_s: float | None,
        log: Any,
    ) -> None:
        self.publish = publish
        self.release = release
        self.timeout_s = approval_timeout_s
        self.log = log
        self.paused = False
        self.held: dict[str, _Held] = {}
        self.counts: dict[str, int] = {}
        self._n = 0

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def __call__(self, intent: OrderIntent) -> bool:
        """True: the entry goes on to the router now; False: dropped (paused) or held."""
        if self.paused:
            self._count("paused")
            self.log.info("alerts.entry_paused", intent=intent.intent_id, symbol=intent.symbol)
            return False
        if self.timeout_s is None:
            return True
        if any(h.intent.token == intent.token for h in self.held.values()):
            self._count("duplicate")
            return False  # one entry per contract awaits a decision at a time
        self._n += 1
        key = str(self._n)
        self.held[key] = _Held(intent, time.monotonic() + self.timeout_s)
        self._count("held")
        self.publish(
            Alert(
                kind="approval",
                text=(
                    f"APPROVE? BUY {intent.lots} lot(s) {intent.symbol} ({intent.reason}); "
                    f"expires in {self.timeout_s:g} s"
                ),
                fields={"approval": key, "intent": intent.intent_id, "symbol": intent.symbol},
                buttons=(("Approve", f"ap:{key}"), ("Reject", f"rj:{key}")),
            )
        )
        return False

    def decide(self, key: str, approve: bool) -> tuple[OrderIntent | None, str]:
        """Apply a decision: (the intent, what happened); (None, why) when it is gone."""
        held = self.held.pop(key, None)
        if held is None:
            return None, "no longer pending (decided or expired)"
        intent = held.intent
        if not approve:
            self._count("rejected")
            return intent, f"rejected {intent.symbol}"
        self._count("approved")
        if self.release(intent):
            return intent, f"approved {intent.symbol}: sent to the risk checks and the router"
        return intent, f"approved {intent.symbol}, but the router's queue refused it"

    def expire(self) -> list[OrderIntent]:
        """Drop held entries past their deadline; returns them."""
        now = time.monotonic()
        gone = [k for k, h in self.held.items() if h.deadline <= now]
        out = []
        for k in gone:
            out.append(self.held.pop(k).intent)
            self._count("expired")
        return out
