"""SmartStream packet decoding against the official SDK's parser, rejections, encoders, JSON."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from sdk_oracle import sdk_parse

from smartflow.feed import protocol as p
from smartflow.kernels import wire


EXCHANGES = list(p.ExchangeType)
TOKEN_ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_"


def _same(a: object, b: object) -> bool:
    """Equality that treats two NaNs with the same bits as equal (random doubles include NaNs)."""
    if isinstance(a, float) and isinstance(b, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b and type(a) is type(b)


def _random_packets(mode: int, count: int, seed: int) -> list[bytes]:
    """Random packets of ``mode``: every numeric byte random, header bytes valid.

    Best-five flags follow the documented sides (1 for the first five, 0 for the last five),
    which is the case in which the SDK's flag-based split and our positional read must agree.
    """
    rng = np.random.default_rng(seed)
    length = p.FRAME_LENGTH[p.Mode(mode)]
    raw = rng.integers(0, 256, size=(count, length), dtype=np.uint8)
    packets = []
    for i in range(count):
        b = bytearray(raw[i].tobytes())
        b[0] = mode
        b[1] = EXCHANGES[i % len(EXCHANGES)]
        n = int(rng.integers(1, 26))
        token = bytes(TOKEN_ALPHABET[j] for j in rng.integers(0, len(TOKEN_ALPHABET), n))
        b[2:27] = token.ljust(25, b"\0")
        if n < 25:
            # Bytes after the NUL terminator are ignored by both parsers; keep them random.
            b[2 + n + 1 : 27] = raw[i][2 + n + 1 : 27].tobytes()
        if mode == p.Mode.SNAP_QUOTE:
            for lvl in range(10):
                struct.pack_into("<H", b, 147 + 20 * lvl, 1 if lvl < 5 else 0)
        packets.append(bytes(b))
    return packets


def _ours_as_sdk(decoded: dict[str, object]) -> dict[str, object]:
    """Map our decode onto the SDK's output where we deliberately differ (DEPTH timestamps)."""
    out = dict(decoded)
    out.pop("anomalies")
    if out["subscription_mode"] == p.Mode.DEPTH:
        # The SDK reads the DEPTH exchange timestamp from the dummy receive-time field (35-43)
        # and drops the real one (27-35); we report the real one.
        out["exchange_timestamp"] = out["packet_received_time"]
    return out


@pytest.mark.parametrize("mode", [1, 2, 3, 4])
def test_decode_agrees_with_sdk_on_10000_random_packets(mode: int) -> None:
    decoder = p.Decoder()
    packets = _random_packets(mode, 10_000, seed=mode)
    for frame in packets:
        ours = _ours_as_sdk(decoder.decode(frame))
        theirs = sdk_parse(frame)
        assert _same(ours, theirs), (frame.hex(), ours, theirs)


PRINTABLE = "".join(map(chr, range(0x21, 0x7F)))  # what a token may hold


@settings(max_examples=300, deadline=None)
@given(
    mode=st.sampled_from([1, 2, 3, 4]),
    exchange=st.sampled_from(EXCHANGES),
    # Printable ASCII drawn directly: filtering random bytes down to it starves the generator.
    token=st.text(PRINTABLE, min_size=1, max_size=25).map(str.encode),
    body=st.binary(min_size=443, max_size=443),
)
def test_decode_agrees_with_sdk_property(
    mode: int, exchange: int, token: bytes, body: bytes
) -> None:
    length = p.FRAME_LENGTH[p.Mode(mode)]
    b = bytearray(body[:length])
    b[0], b[1] = mode, exchange
    b[2:27] = token.ljust(25, b"\0")
    if mode == p.Mode.SNAP_QUOTE:
        for lvl in range(10):
            struct.pack_into("<H", b, 147 + 20 * lvl, 1 if lvl < 5 else 0)
    frame = bytes(b)
    assert _same(_ours_as_sdk(p.Decoder().decode(frame)), sdk_parse(frame))


