"""Where alerts go: each sink behind its own outbox; the signed webhook sink.

The Telegram sink is in ``smartflow.alerts.telegram`` (the one module that imports aiogram).

An ``Outbox`` is one sink's bounded queue and the one task that drains it. ``put`` never
blocks: when the queue is full the *newest* alert is dropped and counted (``queue_full``), so
a dead sink costs the producers nothing but a counter. Delivery retries with doubling, jittered
backoff (a Telegram 429's ``retry_after`` is honoured); an alert that fails every attempt, or
that the sink refuses for good (a 4xx other than 408/429), is dropped and counted (``failed``).

Webhook signature: ``X-Smartflow-Signature: sha256=<hex>`` is HMAC-SHA256 under the
``webhook_secret`` credential of ``<X-Smartflow-Timestamp>.<raw body>``; the timestamp is Unix
seconds. A receiver recomputes it over the raw bytes, compares in constant time and refuses a
timestamp more than a few minutes off (``verify``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import random
import time
from collections import Counter
from typing import Any, Protocol

import aiohttp
import msgspec

from smartflow.alerts.events import Alert
from smartflow.config import AlertsConfig, Secret


SIGNATURE_HEADER = "X-Smartflow-Signature"
TIMESTAMP_HEADER = "X-Smartflow-Timestamp"
DRAIN_POLL_S = 0.05


class PermanentSinkError(Exception):
    """The sink refused this alert for good: retrying cannot help."""


class Sink(Protocol):
    """One destination."""

    name: str

    async def send(self, alert: Alert) -> float | None:
        """Deliver ``alert``; raise on failure. May return seconds the sink asked to wait."""
        ...


class RetryAfter(Exception):
    """The sink asked to wait ``seconds`` before the next attempt (a 429's retry-after)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"rate limited: retry after {seconds:g} s")
        self.seconds = seconds


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``<timestamp>.<body>`` (the webhook signature)."""
    return hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(
    secret: bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    now_s: float | None = None,
    tolerance_s: float = 300.0,
) -> bool:
    """A receiver's check: the signature matches and the timestamp is recent (replays fail)."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    now = time.time() if now_s is None else now_s
    if abs(now - ts) > tolerance_s:
        return False
    expected = "sha256=" + sign(secret, timestamp, body)
    return hmac.compare_digest(expected, signature)


class WebhookSink:
    """JSON POST of each alert, signed with the ``webhook_secret`` credential."""

    name = "webhook"

    def __init__(self, url: str, secret: Secret, timeout_s: float) -> None:
        self.url = url
        self._secret = secret
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._http: aiohttp.ClientSession | None = None

    async def send(self, alert: Alert) -> float | None:
        """POST ``{"kind", "ts", "text", "fields"}``; 2xx is delivered."""
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self.timeout)
        body = msgspec.json.encode(
            {
                "kind": alert.kind,
                "ts": alert.ts_ns / 1e9,
                "text": alert.text,
                "fields": alert.fields,
            }
        )
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: ts,
            SIGNATURE_HEADER: "sha256=" + sign(self._secret.reveal().encode(), ts, body),
        }
        async with self._http.post(self.url, data=body, headers=headers) as r:
            if 200 <= r.status < 300:
                return None
            why = f"HTTP {r.status}"
            if r.status == 429:
                with contextlib.suppress(ValueError):
                    raise RetryAfter(float(r.headers.get("Retry-After", "")))
            if 400 <= r.status < 500 and r.status not in (408, 429):
                raise PermanentSinkError(why)
            raise ConnectionError(why)

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._http is not None:
            await self._http.close()


class Outbox:
    """One sink's bounded queue, its delivery task and its counters."""

    def __init__(self, sink: Sink, cfg: AlertsConfig, log: Any, secrets: tuple[str, ...]) -> None:
        self.sink = sink
        self.cfg = cfg
        self.log = log.bind(sink=sink.name)
        self._secrets = secrets
        self.queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=cfg.queue_size)
        self.sent = 0
        self.dropped: Counter[str] = Counter()
        self.attempt_failures = 0
        self.busy = False
        self.failing = False

    def put(self, alert: Alert) -> bool:
        """Queue ``alert`` without waiting; False (and counted) when the queue is full."""
        try:
            self.queue.put_nowait(alert)
        except asyncio.QueueFull:
            self.dropped["queue_full"] += 1
            return False
        return True

    async def run(self) -> None:
        """Deliver until cancelled."""
        while True:
            alert = await self.queue.get()
            self.busy = True
            try:
                await self._deliver(alert)
            finally:
                self.busy = False

    async def _deliver(self, alert: Alert) -> None:
        delay = self.cfg.retry_initial_s
        for attempt in range(1, self.cfg.max_attempts + 1):
            try:
                await self.sink.send(alert)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.attempt_failures += 1
                self._failed(alert, e, attempt)
                if isinstance(e, PermanentSinkError) or attempt == self.cfg.max_attempts:
                    self.dropped["failed"] += 1
                    return
                wait = delay * (0.5 + random.random())  # jitter: sinks recovering are not stampeded
                if isinstance(e, RetryAfter):
                    wait = max(wait, e.seconds)
                await asyncio.sleep(wait)
                delay = min(delay * 2, self.cfg.retry_max_s)
                continue
            self.sent += 1
            if self.failing:
                self.failing = False
                self.log.info("alerts.sink_recovered")
            return

    def _failed(self, alert: Alert, e: Exception, attempt: int) -> None:
        if self.failing:
            return  # one line per outage, not per attempt: the counters have the rest
        self.failing = True
        error = f"{type(e).__name__}: {e}"
        for s in self._secrets:
            error = error.replace(s, "********")
        self.log.warning("alerts.sink_failing", kind=alert.kind, attempt=attempt, error=error)

    async def drain(self, timeout_s: float) -> bool:
        """Wait until everything queued was delivered or given up (True), or ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not self.queue.empty() or self.busy:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(DRAIN_POLL_S)
        return True
