"""Angel's envelopes, plain-text replies, records and statuses, on literal samples.

Samples are the ones quoted in angel-smartapi.md §3/§4 (and the docs mirror they cite), with the
docs' typos (missing commas, bare words) repaired only where JSON requires it.
"""

from __future__ import annotations

import datetime as dt

import pytest

from smartflow.core.errors import FatalError
from smartflow.core.timeutil import IST, ns_at_ist
from smartflow.orders import angel_wire as w
from smartflow.orders.angel import check_limit_day, modify_body, next_daily_action, order_body
from smartflow.orders.port import PlaceRequest


# ---- envelopes ----------------------------------------------------------------------------

PLACE_OK = b"""{"status": true, "message": "SUCCESS", "errorcode": "",
 "data": {"script": "SBIN-EQ", "orderid": "200910000000111", "uniqueorderid": "34reqfachdfih"}}"""
API_FAIL = b'{"status": false, "message": "Bad Input", "errorcode": "AB1007", "data": null}'
API_FAIL_STRINGS = (
    b'{"status": "false", "message": "Invalid totp", "errorcode": "AB1050", "data": "null"}'
)
GATEWAY_AG8001 = (
    b'{"success": false, "message": "Invalid Token", "errorCode": "AG8001", "data": ""}'
)
GATEWAY_AB1006 = (
    b'{"success": false, "message": "Client Is Block For Trading", "errorCode": "AB1006",'
    b' "data": ""}'
)
AG7002 = (
    b'{"success": false, "message": "Access denied: Unregistered IP address. Register your IP '
    b'before retrying.", "errorCode": "AG7002", "data": ""}'
)
SESSION_EXPIRED = (
    b'{"status": false, "message": "Invalid Session or Session is Expired Please Re-login",'
    b' "errorcode": "AB1010", "data": null}'
)


def test_success_envelope_and_ack() -> None:
    p = w.classify(200, PLACE_OK)
    assert (p.kind, p.code, p.message) == ("ok", "", "SUCCESS")
    ack = w.ORDER_ACK.decode(p.data)
    assert isinstance(ack, w.OrderAck)
    assert (w.as_str(ack.orderid), w.as_str(ack.uniqueorderid)) == (
        "200910000000111",
        "34reqfachdfih",
    )


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (200, API_FAIL, "failed", "AB1007"),
        (200, API_FAIL_STRINGS, "failed", "AB1050"),
        (200, GATEWAY_AB1006, "failed", "AB1006"),
        (401, GATEWAY_AG8001, "auth", "AG8001"),
        (403, GATEWAY_AG8001, "auth", "AG8001"),
        (200, GATEWAY_AG8001, "auth", "AG8001"),
        (200, SESSION_EXPIRED, "auth", "AB1010"),
        (403, AG7002, "failed", "AG7002"),
        (200, AG7002, "failed", "AG7002"),
    ],
)
def test_failure_envelopes_of_both_shapes(status: int, body: bytes, kind: str, code: str) -> None:
    p = w.classify(status, body)
    assert (p.kind, p.code) == (kind, code)
    assert p.message


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (403, b"Access denied because of exceeding rate limit"),
        (403, b"Access denied because of exceeding access rate"),
        (429, b"Too many requests"),
        (429, b""),
    ],
)
def test_plain_text_rate_limit_replies(status: int, body: bytes) -> None:
    p = w.classify(status, body)
    assert p.kind == "rate_limited"
    assert p.code == f"HTTP{status}"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b""),  # accepted while the reply is empty (openalgo #721)
        (200, b"   "),
        (400, b""),  # WAF block with an empty body
        (200, b"<html><title>Request Rejected</title></html>"),
        (500, b"<html>Internal Server Error</html>"),
        (502, b"Bad Gateway"),
        (503, API_FAIL),  # an envelope on a 5xx says nothing reliable about effect
        (500, PLACE_OK),
        (200, b"[1, 2]"),  # JSON, but no envelope
        (200, b'{"message": "SUCCESS"}'),
        (403, b"Forbidden"),  # a 403 that does not name the rate limit
    ],
)
def test_everything_else_is_unknown(status: int, body: bytes) -> None:
    assert w.classify(status, body).kind == "unknown"


