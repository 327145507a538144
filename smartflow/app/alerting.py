"""Wiring of ``smartflow.alerts`` into the daemon: hooks in, tasks of its own, metrics out.

What it listens to costs the order path one non-blocking put per event: the router's event hook
(order sent, filled, partially filled, rejected), the daemon's signal hook (tradable signals,
throttled), and a watcher task that reads counters once a second (kill switch, feed stalls,
reconnect storms, failed re-logins of the feed and of live orders, 80 % of the loss limit, the
close). Every sink has its own bounded outbox and task; nothing here can block, slow or fail an
order, and a failure of any of it is logged and counted, never fatal to the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from smartflow.alerts.commands import EntryGate
from smartflow.alerts.events import (
    Alert,
    SignalThrottle,
    contract_pnl,
    daily_summary,
    order_alert,
    signal_alert,
)
from smartflow.alerts.sinks import Outbox, Sink, WebhookSink
from smartflow.config import Config, Credentials
from smartflow.core.errors import FatalError
from smartflow.core.messages import OrderIntent, SmartMoneySignal
from smartflow.core.timeutil import ist_date
from smartflow.journal.store import FillRow, OrderRow
from smartflow.orders.angel import AngelGateway


if TYPE_CHECKING:
    from aiogram import Bot

    from smartflow.alerts.telegram import TelegramCommands
    from smartflow.app.metrics import Metrics
    from smartflow.app.trading import Trading
    from smartflow.core.clock import Clock
    from smartflow.feed.session import FeedSession


WATCH_S = 1.0
STOP_DRAIN_S = 5.0
NS = 1_000_000_000


class Alerting:
    """The alerts side of one daemon: outboxes, the command loop, the watcher.

    With ``[alerts] enabled = false`` it hooks into nothing and starts nothing. A sink enabled
    without its credential is a ``FatalError`` naming the credential, at start.
    """

    def __init__(self, cfg: Config, creds: Credentials, log: Any) -> None:
        self.cfg = cfg
        self.acfg = cfg.alerts
        self.log = log
        self.off = set(self.acfg.kinds_off)
        self.bot: Bot | None = None
        self.webhook: WebhookSink | None = None
        sinks: list[Sink] = []
        tg = self.acfg.telegram
        if self.acfg.enabled and tg.enabled:
            token = _required(creds, "telegram_token", "alerts.telegram.enabled")
            # Here, not at the top: aiogram takes seconds to import, which only a daemon with
            # Telegram on should pay at start (tests/unit/alerts/test_lazy_telegram.py checks it).
            from smartflow.alerts import telegram

            self.bot = telegram.make_bot(token, tg.api_url)
            sinks += [telegram.TelegramSink(self.bot, chat) for chat in tg.chat_ids]
        if self.acfg.enabled and self.acfg.webhook.enabled:
            secret = creds.webhook_secret
            _required(creds, "webhook_secret", "alerts.webhook.enabled")
            assert secret is not None  # noqa: S101 — checked just above
            self.webhook = WebhookSink(self.acfg.webhook.url, secret, self.acfg.webhook.timeout_s)
            sinks.append(self.webhook)
        secrets = tuple(creds.values())
        self.outboxes = [Outbox(s, self.acfg, log, secrets) for s in sinks]
        self.throttle = SignalThrottle(self.acfg.signal_interval_s)
        self.tasks: list[asyncio.Task[Any]] = []
        self.gate: EntryGate | None = None
        self.commands: TelegramCommands | None = None
        self.trading: Trading | None = None
        self._feed: Callable[[], FeedSession | None] = lambda: None
        self._clock: Clock | None = None
        self.status_line: Callable[[], str] = lambda: ""
        self._killed = False
        self._reconnects = 0
        self._reconnect_times: deque[float] = deque()
        self._storm_at = -1e18
        self._stalls = 0
        self._relogin_failures = 0
        self._broker_auth_failed: str | None = None
        self._loss_warned_day = ""
        self._was_open = False
        self._summary_day = ""
        self.started = False

    # ---- wiring ---------------------------------------------------------------------------

    def attach(
        self,
        trading: Trading,
        clock: Clock,
        metrics: Metrics,
        feed: Callable[[], FeedSession | None],
        status: Callable[[], str],
    ) -> None:
        """Hook into the router's events, the signals, the entry path and the metrics."""
        if not self.acfg.enabled:
            return
        self.trading = trading
        self._clock = clock
        self._feed = feed
        self.status_line = status
        self._killed = trading.guard.killed
        trading.router.on_event.append(self.on_order_event)
        manual = self.acfg.approval == "manual"
        self.gate = EntryGate(
            self.publish,
            self._release,
            self.acfg.approval_timeout_s if manual else None,
            self.log,
        )
        trading.entry_gate = self.gate
        if self.bot is not None and self.acfg.telegram.commands:
            from smartflow.alerts.telegram import TelegramCommands  # loaded with the bot

            self.commands = TelegramCommands(
                self.bot,
                self.acfg.telegram.chat_ids,
                self.acfg.telegram.poll_timeout_s,
                _Control(self, trading),
                self.gate,
                trading.journal,
                self.publish,
                self.log,
            )
        metrics.registry.register(_AlertMetrics(self))

    async def start(self) -> None:
        """Start the outboxes, the command loop and the watcher; say the daemon started."""
        if not self.acfg.enabled:
            return
        self.started = True
        for box in self.outboxes:
            self._spawn(f"alerts-{box.sink.name}", box.run())
        if self.commands is not None:
            self._spawn("alerts-commands", self._commands())
        self._spawn("alerts-watch", self._watch())
        self.publish(
            Alert(
                kind="daemon_start",
                text=f"STARTED smartflow ({self.cfg.mode}): {self.status_line()}",
            )
        )

    def _spawn(self, name: str, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        task.add_done_callback(self._task_done)
        self.tasks.append(task)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.log.error("alerts.task_failed", task=task.get_name(), error=repr(task.exception()))

    async def stop(self, detail: str = "") -> None:
        """Say the daemon stops, give the outboxes a moment, then close everything."""
        if self.started:
            self.publish(Alert(kind="daemon_stop", text=f"STOPPING smartflow {detail}".strip()))
            deadline = time.monotonic() + STOP_DRAIN_S
            for box in self.outboxes:
                await box.drain(max(0.0, deadline - time.monotonic()))
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.webhook is not None:
            await self.webhook.close()
        if self.bot is not None:
            await self.bot.session.close()

    # ---- producers: one non-blocking put each ---------------------------------------------

    def publish(self, alert: Alert) -> None:
        """Queue ``alert`` on every sink, unless its kind is switched off; never waits."""
        if alert.kind in self.off:
            return
        for box in self.outboxes:
            box.put(alert)

    def on_order_event(self, kind: str, row: OrderRow, fill: FillRow | None) -> None:
        """The router's event hook."""
        alert = order_alert(kind, row, fill)
        if alert is not None:
            self.publish(alert)

    def on_signal(self, signal: SmartMoneySignal) -> None:
        """The daemon's signal hook: tradable signals, throttled per contract and underlying."""
        if "signal" not in self.off and self.throttle.allow(signal):
            self.publish(signal_alert(signal))

    def _release(self, intent: OrderIntent) -> bool:
        """An approved entry: to the router unchanged; the strategy manages the position."""
        assert self.trading is not None  # noqa: S101 — set by attach()
        ok = self.trading.router.submit(intent)
        contract = self.trading.strategy.contracts(intent.token)
        if ok and contract is not None:
            self.trading.strategy.adopt(intent.token, 1 if contract.option_type == "CE" else -1)
        return ok

    # ---- the watcher ----------------------------------------------------------------------

    async def _commands(self) -> None:
        assert self.bot is not None  # noqa: S101 — set with the commands
        assert self.commands is not None  # noqa: S101
        try:
            me = await self.bot.get_me()
            self.log.info("alerts.telegram_ready", bot=me.username)
        except Exception as e:  # commands still poll: the Bot API may come back
            self.log.warning("alerts.telegram_unreachable", error=type(e).__name__)
        await self.commands.run()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_S)
            try:
                await self.check()
            except Exception as e:  # never fatal: the next second tries again
                self.log.error("alerts.watch_failed", error=f"{type(e).__name__}: {e}")

    async def check(self) -> None:
        """Turn counters that moved into alerts (once a second)."""
        assert self.trading is not None  # noqa: S101 — set by attach()
        assert self._clock is not None  # noqa: S101
        guard = self.trading.guard
        if guard.killed != self._killed:
            self._killed = guard.killed
            if guard.killed:
                self.publish(
                    Alert(kind="kill_tripped", text=f"KILL SWITCH ON: {guard.kill_reason}")
                )
            else:
                self.publish(Alert(kind="kill_reset", text="kill switch reset: entries allowed"))
        if self.commands is not None:
            await self.commands.expire_held()
        self._check_feed()
        self._check_broker_login()
        now_ns = self._clock.now_ns()
        self._check_loss(now_ns)
        is_open = guard.market_open(now_ns)
        if self._was_open and not is_open and self.acfg.summary_after_close:
            await self.send_summary(ist_date(now_ns).isoformat())
        self._was_open = is_open

    def _check_feed(self) -> None:
        feed = self._feed()
        if feed is None:
            return
        s = feed.stats
        if s.data_stalls > self._stalls:
            self.publish(
                Alert(
                    kind="feed_stall",
                    text=f"FEED STALL: no market data on a subscribed socket ({s.stalled})",
                    fields={"data_stalls": s.data_stalls},
                )
            )
        self._stalls = s.data_stalls
        now = time.monotonic()
        self._reconnect_times.extend([now] * (s.reconnects - self._reconnects))
        self._reconnects = s.reconnects
        window = self.acfg.reconnect_window_s
        while self._reconnect_times and now - self._reconnect_times[0] > window:
            self._reconnect_times.popleft()
        n = len(self._reconnect_times)
        if n >= self.acfg.reconnect_storm and now - self._storm_at > window:
            self._storm_at = now
            self.publish(
                Alert(
                    kind="reconnect_storm",
                    text=f"RECONNECT STORM: {n} feed reconnects in {window:g} s",
                    fields={"reconnects": n},
                )
            )
        if s.relogin_failures > self._relogin_failures:
            self.publish(
                Alert(
                    kind="relogin_failed",
                    text="RE-LOGIN FAILED: the feed could not log in again (see the logs)",
                    fields={"relogin_failures": s.relogin_failures},
                )
            )
        self._relogin_failures = s.relogin_failures

    def _check_broker_login(self) -> None:
        """Live orders: Angel refused a re-login (after AG8001 and the like)."""
        assert self.trading is not None  # noqa: S101
        broker = self.trading.broker
        failed = broker.auth_failed if isinstance(broker, AngelGateway) else None
        if failed and failed != self._broker_auth_failed:
            self.publish(
                Alert(
                    kind="relogin_failed",
                    text=f"RE-LOGIN REFUSED for orders: {failed}; live orders cannot be sent",
                )
            )
        self._broker_auth_failed = failed

    def _check_loss(self, now_ns: int) -> None:
        assert self.trading is not None  # noqa: S101
        realised, unrealised = self.trading.router.day_pnl()
        limit = self.cfg.risk.max_daily_loss
        day = ist_date(now_ns).isoformat()
        pnl = realised + unrealised
        if pnl <= -limit * self.acfg.loss_warning_pct / 100 and self._loss_warned_day != day:
            self._loss_warned_day = day
            self.publish(
                Alert(
                    kind="loss_warning",
                    text=(
                        f"LOSS {pnl:+.2f} is {100 * -pnl / limit:.0f}% of the daily limit "
                        f"{limit:g}: the kill switch trips at 100%"
                    ),
                    fields={"pnl": round(pnl, 2), "limit": limit},
                )
            )

    async def send_summary(self, day: str) -> None:
        """The day's summary, once per day (the watcher calls it when the market closes)."""
        assert self.trading is not None  # noqa: S101
        if day == self._summary_day:
            return
        self._summary_day = day
        router = self.trading.router
        rows = await self.trading.journal.aquery(
            "SELECT COUNT(*) AS n FROM fills WHERE day=?", (day,)
        )
        realised, unrealised = router.day_pnl()

        def mark(token: str) -> float | None:
            q = router.book.market.quote(token)
            return (q.bid if q.bid > 0 else q.ltp) if q else None

        by_contract = contract_pnl(router.positions.values(), mark)
        self.publish(daily_summary(day, int(rows[0]["n"]), realised, unrealised, by_contract))


