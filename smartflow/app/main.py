"""Command-line interface: ``smartflow <command>``.

The numba cache location must be set before numba is imported anywhere, so this module imports
nothing heavy at the top; each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from smartflow import __version__
from smartflow.app.jit import configure_numba_cache


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        metavar="P",
        default=None,
        help="config file (default: built-in defaults = sim mode, paper orders)",
    )


def _add_log(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log-format",
        choices=["auto", "json", "console"],
        default=None,
        help="override [log] format",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(prog="smartflow", description=__doc__)
    parser.add_argument("--version", action="version", version=f"smartflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon (sim mode starts the embedded simulator)")
    _add_config(run)
    _add_log(run)
    run.add_argument("--duration", type=float, metavar="S", help="exit 0 after S seconds")
    run.add_argument("--record", metavar="TAPE", help="record every binary frame to TAPE")
    run.add_argument(
        "--live",
        action="store_true",
        help="allow live trading (also needs mode = 'live' and credentials)",
    )

    sim = sub.add_parser("sim", help="run the Angel-protocol simulator on its own")
    _add_config(sim)
    _add_log(sim)
    sim.add_argument("--host", default=None)
    sim.add_argument("--port", type=int, default=None)
    sim.add_argument("--duration", type=float, metavar="S")
    sim.add_argument("--tape", metavar="TAPE", help="stream this recording instead of the model")
    sim.add_argument("--rate", type=float, metavar="R", help="packets/s for --tape (1000)")

    check = sub.add_parser("check-config", help="print the effective config, secrets redacted")
    _add_config(check)

    tape = sub.add_parser("tape", help="inspect a recorded tape")
    tape_sub = tape.add_subparsers(dest="tape_command", required=True, metavar="ACTION")
    info = tape_sub.add_parser("info", help="frames, time span, tokens, modes")
    info.add_argument("tape")
    dump = tape_sub.add_parser("dump", help="one JSON object per frame, keyed like the SDK")
    dump.add_argument("tape")
    dump.add_argument("--limit", type=int, metavar="N")

    replay = sub.add_parser("replay", help="replay a tape through the analytics, JSON lines out")
    replay.add_argument("tape")
    replay.add_argument(
        "--instruments",
        required=True,
        metavar="FILE",
        help="scrip master (JSON array) that goes with the tape",
    )
    _add_config(replay)
    _add_log(replay)
    replay.add_argument("--out", metavar="FILE", help="output file (default stdout)")
    replay.add_argument(
        "--chain-every",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="chain snapshot interval in tape seconds (default 60)",
    )
    replay.add_argument(
        "--history",
        metavar="FILE",
        help="also record the one-minute chain history into this SQLite file (as a live run)",
    )
    replay.add_argument(
        "--serve",
        action="store_true",
        help="play the tape into the dashboard (/ui on [api] listen) at --speed; Ctrl-C stops",
    )
    replay.add_argument(
        "--speed",
        type=float,
        default=1.0,
        metavar="X",
        help="with --serve: tape seconds per wall second (default 1)",
    )
    replay.add_argument(
        "--timing",
        action="store_true",
        help="add processing_s to the summary (the output is then not reproducible)",
    )

    bt = sub.add_parser(
        "backtest", help="tapes through the paper pipeline: trades, metrics, report"
    )
    bt.add_argument("tapes", nargs="+", metavar="TAPE")
    _add_config(bt)
    bt.add_argument(
        "--instruments",
        metavar="FILE",
        help="scrip master for every tape (default: instruments.json beside each tape)",
    )
    bt.add_argument("--out", metavar="DIR", default="backtest", help="output directory")
    bt.add_argument(
        "--sweep",
        action="append",
        metavar="KEY=V1,V2",
        help="run every combination of these config values (repeatable), one table",
    )
    bt.add_argument("--workers", type=int, default=2, metavar="N", help="sweep processes (2)")
    rpt = sub.add_parser("report", help="re-render a backtest's report.html and print its path")
    rpt.add_argument("dir", metavar="DIR")

    for name, helptext in (
        ("orders", "orders from the journal"),
        ("positions", "positions from the journal"),
    ):
        cmd = sub.add_parser(name, help=helptext)
        _add_config(cmd)
        cmd.add_argument("--json", action="store_true", help="one JSON object per line")
        cmd.add_argument("--day", metavar="YYYY-MM-DD", help="a day, or 'all' (default today)")
    pnl = sub.add_parser("pnl", help="realised P&L per day from the journal")
    _add_config(pnl)
    pnl.add_argument("--json", action="store_true", help="one JSON object per line")
    kill = sub.add_parser("kill", help="trip the kill switch of the running daemon")
    _add_config(kill)
    kill.add_argument("--reset", action="store_true", help="re-arm trading instead")
    kill.add_argument("--reason", default="operator", help="recorded with the event")
    kill.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="wait this long for the daemon's acknowledgement (default 5); exit 1 without it",
    )

    hist = sub.add_parser("history", help="chain history: daily ATM-IV closes, 1-min snapshots")
    hist_sub = hist.add_subparsers(dest="history_command", required=True, metavar="ACTION")
    imp = hist_sub.add_parser(
        "import-iv", help="seed daily ATM-IV closes from a CSV: date,underlying,atm_iv"
    )
    imp.add_argument("file", metavar="FILE.csv")
    _add_config(imp)
    exp = hist_sub.add_parser("export", help="one day's one-minute snapshots")
    exp.add_argument("--date", required=True, metavar="YYYY-MM-DD")
    exp.add_argument("--csv", action="store_true", help="CSV, one row per minute and contract")
    exp.add_argument("--underlying", metavar="U", help="one underlying (default: all)")
    exp.add_argument("--interval", choices=["1m", "5m", "15m"], default="1m")
    _add_config(exp)

    bench = sub.add_parser(
        "bench", help="measure our speed on this machine (peer tables: benchmarks/peers.py)"
    )
    bench_sub = bench.add_subparsers(dest="bench_command", required=True, metavar="YARDSTICK")
    dec = bench_sub.add_parser("decode", help="our decoder: batch kernel, check, dict")
    dec.add_argument("--frames", type=int, default=30_000, metavar="N")
    gr = bench_sub.add_parser("greeks", help="IV + greeks for a chain and one contract")
    gr.add_argument("--contracts", type=int, default=400)
    det = bench_sub.add_parser("detectors", help="full detector update of a 50-strike chain")
    det.add_argument("--seconds", type=float, default=300.0, help="simulated session length")
    summ = bench_sub.add_parser("summary", help="chain summary of a 41-strike chain per bar")
    summ.add_argument(
        "--seconds",
        type=float,
        default=620.0,
        help="simulated session length (2 × ≥ 200 bar closes)",
    )
    rep = bench_sub.add_parser("replay", help="whole-pipeline replay of a tape")
    rep.add_argument("tape", nargs="?", help="a tape (default: record a simulator session)")
    rep.add_argument("--instruments", metavar="FILE", help="scrip master for TAPE")
    e2e = bench_sub.add_parser("e2e", help="simulator → loopback → daemon latency at a rate")
    e2e.add_argument(
        "--rate",
        type=float,
        action="append",
        metavar="R",
        help="packets/s (repeatable; default 500 1k 2k 5k 10k 20k)",
    )
    e2e.add_argument(
        "--seconds",
        type=float,
        default=600.0,
        help="most measured per rate (stops at 200 bar decisions and 200 intents)",
    )
    api = bench_sub.add_parser("api", help="tick → decision with and without 200 API clients")
    api.add_argument("--rate", type=float, default=2000.0, help="packets/s fed to the daemon")
    api.add_argument("--seconds", type=float, default=6.0, help="per quiet or loaded phase")
    api.add_argument("--rounds", type=int, default=3, help="(quiet, loaded) pairs per daemon")
    api.add_argument("--clients", type=int, default=200, help="concurrent API clients")
    api.add_argument(
        "--client-nice", type=int, default=0, help="run the clients this many nice steps lower"
    )
    bench_sub.add_parser("all", help="every yardstick, one Markdown report")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; return the process exit code."""
    configure_numba_cache()
    args = build_parser().parse_args(argv)
    from smartflow.app import commands

    handler = getattr(commands, f"cmd_{args.command.replace('-', '_')}")
    try:
        code: int = handler(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
