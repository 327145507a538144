"""Shared bench plumbing: timing statistics and the official SDK's parser in a subprocess.

The smartflow package never imports the SDK (an import-linter contract); peers that need it run
in a child process of the same interpreter, fed the same frames through a temporary file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def percentiles(samples_ns: Sequence[int] | np.ndarray) -> dict[str, float]:
    """Median, p90, p99 and max of nanosecond samples, in microseconds."""
    a = np.asarray(samples_ns, dtype=np.float64) / 1000.0
    if a.size == 0:
        return {
            "n": 0,
            "p50_us": float("nan"),
            "p90_us": float("nan"),
            "p99_us": float("nan"),
            "max_us": float("nan"),
        }
    return {
        "n": int(a.size),
        "p50_us": float(np.median(a)),
        "p90_us": float(np.percentile(a, 90)),
        "p99_us": float(np.percentile(a, 99)),
        "max_us": float(a.max()),
    }


_SDK_TIMER = r"""
import importlib.util, json, logging, struct, sys, time
from pathlib import Path
spec = importlib.util.find_spec("SmartApi")
if spec is None or not spec.submodule_search_locations:
    print(json.dumps({"error": "smartapi-python is not installed"})); sys.exit(0)
path = Path(next(iter(spec.submodule_search_locations))) / "smartWebSocketV2.py"
m_spec = importlib.util.spec_from_file_location("_sdk_ws2", path)
mod = importlib.util.module_from_spec(m_spec); m_spec.loader.exec_module(mod)
logging.getLogger("logzero_default").setLevel(logging.CRITICAL)
parser = object.__new__(mod.SmartWebSocketV2)
data = Path(sys.argv[1]).read_bytes()
frames, pos = [], 0
while pos < len(data):
    (n,) = struct.unpack_from("<I", data, pos)
    frames.append(data[pos + 4:pos + 4 + n])
    pos += 4 + n
repeat = int(sys.argv[2])
parse = parser._parse_binary_data
for f in frames[:200]:
    parse(f)
best = None
for _ in range(repeat):
    t = time.perf_counter_ns()
    for f in frames:
        parse(f)
    el = time.perf_counter_ns() - t
    best = el if best is None or el < best else best
print(json.dumps({"frames": len(frames), "ns_total": best}))
"""


def sdk_parse_ns(frames: Sequence[bytes], repeat: int = 3) -> dict[str, float | str]:
    """Time the SDK's ``_parse_binary_data`` over ``frames`` (best of ``repeat``) in a child."""
    with tempfile.TemporaryDirectory() as tmp:
        blob = Path(tmp) / "frames.bin"
        with open(blob, "wb") as f:
            for fr in frames:
                f.write(len(fr).to_bytes(4, "little") + fr)
        env = dict(os.environ)
        # The SDK's constructor writes ./logs/...; we never construct it, but keep cwd clean.
        out = subprocess.run(
            [sys.executable, "-c", _SDK_TIMER, str(blob), str(repeat)],
            capture_output=True,
            text=True,
            cwd=tmp,
            env=env,
            timeout=600,
            check=False,
        )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    result: dict[str, float | str] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
