"""Faults injected from outside a real daemon (a subprocess in sim mode), seen through the CLI.

The kill switch reaches a daemon whose HTTP API is off; a full disk (a tiny tmpfs, where this
machine lets the test mount one) turns into logged, counted write failures, refused entries, a
completed shutdown and a non-zero exit; the smaller faults each end in one line and an exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from smartflow.app.daemon import Daemon as InProcessDaemon, RunOptions
from smartflow.config import (
    ApiConfig,
    Config,
    Credentials,
    LogConfig,
    ScenarioConfig,
    SimConfig,
    decode,
)


pytestmark = pytest.mark.slow

# The first daemon in a fresh numba cache compiles every kernel (~25-45 s on a loaded VM).
START_TIMEOUT_S = 240
RIGHT = "right-kill-token-4242"
LOG_JSON = ("--log-format", "json")


def _config(tmp: Path, state_dir: Path | str = "state", scenario_s: float = 240.0) -> Path:
    text = f"""
state_dir = "{state_dir}"
[sim]
seed = 5
speed = 8.0
ticks_per_second = 150.0
[[sim.scenarios]]
kind = "fresh_position"
start_s = {scenario_s}
duration_s = 40.0
side = "CE"
[orders]
paper_latency_ms = 20.0
[api]
enabled = false
[log]
stats_interval_s = 60.0
"""
    decode(text)
    path = tmp / "cfg.toml"
    path.write_text(text)
    return path


def _env(token: str | None = RIGHT) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SMARTFLOW_KILL_TOKEN"}
    env.pop("SMARTFLOW_TEST_NUMBA_BASE", None)
    env.pop("CREDENTIALS_DIRECTORY", None)
    env["PYTHONUNBUFFERED"] = "1"
    if token is not None:
        env["SMARTFLOW_KILL_TOKEN"] = token
    return env


def _cli(tmp: Path, *args: str, token: str | None = RIGHT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smartflow", *args],
        cwd=tmp,
        env=_env(token),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class Daemon:
    """``smartflow run`` in a subprocess, its JSON log lines in a file."""

    def __init__(self, tmp: Path, *extra: str) -> None:
        self.log_path = tmp / f"daemon-{time.monotonic_ns()}.log"
        self._out = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "smartflow", "run", "--config", "cfg.toml", *LOG_JSON, *extra],
            cwd=tmp,
            env=_env(),
            stdout=self._out,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for text in self.log_path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(text))
        return out

    def text(self) -> str:
        return self.log_path.read_text()

    def wait_for(self, what: Callable[[dict[str, Any]], bool], timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.lines():
                if what(line):
                    return line
            assert self.proc.poll() is None, f"daemon exited early:\n{self.text()[-4000:]}"
            time.sleep(0.2)
        raise AssertionError(f"timed out; log tail:\n{self.text()[-4000:]}")

    def stop(self, timeout_s: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout_s)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._out.close()


def _event(name: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda line: (
        line.get("event") == name and all(line.get(k) == v for k, v in fields.items())
    )


def _rows(db: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return list(con.execute(sql, args))
    finally:
        con.close()


def _until(what: Callable[[], Any], timeout_s: float, note: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {note}")


@contextlib.contextmanager
def _tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A tiny tmpfs at ``where``, or a skip where this machine does not let the test mount."""
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


# ---- 3. the kill switch without the HTTP API ------------------------------------------------


