"""Angel One's REST and order-update wire formats, sans I/O: Structs, envelope rules, statuses.

Angel answers in two envelopes (angel-smartapi.md §4.1): the API's
``{status, message, errorcode, data}`` and the gateway's ``{success, message, errorCode, data}``,
with ``data`` an object, a list, ``null`` or ``""``. Rate-limit refusals are plain text (403 with
"Access denied because of exceeding rate limit", or 429), and the order can be accepted while the
reply is empty, HTML or a 5xx. ``classify`` turns (HTTP status, body) into one of five kinds so
the gateway can map each onto the port's outcomes without guessing:

==============  ============================================================================
``ok``          a JSON envelope with ``status``/``success`` true (below HTTP 500)
``failed``      a JSON envelope with a false status and an error code: no effect
``auth``        the same, with a token/session code (AG8001/AG8002/AG8003, AB1010, AB1011), or a
                plain 401: no effect, re-login and retry once
``rate_limited``  plain-text 403 that names the rate limit, or any 429 without an envelope
``unknown``     everything else: empty, HTML, JSON without an envelope, any 5xx
==============  ============================================================================

Numbers arrive as strings, numbers or ``null`` depending on the endpoint (the order book sends
``"price": "194.00"`` and ``"orderid": 201020000000080``; order details and the order-update
stream send ``"price": 2298.25`` with ``"quantity": "1"``), so every record field is decoded as
``Loose`` and converted once, here.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal, NamedTuple

import msgspec

from smartflow.core.timeutil import IST
from smartflow.orders.port import BrokerFill, BrokerOrder, BrokerPosition, BrokerStatus


Loose = str | int | float | None
Kind = Literal["ok", "failed", "auth", "rate_limited", "unknown"]

# Codes after which the request provably had no effect and a fresh login may help.
AUTH_CODES = frozenset({"AG8001", "AG8002", "AG8003", "AB1010", "AB1011"})
UNREGISTERED_IP = "AG7002"
_RATE_TEXT = re.compile(r"rate.?limit|exceed|too many", re.IGNORECASE)
_NULL = msgspec.Raw(b"null")


class Envelope(msgspec.Struct, kw_only=True):
    """Either of Angel's envelopes; ``data`` is kept raw and decoded per endpoint."""

    status: bool | str | None = None
    success: bool | str | None = None
    message: str | None = None
    errorcode: str | None = None
    errorCode: str | None = None
    data: msgspec.Raw = _NULL


class LoginData(msgspec.Struct, kw_only=True):
    """``loginByPassword`` / ``generateTokens`` data; ``jwtToken`` has no ``Bearer`` prefix."""

    jwtToken: str = ""
    refreshToken: str = ""
    feedToken: str = ""


class OrderAck(msgspec.Struct, kw_only=True):
    """placeOrder/modifyOrder/cancelOrder data."""

    script: Loose = None
    orderid: Loose = None
    uniqueorderid: Loose = None


class OrderRecord(msgspec.Struct, kw_only=True):
    """One order as the order book, order details and the order-update stream carry it."""

    variety: Loose = None
    ordertype: Loose = None
    producttype: Loose = None
    duration: Loose = None
    price: Loose = None
    triggerprice: Loose = None
    quantity: Loose = None
    tradingsymbol: Loose = None
    transactiontype: Loose = None
    exchange: Loose = None
    symboltoken: Loose = None
    lotsize: Loose = None
    averageprice: Loose = None
    filledshares: Loose = None
    unfilledshares: Loose = None
    orderid: Loose = None
    uniqueorderid: Loose = None
    ordertag: Loose = None
    text: Loose = None
    status: Loose = None
    orderstatus: Loose = None
    updatetime: Loose = None
    exchtime: Loose = None
    fillid: Loose = None
    filltime: Loose = None


class TradeRecord(msgspec.Struct, kw_only=True):
    """One trade-book row."""

    orderid: Loose = None
    fillid: Loose = None
    fillprice: Loose = None
    fillsize: Loose = None
    filltime: Loose = None
    symboltoken: Loose = None
    tradingsymbol: Loose = None
    transactiontype: Loose = None