def test_plain_401_is_an_auth_failure() -> None:
    assert w.classify(401, b"Unauthorized").kind == "auth"


def test_empty_data_shapes_decode() -> None:
    for data in (b"null", b'""', b"[]"):
        assert w.ORDER_LIST.decode(data) in (None, "", [])
        assert w.POSITION_LIST.decode(data) in (None, "", [])


# ---- records ------------------------------------------------------------------------------

# Order book (DOC-05): every number a string, orderid a bare number, symboltoken null.
BOOK_RECORD = b"""{"variety": "NORMAL", "ordertype": "LIMIT", "producttype": "INTRADAY",
"duration": "DAY", "price": "194.00", "triggerprice": "0", "quantity": "1",
"disclosedquantity": "0", "squareoff": "0", "stoploss": "0", "trailingstoploss": "0",
"tradingsymbol": "SBIN-EQ", "transactiontype": "BUY", "exchange": "NSE", "symboltoken": null,
"instrumenttype": "", "strikeprice": "-1", "optiontype": "", "expirydate": "", "lotsize": "1",
"cancelsize": "1", "averageprice": "0", "filledshares": "0", "unfilledshares": "1",
"orderid": 201020000000080, "text": "", "status": "cancelled", "orderstatus": "cancelled",
"updatetime": "20-Oct-2020 13:10:59", "exchtime": "20-Oct-2020 13:10:59",
"exchorderupdatetime": "20-Oct-2020 13:10:59", "fillid": "", "filltime": "", "parentorderid": "",
"uniqueorderid": "34reqfachdfih", "exchangeorderid": "1100000000048358"}"""

# Individual order (DOC-05): prices as numbers, quantities as strings.
DETAILS_RECORD = b"""{"variety": "NORMAL", "ordertype": "LIMIT", "producttype": "DELIVERY",
"duration": "DAY", "price": 2298.25, "triggerprice": 0, "quantity": "1",
"disclosedquantity": "0", "squareoff": 0, "stoploss": 0, "trailingstoploss": 0,
"tradingsymbol": "RELIANCE-EQ", "transactiontype": "BUY", "exchange": "NSE",
"symboltoken": "2885", "instrumenttype": "", "strikeprice": -1, "optiontype": "",
"expirydate": "", "lotsize": "1", "cancelsize": "0", "averageprice": 0, "filledshares": "0",
"unfilledshares": "1", "orderid": "231010000000970",
"text": "Your order has been rejected due to Insufficient Funds.", "status": "rejected",
"orderstatus": "rejected", "updatetime": "10-Oct-2023 09:00:16", "exchtime": "",
"exchorderupdatetime": "", "fillid": "", "filltime": "", "parentorderid": "", "ordertag": "",
"uniqueorderid": "05ebf91b-bea4-4a1d-b0f2-4259606570e3"}"""

# Order-update stream (DOC-11 sample): AB00 with a rejected order, "filledshares" a string.
STREAM_MESSAGE = b"""{"user-id": "Your_client_code", "status-code": "200",
"order-status": "AB00", "error-message": "", "orderData": {"variety": "NORMAL",
"ordertype": "LIMIT", "ordertag": "10007712", "producttype": "DELIVERY", "price": 551,
"triggerprice": 0, "quantity": "1", "disclosedquantity": "0", "duration": "DAY",
"squareoff": 0, "stoploss": 0, "trailingstoploss": 0, "tradingsymbol": "SBIN-EQ",
"transactiontype": "BUY", "exchange": "NSE", "symboltoken": "3045", "instrumenttype": "",
"strikeprice": -1, "optiontype": "", "expirydate": "", "lotsize": "1", "cancelsize": "0",
"averageprice": 0, "filledshares": "0", "unfilledshares": "1", "orderid": "1111111",
"text": "Adapter is Logged Off", "status": "rejected", "orderstatus": "rejected",
"updatetime": "25-Oct-2023 23:53:21", "exchtime": "", "exchorderupdatetime": "",
"fillid": "", "filltime": "", "parentorderid": ""}}"""

