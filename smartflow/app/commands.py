"""Command implementations behind ``smartflow <command>``."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import structlog

from smartflow.app import logging as applog
from smartflow.config import Config, load, load_credentials, to_builtins
from smartflow.core.errors import ConfigError, FatalError


def _load(args: argparse.Namespace) -> Config:
    return load(getattr(args, "config", None))


def _fail(e: Exception) -> int:
    print(f"smartflow: {e}", file=sys.stderr)
    return 2 if isinstance(e, ConfigError) else 1


def _run_async(coro: Any) -> Any:
    """Run on uvloop where available (the daemon's loop), else asyncio's default."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def cmd_check_config(args: argparse.Namespace) -> int:
    """Print the effective config and which credentials are set (never their values)."""
    try:
        cfg = _load(args)
    except ConfigError as e:
        return _fail(e)
    out = {"config": to_builtins(cfg), "credentials": load_credentials().redacted()}
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(out).decode(), indent=2) + "\n")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run the daemon."""
    from smartflow.app.daemon import Daemon, RunOptions

    try:
        cfg = _load(args)
    except ConfigError as e:
        return _fail(e)
    creds = load_credentials()
    applog.configure(args.log_format or cfg.log.format, cfg.log.level, creds.values())
    log = structlog.get_logger()
    opts = RunOptions(
        live=args.live, record=Path(args.record) if args.record else None, duration=args.duration
    )

    async def main() -> int:
        daemon = Daemon(cfg, creds, opts, log)
        daemon.install_signal_handlers()
        return await daemon.run()

    try:
        code: int = _run_async(main())
    except FatalError as e:
        return _fail(e)
    return code


def cmd_sim(args: argparse.Namespace) -> int:
    """Run the simulator alone until interrupted (or ``--duration``)."""
    from smartflow.app.simulator import run_simulator

    try:
        cfg = _load(args)
    except ConfigError as e:
        return _fail(e)
    applog.configure(args.log_format or cfg.log.format, cfg.log.level)
    try:
        code: int = _run_async(
            run_simulator(cfg, args.host, args.port, args.duration, args.tape, args.rate)
        )
    except ConfigError as e:
        return _fail(e)
    return code


def cmd_tape(args: argparse.Namespace) -> int:
    """``tape info`` and ``tape dump``."""
    from smartflow.app import tapetools
    from smartflow.tape.format import TapeError

    try:
        if args.tape_command == "info":
            return tapetools.info(Path(args.tape), sys.stdout)
        return tapetools.dump(Path(args.tape), sys.stdout, args.limit)
    except (TapeError, OSError) as e:
        return _fail(e)


def cmd_replay(args: argparse.Namespace) -> int:
    """Replay a tape through the analytics; JSON Lines to ``--out`` or stdout."""
    from smartflow.app.replay import Replayer
    from smartflow.instruments.master import load_file
    from smartflow.tape.format import TapeError, open_tape

    try:
        cfg = _load(args)
        master = load_file(args.instruments, set(cfg.market.underlyings))
        tape = open_tape(args.tape)
    except (ConfigError, TapeError, OSError, msgspec.DecodeError) as e:
        return _fail(e)
    if not len(tape):
        return _fail(ValueError(f"{args.tape}: the tape holds no frames"))
    if args.serve:
        return _replay_serve(args, cfg, master, tape)
    out = open(args.out, "wb") if args.out else sys.stdout.buffer  # noqa: SIM115
    history = None
    if args.history:
        from smartflow.journal.history import HistoryStore

        history = HistoryStore(args.history)
    try:
        replayer = Replayer(
            cfg, master, out, args.chain_every, int(tape.recv_ns[0]), history=history
        )
        t0 = time.perf_counter()
        summary = replayer.run(tape, timing=args.timing)
        elapsed = time.perf_counter() - t0
    except FatalError as e:
        return _fail(e)
    finally:
        if args.out:
            out.close()
        if history is not None:
            history.close()
        tape.close()
    rate = summary.frames / elapsed if elapsed > 0 else 0.0
    print(
        f"replayed {summary.frames} frames in {elapsed:.3f} s ({rate:,.0f} frames/s)",
        file=sys.stderr,
    )
    return 0


def _replay_serve(args: argparse.Namespace, cfg: Config, master: Any, tape: Any) -> int:
    """``replay --serve``: the tape into the dashboard, paced at ``--speed``."""
    import os

    from smartflow.app.replayserve import serve

    if not args.speed > 0:
        return _fail(ValueError(f"--speed: expected a positive number, got {args.speed}"))
    creds = load_credentials()
    applog.configure(args.log_format or cfg.log.format, cfg.log.level, creds.values())
    out = open(args.out or os.devnull, "wb")  # noqa: SIM115
    log = structlog.get_logger()
    try:
        code: int = _run_async(
            serve(cfg, creds, master, tape, out, args.speed, args.chain_every, log)
        )
    except FatalError as e:
        return _fail(e)
    finally:
        out.close()
        tape.close()
    return code


def cmd_backtest(args: argparse.Namespace) -> int:
    """Backtest tapes (or sweep a grid of config values over them)."""
    from smartflow.app import backtest
    from smartflow.tape.format import TapeError

    try:
        cfg = _load(args)
        if args.sweep:
            grid = backtest.parse_sweep(args.sweep)
            table = backtest.sweep(
                cfg, grid, args.tapes, args.out, args.instruments, max(1, args.workers)
            )
            sys.stdout.write(backtest.render_sweep(table["runs"]))
            print(f"{Path(args.out) / 'sweep.json'}", file=sys.stderr)
            return 0
        result = backtest.backtest(cfg, args.tapes, args.out, args.instruments)
    except (ConfigError, TapeError, OSError, ValueError, msgspec.DecodeError) as e:
        return _fail(e)
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(result["metrics"])).decode() + "\n")
    print(f"{Path(args.out) / 'report.html'}", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Re-render a backtest's report from its backtest.json; print the report's path."""
    from smartflow.app.report import write_report

    try:
        path = write_report(Path(args.dir))
    except (OSError, msgspec.DecodeError, KeyError) as e:
        return _fail(ValueError(f"{args.dir}: not a backtest output directory ({e})"))
    print(path.resolve())
    return 0


