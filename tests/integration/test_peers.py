"""``benchmarks/peers.py`` (run from a checkout) puts our numbers next to the test extra's peers.

The peers (the official SDK's parser, vollib, QuantLib) come from the ``[test]`` extra; nothing is
installed at run time. Speed is never asserted: these check that each comparison runs both sides
on the same input and reports them.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def peers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("peers", ROOT / "benchmarks" / "peers.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["peers"] = module
    spec.loader.exec_module(module)
    return module


def _rows(report: str) -> list[list[str]]:
    lines = [ln for ln in report.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]


def test_decode_is_compared_with_the_sdk_parser(peers: ModuleType) -> None:
    rows = _rows(peers.decode_report(2_000, repeat=1))
    sdk = [r for r in rows if r[0].startswith("official SDK")]
    assert len(sdk) == 1
    # The SDK parsed the frames (a number, not its error text), and every row of ours has a ratio.
    assert float(sdk[0][1]) > 0
    assert all(re.fullmatch(r"[\d.]+×", r[2]) for r in rows)


def test_greeks_are_compared_with_vollib_and_quantlib(peers: ModuleType) -> None:
    rows = _rows(peers.greeks_report(40, repeat=3))
    impls = {r[0] for r in rows}
    assert any(i.startswith("vollib") for i in impls)
    assert any(i.startswith("QuantLib") for i in impls)
    assert not any("skipped" in r[-1] for r in rows)
    # Each peer row has its time per option relative to ours.
    assert all(r[7].endswith("×") for r in rows if r[0] not in ("ours", "timer"))


def test_replay_is_compared_with_the_sdk_parsing_the_same_packets(
    peers: ModuleType, tmp_path: Path
) -> None:
    from smartflow.bench.replay import record_session

    tape = tmp_path / "short.sft"
    master, _ = record_session(tape, seconds=10.0)
    instruments = tmp_path / "master.json"
    instruments.write_bytes(master)
    rows = _rows(peers.replay_report(str(tape), str(instruments), repeat=1))
    assert rows[0][0].startswith("smartflow replay: full pipeline")
    assert rows[0][3].endswith("the SDK's speed")
    assert rows[-1][0].startswith("official SDK: parse only")
    assert float(rows[-1][1]) > 0