# The connect greeting: empty strings where numbers would be.
GREETING = b"""{"user-id": "Your_client_code", "status-code": "200", "order-status": "AB00",
"error-message": "", "orderData": {"variety": "", "ordertype": "", "ordertag": "",
"producttype": "", "price": 0, "triggerprice": 0, "quantity": "0", "filledshares": "",
"unfilledshares": "", "orderid": "", "text": "", "status": "", "orderstatus": ""}}"""


def test_order_book_record_with_numeric_orderid_and_null_token() -> None:
    rec = w.ORDER_RECORD.decode(BOOK_RECORD)
    assert isinstance(rec, w.OrderRecord)
    o = w.to_broker_order(rec)
    assert o is not None
    assert o.broker_order_id == "201020000000080"
    assert (o.status, o.side, o.token, o.quantity, o.filled_quantity) == (
        "CANCELLED",
        "BUY",
        "",
        1,
        0,
    )
    assert o.price == 194.0
    assert o.average_price == 0.0
    when = dt.datetime(2020, 10, 20, 13, 10, 59, tzinfo=IST)
    assert o.update_ns == int(when.timestamp()) * 1_000_000_000


def test_details_record_with_numeric_prices() -> None:
    rec = w.ORDER_RECORD.decode(DETAILS_RECORD)
    assert isinstance(rec, w.OrderRecord)
    o = w.to_broker_order(rec)
    assert o is not None
    assert (o.broker_order_id, o.status, o.token, o.price) == (
        "231010000000970",
        "REJECTED",
        "2885",
        2298.25,
    )
    assert o.text.startswith("Your order has been rejected")
    assert w.as_str(rec.uniqueorderid) == "05ebf91b-bea4-4a1d-b0f2-4259606570e3"


def test_stream_message_and_greeting() -> None:
    msg = w.ORDER_UPDATE.decode(STREAM_MESSAGE)
    assert msg.order_status == "AB00"
    assert msg.orderData is not None
    o = w.to_broker_order(msg.orderData, "AB03")
    assert o is not None
    assert (o.tag, o.status, o.text, o.price) == (
        "10007712",
        "REJECTED",
        "Adapter is Logged Off",
        551.0,
    )
    hello = w.ORDER_UPDATE.decode(GREETING)
    assert hello.orderData is not None
    assert w.to_broker_order(hello.orderData, "AB00") is None  # names no order


def test_list_data_and_garbage_numbers() -> None:
    rows = w.ORDER_LIST.decode(b"[" + BOOK_RECORD + b"," + DETAILS_RECORD + b"]")
    assert isinstance(rows, list)
    assert len(rows) == 2
    bad = w.OrderRecord(orderid="1", transactiontype="BUY", quantity="lots")
    with pytest.raises(ValueError, match="lots"):
        w.to_broker_order(bad)


@pytest.mark.parametrize(
    ("value", "as_int", "as_float", "as_str"),
    [
        ("65", 65, 65.0, "65"),
        (65, 65, 65.0, "65"),
        ("65.0", 65, 65.0, "65.0"),
        (194.5, 194, 194.5, "194.5"),
        ("", 0, 0.0, ""),
        (None, 0, 0.0, ""),
        (201020000000080, 201020000000080, 201020000000080.0, "201020000000080"),
        (2.0e14, 200000000000000, 2.0e14, "200000000000000"),
    ],
)
def test_loose_numbers(value: w.Loose, as_int: int, as_float: float, as_str: str) -> None:
    assert w.as_int(value) == as_int
    assert w.as_float(value) == as_float
    assert w.as_str(value) == as_str


def test_positions_and_trades_all_strings() -> None:
    rows = w.POSITION_LIST.decode(
        b'[{"exchange": "NFO", "symboltoken": "43210", "tradingsymbol": "NIFTY28MAR2422000CE",'
        b' "netqty": "-75", "avgnetprice": "101.35", "netprice": "101.35", "realised": "-12.50",'
        b' "buyqty": "0", "sellqty": "75"}, {"symboltoken": null, "netqty": "0"}]'
    )
    assert isinstance(rows, list)
    pos = w.to_position(rows[0])
    assert pos is not None
    assert (pos.token, pos.net_quantity, pos.average_price, pos.realised_pnl) == (
        "43210",
        -75,
        101.35,
        -12.5,
    )
    assert w.to_position(rows[1]) is None
    trades = w.TRADE_LIST.decode(
        b'[{"exchange": "NSE", "tradingsymbol": "ITC-EQ", "fillprice": "175.00",'
        b' "fillsize": "1", "orderid": "201020000000095", "fillid": "50005750",'
        b' "filltime": "13:27:53"}]'
    )
    assert isinstance(trades, list)
    fill = w.to_fill(trades[0], "tag-1")
    assert fill is not None
    assert (fill.broker_order_id, fill.fill_id, fill.quantity, fill.price, fill.tag) == (
        "201020000000095",
        "50005750",
        1,
        175.0,
        "tag-1",
    )


