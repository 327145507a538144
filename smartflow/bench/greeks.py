"""``bench greeks``: the IV + greeks yardstick against the peers, in one run, on one chain.

Inputs (the same arrays for every implementation): a NIFTY-like chain, spot 24000, strikes every
50 points around the money (half the contracts CE, half PE), two calendar days to expiry, a smile
``sigma(k) = 12 % - 10 % k + 80 % k²`` in ``k = ln(K/F)``, and Black-76 premiums on the forward
``F = S*exp(rT)`` discounted at ``r = 6.5 %``. Many far strikes of such a chain have less than
half a tick of time value; they are rejected cheaply by our kernel, so the report also times the
"solvable" subset (time value >= half a tick) on its own, which is where the per-option
comparison with the peers is fair.

Timings use ``time.perf_counter_ns`` around whole calls; medians and 99th percentiles over the
repeats. Peers that cannot run are reported as "skipped: why" rows, never as a crash. Nothing
runs or prints at import.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
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
VENV_ROOT = Path.home() / ".cache" / "smartflow" / "bench-venvs"
PVV_PACKAGES = (
    "py_vollib==1.0.1",
    "py_lets_be_rational==1.0.1",
    "py_vollib_vectorized==0.1.1",
    "numpy",
    "numba",
)
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
    from smartflow.kernels.black import price_rows

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


def _time_ns(fn: Callable[[], object], repeat: int) -> NDArray[np.int64]:
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


def _row(impl: str, what: str, n: int, samples: NDArray[np.int64], **kw: Any) -> Row:
    return Row(impl, what, n, float(np.median(samples)), float(np.percentile(samples, 99)), **kw)


def _skipped(impl: str, why: str) -> Row:
    return Row(impl, "-", 0, math.nan, math.nan, note=f"skipped: {why}")


# --- ours ---------------------------------------------------------------------------------------
def _bench_ours(ch: Chain, repeat: int) -> list[Row]:
    from smartflow.kernels.black import greeks_rows
    from smartflow.kernels.iv import (
        IV_OK,
        NT,
        T_IV,
        implied_vol_rows,
        iv_greeks_one,
        iv_greeks_rows,
        iv_greeks_tick,
        warm_up,
    )

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
        _row(
            "ours",
            "IV+greeks, full chain",
            n,
            _time_ns(full(every), repeat),
            max_iv_err=err,
            note=f"{solved} solved, {n - solved} rejected (< half tick)",
        ),
        _row(
            "ours",
            "IV+greeks, solvable rows",
            sub.size,
            _time_ns(full(sub), repeat),
            max_iv_err=err,
        ),
        _row(
            "ours",
            "greeks only (given vol), full chain",
            n,
            _time_ns(
                lambda: greeks_rows(every, ch.F, ch.K, ch.T, ch.sigma, RATE, ch.S, ch.is_call, *g),
                repeat,
            ),
        ),
        _row(
            "ours",
            "IV only, full chain",
            n,
            _time_ns(
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
        _row("ours", f"tick: 1 contract via iv_greeks_tick {each}", 1, t_tick),
        _row("ours", f"tick: 1 contract via iv_greeks_one {each}", 1, t_one),
        _row("ours", f"tick: 1 dirty row via iv_greeks_rows {each}", 1, t_rows),
    ]
    rows.append(
        _row(
            "timer",
            "perf_counter_ns pair, empty call (what timing one call alone would add)",
            1,
            _time_ns(lambda: None, ticks),
        )
    )
    return rows


_COLD_SCRIPT = (
    "import time; t0 = time.perf_counter()\n"
    "from smartflow.kernels.iv import warm_up\n"
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
                rows.append(_row("ours", f"start-up {what}", 1, ns, note="import + warm_up()"))
            except (subprocess.SubprocessError, ValueError, IndexError) as e:
                rows.append(_skipped(f"ours start-up {what}", repr(e)[:160]))
    return rows


# --- in-process peers ---------------------------------------------------------------------------
def _bench_vollib(ch: Chain, repeat: int) -> list[Row]:
    try:
        from vollib.black import implied_volatility as vbiv
        from vollib.black.greeks import analytical as vga
    except ImportError as e:
        return [_skipped("vollib", f"not importable: {e}")]
    iv_fn = vbiv.implied_volatility
    greek_fns = (vga.delta, vga.gamma, vga.theta, vga.vega)
    flags = ["c" if c else "p" for c in ch.is_call]
    out = np.full(ch.K.size, np.nan)

    def chain(rows: NDArray[np.int64]) -> Callable[[], object]:
        def run() -> None:
            for i in rows:
                f, k, t = ch.F[i], ch.K[i], ch.T[i]
                try:
                    sig = iv_fn(ch.price[i], f, k, RATE, t, flags[i])
                except Exception:  # noqa: S112 - vollib raises for prices it cannot invert
                    continue
                out[i] = sig
                for fn in greek_fns:
                    fn(flags[i], f, k, t, RATE, sig)

        return run

    every = np.arange(ch.K.size, dtype=np.int64)
    reps = max(min(repeat, 20), 3)
    chain(ch.solvable)()
    err = float(np.nanmax(np.abs(out[ch.solvable] - ch.sigma[ch.solvable])))
    return [
        _row(
            "vollib 1.0.11 (pure-Python LBR)",
            "IV+4 greeks loop, full chain",
            ch.K.size,
            _time_ns(chain(every), reps),
        ),
        _row(
            "vollib 1.0.11 (pure-Python LBR)",
            "IV+4 greeks loop, solvable rows",
            ch.solvable.size,
            _time_ns(chain(ch.solvable), reps),
            max_iv_err=err,
        ),
    ]


def _bench_quantlib(ch: Chain, repeat: int) -> list[Row]:
    try:
        import QuantLib as ql
    except ImportError as e:
        return [_skipped("QuantLib", f"not importable: {e}")]
    out = np.full(ch.K.size, np.nan)
    kinds = [ql.Option.Call if c else ql.Option.Put for c in ch.is_call]

    def chain(rows: NDArray[np.int64]) -> Callable[[], object]:
        def run() -> None:
            for i in rows:
                f, k, t = ch.F[i], ch.K[i], ch.T[i]
                df = math.exp(-RATE * t)
                try:
                    sd = ql.blackFormulaImpliedStdDev(
                        kinds[i], k, f, ch.price[i], df, 0.0, ql.nullDouble(), 1e-12, 100
                    )
                except RuntimeError:
                    continue
                out[i] = sd / math.sqrt(t)
                bc = ql.BlackCalculator(ql.PlainVanillaPayoff(kinds[i], k), f, sd, df)
                bc.delta(SPOT)
                bc.gamma(SPOT)
                bc.theta(SPOT, t)
                bc.vega(t)

        return run

    every = np.arange(ch.K.size, dtype=np.int64)
    reps = max(min(repeat, 50), 3)
    chain(ch.solvable)()
    err = float(np.nanmax(np.abs(out[ch.solvable] - ch.sigma[ch.solvable])))
    name = f"QuantLib {ql.__version__}"
    return [
        _row(
            name,
            "blackFormulaImpliedStdDev + BlackCalculator, full chain",
            ch.K.size,
            _time_ns(chain(every), reps),
        ),
        _row(
            name,
            "blackFormulaImpliedStdDev + BlackCalculator, solvable rows",
            ch.solvable.size,
            _time_ns(chain(ch.solvable), reps),
            max_iv_err=err,
        ),
    ]


# --- peers in their own virtual environments ----------------------------------------------------
def _ensure_venv(name: str, packages: tuple[str, ...], python: str, probe: str) -> Path:
    """Create (once) a venv with ``packages`` and check that ``probe`` imports there.

    The outcome is remembered in a marker file next to the venv (keyed by the package list), so
    a peer that does not install is not re-downloaded on every run; delete the venv to retry.
    """
    path = VENV_ROOT / name
    exe = path / "bin" / "python"
    marker = path / ".smartflow-bench.json"
    spec = " ".join(packages)
    if marker.exists():
        state = json.loads(marker.read_text())
        if state.get("spec") == spec and state.get("python") == python:
            if state.get("error"):
                raise RuntimeError(state["error"] + " (cached; delete the venv to retry)")
            return exe
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([python, "-m", "venv", str(path)], check=True, capture_output=True, timeout=300)
    error = ""
    res = subprocess.run(
        [str(exe), "-m", "pip", "install", "-q", *packages],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if res.returncode != 0:
        error = "pip install failed: " + _last_line(res.stderr)
    else:
        res = subprocess.run(
            [str(exe), "-c", f"import {probe}"], capture_output=True, text=True, timeout=300
        )
        if res.returncode != 0:
            error = f"installs but does not import: {_last_line(res.stderr)}"
    marker.write_text(json.dumps({"spec": spec, "python": python, "error": error}))
    if error:
        raise RuntimeError(error)
    return exe


def _last_line(text: str) -> str:
    # The last meaningful stderr line, without file paths ("ImportError: /x/y.so: undefined
    # symbol: Z" becomes "undefined symbol: Z").
    lines = [ln for ln in text.strip().splitlines() if ln.strip() and "WARNING" not in ln]
    last = lines[-1] if lines else text.strip()
    parts = [p for p in last.split(": ") if "/" not in p]
    return ": ".join(parts[-2:])[:160]


_PVV_SCRIPT = """
import json, sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
d = np.load(sys.argv[1]); repeat = int(sys.argv[2]); r = float(d["r"])
import py_vollib_vectorized as pvv
flag = np.where(d["is_call"], "c", "p")
def run(idx):
    iv = pvv.vectorized_implied_volatility_black(d["price"][idx], d["F"][idx], d["K"][idx], r,
        d["T"][idx], flag[idx], return_as="numpy", on_error="ignore")
    pvv.get_all_greeks(flag[idx], d["F"][idx], d["K"][idx], d["T"][idx], r, iv, model="black",
        return_as="dict")
    return iv