def test_cli_kill_reaches_a_daemon_without_the_api(tmp_path: Path) -> None:
    # The scenario's entry comes 15 wall seconds after the simulator starts (plus the detectors'
    # reaction): room for the two CLI calls below to trip the switch first.
    _config(tmp_path, scenario_s=120.0)
    db = tmp_path / "state" / "journal.sqlite3"
    daemon = Daemon(tmp_path)
    try:
        daemon.wait_for(_event("daemon.ready"), START_TIMEOUT_S)

        # A loaded machine may take a while to answer: the default 5 s is for operators.
        wrong = _cli(tmp_path, "kill", "--reason", "drill", "--timeout", "60", token="not-it")
        assert wrong.returncode == 3, wrong.stderr
        assert "refused by the daemon: wrong kill token" in wrong.stderr
        assert _rows(db, "SELECT * FROM kill_events") == []

        right = _cli(tmp_path, "kill", "--reason", "drill", "--timeout", "60")
        assert right.returncode == 0, right.stderr
        ack = json.loads(right.stdout)
        assert ack["kill_switch"] is True
        ((trip_ns, source),) = _rows(db, "SELECT ts_ns, source FROM kill_events")
        assert source == "cli"
        daemon.wait_for(_event("risk.kill_switch", source="cli", reason="drill"), 10)

        # The scenario's entry comes after the kill: the strategy asks, the router refuses.
        _until(
            lambda: _rows(db, "SELECT 1 FROM risk_events WHERE reason LIKE 'kill switch is on%'"),
            START_TIMEOUT_S,
            "an entry refused by the kill switch",
        )
        late = "SELECT * FROM orders WHERE purpose='ENTRY' AND created_ns >= ?"
        assert _rows(db, late, (trip_ns,)) == []

        reset = _cli(tmp_path, "kill", "--reset", "--timeout", "60")
        assert reset.returncode == 0, reset.stderr
        assert json.loads(reset.stdout) == {"kill_switch": False}

        # A daemon that cannot answer: the CLI says so and exits non-zero; the trip stays
        # queued and takes effect once the daemon runs again.
        daemon.proc.send_signal(signal.SIGSTOP)
        try:
            stuck = _cli(tmp_path, "kill", "--reason", "frozen", "--timeout", "2")
        finally:
            daemon.proc.send_signal(signal.SIGCONT)
        assert stuck.returncode == 1
        assert "not confirmed: daemon running but not responding within 2 s" in stuck.stderr
        daemon.wait_for(_event("risk.kill_switch", source="cli", reason="frozen"), 30)
        _until(
            lambda: _rows(
                db, "SELECT 1 FROM kill_requests WHERE reason='frozen' AND status='done'"
            ),
            30,
            "the queued trip acknowledged",
        )
        assert daemon.stop() == 0
    finally:
        daemon.close()
    assert "Traceback" not in daemon.text()

    # No daemon at all: said at once, non-zero; a reset is withdrawn, not left for later.
    gone = _cli(tmp_path, "kill", "--reset", "--timeout", "30")
    assert gone.returncode == 1
    assert "reset not confirmed: no daemon running on state" in gone.stderr
    assert _rows(db, "SELECT status FROM kill_requests ORDER BY id DESC LIMIT 1") == [("expired",)]
    none = _cli(tmp_path, "kill", token=None)
    assert none.returncode == 2
    assert "no kill_token credential" in none.stderr


# ---- 4. a full disk ---------------------------------------------------------------------------


