"""SmartStream protocol, sans-I/O: packets, subscriptions and text frames as pure functions.

Binary packets are decoded by ``smartflow.kernels.wire`` (the same code the chain applies in
batches); this module gives it a Python face:

* ``Decoder.decode`` returns the packet as a dict keyed exactly like the official SDK's
  ``SmartWebSocketV2._parse_binary_data`` (so tape dumps diff cleanly against it), prices in paise.
* ``encode`` is the inverse, used by the simulator and the tests.
* ``subscription`` builds the subscribe/unsubscribe JSON; ``parse_text`` reads ``pong`` and the
  JSON error frames (E1001 invalid payload, E1002 subscription limit) that the SDK drops.

Where we differ from the SDK on purpose: malformed packets raise ``FrameError`` with a named kind
instead of being "parsed" into garbage; DEPTH packets report the real exchange timestamp (bytes
27–35) where the SDK reports the dummy receive time.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec
import numpy as np

from smartflow.kernels import wire


class Mode(enum.IntEnum):
    """Subscription modes."""

    LTP = wire.MODE_LTP
    QUOTE = wire.MODE_QUOTE
    SNAP_QUOTE = wire.MODE_SNAP_QUOTE
    DEPTH = wire.MODE_DEPTH


MODE_BY_NAME = {"ltp": Mode.LTP, "quote": Mode.QUOTE, "snap_quote": Mode.SNAP_QUOTE}
MODE_NAMES = {1: "LTP", 2: "QUOTE", 3: "SNAP_QUOTE", 4: "DEPTH"}
FRAME_LENGTH = {
    Mode.LTP: wire.LEN_LTP,
    Mode.QUOTE: wire.LEN_QUOTE,
    Mode.SNAP_QUOTE: wire.LEN_SNAP_QUOTE,
    Mode.DEPTH: wire.LEN_DEPTH,
}


class ExchangeType(enum.IntEnum):
    """SmartStream exchange type codes (angel-smartapi.md §2.3)."""

    NSE_CM = 1
    NSE_FO = 2
    BSE_CM = 3
    BSE_FO = 4
    MCX_FO = 5
    NCX_FO = 7
    CDE_FO = 13


EXCHANGE_BY_SEGMENT = {
    "NSE": ExchangeType.NSE_CM,
    "NFO": ExchangeType.NSE_FO,
    "BSE": ExchangeType.BSE_CM,
    "BFO": ExchangeType.BSE_FO,
    "MCX": ExchangeType.MCX_FO,
    "NCDEX": ExchangeType.NCX_FO,
    "CDS": ExchangeType.CDE_FO,
}

SUBSCRIBE = 1
UNSUBSCRIBE = 0

REJECT_KINDS = wire.STATUS_NAMES[1:]
ANOMALY_KINDS = {wire.ANOMALY_DEPTH_FLAG: "depth_flag", wire.ANOMALY_CROSSED_BOOK: "crossed_book"}


class FrameError(ValueError):
    """A packet was rejected; ``kind`` is one of ``REJECT_KINDS``."""

    def __init__(self, kind: str, length: int) -> None:
        super().__init__(f"{kind} packet ({length} bytes)")
        self.kind = kind
        self.length = length


# Packers mirror the SDK's widths: flags and order counts u16, DEPTH entries signed.
_LTP = struct.Struct("<BB25sqqq")
_QUOTE = struct.Struct("<BB25sqqqqqqddqqqq")
_SNAP = struct.Struct("<BB25sqqqqqqddqqqq" + "qqq" + "HqqH" * 10 + "qqqq")
_DEPTH = struct.Struct("<BB25sqq" + "iih" * 40)


def _levels(w: list[int], flag: int, qty: int, px: int, orders: int) -> list[dict[str, int]]:
    return [
        {
            "flag": w[flag + i],
            "quantity": w[qty + i],
            "price": w[px + i],
            "no of orders": w[orders + i],
        }
        for i in range(5)
    ]


class Decoder:
    """Decodes single packets into SDK-keyed dicts. Holds reusable scratch vectors."""

    def __init__(self) -> None:
        self._w = np.zeros(wire.W_SIZE, np.int64)
        self._f = np.zeros(wire.F_SIZE, np.float64)

    def status(self, frame: bytes) -> int:
        """Return ``wire.OK`` or the ``wire.REJECT_*`` code for ``frame``."""
        if not frame:
            return wire.REJECT_EMPTY
        return int(wire.check_frame(np.frombuffer(frame, np.uint8), 0, len(frame)))

    def decode(self, frame: bytes) -> dict[str, Any]:
        """Decode one packet.

        Returns:
            The SDK's keys and values (prices in paise) plus ``anomalies``: a list of
            ``ANOMALY_KINDS`` names (empty for a clean packet).

        Raises:
            FrameError: the packet is malformed.
        """
        if not frame:
            raise FrameError("empty", 0)
        buf = np.frombuffer(frame, np.uint8)
        status = wire.decode_frame(buf, 0, len(frame), self._w, self._f)
        if status != wire.OK:
            raise FrameError(wire.STATUS_NAMES[status], len(frame))
        # One conversion to Python ints; indexing numpy scalars field by field costs 10x more.
        w: list[int] = self._w.tolist()
        f: list[float] = self._f.tolist()
        mode = w[wire.W_MODE]
        token = frame[2 : 2 + wire.token_length(buf, 0)].decode("ascii")
        out: dict[str, Any] = {
            "subscription_mode": mode,
            "exchange_type": w[wire.W_EXCH],
            "token": token,
        }
        if mode == Mode.DEPTH:
            out["exchange_timestamp"] = w[wire.W_EXCH_TS]
            out["packet_received_time"] = w[wire.W_PKT_RECV]
            out["depth_20_buy_data"] = [
                {
                    "quantity": w[wire.W_D20_BID_QTY + i],
                    "price": w[wire.W_D20_BID_PX + i],
                    "num_of_orders": w[wire.W_D20_BID_ORD + i],
                }
                for i in range(20)
            ]
            out["depth_20_sell_data"] = [
                {
                    "quantity": w[wire.W_D20_ASK_QTY + i],
                    "price": w[wire.W_D20_ASK_PX + i],
                    "num_of_orders": w[wire.W_D20_ASK_ORD + i],
                }
                for i in range(20)
            ]
            out["anomalies"] = []
            return out
        out["sequence_number"] = w[wire.W_SEQ]
        out["exchange_timestamp"] = w[wire.W_EXCH_TS]
        out["last_traded_price"] = w[wire.W_LTP]
        out["subscription_mode_val"] = MODE_NAMES[mode]
        if mode >= Mode.QUOTE:
            out["last_traded_quantity"] = w[wire.W_LTQ]
            out["average_traded_price"] = w[wire.W_ATP]
            out["volume_trade_for_the_day"] = w[wire.W_VOLUME]
            out["total_buy_quantity"] = f[wire.F_TBQ]
            out["total_sell_quantity"] = f[wire.F_TSQ]
            out["open_price_of_the_day"] = w[wire.W_OPEN]
            out["high_price_of_the_day"] = w[wire.W_HIGH]
            out["low_price_of_the_day"] = w[wire.W_LOW]
            out["closed_price"] = w[wire.W_CLOSE]
        if mode == Mode.SNAP_QUOTE:
            out["last_traded_timestamp"] = w[wire.W_LTT]
            out["open_interest"] = w[wire.W_OI]
            out["open_interest_change_percentage"] = w[wire.W_OI_CHG_RAW]
            out["upper_circuit_limit"] = w[wire.W_UPPER]
            out["lower_circuit_limit"] = w[wire.W_LOWER]
            out["52_week_high_price"] = w[wire.W_HIGH52]
            out["52_week_low_price"] = w[wire.W_LOW52]
            out["best_5_buy_data"] = _levels(
                w, wire.W_BID_FLAG, wire.W_BID_QTY, wire.W_BID_PX, wire.W_BID_ORD
            )
            out["best_5_sell_data"] = _levels(
                w, wire.W_ASK_FLAG, wire.W_ASK_QTY, wire.W_ASK_PX, wire.W_ASK_ORD
            )
        bits = w[wire.W_ANOMALY]
        out["anomalies"] = [name for bit, name in ANOMALY_KINDS.items() if bits & bit]
        return out


def _token_bytes(token: str) -> bytes:
    raw = token.encode("ascii")
    if not 0 < len(raw) <= 25:
        raise ValueError(f"token must be 1-25 ASCII characters, got {token!r}")
    return raw


def _level_values(levels: Sequence[Mapping[str, int]], default_flag: int) -> list[int]:
    values: list[int] = []
    for i in range(5):
        lvl = levels[i] if i < len(levels) else {}
        values += [
            lvl.get("flag", default_flag),
            lvl.get("quantity", 0),
            lvl.get("price", 0),
            lvl.get("no of orders", 0),
        ]
    return values


def encode(p: Mapping[str, Any]) -> bytes:
    """Encode an SDK-keyed packet dict (the shape ``Decoder.decode`` returns) to wire bytes.

    Missing numeric fields default to 0; best-five levels default to empty with the positional
    flag (1 for bids, 0 for asks).
    """
    mode = int(p["subscription_mode"])
    head = (mode, int(p["exchange_type"]), _token_bytes(p["token"]))
    g = p.get
    if mode == Mode.DEPTH:
        entries: list[int] = []
        for side in ("depth_20_buy_data", "depth_20_sell_data"):
            rows = g(side, [])
            for i in range(20):
                r = rows[i] if i < len(rows) else {}
                entries += [r.get("quantity", 0), r.get("price", 0), r.get("num_of_orders", 0)]
        return _DEPTH.pack(
            *head, g("exchange_timestamp", 0), g("packet_received_time", 0), *entries
        )
    common = (*head, g("sequence_number", 0), g("exchange_timestamp", 0), g("last_traded_price", 0))
    if mode == Mode.LTP:
        return _LTP.pack(*common)
    quote = (
        *common,
        g("last_traded_quantity", 0),
        g("average_traded_price", 0),
        g("volume_trade_for_the_day", 0),
        float(g("total_buy_quantity", 0.0)),
        float(g("total_sell_quantity", 0.0)),
        g("open_price_of_the_day", 0),
        g("high_price_of_the_day", 0),
        g("low_price_of_the_day", 0),
        g("closed_price", 0),
    )
    if mode == Mode.QUOTE:
        return _QUOTE.pack(*quote)
    if mode == Mode.SNAP_QUOTE:
        return _SNAP.pack(
            *quote,
            g("last_traded_timestamp", 0),
            g("open_interest", 0),
            g("open_interest_change_percentage", 0),
            *_level_values(g("best_5_buy_data", []), 1),
            *_level_values(g("best_5_sell_data", []), 0),
            g("upper_circuit_limit", 0),
            g("lower_circuit_limit", 0),
            g("52_week_high_price", 0),
            g("52_week_low_price", 0),
        )
    raise ValueError(f"cannot encode mode {mode}")


class SnapQuotePacker:
    """Fast SNAP_QUOTE encoder for the simulator's hot loop (one ``struct.pack`` per packet)."""

    def __init__(self, exchange_type: int, token: str) -> None:
        self.head = (Mode.SNAP_QUOTE, exchange_type, _token_bytes(token))

    def pack(
        self,
        seq: int,
        exch_ts_ms: int,
        ltp: int,
        ltq: int,
        atp: int,
        volume: int,
        tbq: float,
        tsq: float,
        ohlc: tuple[int, int, int, int],
        ltt: int,
        oi: int,
        bids: Sequence[tuple[int, int, int]],
        asks: Sequence[tuple[int, int, int]],
        circuits: tuple[int, int, int, int],
    ) -> bytes:
        """Pack one packet; ``bids``/``asks`` are five (qty, price_paise, orders) each."""
        levels: list[int] = []
        for q, px, n in bids:
            levels += (1, q, px, n)
        for q, px, n in asks:
            levels += (0, q, px, n)
        return _SNAP.pack(
            *self.head,
            seq,
            exch_ts_ms,
            ltp,
            ltq,
            atp,
            volume,
            tbq,
            tsq,
            *ohlc,
            ltt,
            oi,
            0,
            *levels,
            *circuits,
        )


class SubscriptionRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A parsed subscribe/unsubscribe request (the simulator's view of a client message)."""

    action: int
    mode: int
    token_list: list[tuple[int, list[str]]]
    correlation_id: str = ""


class _TokenList(msgspec.Struct, frozen=True):
    exchangeType: int
    tokens: list[str]


class _Params(msgspec.Struct, frozen=True):
    mode: int
    tokenList: list[_TokenList]


class _Request(msgspec.Struct, frozen=True, omit_defaults=True):
    action: int
    params: _Params
    correlationID: str = ""


_request_encoder = msgspec.json.Encoder()
_request_decoder = msgspec.json.Decoder(_Request)


def subscription(
    action: int, mode: int, tokens: Mapping[int, Iterable[str]], correlation_id: str = ""
) -> str:
    """Return the JSON text of a subscribe (action 1) or unsubscribe (0) request."""
    req = _Request(
        action=action,
        params=_Params(
            mode=mode,
            tokenList=[_TokenList(int(ex), list(toks)) for ex, toks in sorted(tokens.items())],
        ),
        correlationID=correlation_id,
    )
    return _request_encoder.encode(req).decode()


def parse_subscription(text: str | bytes) -> SubscriptionRequest:
    """Parse a client's request JSON (raises ``msgspec.DecodeError``/``ValidationError``)."""
    req = _request_decoder.decode(text)
    return SubscriptionRequest(
        action=req.action,
        mode=req.params.mode,
        token_list=[(t.exchangeType, list(t.tokens)) for t in req.params.tokenList],
        correlation_id=req.correlationID,
    )


class ErrorFrame(msgspec.Struct, frozen=True, kw_only=True):
    """A server error frame, e.g. E1002 'Subscription Limit Exceeded'."""

    correlationID: str = ""
    errorCode: str = ""
    errorMessage: str = ""


_error_decoder = msgspec.json.Decoder(ErrorFrame)
_error_encoder = msgspec.json.Encoder()

E_INVALID_PAYLOAD = ("E1001", "Invalid Request Payload.")
E_LIMIT_EXCEEDED = ("E1002", "Invalid Request. Subscription Limit Exceeded")


def error_frame(code: str, message: str, correlation_id: str = "") -> str:
    """Return the JSON text of a server error frame."""
    return _error_encoder.encode(
        ErrorFrame(correlationID=correlation_id, errorCode=code, errorMessage=message)
    ).decode()


def parse_text(text: str) -> str | ErrorFrame | None:
    """Classify a text frame: ``"pong"``, an ``ErrorFrame``, or None for anything unrecognised."""
    if text == "pong":
        return "pong"
    try:
        err = _error_decoder.decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return err if err.errorCode else None