res = {}
for name, idx in (("full", np.arange(d["K"].size)), ("solvable", d["solvable"])):
    iv = run(idx)
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns(); run(idx); ts.append(time.perf_counter_ns() - t0)
    res[name] = [float(np.median(ts)), float(np.percentile(ts, 99)), int(idx.size),
                 float(np.nanmax(np.abs(iv - d["sigma"][idx])))]
print(json.dumps(res))
"""

_OPENGREEKS_SCRIPT = """
import json, sys, time
import numpy as np
d = np.load(sys.argv[1]); repeat = int(sys.argv[2]); r = float(d["r"])
from opengreeks import black76 as b
def run(idx):
    out = np.empty(idx.size)
    for flag, sel in (("c", d["is_call"][idx]), ("p", ~d["is_call"][idx])):
        j = idx[sel]
        F, K, T = d["F"][j], d["K"][j], d["T"][j]
        iv = b.implied_volatility_array(d["price"][j], F, K, r, T, flag)
        for fn in (b.delta_array, b.gamma_array, b.theta_array, b.vega_array):
            fn(flag, F, K, T, r, iv)
        out[sel] = iv
    return out
res = {}
for name, idx in (("full", np.arange(d["K"].size)), ("solvable", d["solvable"])):
    try:
        iv = run(idx)
    except Exception as e:
        res[name] = repr(e)[:160]
        continue
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns(); run(idx); ts.append(time.perf_counter_ns() - t0)
    res[name] = [float(np.median(ts)), float(np.percentile(ts, 99)), int(idx.size),
                 float(np.nanmax(np.abs(iv - d["sigma"][idx])))]
