"""A tape recorded from a live session holds exactly the frames the session received."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

from simkit import chain_pairs, eventually, make_session, running, running_sim

from smartflow.app import tapetools
from smartflow.feed import protocol as p
from smartflow.tape.format import TapeWriter, open_tape


async def test_recorded_tape_equals_received_frames(tmp_path: Path) -> None:
    path = tmp_path / "live.sft"
    received: list[tuple[int, bytes]] = []
    writer = TapeWriter(path, {"mode": "sim", "test": "record_dump"})
    async with running_sim() as server:
        session = make_session(
            server, lambda recv_ns, _key, frame: received.append((recv_ns, frame)), recorder=writer
        )
        wanted = chain_pairs(server.market, options=10)
        session.set_subscriptions(wanted)
        async with running(session):
            await asyncio.wait_for(session.wait_ready(), 5)
            # About a second of the simulator's 300 packets/s.
            await eventually(lambda: len(received) >= 250)
            # A malformed frame reaching the reader is recorded but never reaches the sink.
            session.on_binary(server.clock.now_ns(), b"\x03\x02garbage")
    writer.close()
    assert writer.records == len(received) + 1

    tape = open_tape(path)
    try:
        assert tape.header["test"] == "record_dump"
        assert tape.truncated_bytes == 0
        decoder = p.Decoder()
        recorded = list(tape)
        valid = [(t, f) for t, f in recorded if decoder.status(f) == 0]
        assert valid == received
        assert len(recorded) - len(valid) == 1
        stamps = [t for t, _ in recorded]
        assert stamps == sorted(stamps)
        assert {(f[1], f[2:27].split(b"\0", 1)[0].decode()) for _, f in valid} == wanted
    finally:
        tape.close()

    out = io.StringIO()
    tapetools.dump(path, out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    summary = lines[-1]
    assert summary["by_kind"] == {"ok": len(received), "truncated": 1}
    rows = [r for r in lines[:-1] if "error" not in r]
    assert [r["recv_ns"] for r in rows] == [t for t, _ in received]
    first = decoder.decode(received[0][1])
    first.pop("anomalies")
    assert rows[0] == {"recv_ns": received[0][0], **first}
