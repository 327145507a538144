"""Reading getOIData replies: Angel leaves the record shape loosely documented, so be tolerant."""

from __future__ import annotations

import datetime as dt

import pytest

from smartflow.app.prevclose import parse_oi_reply, request_body


TODAY = dt.date(2026, 12, 4)


@pytest.mark.parametrize(
    ("status", "raw", "want"),
    [
        # The last record before today wins; today's own (intraday) record is ignored.
        (
            200,
            b'{"status":true,"message":"SUCCESS","errorcode":"","data":['
            b'{"time":"2026-12-02T00:00:00+05:30","oi":900},'
            b'{"time":"2026-12-03T00:00:00+05:30","oi":1200},'
            b'{"time":"2026-12-04T09:15:00+05:30","oi":1500}]}',
            1200,
        ),
        (200, b'{"status":true,"data":[["2026-12-03 15:29","1350.0"]]}', 1350),
        (200, b'{"status":true,"data":[]}', "no_data"),
        (200, b'{"status":true,"data":null}', "no_data"),
        (200, b'{"status":true,"data":[{"time":"bad","oi":1}]}', "no_data"),
        (200, b'{"status":false,"message":"x","errorcode":"AB1018","data":null}', "error_AB1018"),
        (401, b'{"success":false,"message":"Invalid Token","errorCode":"AG8001"}', "error_AG8001"),
        (403, b"Access denied because of exceeding rate limit", "rate_limited"),
        (500, b"<html>Request Rejected</html>", "http_500_not_json"),
        (200, b"", "not_json"),
    ],
)
def test_parse_oi_reply(status: int, raw: bytes, want: int | str) -> None:
    assert parse_oi_reply(status, raw, TODAY) == want


def test_request_asks_for_the_week_before_today() -> None:
    assert request_body("NFO", "40001", TODAY) == {
        "exchange": "NFO",
        "symboltoken": "40001",
        "interval": "ONE_DAY",
        "fromdate": "2026-11-27 09:15",
        "todate": "2026-12-03 15:30",
    }
