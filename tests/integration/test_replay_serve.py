"""``smartflow replay TAPE --serve --speed X`` plays a recorded day into the dashboard.

The golden tape (200 s of a seeded simulated session) at ten times its pace, through the real
CLI in a subprocess, with the dashboard open in Chromium: the ladder fills from the tape, the
detectors' signals appear, the tape clock moves on, and Ctrl-C ends it with exit 0.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from support.browser import browser, new_page, shoot


pytestmark = pytest.mark.slow
__all__ = ["browser"]

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
WAIT_S = 120.0


def test_replay_serve_plays_the_tape_into_the_dashboard(browser: Any, tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[api]\nlisten = "127.0.0.1:0"\n', encoding="utf-8")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "smartflow",
            "replay",
            str(GOLDEN / "session.sft"),
            "--instruments",
            str(GOLDEN / "instruments.json"),
            "--config",
            "config.toml",
            "--serve",
            "--speed",
            "10",
            "--log-format",
            "json",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    page, log = new_page(browser)
    try:
        deadline = time.monotonic() + WAIT_S
        url = None
        while url is None:
            assert proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            found = re.search(r"dashboard: (http://\S+)", "".join(lines))
            url = found.group(1) if found else None
            time.sleep(0.2)
        page.goto(url)
        page.wait_for_function(
            "document.querySelectorAll('#ladder tbody tr td.strike').length >= 5",
            timeout=WAIT_S * 1000,
        )
        page.wait_for_selector("#signals li", timeout=WAIT_S * 1000)
        page.wait_for_function(
            "document.querySelector('#health').textContent.includes('replay')",
            timeout=WAIT_S * 1000,
        )
        page.wait_for_function("window.__sf.bars >= 3", timeout=WAIT_S * 1000)
        shoot(page, "replay-serve")
        assert log.errors == [], log.errors
    finally:
        page.context.close()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
        reader.join(10)
        proc.stderr.close()
    assert code == 0, "".join(lines)
