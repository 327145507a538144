"""``smartflow bench decode``: our SmartStream decoder's speed on this machine.

The frames: a seeded mix of LTP, QUOTE and SNAP_QUOTE packets in equal thirds. Measured three
ways: the batch kernel the chain applies packets with (the hot path), the per-packet validity
check the feed reader runs, and ``Decoder.decode`` producing the same SDK-keyed dict the SDK does
(what tape dumps use). The comparison with the official SDK's parser (a test-extra package) is
``benchmarks/peers.py decode`` in a checkout.
"""

from __future__ import annotations

import random
import time

import numpy as np

from smartflow.bench.common import markdown_table
from smartflow.feed import protocol as p
from smartflow.kernels import wire


def make_frames(n: int, seed: int = 1) -> list[bytes]:
    """``n`` realistic packets, a third of each mode."""
    rng = random.Random(seed)
    frames = []
    for i in range(n):
        mode = (1, 2, 3)[i % 3]
        px = rng.randint(5, 500_000)
        bids = [
            {
                "flag": 1,
                "quantity": 75 * rng.randint(1, 50),
                "price": px - 5 * k,
                "no of orders": rng.randint(1, 20),
            }
            for k in range(5)
        ]
        asks = [
            {
                "flag": 0,
                "quantity": 75 * rng.randint(1, 50),
                "price": px + 5 * (k + 1),
                "no of orders": rng.randint(1, 20),
            }
            for k in range(5)
        ]
        frames.append(
            p.encode(
                {
                    "subscription_mode": mode,
                    "exchange_type": 2,
                    "token": str(40000 + i % 400),
                    "sequence_number": i,
                    "exchange_timestamp": 1_700_000_000_000 + i,
                    "last_traded_price": px,
                    "last_traded_quantity": 75,
                    "average_traded_price": px,
                    "volume_trade_for_the_day": 1000 * i,
                    "total_buy_quantity": 1e5,
                    "total_sell_quantity": 2e5,
                    "open_price_of_the_day": px,
                    "high_price_of_the_day": px + 100,
                    "low_price_of_the_day": px - 100,
                    "closed_price": px,
                    "last_traded_timestamp": 1_700_000_000,
                    "open_interest": 10**6,
                    "best_5_buy_data": bids,
                    "best_5_sell_data": asks,
                }
            )
        )
    return frames


def _best_ns(fn, repeat: int) -> int:  # type: ignore[no-untyped-def]
    best = None
    for _ in range(repeat):
        t = time.perf_counter_ns()
        fn()
        el = time.perf_counter_ns() - t
        best = el if best is None or el < best else best
    assert best is not None  # noqa: S101 — repeat ≥ 1
    return best


def time_decoders(frames: list[bytes], repeat: int = 5) -> dict[str, int]:
    """Best-of-``repeat`` nanoseconds over all ``frames`` for each of our three decode paths."""
    n_frames = len(frames)
    buf = np.frombuffer(b"".join(frames), np.uint8)
    lengths = np.array([len(f) for f in frames], np.int64)
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    status = np.zeros(n_frames, np.int8)
    out_w = np.zeros((n_frames, wire.W_SIZE), np.int64)
    out_f = np.zeros((n_frames, wire.F_SIZE), np.float64)
    wire.decode_frames(buf, offsets, lengths, status, out_w, out_f)  # compile / cache load
    decoder = p.Decoder()
    decoder.decode(frames[0])

    def batch() -> None:
        wire.decode_frames(buf, offsets, lengths, status, out_w, out_f)

    def check() -> None:
        chk = wire.check_frame
        for fr in frames:
            chk(np.frombuffer(fr, np.uint8), 0, len(fr))

    def to_dict() -> None:
        dec = decoder.decode
        for fr in frames:
            dec(fr)

    return {
        "batch kernel (chain hot path)": _best_ns(batch, repeat),
        "per-packet check (feed reader)": _best_ns(check, max(1, repeat // 2)),
        "Decoder.decode → SDK-keyed dict": _best_ns(to_dict, max(1, repeat // 2)),
    }


def run_decode_bench(n_frames: int = 30_000, repeat: int = 5) -> str:
    """Return the Markdown report of one run (ours only)."""
    ours = time_decoders(make_frames(n_frames), repeat)
    rows = [
        [f"smartflow: {name}", f"{ns / n_frames / 1000:.3f}", f"{n_frames * 1e9 / ns:,.0f}"]
        for name, ns in ours.items()
    ]
    head = (
        f"decode: {n_frames:,} packets (LTP/QUOTE/SNAP_QUOTE in equal thirds), best of {repeat}\n\n"
    )
    return head + markdown_table(["implementation", "µs / packet", "packets / s"], rows)
