"""``smartflow replay TAPE --serve --speed X`` plays a recorded day into the dashboard.

The golden tape (200 s of a seeded simulated session) at ten times its pace, through the real
CLI in a subprocess, with the dashboard open in Chromium: the ladder fills from the tape, the
detectors' signals appear, the tape clock moves on, and Ctrl-C ends it with exit 0.
"""

from __future__ import annotations

import asyncio
import io
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from support.browser import browser, new_page, shoot

from smartflow.app.replayserve import serve
from smartflow.config import ApiConfig, Config, Credentials
from smartflow.core.errors import FatalError
from smartflow.instruments.master import load_file
from smartflow.tape.format import open_tape


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


def test_a_non_loopback_listen_needs_the_api_token(tmp_path: Path) -> None:
    anywhere = "0.0.0.0"  # noqa: S104 — refused before anything binds
    cfg = Config(state_dir=str(tmp_path), api=ApiConfig(listen=f"{anywhere}:0"))
    tape = open_tape(GOLDEN / "session.sft")
    master = load_file(str(GOLDEN / "instruments.json"), {"NIFTY"})
    try:
        # On a thread of its own: Playwright's sync API keeps an event loop on this one.
        with (
            ThreadPoolExecutor(1) as pool,
            pytest.raises(FatalError, match="api_token") as refused,
        ):
            pool.submit(
                asyncio.run, serve(cfg, Credentials(), master, tape, io.BytesIO(), 1.0, 60.0, None)
            ).result(60)
    finally:
        tape.close()
    assert anywhere in str(refused.value)
