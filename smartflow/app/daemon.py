"""The daemon: start-up, the stage tasks, and a graceful or forced shutdown.

Start-up order (style.md rule 10): config and logging (done by the caller) → the venue's checks
(live gating; the simulator's known underlyings) → journal and kernel warm-up → the venue
(app/venue.py: Angel login, or the simulator in sim mode) and its scrip master → the pipeline
(app/pipeline.py) → stage tasks → feed connected and subscribed → ready. Health (app/health.py)
and latency observation (app/latency.py) are their own objects. Shutdown: stop intake
(unsubscribe, close sockets) → stop the engine → flush the tape → close the venue. The first
SIGINT/SIGTERM asks for that; a second one exits at once. A stage task that ends on its own is a
fault: the daemon exits non-zero so systemd restarts it. Every shutdown step runs whatever the
one before did; the last line (``daemon.stopped``) names what failed, journal writes included,
and the exit code is then non-zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from smartflow.analytics.detectors import SmartMoneyDetector
from smartflow.analytics.flow import FlowAnalyzer
from smartflow.analytics.summary import ChainSummaries, SummarySnapshot
from smartflow.app.alerting import Alerting
from smartflow.app.apiprocess import ApiProcess
from smartflow.app.apisource import DaemonApiSource
from smartflow.app.chainhistory import ChainHistory
from smartflow.app.health import DaemonHealth, LoopTime, StageHealth, feed_health
from smartflow.app.historytools import history_path
from smartflow.app.journaltools import hold_daemon_lock, journal_path
from smartflow.app.latency import LatencyObserver
from smartflow.app.metrics import Metrics
from smartflow.app.packet_loop import Engine
from smartflow.app.pipeline import Pipeline, build_pipeline
from smartflow.app.prevclose import run_prev_close
from smartflow.app.sdnotify import Notifier
from smartflow.app.stats import StatsReporter
from smartflow.app.subscriptions import SubscriptionManager
from smartflow.app.summary import SessionSummary, report
from smartflow.app.trading import Trading
from smartflow.app.venue import VenueStarter, venue_for
from smartflow.app.warmup import warm_up
from smartflow.chain.state import ChainBook
from smartflow.config import Config, Credentials, fingerprint
from smartflow.core.clock import Clock, LiveClock
from smartflow.core.errors import ConfigError, FatalError
from smartflow.core.mailbox import Conflator
from smartflow.core.messages import SmartMoneySignal
from smartflow.feed.session import FeedSession
from smartflow.journal.history import HistoryStore
from smartflow.journal.store import Journal, JournalWriteError
from smartflow.orders.port import BrokerPort
from smartflow.tape.format import TapeWriter


if TYPE_CHECKING:
    from smartflow.sim.server import SimServer


@dataclass
class RunOptions:
    """Command-line switches of ``smartflow run``."""

    live: bool = False
    record: Path | None = None
    duration: float | None = None


def settle_heap() -> None:
    """The collector policy of a running daemon, applied once start-up is done.

    Everything built so far lives for the whole run: keep the cyclic collector off it, and
    collect young objects less often (almost all garbage here is freed by refcount), so
    collector pauses do not land between a packet and its decision.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 100)