def _journal_command(args: argparse.Namespace, show: Callable[[Config], int]) -> int:
    """Run a journal reader; a missing, corrupt or unreadable journal is one line, exit 1."""
    import sqlite3

    from smartflow.app.journaltools import journal_path
    from smartflow.journal.store import JournalError, JournalWriteError

    try:
        cfg = _load(args)
    except ConfigError as e:
        return _fail(e)
    try:
        return show(cfg)
    except (FileNotFoundError, JournalError, JournalWriteError) as e:
        return _fail(e)
    except sqlite3.Error as e:
        return _fail(RuntimeError(f"journal {journal_path(cfg)}: {e}"))


def cmd_orders(args: argparse.Namespace) -> int:
    """Orders from the journal."""
    from smartflow.app import journaltools

    return _journal_command(
        args, lambda cfg: journaltools.orders(cfg, sys.stdout, args.json, args.day)
    )


def cmd_positions(args: argparse.Namespace) -> int:
    """Positions from the journal."""
    from smartflow.app import journaltools

    return _journal_command(
        args, lambda cfg: journaltools.positions(cfg, sys.stdout, args.json, args.day)
    )


def cmd_pnl(args: argparse.Namespace) -> int:
    """Realised P&L per day from the journal."""
    from smartflow.app import journaltools

    return _journal_command(args, lambda cfg: journaltools.pnl(cfg, sys.stdout, args.json))


def cmd_kill(args: argparse.Namespace) -> int:
    """Trip or reset the kill switch of the running daemon; exit 0 only on its acknowledgement."""
    from smartflow.app import journaltools

    return _journal_command(
        args,
        lambda cfg: journaltools.kill(
            cfg, load_credentials(), args.reset, args.reason, sys.stdout, args.timeout
        ),
    )


def cmd_bench(args: argparse.Namespace) -> int:
    """Run one yardstick and print its Markdown report."""
    which = args.bench_command
    if which == "decode":
        from smartflow.bench.decode import run_decode_bench

        print(run_decode_bench(args.frames))
    elif which == "greeks":
        from smartflow.bench.greeks import run_greeks_bench

        print(run_greeks_bench(args.contracts))
    elif which == "detectors":
        from smartflow.bench.detectors import run_detectors_bench

        print(run_detectors_bench(args.seconds))
    elif which == "summary":
        from smartflow.bench.summary import run_summary_bench

        print(run_summary_bench(args.seconds))
    elif which == "replay":
        from smartflow.bench.replay import run_replay_bench

        print(run_replay_bench(args.tape, args.instruments))
    elif which == "e2e":
        from smartflow.bench.e2e import run_e2e_bench

        rates = tuple(args.rate) if args.rate else (500, 1000, 2000, 5000, 10000, 20000)
        print(run_e2e_bench(rates, args.seconds))
    elif which == "api":
        from smartflow.bench.api import run_api_bench

        print(run_api_bench(args.rate, args.seconds, args.rounds, args.clients, args.client_nice))
    elif which == "all":
        from smartflow.bench.all import run_all

        print(run_all())
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    """``history import-iv FILE`` and ``history export --date D [--csv]``."""
    import datetime as dt

    from smartflow.app import historytools
    from smartflow.journal.history import HistoryError

    try:
        cfg = _load(args)
        if args.history_command == "import-iv":
            return historytools.import_iv(cfg, Path(args.file), sys.stdout)
        try:
            day = dt.date.fromisoformat(args.date)
        except ValueError:
            raise HistoryError(f"--date: expected YYYY-MM-DD, got {args.date!r}") from None
        return historytools.export(cfg, day, args.underlying, args.interval, args.csv, sys.stdout)
    except (ConfigError, HistoryError, OSError) as e:
        return _fail(e)