def test_batch_kernel_matches_single_decode() -> None:
    packets = [f for mode in (1, 2, 3, 4) for f in _random_packets(mode, 200, seed=10 + mode)]
    buf = np.frombuffer(b"".join(packets), np.uint8)
    lengths = np.array([len(f) for f in packets], np.int64)
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    status = np.zeros(len(packets), np.int8)
    out_w = np.zeros((len(packets), wire.W_SIZE), np.int64)
    out_f = np.zeros((len(packets), wire.F_SIZE), np.float64)
    assert wire.decode_frames(buf, offsets, lengths, status, out_w, out_f) == len(packets)
    decoder = p.Decoder()
    for i, frame in enumerate(packets):
        d = decoder.decode(frame)
        assert out_w[i, wire.W_MODE] == d["subscription_mode"]
        if d["subscription_mode"] != p.Mode.DEPTH:
            assert out_w[i, wire.W_LTP] == d["last_traded_price"]
            assert out_w[i, wire.W_SEQ] == d["sequence_number"]


def _valid(mode: int = 3) -> bytes:
    return p.encode(
        {
            "subscription_mode": mode,
            "exchange_type": 2,
            "token": "43210",
            "last_traded_price": 10_000,
        }
    )


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        (b"", "empty"),
        (b"\x09" + _valid(1)[1:], "unknown_mode"),
        (b"\x00" + _valid(1)[1:], "unknown_mode"),
        (_valid(1)[:-1], "truncated"),
        (_valid(2)[:60], "truncated"),
        (_valid(3)[:378], "truncated"),
        (_valid(4)[:442], "truncated"),
        (b"\x03", "truncated"),
        (_valid(1) + b"\0", "bad_length"),
        (_valid(3) + b"\0" * 8, "bad_length"),
        (_valid(1)[:2] + b"\0" * 25 + _valid(1)[27:], "bad_token"),
        (_valid(1)[:2] + b"43\xff10".ljust(25, b"\0") + _valid(1)[27:], "bad_token"),
        (_valid(1)[:2] + b"43 10".ljust(25, b"\0") + _valid(1)[27:], "bad_token"),
        (_valid(1)[:1] + b"\x06" + _valid(1)[2:], "unknown_exchange"),
    ],
)
def test_malformed_packets_are_rejected_by_kind(frame: bytes, kind: str) -> None:
    decoder = p.Decoder()
    with pytest.raises(p.FrameError) as e:
        decoder.decode(frame)
    assert e.value.kind == kind
    assert kind in p.REJECT_KINDS
    assert p.wire.STATUS_NAMES[decoder.status(frame)] == kind


def test_sdk_silently_parses_what_we_reject() -> None:
    # An LTP packet with 49 trailing garbage bytes and a mode-9 packet: the SDK returns values,
    # we reject. This is the behaviour the feed must not copy.
    padded = _valid(1) + b"\xab" * 49
    assert sdk_parse(padded)["last_traded_price"] == 10_000
    unknown = b"\x09" + _valid(1)[1:]
    assert sdk_parse(unknown)["subscription_mode"] == 9
    decoder = p.Decoder()
    for frame in (padded, unknown):
        with pytest.raises(p.FrameError):
            decoder.decode(frame)


def test_best_five_is_positional_and_flags_are_checked() -> None:
    quote = {
        "subscription_mode": 3,
        "exchange_type": 2,
        "token": "1",
        "best_5_buy_data": [
            {"flag": 1, "quantity": 75, "price": 10_000 - 5 * i, "no of orders": 1}
            for i in range(5)
        ],
        "best_5_sell_data": [
            {"flag": 0, "quantity": 50, "price": 10_005 + 5 * i, "no of orders": 2}
            for i in range(5)
        ],
    }
    clean = p.Decoder().decode(p.encode(quote))
    assert clean["anomalies"] == []
    assert [lvl["price"] for lvl in clean["best_5_buy_data"]] == [
        10_000,
        9_995,
        9_990,
        9_985,
        9_980,
    ]
    # The GH#71 reading (flag 0 = buy) would put these in the first block: we keep positions and
    # flag the disagreement instead of trusting either interpretation.
    swapped = {
        **quote,
        "best_5_buy_data": [{**lvl, "flag": 0} for lvl in quote["best_5_buy_data"]],
        "best_5_sell_data": [{**lvl, "flag": 1} for lvl in quote["best_5_sell_data"]],
    }
    odd = p.Decoder().decode(p.encode(swapped))
    assert odd["anomalies"] == ["depth_flag"]
    assert odd["best_5_buy_data"][0]["price"] == 10_000
    crossed = {
        **quote,
        "best_5_buy_data": [{"flag": 1, "quantity": 75, "price": 10_010, "no of orders": 1}],
    }
    assert p.Decoder().decode(p.encode(crossed))["anomalies"] == ["crossed_book"]


