"""The order router: intents → risk-checked marketable LIMIT orders, tracked to the end.

Lifecycle of one order (every state change is journalled):

``NEW``       risk-approved and committed, waiting for the rate budget (exits go first);
``SENT``      committed immediately *before* the request leaves;
``OPEN`` → ``PARTIAL`` → ``FILLED`` | ``CANCELLED`` | ``REJECTED`` as the broker reports;
``UNKNOWN``   the reply was lost (timeout, empty or non-JSON body, 5xx, dropped connection).

An UNKNOWN order is never re-sent: ``reconcile.Reconciler`` finds it by its tag; only when the
broker demonstrably never saw it is it closed as REJECTED. A REJECTED or RATE_LIMITED reply had
no effect. Fills are derived from the broker's cumulative filled quantity with a deterministic
fill id, so the stream and the polls can report the same fill any number of times and it is
booked once, into ``positions.Positions``.

Unfilled orders are re-priced to the current marketable level (``pricing``) after
``chase_after_s`` (modify), up to ``max_chases`` for entries (then cancelled) and without limit
for exits, which must complete. An order still NEW when the kill switch trips, the daemon stops
or a restart finds it is cancelled unsent (``_cancel_unsent``), never sent later.

No order without its record: while journal writes fail, entries are refused; an order whose
NEW or SENT record did not commit is never sent. What the broker already did (fills, replies) is
still applied in memory, so positions stay true while the journal cannot keep up; every failed
write is logged and counted by the journal. Every ``KILL_POLL_S`` the router applies the kill-switch
requests ``smartflow kill`` left in the journal and acknowledges each there.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from smartflow.config import CostsConfig, OrdersConfig, RiskConfig, Secret
from smartflow.core.clock import Clock
from smartflow.core.messages import OrderIntent
from smartflow.core.timeutil import ist_date
from smartflow.journal.store import (
    FillRow,
    Journal,
    JournalError,
    JournalWriteError,
    KillRequest,
    OrderRow,
    PositionRow,
)
from smartflow.orders.charges import ChargeModel
from smartflow.orders.guard import RiskGuard, kill_mac_ok
from smartflow.orders.port import BrokerOrder, BrokerPort, MarketView, PlaceRequest, Reply
from smartflow.orders.positions import Positions
from smartflow.orders.pricing import Pricer
from smartflow.orders.ratelimit import RateLimiter
from smartflow.orders.reconcile import Reconciler


NS = 1_000_000_000
INTENT_CAPACITY = 64
TERMINAL = ("FILLED", "CANCELLED", "REJECTED")
KILL_POLL_S = 1.0


EventHook = Callable[[str, OrderRow, FillRow | None], None]


class OrderRouter:
    """One task that owns every order from intent to terminal state."""

    charges = ChargeModel(CostsConfig())
    """Charges booked with each fill (``Trading`` sets the configured ``[costs]``)."""

    def __init__(
        self,
        cfg: OrdersConfig,
        risk: RiskConfig,
        guard: RiskGuard,
        broker: BrokerPort,
        journal: Journal,
        market: MarketView,
        clock: Clock,
        log: Any,
        speed: float = 1.0,
    ) -> None:
        self.cfg = cfg
        self.risk_cfg = risk
        self.guard = guard
        self.broker = broker
        self.journal = journal
        self.clock = clock
        self.log = log
        self.speed = speed
        self.limiter = RateLimiter(
            risk.orders_per_second, risk.orders_per_minute, risk.orders_per_hour
        )
        self.exits: deque[OrderIntent] = deque()
        self.entries: deque[OrderIntent] = deque()
        # Out of its queue but not yet an order: admission awaits the journal in between.
        self._admitting: OrderIntent | None = None
        self.waiting: deque[OrderRow] = deque()  # NEW rows waiting for the rate budget
        self.orders: dict[str, OrderRow] = {}  # every non-terminal order, by our id
        self.by_broker: dict[str, str] = {}
        self.book = Positions(market)
        self.positions = self.book.rows  # today's, by token (the same dict)
        self.pricer = Pricer(market, cfg.protection_ticks, risk.price_band_pct)
        self.reconciler = Reconciler(broker, journal, cfg.reconcile_interval_s, log)
        self.updates: deque[BrokerOrder] = deque()
        self.on_event: list[EventHook] = []
        # (order id, tick_ns of its intent, send time): tick → order-sent latency metrics.
        self.on_sent: list[Callable[[str, int, int], None]] = []
        self._tick_ns: dict[str, int] = {}
        self.kicked = asyncio.Event()
        self.stopping = False
        self.heartbeat_ns = time.monotonic_ns()
        self.refused = 0
        self.refused_by_kind: dict[str, int] = {}
        self.fills = 0
        self.on_intent: list[Callable[[OrderIntent], None]] = []
        self.overflow = 0
        self.fatal: str | None = None
        self._day = ""
        self._seq = 0
        self.kill_token: Secret | None = None
        """What ``smartflow kill`` requests are checked against (set by the daemon)."""
        self._kill_polled = 0.0
        broker.subscribe_updates(self.on_update)

    # ---- intake (synchronous, from the engine task) -------------------------------------

    def submit(self, intent: OrderIntent) -> bool:
        """Queue an intent; False (and an alarm) when the queue is full — fail closed."""
        if len(self.exits) + len(self.entries) >= INTENT_CAPACITY:
            self.overflow += 1
            self.log.error(
                "router.intent_overflow", intent=intent.intent_id, capacity=INTENT_CAPACITY
            )
            return False
        (self.exits if intent.purpose == "EXIT" else self.entries).append(intent)
        self.kicked.set()
        for hook in self.on_intent:
            hook(intent)
        return True

    def on_update(self, order: BrokerOrder) -> None:
        """Broker callback (stream or paper): queue the update for the router task."""
        self.updates.append(order)
        self.kicked.set()

    # ---- views --------------------------------------------------------------------------

    def open_orders(self, token: str | None = None) -> list[OrderRow]:
        """Non-terminal orders (of ``token``)."""
        return [o for o in self.orders.values() if token is None or o.token == token]

    def in_flight(self, token: str) -> bool:
        """True while an intent for ``token`` is queued or one of its orders is not final."""
        return (
            (self._admitting is not None and self._admitting.token == token)
            or any(i.token == token for i in self.exits)
            or any(i.token == token for i in self.entries)
            or any(o.token == token for o in self.orders.values())
        )

    def net_lots(self, token: str) -> int:
        """Open position of ``token`` in lots."""
        return self.book.net_lots(token)

    def entry_price(self, token: str) -> float:
        """Average price of the open position in ``token`` (0 when flat)."""
        return self.book.entry_price(token)

    def day_pnl(self) -> tuple[float, float]:
        """(realised, marked-to-market unrealised) P&L of today's positions, rupees."""
        return self.book.day_pnl()

    # ---- ids ----------------------------------------------------------------------------

    def _next_id(self, now_ns: int) -> tuple[str, str]:
        day = ist_date(now_ns).isoformat()
        if day != self._day:
            self._day = day
            self._seq = self.journal.next_order_seq(day) - 1
        self._seq += 1
        # "SF" + yymmdd + sequence: unique per day, < 20 characters (Angel's ordertag limit).
        return f"SF{day[2:4]}{day[5:7]}{day[8:10]}{self._seq:06d}", day

    # ---- the loop -----------------------------------------------------------------------

    async def run(self) -> None:
        """Process intents, updates and timers until cancelled."""
        while True:
            self.heartbeat_ns = time.monotonic_ns()
            self.kicked.clear()
            await self.pump(self.clock.now_ns())
            if time.monotonic() - self._kill_polled >= KILL_POLL_S:
                self._kill_polled = time.monotonic()
                await self.poll_kill_requests()
            # Wall-clock bound: a CLI kill must take within about a second at any sim speed.
            timeout = min(0.25 / self.speed, KILL_POLL_S)
            wait = self._budget_wait_s()
            if wait is not None:
                timeout = min(timeout, wait)
            try:
                async with asyncio.timeout(timeout):
                    await self.kicked.wait()
            except TimeoutError:
                pass

    def _budget_wait_s(self) -> float | None:
        if not (self.waiting or self.exits or self.entries):
            return None
        ns = self.limiter.wait_ns(self.clock.now_ns())
        return max(0.0, ns / NS / self.speed)

    async def pump(self, now_ns: int) -> None:
        """Do everything that is due at ``now_ns`` (the live loop and replay both call this)."""
        while self.updates:
            await self._apply_update(self.updates.popleft(), now_ns)
        await self._check_loss(now_ns)
        while self.exits or self.entries:
            intent = self.exits.popleft() if self.exits else self.entries.popleft()
            self._admitting = intent
            try:
                await self._admit(intent, now_ns)
            finally:
                self._admitting = None
        await self._send_waiting(now_ns)
        await self._timers(now_ns)

    async def _admit(self, intent: OrderIntent, now_ns: int) -> None:
        if self.stopping:
            return
        if now_ns - intent.ts > intent.ttl_ns:
            await self._refuse(intent, now_ns, "expired", "intent outlived its TTL in the queue")
            return
        price, q = self.pricer.for_intent(intent)
        if price is None or q is None:
            await self._refuse(intent, now_ns, "no_price", f"no quote for {intent.symbol}")
            return
        if intent.purpose == "EXIT":
            in_flight = sum(
                o.quantity - o.filled_quantity
                for o in self.orders.values()
                if o.token == intent.token and o.side == intent.side
            )
            if self.book.held(intent.token) - in_flight <= 0:
                return  # already flat or an exit is in flight: nothing to do
        if intent.purpose == "ENTRY" and self.journal.failing:
            await self._refuse(
                intent,
                now_ns,
                "journal",
                f"journal writes are failing ({self.journal.failing}): no entry without its record",
            )
            return
        exposure = self.book.exposure(intent, self.orders.values())
        reason = self.guard.check(intent, price, q.ltp, exposure, now_ns)
        if reason is not None:
            await self._refuse(intent, now_ns, "risk", reason)
            return
        order_id, day = self._next_id(now_ns)
        self.book.note_contract(intent.token, intent.lot_size, intent.exchange)
        quantity = intent.quantity
        if intent.purpose == "EXIT":
            quantity = min(quantity, abs(self.book.held(intent.token)))
        row = OrderRow(
            order_id=order_id,
            day=day,
            created_ns=now_ns,
            broker=self.broker.name,
            underlying=intent.underlying,
            token=intent.token,
            symbol=intent.symbol,
            exchange=intent.exchange,
            side=intent.side,
            quantity=quantity,
            lot_size=intent.lot_size,
            limit_price=price,
            purpose=intent.purpose,
            reason=intent.reason,
            state="NEW",
            updated_ns=now_ns,
        )
        try:
            await self.journal.new_order(row, f"intent {intent.intent_id}")
        except JournalWriteError as e:
            self._count_refused("journal")
            self.log.error(
                "router.order_not_recorded",
                intent=intent.intent_id,
                order_id=order_id,
                error=str(e),
            )
            return
        self.orders[order_id] = row
        if intent.tick_ns:
            self._tick_ns[order_id] = intent.tick_ns
        self.waiting.append(row)
        self._emit("order", row)

    def _count_refused(self, kind: str) -> None:
        self.refused += 1
        self.refused_by_kind[kind] = self.refused_by_kind.get(kind, 0) + 1

    async def _refuse(self, intent: OrderIntent, now_ns: int, kind: str, reason: str) -> None:
        self._count_refused(kind)
        self.log.warning(
            "router.refused",
            intent=intent.intent_id,
            symbol=intent.symbol,
            purpose=intent.purpose,
            kind=kind,
            reason=reason,
        )
        with contextlib.suppress(JournalWriteError):  # logged and counted by the journal
            await self.journal.risk_event(
                now_ns, kind, reason, f"{intent.intent_id} {intent.symbol}"
            )

    async def _state(self, row: OrderRow, detail: str) -> bool:
        """Journal ``row``'s state change; False (logged and counted by the journal) if not."""
        try:
            await self.journal.order_state(row, detail)
        except JournalWriteError:
            return False
        return True

    async def _send_waiting(self, now_ns: int) -> None:
        # Exits first: they reduce risk and must not queue behind entries for the budget.
        ordered = sorted(self.waiting, key=lambda o: (o.purpose != "EXIT", o.created_ns))
        self.waiting.clear()
        for i, row in enumerate(ordered):
            if row.state != "NEW":
                continue
            if self.stopping or not self.limiter.take(now_ns):
                self.waiting.extend(ordered[i:])
                return
            await self._send(row, now_ns)

    async def _send(self, row: OrderRow, now_ns: int) -> None:
        row.state = "SENT"
        row.updated_ns = now_ns
        if not await self._state(row, f"placing {row.side} {row.quantity}@{row.limit_price}"):
            # Not sent without its record. On restart the journal still says NEW, which is
            # cancelled there too.
            row.state = "CANCELLED"
            row.text = f"journal write failed, never sent ({self.journal.failing})"
            self.log.error("router.order_not_sent", order_id=row.order_id, reason=row.text)
            self._emit("order", row)
            self._forget(row)
            return
        self._emit("order", row)
        tick_ns = self._tick_ns.pop(row.order_id, 0)
        if tick_ns:
            for hook in self.on_sent:
                hook(row.order_id, tick_ns, self.clock.now_ns())
        reply = await self.broker.place(self._request(row))
        await self._after_place(row, reply, self.clock.now_ns())

    def _request(self, row: OrderRow, price: float | None = None) -> PlaceRequest:
        return PlaceRequest(
            tag=row.order_id,
            symbol=row.symbol,
            token=row.token,
            exchange=row.exchange,
            side=row.side,  # type: ignore[arg-type]
            quantity=row.quantity,
            price=row.limit_price if price is None else price,
            product=self.cfg.product,
            lot_size=row.lot_size,
        )

    async def _after_place(self, row: OrderRow, reply: Reply, now_ns: int) -> None:
        row.updated_ns = now_ns
        if reply.outcome == "ACCEPTED" and reply.broker_order_id:
            if row.state == "SENT":
                row.state = "OPEN"
            row.broker_order_id = reply.broker_order_id
            self.by_broker[reply.broker_order_id] = row.order_id
            await self._state(row, f"accepted {reply.broker_order_id}")
        elif reply.outcome == "RATE_LIMITED":
            # Refused before any effect: back to NEW, the budget will pace it.
            row.state = "NEW"
            await self._state(row, f"broker rate limit: {reply.message}")
            self.waiting.append(row)
        elif reply.outcome == "REJECTED":
            row.state = "REJECTED"
            row.text = f"{reply.code} {reply.message}".strip()
            await self._state(row, row.text)
            if reply.code == "AG7002":
                self.fatal = (
                    "Angel refused the order from an unregistered IP (AG7002): register "
                    "this host's public static IP on the API key, or run from it"
                )
                self.guard.trip(self.fatal)
        else:
            row.state = "UNKNOWN"
            row.text = f"{reply.code} {reply.message}".strip()
            self.reconciler.in_doubt(row.order_id, now_ns)
            await self._state(row, f"in doubt: {row.text}")
            self.log.warning("router.order_unknown", order_id=row.order_id, detail=row.text)
        self._emit("order", row)
        if row.state in TERMINAL:
            self._forget(row)

    # ---- updates and fills ----------------------------------------------------------------

    def _find(self, b: BrokerOrder) -> OrderRow | None:
        oid = self.by_broker.get(b.broker_order_id) or (b.tag if b.tag in self.orders else None)
        return self.orders.get(oid) if oid else None

    async def _apply_update(self, b: BrokerOrder, now_ns: int) -> None:
        row = self._find(b)
        if row is None:
            return
        if row.broker_order_id is None:
            row.broker_order_id = b.broker_order_id
            self.by_broker[b.broker_order_id] = row.order_id
        self.reconciler.heard(row.order_id)
        if b.filled_quantity > row.filled_quantity:
            await self._book_fill(row, b, now_ns)
        status = b.status
        new_state = row.state
        if status == "FILLED" or b.filled_quantity >= row.quantity:
            new_state = "FILLED"
        elif status in ("CANCELLED", "REJECTED"):
            new_state = status
            row.text = b.text or row.text
        elif b.filled_quantity > 0:
            new_state = "PARTIAL"
        elif status in ("OPEN", "PENDING") and row.state in ("SENT", "UNKNOWN", "NEW"):
            new_state = "OPEN"
        if new_state != row.state:
            row.state = new_state
            row.updated_ns = now_ns
            await self._state(row, f"broker {status} {b.text}".strip())
            self._emit("order", row)
        if row.state in TERMINAL:
            self._forget(row)

    async def _book_fill(self, row: OrderRow, b: BrokerOrder, now_ns: int) -> None:
        prev_qty, prev_avg = row.filled_quantity, row.average_price
        qty = b.filled_quantity - prev_qty
        value = b.average_price * b.filled_quantity - prev_avg * prev_qty
        price = round(value / qty, 4) if qty else b.average_price
        row.filled_quantity = b.filled_quantity
        row.average_price = b.average_price
        row.state = "FILLED" if b.filled_quantity >= row.quantity else "PARTIAL"
        row.updated_ns = now_ns
        fill = FillRow(
            fill_id=f"{b.broker_order_id}:{b.filled_quantity}",
            order_id=row.order_id,
            broker_order_id=b.broker_order_id,
            day=row.day,
            ts_ns=now_ns,
            token=row.token,
            symbol=row.symbol,
            side=row.side,
            quantity=qty,
            price=price,
        )
        charges = self.charges.fill(row.exchange, row.side, qty, price, prev_qty * prev_avg)
        try:
            new, _ = await self.journal.fill(fill, row.underlying, row, charges)
        except JournalWriteError:
            # The broker filled it whether or not the disk can say so: memory follows the
            # broker (the failure is logged and counted; a restart's reconciliation with the
            # broker's positions flags the gap).
            new = True
        if not new:
            return
        pos = self.book.apply_fill(row, qty, price, now_ns)
        pos.charges = round(pos.charges + charges.total, 2)
        self.fills += 1
        self._emit("fill", row, fill)
        self.log.info(
            "router.fill",
            order_id=row.order_id,
            symbol=row.symbol,
            side=row.side,
            quantity=qty,
            price=price,
            position=pos.net_quantity,
        )

    def _forget(self, row: OrderRow) -> None:
        self.orders.pop(row.order_id, None)
        self.reconciler.forget(row.order_id)

    async def _cancel_unsent(self, row: OrderRow, now_ns: int, detail: str) -> None:
        """Close a NEW (never sent) order as CANCELLED: it is never sent later.

        An order this router tracks is also announced to the event hooks and dropped.
        """
        row.state = "CANCELLED"
        row.updated_ns = now_ns
        await self._state(row, detail)
        if row.order_id in self.orders:
            self._emit("order", row)
            self._forget(row)

    def _emit(self, kind: str, row: OrderRow, fill: FillRow | None = None) -> None:
        for hook in self.on_event:
            hook(kind, row, fill)

    # ---- timers: chase, cancel, reconcile -------------------------------------------------

    async def _timers(self, now_ns: int) -> None:
        chase_ns = int(self.cfg.chase_after_s * NS)
        for row in list(self.orders.values()):
            if row.state in ("OPEN", "PARTIAL") and now_ns - row.updated_ns >= chase_ns:
                await self._chase(row, now_ns)
            elif row.state == "UNKNOWN":
                await self._reconcile_unknown(row, now_ns)

    async def _chase(self, row: OrderRow, now_ns: int) -> None:
        if row.broker_order_id is None or not self.limiter.take(now_ns):
            return
        if row.purpose == "ENTRY" and row.chases >= self.cfg.max_chases:
            reply = await self.broker.cancel(row.broker_order_id)
            row.updated_ns = now_ns
            await self._state(
                row, f"cancel after {row.chases} chases: {reply.outcome} {reply.message}".strip()
            )
            return
        price = self.pricer.chase(row)
        if price is None:
            return
        reply = await self.broker.modify(row.broker_order_id, self._request(row, price))
        row.chases += 1
        row.updated_ns = now_ns
        if reply.outcome == "ACCEPTED":
            row.limit_price = price
        await self._state(row, f"chase {row.chases} to {price}: {reply.outcome}")

    async def _reconcile_unknown(self, row: OrderRow, now_ns: int) -> None:
        found = await self.reconciler.check(row, now_ns)
        if isinstance(found, BrokerOrder):
            await self._apply_update(found, now_ns)
            if row.state == "UNKNOWN":
                row.state = "OPEN"
                await self._state(row, "reconciled: live at the broker")
        elif found == "absent":
            row.state = "REJECTED"
            row.text = "never reached the broker (absent from its order book)"
            row.updated_ns = now_ns
            await self._state(row, row.text)
            self._emit("order", row)
            self._forget(row)

    # ---- risk: loss limit, kill switch ----------------------------------------------------

    async def _check_loss(self, now_ns: int) -> None:
        if self.guard.killed:
            return
        realised, unrealised = self.day_pnl()
        if self.guard.loss_limit_hit(realised + unrealised):
            await self.kill(
                f"daily loss {realised + unrealised:.2f} reached the limit "
                f"{self.risk_cfg.max_daily_loss:g}",
                "loss_limit",
                now_ns,
            )

    async def kill(self, reason: str, source: str, now_ns: int | None = None) -> dict[str, int]:
        """Trip the kill switch: cancel every open order, flatten if configured."""
        now_ns = self.clock.now_ns() if now_ns is None else now_ns
        first = self.guard.trip(reason)
        if first:
            self.log.error("risk.kill_switch", source=source, reason=reason)
            with contextlib.suppress(JournalWriteError):  # the switch holds in memory anyway
                await self.journal.kill_event(now_ns, "trip", source, reason)
        self.entries.clear()
        cancelled = 0
        for row in list(self.orders.values()):
            if row.state == "NEW":
                await self._cancel_unsent(row, now_ns, "kill switch: never sent")
                cancelled += 1
            elif row.broker_order_id and row.state in ("OPEN", "PARTIAL"):
                await self.broker.cancel(row.broker_order_id)
                cancelled += 1
        flattened = 0
        if self.risk_cfg.flatten_on_kill:
            for pos in self.book.long():
                self.exits.append(self._flatten_intent(pos, now_ns, reason))
                flattened += 1
        self.kicked.set()
        return {"cancelled": cancelled, "flattening": flattened}

    def _flatten_intent(self, pos: PositionRow, now_ns: int, reason: str) -> OrderIntent:
        lot, exchange = self.book.contract(pos.token)
        return OrderIntent(
            intent_id=f"kill-{pos.token}-{now_ns}",
            ts=now_ns,
            underlying=pos.underlying,
            token=pos.token,
            symbol=pos.symbol,
            exchange=exchange,
            side="SELL",
            lots=max(1, pos.net_quantity // lot),
            lot_size=lot,
            purpose="EXIT",
            reason=f"kill switch: {reason}",
            ttl_ns=3600 * NS,
        )

    async def reset_kill(self, source: str) -> None:
        """Re-arm trading after a kill."""
        if self.guard.killed:
            self.guard.reset()
            self.log.warning("risk.kill_switch_reset", source=source)
            with contextlib.suppress(JournalWriteError):
                await self.journal.kill_event(self.clock.now_ns(), "reset", source, "reset")

    async def poll_kill_requests(self) -> int:
        """Apply the kill-switch requests ``smartflow kill`` left in the journal.

        Each is checked against this daemon's kill token, applied, and acknowledged in its row
        (``done`` or ``refused``), which is what the waiting CLI reports. Returns how many
        requests were handled.
        """
        try:
            pending = await self.journal.pending_kill_requests()
        except (JournalError, sqlite3.Error) as e:
            self.log.error("risk.kill_requests_unreadable", error=str(e))
            return 0
        for req in pending:
            status, detail = await self._apply_kill_request(req)
            try:
                await self.journal.ack_kill_request(req.id, status, time.time_ns(), detail)
            except JournalWriteError:
                # Applied but not acknowledged: the CLI says "not confirmed"; the request stays
                # pending and is applied again (idempotently) on the next poll.
                continue
        return len(pending)

    async def _apply_kill_request(self, req: KillRequest) -> tuple[str, str]:
        token = self.kill_token
        if token is None or not token:
            reason = "the daemon has no kill_token credential"
        elif req.action not in ("trip", "reset"):
            reason = f"unknown action {req.action!r}"
        elif not kill_mac_ok(token.reveal(), req.nonce, req.action, req.reason, req.mac):
            reason = "wrong kill token"
        else:
            if req.action == "trip":
                done = await self.kill(req.reason, "cli")
                return "done", msgspec.json.encode({"kill_switch": True, **done}).decode()
            await self.reset_kill("cli")
            return "done", msgspec.json.encode({"kill_switch": False}).decode()
        self.log.warning("risk.kill_request_refused", request=req.id, reason=reason)
        return "refused", reason

    # ---- start-up and shutdown ------------------------------------------------------------

    async def restore(self) -> dict[str, int]:
        """Load today's open orders and positions from the journal; reconcile with the broker.

        Runs before any new order: NEW rows (never sent) are cancelled, never sent later;
        SENT/UNKNOWN rows are looked up by tag and adopted or kept UNKNOWN; OPEN/PARTIAL rows
        are refreshed from the broker. A tripped kill switch stays tripped.
        """
        now_ns = self.clock.now_ns()
        day = ist_date(now_ns).isoformat()
        self.book.load(self.journal.positions(day))
        killed, why = self.journal.kill_active()
        if killed:
            self.guard.trip(why)
        counts = {"restored": 0, "cancelled_unsent": 0, "adopted": 0, "unknown": 0}
        for row in self.journal.orders(day):
            self.book.note_contract(row.token, row.lot_size, row.exchange)
        for row in self.journal.orders(day, open_only=True):
            if row.state == "NEW":
                await self._cancel_unsent(row, now_ns, "restart: never sent, not re-sent")
                counts["cancelled_unsent"] += 1
                continue
            self.orders[row.order_id] = row
            if row.broker_order_id:
                self.by_broker[row.broker_order_id] = row.order_id
            counts["restored"] += 1
            found = await self.reconciler.find(row)
            if found is not None:
                await self._apply_update(found, now_ns)
                counts["adopted"] += 1
            elif row.state != "UNKNOWN":
                row.state = "UNKNOWN"
                row.updated_ns = now_ns
                self.reconciler.in_doubt(row.order_id, now_ns)
                await self._state(row, "restart: not found at the broker yet")
                counts["unknown"] += 1
        await self.reconciler.compare_positions(day, self.book.open_quantities(), now_ns)
        # Requests left while no daemon ran (a trip queued by `smartflow kill`) count from here.
        await self.poll_kill_requests()
        self.log.info(
            "router.restored",
            day=day,
            positions=len(self.positions),
            **counts,
            kill_switch=self.guard.killed,
        )
        return counts

    async def shutdown(self, policy: str) -> int:
        """Stop sending; ``cancel_open`` cancels every open order. Returns orders cancelled."""
        self.stopping = True
        now_ns = self.clock.now_ns()
        cancelled = 0
        for row in list(self.orders.values()):
            if row.state == "NEW":
                await self._cancel_unsent(row, now_ns, "shutdown: never sent")
                cancelled += 1
            elif (
                policy == "cancel_open" and row.broker_order_id and row.state in ("OPEN", "PARTIAL")
            ):
                reply = await self.broker.cancel(row.broker_order_id)
                await self._state(row, f"shutdown cancel: {reply.outcome}")
                cancelled += 1
        return cancelled

    def stats(self) -> dict[str, Any]:
        """Counters for the stats line."""
        by_state: dict[str, int] = {}
        for o in self.orders.values():
            by_state[o.state] = by_state.get(o.state, 0) + 1
        realised, unrealised = self.day_pnl()
        return {
            "open_orders": by_state,
            "queued": len(self.exits) + len(self.entries),
            "waiting_budget": len(self.waiting),
            "refused": self.refused,
            "overflow": self.overflow,
            "requests": self.limiter.granted,
            "positions": sum(1 for p in self.positions.values() if p.net_quantity),
            "realised": round(realised, 2),
            "unrealised": round(unrealised, 2),
            "kill_switch": self.guard.killed,
        }