def _fill(fs: Path) -> None:
    """Write zeros until the filesystem is full."""
    fd = os.open(fs / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while _more(fd):
            pass
    finally:
        os.close(fd)


def _more(fd: int) -> bool:
    try:
        os.write(fd, b"\0" * 65536)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        return False
    return True


def test_a_full_disk_is_loud_blocks_entries_and_exits_non_zero(tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "fs", "size=24m") as fs:
        _config(tmp_path, fs / "state", scenario_s=60.0)
        daemon = Daemon(tmp_path)
        try:
            daemon.wait_for(_event("daemon.ready"), START_TIMEOUT_S)
            _fill(fs)
            failed = daemon.wait_for(_event("journal.write_failed"), START_TIMEOUT_S)
            assert failed["error"] == "database or disk is full"
            assert failed["level"] == "error"
            daemon.wait_for(
                lambda e: e.get("event") == "health.stale" and "journal writes" in e["stages"],
                60,
            )
            # The scenario's entry arrives while the disk is full: never an order without its
            # record.
            daemon.wait_for(
                lambda e: (
                    (e.get("event") == "router.refused" and e.get("kind") == "journal")
                    or e.get("event") == "router.order_not_recorded"
                ),
                START_TIMEOUT_S,
            )
            code = daemon.stop()
        finally:
            daemon.close()
        lines = daemon.lines()
        orders = _rows(fs / "state" / "journal.sqlite3", "SELECT order_id FROM orders")
    assert code == 1
    assert "Traceback" not in daemon.text()
    last = lines[-1]
    assert last["event"] == "daemon.stopped"
    assert last["exit_code"] == 1
    assert last["level"] == "error"
    assert "writes failed" in last["problems"]
    assert "signal" in last["problems"]
    sent = [e["order_id"] for e in lines if e.get("event") == "router.fill"]
    assert set(sent) <= {o for (o,) in orders}  # every fill's order has its record
    assert "last: database or disk is full" in last["problems"]
    # The shutdown ran its sequence after the failures, not a crash half-way.
    assert "orders.stopped" in [e.get("event") for e in lines]


async def _eventually(what: Callable[[], Any], timeout_s: float, note: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {note}")


async def test_journal_write_failures_in_a_running_daemon(tmp_path: Path) -> None:
    # Where no tmpfs can be mounted: every insert on the daemon's own SQLite connection fails
    # with SQLite's disk-full message, injected from the test through temporary triggers.
    cfg = Config(
        state_dir=str(tmp_path / "state"),
        sim=SimConfig(
            seed=5,
            speed=10.0,
            ticks_per_second=150,
            scenarios=[ScenarioConfig(kind="fresh_position", start_s=30, duration_s=40, side="CE")],
        ),
        api=ApiConfig(enabled=False),
        log=LogConfig(stats_interval_s=60),
    )
    with capture_logs() as logs:
        daemon = InProcessDaemon(cfg, Credentials(), RunOptions(), structlog.get_logger())
        run = asyncio.create_task(daemon.run())
        await _eventually(lambda: daemon.ready.is_set() or run.done(), START_TIMEOUT_S, "ready")
        journal = daemon.journal
        assert journal is not None
        assert daemon.trading is not None
        for table in ("signals", "orders", "order_events", "fills", "risk_events", "kill_events"):
            journal.query(
                f"CREATE TEMP TRIGGER full_{table} BEFORE INSERT ON {table} "
                "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
            )
        await _eventually(lambda: journal.write_failures.get("signal"), 120, "a failed signal")
        assert "journal writes" in daemon.stale_stages()
        telemetry = daemon.stages.telemetry
        assert "JOURNAL-FAILING" in telemetry.status_line()
        exposition = telemetry.metrics.exposition().decode()
        assert 'smartflow_journal_write_failures_total{kind="signal"}' in exposition
        router = daemon.trading.router
        await _eventually(lambda: router.refused_by_kind.get("journal"), 120, "a refused entry")
        assert router.orders == {}
        daemon.stop_event.set()
        code = await run
    assert code == 1
    failed = [e for e in logs if e["event"] == "journal.write_failed"]
    assert {e["kind"] for e in failed} >= {"signal", "risk_event"}
    assert all(e["error"] == "database or disk is full" for e in failed)
    last = logs[-1]
    assert last["event"] == "daemon.stopped"
    assert last["log_level"] == "error"
    assert last["exit_code"] == 1
    assert "writes failed" in last["problems"]
    assert "last: database or disk is full" in last["problems"]


# ---- 7. the smaller faults: one line, an exit code, no traceback ------------------------------


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stdout + result.stderr
    return result.stdout + result.stderr


def test_an_unknown_underlying_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "cfg.toml").write_text(
        '[market]\nunderlyings = ["NIFTI"]\n[api]\nenabled = false\n'
    )
    result = _cli(tmp_path, "run", "--config", "cfg.toml", *LOG_JSON)
    text = _one_line(result)
    assert result.returncode == 2
    (fatal,) = [json.loads(x) for x in text.splitlines() if '"daemon.fatal"' in x]
    message = "market.underlyings: the simulator has no NIFTI (it knows NIFTY, SENSEX, BANKNIFTY)"
    assert fatal["error"] == message
    sim = _cli(tmp_path, "sim", "--config", "cfg.toml", "--port", "0", "--duration", "1")
    assert sim.returncode == 2
    assert _one_line(sim).strip() == f"smartflow: {message}"


def test_state_dir_faults_name_the_path(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where the state directory should be")
    _config(tmp_path, "blocker")
    run = _cli(tmp_path, "run", "--config", "cfg.toml", *LOG_JSON)
    assert run.returncode == 1
    assert "state_dir blocker: exists and is not a directory" in _one_line(run)
    for command in ("orders", "positions", "pnl"):
        shown = _cli(tmp_path, command, "--config", "cfg.toml")
        assert shown.returncode == 1
        assert "no journal at blocker/journal.sqlite3" in _one_line(shown)
    kill = _cli(tmp_path, "kill", "--config", "cfg.toml")
    assert kill.returncode == 1
    assert _one_line(kill).strip() == (
        "smartflow: state_dir blocker: exists and is not a directory"
    )


def test_a_read_only_state_dir_names_the_path(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        ctx: contextlib.AbstractContextManager[Path] = _tmpfs(tmp_path / "ro", "ro,size=1m")
    else:
        (tmp_path / "ro").mkdir(mode=0o555)
        ctx = contextlib.nullcontext(tmp_path / "ro")
    with ctx as ro:
        _config(tmp_path, ro)
        run = _cli(tmp_path, "run", "--config", "cfg.toml", *LOG_JSON)
    assert run.returncode == 1
    assert f"state_dir {ro}: not writable" in _one_line(run)


def test_journal_readers_on_a_corrupt_journal_are_one_line(tmp_path: Path) -> None:
    _config(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "journal.sqlite3").write_bytes(b"\x00garbage, not SQLite\n" * 300)
    for command in ("orders", "positions", "pnl"):
        shown = _cli(tmp_path, command, "--config", "cfg.toml")
        assert shown.returncode == 1
        assert _one_line(shown).strip() == (
            "smartflow: journal state/journal.sqlite3: file is not a database"
        )


def test_a_restarted_simulator_continues_its_session_clock(tmp_path: Path) -> None:
    _config(tmp_path, scenario_s=20.0)
    db = tmp_path / "state" / "journal.sqlite3"
    stamps = "SELECT ts_ns FROM signals UNION ALL SELECT updated_ns FROM orders"
    first = Daemon(tmp_path, "--duration", "12")
    try:
        assert first.proc.wait(timeout=START_TIMEOUT_S) == 0
    finally:
        first.close()
    before = [t for (t,) in _rows(db, stamps)]
    assert before, "the first session journalled nothing"
    # A trip asked for while no daemon runs is not confirmed, but the next start applies it.
    queued = _cli(tmp_path, "kill", "--reason", "queued")
    assert queued.returncode == 1
    assert "trip not confirmed: no daemon running on state; the trip stays queued" in queued.stderr
    assert queued.stderr.rstrip().endswith("the daemon applies it at its next start")
    second = Daemon(tmp_path, "--duration", "12")
    try:
        assert second.proc.wait(timeout=START_TIMEOUT_S) == 0
    finally:
        second.close()
    resumed = [e for e in second.lines() if e.get("event") == "sim.session_resumed"]
    assert len(resumed) == 1
    restored = next(e for e in second.lines() if e.get("event") == "router.restored")
    assert restored["kill_switch"] is True
    assert _rows(db, "SELECT status FROM kill_requests") == [("done",)]
    after = sorted(set(t for (t,) in _rows(db, stamps)) - set(before))
    assert after, "the second session journalled nothing"
    assert after[0] > max(before)
