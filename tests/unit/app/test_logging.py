"""Log redaction: credential keys, Bearer/JWT strings, registered secrets, tracebacks."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from smartflow.app.logging import REDACTED, Redactor, configure


JWT = "eyJhbGciOiJIUzUxMiJ9.eyJ1c2VybmFtZSI6IlMxMjM0NTY3In0.c2lnbmF0dXJlLWJ5dGVz"


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    # configure() is process-global; give every other test structlog's defaults back.
    yield
    structlog.reset_defaults()


def _redact(event: dict[str, Any], secrets: tuple[str, ...] = ()) -> dict[str, Any]:
    return dict(Redactor(secrets)(None, "info", dict(event)))


@pytest.mark.parametrize(
    "key",
    [
        "jwt",
        "feed_token",
        "refresh_token",
        "authorization",
        "Authorization",
        "totp_secret",
        "pin",
        "password",
        "api_key",
        "x-api-key",
        "x-feed-token",
        "access_token",
        "kill_token",
        "mpin",
    ],
)
def test_credential_keys_are_redacted(key: str) -> None:
    assert _redact({"event": "login", key: "s3cr3t-value"})[key] == REDACTED


@pytest.mark.parametrize("value", ["40001", "99926000", 40001])
def test_numeric_instrument_token_is_kept(value: object) -> None:
    assert _redact({"event": "tick", "token": value})["token"] == value


@pytest.mark.parametrize("value", ["sim-feed-token", "abc123", JWT, None])
def test_non_numeric_token_is_redacted(value: object) -> None:
    assert _redact({"event": "x", "token": value})["token"] == REDACTED


def test_counters_and_plain_fields_are_kept() -> None:
    event = {
        "event": "stats",
        "unknown_token": 3,
        "tokens": 84,
        "frames": 1000,
        "stage": "feed",
        "client": "S1234567",
    }
    assert _redact(event) == event


def test_bearer_and_jwt_are_scrubbed_inside_strings() -> None:
    out = _redact(
        {
            "event": f"handshake with Authorization: Bearer abc.def-123 and {JWT} failed",
            "detail": f"header='Bearer xyz', jwt={JWT}",
            "headers": {"Authorization": "Bearer xyz", "x-client-code": "S1", "note": JWT},
            "tries": [f"Bearer {JWT}", "plain"],
        }
    )
    assert out["event"] == f"handshake with Authorization: Bearer {REDACTED} and {REDACTED} failed"
    assert "xyz" not in out["detail"]
    assert JWT not in out["detail"]
    assert out["headers"] == {"Authorization": REDACTED, "x-client-code": "S1", "note": REDACTED}
    assert out["tries"] == [f"Bearer {REDACTED}", "plain"]


def test_authorization_header_values_are_scrubbed_inside_strings() -> None:
    # As aiohttp quotes a request it could not parse (no Bearer scheme to go by).
    out = _redact(
        {
            "event": "bad request",
            "detail": "Invalid header value char: b'Authorization: s3cr3t-value\\x01'",
            "other": "Authorization=Basic dXNlcjpwYXNz, then",
        }
    )
    assert "s3cr3t" not in out["detail"]
    assert out["detail"].startswith(f"Invalid header value char: b'Authorization: {REDACTED}")
    assert out["other"] == f"Authorization=Basic {REDACTED}, then"


def test_registered_secrets_are_scrubbed_anywhere() -> None:
    secrets = ("S1234567", "S1234567-long-api-key", "abc")
    out = _redact(
        {
            "event": "client S1234567 logged in",
            "url": "https://x/?key=S1234567-long-api-key&y=1",
            "nested": {"a": ["with S1234567 inside"]},
            "short": "abc is too short to be a registered secret",
        },
        secrets,
    )
    assert out["event"] == f"client {REDACTED} logged in"
    # The longer secret is masked whole, not as "<masked>-long-api-key".
    assert out["url"] == f"https://x/?key={REDACTED}&y=1"
    assert out["nested"] == {"a": [f"with {REDACTED} inside"]}
    assert out["short"] == "abc is too short to be a registered secret"


def _json_lines(buffer: io.BytesIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().decode().splitlines()]


def test_configured_json_output_is_redacted_including_tracebacks() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8")
    configure(fmt="json", level="info", secrets=["PIN-98765"], stream=stream)
    log = structlog.get_logger().bind(stage="feed")
    log.info("feed.connected", token="40001", feed_token="ft-123", unknown_token=0)
    log.debug("not shown at info level")
    try:
        raise RuntimeError(f"rejected: Authorization Bearer tok-123 jwt {JWT} pin PIN-98765")
    except RuntimeError:
        log.exception("feed.auth_failed")
    lines = _json_lines(raw)
    assert [line["event"] for line in lines] == ["feed.connected", "feed.auth_failed"]
    first, second = lines
    assert first["token"] == "40001"
    assert first["feed_token"] == REDACTED
    assert first["unknown_token"] == 0
    assert {"event", "level", "ts", "stage"} <= set(first)
    exc = second["exception"]
    assert "Traceback" in exc
    assert "RuntimeError" in exc
    for leaked in ("tok-123", JWT, "PIN-98765"):
        assert leaked not in exc
    assert f"Bearer {REDACTED}" in exc


def test_configured_console_output_is_redacted() -> None:
    out = io.StringIO()
    configure(fmt="console", stream=out)
    structlog.get_logger().warning("retry", jwt="secret-jwt", message=f"Bearer {JWT}")
    text = out.getvalue()
    assert "retry" in text
    assert "secret-jwt" not in text
    assert JWT not in text


def test_json_output_goes_to_a_text_only_stream() -> None:
    out = io.StringIO()
    configure(fmt="json", stream=out)
    structlog.get_logger().info("hello")
    assert json.loads(out.getvalue())["event"] == "hello"
