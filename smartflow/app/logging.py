"""structlog setup: JSON lines for services, a console renderer on a TTY, and redaction.

Redaction runs after exceptions are formatted, so tracebacks are scrubbed too. It removes:

* values of keys that name credentials (jwt, feed/refresh/access/auth/kill token, totp*, pin,
  password, authorization, api key, secret). The bare key ``token`` is the instrument token all
  over this code base (design.md §6 binds it as context), so it is kept when it is a plain
  number and redacted otherwise;
* ``Bearer …`` credentials, ``Authorization: …`` header values and JWT-shaped strings anywhere
  in any string value;
* the exact values of the credentials loaded at start (``secrets``), wherever they appear.

Libraries that log through the standard ``logging`` module (aiohttp, asyncio, websockets) are
routed through the same processors, so their lines (aiohttp quotes a bad request's bytes,
headers included) are redacted and rendered like ours. The API process's aiohttp logs come
to the daemon's logger over its channel (smartflow.api.worker) and take the same path.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import msgspec
import structlog


REDACTED = "[REDACTED]"
_SECRET_KEY = re.compile(
    r"(jwt|totp|password|passwd|secret|authorization|api[_-]?key|bearer|"
    r"(feed|refresh|access|auth|kill|session|bearer|id)[_-]?token|^pin$|_pin$|^mpin$)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(Bearer\s+)[^\s'\",]+", re.IGNORECASE)
_AUTH_HEADER = re.compile(
    r"(Authorization['\"]?\s*[:=]\s*(?:[A-Za-z]+\s+)?)[^\s'\",]+", re.IGNORECASE
)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_NUMERIC = re.compile(r"^\d{1,25}$")

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class Redactor:
    """structlog processor that removes credentials from every event."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first so a secret that contains another is masked whole.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """Mask credentials inside a free-form string."""
        for s in self.secrets:
            if s in text:
                text = text.replace(s, REDACTED)
        text = _BEARER.sub(r"\1" + REDACTED, text)
        text = _AUTH_HEADER.sub(r"\1" + REDACTED, text)
        return _JWT.sub(REDACTED, text)

    def _value(self, key: str, value: Any) -> Any:
        if key == "token":
            if isinstance(value, int) or (isinstance(value, str) and _NUMERIC.match(value)):
                return value
            return REDACTED
        if _SECRET_KEY.search(key):
            return REDACTED
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: self._value(str(k), v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._value("", v) for v in value]
        return value

    def __call__(
        self, _logger: Any, _method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Redact the event in place."""
        for key in list(event):
            event[key] = self._value(key, event[key])
        return event


class StdlibBridge(logging.Handler):
    """Sends ``logging`` records through structlog (and so through the redactor)."""

    def emit(self, record: logging.LogRecord) -> None:
        """Log ``record`` as a structlog event named after its logger."""
        try:
            log = structlog.get_logger(record.name)
            level = record.levelname.lower()
            method = getattr(log, level if level in LEVELS else "error")
            method(record.getMessage(), logger=record.name, exc_info=record.exc_info or None)
        except Exception:  # a handler must never raise into the library that logged
            self.handleError(record)


def _json_renderer(as_text: bool) -> Any:
    encoder = msgspec.json.Encoder(enc_hook=repr)

    def render(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> bytes | str:
        line = encoder.encode(event)
        return line.decode() if as_text else line

    return render


def configure(
    fmt: str = "auto",
    level: str = "info",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> Redactor:
    """Configure structlog once for the process.

    Args:
        fmt: ``json``, ``console`` or ``auto`` (console on a TTY, JSON otherwise).
        level: minimum level.
        secrets: credential values to mask wherever they appear.
        stream: text stream for output (stdout by default).

    Returns:
        The redactor, so credentials loaded later can be added to it.
    """
    out = stream or sys.stdout
    if fmt == "auto":
        fmt = "console" if out.isatty() else "json"
    redactor = Redactor(secrets)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redactor,
    ]
    if fmt == "json":
        # Bytes straight to the binary buffer when there is one (stdout, journald); a text-only
        # stream (tests, wrappers) gets the same line as text.
        binary = getattr(out, "buffer", None)
        processors = [*shared, _json_renderer(as_text=binary is None)]
        factory: Any = (
            structlog.BytesLoggerFactory(binary)
            if binary is not None
            else structlog.PrintLoggerFactory(out)
        )
    else:
        processors = [*shared, structlog.dev.ConsoleRenderer(colors=out.isatty())]
        factory = structlog.PrintLoggerFactory(out)
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not isinstance(h, StdlibBridge)]
    root.addHandler(StdlibBridge())
    root.setLevel(max(LEVELS[level], logging.WARNING))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    return redactor
