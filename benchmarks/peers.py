"""Peer comparisons, run from a checkout: ``python benchmarks/peers.py decode|greeks|replay|all``.

``smartflow bench`` measures our own speed on the user's machine and imports nothing but the
package's runtime dependencies. The tables that put our numbers next to other libraries' live
here, outside the installed package, and need the ``[test]`` extra (``pip install -e
'.[test]'``): the official SDK (``smartapi-python``) for decode and replay, vollib and QuantLib
for greeks. Nothing is installed at run time: a peer that is missing is a "skipped" row.

* ``decode``: our three decode paths vs the SDK's ``_parse_binary_data`` on the same frames.
* ``greeks``: our IV + greeks kernels vs vollib and QuantLib on the same chain.
* ``replay``: our whole pipeline over a tape vs the SDK merely parsing its packets.

The SDK's parser runs in a child process of the same interpreter, so this process never imports
it; it reads the frames from a temporary file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from smartflow.bench import greeks as g
from smartflow.bench.common import markdown_table
from smartflow.bench.decode import make_frames, time_decoders
from smartflow.bench.replay import replay_rows, time_replays


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


# --- greeks peers -------------------------------------------------------------------------------
def _bench_vollib(ch: g.Chain, repeat: int) -> list[g.Row]:
    try:
        from vollib.black import implied_volatility as vbiv
        from vollib.black.greeks import analytical as vga
    except ImportError as e:
        return [g.skipped("vollib", f"not importable: {e}")]
    iv_fn = vbiv.implied_volatility
    greek_fns = (vga.delta, vga.gamma, vga.theta, vga.vega)
    flags = ["c" if c else "p" for c in ch.is_call]
    out = np.full(ch.K.size, np.nan)

    def chain(rows: NDArray[np.int64]) -> Callable[[], object]:
        def run() -> None:
            for i in rows:
                f, k, t = ch.F[i], ch.K[i], ch.T[i]
                try:
                    sig = iv_fn(ch.price[i], f, k, g.RATE, t, flags[i])
                except Exception:  # noqa: S112 - vollib raises for prices it cannot invert
                    continue
                out[i] = sig
                for fn in greek_fns:
                    fn(flags[i], f, k, t, g.RATE, sig)

        return run

    every = np.arange(ch.K.size, dtype=np.int64)
    reps = max(min(repeat, 20), 3)
    chain(ch.solvable)()
    err = float(np.nanmax(np.abs(out[ch.solvable] - ch.sigma[ch.solvable])))
    return [
        g.row(
            "vollib 1.0.11 (pure-Python LBR)",
            "IV+4 greeks loop, full chain",
            ch.K.size,
            g.time_ns(chain(every), reps),
        ),
        g.row(
            "vollib 1.0.11 (pure-Python LBR)",
            "IV+4 greeks loop, solvable rows",
            ch.solvable.size,
            g.time_ns(chain(ch.solvable), reps),
            max_iv_err=err,
        ),
    ]


def _bench_quantlib(ch: g.Chain, repeat: int) -> list[g.Row]:
    try:
        import QuantLib as ql
    except ImportError as e:
        return [g.skipped("QuantLib", f"not importable: {e}")]
    out = np.full(ch.K.size, np.nan)
    kinds = [ql.Option.Call if c else ql.Option.Put for c in ch.is_call]

    def chain(rows: NDArray[np.int64]) -> Callable[[], object]:
        def run() -> None:
            for i in rows:
                f, k, t = ch.F[i], ch.K[i], ch.T[i]
                df = math.exp(-g.RATE * t)
                try:
                    sd = ql.blackFormulaImpliedStdDev(
                        kinds[i], k, f, ch.price[i], df, 0.0, ql.nullDouble(), 1e-12, 100
                    )
                except RuntimeError:
                    continue
                out[i] = sd / math.sqrt(t)
                bc = ql.BlackCalculator(ql.PlainVanillaPayoff(kinds[i], k), f, sd, df)
                bc.delta(g.SPOT)
                bc.gamma(g.SPOT)
                bc.theta(g.SPOT, t)
                bc.vega(t)

        return run

    every = np.arange(ch.K.size, dtype=np.int64)
    reps = max(min(repeat, 50), 3)
    chain(ch.solvable)()
    err = float(np.nanmax(np.abs(out[ch.solvable] - ch.sigma[ch.solvable])))
    name = f"QuantLib {ql.__version__}"
    return [
        g.row(
            name,
            "blackFormulaImpliedStdDev + BlackCalculator, full chain",
            ch.K.size,
            g.time_ns(chain(every), reps),
        ),
        g.row(
            name,
            "blackFormulaImpliedStdDev + BlackCalculator, solvable rows",
            ch.solvable.size,
            g.time_ns(chain(ch.solvable), reps),
            max_iv_err=err,
        ),
    ]


# --- decode -------------------------------------------------------------------------------------
def decode_report(n_frames: int = 30_000, repeat: int = 5) -> str:
    """Our decode paths and the SDK's parser on the same frames; speed-up = SDK time ÷ ours."""
    frames = make_frames(n_frames)
    ours = time_decoders(frames, repeat)
    sdk = sdk_parse_ns(frames, repeat=3)
    sdk_ns = float(sdk["ns_total"]) if "ns_total" in sdk else math.nan
    rows = [
        [
            f"smartflow: {name}",
            f"{ns / n_frames / 1000:.3f}",
            "n/a" if math.isnan(sdk_ns) else f"{sdk_ns / ns:.1f}×",
        ]
        for name, ns in ours.items()
    ]
    rows.append(
        [
            "official SDK `_parse_binary_data`",
            str(sdk.get("error")) if math.isnan(sdk_ns) else f"{sdk_ns / n_frames / 1000:.3f}",
            "1.0×",
        ]
    )
    head = (
        f"decode: {n_frames:,} packets (LTP/QUOTE/SNAP_QUOTE in equal thirds), best of "
        f"{repeat}; speed-up = SDK time ÷ ours\n\n"
    )
    return head + markdown_table(["implementation", "µs / packet", "speed-up vs SDK"], rows)