class PositionRecord(msgspec.Struct, kw_only=True):
    """One getPosition row (every number a string in the docs)."""

    symboltoken: Loose = None
    tradingsymbol: Loose = None
    exchange: Loose = None
    producttype: Loose = None
    netqty: Loose = None
    avgnetprice: Loose = None
    netprice: Loose = None
    realised: Loose = None


class OrderUpdate(msgspec.Struct, kw_only=True):
    """One order-update WebSocket message (angel-smartapi.md §3)."""

    user_id: Loose = msgspec.field(default=None, name="user-id")
    status_code: Loose = msgspec.field(default=None, name="status-code")
    order_status: Loose = msgspec.field(default=None, name="order-status")
    error_message: Loose = msgspec.field(default=None, name="error-message")
    orderData: OrderRecord | None = None


# Decoders are built once (msgspec compiles them per type).
ENVELOPE = msgspec.json.Decoder(Envelope)
LOGIN_DATA = msgspec.json.Decoder(LoginData | None | str)
ORDER_ACK = msgspec.json.Decoder(OrderAck | None | str)
ORDER_RECORD = msgspec.json.Decoder(OrderRecord | None | str)
ORDER_LIST = msgspec.json.Decoder(list[OrderRecord] | None | str)
TRADE_LIST = msgspec.json.Decoder(list[TradeRecord] | None | str)
POSITION_LIST = msgspec.json.Decoder(list[PositionRecord] | None | str)
ORDER_UPDATE = msgspec.json.Decoder(OrderUpdate)
ENCODER = msgspec.json.Encoder()


class Parsed(NamedTuple):
    """A classified reply."""

    kind: Kind
    http_status: int
    code: str
    message: str
    data: msgspec.Raw


def _truthy(v: bool | str | None) -> bool:
    return v is True or (isinstance(v, str) and v.strip().lower() == "true")


def _snippet(body: bytes) -> str:
    # Enough of a plain-text/HTML reply to recognise it, never the whole page.
    return body[:120].decode("utf-8", "replace").strip()


def classify(http_status: int, body: bytes) -> Parsed:
    """Classify one REST reply (see the module docstring for the rules)."""
    env: Envelope | None = None
    if body.strip():
        try:
            env = ENVELOPE.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            env = None
    if env is not None and (env.status is not None or env.success is not None):
        code = (env.errorcode or env.errorCode or "").strip()
        message = (env.message or "").strip()
        if http_status >= 500:
            # A server error that still wrote an envelope says nothing reliable about effect.
            return Parsed("unknown", http_status, code or f"HTTP{http_status}", message, env.data)
        if _truthy(env.status) or _truthy(env.success):
            return Parsed("ok", http_status, code, message, env.data)
        kind: Kind = "auth" if code in AUTH_CODES else "failed"
        return Parsed(kind, http_status, code, message, env.data)
    text = _snippet(body)
    if http_status == 429 or (http_status == 403 and _RATE_TEXT.search(text)):
        return Parsed("rate_limited", http_status, f"HTTP{http_status}", text, _NULL)
    if http_status == 401:
        return Parsed("auth", http_status, "HTTP401", text, _NULL)
    if not text:
        return Parsed("unknown", http_status, f"HTTP{http_status}", "empty reply", _NULL)
    return Parsed("unknown", http_status, f"HTTP{http_status}", f"not an envelope: {text}", _NULL)


# ---- field conversion ---------------------------------------------------------------------


def as_str(v: Loose) -> str:
    """A loose field as text: ``None`` → ``""``, ``201020000000080`` → ``"201020000000080"``."""
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def as_float(v: Loose) -> float:
    """A loose number; ``None`` and ``""`` are 0 (Angel's empty fields). Garbage raises."""
    if v is None:
        return 0.0
    if isinstance(v, str):
        v = v.strip()
        return float(v) if v else 0.0
    return float(v)


def as_int(v: Loose) -> int:
    """A loose whole number (``"65"``, ``65``, ``"65.0"``); ``None``/``""`` are 0."""
    return round(as_float(v))


# ---- statuses -----------------------------------------------------------------------------

