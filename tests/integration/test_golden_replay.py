"""Golden replay: a committed tape replays to a committed output, byte for byte.

``tests/data/golden/`` holds a short simulated session (``session.sft``, 200 s of an 11-strike
NIFTY chain with a fresh position, a long build-up and a scalper trap), its scrip master
(``instruments.json``) and what ``smartflow replay`` wrote for it with the default configuration
(``expected.jsonl``: signals, paper orders and fills, chain snapshots every 60 s, the summary).

Determinism tests show that the same tape gives the same bytes twice; this one shows *what* the
bytes are, so a change of detector semantics (or of anything else in the output) is a reviewed
diff rather than a silent one. After a deliberate change, regenerate and review:

    SMARTFLOW_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/integration/test_golden_replay.py
    git diff tests/data/golden/expected.jsonl

``SMARTFLOW_REGEN_GOLDEN=tape`` also records a new tape and scrip master first (only when the
tape format or the session itself must change: a new tape makes every line differ).
"""

from __future__ import annotations

import difflib
import io
import os
from pathlib import Path

import msgspec
from support.session import write_tape

from smartflow.app.replay import Replayer
from smartflow.config import Config, ScenarioConfig, SimConfig
from smartflow.instruments.master import parse
from smartflow.tape.format import open_tape


GOLDEN = Path(__file__).resolve().parent.parent / "data" / "golden"
TAPE = GOLDEN / "session.sft"
INSTRUMENTS = GOLDEN / "instruments.json"
EXPECTED = GOLDEN / "expected.jsonl"
SIM = SimConfig(
    seed=21,
    strikes_each_side=5,
    ticks_per_second=20,
    days_to_expiry=2,
    scenarios=[
        ScenarioConfig(kind="fresh_position", start_s=60, duration_s=30, side="CE"),
        ScenarioConfig(kind="long_build_up", start_s=110, duration_s=40, side="PE"),
        ScenarioConfig(kind="scalper_trap", start_s=150, duration_s=30, strike_offset=4),
    ],
)


def _replay() -> bytes:
    cfg = Config()
    tape = open_tape(TAPE)
    out = io.BytesIO()
    master = parse(INSTRUMENTS.read_bytes(), set(cfg.market.underlyings))
    Replayer(cfg, master, out, 60.0, int(tape.recv_ns[0])).run(tape)
    return out.getvalue()


def test_the_golden_tape_replays_to_the_golden_output() -> None:
    regen = os.environ.get("SMARTFLOW_REGEN_GOLDEN", "")
    if regen == "tape":
        GOLDEN.mkdir(parents=True, exist_ok=True)
        _, master = write_tape(SIM, 200, str(TAPE))
        INSTRUMENTS.write_bytes(msgspec.json.format(master))
    got = _replay()
    if regen:
        EXPECTED.write_bytes(got)
    want = EXPECTED.read_bytes()
    if got != want:
        diff = difflib.unified_diff(
            want.decode().splitlines(),
            got.decode().splitlines(),
            "expected.jsonl",
            "replay",
            lineterm="",
            n=0,
        )
        shown = "\n".join(list(diff)[:40])
        raise AssertionError(f"replay output differs from the golden file:\n{shown}")
    kinds = [msgspec.json.decode(line)["kind"] for line in got.splitlines()]
    assert {"signal", "chain", "summary"} <= set(kinds)
