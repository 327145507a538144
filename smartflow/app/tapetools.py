"""``smartflow tape info`` and ``smartflow tape dump``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import IO, Any

import msgspec

from smartflow.core.timeutil import iso_ist
from smartflow.feed import protocol as p
from smartflow.kernels import wire
from smartflow.tape.format import open_tape


_enc = msgspec.json.Encoder()


def _line(out: IO[str], obj: Any) -> None:
    out.write(_enc.encode(obj).decode() + "\n")


def info(path: Path, out: IO[str]) -> int:
    """Print a JSON summary of a tape: frames, time span, tokens, modes, rejects."""
    tape = open_tape(path)
    decoder = p.Decoder()
    modes: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    tokens: set[tuple[int, str]] = set()
    for i in range(len(tape)):
        frame = tape.payload(i)
        status = decoder.status(frame)
        if status:
            kinds[wire.STATUS_NAMES[status]] += 1
            continue
        modes[p.MODE_NAMES[frame[0]]] += 1
        tokens.add((frame[1], frame[2:27].split(b"\0", 1)[0].decode("ascii")))
    first = int(tape.recv_ns[0]) if len(tape) else 0
    last = int(tape.recv_ns[-1]) if len(tape) else 0
    _line(
        out,
        {
            "path": str(path),
            "header": tape.header,
            "frames": len(tape),
            "first": iso_ist(first) if first else None,
            "last": iso_ist(last) if last else None,
            "span_s": round((last - first) / 1e9, 3),
            "tokens": len(tokens),
            "tokens_by_exchange": dict(Counter(str(e) for e, _ in tokens)),
            "modes": dict(modes),
            "rejected": dict(kinds),
            "truncated_bytes": tape.truncated_bytes,
        },
    )
    tape.close()
    return 0


def dump(path: Path, out: IO[str], limit: int | None = None) -> int:
    """Print one JSON object per frame keyed like the SDK's parser, then a summary line."""
    tape = open_tape(path)
    decoder = p.Decoder()
    kinds: Counter[str] = Counter()
    n = len(tape) if limit is None else min(limit, len(tape))
    for i in range(n):
        recv_ns = int(tape.recv_ns[i])
        frame = tape.payload(i)
        try:
            decoded = decoder.decode(frame)
        except p.FrameError as e:
            kinds[e.kind] += 1
            _line(out, {"recv_ns": recv_ns, "length": len(frame), "error": e.kind})
            continue
        kinds["ok"] += 1
        anomalies = decoded.pop("anomalies")
        row = {"recv_ns": recv_ns, **decoded}
        if anomalies:
            row["anomalies"] = anomalies
        _line(out, row)
    summary: dict[str, Any] = {
        "summary": True,
        "frames": n,
        "by_kind": dict(kinds),
        "total_frames": len(tape),
    }
    if tape.truncated_bytes:
        summary["truncated_bytes"] = tape.truncated_bytes
        summary["note"] = "a truncated final record was ignored"
    _line(out, summary)
    tape.close()
    return 0