# Angel's order-book/stream status strings (lower case), grouped by what they mean for us.
_TERMINAL: dict[str, BrokerStatus] = {
    "complete": "FILLED",
    "executed": "FILLED",
    "cancelled": "CANCELLED",
    "cancelled after market order": "CANCELLED",
    "rejected": "REJECTED",
}
_LIVE = frozenset({"open", "modified"})
_PENDING = frozenset(
    {
        "open pending",
        "validation pending",
        "put order req received",
        "modify pending",
        "modify validation pending",
        "modify order req received",
        "cancel pending",
        "cancel order req received",
        "trigger pending",
        "after market order req received",
        "modify after market order req received",
        "amo req received",
        "pending",
    }
)
# order-update ``order-status`` codes (DOC-11), used when the text is missing or new to us.
_CODES: dict[str, str] = {
    "AB01": "open",
    "AB02": "cancelled",
    "AB03": "rejected",
    "AB04": "modified",
    "AB05": "complete",
    "AB06": "after market order req received",
    "AB07": "cancelled after market order",
    "AB08": "modify after market order req received",
    "AB09": "open pending",
    "AB10": "trigger pending",
    "AB11": "modify pending",
}


def broker_status(text: str, code: str = "", filled: int = 0) -> BrokerStatus:
    """Map Angel's status string (or, failing that, the stream's ``ABnn`` code) to ours.

    A live order with fills is ``PARTIAL``; an unrecognised status is ``PENDING`` (non-terminal,
    so the router keeps reconciling it rather than closing it on a guess).
    """
    s = text.strip().lower() or _CODES.get(code.strip().upper(), "")
    if s not in _TERMINAL and s not in _LIVE and s not in _PENDING:
        s = _CODES.get(code.strip().upper(), s)
    if s in _TERMINAL:
        return _TERMINAL[s]
    if filled > 0:
        return "PARTIAL"
    return "OPEN" if s in _LIVE else "PENDING"


def parse_ist_time(v: Loose) -> int:
    """``"25-Oct-2023 23:53:21"`` (IST) → epoch ns; 0 when absent or unparseable."""
    s = as_str(v)
    if not s:
        return 0
    try:
        t = dt.datetime.strptime(s, "%d-%b-%Y %H:%M:%S").replace(tzinfo=IST)
    except ValueError:
        return 0
    return int(t.timestamp()) * 1_000_000_000


def to_broker_order(rec: OrderRecord, code: str = "") -> BrokerOrder | None:
    """One Angel order record as the port's ``BrokerOrder``; None if it names no order.

    Raises:
        ValueError: a number field holds something that is not a number.
    """
    oid = as_str(rec.orderid)
    side = as_str(rec.transactiontype).upper()
    if not oid or side not in ("BUY", "SELL"):
        return None
    filled = as_int(rec.filledshares)
    quantity = as_int(rec.quantity) or filled + as_int(rec.unfilledshares)
    text = as_str(rec.status) or as_str(rec.orderstatus)
    return BrokerOrder(
        broker_order_id=oid,
        tag=as_str(rec.ordertag),
        status=broker_status(text, code, filled),
        token=as_str(rec.symboltoken),
        side=side,  # type: ignore[arg-type]
        quantity=quantity,
        filled_quantity=filled,
        average_price=as_float(rec.averageprice),
        price=as_float(rec.price),
        text=as_str(rec.text),
        update_ns=parse_ist_time(rec.updatetime),
    )


def to_position(rec: PositionRecord) -> BrokerPosition | None:
    """One getPosition row as a ``BrokerPosition``; None without a token."""
    token = as_str(rec.symboltoken)
    if not token:
        return None
    return BrokerPosition(
        token=token,
        symbol=as_str(rec.tradingsymbol),
        net_quantity=as_int(rec.netqty),
        average_price=as_float(rec.avgnetprice) or as_float(rec.netprice),
        realised_pnl=as_float(rec.realised),
    )


def to_fill(rec: TradeRecord, tag: str = "") -> BrokerFill | None:
    """One trade-book row as a ``BrokerFill`` (the trade book carries no tag: pass it in)."""
    oid = as_str(rec.orderid)
    if not oid:
        return None
    return BrokerFill(
        broker_order_id=oid,
        tag=tag,
        fill_id=as_str(rec.fillid),
        quantity=as_int(rec.fillsize),
        price=as_float(rec.fillprice),
        ts=0,
    )
