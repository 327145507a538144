"""Paper trading end to end: sessions over real sockets, a real journal file, restarts."""

from __future__ import annotations

import contextlib
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
from numba.core.dispatcher import Dispatcher

from smartflow.app.daemon import Daemon, RunOptions
from smartflow.config import (
    ApiConfig,
    Config,
    Credentials,
    LogConfig,
    OrdersConfig,
    ScenarioConfig,
    SimConfig,
    decode,
)
from smartflow.journal.store import FillRow, Journal, PositionRow


# Three back to back, from the detectors' first half minute: the session's 180 simulated seconds
# (18 wall seconds at speed 10) trade each of them.
SCENARIOS = [
    ScenarioConfig(kind="fresh_position", start_s=30, duration_s=40, side="CE"),
    ScenarioConfig(kind="long_build_up", start_s=75, duration_s=40, side="PE", strike_offset=-1),
    ScenarioConfig(kind="short_build_up", start_s=120, duration_s=40, side="CE", strike_offset=1),
]


@contextlib.contextmanager
def jit_compiles_once(warm: Callable[[], bool]) -> Iterator[list[str]]:
    """Names of the numba kernels compiled (or loaded from the cache) once ``warm()`` is true."""
    late: list[str] = []
    compile_for_args = Dispatcher._compile_for_args

    def record(self: Dispatcher, *args: Any, **kws: Any) -> Any:
        if warm():
            late.append(self.py_func.__qualname__)
        return compile_for_args(self, *args, **kws)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Dispatcher, "_compile_for_args", record)
        yield late


def _replay_positions(fills: list[FillRow]) -> dict[str, PositionRow]:
    """Average-cost positions rebuilt from fills alone (the reconciliation's reference)."""
    out: dict[str, PositionRow] = {}
    for f in fills:
        pos = out.setdefault(
            f.token, PositionRow(day=f.day, token=f.token, symbol=f.symbol, underlying="")
        )
        pos.apply_fill(f.side, f.quantity, f.price)
    return out


@pytest.mark.slow
async def test_paper_session_trades_and_reconciles(tmp_path: Path) -> None:
    cfg = Config(
        state_dir=str(tmp_path / "state"),
        sim=SimConfig(seed=5, speed=10.0, ticks_per_second=150, scenarios=SCENARIOS),
        api=ApiConfig(listen="127.0.0.1:0"),
        log=LogConfig(stats_interval_s=60),
        orders=OrdersConfig(paper_partial_fill_pct=30.0),
    )
    daemon = Daemon(cfg, Credentials(), RunOptions(duration=18.0), structlog.get_logger())
    with jit_compiles_once(lambda: daemon.kernels_warm) as late:
        assert await daemon.run() == 0
    # The warm-up compiled every kernel the session called: no tick of the day pays for JIT.
    assert late == []
    journal = Journal(tmp_path / "state" / "journal.sqlite3", readonly=True)
    try:
        orders = journal.orders()
        fills = journal.fills()
        positions = {p.token: p for p in journal.positions()}
    finally:
        journal.close()
    assert orders, "the session traded nothing"
    assert fills
    # Every fill belongs to an order, and filled quantities add up per order.
    by_order: dict[str, int] = {}
    for f in fills:
        by_order[f.order_id] = by_order.get(f.order_id, 0) + f.quantity
    for o in orders:
        assert by_order.get(o.order_id, 0) == o.filled_quantity, o
        assert o.state in ("FILLED", "CANCELLED", "REJECTED", "OPEN", "PARTIAL")
    # Positions and realised P&L are exactly what the fills imply.
    reference = _replay_positions(fills)
    assert set(reference) == set(positions)
    for token, ref in reference.items():
        assert positions[token].net_quantity == ref.net_quantity
        assert positions[token].realised_pnl == pytest.approx(ref.realised_pnl, abs=1e-6)
        assert positions[token].average_price == pytest.approx(ref.average_price, abs=1e-6)
    # Only LIMIT orders exist, each with a tag under 20 characters.
    assert all(len(o.order_id) < 20 and o.limit_price > 0 for o in orders)


def _config(tmp: Path) -> Path:
    text = """
state_dir = "state"
[sim]
seed = 5
speed = 8.0
ticks_per_second = 150.0
[[sim.scenarios]]
kind = "fresh_position"
start_s = 60.0
duration_s = 60.0
side = "CE"
[orders]
paper_latency_ms = 20.0
[api]
listen = "127.0.0.1:0"
[log]
stats_interval_s = 60.0
"""
    decode(text)  # the test's own config must be valid
    path = tmp / "cfg.toml"
    path.write_text(text)
    return path


def _journal_rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return list(con.execute(sql))
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


@pytest.mark.slow
def test_sigkill_mid_session_then_restart_restores_without_duplicates(tmp_path: Path) -> None:
    _config(tmp_path)
    db = tmp_path / "state" / "journal.sqlite3"
    cmd = [sys.executable, "-m", "smartflow", "run", "--config", "cfg.toml", "--log-format", "json"]
    first = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            held = _journal_rows(db, "SELECT token FROM positions WHERE net_quantity > 0")
            if held:
                break
            time.sleep(0.2)
        assert held, "no position opened before the kill"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    before = _journal_rows(db, "SELECT order_id, token, side FROM orders")
    second = subprocess.Popen(
        [*cmd, "--duration", "12"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    out, _ = second.communicate(timeout=180)
    assert second.returncode == 0
    events = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    restored = next(e for e in events if e["event"] == "router.restored")
    assert restored["positions"] >= 1
    after = _journal_rows(db, "SELECT order_id, token, side FROM orders")
    ids = [r[0] for r in after]
    assert len(ids) == len(set(ids))
    assert after[: len(before)] == before  # nothing rewritten
    # The contract held across the restart got no second entry while it was held: a BUY may
    # follow only once an exit (SELL) has closed the adopted position.
    token = held[0][0]
    sides = [r[2] for r in after[len(before) :] if r[1] == token]
    held_part = sides[: sides.index("SELL")] if "SELL" in sides else sides
    assert "BUY" not in held_part


def test_live_mode_is_refused_without_flag_and_credentials(tmp_path: Path) -> None:
    cfg = tmp_path / "live.toml"
    cfg.write_text('mode = "live"\n[api]\nlisten = "127.0.0.1:0"\n')
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SMARTFLOW_") or k.startswith("SMARTFLOW_NUMBA")
    }
    env.pop("CREDENTIALS_DIRECTORY", None)
    base = [
        sys.executable,
        "-m",
        "smartflow",
        "run",
        "--config",
        str(cfg),
        "--log-format",
        "json",
        "--duration",
        "5",
    ]
    no_flag = subprocess.run(
        base, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False
    )
    assert no_flag.returncode != 0
    assert "--live" in no_flag.stdout + no_flag.stderr
    assert "credential api_key" in no_flag.stdout + no_flag.stderr
    with_flag = subprocess.run(
        [*base, "--live"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert with_flag.returncode != 0
    text = with_flag.stdout + with_flag.stderr
    assert "--live" not in text.split("missing", 1)[-1]
    assert "credential totp_secret" in text
