"""``bench greeks``: our IV + greeks kernels timed on one chain, on this machine.

Inputs: a NIFTY-like chain, spot 24000, strikes every 50 points around the money (half the
contracts CE, half PE), two calendar days to expiry, a smile ``sigma(k) = 12 % - 10 % k + 80 %
k²`` in ``k = ln(K/F)``, and Black-76 premiums on the forward ``F = S*exp(rT)`` discounted at
``r = 6.5 %``. Many far strikes of such a chain have less than half a tick of time value; they are
rejected cheaply by our kernel, so the report also times the "solvable" subset (time value >=
half a tick) on its own, which is where a per-option comparison with other libraries is fair.

Timings use ``time.perf_counter_ns`` around whole calls; medians and 99th percentiles over the
repeats. Nothing here imports a library that is not a runtime dependency: the comparison with
peer libraries (vollib, QuantLib) is ``benchmarks/peers.py greeks`` in a checkout, with the
peers from the ``[test]`` extra. Nothing runs or prints at import.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray


SPOT = 24000.0
RATE = 0.065
DAYS = 2.0
STRIKE_STEP = 50.0
HALF_TICK = 0.025
TARGET_CHAIN_US = 150.0
TARGET_TICK_NS = 1000.0
TICK_CALLS = 100  # calls per timed sample of the one-contract rows

Array = NDArray[np.float64]


class Chain(NamedTuple):
    """The benchmark chain: one row per contract (float64 / bool_ arrays of equal length)."""

    price: Array
    F: Array
    K: Array
    T: Array
    S: Array
    sigma: Array
    is_call: NDArray[np.bool_]
    solvable: NDArray[np.int64]  # rows whose OTM-equivalent time value is >= half a tick


class Row(NamedTuple):
    """One line of the report; times in ns, NaN when not applicable."""

    impl: str
    what: str
    n: int
    median_ns: float
    p99_ns: float
    max_iv_err: float = math.nan
    note: str = ""


def build_chain(n_contracts: int = 400) -> Chain:
    """Build the benchmark chain with Black-76 premiums (see the module docstring)."""
    from smartflow.kernels.greeks_bench import price_rows

    n_strikes = max(n_contracts // 2, 1)
    T = DAYS / 365.0
    F = SPOT * math.exp(RATE * T)
    atm = round(F / STRIKE_STEP) * STRIKE_STEP
    strikes = atm + (np.arange(n_strikes) - n_strikes // 2) * STRIKE_STEP
    K = np.concatenate([strikes, strikes])
    is_call = np.concatenate([np.ones(n_strikes, np.bool_), np.zeros(n_strikes, np.bool_)])
    k = np.log(K / F)
    sigma = 0.12 - 0.10 * k + 0.80 * k * k
    n = K.size
    price = np.empty(n)
    price_rows(
        np.arange(n, dtype=np.int64), np.full(n, F), K, np.full(n, T), sigma, RATE, is_call, price
    )
    df = math.exp(-RATE * T)
    intrinsic = np.where(is_call, np.maximum(F - K, 0.0), np.maximum(K - F, 0.0)) * df
    solvable = np.nonzero(price - intrinsic >= HALF_TICK)[0].astype(np.int64)
    return Chain(price, np.full(n, F), K, np.full(n, T), np.full(n, SPOT), sigma, is_call, solvable)


def time_ns(fn: Callable[[], object], repeat: int) -> NDArray[np.int64]:
    """Nanoseconds of each of ``repeat`` calls of ``fn``."""
    samples = np.empty(repeat, dtype=np.int64)
    for i in range(repeat):
        t0 = time.perf_counter_ns()
        fn()
        samples[i] = time.perf_counter_ns() - t0
    return samples


def _time_per_call_ns(
    calls: list[tuple[Callable[..., object], tuple[Any, ...]]], samples: int, per_sample: int
) -> list[NDArray[np.int64]]:
    """Per-call time of each ``fn(*args)``, from samples of ``per_sample`` back-to-back calls.

    A sub-microsecond call timed alone is half timer (a perf_counter_ns pair costs ~0.1 µs
    here); a sample of many calls leaves only the call, as a tick loop would see it. The loop
    calls ``fn`` directly, without a wrapper (which would cost ~0.1 µs a call), and the
    candidates take turns sample by sample, so a slow spell of the machine (this VM's speed
    varies by a third within seconds) hits them alike and their ratios hold.
    """
    out = [np.empty(samples, dtype=np.int64) for _ in calls]
    for i in range(samples):
        for (fn, args), times in zip(calls, out, strict=True):
            t0 = time.perf_counter_ns()
            for _ in range(per_sample):
                fn(*args)
            times[i] = (time.perf_counter_ns() - t0) // per_sample
    return out


def row(impl: str, what: str, n: int, samples: NDArray[np.int64], **kw: Any) -> Row:
    """A report row with the median and p99 of ``samples``."""
    return Row(impl, what, n, float(np.median(samples)), float(np.percentile(samples, 99)), **kw)


def skipped(impl: str, why: str) -> Row:
    """A row for an implementation that could not run, and why."""
    return Row(impl, "-", 0, math.nan, math.nan, note=f"skipped: {why}")


# --- ours ---------------------------------------------------------------------------------------
def bench_ours(ch: Chain, repeat: int) -> list[Row]:
    """Our chain and one-contract timings on ``ch``, and the timer's own cost."""
    from smartflow.kernels.greeks_bench import (
        NT,
        T_IV,
        greeks_rows,
        implied_vol_rows,
        iv_greeks_rows,
        iv_greeks_tick,
        warm_up,
    )
    from smartflow.kernels.iv import IV_OK, iv_greeks_one

    warm_up()
    n = ch.K.size
    every = np.arange(n, dtype=np.int64)
    iv = np.empty(n)
    status = np.empty(n, dtype=np.int8)
    g = [np.empty(n) for _ in range(4)]

    def full(rows: NDArray[np.int64]) -> Callable[[], object]:
        return lambda: iv_greeks_rows(
            rows, ch.price, ch.F, ch.K, ch.T, RATE, ch.S, ch.is_call, HALF_TICK, iv, status, *g
        )

    full(every)()
    solved = int((status == IV_OK).sum())
    ok = status == IV_OK
    err = float(np.abs(iv[ok] - ch.sigma[ok]).max()) if solved else math.nan
    sub = ch.solvable
    rows = [
        row(
            "ours",
            "IV+greeks, full chain",
            n,
            time_ns(full(every), repeat),
            max_iv_err=err,
            note=f"{solved} solved, {n - solved} rejected (< half tick)",
        ),
        row(
            "ours",
            "IV+greeks, solvable rows",
            sub.size,
            time_ns(full(sub), repeat),
            max_iv_err=err,
        ),
        row(
            "ours",
            "greeks only (given vol), full chain",
            n,
            time_ns(
                lambda: greeks_rows(every, ch.F, ch.K, ch.T, ch.sigma, RATE, ch.S, ch.is_call, *g),
                repeat,
            ),
        ),
        row(
            "ours",
            "IV only, full chain",
            n,
            time_ns(
                lambda: implied_vol_rows(
                    every, ch.price, ch.F, ch.K, ch.T, RATE, ch.is_call, HALF_TICK, iv, status
                ),
                repeat,
            ),
        ),
    ]
    # Tick path: the arguments a chain task would hold, built once, so the timing is the call.
    atm = np.array([sub[sub.size // 2] if sub.size else 0], dtype=np.int64)
    i = int(atm[0])
    ticks = max(repeat * 50, 1000)
    rows_args = (atm, ch.price, ch.F, ch.K, ch.T, RATE, ch.S, ch.is_call, HALF_TICK, iv, status, *g)
    scalar_args = (
        float(ch.price[i]),
        float(ch.F[i]),
        float(ch.K[i]),
        float(ch.T[i]),
        RATE,
        float(ch.S[i]),
        bool(ch.is_call[i]),
        HALF_TICK,
    )
    record = np.zeros(NT)
    record[:T_IV] = scalar_args
    each = f"(per call, {TICK_CALLS} calls a sample, interleaved)"
    t_tick, t_one, t_rows = _time_per_call_ns(
        [(iv_greeks_tick, (record,)), (iv_greeks_one, scalar_args), (iv_greeks_rows, rows_args)],
        max(repeat, 100),
        TICK_CALLS,
    )
    rows += [
        row("ours", f"tick: 1 contract via iv_greeks_tick {each}", 1, t_tick),
        row("ours", f"tick: 1 contract via iv_greeks_one {each}", 1, t_one),
        row("ours", f"tick: 1 dirty row via iv_greeks_rows {each}", 1, t_rows),
    ]
    rows.append(
        row(
            "timer",
            "perf_counter_ns pair, empty call (what timing one call alone would add)",
            1,
            time_ns(lambda: None, ticks),
        )
    )
    return rows


_COLD_SCRIPT = (
    "import time; t0 = time.perf_counter()\n"
    "from smartflow.kernels.greeks_bench import warm_up\n"
    "warm_up()\n"
    "print(time.perf_counter() - t0)\n"
)


def _bench_cold_start() -> list[Row]:
    root = str(Path(__file__).resolve().parents[2])
    rows = []
    with tempfile.TemporaryDirectory(prefix="sf-bench-numba-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        for what in (
            "cold: empty NUMBA_CACHE_DIR (compile + write)",
            "warm: same cache dir (load)",
        ):
            try:
                out = subprocess.run(
                    [sys.executable, "-c", _COLD_SCRIPT],
                    env=env,
                    cwd=root,
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=True,
                )
                seconds = float(out.stdout.strip().splitlines()[-1])
                ns = np.array([int(seconds * 1e9)])
                rows.append(row("ours", f"start-up {what}", 1, ns, note="import + warm_up()"))
            except (subprocess.SubprocessError, ValueError, IndexError) as e:
                rows.append(skipped(f"ours start-up {what}", repr(e)[:160]))
    return rows


# --- report -------------------------------------------------------------------------------------
def _fmt_time(ns: float) -> str:
    if math.isnan(ns):
        return "-"
    if ns >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.0f} ns"


def _table(rows: list[Row], ours_full: Row | None, ours_sub: Row | None) -> list[str]:
    lines = [
        "| implementation | what | rows | median | p99 | per option (median) | max abs IV err "
        "| vs ours | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        per = r.median_ns / r.n if r.n else math.nan
        ref = ours_sub if "solvable" in r.what else ours_full
        ratio = "-"
        if (
            ref is not None
            and r.impl not in ("ours", "timer")
            and r.n
            and not math.isnan(r.median_ns)
        ):
            ratio = f"{(r.median_ns / r.n) / (ref.median_ns / ref.n):.1f}×"
        err = "-" if math.isnan(r.max_iv_err) else f"{r.max_iv_err:.1e}"
        lines.append(
            f"| {r.impl} | {r.what} | {r.n or '-'} | {_fmt_time(r.median_ns)} "
            f"| {_fmt_time(r.p99_ns)} | {_fmt_time(per)} | {err} | {ratio} | {r.note} |"
        )
    return lines


def run_greeks_bench(n_contracts: int = 400, repeat: int = 200) -> str:
    """Run the greeks/IV benchmark (ours only) and return a Markdown report.

    Args:
        n_contracts: chain size (half CE, half PE, strikes every 50 points around the money).
        repeat: timed repetitions of each chain call.

    Returns:
        The report: inputs, a table of median / p99 timings, and whether the latency targets
        were met.
    """
    ch = build_chain(n_contracts)
    return report(ch, bench_ours(ch, repeat) + _bench_cold_start(), repeat)


def report(ch: Chain, rows: list[Row], repeat: int) -> str:
    """The Markdown report of ``rows`` timed on ``ch``; rows of other implementations get ratios.

    Args:
        ch: the chain every row was timed on.
        rows: ``bench_ours`` rows first, then any other implementation's.
        repeat: timed repetitions of each of our chain calls (stated in the header).

    Returns:
        Inputs, the table (each other implementation's time per option relative to ours on the
        same rows), and whether the latency targets were met.
    """
    ours_full = next(r for r in rows if r.impl == "ours" and r.what.endswith("full chain"))
    ours_sub = next(r for r in rows if r.impl == "ours" and r.what.endswith("solvable rows"))
    tick = next(r for r in rows if r.what.startswith("tick: 1 contract via iv_greeks_tick"))
    tick_one = next(r for r in rows if r.what.startswith("tick: 1 contract via iv_greeks_one"))
    tick_rows = next(r for r in rows if r.what.startswith("tick: 1 dirty row"))
    chain_us = ours_full.median_ns / 1e3
    lines = [
        "# bench greeks",
        "",
        f"Chain: {ch.K.size} contracts (CE+PE), S = {SPOT:.0f}, strikes every {STRIKE_STEP:.0f} "
        f"around the money, T = {DAYS:g} days, smile vols, Black-76 premiums, r = {RATE}, "
        f"half tick = {HALF_TICK}. Solvable rows (time value >= half a tick): "
        f"{ch.solvable.size}. Python {sys.version.split()[0]}, numpy {np.__version__}, "
        f"{os.cpu_count()} CPUs; repeat = {repeat}.",
        "",
        *_table(rows, ours_full, ours_sub),
        "",
        "## Targets",
        "",
        f"- full {ch.K.size}-contract IV+greeks < {TARGET_CHAIN_US:.0f} µs: median "
        f"{chain_us:.1f} µs, p99 {ours_full.p99_ns / 1e3:.1f} µs → "
        f"{'met' if chain_us < TARGET_CHAIN_US else 'NOT met'}.",
        f"- one-contract tick update (IV + greeks of one ATM contract, called from Python via "
        f"iv_greeks_tick on its record) < {TARGET_TICK_NS:.0f} ns: median "
        f"{tick.median_ns:.0f} ns, p99 {tick.p99_ns:.0f} ns → "
        f"{'met' if tick.median_ns < TARGET_TICK_NS else 'NOT met'}. "
        f"Via the scalar twin iv_greeks_one (8 arguments in, a 6-tuple out): median "
        f"{tick_one.median_ns:.0f} ns. "
        f"Through the array kernel iv_greeks_rows with one dirty row: median "
        f"{tick_rows.median_ns:.0f} ns (numba unboxes its 15 arguments, 11 of them arrays, on "
        f"every call). Inside a batch an option costs the ns/option of the rows above.",
        "",
        "Ratios are the peer's time per option over ours on the same rows (full chain vs our "
        "full chain; solvable rows vs our solvable rows). max abs IV err is over the solvable "
        "rows against the volatility that generated the premium.",
    ]
    return "\n".join(lines) + "\n"