def test_empty_levels_are_not_flag_checked() -> None:
    # Illiquid strikes carry zeroed levels; whatever flag they have says nothing about sides.
    quote = {
        "subscription_mode": 3,
        "exchange_type": 2,
        "token": "9",
        "best_5_sell_data": [{"flag": 1, "quantity": 0, "price": 0, "no of orders": 0}],
    }
    assert p.Decoder().decode(p.encode(quote))["anomalies"] == []


def test_encode_decode_round_trip_keeps_every_field() -> None:
    for mode in (1, 2, 3, 4):
        for frame in _random_packets(mode, 50, seed=100 + mode):
            decoded = p.Decoder().decode(frame)
            assert p.encode(decoded) == _canonical(frame)


def _canonical(frame: bytes) -> bytes:
    # Bytes after the token's NUL are not part of the value; encode writes zeros there.
    b = bytearray(frame)
    n = frame[2:27].find(b"\0")
    if n >= 0:
        b[2 + n : 27] = b"\0" * (25 - n)
    return bytes(b)


def test_snap_quote_packer_matches_generic_encoder() -> None:
    bids = [(75 * (i + 1), 10_000 - 5 * i, i + 1) for i in range(5)]
    asks = [(50 * (i + 1), 10_005 + 5 * i, i + 2) for i in range(5)]
    fast = p.SnapQuotePacker(2, "43210").pack(
        7,
        1_700_000_000_000,
        10_000,
        75,
        9_990,
        12_345,
        1000.0,
        2000.0,
        (9_900, 10_100, 9_800, 9_950),
        1_700_000_000,
        555_000,
        bids,
        asks,
        (20_000, 100, 30_000, 5),
    )
    d = p.Decoder().decode(fast)
    assert d["open_interest"] == 555_000
    assert d["best_5_sell_data"][4] == {
        "flag": 0,
        "quantity": 250,
        "price": 10_025,
        "no of orders": 6,
    }
    d.pop("anomalies")
    d["open_interest_change_percentage"] = 0
    assert p.encode(d) == fast


def test_subscription_json_shape_matches_angel_docs() -> None:
    text = p.subscription(p.SUBSCRIBE, 3, {2: ["43210", "43211"], 1: ["99926000"]}, "abcde12345")
    assert json.loads(text) == {
        "correlationID": "abcde12345",
        "action": 1,
        "params": {
            "mode": 3,
            "tokenList": [
                {"exchangeType": 1, "tokens": ["99926000"]},
                {"exchangeType": 2, "tokens": ["43210", "43211"]},
            ],
        },
    }
    req = p.parse_subscription(text)
    assert (req.action, req.mode) == (1, 3)
    assert req.token_list == [(1, ["99926000"]), (2, ["43210", "43211"])]
    # The SDK sends requests without a correlationID key on resubscribe.
    bare = p.parse_subscription('{"action":0,"params":{"mode":1,"tokenList":[]}}')
    assert (bare.action, bare.correlation_id) == (0, "")


def test_text_frames() -> None:
    assert p.parse_text("pong") == "pong"
    err = p.parse_text(p.error_frame(*p.E_LIMIT_EXCEEDED, correlation_id="c1"))
    assert isinstance(err, p.ErrorFrame)
    assert (err.errorCode, err.correlationID) == ("E1002", "c1")
    assert p.parse_text("hello") is None
    assert p.parse_text('{"foo": 1}') is None


def test_random_doubles_survive_including_nan() -> None:
    frame = p.encode(
        {
            "subscription_mode": 2,
            "exchange_type": 1,
            "token": "99926000",
            "total_buy_quantity": math.inf,
            "total_sell_quantity": -0.0,
        }
    )
    d = p.Decoder().decode(frame)
    assert d["total_buy_quantity"] == math.inf
    assert math.copysign(1.0, d["total_sell_quantity"]) == -1.0
