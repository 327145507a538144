"""Outboxes, the webhook signature, the signal throttle, the summary and the config rules.

The webhook sink talks to a real aiohttp receiver on 127.0.0.1 whose answers the test scripts.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest
import pytest_asyncio
import structlog
from aiohttp import web

from smartflow.alerts.commands import EntryGate
from smartflow.alerts.events import (
    Alert,
    SignalThrottle,
    contract_pnl,
    daily_summary,
    order_alert,
)
from smartflow.alerts.sinks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Outbox,
    WebhookSink,
    sign,
    verify,
)
from smartflow.app.alerting import Alerting
from smartflow.config import (
    AlertsConfig,
    Config,
    Credentials,
    Secret,
    TelegramConfig,
    WebhookConfig,
    decode,
    load_credentials,
)
from smartflow.core.errors import ConfigError, FatalError
from smartflow.core.messages import OrderIntent, SmartMoneySignal
from smartflow.journal.store import FillRow, OrderRow, PositionRow


SECRET = "hook-secret"


class Receiver:
    """Answers each POST with the next scripted status (204 once the script is used up)."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.bodies: list[tuple[dict[str, str], bytes]] = []
        self.gate: asyncio.Event | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.gate is not None:
            await self.gate.wait()
        self.bodies.append((dict(request.headers), body))
        return web.Response(status=self.script.pop(0) if self.script else 204)


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    app = web.Application()
    app.router.add_post("/", r.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    r.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/"  # type: ignore[union-attr]
    try:
        yield r
    finally:
        if r.gate is not None:
            r.gate.set()
        await runner.cleanup()


def _cfg(**kw: Any) -> AlertsConfig:
    return AlertsConfig(enabled=True, retry_initial_s=0.01, retry_max_s=0.02, **kw)


async def _until(probe: Callable[[], Any], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


async def _running(box: Outbox) -> asyncio.Task[None]:
    return asyncio.create_task(box.run())


async def test_a_failing_webhook_is_retried_then_delivered(receiver: Receiver) -> None:
    receiver.script = [500, 503]
    sink = WebhookSink(receiver.url, Secret(SECRET), 5.0)
    box = Outbox(sink, _cfg(max_attempts=3), structlog.get_logger(), (SECRET,))
    task = await _running(box)
    try:
        assert box.put(Alert(kind="order_rejected", text="REJECTED x"))
        await _until(lambda: box.sent == 1, "delivered on the third attempt")
        assert box.attempt_failures == 2
        assert box.dropped["failed"] == 0
        headers, body = receiver.bodies[-1]
        assert verify(SECRET.encode(), headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
        assert msgspec.json.decode(body)["text"] == "REJECTED x"
    finally:
        task.cancel()
        await sink.close()


async def test_a_refusal_is_not_retried_and_counts_as_failed(receiver: Receiver) -> None:
    receiver.script = [403]
    sink = WebhookSink(receiver.url, Secret(SECRET), 5.0)
    box = Outbox(sink, _cfg(max_attempts=5), structlog.get_logger(), (SECRET,))
    task = await _running(box)
    try:
        box.put(Alert(kind="signal", text="s"))
        await _until(lambda: box.dropped["failed"] == 1, "dropped")
        assert box.attempt_failures == 1
        assert len(receiver.bodies) == 1
    finally:
        task.cancel()
        await sink.close()


async def test_a_stuck_sink_fills_the_queue_and_the_newest_is_dropped(receiver: Receiver) -> None:
    receiver.gate = asyncio.Event()  # the receiver hangs until released
    sink = WebhookSink(receiver.url, Secret(SECRET), 30.0)
    box = Outbox(sink, _cfg(queue_size=3), structlog.get_logger(), (SECRET,))
    task = await _running(box)
    try:
        box.put(Alert(kind="signal", text="first"))
        await _until(lambda: box.busy, "the first is in flight")
        accepted = [box.put(Alert(kind="signal", text=f"n{i}")) for i in range(5)]
        # put never waits: the three that fit are queued, the two newest are dropped.
        assert accepted == [True, True, True, False, False]
        assert box.dropped["queue_full"] == 2
        receiver.gate.set()
        await _until(lambda: box.sent == 4, "the queued ones delivered")
        assert [msgspec.json.decode(b)["text"] for _, b in receiver.bodies] == [
            "first",
            "n0",
            "n1",
            "n2",
        ]
        assert await box.drain(5.0)
    finally:
        task.cancel()
        await sink.close()


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"kind":"signal"}'
    sig = sign(b"k", "1700000000", body)
    # Recomputed independently (as `openssl dgst -sha256 -hmac k` would).
    assert sig == hmac.new(b"k", b'1700000000.{"kind":"signal"}', hashlib.sha256).hexdigest()
    assert verify(b"k", "1700000000", body, "sha256=" + sig, now_s=1700000100)
    assert not verify(b"k", "1700000000", body, "sha256=" + sig, now_s=1700001000)
    assert not verify(b"k", "not-a-time", body, "sha256=" + sig)
    assert not verify(b"k", "1700000000", body, sig, now_s=1700000000)  # the prefix is required


def _signal(**kw: Any) -> SmartMoneySignal:
    base: dict[str, Any] = {
        "underlying": "NIFTY",
        "ts": 0,
        "recommendation": "BUY_CALL",
        "oi_conviction_score": 0.8,
        "volume_aggression_score": 0.6,
        "smart_money_probability": 0.7,
        "trap_probability": 0.1,
        "fresh_position_detected": True,
        "market_control": "BUYERS",
        "can_trade": True,
        "reason": None,
        "strike": 24000.0,
        "option_type": "CE",
        "token": "t1",
        "evidence": [],
    }
    return SmartMoneySignal(**(base | kw))


def test_signal_alerts_are_throttled_per_contract_and_underlying() -> None:
    now = [0.0]
    throttle = SignalThrottle(60.0, now=lambda: now[0])
    assert throttle.allow(_signal())
    assert not throttle.allow(_signal())  # same contract
    assert not throttle.allow(_signal(token="t2", strike=24100.0))  # same underlying
    assert not throttle.allow(_signal(underlying="SENSEX", can_trade=False))  # not tradable
    assert not throttle.allow(_signal(underlying="SENSEX", recommendation="NEUTRAL"))
    assert throttle.allow(_signal(underlying="SENSEX", token="t9"))
    now[0] = 61.0
    assert throttle.allow(_signal())


def _row(state: str, **kw: Any) -> OrderRow:
    base: dict[str, Any] = {
        "order_id": "SF1",
        "day": "2026-12-03",
        "created_ns": 0,
        "broker": "paper",
        "underlying": "NIFTY",
        "token": "t1",
        "symbol": "NIFTY03DEC2624000CE",
        "exchange": "NFO",
        "side": "BUY",
        "quantity": 75,
        "lot_size": 75,
        "limit_price": 101.5,
        "purpose": "ENTRY",
        "reason": "r",
        "state": state,
        "updated_ns": 0,
    }
    return OrderRow(**(base | kw))


def test_order_events_map_to_alert_kinds() -> None:
    fill = FillRow(
        fill_id="f",
        order_id="SF1",
        broker_order_id="P1",
        day="d",
        ts_ns=0,
        token="t1",
        symbol="S",
        side="BUY",
        quantity=25,
        price=101.0,
    )
    sent = order_alert("order", _row("SENT"), None)
    assert sent is not None
    assert sent.kind == "order_sent"
    rejected = order_alert("order", _row("REJECTED", text="AB4036 RMS: margin exceeds"), None)
    assert rejected is not None
    assert rejected.kind == "order_rejected"
    assert "AB4036 RMS: margin exceeds" in rejected.text
    partial = order_alert("fill", _row("PARTIAL", filled_quantity=25), fill)
    assert partial is not None
    assert partial.kind == "order_partial"
    filled = order_alert("fill", _row("FILLED", filled_quantity=75, average_price=101.2), fill)
    assert filled is not None
    assert filled.kind == "order_filled"
    assert order_alert("order", _row("OPEN"), None) is None


def test_daily_summary_names_best_and_worst() -> None:
    positions = [
        PositionRow(day="d", token="a", symbol="A", underlying="N", realised_pnl=500.0),
        PositionRow(
            day="d",
            token="b",
            symbol="B",
            underlying="N",
            net_quantity=10,
            average_price=100.0,
            realised_pnl=0.0,
        ),
        PositionRow(day="d", token="c", symbol="C", underlying="N", realised_pnl=-300.0),
    ]
    by = contract_pnl(positions, lambda token: 90.0 if token == "b" else None)
    assert by == [("A", 500.0), ("B", -100.0), ("C", -300.0)]
    alert = daily_summary("2026-12-03", 6, 200.0, -100.0, by)
    assert alert.kind == "daily_summary"
    assert alert.text == (
        "DAY 2026-12-03: 6 fills, P&L +100.00 (realised +200.00, open -100.00); "
        "best A +500.00; worst C -300.00"
    )


# ---- config and credentials --------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[alerts.telegram]\nenabled = true\n", "alerts.telegram.chat_ids"),
        ("[alerts.webhook]\nenabled = true\nurl = 'ftp://x'\n", "alerts.webhook.url"),
        ("[alerts]\napproval = 'manual'\n", "alerts.approval"),
        ("[alerts]\nkinds_off = ['signals']\n", "alerts.kinds_off"),
        (
            "[alerts]\nenabled = true\napproval = 'manual'\n"
            "[alerts.telegram]\nenabled = true\nchat_ids = [1]\n",
            "alerts.approval_timeout_s",
        ),
    ],
)
def test_bad_alert_config_names_the_key(toml: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        decode(toml)


def test_a_sink_without_its_credential_refuses_to_start() -> None:
    cfg = Config(
        alerts=AlertsConfig(enabled=True, telegram=TelegramConfig(enabled=True, chat_ids=[1]))
    )
    with pytest.raises(FatalError, match="telegram_token credential"):
        Alerting(cfg, Credentials(), structlog.get_logger())
    hook = Config(
        alerts=AlertsConfig(enabled=True, webhook=WebhookConfig(enabled=True, url="http://h"))
    )
    with pytest.raises(FatalError, match="webhook_secret credential"):
        Alerting(hook, Credentials(), structlog.get_logger())
    with pytest.raises(FatalError, match="not a bot token") as e:
        Alerting(cfg, Credentials(telegram_token=Secret("oops secret")), structlog.get_logger())
    assert "oops secret" not in str(e.value)


def test_alert_credentials_come_from_the_environment_or_the_credentials_directory(
    tmp_path: Any,
) -> None:
    (tmp_path / "webhook_secret").write_text("from-file\n", encoding="utf-8")
    creds = load_credentials(
        {
            "CREDENTIALS_DIRECTORY": str(tmp_path),
            "SMARTFLOW_TELEGRAM_TOKEN": "1:abc",
            "SMARTFLOW_WEBHOOK_SECRET": "from-env",
        }
    )
    assert creds.telegram_token is not None
    assert creds.telegram_token.reveal() == "1:abc"
    assert creds.webhook_secret is not None
    assert creds.webhook_secret.reveal() == "from-file"
    assert "1:abc" not in repr(creds)


# ---- the entry gate ------------------------------------------------------------------------


def _entry(token: str = "t1") -> OrderIntent:  # noqa: S107 — a contract token
    return OrderIntent(
        intent_id=f"entry-{token}",
        ts=0,
        underlying="NIFTY",
        token=token,
        symbol=f"SYM{token}",
        exchange="NFO",
        side="BUY",
        lots=1,
        lot_size=75,
        purpose="ENTRY",
        reason="r",
        ttl_ns=10**12,
    )


def test_the_gate_holds_entries_for_approval_and_only_releases_them_unchanged() -> None:
    published: list[Alert] = []
    released: list[OrderIntent] = []

    def release(intent: OrderIntent) -> bool:
        released.append(intent)
        return True

    gate = EntryGate(published.append, release, 60.0, structlog.get_logger())
    entry = _entry()
    assert not gate(entry)  # held, not passed on
    assert not gate(_entry())  # a second entry for the same contract is not queued twice
    assert [a.kind for a in published] == ["approval"]
    key = published[0].fields["approval"]
    assert published[0].buttons == (("Approve", f"ap:{key}"), ("Reject", f"rj:{key}"))
    intent, outcome = gate.decide(key, approve=True)
    assert intent is entry
    assert released == [entry]  # the very same intent object: nothing modified
    assert "approved" in outcome
    assert gate.decide(key, approve=True) == (None, "no longer pending (decided or expired)")
    assert not gate(_entry("t2"))
    assert gate.decide(published[-1].fields["approval"], approve=False)[1] == "rejected SYMt2"
    assert released == [entry]
    gate.paused = True
    assert not gate(_entry("t3"))
    assert gate.counts == {"held": 2, "duplicate": 1, "approved": 1, "rejected": 1, "paused": 1}


def test_held_entries_expire_unapproved() -> None:
    gate = EntryGate(lambda _a: None, lambda _i: True, 0.0, structlog.get_logger())
    assert not gate(_entry())
    expired = gate.expire()
    assert [i.intent_id for i in expired] == ["entry-t1"]
    assert gate.held == {}
    assert gate.decide("1", approve=True)[0] is None


def test_without_approval_the_gate_passes_entries_unless_paused() -> None:
    gate = EntryGate(lambda _a: None, lambda _i: True, None, structlog.get_logger())
    assert gate(_entry())
    gate.paused = True
    assert not gate(_entry())
