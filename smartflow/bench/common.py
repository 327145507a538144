"""Shared bench plumbing: timing statistics, Markdown tables, the host-jitter probe."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numba import njit


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


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


@njit(cache=True)
def fixed_work(n: int) -> float:
    """A serial chain of square roots: the same instructions and no memory traffic every call."""
    s = 0.0
    for i in range(n):
        s = math.sqrt(s + i)
    return s


JITTER_STEPS = 7_000  # ~50 µs: the scale of the update it is compared with