# ---- statuses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code", "filled", "expected"),
    [
        ("open", "", 0, "OPEN"),
        ("open", "", 75, "PARTIAL"),
        ("complete", "", 75, "FILLED"),
        ("cancelled", "", 0, "CANCELLED"),
        ("cancelled", "", 75, "CANCELLED"),
        ("rejected", "", 0, "REJECTED"),
        ("trigger pending", "", 0, "PENDING"),
        ("open pending", "", 0, "PENDING"),
        ("validation pending", "", 0, "PENDING"),
        ("modify pending", "", 75, "PARTIAL"),
        ("modified", "", 0, "OPEN"),
        ("Complete", "", 75, "FILLED"),
        ("", "AB05", 75, "FILLED"),
        ("", "AB02", 0, "CANCELLED"),
        ("", "AB03", 0, "REJECTED"),
        ("", "AB01", 0, "OPEN"),
        ("", "AB04", 0, "OPEN"),
        ("", "AB09", 0, "PENDING"),
        ("something new", "AB05", 75, "FILLED"),
        ("something new", "", 0, "PENDING"),
        ("", "", 0, "PENDING"),
    ],
)
def test_status_mapping(text: str, code: str, filled: int, expected: str) -> None:
    assert w.broker_status(text, code, filled) == expected


# ---- request bodies and the daily schedule ------------------------------------------------

REQ = PlaceRequest(
    tag="ord-1",
    symbol="NIFTY28MAR2422000CE",
    token="43210",
    exchange="NFO",
    side="BUY",
    quantity=75,
    price=101.35,
)


def test_order_bodies_are_limit_day_strings() -> None:
    body = order_body(REQ)
    assert all(isinstance(v, str) for v in body.values())
    assert (body["ordertype"], body["duration"], body["variety"]) == ("LIMIT", "DAY", "NORMAL")
    assert (body["price"], body["quantity"], body["ordertag"]) == ("101.35", "75", "ord-1")
    check_limit_day(body)
    mod = modify_body("201020000000080", REQ)
    assert (mod["orderid"], mod["ordertype"], mod["duration"]) == (
        "201020000000080",
        "LIMIT",
        "DAY",
    )
    check_limit_day(mod)
    check_limit_day({"variety": "NORMAL", "orderid": "1"})  # cancel: nothing to check
    with pytest.raises(FatalError):
        check_limit_day({**body, "ordertype": "MARKET"})
    with pytest.raises(FatalError):
        check_limit_day({**body, "duration": "IOC"})
    with pytest.raises(FatalError):
        check_limit_day({**body, "price": "0"})


def _ist(y: int, m: int, d: int, hh: int, mm: int) -> int:
    return ns_at_ist(dt.date(y, m, d), dt.time(hh, mm))


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Monday 2026-11-23
        (_ist(2026, 11, 23, 7, 0), (_ist(2026, 11, 23, 8, 45), "login")),
        (_ist(2026, 11, 23, 10, 0), (_ist(2026, 11, 23, 15, 45), "logout")),
        (_ist(2026, 11, 23, 16, 0), (_ist(2026, 11, 24, 8, 45), "login")),
        # Friday evening → Monday morning
        (_ist(2026, 11, 27, 16, 0), (_ist(2026, 11, 30, 8, 45), "login")),
        # Saturday
        (_ist(2026, 11, 28, 9, 0), (_ist(2026, 11, 30, 8, 45), "login")),
    ],
)
def test_daily_schedule(now: int, expected: tuple[int, str]) -> None:
    assert next_daily_action(now, dt.time(8, 45), dt.time(15, 45)) == expected
