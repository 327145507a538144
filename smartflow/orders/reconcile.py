"""Orders in doubt and positions after a restart, checked against what the broker says.

An order whose placement reply was lost (``UNKNOWN``) or that a restart finds SENT is never
re-sent: it is looked up by its tag (our order id, sent as Angel's ``ordertag``) through order
details and the order book every ``reconcile_interval_s``, and the order-update stream may settle
it first. Only when the broker demonstrably never saw it (absent from the book for
``UNKNOWN_GRACE_S``) is it closed as REJECTED. A failed lookup says nothing about the order, so
the grace period does not advance on it. At start-up the journal's positions are compared with
the broker's and every difference is raised as a risk event.
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

from smartflow.core.errors import TransientError
from smartflow.journal.store import Journal, JournalWriteError, OrderRow
from smartflow.orders.port import BrokerOrder, BrokerPort


NS = 1_000_000_000
UNKNOWN_GRACE_S = 60.0

Verdict = BrokerOrder | Literal["wait", "absent"]
"""What a reconciliation pass found: the broker's order, nothing yet, or proof it never arrived."""


class Reconciler:
    """Finds orders in doubt at the broker and checks positions against it; never sends."""

    def __init__(self, broker: BrokerPort, journal: Journal, interval_s: float, log: Any) -> None:
        self.broker = broker
        self.journal = journal
        self.interval_ns = int(interval_s * NS)
        self.log = log
        self.unknown_since: dict[str, int] = {}  # order id -> when its fate became unknown
        self._last_lookup_ns: dict[str, int] = {}

    def in_doubt(self, order_id: str, now_ns: int) -> None:
        """Start the grace period of an order whose reply was lost."""
        self.unknown_since[order_id] = now_ns

    def heard(self, order_id: str) -> None:
        """The broker reported on the order: it is no longer in doubt."""
        self.unknown_since.pop(order_id, None)

    def forget(self, order_id: str) -> None:
        """Drop everything kept about a finished order."""
        self.unknown_since.pop(order_id, None)
        self._last_lookup_ns.pop(order_id, None)

    async def lookup(self, row: OrderRow) -> BrokerOrder | None:
        """Find ``row`` at the broker: by its broker id, else by its tag in the order book.

        Returns None only when the broker answered and does not have it.

        Raises:
            TransientError: the broker could not be asked (timeout, 5xx, rate limit).
        """
        if row.broker_order_id:
            found = await self.broker.order_details(row.broker_order_id)
            if found is not None:
                return found
        for b in await self.broker.order_book():
            if b.tag == row.order_id:
                return b
        return None

    async def find(self, row: OrderRow) -> BrokerOrder | None:
        """``lookup`` for start-up: a broker that cannot be asked finds nothing (logged)."""
        try:
            return await self.lookup(row)
        except TransientError as e:
            self.log.warning("router.lookup_failed", order_id=row.order_id, error=str(e))
            return None

    async def check(self, row: OrderRow, now_ns: int) -> Verdict:
        """One reconciliation pass over an UNKNOWN order, at most every ``interval_s``."""
        since = self.unknown_since.setdefault(row.order_id, now_ns)
        if now_ns - self._last_lookup_ns.get(row.order_id, 0) < self.interval_ns:
            return "wait"
        self._last_lookup_ns[row.order_id] = now_ns
        try:
            found = await self.lookup(row)
        except TransientError as e:
            self.unknown_since[row.order_id] = since + self.interval_ns
            self.log.warning("router.lookup_failed", order_id=row.order_id, error=str(e))
            return "wait"
        if found is not None:
            return found
        if now_ns - since > int(UNKNOWN_GRACE_S * NS):
            return "absent"
        return "wait"

    async def compare_positions(self, day: str, ours: dict[str, int], now_ns: int) -> list[str]:
        """Compare our non-flat positions with the broker's; journal and return the mismatches.

        A broker that cannot be asked is journalled as ``positions_unverified`` (nothing returned).
        """
        try:
            theirs = {p.token: p.net_quantity for p in await self.broker.positions()}
        except TransientError as e:
            self.log.warning("router.positions_unverified", error=str(e))
            with contextlib.suppress(JournalWriteError):
                await self.journal.risk_event(now_ns, "positions_unverified", str(e), day)
            return []
        mismatched = []
        for token in sorted(set(theirs) | set(ours)):
            if theirs.get(token, 0) != ours.get(token, 0):
                mismatched.append(token)
                detail = f"journal {ours.get(token, 0)} vs broker {theirs.get(token, 0)}"
                self.log.error("router.position_mismatch", token=token, detail=detail)
                with contextlib.suppress(JournalWriteError):
                    await self.journal.risk_event(now_ns, "position_mismatch", detail, token)
        return mismatched
