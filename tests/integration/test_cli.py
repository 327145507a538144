"""The ``smartflow`` command line, run as a real subprocess in sim mode."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest


pytestmark = pytest.mark.slow

# A free port for the API: the default 8321 may be taken (another daemon, a parallel test).
CONFIG = '[api]\nlisten = "127.0.0.1:0"\n[log]\nstats_interval_s = 1\n'

# The first run in a fresh numba cache compiles every kernel.
TIMEOUT_S = 180


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SMARTFLOW_TEST_NUMBA_BASE", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _smartflow(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smartflow", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_run_records_a_tape_and_logs_json(tmp_path: Path) -> None:
    (tmp_path / "cfg.toml").write_text(CONFIG, encoding="utf-8")
    tape = tmp_path / "t.sft"
    run = _smartflow(
        "run",
        "--config",
        "cfg.toml",
        "--duration",
        "8",
        "--record",
        str(tape),
        "--log-format",
        "json",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    lines = _json_lines(run.stdout)
    for line in lines:
        assert {"event", "level", "ts"} <= set(line), line
    events = [line["event"] for line in lines]
    assert "daemon.ready" in events
    assert events[-1] == "daemon.stopped"
    assert lines[-1]["exit_code"] == 0
    stats = [line for line in lines if line["event"] == "stats"]
    for stage in ("feed", "engine"):
        stage_stats = [s for s in stats if s.get("stage") == stage]
        assert stage_stats, f"no stats line for {stage}"
        assert all("frames_per_s" in s for s in stage_stats)
    assert max(s["frames"] for s in stats if s["stage"] == "feed") > 0
    assert not any(line["level"] == "error" for line in lines)
    (closed,) = [line for line in lines if line["event"] == "tape.closed"]
    assert closed["frames"] > 0

    info = _smartflow("tape", "info", str(tape), cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    (summary,) = _json_lines(info.stdout)
    assert summary["frames"] == closed["frames"]
    assert summary["header"]["format"] == "SFTAPE1"
    assert summary["header"]["mode"] == "sim"
    assert summary["modes"] == {"SNAP_QUOTE": closed["frames"]}
    assert summary["rejected"] == {}
    assert summary["truncated_bytes"] == 0
    assert summary["tokens"] > 2

    dump = _smartflow("tape", "dump", "--limit", "5", str(tape), cwd=tmp_path)
    assert dump.returncode == 0, dump.stderr
    rows = _json_lines(dump.stdout)
    assert len(rows) == 6
    for row in rows[:5]:
        assert {"recv_ns", "token", "exchange_type", "subscription_mode"} <= set(row)
        assert row["subscription_mode_val"] == "SNAP_QUOTE"
    assert rows[-1] == {
        "summary": True,
        "frames": 5,
        "by_kind": {"ok": 5},
        "total_frames": closed["frames"],
    }


def test_sigint_after_ready_exits_cleanly(tmp_path: Path) -> None:
    (tmp_path / "cfg.toml").write_text(CONFIG, encoding="utf-8")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "smartflow",
            "run",
            "--config",
            "cfg.toml",
            "--duration",
            "120",
            "--log-format",
            "json",
        ],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + TIMEOUT_S
        lines: list[dict[str, Any]] = []
        # Stats lines every second keep readline() returning while we wait for ready.
        while time.monotonic() < deadline:
            text = proc.stdout.readline()
            if not text:
                break
            lines.append(json.loads(text))
            if lines[-1]["event"] == "daemon.ready":
                break
        assert lines, "no output"
        assert lines[-1]["event"] == "daemon.ready"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    rest = _json_lines(out)
    events = [line["event"] for line in rest]
    assert "daemon.stopping" in events
    assert events[-1] == "daemon.stopped"
    assert rest[-1]["exit_code"] == 0


def test_check_config_rejects_a_bad_key(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('[market]\nunderlying = ["NIFTY"]\n', encoding="utf-8")
    result = _smartflow("check-config", "--config", "bad.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert "bad.toml" in result.stderr
    assert "unknown key `market.underlying`" in result.stderr
    assert result.stdout == ""


def test_check_config_prints_effective_config_without_secrets(tmp_path: Path) -> None:
    (tmp_path / "ok.toml").write_text("[detectors]\nbar_seconds = 7\n", encoding="utf-8")
    env_secret = "api-key-value-never-printed"
    result = subprocess.run(
        [sys.executable, "-m", "smartflow", "check-config", "--config", "ok.toml"],
        cwd=tmp_path,
        env={**_env(), "SMARTFLOW_API_KEY": env_secret},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["config"]["detectors"]["bar_seconds"] == 7
    assert out["credentials"]["api_key"] == "set"
    assert env_secret not in result.stdout
