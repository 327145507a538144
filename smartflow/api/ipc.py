"""The channel between the daemon and its API process: length-prefixed msgpack over a socketpair.

Daemon → API: ``Init`` (config and tokens; never argv or the environment), ``Snap`` (the latest
snapshot) and ``Reply`` (a kill command's answer). API → daemon: ``Listening`` or ``Failed``
(the bind), ``LogLine`` (the API process logs through the daemon's logger, so its lines are
redacted and in the same stream), ``Command`` (kill or reset, run on the trading loop) and
``Want`` (the costly snapshot sections requests are reading).
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any, Literal

import msgspec

from smartflow.api.snapshot import ApiSnapshot, Section
from smartflow.config import ApiConfig


class Init(msgspec.Struct, tag="init", frozen=True, kw_only=True):
    """The API process's configuration."""

    api: ApiConfig
    kill_token: str
    api_token: str
    whales_kept: int
    history: str = ""
    """The history SQLite the history route reads ("": ``[history] enabled = false``)."""


class Snap(msgspec.Struct, tag="snapshot", frozen=True):
    """A snapshot to serve from."""

    snapshot: ApiSnapshot


class Reply(msgspec.Struct, tag="reply", frozen=True, kw_only=True):
    """The trading loop's answer to a ``Command``."""

    id: int
    result: dict[str, Any]
    error: str = ""


class Listening(msgspec.Struct, tag="listening", frozen=True):
    """The API is bound and serving."""

    port: int


class Failed(msgspec.Struct, tag="failed", frozen=True):
    """The API could not bind."""

    error: str


class LogLine(msgspec.Struct, tag="log", frozen=True, kw_only=True):
    """One log event of the API process."""

    level: Literal["info", "warning", "error"]
    event: str
    fields: dict[str, Any]


class Command(msgspec.Struct, tag="command", frozen=True, kw_only=True):
    """A kill-switch request for the trading loop."""

    id: int
    op: Literal["kill", "reset"]
    reason: str
    source: str


class Want(msgspec.Struct, tag="want", frozen=True):
    """Requests read these sections: carry them in the snapshots for a while."""

    sections: list[Section]


ToWorker = Init | Snap | Reply
ToDaemon = Listening | Failed | LogLine | Command | Want

_HEAD = struct.Struct("<I")
MAX_FRAME = 256 * 1024 * 1024
# Anything a log field holds that msgpack cannot (exceptions, paths) goes as its repr.
_encoder = msgspec.msgpack.Encoder(enc_hook=repr)


def frame(msg: ToWorker | ToDaemon) -> bytes:
    """One message, length-prefixed."""
    body = _encoder.encode(msg)
    return _HEAD.pack(len(body)) + body


class Reader:
    """Reads typed messages off a stream."""

    def __init__(self, stream: asyncio.StreamReader, kind: Any) -> None:
        self.stream = stream
        self.decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(kind)

    async def read(self) -> Any:
        """The next message; ``EOFError`` when the other side has gone."""
        try:
            (n,) = _HEAD.unpack(await self.stream.readexactly(_HEAD.size))
            if n > MAX_FRAME:
                raise EOFError(f"api channel: a {n}-byte frame")
            return self.decoder.decode(await self.stream.readexactly(n))
        except (asyncio.IncompleteReadError, ConnectionError) as e:
            raise EOFError("api channel closed") from e
