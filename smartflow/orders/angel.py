"""The live Angel One gateway: ``BrokerPort`` over Angel's REST API and order-update socket.

Native asyncio (aiohttp for REST, websockets for the order-update stream); the ``SmartApi`` SDK
is never imported. Login and tokens belong to ``AngelSession`` (orders/angel_session.py), which
the daemon shares with the SmartStream feed.

How replies become outcomes (the reply rules are ``angel_wire.classify``):

=======================================================  =====================================
reply                                                    outcome
=======================================================  =====================================
JSON success envelope                                    ``ACCEPTED`` (placeOrder without an
                                                         order id: ``UNKNOWN``)
JSON failure envelope                                    ``REJECTED`` with Angel's code/message
AG7002 (unregistered static IP)                          ``REJECTED``/``AG7002``, logged as an
                                                         error; the router trips the kill switch
AG8001/AG8002/AG8003/AB1010/AB1011, plain 401            re-login, then the request is sent once
                                                         more (the first had no effect)
plain-text 403 "exceeding rate limit", 429               ``RATE_LIMITED``
timeout, connection error, empty body, HTML, any 5xx     ``UNKNOWN`` — never retried
=======================================================  =====================================

An ``UNKNOWN`` order may exist: the router reconciles it by tag through ``order_details``,
``order_book`` and the update stream. Reads (order book, details, positions) raise
``TransientError`` when they cannot give a trustworthy answer, rather than return an empty or
absent result that would be mistaken for "the broker has no such order".

The order-update socket delivers every status change as a ``BrokerOrder`` to the handlers given
to ``subscribe_updates``. It reconnects with jittered backoff (re-login on 401/403), reconnects
after every new login so it always holds the current JWT, and after a reconnect replays the
order book to the handlers so changes missed while it was down are not lost (the router books
fills from cumulative quantities, so replays are harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any

import msgspec
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from smartflow.config import OrdersConfig
from smartflow.core.errors import AuthError, TransientError
from smartflow.orders import angel_wire as w
from smartflow.orders.angel_session import (
    NETWORK_ERRORS,
    ORDER_ROOT,
    VARIETY,
    AngelSession,
    check_limit_day,
    modify_body,
    next_daily_action,
    order_body,
)
from smartflow.orders.port import (
    BrokerFill,
    BrokerOrder,
    BrokerPosition,
    OrderUpdateHandler,
    PlaceRequest,
    Reply,
)


__all__ = [
    "AngelGateway",
    "AngelSession",
    "check_limit_day",
    "modify_body",
    "next_daily_action",
    "order_body",
]

# Angel's read limits (angel-smartapi.md §4.7): book, positions, trades 1/s; details 10/s.
READ_INTERVAL_S = {"getOrderBook": 1.0, "getPosition": 1.0, "getTradeBook": 1.0, "details": 0.1}


class AngelGateway:
    """``BrokerPort`` for Angel One.

    Args:
        session: the logged-in (or to-be-logged-in) ``AngelSession``.
        cfg: ``[orders]``: ``order_update_url`` and ``request_timeout_s`` are used.
        log: bound structlog logger.
        close_session: ``close()`` also closes the session's HTTP client.
        read_interval_s: minimum spacing of read calls per endpoint (Angel's read limits).
        ping_interval_s: text ``ping`` cadence on the order-update socket (Angel: 10 s).
        backoff_initial_s: first reconnect delay of the order-update socket (doubles to 30 s).
    """

    name = "angel"

    def __init__(
        self,
        session: AngelSession,
        cfg: OrdersConfig,
        log: Any = None,
        *,
        close_session: bool = True,
        read_interval_s: dict[str, float] | None = None,
        ping_interval_s: float = 10.0,
        backoff_initial_s: float = 0.5,
    ) -> None:
        self.session = session
        self.cfg = cfg
        self.log = log or structlog.get_logger().bind(stage="orders")
        self.close_session = close_session
        self.read_interval_s = READ_INTERVAL_S if read_interval_s is None else read_interval_s
        self.ping_interval_s = ping_interval_s
        self.backoff_initial_s = backoff_initial_s
        self.updates_connected = asyncio.Event()
        self.auth_failed: str | None = None
        """Set when a re-login was refused: live trading cannot continue (daemon health)."""
        self.stats: dict[str, int] = {
            "update_connects": 0,
            "updates": 0,
            "bad_updates": 0,
            "bad_records": 0,
            "relogins": 0,
        }
        self._handlers: list[OrderUpdateHandler] = []
        self._unique: dict[str, str] = {}  # orderid -> uniqueorderid (details/{uniqueorderid})
        self._tags: dict[str, str] = {}  # orderid -> ordertag (the trade book has no tag)
        self._last_read: dict[str, float] = {}
        self._read_lock = asyncio.Lock()
        self._reconnect = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._logged: set[str] = set()
        self._rng = random.Random()
        session.add_login_listener(lambda _gen: self._reconnect.set())

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Log in and open the order-update socket (waits up to ``request_timeout_s`` for it).

        Raises:
            AuthError: Angel refused the credentials.
            TransientError: Angel could not be reached for the login.
        """
        await self.session.start()
        self._reconnect.clear()
        self._task = asyncio.create_task(self._run_updates(), name="angel-order-updates")
        try:
            await asyncio.wait_for(self.updates_connected.wait(), self.cfg.request_timeout_s)
        except TimeoutError:
            self.log.warning("angel.updates_not_connected", fallback="order book polling")

    async def close(self) -> None:
        """Stop the order-update socket; close the HTTP client if this gateway owns it."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.close_session:
            await self.session.close()

    def subscribe_updates(self, handler: OrderUpdateHandler) -> None:
        """Deliver every order status change (fills included) to ``handler``."""
        self._handlers.append(handler)

    # ---- orders -------------------------------------------------------------------------

    async def place(self, req: PlaceRequest) -> Reply:
        """Send a LIMIT/DAY order; ``UNKNOWN`` replies are never re-sent."""
        return await self._order_call("placeOrder", order_body(req), req.tag, None)

    async def modify(self, broker_order_id: str, req: PlaceRequest) -> Reply:
        """Re-price an open order (same token, side and quantity)."""
        return await self._order_call(
            "modifyOrder", modify_body(broker_order_id, req), req.tag, broker_order_id
        )

    async def cancel(self, broker_order_id: str) -> Reply:
        """Cancel an open order."""
        body = {"variety": VARIETY, "orderid": broker_order_id}
        return await self._order_call(
            "cancelOrder", body, self._tags.get(broker_order_id, ""), broker_order_id
        )

    async def _order_call(
        self, endpoint: str, body: dict[str, str], tag: str, broker_order_id: str | None
    ) -> Reply:
        check_limit_day(body)
        path = f"{ORDER_ROOT}/{endpoint}"
        for attempt in (1, 2):
            try:
                status, raw, generation = await self.session.send("POST", path, body)
            except TimeoutError:
                return self._unknown(endpoint, tag, "TIMEOUT", "no reply within the timeout")
            except NETWORK_ERRORS as e:
                return self._unknown(endpoint, tag, "NETWORK", type(e).__name__)
            except (AuthError, TransientError) as e:
                # The login needed before sending failed: nothing was sent.
                if isinstance(e, AuthError):
                    self.auth_failed = str(e)
                refused = Reply(outcome="REJECTED", code="AUTH", message=str(e))
                return self._reply(endpoint, tag, refused)
            parsed = w.classify(status, raw)
            if parsed.kind == "auth" and attempt == 1:
                failure = await self._relogin(generation, parsed.code)
                if failure is not None:
                    return self._reply(endpoint, tag, failure)
                continue
            return self._reply(endpoint, tag, self._outcome(endpoint, parsed, broker_order_id))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _relogin(self, generation: int, code: str) -> Reply | None:
        self.stats["relogins"] += 1
        self.log.warning("angel.relogin", code=code)
        try:
            await self.session.relogin(generation)
        except (AuthError, TransientError) as e:
            if isinstance(e, AuthError):
                self.auth_failed = str(e)
            return Reply(outcome="REJECTED", code=code, message=f"re-login failed: {e}")
        return None

    def _outcome(self, endpoint: str, parsed: w.Parsed, broker_order_id: str | None) -> Reply:
        if parsed.kind == "ok":
            try:
                ack = w.ORDER_ACK.decode(parsed.data)
            except (msgspec.DecodeError, msgspec.ValidationError):
                ack = None
            oid = w.as_str(ack.orderid) if isinstance(ack, w.OrderAck) else ""
            if isinstance(ack, w.OrderAck) and oid and w.as_str(ack.uniqueorderid):
                self._unique[oid] = w.as_str(ack.uniqueorderid)
            oid = oid or (broker_order_id or "")
            if not oid:
                return Reply(outcome="UNKNOWN", code="NO_ORDER_ID", message="success without id")
            return Reply(outcome="ACCEPTED", broker_order_id=oid, message=parsed.message)
        if parsed.kind in ("failed", "auth"):
            return Reply(outcome="REJECTED", code=parsed.code, message=parsed.message)
        if parsed.kind == "rate_limited":
            return Reply(outcome="RATE_LIMITED", code=parsed.code, message=parsed.message)
        return Reply(outcome="UNKNOWN", code=parsed.code, message=parsed.message)

    def _unknown(self, endpoint: str, tag: str, code: str, message: str) -> Reply:
        return self._reply(endpoint, tag, Reply(outcome="UNKNOWN", code=code, message=message))

    def _reply(self, endpoint: str, tag: str, reply: Reply) -> Reply:
        if reply.outcome == "ACCEPTED":
            self._tags[reply.broker_order_id or ""] = tag
            return reply
        fields = {"endpoint": endpoint, "tag": tag, "code": reply.code, "detail": reply.message}
        if reply.code == w.UNREGISTERED_IP:
            self.log.error(
                "angel.unregistered_ip",
                **fields,
                hint="register this host's public static IP on the SmartAPI key",
            )
        elif reply.outcome == "UNKNOWN":
            self.log.warning("angel.order_in_doubt", **fields)
        else:
            self.log.info("angel.order_refused", outcome=reply.outcome, **fields)
        return reply

    # ---- reads --------------------------------------------------------------------------

    async def _read(self, endpoint: str, path: str) -> w.Parsed:
        """GET with read pacing and one re-login; raises unless the reply is an envelope."""
        for attempt in (1, 2):
            await self._pace(endpoint)
            try:
                status, raw, generation = await self.session.send("GET", path)
            except TimeoutError:
                raise TransientError(f"Angel {endpoint}: timed out") from None
            except NETWORK_ERRORS as e:
                raise TransientError(f"Angel {endpoint}: {type(e).__name__}") from None
            parsed = w.classify(status, raw)
            if parsed.kind == "auth" and attempt == 1:
                failure = await self._relogin(generation, parsed.code)
                if failure is None:
                    continue
            if parsed.kind in ("ok", "failed"):
                return parsed
            raise TransientError(f"Angel {endpoint}: {parsed.kind} reply {parsed.code}".strip())
        raise AssertionError("unreachable")  # pragma: no cover

    async def _pace(self, endpoint: str) -> None:
        interval = self.read_interval_s.get(endpoint, 0.0)
        if interval <= 0:
            return
        async with self._read_lock:
            wait = self._last_read.get(endpoint, -1e9) + interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_read[endpoint] = time.monotonic()

    def _orders_from(self, records: list[w.OrderRecord], code: str = "") -> list[BrokerOrder]:
        out = []
        for rec in records:
            try:
                order = w.to_broker_order(rec, code)
            except ValueError:
                order = None
            if order is None:
                self._count_bad("bad_records", "angel.bad_order_record")
                continue
            unique = w.as_str(rec.uniqueorderid)
            if unique:
                self._unique[order.broker_order_id] = unique
            if order.tag:
                self._tags[order.broker_order_id] = order.tag
            out.append(order)
        return out

    async def order_book(self) -> list[BrokerOrder]:
        """Every order of the day (``data: null`` is an empty book).

        Raises:
            TransientError: no trustworthy answer (timeout, rate limit, 5xx, non-JSON...).
        """
        parsed = await self._read("getOrderBook", f"{ORDER_ROOT}/getOrderBook")
        if parsed.kind != "ok":
            raise TransientError(f"Angel getOrderBook refused: {parsed.code} {parsed.message}")
        records = _decode(w.ORDER_LIST, parsed.data)
        return self._orders_from(records if isinstance(records, list) else [])

    async def order_details(self, broker_order_id: str) -> BrokerOrder | None:
        """One order; None when Angel says it has no such order.

        Uses ``details/{uniqueorderid}`` when the unique id is known (from the place reply, the
        stream or the book), else the order book.

        Raises:
            TransientError: no trustworthy answer.
        """
        unique = self._unique.get(broker_order_id)
        if unique is None:
            for order in await self.order_book():
                if order.broker_order_id == broker_order_id:
                    return order
            return None
        parsed = await self._read("details", f"{ORDER_ROOT}/details/{unique}")
        if parsed.kind != "ok":
            return None
        rec = _decode(w.ORDER_RECORD, parsed.data)
        if not isinstance(rec, w.OrderRecord):
            return None
        found = self._orders_from([rec])
        return found[0] if found else None

    async def positions(self) -> list[BrokerPosition]:
        """Net positions of the day, one per instrument and product.

        Raises:
            TransientError: no trustworthy answer.
        """
        parsed = await self._read("getPosition", f"{ORDER_ROOT}/getPosition")
        if parsed.kind != "ok":
            raise TransientError(f"Angel getPosition refused: {parsed.code} {parsed.message}")
        rows = _decode(w.POSITION_LIST, parsed.data)
        out = []
        for row in rows if isinstance(rows, list) else []:
            try:
                pos = w.to_position(row)
            except ValueError:
                pos = None
            if pos is None:
                self._count_bad("bad_records", "angel.bad_position_record")
                continue
            out.append(pos)
        return out

    async def trade_book(self) -> list[BrokerFill]:
        """Every execution of the day (tags filled in from orders seen before).

        Raises:
            TransientError: no trustworthy answer.
        """
        parsed = await self._read("getTradeBook", f"{ORDER_ROOT}/getTradeBook")
        if parsed.kind != "ok":
            raise TransientError(f"Angel getTradeBook refused: {parsed.code} {parsed.message}")
        rows = _decode(w.TRADE_LIST, parsed.data)
        out = []
        for row in rows if isinstance(rows, list) else []:
            try:
                fill = w.to_fill(row, self._tags.get(w.as_str(row.orderid), ""))
            except ValueError:
                fill = None
            if fill is not None:
                out.append(fill)
        return out

    # ---- the order-update socket --------------------------------------------------------

    async def _run_updates(self) -> None:
        backoff = self.backoff_initial_s
        first = True
        while True:
            if self.session.is_logged_out:
                # Logged out for the day: wait for the next login instead of retrying all night.
                await self._reconnect.wait()
            generation = self.session.generation
            try:
                await self.session.ensure_login()
                generation = self.session.generation
                self._reconnect.clear()
                async with connect(
                    self.cfg.order_update_url,
                    additional_headers=self.session.bearer_headers(),
                    proxy=None,
                    open_timeout=self.cfg.request_timeout_s,
                    ping_interval=self.ping_interval_s,
                    ping_timeout=self.ping_interval_s * 2,
                    close_timeout=2,
                    user_agent_header="smartflow",
                ) as ws:
                    self.updates_connected.set()
                    self.stats["update_connects"] += 1
                    self.log.info("angel.updates_connected", replay=not first)
                    backoff = self.backoff_initial_s
                    if not first:
                        await self._replay_book()
                    first = False
                    await self._serve_updates(ws)
            except InvalidStatus as e:
                await self._on_update_rejected(e.response.status_code, generation)
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake) as e:
                self.log.warning("angel.updates_disconnected", error=type(e).__name__)
            except (AuthError, TransientError) as e:
                self.log.error("angel.updates_login_failed", error=str(e))
            finally:
                self.updates_connected.clear()
            if self._reconnect.is_set():
                continue  # a new login: reconnect at once with the new JWT
            delay = backoff * (0.5 + 0.5 * self._rng.random())
            backoff = min(backoff * 2, 30.0)
            await asyncio.sleep(delay)

    async def _on_update_rejected(self, status: int, generation: int) -> None:
        self.log.warning("angel.updates_rejected", status=status)
        if status in (401, 403):
            failure = await self._relogin(generation, f"WS{status}")
            if failure is not None:
                self.log.error("angel.updates_auth_failed", detail=failure.message)

    async def _serve_updates(self, ws: ClientConnection) -> None:
        async def ping() -> None:
            while True:
                await asyncio.sleep(self.ping_interval_s)
                await ws.send("ping")

        async def relogged() -> None:
            await self._reconnect.wait()
            await ws.close()

        helpers = [asyncio.create_task(ping()), asyncio.create_task(relogged())]
        try:
            async for msg in ws:
                if isinstance(msg, str) and msg != "pong":
                    self.on_update_text(msg)
        finally:
            for t in helpers:
                t.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    def on_update_text(self, text: str) -> None:
        """Parse one order-update message and hand the order to every handler."""
        try:
            msg = w.ORDER_UPDATE.decode(text)
            code = w.as_str(msg.order_status)
            order = (
                w.to_broker_order(msg.orderData, code)
                if msg.orderData is not None and code != "AB00"
                else None
            )
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
            self._count_bad("bad_updates", "angel.bad_update")
            return
        if order is None or msg.orderData is None:
            return  # the AB00 greeting, or a frame naming no order
        unique = w.as_str(msg.orderData.uniqueorderid)
        if unique:
            self._unique[order.broker_order_id] = unique
        if order.tag:
            self._tags[order.broker_order_id] = order.tag
        self.stats["updates"] += 1
        self._deliver(order)

    def _deliver(self, order: BrokerOrder) -> None:
        for handler in self._handlers:
            try:
                handler(order)
            except Exception:  # per-message boundary: one bad handler call must not end the socket
                self.log.exception("angel.update_handler_failed", orderid=order.broker_order_id)

    async def _replay_book(self) -> None:
        try:
            orders = await self.order_book()
        except TransientError as e:
            self.log.warning("angel.replay_failed", error=str(e))
            return
        for order in orders:
            self._deliver(order)

    def _count_bad(self, key: str, event: str) -> None:
        self.stats[key] += 1
        if event not in self._logged:
            self._logged.add(event)
            self.log.warning(event, note="logged once; counted in stats")


def _decode(decoder: msgspec.json.Decoder[Any], raw: msgspec.Raw) -> Any:
    try:
        return decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
