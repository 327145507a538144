"""Alerts and remote control against a local fake Telegram Bot API and a local webhook receiver.

One real daemon in sim mode (simulator over loopback, real paper router, real SQLite journal)
for the module; the tests drive it through the router's public ``submit`` and through chat
messages and button presses queued at the fake Bot API.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
import pytest_asyncio
import structlog
from simkit import running_sim
from support.fake_telegram import FakeBotApi, WebhookReceiver
from support.proxy import FaultProxy

from smartflow.alerts.sinks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from smartflow.app.daemon import Daemon, RunOptions
from smartflow.app.logging import StdlibBridge, configure
from smartflow.app.warmup import warm_up
from smartflow.config import (
    AlertsConfig,
    ApiConfig,
    Config,
    Credentials,
    DetectorConfig,
    FeedConfig,
    MarketConfig,
    Secret,
    SimConfig,
    StrategyConfig,
    TelegramConfig,
    WebhookConfig,
)
from smartflow.core.messages import OrderIntent


pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

TOKEN = "123456:TEST-fake-bot-token-abcdef"
HOOK_SECRET = "whsec-test-0123456789"
OWNER = 111
STRANGER = 999
START_TIMEOUT_S = 180.0
WAIT_S = 60.0


@dataclass
class Rig:
    daemon: Daemon
    bot: FakeBotApi
    hook: WebhookReceiver
    logs: io.StringIO
    journal_path: Path

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.logs.getvalue().splitlines()]

    def rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        con = sqlite3.connect(f"file:{self.journal_path}?mode=ro", uri=True)
        try:
            return list(con.execute(sql, args))
        finally:
            con.close()


async def until(probe: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.05)


async def _cut_and_reconnect(proxy: FaultProxy, daemon: Daemon) -> None:
    feed = daemon.feed
    assert feed is not None
    # A socket the stall escalation just aborted may still be reconnecting: cut a live one.
    await until(lambda: feed.connected and proxy.sockets > 0, "a proxied socket")
    before = feed.stats.reconnects
    proxy.cut()
    await until(lambda: feed.stats.reconnects > before and feed.connected, "a reconnect")


async def test_feed_stall_and_reconnect_storm_are_alerted(tmp_path: Path) -> None:
    # Faults on the wire between the daemon and the simulator (tests/support/proxy.py).
    hook = WebhookReceiver()
    await hook.start()
    sim = SimConfig(ticks_per_second=40.0, speed=1.0, strikes_each_side=5, scenarios=[])
    async with running_sim(sim) as server:
        proxy = FaultProxy(server.http_url)
        await proxy.start()
        cfg = Config(
            state_dir=str(tmp_path / "state"),
            api=ApiConfig(enabled=False),
            market=MarketConfig(strikes_each_side=3),
            feed=FeedConfig(
                ping_interval_s=0.5,
                stall_timeout_s=60.0,
                data_stall_s=1.0,
                subscribe_confirm_s=1.0,
                backoff_initial_s=0.05,
                backoff_max_s=0.5,
                healthy_after_s=1.0,
            ),
            sim=msgspec.structs.replace(sim, external_url=proxy.http_url),
            strategy=StrategyConfig(enabled=False),
            alerts=AlertsConfig(
                enabled=True,
                reconnect_storm=3,
                reconnect_window_s=120.0,
                webhook=WebhookConfig(enabled=True, url=hook.url),
            ),
        )
        await asyncio.to_thread(warm_up, cfg.model, cfg.detectors)
        daemon = Daemon(cfg, Credentials(webhook_secret=Secret(HOOK_SECRET)), RunOptions())
        try:
            await asyncio.wait_for(daemon.start(), START_TIMEOUT_S)
            feed = daemon.feed
            assert feed is not None
            proxy.drop_data = True  # pongs still flow: the socket looks alive and carries nothing
            await until(lambda: "feed_stall" in hook.kinds(), "a feed-stall alert")
            proxy.drop_data = False
            for _ in range(3):
                await _cut_and_reconnect(proxy, daemon)
            await until(lambda: "reconnect_storm" in hook.kinds(), "a reconnect-storm alert")
            assert hook.kinds().count("reconnect_storm") == 1  # once per window, not per reconnect
        finally:
            await daemon.shutdown()
            await proxy.stop()
            await hook.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    bot = FakeBotApi(TOKEN)
    hook = WebhookReceiver()
    await bot.start()
    await hook.start()
    state = tmp_path_factory.mktemp("alerts") / "state"
    cfg = Config(
        state_dir=str(state),
        api=ApiConfig(enabled=False),
        market=MarketConfig(strikes_each_side=3),
        detectors=DetectorConfig(bar_seconds=2),
        sim=SimConfig(ticks_per_second=40.0, speed=3.0, strikes_each_side=6),
        # The tests place every order themselves.
        strategy=StrategyConfig(enabled=False),
        alerts=AlertsConfig(
            enabled=True,
            queue_size=8,
            max_attempts=2,
            retry_initial_s=0.05,
            telegram=TelegramConfig(
                enabled=True, api_url=bot.url, chat_ids=[OWNER], poll_timeout_s=1
            ),
            webhook=WebhookConfig(enabled=True, url=hook.url, timeout_s=5.0),
        ),
    )
    await asyncio.to_thread(warm_up, cfg.model, cfg.detectors)
    buf = io.StringIO()
    creds = Credentials(telegram_token=Secret(TOKEN), webhook_secret=Secret(HOOK_SECRET))
    configure("json", "info", creds.values(), stream=buf)
    daemon = Daemon(cfg, creds, RunOptions())
    try:
        await asyncio.wait_for(daemon.start(), START_TIMEOUT_S)
        yield Rig(daemon, bot, hook, buf, state / "journal.sqlite3")
    finally:
        await daemon.shutdown()
        await bot.stop()
        await hook.stop()
        structlog.reset_defaults()
        root = logging.getLogger()
        root.handlers = [h for h in root.handlers if not isinstance(h, StdlibBridge)]


def _intent(rig: Rig, lots: int) -> OrderIntent:
    """An entry for the first option contract with a two-sided quote."""
    trading = rig.daemon.trading
    assert trading is not None
    book = rig.daemon.book
    assert book is not None
    for inst in book.chains[0].universe.options:
        q = trading.market.quote(inst.token)
        if q is not None and q.bid > 0 and q.ask > 0 and q.ltp > 0:
            now = rig.daemon.clock.now_ns()
            return OrderIntent(
                intent_id=f"test-entry-{now}",
                ts=now,
                underlying=book.chains[0].root,
                token=inst.token,
                symbol=inst.symbol,
                exchange=inst.segment,
                side="BUY",
                lots=lots,
                lot_size=inst.lot_size,
                purpose="ENTRY",
                reason="test",
                ttl_ns=120 * 1_000_000_000,
            )
    raise AssertionError("no quoted contract")


async def _quoted_intent(rig: Rig, lots: int) -> OrderIntent:
    async def probe() -> OrderIntent | None:
        try:
            return _intent(rig, lots)
        except AssertionError:
            return None

    deadline = time.monotonic() + WAIT_S
    while (got := await probe()) is None:
        assert time.monotonic() < deadline, "no contract got a two-sided quote"
        await asyncio.sleep(0.1)
    return got


def _net(rig: Rig, token: str) -> int:
    trading = rig.daemon.trading
    assert trading is not None
    pos = trading.router.positions.get(token)
    return pos.net_quantity if pos is not None else 0


async def test_start_is_announced_on_both_sinks(rig: Rig) -> None:
    await until(lambda: any("STARTED" in m.text for m in rig.bot.sent), "a start message")
    await until(lambda: "daemon_start" in rig.hook.kinds(), "a start webhook")
    assert all(m.chat_id == OWNER for m in rig.bot.sent)


async def test_a_rejected_order_reaches_telegram_with_the_brokers_reason(rig: Rig) -> None:
    trading = rig.daemon.trading
    assert trading is not None
    # Zero lots pass the risk checks but the paper broker, like Angel, refuses quantity 0.
    intent = await _quoted_intent(rig, lots=0)
    assert trading.router.submit(intent)
    msg = await until(
        lambda: [m for m in rig.bot.sent if m.text.startswith("REJECTED")], "a rejection message"
    )
    assert intent.symbol in msg[0].text
    assert "AB1007 INVALID PARAMETERS" in msg[0].text
    await until(lambda: "order_rejected" in rig.hook.kinds(), "a rejection webhook")


async def test_every_webhook_is_signed_and_the_signature_verifies(rig: Rig) -> None:
    await until(lambda: rig.hook.received, "a webhook")
    for r in rig.hook.received:
        ts, sig = r.headers[TIMESTAMP_HEADER], r.headers[SIGNATURE_HEADER]
        assert verify(HOOK_SECRET.encode(), ts, r.body, sig)
        assert not verify(HOOK_SECRET.encode(), ts, r.body + b" ", sig)
        assert not verify(b"another secret", ts, r.body, sig)
        assert not verify(HOOK_SECRET.encode(), ts, r.body, sig, now_s=int(ts) + 3600)
        body = json.loads(r.body)
        assert set(body) == {"kind", "ts", "text", "fields"}


async def test_a_command_from_an_unknown_chat_is_refused_and_journaled(rig: Rig) -> None:
    trading = rig.daemon.trading
    assert trading is not None
    rig.bot.message(STRANGER, "/kill")
    await until(
        lambda: rig.rows("SELECT * FROM remote_commands WHERE chat_id=?", (str(STRANGER),)),
        "the refusal in the journal",
    )
    row = rig.rows(
        "SELECT sender, command, status, detail FROM remote_commands WHERE chat_id=?",
        (str(STRANGER),),
    )[0]
    assert row == (f"{STRANGER} @user{STRANGER}", "/kill", "refused", "chat not allow-listed")
    await until(lambda: [m for m in rig.bot.sent if m.chat_id == STRANGER], "the refusal reply")
    rig.bot.press(STRANGER, "fl:1")  # a button press from a stranger is refused the same way
    await until(
        lambda: rig.rows(
            "SELECT 1 FROM remote_commands WHERE chat_id=? AND command='button fl'",
            (str(STRANGER),),
        ),
        "the refused button press in the journal",
    )
    assert not trading.guard.killed
    refused = [e for e in rig.lines() if e["event"] == "alerts.command_refused"]
    assert refused
    assert refused[0]["chat_id"] == STRANGER


async def test_status_and_pnl_answer_the_owner(rig: Rig) -> None:
    before = len(rig.bot.sent)
    rig.bot.message(OWNER, "/status")
    rig.bot.message(OWNER, "/pnl@sf_test_bot")
    await until(lambda: len(rig.bot.sent) >= before + 2, "two replies")
    texts = [m.text for m in rig.bot.sent[before:]]
    assert any(t.startswith("sim sockets=") for t in texts), texts
    assert any(t.startswith("P&L ") for t in texts), texts


async def test_flatten_asks_to_confirm_then_flattens_the_paper_book(rig: Rig) -> None:
    trading = rig.daemon.trading
    assert trading is not None
    intent = await _quoted_intent(rig, lots=1)
    assert trading.router.submit(intent)
    await until(lambda: _net(rig, intent.token) > 0, "the entry filled")
    before = len(rig.bot.sent)
    rig.bot.message(OWNER, "/flatten")
    asked = await until(
        lambda: [m for m in rig.bot.sent[before:] if m.buttons], "the confirmation question"
    )
    assert _net(rig, intent.token) > 0  # nothing happens before the confirmation
    confirm = next(b["callback_data"] for b in asked[0].buttons if b["text"] == "Flatten now")
    rig.bot.press(OWNER, confirm)
    await until(lambda: _net(rig, intent.token) == 0, "the position flattened")
    assert rig.daemon.alerting is not None
    assert rig.daemon.alerting.gate is not None
    assert rig.daemon.alerting.gate.paused
    rows = rig.rows(
        "SELECT sender, command, status FROM remote_commands WHERE chat_id=?", (str(OWNER),)
    )
    assert (f"{OWNER} @user{OWNER}", "/flatten", "asked") in rows
    assert (f"{OWNER} @user{OWNER}", "/flatten fl", "done") in rows
    rig.bot.message(OWNER, "/resume")
    gate = rig.daemon.alerting.gate
    await until(lambda: not gate.paused, "resumed")


async def test_manual_approval_holds_an_entry_until_approved(rig: Rig) -> None:
    trading = rig.daemon.trading
    alerting = rig.daemon.alerting
    assert trading is not None
    assert alerting is not None
    assert alerting.gate is not None
    alerting.gate.timeout_s = 60.0  # approval = "manual", switched on for this test
    try:
        intent = await _quoted_intent(rig, lots=1)
        assert not trading.submit(intent)  # held, not sent
        assert not trading.router.in_flight(intent.token)
        ask = await until(
            lambda: [m for m in rig.bot.sent if m.text.startswith("APPROVE?")], "the approval"
        )
        approve = next(b["callback_data"] for b in ask[0].buttons if b["text"] == "Approve")
        rig.bot.press(OWNER, approve)
        await until(lambda: _net(rig, intent.token) > 0, "the approved entry filled")
        rows = rig.rows(
            "SELECT command, status, detail FROM remote_commands WHERE command='approve'"
        )
        assert rows
        assert rows[0][1] == "done"
        assert intent.intent_id in rows[0][2]
    finally:
        alerting.gate.timeout_s = None


async def test_an_unanswered_entry_expires_and_is_journaled(rig: Rig) -> None:
    trading = rig.daemon.trading
    alerting = rig.daemon.alerting
    assert trading is not None
    assert alerting is not None
    assert alerting.gate is not None
    alerting.gate.timeout_s = 0.5
    try:
        intent = await _quoted_intent(rig, lots=1)
        assert not trading.submit(intent)
        await until(
            lambda: [m for m in rig.bot.sent if m.text == f"EXPIRED unapproved {intent.symbol}"],
            "the expiry message",
        )
        rows = rig.rows(
            "SELECT sender, status FROM remote_commands WHERE command='expire' AND detail=?",
            (intent.intent_id,),
        )
        assert rows == [("timeout", "done")]
        assert not trading.router.in_flight(intent.token)
    finally:
        alerting.gate.timeout_s = None


async def test_kill_from_the_owner_trips_and_the_reset_is_alerted(rig: Rig) -> None:
    trading = rig.daemon.trading
    assert trading is not None
    rig.bot.message(OWNER, "/kill")
    await until(lambda: trading.guard.killed, "the kill switch tripped")
    assert f"telegram {OWNER} @user{OWNER}" in trading.guard.kill_reason
    await until(
        lambda: [m for m in rig.bot.sent if m.text.startswith("KILL SWITCH ON: remote")],
        "the kill alert",
    )
    await trading.router.reset_kill("test")
    await until(lambda: [m for m in rig.bot.sent if "kill switch reset" in m.text], "the reset")
    kills = rig.rows("SELECT action, source FROM kill_events ORDER BY id")
    assert kills[-2:] == [("trip", "telegram"), ("reset", "test")]


async def test_the_daily_summary_counts_the_days_fills(rig: Rig) -> None:
    alerting = rig.daemon.alerting
    assert alerting is not None
    day = rig.rows("SELECT day FROM fills LIMIT 1")[0][0]
    fills = rig.rows("SELECT COUNT(*) FROM fills WHERE day=?", (day,))[0][0]
    await alerting.send_summary(day)  # what the watcher does when the market closes
    msg = await until(
        lambda: [m for m in rig.bot.sent if m.text.startswith(f"DAY {day}")], "the summary"
    )
    assert f": {fills} fills, P&L " in msg[0].text
    assert "best " in msg[0].text
    assert "worst " in msg[0].text


async def test_with_the_webhook_down_orders_are_unaffected_and_drops_are_counted(
    rig: Rig,
) -> None:
    trading = rig.daemon.trading
    metrics = rig.daemon.stages.telemetry.metrics
    assert trading is not None
    await rig.hook.stop()
    intent = await _quoted_intent(rig, lots=1)
    held = _net(rig, intent.token)
    assert trading.router.submit(intent)
    await until(lambda: _net(rig, intent.token) > held, "the entry filled with the sink down")

    def dropped() -> float:
        for line in metrics.exposition().decode().splitlines():
            if line.startswith('smartflow_alerts_dropped_total{reason="failed",sink="webhook"}'):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    await until(lambda: dropped() > 0, "a counted webhook drop")
    assert trading.router.refused == 0
    # The token and the webhook secret never reach a log line.
    text = rig.logs.getvalue()
    assert TOKEN not in text
    assert HOOK_SECRET not in text
