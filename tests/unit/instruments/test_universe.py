"""Scrip-master parsing and chain-universe selection (NIFTY on NFO, SENSEX on BFO)."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from smartflow.core.errors import ConfigError
from smartflow.core.timeutil import expiry_ns, ns_at_ist
from smartflow.instruments.master import parse
from smartflow.instruments.universe import StrikeWindow, select, select_next


DAY = dt.date(2026, 11, 23)
NOW = ns_at_ist(DAY, dt.time(10, 0))


def _opt(
    token: str, symbol: str, name: str, expiry: str, strike: float, seg: str, lot: int = 75
) -> dict[str, str]:
    return {
        "token": token,
        "symbol": symbol,
        "name": name,
        "expiry": expiry,
        "strike": f"{strike * 100:.6f}",
        "lotsize": str(lot),
        "instrumenttype": "OPTIDX",
        "exch_seg": seg,
        "tick_size": "5.000000",
    }


def _master() -> bytes:
    rows = [
        {
            "token": "99926000",
            "symbol": "Nifty 50",
            "name": "NIFTY",
            "expiry": "",
            "strike": "0.000000",
            "lotsize": "1",
            "instrumenttype": "AMXIDX",
            "exch_seg": "NSE",
            "tick_size": "-1.000000",
        },
        {
            "token": "99919000",
            "symbol": "SENSEX",
            "name": "SENSEX",
            "expiry": "",
            "strike": "-1.000000",
            "lotsize": "1",
            "instrumenttype": "AMXIDX",
            "exch_seg": "BSE",
            "tick_size": "-1.000000",
        },
        {
            "token": "35000",
            "symbol": "NIFTY29DEC26FUT",
            "name": "NIFTY",
            "expiry": "29DEC2026",
            "strike": "-1.000000",
            "lotsize": "75",
            "instrumenttype": "FUTIDX",
            "exch_seg": "NFO",
            "tick_size": "10.000000",
        },
        {
            "token": "1100",
            "symbol": "SENSEX26DECFUT",
            "name": "SENSEX",
            "expiry": "24DEC2026",
            "strike": "-1.000000",
            "lotsize": "20",
            "instrumenttype": "FUTIDX",
            "exch_seg": "BFO",
            "tick_size": "5.000000",
        },
        # Equity and stock options of other roots must be ignored.
        {
            "token": "2885",
            "symbol": "RELIANCE-EQ",
            "name": "RELIANCE",
            "expiry": "",
            "strike": "-1.000000",
            "lotsize": "1",
            "instrumenttype": "",
            "exch_seg": "NSE",
            "tick_size": "5.000000",
        },
        _opt("61234", "RELIANCE30DEC263000CE", "RELIANCE", "30DEC2026", 3000, "NFO", 250),
        # An MCX row that also says NIFTY in its name: wrong type and segment.
        {
            "token": "437994",
            "symbol": "NIFTYMCX",
            "name": "NIFTY",
            "expiry": "25NOV2026",
            "strike": "2400000.000000",
            "lotsize": "1",
            "instrumenttype": "OPTFUT",
            "exch_seg": "MCX",
            "tick_size": "100.000000",
        },
        # A malformed strike is counted and skipped, not fatal.
        {**_opt("9", "NIFTYBADCE", "NIFTY", "25NOV2026", 0, "NFO"), "strike": "abc"},
    ]
    token = 40000
    for expiry in ("25NOV2026", "02DEC2026", "17NOV2026"):  # the last one has passed
        for k in range(23000, 25001, 50):
            for right in ("CE", "PE"):
                token += 1
                rows.append(
                    _opt(
                        str(token),
                        f"NIFTY{expiry[:5]}{expiry[-2:]}{k}{right}",
                        "NIFTY",
                        expiry,
                        k,
                        "NFO",
                    )
                )
    # BSE's symbols carry YY + MMM but not the expiry day: SENSEX26NOV80000CE expires on the
    # 26th per its `expiry` field, while a symbol parser would read "26" as the day.
    for expiry in ("27NOV2026", "04DEC2026"):
        for k in range(78000, 82001, 100):
            for right in ("CE", "PE"):
                token += 1
                rows.append(
                    _opt(
                        str(token),
                        f"SENSEX26{expiry[2:5]}{k}{right}",
                        "SENSEX",
                        expiry,
                        k,
                        "BFO",
                        20,
                    )
                )
    return msgspec.json.encode(rows)


def test_parse_keeps_index_futures_and_options_of_the_roots() -> None:
    m = parse(_master(), {"NIFTY", "SENSEX"})
    kinds = {i.kind for i in m.instruments}
    assert kinds == {"INDEX", "FUT", "CE", "PE"}
    assert m.malformed == 1
    assert all(i.root in ("NIFTY", "SENSEX") for i in m.instruments)
    assert not any(i.segment == "MCX" for i in m.instruments)


def test_nifty_nearest_live_expiry_on_nfo() -> None:
    u = select(parse(_master(), {"NIFTY"}), "NIFTY", NOW)
    assert u.segment == "NFO"
    assert u.exchange_type == 2
    assert u.expiry == dt.date(2026, 11, 25)  # 17NOV has passed
    assert u.expiry_ns == expiry_ns(dt.date(2026, 11, 25))
    assert u.index.token == "99926000"
    assert u.index_fallback_token == "26000"
    assert u.future is not None
    assert u.future.token == "35000"
    assert len(u.strikes_paise) == 41
    assert u.lot_size == 75
    assert u.tick_paise == 5


def test_sensex_on_bfo_by_fields_not_symbols() -> None:
    u = select(parse(_master(), {"SENSEX"}), "SENSEX", NOW)
    assert u.segment == "BFO"
    assert u.exchange_type == 4
    assert u.expiry == dt.date(2026, 11, 27)
    assert u.index.token == "99919000"
    assert u.index.exchange_type == 3
    assert u.future is not None
    assert u.future.token == "1100"
    assert u.lot_size == 20
    assert u.strikes_paise[0] == 78000 * 100
    assert {i.kind for i in u.options} == {"CE", "PE"}
    # No symbol parsing: the options keep Angel's BSE symbols as they are.
    assert u.calls[80000 * 100].symbol == "SENSEX26NOV80000CE"


def test_configured_expiry_and_errors() -> None:
    m = parse(_master(), {"NIFTY", "SENSEX"})
    assert select(m, "NIFTY", NOW, dt.date(2026, 12, 2)).expiry == dt.date(2026, 12, 2)
    with pytest.raises(ConfigError, match=r"market\.expiry"):
        select(m, "NIFTY", NOW, dt.date(2026, 11, 17))
    with pytest.raises(ConfigError, match="BANKNIFTY"):
        select(m, "BANKNIFTY", NOW)
    after_all = ns_at_ist(dt.date(2027, 1, 1), dt.time(10, 0))
    with pytest.raises(ConfigError, match="passed"):
        select(m, "SENSEX", after_all)


def test_next_expiry_after_the_near_one() -> None:
    m = parse(_master(), {"NIFTY", "SENSEX"})
    near = select(m, "NIFTY", NOW)
    nxt = select_next(m, near, NOW)
    assert (near.expiry, nxt.expiry) == (dt.date(2026, 11, 25), dt.date(2026, 12, 2))
    assert nxt.index.token == near.index.token
    assert nxt.future is not None
    assert near.future is not None
    assert nxt.future.token == near.future.token
    assert not set(nxt.calls.values()) & set(near.calls.values())
    # A configured expiry with nothing after it: the error names market.expiries.
    with pytest.raises(
        ConfigError, match=r"market\.expiries: NIFTY lists no expiry after 2026-12-02"
    ):
        select_next(m, nxt, NOW)


def test_window_recentres_by_delta_keeping_slots() -> None:
    u = select(parse(_master(), {"NIFTY"}), "NIFTY", NOW)
    w = StrikeWindow(u, each_side=5, recenter_k=3)
    assert w.update(24_000_00)
    first = w.tokens()
    assert len(first) == 22
    assert not w.update(24_100_00)  # two strikes away: stay
    assert w.update(24_150_00)  # three strikes: re-centre
    second = w.tokens()
    assert len(second) == 22
    added, removed = second - first, first - second
    assert len(added) == len(removed) == 6
    # Slots cover every strike of the expiry, so a re-centre never reallocates a row.
    assert len(u.options) == 82
