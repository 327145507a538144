"""A live daemon never loads the simulator; a sim one gets it through its venue."""

from __future__ import annotations

import subprocess
import sys


SCRIPT = """
import sys
from smartflow.app.daemon import Daemon, RunOptions
from smartflow.app.venue import LiveVenue, venue_for
from smartflow.config import Config, Credentials
import structlog

cfg = Config(mode="live")
daemon = Daemon(cfg, Credentials(), RunOptions(live=True))
assert isinstance(venue_for(cfg, Credentials(), True, structlog.get_logger()), LiveVenue)
assert daemon.sim is None
print(sorted(m for m in sys.modules if m.startswith("smartflow.sim")))
venue_for(Config(), Credentials(), False, structlog.get_logger())
print(sorted(m for m in sys.modules if m.startswith("smartflow.sim")))
"""


def test_the_simulator_is_imported_only_for_a_sim_venue() -> None:
    # A fresh interpreter: this one has imported the simulator for other tests.
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=120
    ).stdout.splitlines()
    assert out[0] == "[]"
    assert "smartflow.sim.server" in out[1]
