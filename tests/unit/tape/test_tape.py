"""The .sft tape: round trip, truncated tail, bad files, and the ``tape info``/``dump`` tools."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from sdk_oracle import sdk_parse

from smartflow.app import tapetools
from smartflow.feed import protocol as p
from smartflow.kernels import wire
from smartflow.tape.format import MAGIC, Tape, TapeError, TapeWriter, open_tape


T0 = 1_795_405_800_000_000_000


def _snap(token: str, seq: int, exch: int = 2) -> bytes:
    return p.encode(
        {
            "subscription_mode": 3,
            "exchange_type": exch,
            "token": token,
            "sequence_number": seq,
            "exchange_timestamp": T0 // 1_000_000 + seq,
            "last_traded_price": 12_345 + seq,
            "last_traded_quantity": 75,
            "volume_trade_for_the_day": 7_500 * seq,
            "total_buy_quantity": 1500.0,
            "total_sell_quantity": 2250.0,
            "open_interest": 90_000,
            "best_5_buy_data": [{"quantity": 75, "price": 12_340, "no of orders": 2}],
            "best_5_sell_data": [{"quantity": 150, "price": 12_350, "no of orders": 3}],
        }
    )


def _ltp(token: str, seq: int) -> bytes:
    return p.encode(
        {
            "subscription_mode": 1,
            "exchange_type": 1,
            "token": token,
            "sequence_number": seq,
            "exchange_timestamp": T0 // 1_000_000,
            "last_traded_price": 2_400_000,
        }
    )


def _write(
    path: Path, records: list[tuple[int, bytes]], header: dict[str, Any] | None = None
) -> None:
    with TapeWriter(path, header) as w:
        for recv_ns, payload in records:
            w.write(recv_ns, payload)
        assert w.records == len(records)
        assert w.bytes == sum(len(b) for _, b in records)


def _records() -> list[tuple[int, bytes]]:
    return [
        (T0, _snap("40001", 1)),
        (T0 + 1_000, b""),
        (T0 + 2_000, _ltp("99926000", 0)),
        (T0 + 3_000, _snap("40002", 2)),
        (T0 + 4_000, _snap("40001", 3)[:200]),
        (T0 + 2_000_000_000, _snap("40001", 4)),
    ]


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "a.sft"
    records = _records()
    _write(path, records, {"mode": "sim", "underlyings": ["NIFTY"]})
    tape = open_tape(path)
    try:
        assert tape.header == {"format": "SFTAPE1", "mode": "sim", "underlyings": ["NIFTY"]}
        assert len(tape) == len(records)
        assert list(tape) == records
        assert tape.truncated_bytes == 0
        assert [tape.payload(i) for i in range(len(tape))] == [b for _, b in records]
        assert tape.lengths.tolist() == [len(b) for _, b in records]
    finally:
        tape.close()


def test_layout_matches_the_documented_format(tmp_path: Path) -> None:
    path = tmp_path / "a.sft"
    _write(path, [(T0, b"xyz"), (T0 + 1, b"")])
    raw = path.read_bytes()
    assert raw[:8] == MAGIC == b"SFTAPE1\n"
    (hlen,) = struct.unpack_from("<I", raw, 8)
    assert json.loads(raw[12 : 12 + hlen]) == {"format": "SFTAPE1"}
    body = raw[12 + hlen :]
    assert body == struct.pack("<QI", T0, 3) + b"xyz" + struct.pack("<QI", T0 + 1, 0)


def test_empty_tape(tmp_path: Path) -> None:
    path = tmp_path / "empty.sft"
    _write(path, [])
    tape = open_tape(path)
    assert len(tape) == 0
    assert list(tape) == []
    tape.close()


@pytest.mark.parametrize("cut", [1, 11, 12, 12 + 378])
def test_truncated_final_record_is_reported_and_ignored(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "t.sft"
    records = _records()
    _write(path, records)
    # A crash mid-write: the next record's first ``cut`` bytes made it to disk.
    partial = (struct.pack("<QI", T0 + 9, 379) + _snap("40003", 9))[:cut]
    with path.open("ab") as f:
        f.write(partial)
    tape = open_tape(path)
    assert tape.truncated_bytes == cut > 0
    assert list(tape) == records
    tape.close()


def test_zero_length_last_record_is_not_truncation(tmp_path: Path) -> None:
    path = tmp_path / "z.sft"
    _write(path, [(T0, _snap("40001", 1)), (T0 + 1, b"")])
    tape = open_tape(path)
    assert tape.truncated_bytes == 0
    assert list(tape)[-1] == (T0 + 1, b"")
    tape.close()


def _header_file(path: Path, header: bytes, hlen: int | None = None) -> Path:
    n = len(header) if hlen is None else hlen
    path.write_bytes(MAGIC + struct.pack("<I", n) + header)
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "bad magic"),
        (b"SFTAPE2\n" + b"\0" * 30, "bad magic"),
        (b"PK\x03\x04 not a tape at all", "bad magic"),
        (MAGIC, "header length missing"),
        (MAGIC + struct.pack("<I", 100) + b'{"format"', "header truncated"),
        (MAGIC + struct.pack("<I", 9) + b"not json!", "not JSON"),
        (MAGIC + struct.pack("<I", 2) + b"[]", "no format"),
        (MAGIC + struct.pack("<I", 19) + b'{"format":"OTHER1"}', "no format"),
    ],
)
def test_bad_files_raise_tape_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.sft"
    path.write_bytes(content)
    with pytest.raises(TapeError, match=message):
        open_tape(path)


def test_writer_close_is_idempotent(tmp_path: Path) -> None:
    w = TapeWriter(tmp_path / "c.sft")
    w.write(T0, b"abc")
    w.close()
    w.close()
    tape = open_tape(tmp_path / "c.sft")
    assert list(tape) == [(T0, b"abc")]
    tape.close()


def test_closed_tape_releases_the_map(tmp_path: Path) -> None:
    path = tmp_path / "m.sft"
    _write(path, _records())
    tape: Tape = open_tape(path)
    first = tape.payload(0)
    tape.close()
    assert first == _records()[0][1]
    assert tape.data.size == 0


# ---- tape info / tape dump --------------------------------------------------------------


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_dump_rows_are_sdk_keyed_with_recv_ns(tmp_path: Path) -> None:
    path = tmp_path / "d.sft"
    records = _records()
    _write(path, records)
    out = io.StringIO()
    assert tapetools.dump(path, out) == 0
    rows = _lines(out.getvalue())
    assert len(rows) == len(records) + 1
    for (recv_ns, frame), row in zip(records, rows, strict=False):
        assert row["recv_ns"] == recv_ns
        status = p.Decoder().status(frame)
        if status == 0:
            expected = {"recv_ns": recv_ns, **sdk_parse(frame)}
            assert row == json.loads(json.dumps(expected))
        else:
            assert row == {
                "recv_ns": recv_ns,
                "length": len(frame),
                "error": wire.STATUS_NAMES[status],
            }
    assert rows[1] == {"recv_ns": T0 + 1_000, "length": 0, "error": "empty"}
    assert rows[4] == {"recv_ns": T0 + 4_000, "length": 200, "error": "truncated"}
    assert rows[-1] == {
        "summary": True,
        "frames": len(records),
        "by_kind": {"ok": 4, "empty": 1, "truncated": 1},
        "total_frames": len(records),
    }


def test_dump_limit_and_truncated_note(tmp_path: Path) -> None:
    path = tmp_path / "l.sft"
    _write(path, _records())
    with path.open("ab") as f:
        f.write(b"\x01\x02\x03")
    out = io.StringIO()
    tapetools.dump(path, out, limit=2)
    rows = _lines(out.getvalue())
    assert len(rows) == 3
    assert rows[-1]["frames"] == 2
    assert rows[-1]["total_frames"] == 6
    assert rows[-1]["by_kind"] == {"ok": 1, "empty": 1}
    assert rows[-1]["truncated_bytes"] == 3
    assert "truncated" in rows[-1]["note"]


def test_dump_reports_anomalies(tmp_path: Path) -> None:
    crossed = p.encode(
        {
            "subscription_mode": 3,
            "exchange_type": 2,
            "token": "40001",
            "best_5_buy_data": [{"quantity": 75, "price": 12_400, "no of orders": 1}],
            "best_5_sell_data": [{"quantity": 75, "price": 12_300, "no of orders": 1}],
        }
    )
    path = tmp_path / "x.sft"
    _write(path, [(T0, crossed)])
    out = io.StringIO()
    tapetools.dump(path, out)
    row = _lines(out.getvalue())[0]
    assert row["anomalies"] == ["crossed_book"]


def test_info_numbers(tmp_path: Path) -> None:
    path = tmp_path / "i.sft"
    records = _records()
    _write(path, records, {"mode": "sim"})
    with path.open("ab") as f:
        f.write(b"\0" * 5)
    out = io.StringIO()
    assert tapetools.info(path, out) == 0
    (summary,) = _lines(out.getvalue())
    assert summary["path"] == str(path)
    assert summary["header"] == {"format": "SFTAPE1", "mode": "sim"}
    assert summary["frames"] == 6
    assert summary["span_s"] == 2.0
    assert summary["tokens"] == 3
    assert summary["tokens_by_exchange"] == {"2": 2, "1": 1}
    assert summary["modes"] == {"SNAP_QUOTE": 3, "LTP": 1}
    assert summary["rejected"] == {"empty": 1, "truncated": 1}
    assert summary["truncated_bytes"] == 5
    assert summary["first"].endswith("+05:30")
    assert summary["last"] > summary["first"]


def test_info_of_an_empty_tape(tmp_path: Path) -> None:
    path = tmp_path / "e.sft"
    _write(path, [])
    out = io.StringIO()
    tapetools.info(path, out)
    (summary,) = _lines(out.getvalue())
    assert summary["frames"] == 0
    assert summary["first"] is None
    assert summary["span_s"] == 0