# --- greeks -------------------------------------------------------------------------------------
def greeks_report(n_contracts: int = 400, repeat: int = 200) -> str:
    """Our IV + greeks rows, then vollib's and QuantLib's on the same chain."""
    ch = g.build_chain(n_contracts)
    rows = g.bench_ours(ch, repeat)
    for bench in (_bench_vollib, _bench_quantlib):
        try:
            with warnings.catch_warnings():
                # vollib divides by zero on the far wings; the warnings are not our report.
                warnings.simplefilter("ignore")
                rows += bench(ch, repeat)
        except Exception as e:  # a broken peer must not end the comparison
            rows.append(g.skipped(bench.__name__.removeprefix("_bench_"), repr(e)[:200]))
    return g.report(ch, rows, repeat)


# --- replay -------------------------------------------------------------------------------------
def replay_report(
    tape_path: str | None = None, instruments: str | None = None, repeat: int = 5
) -> str:
    """Our whole-pipeline replay and the SDK parsing the same packets (nothing else)."""
    times = time_replays(tape_path, instruments, repeat)
    sdk = sdk_parse_ns(times.frames, repeat=3)
    rows = [[*r, ""] for r in replay_rows(times)]
    median_us = float(rows[0][1])
    if "ns_total" in sdk:
        sdk_us = float(sdk["ns_total"]) / len(times.frames) / 1000
        rows[0][3] = f"{sdk_us / median_us:.1f}× the SDK's speed"
        rows.append(
            [
                "official SDK: parse only (best of 3)",
                f"{sdk_us:.2f}",
                f"{1e6 / sdk_us:,.0f}",
                "1.0×",
            ]
        )
    else:
        rows.append(["official SDK: parse only", "n/a", "n/a", str(sdk.get("error"))])
    head = f"replay: {times.packets:,} packets of {times.source}\n\n"
    return head + markdown_table(["what", "µs / packet", "packets / s", "ratio"], rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the chosen comparison's Markdown report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=["decode", "greeks", "replay", "all"])
    parser.add_argument("--frames", type=int, default=30_000, help="decode: packets")
    parser.add_argument("--contracts", type=int, default=400, help="greeks: chain size")
    parser.add_argument("--tape", help="replay: a tape (default: record a simulator session)")
    parser.add_argument("--instruments", metavar="FILE", help="replay: scrip master for --tape")
    args = parser.parse_args(argv)
    parts: list[str] = []
    if args.which in ("decode", "all"):
        parts.append(decode_report(args.frames))
    if args.which in ("greeks", "all"):
        parts.append(greeks_report(args.contracts))
    if args.which in ("replay", "all"):
        parts.append(replay_report(args.tape, args.instruments))
    print("\n\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
