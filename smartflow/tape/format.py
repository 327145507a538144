r"""The ``.sft`` tape: raw SmartStream packets with their receive times (design.md §4.1).

::

    magic   b"SFTAPE1\\n"        8 bytes
    hlen    u32 LE               length of the header JSON
    header  UTF-8 JSON object    at least {"format": "SFTAPE1"}; free metadata otherwise
    records, until EOF:
      recv_ns  u64 LE            receive time, Unix epoch nanoseconds
      length   u32 LE            payload length (0 allowed)
      payload  bytes             one binary SmartStream message exactly as received

A truncated final record (a crash mid-write) is reported and ignored; every other record replays
in order. The writer buffers and flushes on a timer or on close, so a crash loses at most the
last flush interval, never the readability of what was written.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec
import numpy as np


MAGIC = b"SFTAPE1\n"
FORMAT = "SFTAPE1"
_HLEN = struct.Struct("<I")
_REC = struct.Struct("<QI")


class TapeError(ValueError):
    """The file is not a readable tape (bad magic or header)."""


class TapeWriter:
    """Appends records to a new tape file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        header: dict[str, Any] | None = None,
        buffer_bytes: int = 1 << 20,
    ) -> None:
        self.path = Path(path)
        meta = {"format": FORMAT, **(header or {})}
        head = msgspec.json.encode(meta)
        self._file: IO[bytes] = open(self.path, "wb", buffering=buffer_bytes)  # noqa: SIM115
        self._file.write(MAGIC + _HLEN.pack(len(head)) + head)
        self.records = 0
        self.bytes = 0

    def write(self, recv_ns: int, payload: bytes) -> None:
        """Append one record (buffered)."""
        self._file.write(_REC.pack(recv_ns, len(payload)))
        self._file.write(payload)
        self.records += 1
        self.bytes += len(payload)

    def flush(self) -> None:
        """Push buffered records to the OS."""
        self._file.flush()

    def close(self) -> None:
        """Flush and close; idempotent."""
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

    def __enter__(self) -> TapeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Tape:
    """A tape opened for reading, with every record located up front.

    ``data`` is the whole file as a read-only uint8 array (memory-mapped), so bulk consumers can
    hand it to kernels with ``offsets``/``lengths`` and never copy a payload.
    """

    path: Path
    header: dict[str, Any]
    data: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    recv_ns: np.ndarray
    truncated_bytes: int = 0
    _mmap: mmap.mmap | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.offsets.size)

    def payload(self, i: int) -> bytes:
        """Return record ``i``'s payload."""
        o = int(self.offsets[i])
        return self.data[o : o + int(self.lengths[i])].tobytes()

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        for i in range(len(self)):
            yield int(self.recv_ns[i]), self.payload(i)

    def close(self) -> None:
        """Release the memory map."""
        self.data = np.zeros(0, np.uint8)
        if self._mmap is not None:
            self._mmap.close()
            self._mmap = None


def open_tape(path: str | os.PathLike[str]) -> Tape:
    """Open and index a tape.

    Raises:
        TapeError: bad magic or header.
    """
    p = Path(path)
    size = p.stat().st_size
    with open(p, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    raw: bytes | mmap.mmap = mm if mm is not None else b""
    if raw[: len(MAGIC)] != MAGIC:
        raise TapeError(f"{p}: not a smartflow tape (bad magic)")
    if len(raw) < len(MAGIC) + 4:
        raise TapeError(f"{p}: header length missing")
    (hlen,) = _HLEN.unpack_from(raw, len(MAGIC))
    start = len(MAGIC) + 4
    if start + hlen > len(raw):
        raise TapeError(f"{p}: header truncated")
    try:
        header = msgspec.json.decode(raw[start : start + hlen])
    except msgspec.DecodeError as e:
        raise TapeError(f"{p}: header is not JSON ({e})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise TapeError(f"{p}: header has no format {FORMAT!r}")
    offsets: list[int] = []
    lengths: list[int] = []
    stamps: list[int] = []
    pos = start + hlen
    end = len(raw)
    unpack = _REC.unpack_from
    while pos + 12 <= end:
        recv_ns, n = unpack(raw, pos)
        if pos + 12 + n > end:
            break
        stamps.append(recv_ns)
        offsets.append(pos + 12)
        lengths.append(n)
        pos += 12 + n
    data = np.frombuffer(raw, np.uint8) if mm is not None else np.zeros(0, np.uint8)
    return Tape(
        path=p,
        header=header,
        data=data,
        offsets=np.array(offsets, np.int64),
        lengths=np.array(lengths, np.int64),
        recv_ns=np.array(stamps, np.int64),
        truncated_bytes=end - pos,
        _mmap=mm,
    )
