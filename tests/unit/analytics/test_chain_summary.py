"""Chain summary on hand-built chain tables: every number checked against a hand computation.

The chain is five strikes (100, 110, 120, 130, 140) with a call and a put each. Tests write the
wire state (``q``: OI, volume, quotes) and the priced state (``f``: IV, gamma, premium) directly,
so PCR, max pain, walls, ΔOI, GEX and the smile can be worked out on paper from the numbers in
the fixture. ΔOI baselines are exercised through real packets (``ChainBook.process``) because
they depend on when a contract was first seen and on bar closes.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math

import msgspec
import numpy as np
import pytest

from smartflow.analytics.summary import (
    ChainSummaries,
    ChainSummarizer,
    ist_day_index,
    iv_rank,
)
from smartflow.chain.state import ChainBook, ChainState
from smartflow.config import DetectorConfig, ModelConfig
from smartflow.core.timeutil import IST, expiry_ns
from smartflow.feed import protocol as p
from smartflow.instruments.master import Instrument
from smartflow.instruments.universe import ChainUniverse
from smartflow.kernels import layout as L, summary as ks


ROOT = "TEST"
LOT = 50
STRIKES = [100.0, 110.0, 120.0, 130.0, 140.0]
EXPIRY = dt.date(2030, 4, 3)
# 2030-01-03 10:00 IST: a bar boundary for 5 s bars, 90 days + 5.5 h before the expiry.
T0 = int(dt.datetime(2030, 1, 3, 10, 0, tzinfo=IST).timestamp()) * 1_000_000_000


def _universe() -> ChainUniverse:
    index = Instrument("1", "IDX", ROOT, "INDEX", "NSE", 1, None, 0, 1, 0)
    fut = Instrument("2", "FUT", ROOT, "FUT", "NFO", 2, EXPIRY, 0, LOT, 5)
    calls, puts = {}, {}
    tok = 10
    for k in STRIKES:
        kp = int(k * 100)
        calls[kp] = Instrument(str(tok), f"C{k:g}", ROOT, "CE", "NFO", 2, EXPIRY, kp, LOT, 5)
        puts[kp] = Instrument(str(tok + 1), f"P{k:g}", ROOT, "PE", "NFO", 2, EXPIRY, kp, LOT, 5)
        tok += 2
    return ChainUniverse(
        root=ROOT,
        expiry=EXPIRY,
        expiry_ns=expiry_ns(EXPIRY),
        segment="NFO",
        exchange_type=2,
        index=index,
        future=fut,
        strikes_paise=[int(k * 100) for k in STRIKES],
        calls=calls,
        puts=puts,
        lot_size=LOT,
        tick_paise=5,
    )


def _chain() -> ChainState:
    return ChainState(_universe(), ModelConfig(forward="spot", rate=0.0))


def _row(c: ChainState, strike: float, kind: str) -> int:
    u = c.universe
    inst = (u.calls if kind == "CE" else u.puts)[int(strike * 100)]
    return c.row_by_token[inst.token]


# Per strike: (call OI, put OI, call volume, put volume), in lots of 50.
BOOK = {
    100.0: (10, 60, 5, 30),
    110.0: (20, 80, 10, 40),
    120.0: (50, 50, 50, 20),
    130.0: (90, 20, 60, 5),
    140.0: (70, 10, 20, 5),
}
# Smile (fraction) and premium per strike; the same IV on both sides of a strike unless noted.
IVS = {100.0: 0.30, 110.0: 0.25, 120.0: 0.20, 130.0: 0.22, 140.0: 0.26}
GAMMA = {100.0: 0.001, 110.0: 0.004, 120.0: 0.008, 130.0: 0.005, 140.0: 0.002}
PREMIUM = {  # (call, put)
    100.0: (21.0, 0.5),
    110.0: (12.0, 1.5),
    120.0: (4.0, 3.0),
    130.0: (1.0, 10.0),
    140.0: (0.25, 19.5),
}
FWD = 121.0
SPOT = 120.5


def _fill(c: ChainState) -> None:
    """Write the BOOK into the tables as if every contract had been seen and priced."""
    for k, (coi, poi, cvol, pvol) in BOOK.items():
        for kind, oi, vol, prem in (
            ("CE", coi, cvol, PREMIUM[k][0]),
            ("PE", poi, pvol, PREMIUM[k][1]),
        ):
            r = _row(c, k, kind)
            c.q[r, L.Q_TICKS] = 3
            c.q[r, L.Q_HAS_QUOTE] = 1
            c.q[r, L.Q_OI] = oi * LOT
            c.q[r, L.Q_BAR_OI0] = oi * LOT
            c.q[r, L.Q_VOLUME] = vol * LOT
            c.f[r, L.F_IV] = IVS[k]
            c.f[r, L.F_GAMMA] = GAMMA[k]
            c.f[r, L.F_IV_PRICE] = prem
    c.st[0] = FWD
    c.st[1] = SPOT


def _summary(c: ChainState, t_ns: int = T0) -> ChainSummarizer:
    s = ChainSummarizer(c)
    s.compute(t_ns, -1)
    return s


def test_pcr_pain_walls_and_gex_by_hand() -> None:
    c = _chain()
    _fill(c)
    s = _summary(c)
    snap = s.latest
    assert snap is not None
    out = snap.to_struct()
    # PCR by OI: Σ put = 220 lots, Σ call = 240 lots.
    assert out.pcr.oi == pytest.approx(round(220 / 240, 4))
    # By volume: puts 100, calls 145.
    assert out.pcr.volume == pytest.approx(round(100 / 145, 4))
    # Nothing changed since the first print (the baseline is today's first OI).
    assert out.pcr.oi_change is None
    assert out.totals.ce_oi_change == 0
    assert out.doi_basis == "first_print"
    assert out.doi_first_print_contracts == 10
    # Per strike PCR at 100: 60 / 10.
    assert out.strikes[0].pcr_oi == 6.0
    assert out.strikes[2].pcr_volume == pytest.approx(0.4)
    # Pain at P = 120 (rupees = units × points): calls 100 (10 lots) pay 20, 110 (20 lots) pay
    # 10; puts 130 (20 lots) pay 10, 140 (10 lots) pay 20.
    pain_120 = (10 * 20 + 20 * 10 + 20 * 10 + 10 * 20) * LOT
    assert out.strikes[2].pain == pain_120
    # Every pain point, and max pain = the argmin.
    pains = {}
    for settle in STRIKES:
        total = 0.0
        for k, (coi, poi, _, _) in BOOK.items():
            total += coi * LOT * max(settle - k, 0) + poi * LOT * max(k - settle, 0)
        pains[settle] = total
    assert [x.pain for x in out.strikes] == [pains[k] for k in STRIKES]
    assert out.max_pain.strike == min(STRIKES, key=lambda k: (pains[k], k)) == 120.0
    assert out.max_pain.payout == pain_120
    # Walls: call OI peaks at 130 (90 lots), put OI at 110 (80 lots).
    assert out.walls.resistance.strike == 130.0
    assert out.walls.resistance.value == 90 * LOT
    assert out.walls.support.strike == 110.0
    assert out.walls.support.value == 80 * LOT
    # GEX per strike = (Γc·OIc − Γp·OIp)·S²·1 %; at 110: 0.004·(20 − 80)·50·120.5²·0.01.
    gex_110 = 0.004 * (20 - 80) * LOT * SPOT**2 * 0.01
    assert out.strikes[1].gex == pytest.approx(gex_110, abs=0.01)
    total = sum(GAMMA[k] * (BOOK[k][0] - BOOK[k][1]) * LOT * SPOT**2 * 0.01 for k in STRIKES)
    assert out.gex.total == pytest.approx(total, abs=0.01)
    assert out.gex.contracts_without_gamma == 0


def test_smile_atm_straddle_and_expected_move_by_hand() -> None:
    c = _chain()
    _fill(c)
    # Different IVs per side at 120 and 130 show which side the smile takes: OTM (put below
    # the forward 121, call above).
    c.f[_row(c, 120.0, "CE"), L.F_IV] = 0.99
    c.f[_row(c, 130.0, "PE"), L.F_IV] = 0.99
    out = _summary(c).latest.to_struct()  # type: ignore[union-attr]
    assert [x.iv for x in out.strikes] == [0.30, 0.25, 0.20, 0.22, 0.26]
    assert out.strikes[2].ce_iv == 0.99
    # ATM IV: linear in strike between 120 (0.20) and 130 (0.22) at F = 121.
    assert out.volatility.atm_iv == pytest.approx(0.20 + 0.1 * 0.02)
    # Straddle at the strike nearest the forward (120): 4.0 + 3.0.
    assert out.volatility.atm_strike == 120.0
    assert out.volatility.straddle == 7.0
    assert out.volatility.expected_move_straddle == 7.0
    t = (expiry_ns(EXPIRY) - T0) / 1e9 / (365 * 86400)
    assert out.volatility.expected_move_sigma == pytest.approx(FWD * 0.202 * math.sqrt(t), abs=5e-5)
    # Call delta N(d1) at the smile IV, per strike.
    for x in out.strikes:
        s = x.iv * math.sqrt(t)  # type: ignore[operator]
        d1 = math.log(FWD / x.strike) / s + s / 2
        assert x.call_delta == pytest.approx(0.5 * math.erfc(-d1 / math.sqrt(2)), abs=1e-6)


def test_25_and_10_delta_points_interpolate_in_delta() -> None:
    c = _chain()
    _fill(c)
    out = _summary(c).latest.to_struct()  # type: ignore[union-attr]
    # IV against the call's N(d1), which falls with the strike; the put's |delta| is 1 − N(d1).
    xs = [(x.call_delta, x.iv) for x in out.strikes]

    def at(target: float) -> float | None:
        for (x0, v0), (x1, v1) in itertools.pairwise(xs):
            if x0 >= target >= x1:  # type: ignore[operator]
                return v0 + (x0 - target) / (x0 - x1) * (v1 - v0)  # type: ignore[operator]
        return None

    v = out.volatility
    want = {"25c": at(0.25), "25p": at(0.75), "10c": at(0.10), "10p": at(0.90)}
    # The 140 call (N(d1) ≈ 0.14) is the last strike: the 10-delta call is beyond the chain and
    # is reported as unknown, never extrapolated.
    assert want["10c"] is None
    assert v.iv_10d_call is None
    assert None not in (want["25c"], want["25p"], want["10p"]), xs
    assert v.iv_25d_call == pytest.approx(want["25c"], abs=1e-6)
    assert v.iv_25d_put == pytest.approx(want["25p"], abs=1e-6)
    assert v.iv_10d_put == pytest.approx(want["10p"], abs=1e-6)
    assert v.rr_25d == pytest.approx(want["25c"] - want["25p"], abs=2e-6)  # type: ignore[operator]
    mid = (want["25c"] + want["25p"]) / 2  # type: ignore[operator]
    assert v.bf_25d == pytest.approx(mid - 0.202, abs=2e-6)
    # The put wing is richer than the call wing here: a negative risk reversal.
    assert v.rr_25d < 0  # type: ignore[operator]


def test_gex_total_matches_the_profile_at_spot_and_zero_gamma_is_a_root() -> None:
    c = _chain()
    _fill(c)
    t = (expiry_ns(EXPIRY) - T0) / 1e9 / (365 * 86400)
    # Gammas consistent with the IVs (Black-76, r = 0): the profile at spot equals the total.
    for k in STRIKES:
        s = IVS[k] * math.sqrt(t)
        d1 = math.log(FWD / k) / s + s / 2
        g = math.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi) / (FWD * s) * (FWD / SPOT) ** 2
        for kind in ("CE", "PE"):
            c.f[_row(c, k, kind), L.F_GAMMA] = g
    snap = _summary(c).latest
    assert snap is not None
    k = snap.per_strike
    at_spot = ks._total_gex(k, k.shape[0], FWD, SPOT, t, 0.0, SPOT)
    assert at_spot == pytest.approx(snap.scalar(ks.S_GEX), rel=1e-9)
    z = snap.zero_gamma()
    # Put OI dominates low strikes and call OI high strikes: one sign change inside the range.
    assert 100.0 < z < 140.0
    lo = ks._total_gex(k, k.shape[0], FWD, SPOT, t, 0.0, z - 0.05)
    hi = ks._total_gex(k, k.shape[0], FWD, SPOT, t, 0.0, z + 0.05)
    assert (lo < 0) != (hi < 0)


def test_unseen_strikes_and_missing_iv_are_left_out() -> None:
    c = _chain()
    _fill(c)
    for kind in ("CE", "PE"):
        r = _row(c, 140.0, kind)
        c.q[r, L.Q_TICKS] = 0
    c.f[_row(c, 100.0, "CE"), L.F_GAMMA] = math.nan
    out = _summary(c).latest.to_struct()  # type: ignore[union-attr]
    assert [x.strike for x in out.strikes] == [100.0, 110.0, 120.0, 130.0]
    assert out.strikes_seen == 4
    assert out.totals.ce_oi == (10 + 20 + 50 + 90) * LOT
    assert out.gex.contracts_without_gamma == 1


# ---- ΔOI baselines through real packets ---------------------------------------------------


def _packet(c: ChainState, row: int, oi: int, volume: int, ltp: int = 500) -> bytes:
    inst = c.instruments[row]
    assert inst is not None
    packer = p.SnapQuotePacker(inst.exchange_type, inst.token)
    bids = [(LOT, ltp - 5, 1)] + [(0, 0, 0)] * 4
    asks = [(LOT, ltp + 5, 1)] + [(0, 0, 0)] * 4
    return packer.pack(
        1,
        0,
        ltp,
        LOT,
        ltp,
        volume,
        100.0,
        100.0,
        (ltp, ltp, ltp, ltp),
        0,
        oi,
        bids,
        asks,
        (0, 0, 0, 0),
    )


def test_doi_from_first_print_then_previous_close_across_midnight() -> None:
    c = _chain()
    book = ChainBook([c], DetectorConfig(bar_seconds=5))
    sums = ChainSummaries(book)
    book.on_close = lambda end, seq, _at: sums.on_bar(end, seq)
    closed: list[tuple[str, int, dict[str, int]]] = []
    sums.on_day_close.append(lambda root, day, oi: closed.append((root, day, oi)))
    last_atm: dict[int, float] = {}  # day → ATM IV of its last bar close
    sums.on_snapshot.append(
        lambda snap, _: last_atm.__setitem__(
            ist_day_index(snap.ts_ns - 1), snap.scalar(ks.S_ATM_IV)
        )
    )
    ce = _row(c, 120.0, "CE")
    pe = _row(c, 120.0, "PE")
    # Day 1: the index at 120 (the forward, r = 0), first prints 1000 / 2000, then the call's
    # OI moves within the same bar to 1500.
    book.process([(T0 + 500_000, _packet(c, L.ROW_INDEX, 0, 0, 12_000))])
    book.process(
        [(T0 + 1_000_000, _packet(c, ce, 1000, 50)), (T0 + 2_000_000, _packet(c, pe, 2000, 50))]
    )
    book.process([(T0 + 3_000_000, _packet(c, ce, 1500, 100))])
    book.advance_to(T0 + 5_000_000_000)
    snap = sums.latest(ROOT)
    assert snap is not None
    out = snap.to_struct()
    assert out.doi_basis == "first_print"
    s120 = next(x for x in out.strikes if x.strike == 120.0)
    assert (s120.ce_oi_change, s120.pe_oi_change) == (500, 0)
    # Later in the day the put's OI moves; ΔOI stays against the first print.
    book.process([(T0 + 7_000_000_000, _packet(c, pe, 2600, 80))])
    book.advance_to(T0 + 10_000_000_000)
    out = sums.latest(ROOT).to_struct()  # type: ignore[union-attr]
    s120 = next(x for x in out.strikes if x.strike == 120.0)
    assert (s120.ce_oi_change, s120.pe_oi_change) == (500, 600)
    assert out.pcr.oi_change == pytest.approx(600 / 500)
    # Next day: the first bar close after midnight rolls the baseline to yesterday's close.
    day2 = T0 + 86_400 * 1_000_000_000
    book.process([(day2 + 1_000_000, _packet(c, ce, 1700, 10))])
    book.advance_to(day2 + 5_000_000_000)
    assert closed
    assert closed[0][0] == ROOT
    assert closed[0][1] == ist_day_index(T0)
    assert closed[0][2] == {c.instruments[ce].token: 1500, c.instruments[pe].token: 2600}  # type: ignore[union-attr]
    out = sums.latest(ROOT).to_struct()  # type: ignore[union-attr]
    assert out.doi_basis == "prev_close"
    s120 = next(x for x in out.strikes if x.strike == 120.0)
    # The call printed 1700 today against yesterday's 1500; the put has not printed today and
    # still shows yesterday's OI against yesterday's close.
    assert (s120.ce_oi_change, s120.pe_oi_change) == (200, 0)
    # Yesterday's last ATM IV (at its last bar close, 23:59:59) joined the daily closes.
    day1 = last_atm[ist_day_index(T0)]
    assert math.isfinite(day1)
    assert sums.by_root[ROOT].iv_closes == (day1,)


def test_prev_close_loaded_at_start_wins_over_first_print() -> None:
    c = _chain()
    book = ChainBook([c], DetectorConfig(bar_seconds=5))
    sums = ChainSummaries(book)
    book.on_close = lambda end, seq, _at: sums.on_bar(end, seq)
    ce = _row(c, 110.0, "CE")
    token = c.instruments[ce].token  # type: ignore[union-attr]
    assert sums.by_root[ROOT].set_prev_close({token: 800, "no-such-token": 5}) == 1
    book.process([(T0 + 1_000_000, _packet(c, ce, 1000, 50))])
    book.advance_to(T0 + 5_000_000_000)
    out = sums.latest(ROOT).to_struct()  # type: ignore[union-attr]
    assert out.doi_basis == "prev_close"
    assert out.doi_prev_close_contracts == 1
    assert next(x for x in out.strikes if x.strike == 110.0).ce_oi_change == 200


def test_summary_is_plain_json() -> None:
    c = _chain()
    _fill(c)
    out = _summary(c).latest.to_struct()  # type: ignore[union-attr]
    body = msgspec.json.decode(msgspec.json.encode(out))
    assert body["pcr"]["oi"] == round(220 / 240, 4)
    assert body["walls"]["support"] == {"strike": 110.0, "value": 80 * LOT}
    assert isinstance(body["strikes"], list)
    assert len(body["strikes"]) == 5


# ---- IV rank and percentile ---------------------------------------------------------------


def test_iv_rank_and_percentile_on_a_known_series() -> None:
    closes = [0.10 + 0.01 * i for i in range(20)]  # 0.10 … 0.29
    r = iv_rank(0.15, closes)
    assert r.status == "ok"
    assert r.sessions == 20
    # rank = (0.15 − 0.10) / (0.29 − 0.10) = 26.32 %; five closes (0.10 … 0.14) are below.
    assert r.iv_rank == pytest.approx(100 * 0.05 / 0.19, abs=0.01)
    assert r.iv_percentile == 25.0
    assert (r.low, r.high) == (0.10, pytest.approx(0.29))
    assert iv_rank(0.15, closes[:19]).status == "insufficient_history"
    assert iv_rank(0.15, closes[:19]).iv_rank is None
    # Only the last 252 sessions count.
    long = [0.50] * 10 + closes * 13  # 270 values, the ten 0.50s are outside the window
    assert iv_rank(0.29, long).iv_rank == 100.0
    assert iv_rank(0.40, closes).iv_rank == pytest.approx(100 * 0.30 / 0.19, abs=0.01)
    assert iv_rank(float("nan"), closes).status == "insufficient_history"
    assert np.isfinite(iv_rank(0.2, [0.2] * 25).iv_rank)  # type: ignore[arg-type]
