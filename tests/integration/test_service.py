"""The daemon as systemd runs it: notify protocol, watchdog, SIGTERM, metrics, the unit file."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families


REPO = Path(__file__).resolve().parents[2]
CONFIG = """
state_dir = "state"
[sim]
ticks_per_second = 150.0
[api]
listen = "127.0.0.1:{port}"
[log]
stats_interval_s = 2.0
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Notifications:
    """A NOTIFY_SOCKET the daemon writes to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.seen: list[tuple[float, str]] = []

    def poll(self, until: float) -> None:
        while time.monotonic() < until:
            try:
                msg = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            self.seen.append((time.monotonic(), msg))

    def wait_for(self, needle: str, within: float) -> float:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for t, msg in self.seen:
                if needle in msg.split("\n"):
                    return t
            self.poll(min(deadline, time.monotonic() + 0.5))
        raise AssertionError(f"{needle} not received within {within}s: {self.seen[-3:]}")

    def times(self, needle: str) -> list[float]:
        return [t for t, msg in self.seen if needle in msg.split("\n")]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[Notifications, Path, int]]:
    port = _free_port()
    (tmp_path / "cfg.toml").write_text(CONFIG.format(port=port))
    notes = Notifications(tmp_path / "notify.sock")
    try:
        yield notes, tmp_path, port
    finally:
        notes.sock.close()


def _start(
    tmp: Path, notes: Notifications, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ, NOTIFY_SOCKET=str(notes.path), WATCHDOG_USEC="2000000", **(extra_env or {})
    )
    return subprocess.Popen(
        [sys.executable, "-m", "smartflow", "run", "--config", "cfg.toml", "--log-format", "json"],
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_ready_watchdog_metrics_then_sigterm(service: tuple[Notifications, Path, int]) -> None:
    notes, tmp, port = service
    proc = _start(tmp, notes)
    try:
        notes.wait_for("READY=1", within=120)
        notes.wait_for("WATCHDOG=1", within=10)
        notes.poll(time.monotonic() + 3)
        assert len(notes.times("WATCHDOG=1")) >= 2
        assert any(m.startswith("STATUS=") or "\nSTATUS=" in m for _, m in notes.seen)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        for name in (
            "smartflow_frames",
            "smartflow_frames_rejected",
            "smartflow_queue_depth",
            "smartflow_reconnects",
            "smartflow_stalls",
            "smartflow_coalesced_updates",
            "smartflow_event_loop_lag_seconds",
            "smartflow_engine_batch_seconds",
            "smartflow_detector_update_seconds",
            "smartflow_detector_kernels_seconds",
            "smartflow_signal_explain_seconds",
            "smartflow_tick_to_signal_seconds",
            "smartflow_tick_to_intent_seconds",
            "smartflow_tick_to_order_sent_seconds",
            "smartflow_orders",
            "smartflow_risk_rejections",
            "smartflow_engine_busy_seconds",
        ):
            assert name in families, name
        frames = sum(s.value for s in families["smartflow_frames"].samples)
        assert frames > 0
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    notes.poll(time.monotonic() + 0.5)
    assert proc.returncode == 0
    assert notes.times("STOPPING=1")
    events = [line for line in out.decode().splitlines() if '"event"' in line]
    assert '"daemon.stopped"' in events[-1]
    # The journal was checkpointed and closed cleanly: a plain sqlite3 open reads it.
    db = sqlite3.connect(tmp / "state" / "journal.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()


@pytest.mark.slow
def test_a_hung_stage_stops_the_watchdog(service: tuple[Notifications, Path, int]) -> None:
    notes, tmp, _ = service
    proc = _start(tmp, notes, {"SMARTFLOW_FAULT_HANG": "engine:3"})
    try:
        ready = notes.wait_for("READY=1", within=120)
        # The engine stops after 3 s; its heartbeat goes stale 5 s later. Watch until a status
        # line comes more than 6 s after the last ping (a minute at most on a loaded machine).
        deadline = ready + 60
        pings: list[float] = []
        statuses: list[float] = []
        while time.monotonic() < deadline:
            notes.poll(min(deadline, time.monotonic() + 0.5))
            pings = notes.times("WATCHDOG=1")
            statuses = [t for t, m in notes.seen if "STATUS=" in m]
            if pings and statuses and max(statuses) - max(pings) > 6:
                break
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert pings, "no watchdog ping before the hang"
    last_ping = max(pings)
    # Status lines keep coming (the process is alive), but the pings stopped for good.
    assert max(statuses) - last_ping > 6
    assert last_ping - ready < 12


@pytest.mark.slow
def test_a_crashed_stage_exits_non_zero(tmp_path: Path) -> None:
    # A config whose API port is taken makes start-up fail: the daemon must exit non-zero so
    # systemd restarts it, not sit there half-started.
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        (tmp_path / "cfg.toml").write_text(CONFIG.format(port=port))
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "smartflow",
                "run",
                "--config",
                "cfg.toml",
                "--log-format",
                "json",
                "--duration",
                "30",
            ],
            cwd=tmp_path,
            capture_output=True,
            timeout=120,
            check=False,
        )
    assert proc.returncode != 0


def test_unit_file_verifies(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    unit = (REPO / "deploy" / "smartflow.service").read_text()
    for key in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "StateDirectory=",
        "CacheDirectory=",
        "NUMBA_CACHE_DIR=",
        "LoadCredential=",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "TimeoutStartSec=",
        "TimeoutStopSec=",
        "--live",
    ):
        assert key in unit, key
    assert "SMARTFLOW_" not in unit  # no secret ever in the unit
    # The unit names the installed interpreter; verify a copy that points at this one.
    local = tmp_path / "smartflow.service"
    local.write_text(unit.replace("/opt/smartflow/bin/python", os.path.realpath(sys.executable)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(local)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