class Daemon:
    """One smartflow process."""

    def __init__(self, cfg: Config, creds: Credentials, opts: RunOptions, log: Any = None) -> None:
        self.cfg = cfg
        self.creds = creds
        self.opts = opts
        self.log = log or structlog.get_logger()
        self.clock: Clock = LiveClock()
        self.speed = 1.0
        self.venue: VenueStarter | None = None
        self.feed: FeedSession | None = None
        self.book: ChainBook | None = None
        self.engine: Engine | None = None
        self.subs: SubscriptionManager | None = None
        self.recorder: TapeWriter | None = None
        self.mailbox: Conflator[bytes, tuple[int, bytes]] | None = None
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        self.stop_event = asyncio.Event()
        self.ready = asyncio.Event()
        self.stats_sources: dict[str, Callable[[], dict[str, Any]]] = {}
        self._signals = 0
        self.detectors: dict[str, SmartMoneyDetector] = {}
        self.journal: Journal | None = None
        self.trading: Trading | None = None
        self.broker: BrokerPort | None = None
        self.pipeline: Pipeline | None = None
        self.observer: LatencyObserver | None = None
        self.flow: FlowAnalyzer | None = None
        self.summaries: ChainSummaries | None = None
        self.history: ChainHistory | None = None
        self.metrics: Metrics | None = None
        self.api: ApiProcess | None = None
        self.api_source: DaemonApiSource | None = None
        self.kernels_warm = False
        self.loop_time = LoopTime()
        self.health: DaemonHealth | None = None
        self.notifier = Notifier()
        self._last_stale: list[str] = []
        self._last_feed_problems: list[str] = []
        self._lock_file: Any = None
        self.shutdown_problems: list[str] = []
        self.summary = SessionSummary()
        self._ready_ns = 0
        self.alerting: Alerting | None = None

    # ---- signals ------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        """First SIGINT/SIGTERM: graceful stop. Second: exit at once."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_os_signal, sig)

    def _on_os_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals == 1:
            self.log.info("daemon.stopping", signal=sig.name)
            self.stop_event.set()
        else:
            self.log.warning("daemon.forced_exit", signal=sig.name)
            os._exit(130)

    # ---- start-up -----------------------------------------------------------------------

    async def start(self) -> None:
        """Bring every stage up; returns once the feed is connected and subscribed."""
        cfg = self.cfg
        self.log.info(
            "daemon.starting", mode=cfg.mode, config_sha=fingerprint(cfg), pid=os.getpid()
        )
        self._check_api_exposure()
        self.alerting = Alerting(cfg, self.creds, self.log.bind(stage="alerts"))
        self.venue = venue_for(cfg, self.creds, self.opts.live, self.log)
        self.venue.check()
        # Before the slow warm-up: a state_dir that cannot hold the journal fails at once.
        self.journal = Journal(journal_path(cfg), log=self.log.bind(stage="journal"))
        try:
            self._lock_file = hold_daemon_lock(cfg.state_dir)
        except OSError as e:
            raise FatalError(f"state_dir {cfg.state_dir}: {e.strerror or e}") from None
        # Kernels first: compiling takes ~25 s on a cold cache, and nothing below should start
        # its clock (the simulator's scenarios, the feed's timers) before it is done.
        seconds = await asyncio.to_thread(warm_up, cfg.model, cfg.detectors)
        self.kernels_warm = True
        self.log.info(
            "kernels.warm", seconds=round(seconds, 3), numba_cache=os.environ.get("NUMBA_CACHE_DIR")
        )
        venue = await self.venue.start(self.journal)
        self.clock, self.speed, self.broker = venue.clock, venue.speed, venue.broker
        for name, work in venue.tasks.items():
            self._spawn(name, work())
        url, headers, master = venue.url, venue.headers, venue.master
        now = self.clock.now_ns()
        pipeline = build_pipeline(cfg, master, self.clock)
        self.pipeline = pipeline
        for c in pipeline.book.chains:
            universe = c.universe
            self.log.info(
                "chain.universe",
                underlying=c.root,
                expiry=universe.expiry.isoformat(),
                strikes=len(universe.strikes_paise),
                lot_size=universe.lot_size,
                index=universe.index.token,
                future=universe.future.token if universe.future else None,
            )
        self.book = pipeline.book
        self.detectors = pipeline.detectors
        self.flow = pipeline.flow
        self.summaries = pipeline.summaries
        if cfg.history.enabled:
            self.history = ChainHistory(
                HistoryStore(history_path(cfg)),
                self.summaries,
                cfg.history.retention_days,
                self.log.bind(stage="history"),
            )
            self.history.load(now)
            self.history.attach()
        self.trading = pipeline.trade(self.journal, self.log, broker=self.broker, speed=self.speed)
        self.trading.router.kill_token = self.creds.kill_token
        self.metrics = Metrics(self._metrics_snapshot)
        self.metrics.add_chain_summaries(self._summary_snapshots)
        self.observer = pipeline.observer
        self.observer.speed = self.speed
        self.observer.metrics = self.metrics
        self.trading.router.on_intent.append(self.observer.intent_queued)
        self.trading.router.on_event.append(self.summary.on_order_event)
        self.trading.router.on_sent.append(self.observer.order_sent)
        self.alerting.attach(
            self.trading,
            self.clock,
            self.metrics,
            self._feed_now,
            self.status_line,
        )
        await self.trading.broker.start()
        # Before any new order can exist: what the journal and the broker know.
        await self.trading.restore()
        self.mailbox = Conflator(max_keys=4096)
        mailbox = self.mailbox
        if self.opts.record:
            self.recorder = TapeWriter(
                self.opts.record,
                {
                    "mode": cfg.mode,
                    "underlyings": cfg.market.underlyings,
                    "config_sha": fingerprint(cfg),
                    "started_ns": now,
                },
            )
        self.feed = FeedSession(
            cfg.feed,
            url,
            headers,
            lambda t, key, frame: mailbox.put(key, (t, frame)),
            self.clock,
            self.log.bind(stage="feed"),
            self.recorder,
            on_auth_failure=venue.on_auth_failure,
            seed=cfg.sim.seed if cfg.mode == "sim" else None,
            in_session=self.trading.guard.market_open,
            relogin=venue.relogin,
        )
        self.subs = SubscriptionManager(
            self.book, self.feed, cfg.market, cfg.model.rate, self.log.bind(stage="subscriptions")
        )
        hang = _fault_hang(os.environ.get("SMARTFLOW_FAULT_HANG", ""))
        self.engine = Engine(
            pipeline,
            mailbox,
            self.clock,
            self.log.bind(stage="engine"),
            after_batch=self._after_batch,
            speed=self.speed,
        )
        if hang is not None and hang[0] == "engine":
            self.engine.hang_after(hang[1])
            self.log.warning("fault.injected", stage="engine", hang_after_s=hang[1])
        engine, router = self.engine, self.trading.router
        self.health = DaemonHealth(
            StageHealth(
                self.loop_time,
                self.tasks,
                {"engine": lambda: engine.heartbeat_ns, "orders": lambda: router.heartbeat_ns},
            ),
            self.feed,
            router,
            self.trading.broker,
            self.journal,
            self.trading.guard.market_open,
            self.clock,
            self.speed,
            cfg.feed.stall_timeout_s,
        )
        self.subs.start(self.clock.now_ns())
        self._spawn(
            "prev-close",
            run_prev_close(
                cfg,
                self.summaries,
                self.subs,
                self.clock.now_ns(),
                self.log.bind(stage="prevclose"),
                session=self.venue.session,
                sim=self.venue.server,
            ),
        )
        self.stats_sources = {
            "feed": self._feed_stats,
            "engine": self.engine.stats,
            "signals": self._signal_stats,
            "orders": self.trading.router.stats,
            "journal": self._journal_stats,
        }
        self._spawn("feed", self.feed.run())
        self._spawn("engine", self.engine.run())
        self._spawn("orders", self.trading.router.run())
        self._spawn("loop-lag", self.loop_time.run(self.metrics.loop_lag.observe))
        if self.history is not None:
            self._spawn("history", self.history.run())
        if cfg.api.enabled:
            self.api_source = DaemonApiSource(
                cfg.api,
                cfg.mode,
                pipeline,
                self.trading,
                self.feed,
                self.engine,
                self.journal,
                self.metrics,
                self.health,
                self.ready,
                self.clock,
            )
            self.api = ApiProcess(cfg, self.api_source, self.creds, self.log.bind(stage="api"))
            await self.api.start()
        self._spawn(
            "stats", StatsReporter(self.stats_sources, cfg.log.stats_interval_s, self.log).run()
        )
        if self.recorder is not None:
            self._spawn("tape-flush", self._flush_tape())
        await self._until_ready()
        settle_heap()
        self._ready_ns = self.clock.now_ns()
        self.ready.set()
        self.log.info("daemon.ready", sockets=self.feed.connected, tokens=len(self.feed.subscribed))
        # READY=1 once connected, subscribed and warm — not on the first tick: the daemon may
        # start before the open.
        self.notifier.notify("READY=1", f"STATUS={self.status_line()}")
        self._spawn("health", self._health_loop())
        await self.alerting.start()

    def _check_api_exposure(self) -> None:
        """A non-loopback ``[api] listen`` needs the API token, and is said out loud."""
        api = self.cfg.api
        if not api.enabled or api.loopback():
            return
        if not self.creds.api_token:
            raise FatalError(
                f"api.listen = {api.listen!r} is not a loopback address: refusing to serve it "
                "without the api_token credential ($CREDENTIALS_DIRECTORY/api_token or "
                "SMARTFLOW_API_TOKEN)"
            )
        self.log.warning(
            "api.exposed",
            listen=api.listen,
            note="not loopback: every route needs Authorization: Bearer <api_token>",
        )

    async def _until_ready(self) -> None:
        assert self.feed is not None  # noqa: S101 — set by start()
        ready = asyncio.create_task(self.feed.wait_ready())
        failed = asyncio.create_task(self._first_failure())
        done, _ = await asyncio.wait({ready, failed}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        failed.cancel()
        if failed in done and not failed.cancelled():
            failed.result()

    async def _first_failure(self) -> None:
        done, _ = await asyncio.wait(self.tasks.values(), return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            t.result()
        raise FatalError(f"stage {next(iter(done)).get_name()} ended during start-up")

    def _spawn(self, name: str, coro: Awaitable[Any]) -> None:
        self.tasks[name] = asyncio.ensure_future(coro)
        self.tasks[name].set_name(name)

    def _feed_now(self) -> FeedSession | None:
        return self.feed

    def _feed_stats(self) -> dict[str, Any]:
        assert self.feed is not None  # noqa: S101
        snap = self.feed.stats.snapshot()
        snap["sockets"] = self.feed.connected
        snap["tokens"] = len(self.feed.subscribed)
        return snap

    async def _flush_tape(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self.recorder is not None:
                self.recorder.flush()

    async def _stop_orders(self, policy: str) -> None:
        assert self.trading is not None  # noqa: S101 — checked by the caller
        cancelled = await asyncio.wait_for(self.trading.router.shutdown(policy), 10)
        self.log.info("orders.stopped", policy=policy, cancelled=cancelled)

    @property
    def sim(self) -> SimServer | None:
        """The simulator this daemon runs in-process (sim mode), for tests and tools."""
        return self.venue.server if self.venue is not None else None

    @property
    def signals_emitted(self) -> int:
        """Signals emitted so far (0 before start-up built the pipeline)."""
        return self.pipeline.signals_emitted if self.pipeline is not None else 0

    def _after_batch(self, now_ns: int) -> None:
        """After each batch of packets: subscriptions, trading, then publishing signals.

        Logging, journalling and the API wait until the engine has finished the batch, so they
        never stand between a bar close and the strategy's order intent.
        """
        assert self.subs is not None  # noqa: S101 — set by start()
        assert self.pipeline is not None  # noqa: S101
        self.subs.on_tick(now_ns)
        self.pipeline.after_batch(now_ns)
        for sig in self.pipeline.take_signals():
            self._publish(sig)

    def _publish(self, signal: SmartMoneySignal) -> None:
        self.log.info(
            "signal",
            underlying=signal.underlying,
            recommendation=signal.recommendation,
            can_trade=signal.can_trade,
            strike=signal.strike,
            option_type=signal.option_type,
            token=signal.token,
            probability=signal.smart_money_probability,
            oi_conviction=signal.oi_conviction_score,
            trap_probability=signal.trap_probability,
            market_control=signal.market_control,
            fresh_position=signal.fresh_position_detected,
            reason=signal.reason,
        )
        if self.journal is not None:
            self.journal.signal(
                signal.ts,
                signal.underlying,
                signal.recommendation,
                signal.can_trade,
                msgspec.json.encode(signal),
            )
        self.summary.on_signal(signal)
        if self.alerting is not None and self.alerting.trading is not None:
            self.alerting.on_signal(signal)  # attached (alerts enabled)
        if self.api_source is not None:
            self.api_source.on_signal(signal)

    # ---- health and the systemd watchdog ------------------------------------------------

    def stale_stages(self) -> list[str]:
        """What withholds the watchdog's pings (empty when everything is alive)."""
        if self.health is None:
            return ["daemon not started"]
        return self.health.stale()

    def status_line(self) -> str:
        """One-line summary for systemd's STATUS=."""
        feed = self.feed
        router = self.trading.router if self.trading else None
        realised, unrealised = router.day_pnl() if router else (0.0, 0.0)
        return (
            f"{self.cfg.mode} sockets={feed.connected if feed else 0} "
            f"frames={sum(feed.stats.frames.values()) if feed else 0} "
            f"signals={self.signals_emitted} "
            f"orders={router.limiter.granted if router else 0} "
            f"pnl={realised + unrealised:.2f}"
            f"{' KILLED' if self.trading and self.trading.guard.killed else ''}"
            f"{' JOURNAL-FAILING' if self.journal and self.journal.failing else ''}"
        )

    async def _health_loop(self) -> None:
        interval = (self.notifier.watchdog_s or 10.0) / 2
        while True:
            stale = self.stale_stages()
            problems = feed_health(self.feed).problems
            if problems != self._last_feed_problems:
                if problems:
                    self.log.warning("health.feed", problems=problems)
                else:
                    self.log.info("health.feed_ok")
                self._last_feed_problems = problems
            lines = [f"STATUS={self.status_line()}{'; ' if problems else ''}{'; '.join(problems)}"]
            if not stale:
                lines.insert(0, "WATCHDOG=1")
            elif stale != self._last_stale:
                self.log.error("health.stale", stages=stale, note="watchdog pings withheld")
            self._last_stale = stale
            self.notifier.notify(*lines)
            await asyncio.sleep(interval)

    def _latency_s(self, since_ns: int, now_ns: int | None = None) -> float:
        now = self.clock.now_ns() if now_ns is None else now_ns
        return max(0.0, (now - since_ns) / 1e9 / self.speed)

    def _metrics_snapshot(self) -> dict[str, Any]:
        feed = self.feed.stats if self.feed else None
        router = self.trading.router if self.trading else None
        realised, unrealised = router.day_pnl() if router else (0.0, 0.0)
        by_state: dict[str, int] = {}
        for o in router.orders.values() if router else ():
            by_state[o.state] = by_state.get(o.state, 0) + 1
        return {
            "frames_by_mode": dict(feed.frames) if feed else {},
            "rejected": dict(feed.rejected) if feed else {},
            "anomalies": self.book.stats.anomalies if self.book else 0,
            "coalesced": self.mailbox.conflated if self.mailbox else 0,
            "reconnects": feed.reconnects if feed else 0,
            "stalls": feed.stalls if feed else 0,
            "bars": self.book.stats.bars_closed if self.book else 0,
            "signals": self.signals_emitted,
            "order_requests": router.limiter.granted if router else 0,
            "fills": router.fills if router else 0,
            "risk_rejections": dict(router.refused_by_kind) if router else {},
            "queues": {
                "feed_mailbox": len(self.mailbox) if self.mailbox else 0,
                "intents": len(router.exits) + len(router.entries) if router else 0,
                "rate_budget": len(router.waiting) if router else 0,
            },
            "orders_by_state": by_state,
            "realised": realised,
            "unrealised": unrealised,
            "sockets": self.feed.connected if self.feed else 0,
            "kill_switch": 1 if self.trading and self.trading.guard.killed else 0,
            "busy_s": self.engine.busy_ns / 1e9 if self.engine else 0.0,
            "ready": 1 if self.ready.is_set() else 0,
            "feed_health": self.feed.stats.snapshot() if self.feed else {},
            "journal_write_failures": dict(self.journal.write_failures) if self.journal else {},
        }

    def _journal_stats(self) -> dict[str, Any]:
        assert self.journal is not None  # noqa: S101 — set by start()
        return {
            "writes": self.journal.writes,
            "write_failures": dict(self.journal.write_failures),
            "failing": self.journal.failing,
        }

    def _close_history(self) -> None:
        """Today's closing OI (tomorrow's ΔOI baseline) and what is still queued."""
        assert self.history is not None  # noqa: S101 — checked by the caller
        try:
            self.history.record_close()
        except sqlite3.Error as e:
            self.log.warning("daemon.shutdown_error", stage="history", error=repr(e))
        finally:
            self.history.store.close()

    def _summary_snapshots(self) -> list[SummarySnapshot]:
        if self.summaries is None:
            return []
        snaps = (self.summaries.latest(root) for root in sorted(self.summaries.by_root))
        return [s for s in snaps if s is not None]

    def _signal_stats(self) -> dict[str, Any]:
        return {
            "signals": self.signals_emitted,
            "bars": self.book.stats.bars_closed if self.book else 0,
        }

    async def _quietly(self, what: str, aw: Awaitable[Any]) -> None:
        """Await ``aw`` during shutdown; a failure is logged, never allowed to stop the rest."""
        try:
            await aw
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._shutdown_failed(what, e)

    def _shutdown_failed(self, what: str, e: BaseException) -> None:
        self.log.error("daemon.shutdown_error", stage=what, error=repr(e))
        self.shutdown_problems.append(f"{what}: {e}")

    def _step(self, what: str, fn: Callable[[], Any]) -> None:
        """A synchronous shutdown step: a failure is logged and reported, never fatal."""
        try:
            fn()
        except JournalWriteError:
            pass  # logged and counted by the journal; the last line reports it
        except Exception as e:
            self._shutdown_failed(what, e)

    # ---- run ----------------------------------------------------------------------------

    async def run(self) -> int:
        """Start, run until asked to stop (or ``--duration``), shut down; return the exit code."""
        code = 0
        try:
            await self.start()
            stop = asyncio.create_task(self.stop_event.wait(), name="stop")
            waits: set[asyncio.Task[Any]] = {stop, *self.tasks.values()}
            timer = None
            if self.opts.duration is not None:
                timer = asyncio.create_task(asyncio.sleep(self.opts.duration), name="duration")
                waits.add(timer)
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t is stop or t is timer:
                    continue
                exc = None if t.cancelled() else t.exception()
                self.log.error(
                    "daemon.stage_failed", stage=t.get_name(), error=repr(exc) if exc else "ended"
                )
                code = 1
            stop.cancel()
            if timer is not None:
                timer.cancel()
        except FatalError as e:
            self.log.error("daemon.fatal", error=str(e))
            code = 2 if isinstance(e, ConfigError) else 1
        except Exception as e:  # the process boundary: a crash is logged, then exit 1
            self.log.exception("daemon.crashed", error=repr(e))
            code = 1
        finally:
            await self.shutdown()
        problems = list(self.shutdown_problems)
        if self.journal is not None and self.journal.write_failures:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.journal.write_failures.items()))
            problems.insert(
                0,
                f"journal {self.journal.path}: {self.journal.total_write_failures} writes "
                f"failed ({kinds}), last: {self.journal.last_failure}",
            )
        if problems:
            code = code or 1
            self.log.error("daemon.stopped", exit_code=code, problems="; ".join(problems))
        else:
            self.log.info("daemon.stopped", exit_code=code)
        return code

    async def shutdown(self) -> None:
        """Stop intake, then the stages, then flush and close what they wrote."""
        self.notifier.notify("STOPPING=1", "STATUS=stopping")
        if self.feed is not None:
            await self._quietly("feed.stop", asyncio.wait_for(self.feed.stop(), 5))
        if self.trading is not None:
            policy = self.cfg.orders.on_shutdown
            await self._quietly("orders.shutdown", self._stop_orders(policy))
        await self._stop_tasks()
        await self._release()

    async def _release(self) -> None:
        """Close what the stages used, each step whatever the one before did."""
        if self.alerting is not None:
            await self._quietly("alerts.stop", self.alerting.stop())
        if self.api is not None:
            await self._quietly("api.stop", self.api.stop())
        if self.trading is not None and self._ready_ns:
            self._step("session.summary", self._report_summary)
        if self.recorder is not None:
            self._step("tape.close", self._close_tape)
        if self.trading is not None:
            await self._quietly("broker.close", self.trading.broker.close())
        if self.history is not None:
            self._step("history.close", self._close_history)
        if self.journal is not None:
            self._step("journal.close", self._close_journal)
        if self._lock_file is not None:
            self._step("state_dir.unlock", self._lock_file.close)
        if self.venue is not None:
            for what, closing in self.venue.closers():
                await self._quietly(what, closing)

    async def _stop_tasks(self) -> None:
        for name, task in self.tasks.items():
            task.cancel(msg=f"shutdown: {name}")
        for name, task in self.tasks.items():
            if task.done():
                # Ended before the shutdown: run() has reported it already.
                if not task.cancelled():
                    task.exception()
                continue
            with contextlib.suppress(asyncio.CancelledError):
                await self._quietly(name, task)

    def _report_summary(self) -> None:
        assert self.trading is not None  # noqa: S101 — checked by the caller
        strategy = self.trading.strategy
        seconds = self._latency_s(self._ready_ns)
        summary = self.summary.build(
            self.trading.router, strategy.entries, strategy.exits, seconds, self.cfg.mode
        )
        report(summary, self.log)

    def _close_tape(self) -> None:
        assert self.recorder is not None  # noqa: S101 — checked by the caller
        self.recorder.close()
        self.log.info("tape.closed", path=str(self.recorder.path), frames=self.recorder.records)

    def _close_journal(self) -> None:
        assert self.journal is not None  # noqa: S101 — checked by the caller
        self.journal.close()
        self.log.info("journal.closed", path=self.journal.path, writes=self.journal.writes)


def _fault_hang(spec: str) -> tuple[str, float] | None:
    """Parse ``SMARTFLOW_FAULT_HANG=<stage>:<seconds>``, a test-only fault injection.

    The stage stops making progress after that long, so the service tests can watch the
    systemd watchdog react. Unset in production.
    """
    stage, _, after = spec.partition(":")
    try:
        return (stage, float(after)) if stage else None
    except ValueError:
        return None
