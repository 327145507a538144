"""The daemon: start-up, the stage tasks, and a graceful or forced shutdown.

Start-up order (style.md rule 10): config and logging (done by the caller) → the venue's checks
(live gating; the simulator's known underlyings) → journal and kernel warm-up → the venue
(app/venue.py: Angel login, or the simulator in sim mode) and its scrip master → the pipeline
(app/pipeline.py) and every stage around it, built at once into ``Stages`` → the broker and the
restart reconciliation → stage tasks → feed connected and subscribed → ready. Health and the
systemd watchdog (app/health.py), telemetry (app/observe.py: metrics, stats lines, status line)
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
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from smartflow.app.alerting import Alerting
from smartflow.app.apiprocess import ApiProcess
from smartflow.app.apisource import DaemonApiSource
from smartflow.app.chainhistory import ChainHistory
from smartflow.app.health import DaemonHealth, LoopTime, StageHealth, Watchdog
from smartflow.app.historytools import history_path
from smartflow.app.journaltools import hold_daemon_lock, journal_path
from smartflow.app.observe import Telemetry
from smartflow.app.packet_loop import Engine
from smartflow.app.pipeline import Pipeline, build_pipeline
from smartflow.app.prevclose import run_prev_close
from smartflow.app.sdnotify import Notifier
from smartflow.app.stats import StatsReporter
from smartflow.app.subscriptions import SubscriptionManager
from smartflow.app.summary import SessionSummary, report
from smartflow.app.trading import Trading
from smartflow.app.venue import Venue, venue_for
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


@dataclass(frozen=True)
class Stages:
    """Everything ``Daemon.start`` builds once the venue is up, wired and ready to run."""

    clock: Clock
    speed: float
    """Simulated seconds per wall second (1 live)."""
    pipeline: Pipeline
    trading: Trading
    mailbox: Conflator[bytes, tuple[int, bytes]]
    feed: FeedSession
    subs: SubscriptionManager
    engine: Engine
    telemetry: Telemetry
    health: DaemonHealth
    history: ChainHistory | None
    """``[history] enabled``."""
    recorder: TapeWriter | None
    """``--record``."""
    api: ApiProcess | None
    """``[api] enabled``."""
    api_source: DaemonApiSource | None


class Daemon:
    """One smartflow process."""

    def __init__(self, cfg: Config, creds: Credentials, opts: RunOptions, log: Any = None) -> None:
        self.cfg = cfg
        self.creds = creds
        self.opts = opts
        self.log = log or structlog.get_logger()
        self.clock: Clock = LiveClock()
        """The venue's clock once it is up (the simulator's runs scaled)."""
        self.venue = venue_for(cfg, creds, opts.live, self.log)
        self._stages: Stages | None = None
        """Built by ``start()`` once the venue is up."""
        self.alerting: Alerting | None = None
        self.journal: Journal | None = None
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        self.stop_event = asyncio.Event()
        self.ready = asyncio.Event()
        self.kernels_warm = False
        self.loop_time = LoopTime()
        self.notifier = Notifier()
        self.summary = SessionSummary()
        self.shutdown_problems: list[str] = []
        self._signals = 0
        self._lock_file: Any = None
        self._ready_ns = 0

    @property
    def stages(self) -> Stages:
        """The running stages; ``start()`` builds them (an error before)."""
        if self._stages is None:
            raise RuntimeError("the daemon has not built its stages yet (start() does)")
        return self._stages

    @property
    def trading(self) -> Trading | None:
        """The order side, once started (for tests and tools)."""
        return self._stages.trading if self._stages else None

    @property
    def feed(self) -> FeedSession | None:
        """The SmartStream session, once started (for tests and tools)."""
        return self._stages.feed if self._stages else None

    @property
    def book(self) -> ChainBook | None:
        """The chains, once started (for tests and tools)."""
        return self._stages.pipeline.book if self._stages else None

    @property
    def api(self) -> ApiProcess | None:
        """The HTTP API's process, once started with ``[api] enabled`` (for tests and tools)."""
        return self._stages.api if self._stages else None

    @property
    def sim(self) -> SimServer | None:
        """The simulator this daemon runs in-process (sim mode), for tests and tools."""
        return self.venue.server

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
        self.venue.check()
        # Before the slow warm-up: a state_dir that cannot hold the journal fails at once.
        journal = self.journal = Journal(journal_path(cfg), log=self.log.bind(stage="journal"))
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
        venue = await self.venue.start(journal)
        self.clock = venue.clock
        for name, work in venue.tasks.items():
            self._spawn(name, work())
        now = self.clock.now_ns()
        s = self._stages = self._build(venue, journal, now)
        if s.history is not None:
            s.history.load(now)
            s.history.attach()
        self.alerting.attach(
            s.trading, s.clock, s.telemetry.metrics, lambda: s.feed, s.telemetry.status_line
        )
        await s.trading.broker.start()
        # Before any new order can exist: what the journal and the broker know.
        await s.trading.restore()
        s.subs.start(self.clock.now_ns())
        self._spawn(
            "prev-close",
            run_prev_close(
                cfg,
                s.pipeline.summaries,
                s.subs,
                self.clock.now_ns(),
                self.log.bind(stage="prevclose"),
                session=self.venue.session,
                sim=self.venue.server,
            ),
        )
        self._spawn("feed", s.feed.run())
        self._spawn("engine", s.engine.run())
        self._spawn("orders", s.trading.router.run())
        self._spawn("loop-lag", self.loop_time.run(s.telemetry.metrics.loop_lag.observe))
        if s.history is not None:
            self._spawn("history", s.history.run())
        if s.api is not None:
            await s.api.start()
        stats = StatsReporter(s.telemetry.stats_sources(), cfg.log.stats_interval_s, self.log)
        self._spawn("stats", stats.run())
        if s.recorder is not None:
            self._spawn("tape-flush", self._flush_tape(s.recorder))
        await self._until_ready(s.feed)
        settle_heap()
        self._ready_ns = self.clock.now_ns()
        self.ready.set()
        self.log.info("daemon.ready", sockets=s.feed.connected, tokens=len(s.feed.subscribed))
        # READY=1 once connected, subscribed and warm — not on the first tick: the daemon may
        # start before the open.
        self.notifier.notify("READY=1", f"STATUS={s.telemetry.status_line()}")
        watchdog = Watchdog(s.health, s.telemetry.status_line, self.notifier, self.log)
        self._spawn("health", watchdog.run())
        await self.alerting.start()

    def _build(self, venue: Venue, journal: Journal, now: int) -> Stages:
        """The pipeline and every stage around it, wired; nothing runs yet."""
        cfg, clock, speed = self.cfg, venue.clock, venue.speed
        pipeline = build_pipeline(cfg, venue.master, clock)
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
        recorder = None
        if self.opts.record:
            recorder = TapeWriter(
                self.opts.record,
                {
                    "mode": cfg.mode,
                    "underlyings": cfg.market.underlyings,
                    "config_sha": fingerprint(cfg),
                    "started_ns": now,
                },
            )
        history = None
        if cfg.history.enabled:
            history = ChainHistory(
                HistoryStore(history_path(cfg)),
                pipeline.summaries,
                cfg.history.retention_days,
                self.log.bind(stage="history"),
            )
        trading = pipeline.trade(journal, self.log, broker=venue.broker, speed=speed)
        trading.router.kill_token = self.creds.kill_token
        mailbox: Conflator[bytes, tuple[int, bytes]] = Conflator(max_keys=4096)
        feed = FeedSession(
            cfg.feed,
            venue.url,
            venue.headers,
            lambda t, key, frame: mailbox.put(key, (t, frame)),
            clock,
            self.log.bind(stage="feed"),
            recorder,
            on_auth_failure=venue.on_auth_failure,
            seed=cfg.sim.seed if cfg.mode == "sim" else None,
            in_session=trading.guard.market_open,
            relogin=venue.relogin,
        )
        subs = SubscriptionManager(
            pipeline.book, feed, cfg.market, cfg.model.rate, self.log.bind(stage="subscriptions")
        )
        engine = Engine(
            pipeline,
            mailbox,
            clock,
            self.log.bind(stage="engine"),
            after_batch=self._after_batch,
            speed=speed,
        )
        hang = _fault_hang(os.environ.get("SMARTFLOW_FAULT_HANG", ""))
        if hang is not None and hang[0] == "engine":
            engine.hang_after(hang[1])
            self.log.warning("fault.injected", stage="engine", hang_after_s=hang[1])
        telemetry = Telemetry(
            cfg.mode, pipeline, trading, feed, mailbox, engine, journal, self.ready, speed
        )
        trading.router.on_event.append(self.summary.on_order_event)
        router = trading.router
        health = DaemonHealth(
            StageHealth(
                self.loop_time,
                self.tasks,
                {"engine": lambda: engine.heartbeat_ns, "orders": lambda: router.heartbeat_ns},
            ),
            feed,
            router,
            trading.broker,
            journal,
            trading.guard.market_open,
            clock,
            speed,
            cfg.feed.stall_timeout_s,
        )
        api_source = api = None
        if cfg.api.enabled:
            api_source = DaemonApiSource(
                cfg.api,
                cfg.mode,
                pipeline,
                trading,
                feed,
                engine,
                journal,
                telemetry.metrics,
                health,
                self.ready,
                clock,
            )
            api = ApiProcess(cfg, api_source, self.creds, self.log.bind(stage="api"))
        return Stages(
            clock=clock,
            speed=speed,
            pipeline=pipeline,
            trading=trading,
            mailbox=mailbox,
            feed=feed,
            subs=subs,
            engine=engine,
            telemetry=telemetry,
            health=health,
            history=history,
            recorder=recorder,
            api=api,
            api_source=api_source,
        )

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

    async def _until_ready(self, feed: FeedSession) -> None:
        ready = asyncio.create_task(feed.wait_ready())
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

    async def _flush_tape(self, recorder: TapeWriter) -> None:
        while True:
            await asyncio.sleep(1.0)
            recorder.flush()

    def _after_batch(self, now_ns: int) -> None:
        """After each batch of packets: subscriptions, trading, then publishing signals.

        Logging, journalling and the API wait until the engine has finished the batch, so they
        never stand between a bar close and the strategy's order intent.
        """
        s = self.stages
        s.subs.on_tick(now_ns)
        s.pipeline.after_batch(now_ns)
        for sig in s.pipeline.take_signals():
            self._publish(sig, s)

    def _publish(self, signal: SmartMoneySignal, s: Stages) -> None:
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
        s.trading.journal.signal(
            signal.ts,
            signal.underlying,
            signal.recommendation,
            signal.can_trade,
            msgspec.json.encode(signal),
        )
        self.summary.on_signal(signal)
        if self.alerting is not None and self.alerting.trading is not None:
            self.alerting.on_signal(signal)  # attached (alerts enabled)
        if s.api_source is not None:
            s.api_source.on_signal(signal)

    # ---- health and the systemd watchdog ------------------------------------------------

    def stale_stages(self) -> list[str]:
        """What withholds the watchdog's pings (empty when everything is alive)."""
        if self._stages is None:
            return ["daemon not started"]
        return self._stages.health.stale()

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
        s = self._stages
        if s is not None:
            await self._quietly("feed.stop", asyncio.wait_for(s.feed.stop(), 5))
            policy = self.cfg.orders.on_shutdown
            await self._quietly("orders.shutdown", self._stop_orders(s.trading, policy))
        await self._stop_tasks()
        await self._release(s)

    async def _stop_orders(self, trading: Trading, policy: str) -> None:
        cancelled = await asyncio.wait_for(trading.router.shutdown(policy), 10)
        self.log.info("orders.stopped", policy=policy, cancelled=cancelled)

    async def _release(self, s: Stages | None) -> None:
        """Close what the stages used, each step whatever the one before did."""
        if self.alerting is not None:
            await self._quietly("alerts.stop", self.alerting.stop())
        if s is not None:
            if s.api is not None:
                await self._quietly("api.stop", s.api.stop())
            if self._ready_ns:
                self._step("session.summary", partial(self._report_summary, s))
            if s.recorder is not None:
                self._step("tape.close", partial(self._close_tape, s.recorder))
            await self._quietly("broker.close", s.trading.broker.close())
            if s.history is not None:
                self._step("history.close", partial(self._close_history, s.history))
        if self.journal is not None:
            self._step("journal.close", partial(self._close_journal, self.journal))
        if self._lock_file is not None:
            self._step("state_dir.unlock", self._lock_file.close)
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

    def _report_summary(self, s: Stages) -> None:
        strategy = s.trading.strategy
        seconds = max(0.0, (s.clock.now_ns() - self._ready_ns) / 1e9 / s.speed)
        summary = self.summary.build(
            s.trading.router, strategy.entries, strategy.exits, seconds, self.cfg.mode
        )
        report(summary, self.log)

    def _close_tape(self, recorder: TapeWriter) -> None:
        recorder.close()
        self.log.info("tape.closed", path=str(recorder.path), frames=recorder.records)

    def _close_journal(self, journal: Journal) -> None:
        journal.close()
        self.log.info("journal.closed", path=journal.path, writes=journal.writes)

    def _close_history(self, history: ChainHistory) -> None:
        """Today's closing OI (tomorrow's ΔOI baseline) and what is still queued."""
        try:
            history.record_close()
        except sqlite3.Error as e:
            self.log.warning("daemon.shutdown_error", stage="history", error=repr(e))
        finally:
            history.store.close()

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