def _required(creds: Credentials, name: str, why: str) -> str:
    secret = getattr(creds, name)
    if not secret:
        raise FatalError(
            f"{why} needs the {name} credential ($CREDENTIALS_DIRECTORY/{name} or "
            f"SMARTFLOW_{name.upper()}); it never goes in the config file"
        )
    value: str = secret.reveal()
    return value


class _Control:
    """What the remote commands read and do, on the daemon's own objects."""

    def __init__(self, alerting: Alerting, trading: Trading) -> None:
        self.a = alerting
        self.t = trading

    def status(self) -> str:
        gate = self.a.gate
        extra = []
        if gate is not None and gate.paused:
            extra.append("PAUSED")
        if gate is not None and gate.held:
            extra.append(f"{len(gate.held)} awaiting approval")
        return " ".join([self.a.status_line(), *extra])

    def positions(self) -> str:
        lines = [
            f"{p.symbol}: {p.net_quantity} @ {p.average_price:.2f} (realised {p.realised_pnl:+.2f})"
            for p in self.t.router.positions.values()
            if p.net_quantity
        ]
        return "\n".join(lines) if lines else "no open positions"

    def pnl(self) -> str:
        realised, unrealised = self.t.router.day_pnl()
        limit = self.a.cfg.risk.max_daily_loss
        return (
            f"P&L {realised + unrealised:+.2f} (realised {realised:+.2f}, open {unrealised:+.2f}); "
            f"daily loss limit {limit:g}"
        )

    async def orders(self) -> str:
        open_ = self.t.router.open_orders()
        lines = [
            f"{o.order_id} {o.side} {o.quantity} {o.symbol} @ {o.limit_price:g} {o.state}"
            for o in open_
        ]
        day = ist_date(self.t.clock.now_ns()).isoformat()
        rows = await self.t.journal.aquery(
            "SELECT state, COUNT(*) AS n FROM orders WHERE day=? GROUP BY state ORDER BY state",
            (day,),
        )
        today = ", ".join(f"{r['state']} {r['n']}" for r in rows) or "none"
        return "\n".join([*(lines or ["no open orders"]), f"today: {today}"])

    async def flatten(self, who: str) -> str:
        gate = self.a.gate
        if gate is not None:
            gate.paused = True
        router = self.t.router
        now_ns = self.t.clock.now_ns()
        sent = []
        for pos in list(router.positions.values()):
            contract = self.t.strategy.contracts(pos.token)
            if pos.net_quantity <= 0 or contract is None:
                continue
            intent = OrderIntent(
                intent_id=f"flatten-{pos.token}-{now_ns}",
                ts=now_ns,
                underlying=pos.underlying,
                token=pos.token,
                symbol=pos.symbol,
                exchange=contract.exchange,
                side="SELL",
                lots=max(1, pos.net_quantity // contract.lot_size),
                lot_size=contract.lot_size,
                purpose="EXIT",
                reason=f"flatten by {who}",
                ttl_ns=3600 * NS,
            )
            if router.submit(intent):
                sent.append(pos.symbol)
        if not sent:
            return "flatten: no open positions; entries paused (/resume to allow)"
        return f"flatten: exiting {', '.join(sent)}; entries paused (/resume to allow)"

    async def kill(self, who: str) -> str:
        done = await self.t.router.kill(f"remote /kill by {who}", "telegram")
        return (
            f"KILL SWITCH ON: cancelled {done['cancelled']}, flattening {done['flattening']}; "
            "reset with `smartflow kill --reset` or POST /api/kill/reset"
        )


class _AlertMetrics(Collector):
    """Sent, dropped and failed alerts per sink; commands and held entries, at scrape time."""

    def __init__(self, alerting: Alerting) -> None:
        self.a = alerting

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        sent = CounterMetricFamily("smartflow_alerts_sent", "Alerts delivered", labels=["sink"])
        dropped = CounterMetricFamily(
            "smartflow_alerts_dropped",
            "Alerts not delivered: queue_full (newest dropped) or failed (every attempt)",
            labels=["sink", "reason"],
        )
        failures = CounterMetricFamily(
            "smartflow_alert_send_failures", "Failed delivery attempts", labels=["sink"]
        )
        depth = GaugeMetricFamily(
            "smartflow_alerts_queued", "Alerts waiting per sink", labels=["sink"]
        )
        for box in self.a.outboxes:
            name = box.sink.name
            sent.add_metric([name], box.sent)
            for reason in ("queue_full", "failed"):
                dropped.add_metric([name, reason], box.dropped[reason])
            failures.add_metric([name], box.attempt_failures)
            depth.add_metric([name], box.queue.qsize())
        yield from (sent, dropped, failures, depth)
        commands = CounterMetricFamily(
            "smartflow_remote_commands", "Remote commands by outcome", labels=["status"]
        )
        for status, n in sorted((self.a.commands.counts if self.a.commands else {}).items()):
            commands.add_metric([status], n)
        yield commands
        gated = CounterMetricFamily(
            "smartflow_entries_gated",
            "Entries paused, held for approval, approved, rejected or expired",
            labels=["outcome"],
        )
        for outcome, n in sorted((self.a.gate.counts if self.a.gate else {}).items()):
            gated.add_metric([outcome], n)
        yield gated
