"""The first run shows the product working: ``smartflow run --duration 120`` with the shipped
config.toml places a paper entry and its exit, and prints the session summary when it stops.

The daemon is a real subprocess on the embedded simulator, run from the repository's own
config.toml with two changes: the API listens on a free port (port 0) so the test cannot collide
with a daemon already running, and the simulator runs at four times the shipped speed for a
quarter of the duration. The market is event-driven in simulated time and ``--duration`` starts
once the daemon is ready (kernels warm, simulator started), so this is the same two simulated
minutes a first run trades in, in 30 wall seconds. Once the journal holds a filled exit (or the
duration ends), the daemon is asked to stop with SIGINT, so the test takes as long as the trade
does, never more than the two simulated minutes plus start-up.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest


pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# Start-up compiles the kernels on a cold numba cache (up to a minute on a loaded VM), then the
# run itself is at most 120 s of simulated time, 30 s at speed 4.
TIMEOUT_S = 420
SPEED = 4


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SMARTFLOW_TEST_NUMBA_BASE", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _exit_filled(db: Path) -> bool:
    if not db.exists():
        return False
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
    try:
        rows = con.execute(
            "SELECT count(*) FROM orders WHERE purpose = 'EXIT' AND state = 'FILLED'"
        ).fetchone()
        return bool(rows and rows[0])
    except sqlite3.OperationalError:
        return False
    finally:
        con.close()


def test_default_config_trades_in_and_out_within_two_minutes(tmp_path: Path) -> None:
    shipped = (REPO / "config.toml").read_text(encoding="utf-8")
    listen = 'listen = "127.0.0.1:8321"'
    speed = "speed = 1.0 "
    assert listen in shipped
    assert shipped.count(speed) == 1
    changed = shipped.replace(listen, 'listen = "127.0.0.1:0"').replace(speed, f"speed = {SPEED}.0")
    (tmp_path / "config.toml").write_text(changed, encoding="utf-8")
    cmd = [sys.executable, "-m", "smartflow", "run", "--config", "config.toml"]
    proc = subprocess.Popen(
        [*cmd, "--duration", str(120 // SPEED), "--log-format", "json"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    db = tmp_path / "state" / "journal.sqlite3"
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while proc.poll() is None and time.monotonic() < deadline:
            if _exit_filled(db):
                proc.send_signal(signal.SIGINT)
                break
            time.sleep(0.5)
        out, err = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    events = [json.loads(line) for line in out.splitlines()]
    by_event: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_event.setdefault(e["event"], []).append(e)
    # An entry and its exit, both filled on paper.
    (summary,) = by_event["session.summary"]
    assert summary["orders_by_purpose"].get("ENTRY", 0) >= 1, summary
    assert summary["orders_by_purpose"].get("EXIT", 0) >= 1, summary
    assert summary["fills"] >= 2, summary
    assert [c for c in summary["contracts"] if c["bought"] and c["sold"]], summary
    assert summary["signals"] >= 1
    assert sum(summary["signals_by_kind"].values()) == summary["signals"]
    assert summary["pnl"] == pytest.approx(summary["realised"] + summary["unrealised"], abs=0.02)
    assert by_event["strategy.exit"]
    # The same summary, for a person, on stderr: one screen.
    block = err[err.index("── smartflow session summary") :]
    block = block[: block.index("─" * 76) + 76]
    assert len(block.splitlines()) <= 24
    assert f"signals   {summary['signals']:>4}" in block
    assert f"fills     {summary['fills']:>4}" in block
    assert f"total {summary['pnl']:+.2f} rupees" in block