print(json.dumps(res))
"""


def _run_venv_peer(impl: str, exe: Path, script: str, ch: Chain, repeat: int) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="sf-bench-") as tmp:
        npz = Path(tmp) / "chain.npz"
        np.savez(
            npz,
            price=ch.price,
            F=ch.F,
            K=ch.K,
            T=ch.T,
            sigma=ch.sigma,
            is_call=ch.is_call,
            solvable=ch.solvable,
            r=RATE,
        )
        res = subprocess.run(
            [str(exe), "-c", script, str(npz), str(repeat)],
            capture_output=True,
            text=True,
            timeout=900,
        )
    if res.returncode != 0:
        return [_skipped(impl, "run failed: " + _last_line(res.stderr))]
    data = json.loads(res.stdout.strip().splitlines()[-1])
    rows = []
    for name, what in (("full", "IV+greeks, full chain"), ("solvable", "IV+greeks, solvable rows")):
        v = data.get(name)
        if not isinstance(v, list):
            rows.append(_skipped(f"{impl} ({what})", f"raised {v}"))
            continue
        err = v[3] if name == "solvable" else math.nan
        rows.append(Row(impl, what, v[2], v[0], v[1], max_iv_err=err, note="own venv"))
    return rows


def _bench_pvv(ch: Chain, repeat: int) -> list[Row]:
    impl = "py_vollib_vectorized 0.1.1 (numba LBR)"
    try:
        exe = _ensure_venv("pvv", PVV_PACKAGES, sys.executable, "py_vollib_vectorized")
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        return [_skipped(impl, str(e))]
    return _run_venv_peer(impl, exe, _PVV_SCRIPT, ch, repeat)


def _bench_opengreeks(ch: Chain, repeat: int) -> list[Row]:
    # The 0.2.0 wheel is tagged abi3/cp39 but calls a CPython 3.12 API, so on 3.11 it installs
    # and then fails to import; fall back to a newer interpreter if one is on PATH.
    errors = []
    candidates = [sys.executable]
    for version in ("3.12", "3.13"):
        found = shutil.which(f"python{version}")
        pyenv = sorted(Path.home().glob(f".pyenv/versions/{version}*/bin/python{version}"))
        candidates += [str(p) for p in (*pyenv, found) if p][:1]
    for python in candidates:
        tag = "py" + (Path(python).name.removeprefix("python") or "")
        try:
            exe = _ensure_venv(f"opengreeks-{tag}", ("opengreeks", "numpy"), python, "opengreeks")
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            errors.append(f"{Path(python).name}: {e}")
            continue
        note = "" if python == sys.executable else f" (on {Path(python).name})"
        rows = _run_venv_peer(f"opengreeks{note}", exe, _OPENGREEKS_SCRIPT, ch, repeat)
        if errors:
            rows = [r._replace(note=r.note + "; " + "; ".join(errors)[:200]) for r in rows]
        return rows
    return [_skipped("opengreeks", "not installable: " + " | ".join(errors))]


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


def run_greeks_bench(n_contracts: int = 400, repeat: int = 200, peers: bool = True) -> str:
    """Run the greeks/IV benchmark and return a Markdown report.

    Args:
        n_contracts: chain size (half CE, half PE, strikes every 50 points around the money).
        repeat: timed repetitions of each chain call (pure-Python peers use at most 20-50).
        peers: also time vollib, QuantLib, py_vollib_vectorized (own venv, created on demand
            under ``~/.cache/smartflow/bench-venvs``) and opengreeks (idem).

    Returns:
        The report: inputs, a table of median / p99 timings with each peer's time per option
        relative to ours, and whether the latency targets were met.
    """
    ch = build_chain(n_contracts)
    rows = _bench_ours(ch, repeat)
    rows += _bench_cold_start()
    if peers:
        for bench in (_bench_vollib, _bench_quantlib, _bench_pvv, _bench_opengreeks):
            try:
                with warnings.catch_warnings():
                    # vollib divides by zero on the far wings; the warnings are not our report.
                    warnings.simplefilter("ignore")
                    rows += bench(ch, repeat)
            except Exception as e:  # a broken peer must not end the bench
                rows.append(_skipped(bench.__name__.removeprefix("_bench_"), repr(e)[:200]))
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
