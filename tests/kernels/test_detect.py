"""Smart-money detector kernels on hand-built chain tables (the rules of kernels/detect.py).

Every test builds a tiny ``ChainState`` from a synthetic universe (as ``app/warmup.py`` does) and
writes the wire state (``q``), the bar-end greeks (``f``) and the closed bars (``bars``) directly,
then runs the detectors exactly as ``SmartMoneyDetector.on_bar`` does. Nothing is priced: the
greeks are whatever the test writes, so each rule is checked against the definition in the
kernel's docstring and not against a model's rounding.

Default contract (unless a test changes it): OI 2 000 lots, 100 lots traded every 5 s bar,
premium ₹100 (bid 99.95 / ask 100.05), Δ ±0.50, Γ 0.0005 per point (0.1 per 1 % at 20 000),
θ −5/day (burn 0.05/day), 7 days to expiry — nothing fires on it.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from smartflow.analytics.detectors import (
    BUILDUP_NAMES,
    CONTROL_NAMES,
    VERDICT_NAMES,
    XV_NAMES,
    SmartMoneyDetector,
    params_array,
    trap_names,
)
from smartflow.chain.state import ChainState
from smartflow.config import DetectorConfig, ModelConfig, SmartMoneyConfig, decode
from smartflow.core.messages import SmartMoneySignal
from smartflow.core.timeutil import expiry_ns, ns_at_ist
from smartflow.instruments.master import Instrument
from smartflow.instruments.universe import ChainUniverse
from smartflow.kernels import (
    battlefield as KB,
    chain as kc,
    detect_contract as KC,
    layout as L,
    signal as KS,
)


NS = 1_000_000_000
BAR_S = 5
LOT = 50
SPOT = 20_000.0
EXPIRY = dt.date(2030, 1, 14)
T0 = ns_at_ist(dt.date(2030, 1, 7), dt.time(10, 0))
P = params_array(SmartMoneyConfig(), BAR_S)
TICK = 0.05
WARM_BARS = 36  # a 24-bar horizon, then the 12 samples a contract's noise needs


# ---------------------------------------------------------------------------------------------
# A hand-filled chain
# ---------------------------------------------------------------------------------------------


def _universe(strikes: tuple[int, ...], lot: int) -> ChainUniverse:
    index = Instrument("1", "IDX", "LAB", "INDEX", "NSE", 1, None, 0, 1, 0)
    fut = Instrument("2", "LABFUT", "LAB", "FUT", "NFO", 2, EXPIRY, 0, lot, 10)
    calls, puts = {}, {}
    for i, k in enumerate(strikes):
        kp = k * 100
        calls[kp] = Instrument(str(100 + i), f"LAB{k}CE", "LAB", "CE", "NFO", 2, EXPIRY, kp, lot, 5)
        puts[kp] = Instrument(str(200 + i), f"LAB{k}PE", "LAB", "PE", "NFO", 2, EXPIRY, kp, lot, 5)
    return ChainUniverse(
        root="LAB",
        expiry=EXPIRY,
        expiry_ns=expiry_ns(EXPIRY),
        segment="NFO",
        exchange_type=2,
        index=index,
        future=fut,
        strikes_paise=sorted(k * 100 for k in strikes),
        calls=calls,
        puts=puts,
        lot_size=lot,
        tick_paise=5,
    )


class Lab:
    """A chain whose tables the test writes, and the detector that reads them.

    ``bar({row: {...}})`` closes one bar: every option trades its default volume unless told
    otherwise, and a row given ``oi=`` gets an OI update inside the bar with the same bookkeeping
    ``kernels/chain.apply_frames`` does (previous OI, the reference interval's LTP and volume).
    Volumes and OI are in lots; the tables hold units (lots × lot size).
    """

    def __init__(
        self,
        strikes: tuple[int, ...] = (20_000,),
        thresholds: SmartMoneyConfig | None = None,
        lot: int = LOT,
        warm: bool = True,
    ) -> None:
        self.lot = lot
        self.chain = c = ChainState(_universe(strikes, lot), ModelConfig())
        self.det = SmartMoneyDetector(c, thresholds or SmartMoneyConfig(), BAR_S)
        c.st[kc.S_SPOT] = SPOT
        c.st[kc.S_FORWARD] = SPOT
        self.seq = -1
        self.volume: dict[int, float] = {}
        for row in c.option_rows.tolist():
            is_call = c.q[row, L.Q_KIND] == L.KIND_CALL
            q = c.q[row]
            q[L.Q_TICKS] = 1
            q[L.Q_FIRST_SEEN_NS] = T0
            q[L.Q_OI] = q[L.Q_OI_PREV] = 2_000 * lot
            q[L.Q_LTP] = 10_000
            q[L.Q_BID_PX] = 9_995
            q[L.Q_ASK_PX] = 10_005
            q[L.Q_OI_LAST_NS] = T0
            q[L.Q_OI_LAST_LTP] = 10_000
            q[L.Q_OI_LAST_VOL] = 0
            f = c.f[row]
            f[L.F_DELTA] = 0.5 if is_call else -0.5
            f[L.F_GAMMA] = 0.0005
            f[L.F_THETA] = -5.0
            f[L.F_VEGA] = 10.0
            f[L.F_IV] = 0.15
            f[L.F_IV_PRICE] = 100.0
            f[L.F_GREEKS_T] = 7.0 / 365.0
            self.volume[row] = 100.0
        if warm:
            # Three quiet minutes: a horizon of history and its noise samples (nothing moves, so
            # every contract's noise is the floor: one lot, one tick). The clock of the tests
            # starts after it.
            self.quiet(WARM_BARS)
            for row in c.option_rows.tolist():
                c.q[row, L.Q_FIRST_SEEN_NS] = self.end_ns
                c.q[row, L.Q_OI_LAST_NS] = self.end_ns

    def row(self, strike: int = 20_000, side: str = "CE") -> int:
        u = self.chain.universe
        inst = (u.calls if side == "CE" else u.puts)[strike * 100]
        return self.chain.row_by_token[inst.token]

    @property
    def end_ns(self) -> int:
        """End of the last closed bar."""
        return T0 + (self.seq + 1) * BAR_S * NS

    def bar(self, changes: dict[int, dict[str, Any]] | None = None) -> SmartMoneySignal:
        """Close one bar; ``changes[row]`` may set volume, close, high, low, cvd, oi (lots),
        delta, gamma, theta, premium (F_IV_PRICE), dte (days), bid, ask, lots_oi_silent."""
        c = self.chain
        self.seq += 1
        end = T0 + (self.seq + 1) * BAR_S * NS
        slot = self.seq % L.RING
        changes = changes or {}
        for row in c.option_rows.tolist():
            ch = changes.get(row, {})
            q, f, b = c.q[row], c.f[row], c.bars[row]
            vol_lots = float(ch.get("volume", self.volume[row]))
            q[L.Q_VOLUME] += int(vol_lots * self.lot)
            close = float(ch.get("close", q[L.Q_LTP] / 100))
            q[L.Q_LTP] = round(close * 100)
            if "bid" in ch:
                q[L.Q_BID_PX] = round(ch["bid"] * 100)
            if "ask" in ch:
                q[L.Q_ASK_PX] = round(ch["ask"] * 100)
            for key, col in (
                ("delta", L.F_DELTA),
                ("gamma", L.F_GAMMA),
                ("theta", L.F_THETA),
                ("premium", L.F_IV_PRICE),
            ):
                if key in ch:
                    f[col] = ch[key]
            if "dte" in ch:
                f[L.F_GREEKS_T] = ch["dte"] / 365.0
            updates = 0
            if "oi" in ch:
                self._oi_update(row, round(ch["oi"] * self.lot), end - NS // 1000)
                updates = 1
            if "oi_units" in ch:
                self._oi_update(row, int(ch["oi_units"]), end - NS // 1000)
                updates = 1
            b[L.B_VOLUME, slot] = vol_lots * self.lot
            b[L.B_OI, slot] = float(q[L.Q_OI])
            b[L.B_CLOSE, slot] = close
            b[L.B_HIGH, slot] = float(ch.get("high", close))
            b[L.B_LOW, slot] = float(ch.get("low", close))
            b[L.B_CVD, slot] = float(ch.get("cvd", 0.0)) * self.lot
            f[L.F_CVD] += b[L.B_CVD, slot]
            b[L.B_OI_UPDATES, slot] = updates
            b[L.B_DELTA, slot] = f[L.F_DELTA]
            b[L.B_GAMMA, slot] = f[L.F_GAMMA]
            b[L.B_THETA, slot] = f[L.F_THETA]
            b[L.B_IV, slot] = f[L.F_IV]
            b[L.B_BID, slot] = q[L.Q_BID_PX] / 100
            b[L.B_ASK, slot] = q[L.Q_ASK_PX] / 100
        return self.det.on_bar(end, self.seq)

    def _oi_update(self, row: int, oi_units: int, at_ns: int) -> None:
        """What ``apply_frames`` does when a SNAP_QUOTE carries a new OI."""
        q = self.chain.q[row]
        q[L.Q_OI_PREV] = q[L.Q_OI]
        q[L.Q_OI_CHANGED_NS] = at_ns
        q[L.Q_OI_REF_NS] = q[L.Q_OI_LAST_NS]
        q[L.Q_OI_REF_LTP] = q[L.Q_OI_LAST_LTP]
        q[L.Q_OI_REF_VOL] = q[L.Q_OI_LAST_VOL]
        q[L.Q_OI_LAST_NS] = at_ns
        q[L.Q_OI_LAST_LTP] = q[L.Q_LTP]
        q[L.Q_OI_LAST_VOL] = q[L.Q_VOLUME]
        q[L.Q_OI] = oi_units

    def quiet(self, n: int, changes: dict[int, dict[str, Any]] | None = None) -> None:
        for _ in range(n):
            self.bar(changes)

    def di(self, row: int, col: int) -> int:
        return int(self.det.di[row, col])

    def df(self, row: int, col: int) -> float:
        return float(self.det.df[row, col])

    def states(self, row: int) -> dict[str, Any]:
        return self.det.contract_states(row)


# ---------------------------------------------------------------------------------------------
# OI build-up classifier (pure)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("d_oi", "d_px", "state"),
    [
        (+40.0, +2.0, "LONG_BUILD_UP"),  # price ↑ OI ↑
        (+40.0, -2.0, "SHORT_BUILD_UP"),  # price ↓ OI ↑
        (-40.0, +2.0, "SHORT_COVERING"),  # price ↑ OI ↓
        (-40.0, -2.0, "LONG_UNWINDING"),  # price ↓ OI ↓
    ],
)
def test_classify_buildup_four_states(d_oi: float, d_px: float, state: str) -> None:
    code = KC.classify_buildup(d_oi, d_px, True, True, 500.0)
    assert BUILDUP_NAMES[code] == state


@pytest.mark.parametrize(
    ("oi_sig", "px_sig", "volume", "why"),
    [
        (False, True, 500.0, "OI change within the contract's noise or under a floor"),
        (True, False, 500.0, "premium move within its noise or under a floor"),
        (True, True, 39.0, "39 traded cannot move OI by 40"),
    ],
)
def test_classify_buildup_none(oi_sig: bool, px_sig: bool, volume: float, why: str) -> None:
    assert KC.classify_buildup(40.0, 2.0, oi_sig, px_sig, volume) == KC.BUILDUP_NONE, why
    assert KC.classify_buildup(-40.0, -2.0, oi_sig, px_sig, volume) == KC.BUILDUP_NONE, why


def test_noise_z_has_a_floor() -> None:
    assert KC.noise_z(40.0, 10.0, 1.0) == 4.0
    assert KC.noise_z(40.0, 0.2, 1.0) == 40.0  # never less than the floor (one lot)
    assert math.isnan(KC.noise_z(math.nan, 10.0, 1.0))


def test_before_its_noise_is_known_a_contract_is_judged_on_the_prior() -> None:
    """1 % of OI and of premium a horizon: 4 % of OI and a 1 % premium move count."""
    for oi, close, state in ((2_080.0, 101.0, "LONG_BUILD_UP"), (2_070.0, 101.0, "NONE")):
        lab = Lab(warm=False)
        ce = lab.row()
        lab.quiet(5)
        lab.bar({ce: {"oi": oi, "close": close}})
        assert lab.states(ce)["oi_buildup"] == state, oi
        assert lab.df(ce, L.DF_OI_Z) == pytest.approx((oi - 2_000) / 20)


def test_buildup_confidence_is_monotone_and_bounded() -> None:
    grid = [0.0, 1.0, 4.0, 8.0, 20.0]
    rates = [0.0, 0.5, 1.0, 2.0, 4.0]
    for a in grid:
        for b in grid:
            for r in rates:
                c = KC.buildup_confidence(a, b, r, P)
                assert 0.0 <= c <= 1.0
    for i in range(len(grid) - 1):
        lo, hi = grid[i], grid[i + 1]
        assert KC.buildup_confidence(hi, 1.0, 1.0, P) > KC.buildup_confidence(lo, 1.0, 1.0, P)
        assert KC.buildup_confidence(1.0, hi, 1.0, P) > KC.buildup_confidence(1.0, lo, 1.0, P)
    assert KC.buildup_confidence(4.0, 1.0, 2.0, P) == KC.buildup_confidence(4.0, 1.0, 9.0, P)
    assert KC.buildup_confidence(4.0, 1.0, math.nan, P) == KC.buildup_confidence(4.0, 1.0, 0.0, P)
    # The documented formula: z's in units of their thresholds (4 and 1 by default).
    expected = 0.4 * (1 - math.exp(-8 / 4)) + 0.35 * (1 - math.exp(-1.5)) + 0.25 * 0.75
    assert KC.buildup_confidence(8.0, 1.5, 1.5, P) == pytest.approx(expected)


# ---------------------------------------------------------------------------------------------
# Volume state
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("volume", "state"),
    [
        (149.0, "NORMAL"),
        (150.0, "SPIKE"),
        (249.0, "SPIKE"),
        (250.0, "BURST"),
        (349.0, "BURST"),
        (350.0, "AGGRESSIVE"),
    ],
)
def test_volume_state_boundaries(volume: float, state: str) -> None:
    lab = Lab()  # every earlier bar traded 100 lots: the baseline is 100
    ce = lab.row()
    assert lab.df(ce, L.DF_VOL_BASE) == pytest.approx(100 * LOT)
    lab.bar({ce: {"volume": volume}})
    assert lab.df(ce, L.DF_VOL_RATIO) == pytest.approx(volume / 100)
    assert lab.states(ce)["volume_state"] == state


def test_volume_state_needs_min_baseline_bars() -> None:
    lab = Lab(warm=False)
    ce = lab.row()
    lab.quiet(2)
    lab.bar({ce: {"volume": 1_000.0}})  # 10x, but only 2 earlier bars (min_baseline_bars = 3)
    assert lab.states(ce)["volume_state"] == "NORMAL"
    assert math.isnan(lab.df(ce, L.DF_VOL_RATIO))
    lab.bar({ce: {"volume": 1_000.0}})  # now 3 earlier bars: 100, 100, 1000 → mean 400
    assert lab.df(ce, L.DF_VOL_RATIO) == pytest.approx(2.5)
    assert lab.states(ce)["volume_state"] == "BURST"


def test_volume_state_zero_baseline_is_normal() -> None:
    lab = Lab(warm=False)
    ce = lab.row()
    lab.quiet(5, {ce: {"volume": 0.0}})
    lab.bar({ce: {"volume": 50.0}})
    assert math.isnan(lab.df(ce, L.DF_VOL_RATIO))
    assert lab.states(ce)["volume_state"] == "NORMAL"


def test_a_sustained_surge_reads_spike_or_more_for_minutes() -> None:
    """The baseline remembers what normal was: a 4x surge is not its own normal after 20 s."""
    lab = Lab()
    ce = lab.row()
    states = []
    for _ in range(60):  # five minutes at 4x
        lab.bar({ce: {"volume": 400.0}})
        states.append(lab.states(ce)["volume_state"])
    assert all(st in ("SPIKE", "BURST", "AGGRESSIVE") for st in states)
    assert states[:12] == ["AGGRESSIVE"] * 12  # the first minute
    # Each surge bar enters the baseline at 1.5x its value before: it rises, slowly.
    assert 100 * LOT < lab.df(ce, L.DF_VOL_BASE) < 200 * LOT


def test_volume_aggression_and_trend() -> None:
    lab = Lab()
    ce, pe = lab.row(), lab.row(side="PE")
    lab.quiet(6)
    # 3.5x, all of it on one side of the book → 1.0; the same spike crossing both ways → 0.5.
    lab.bar({ce: {"volume": 350.0, "cvd": 350.0}, pe: {"volume": 350.0, "cvd": 0.0}})
    assert lab.df(ce, L.DF_AGGRESSION) == pytest.approx(1.0)
    assert lab.df(pe, L.DF_AGGRESSION) == pytest.approx(0.5)
    lab2 = Lab()
    ce = lab2.row()
    for v in (100.0, 110.0, 120.0, 130.0, 140.0):
        lab2.bar({ce: {"volume": v}})
    assert lab2.di(ce, L.DI_VOL_TREND) == 1
    for v in (140.0, 130.0, 120.0, 110.0, 100.0):
        lab2.bar({ce: {"volume": v}})
    assert lab2.di(ce, L.DI_VOL_TREND) == -1
    lab2.quiet(5)
    assert lab2.di(ce, L.DI_VOL_TREND) == 0


# ---------------------------------------------------------------------------------------------
# OI build-up through the detector: update interval, persistence, staleness
# ---------------------------------------------------------------------------------------------


def test_buildup_reads_the_horizon_in_one_print_or_thirty() -> None:
    """The same +5 % OI over two minutes classifies alike as one print or as one-lot steps."""
    readings = []
    for steps in (1, 20):
        lab = Lab()
        ce = lab.row()
        per = 100.0 / steps  # 100 lots (+5 %) in all, premium 100 → 104
        oi = 2_000.0
        for k in range(24):
            ch: dict[str, float] = {"close": 100.0 + 4.0 * (k + 1) / 24}
            if k % (24 // steps) == 24 // steps - 1 and oi < 2_100.0:
                oi += per
                ch["oi"] = oi
            lab.bar({ce: ch})
        assert lab.states(ce)["oi_buildup"] == "LONG_BUILD_UP", steps
        assert lab.df(ce, L.DF_OI_CHG_PCT) == pytest.approx(5.0)
        assert lab.df(ce, L.DF_PX_CHG_PCT) == pytest.approx(4.0)
        assert lab.di(ce, L.DI_OI_DIR) == 1
        readings.append(lab.df(ce, L.DF_BUILDUP_CONF))
    assert readings[0] == pytest.approx(readings[1])


def test_noise_sized_oi_change_is_not_a_buildup() -> None:
    """A contract whose OI wanders 20 lots every two minutes: 25 lots is noise, 100 is not."""
    lab = Lab()
    ce = lab.row()
    oi = 2_000.0
    for k in range(240):  # twenty minutes: an OI print a minute, +20, +20, −40 lots
        ch: dict[str, float] = {"close": 100.0 + (1.0 if (k // 12) % 2 == 0 else -1.0)}
        if k % 12 == 0:
            oi += -40.0 if (k // 12) % 3 == 2 else 20.0
            ch["oi"] = oi
        lab.bar({ce: ch})
    assert 10 < lab.df(ce, L.DF_OI_NOISE) / LOT < 40
    for _ in range(24):
        lab.bar({ce: {"close": 104.0}})
    lab.bar({ce: {"oi": oi + 25.0, "close": 104.0}})  # 1.25 % but within its noise
    assert lab.states(ce)["oi_buildup"] == "NONE"
    assert lab.di(ce, L.DI_OI_DIR) == 0
    lab.bar({ce: {"oi": oi + 200.0, "close": 108.0}})  # 10 %: far past it
    assert lab.states(ce)["oi_buildup"] == "LONG_BUILD_UP"


def test_stale_oi_while_trading_reports_stale_not_flat() -> None:
    lab = Lab()
    ce, pe = lab.row(), lab.row(side="PE")
    lab.quiet(3, {pe: {"volume": 0.0}})
    lab.bar({ce: {"close": 103.0, "oi": 2_100.0}, pe: {"volume": 0.0}})
    assert lab.states(ce)["oi_buildup"] == "LONG_BUILD_UP"
    changed_ns = lab.end_ns - NS // 1000  # the print's receive time
    # 180 s (oi_stale_s) of trading without an OI print: the reading lasts while the print is
    # inside the two-minute horizon, then NONE — not yet stale...
    while (lab.end_ns + BAR_S * NS - changed_ns) / NS <= 180:
        lab.bar({pe: {"volume": 0.0}})
        inside = (lab.end_ns - changed_ns) / NS < 120
        assert lab.states(ce)["oi_buildup"] == ("LONG_BUILD_UP" if inside else "NONE")
        assert not lab.states(ce)["oi_stale"]
    # ...then stale: NONE, flagged, no OI direction — not "OI flat".
    lab.bar({pe: {"volume": 0.0}})
    assert (lab.end_ns - changed_ns) / NS > 180
    st = lab.states(ce)
    assert st["oi_stale"] is True
    assert st["oi_buildup"] == "NONE"
    assert lab.di(ce, L.DI_OI_DIR) == 0
    assert lab.df(ce, L.DF_BUILDUP_CONF) == 0.0
    # A contract whose OI never moved but which has not traded is not stale (nothing to judge).
    assert lab.states(pe)["oi_stale"] is False
    # The next print clears the flag.
    lab.bar({ce: {"close": 104.0, "oi": 2_150.0}})
    assert lab.states(ce)["oi_stale"] is False
    assert lab.states(ce)["oi_buildup"] == "LONG_BUILD_UP"


def test_never_changed_oi_goes_stale_from_first_sight() -> None:
    lab = Lab()
    ce = lab.row()
    for _ in range(36):  # 180 s after first sight at T0: not yet (strictly more is needed)
        lab.bar()
    assert not lab.states(ce)["oi_stale"]
    lab.bar()
    assert lab.states(ce)["oi_stale"]


# ---------------------------------------------------------------------------------------------
# Fresh positions
# ---------------------------------------------------------------------------------------------


def test_fresh_aggressive_entry_at_the_thresholds() -> None:
    lab = Lab()
    ce = lab.row()
    lab.quiet(10)
    # OI +10 % in this bar's print, volume 2x the average: both thresholds met exactly.
    sig = lab.bar({ce: {"volume": 200.0, "oi": 2_200.0, "close": 101.0}})
    assert lab.states(ce)["fresh_position"] == "AGGRESSIVE_ENTRY"
    assert lab.df(ce, L.DF_FRESH_OI_JUMP) == pytest.approx(0.1)
    assert lab.df(ce, L.DF_FRESH_VOL_RATIO) == pytest.approx(2.0)
    # strength = ½·min(1, jump / 2·threshold) + ½·min(1, ratio / 2·surge)
    assert lab.df(ce, L.DF_FRESH_STRENGTH) == pytest.approx(0.5 * 0.5 + 0.5 * 0.5)
    # 1-σ premium move over the 300 s horizon: |Δ|·S·σ·√(T/year)
    move = 0.5 * SPOT * 0.15 * math.sqrt(300 / (365 * 86400))
    assert lab.df(ce, L.DF_EXPECTED_MOVE) == pytest.approx(move)
    assert sig.fresh_position_detected


@pytest.mark.parametrize(
    ("volume", "oi", "why"),
    [
        (199.0, 2_200.0, "volume 1.99x < 2x surge"),
        (400.0, 2_199.0, "OI +9.95 % < 10 % jump (and too big for an adjustment)"),
    ],
)
def test_fresh_aggressive_entry_needs_both(volume: float, oi: float, why: str) -> None:
    lab = Lab()
    ce = lab.row()
    lab.quiet(10)
    lab.bar({ce: {"volume": volume, "oi": oi}})
    assert lab.states(ce)["fresh_position"] is None, why


def test_fresh_first_entry() -> None:
    lab = Lab(warm=False)
    ce, pe = lab.row(), lab.row(side="PE")
    lab.quiet(5, {ce: {"volume": 0.0}, pe: {"volume": 0.0}})
    # First trades after (at least min_baseline_bars of) silence, OI rises → FIRST_ENTRY.
    lab.bar({ce: {"volume": 30.0, "oi": 2_030.0}, pe: {"volume": 30.0}})
    assert lab.states(ce)["fresh_position"] == "FIRST_ENTRY"
    # Trading without OI rising is not a first *entry*.
    assert lab.states(pe)["fresh_position"] is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"volume": 250.0}, "ADJUSTMENT"),  # surge, no OI print in the bar
        ({"volume": 250.0, "oi": 2_080.0}, "ADJUSTMENT"),  # surge, OI +4 % < half the jump
        ({"volume": 250.0, "oi": 2_120.0}, None),  # surge, OI +6 %: neither
        ({"volume": 190.0}, None),  # no surge
    ],
)
def test_fresh_adjustment(change: dict[str, float], expected: str | None) -> None:
    lab = Lab()
    ce = lab.row()
    lab.quiet(10)
    lab.bar({ce: change})
    assert lab.states(ce)["fresh_position"] == expected


def test_fresh_position_expires_after_max_age_and_outranks_adjustments() -> None:
    lab = Lab()
    ce = lab.row()
    lab.quiet(10)
    lab.bar({ce: {"volume": 300.0, "oi": 2_400.0}})
    assert lab.states(ce)["fresh_position"] == "AGGRESSIVE_ENTRY"
    detected = lab.end_ns
    assert lab.di(ce, L.DI_FRESH_NS) == detected
    # A later volume surge (an adjustment) does not replace the live aggressive entry.
    lab.quiet(10)
    lab.bar({ce: {"volume": 400.0}})
    assert lab.states(ce)["fresh_position"] == "AGGRESSIVE_ENTRY"
    assert lab.di(ce, L.DI_FRESH_NS) == detected
    while lab.end_ns + BAR_S * NS - detected <= 300 * NS:
        lab.bar()
        assert lab.states(ce)["fresh_position"] == "AGGRESSIVE_ENTRY"
    assert lab.end_ns - detected == 300 * NS  # still live at exactly the max age
    lab.bar()
    assert lab.states(ce)["fresh_position"] is None
    assert lab.df(ce, L.DF_FRESH_STRENGTH) == 0.0


def test_a_fresh_positions_direction_is_read_once_at_detection() -> None:
    """Bought on heavy one-sided volume: it votes bullish for its life, whatever later bars do."""
    lab = Lab()
    ce = lab.row()
    sig = lab.bar({ce: {"volume": 300.0, "oi": 2_400.0, "cvd": 200.0}})
    assert lab.states(ce)["fresh_position"] == "AGGRESSIVE_ENTRY"
    assert lab.di(ce, L.DI_FRESH_DIR) == 1
    assert sig.recommendation == "BUY_CALL"
    for cvd in (-150.0, 80.0, -300.0):  # later bars lean either way: the vote does not flip
        sig = lab.bar({ce: {"volume": 150.0, "cvd": cvd}})
        assert sig.recommendation == "BUY_CALL"
    # A fresh position sold into: bearish, on the same side.
    lab2 = Lab()
    ce2 = lab2.row()
    assert lab2.bar({ce2: {"volume": 300.0, "oi": 2_400.0, "cvd": -200.0}}).recommendation == (
        "BUY_PUT"
    )


def test_scalping_profile_shortens_fresh_lifetime() -> None:
    lab = Lab(thresholds=DetectorConfig(profile="scalping").thresholds())
    ce = lab.row()
    lab.quiet(10)
    # The scalping profile's 3 % jump is enough here.
    lab.bar({ce: {"volume": 300.0, "oi": 2_060.0}})
    assert lab.states(ce)["fresh_position"] == "AGGRESSIVE_ENTRY"
    lab.quiet(12)  # 60 s
    assert lab.states(ce)["fresh_position"] == "AGGRESSIVE_ENTRY"
    lab.bar()
    assert lab.states(ce)["fresh_position"] is None


# ---------------------------------------------------------------------------------------------
# Traps
# ---------------------------------------------------------------------------------------------


def _trap_lab(**row_change: Any) -> tuple[Lab, int]:
    """Ten quiet bars, then one bar with ``row_change`` on the ATM call."""
    lab = Lab()
    ce = lab.row()
    lab.quiet(10)
    lab.bar({ce: row_change})
    return lab, ce


def _low_oi_lab(oi_lots: float, volume: float) -> tuple[Lab, int]:
    lab = Lab()
    ce = lab.row()
    lab.bar({ce: {"oi": oi_lots}})
    lab.quiet(10)
    lab.bar({ce: {"volume": volume}})
    return lab, ce


@pytest.mark.parametrize(
    ("oi_lots", "volume", "fires", "prob"),
    [
        # The archetypal trap blocks on its own: its probability starts above the 0.75 line.
        (49.0, 300.0, True, 0.8),  # OI < 50 lots, volume 3x: the weakest scalper trap
        (49.0, 600.0, True, 0.95),  # 6x: the strongest
        (50.0, 600.0, False, 0.0),  # OI not below the threshold
        (49.0, 290.0, False, 0.0),  # volume 2.9x < 3x
    ],
)
def test_scalper_trap(oi_lots: float, volume: float, fires: bool, prob: float) -> None:
    lab, ce = _low_oi_lab(oi_lots, volume)
    assert lab.df(ce, L.DF_OI_LOTS) == pytest.approx(oi_lots)  # units ÷ lot size
    assert ("SCALPER_TRAP" in lab.states(ce)["trap_types"]) is fires
    assert lab.df(ce, L.DF_TRAP_PROB) == pytest.approx(prob)


def test_scalper_trap_lasts_as_long_as_its_cause() -> None:
    """Eleven minutes of 6x volume against 20 lots of OI: blocked all along, then released."""
    lab = Lab()
    ce = lab.row()
    lab.bar({ce: {"oi": 20.0}})
    lab.quiet(40)  # the OI drop is old news; the contract trades its usual 100 lots a bar
    for _ in range(132):
        lab.bar({ce: {"volume": 600.0}})
        st = lab.states(ce)
        assert "SCALPER_TRAP" in st["trap_types"]
        assert st["can_trade"] is False
    # The surge ends: a horizon later, the trap is gone with it.
    lab.quiet(25)
    assert "SCALPER_TRAP" not in lab.states(ce)["trap_types"]


def test_scalper_trap_counts_lots_not_units() -> None:
    # 2 450 units is 49 lots of 50: a thin contract, however big the raw number looks.
    lab = Lab()
    ce = lab.row()
    lab.bar({ce: {"oi_units": 2_450}})
    lab.quiet(10)
    lab.bar({ce: {"volume": 400.0}})
    assert "SCALPER_TRAP" in lab.states(ce)["trap_types"]


@pytest.mark.parametrize(
    ("gamma", "volume", "fires"),
    [
        (0.019 / 200, 150.0, True),  # Γ·S·1 % = 0.019 < 0.02, volume at the spike threshold
        (0.021 / 200, 150.0, False),  # 0.021 per 1 %: not flat
        (0.019 / 200, 149.0, False),  # flat gamma but no volume spike
    ],
)
def test_noise_trap_gamma_per_one_percent(gamma: float, volume: float, fires: bool) -> None:
    lab, ce = _trap_lab(gamma=gamma, volume=volume)
    assert lab.df(ce, L.DF_GAMMA_1PCT) == pytest.approx(gamma * SPOT * 0.01)
    assert ("NOISE_TRAP" in lab.states(ce)["trap_types"]) is fires
    if fires:
        assert lab.df(ce, L.DF_TRAP_PROB) == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("theta", "dte", "fires", "prob"),
    [
        (-60.0, 1.0, True, 0.6 + 0.3 * 0.6 / 2.0),  # burn 0.6/day ≥ 0.5, DTE 1 < 2
        (-200.0, 0.5, True, 0.9),  # burn 2/day: the strongest
        (-50.0, 1.0, True, 0.6 + 0.3 * 0.5 / 2.0),  # burn exactly 0.5/day: inclusive
        (-60.0, 2.5, False, 0.0),  # DTE not below 2
        (-49.0, 1.0, False, 0.0),  # burn 0.49/day
    ],
)
def test_theta_crush_burn_and_dte(theta: float, dte: float, fires: bool, prob: float) -> None:
    lab, ce = _trap_lab(theta=theta, dte=dte)
    assert lab.df(ce, L.DF_THETA_BURN) == pytest.approx(abs(theta) / 100.0)
    assert lab.df(ce, L.DF_DTE) == pytest.approx(dte)
    assert ("THETA_CRUSH" in lab.states(ce)["trap_types"]) is fires
    assert lab.df(ce, L.DF_TRAP_PROB) == pytest.approx(prob)


def _reversal_lab(high: float, low: float, close: float, volume: float) -> tuple[Lab, int]:
    lab = Lab()
    ce = lab.row()
    lab.quiet(10, {ce: {"high": 101.0, "low": 99.0, "close": 100.0}})
    lab.bar({ce: {"high": high, "low": low, "close": close, "volume": volume}})
    return lab, ce


@pytest.mark.parametrize(
    ("high", "low", "close", "volume", "fires"),
    [
        (103.0, 100.0, 100.5, 250.0, True),  # new high, gave back 83 % of the range on a burst
        (100.0, 97.0, 99.5, 250.0, True),  # new low, bounced 83 %
        (103.0, 100.0, 102.0, 250.0, False),  # new high that held (gave back 33 %)
        (103.0, 100.0, 100.5, 249.0, False),  # failed push on less than burst volume (2.5x)
        (101.0, 99.5, 99.6, 250.0, False),  # no new extreme
        (101.15, 101.0, 101.02, 250.0, False),  # a 3-tick wiggle (< 4 ticks) is not a breakout
        (101.2, 101.0, 101.02, 250.0, True),  # 4 ticks is
    ],
)
def test_reversal_trap(high: float, low: float, close: float, volume: float, fires: bool) -> None:
    lab, ce = _reversal_lab(high, low, close, volume)
    assert ("REVERSAL_TRAP" in lab.states(ce)["trap_types"]) is fires
    if fires:
        assert lab.df(ce, L.DF_TRAP_PROB) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("change", "fires"),
    [
        ({"delta": 0.10, "oi": 99.0}, True),  # far OTM, OI < 2 × 50 lots
        ({"delta": 0.10, "oi": 100.0}, False),  # far OTM, OI ok, spread tight
        ({"delta": 0.10, "oi": 500.0, "bid": 0.80, "ask": 1.00}, True),  # spread 22 % of mid
        ({"delta": 0.10, "oi": 500.0, "bid": 0.90, "ask": 1.00}, False),  # spread 10.5 %
        ({"delta": 0.11, "oi": 99.0}, False),  # not far OTM
    ],
)
def test_liquidity_trap(change: dict[str, float], fires: bool) -> None:
    lab = Lab()
    ce = lab.row()
    lab.bar({ce: {"oi": change["oi"]}})
    lab.quiet(10)
    rest = {k: v for k, v in change.items() if k != "oi"}
    lab.bar({ce: rest})
    assert ("LIQUIDITY_TRAP" in lab.states(ce)["trap_types"]) is fires
    if fires:
        assert lab.df(ce, L.DF_TRAP_PROB) == pytest.approx(0.45)


def test_trap_probability_combines_and_auto_blocks() -> None:
    # One trap at p ≤ 0.75: reported, not blocking.
    lab, ce = _trap_lab(delta=0.05, bid=0.80, ask=1.00)
    assert lab.states(ce)["trap_types"] == ["LIQUIDITY_TRAP"]
    assert lab.di(ce, L.DI_BLOCKED) == 0
    # Two traps: blocked although 1 − (1 − 0.4)(1 − 0.45) = 0.67 < 0.75.
    lab, ce = _trap_lab(delta=0.05, bid=0.80, ask=1.00, gamma=0.01 / 200, volume=200.0)
    assert lab.states(ce)["trap_types"] == ["NOISE_TRAP", "LIQUIDITY_TRAP"]
    assert lab.df(ce, L.DF_TRAP_PROB) == pytest.approx(1 - 0.6 * 0.55)
    assert lab.di(ce, L.DI_BLOCKED) == 1
    assert lab.states(ce)["can_trade"] is False
    # One trap above 0.75: blocked.
    lab, ce = _low_oi_lab(40.0, 500.0)  # scalper at 5x: 0.8 + 0.15·(2/3) = 0.9
    assert lab.states(ce)["trap_types"] == ["SCALPER_TRAP"]
    assert lab.df(ce, L.DF_TRAP_PROB) == pytest.approx(0.8 + 0.15 * 2 / 3)
    assert lab.di(ce, L.DI_BLOCKED) == 1
    lab, ce = _low_oi_lab(40.0, 300.0)  # 3x: 0.8, the weakest scalper trap still blocks
    assert lab.df(ce, L.DF_TRAP_PROB) == pytest.approx(0.8)
    assert lab.di(ce, L.DI_BLOCKED) == 1
    # Everything quiet: no bits, probability 0.
    lab, ce = _trap_lab()
    assert lab.states(ce)["trap_types"] == []
    assert lab.df(ce, L.DF_TRAP_PROB) == 0.0


def test_trap_names_cover_every_bit() -> None:
    assert trap_names(0b11111) == [
        "SCALPER_TRAP",
        "NOISE_TRAP",
        "THETA_CRUSH",
        "REVERSAL_TRAP",
        "LIQUIDITY_TRAP",
    ]
    assert trap_names(KC.TRAP_THETA | KC.TRAP_SCALPER) == ["SCALPER_TRAP", "THETA_CRUSH"]


# ---------------------------------------------------------------------------------------------
# Cross-validation (OI × greeks × volume)
# ---------------------------------------------------------------------------------------------


def test_pattern_verdicts_are_the_seeds_table() -> None:
    table = {
        KC.XV_SMART_ENTRY: (KC.VERDICT_PROCEED, 0.95),
        KC.XV_TRAP: (KC.VERDICT_BLOCK, 0.05),
        KC.XV_REVERSAL: (KC.VERDICT_CAUTION, 0.4),
        KC.XV_EXPLOSIVE: (KC.VERDICT_PROCEED, 0.9),
        KC.XV_THETA_TRAP: (KC.VERDICT_BLOCK, 0.1),
        KC.XV_NONE: (KC.VERDICT_CAUTION, 0.5),
    }
    for pattern, (verdict, quality) in table.items():
        assert KC.pattern_verdict(pattern) == (verdict, pytest.approx(quality))


def _xv_lab(side: str, delta: float, oi: float, volume: float = 110.0, **extra: Any) -> Lab:
    """Δ moves from ±0.50 to ``delta`` while an OI print moves OI 2 000 → ``oi`` lots."""
    lab = Lab()
    row = lab.row(side=side)
    lab.quiet(10)
    lab.bar({row: {"delta": delta, "oi": oi, "volume": volume, "close": 101.0, **extra}})
    return lab


@pytest.mark.parametrize(
    ("side", "delta", "oi", "volume", "pattern", "verdict"),
    [
        ("CE", 0.52, 2_020.0, 110.0, "SMART_ENTRY", "PROCEED"),  # Δ↑ OI↑ Vol↑
        ("CE", 0.52, 1_980.0, 110.0, "TRAP", "BLOCK"),  # Δ↑ OI↓ Vol↑
        ("CE", 0.48, 2_020.0, 110.0, "REVERSAL", "CAUTION"),  # Δ↓ OI↑ Vol↑
        # A put "gains delta" when it moves toward the money: −0.50 → −0.52.
        ("PE", -0.52, 2_020.0, 110.0, "SMART_ENTRY", "PROCEED"),
        ("PE", -0.48, 2_020.0, 110.0, "REVERSAL", "CAUTION"),
        ("PE", -0.52, 1_980.0, 110.0, "TRAP", "BLOCK"),
        # Volume below its average validates nothing.
        ("CE", 0.52, 2_020.0, 90.0, "NONE", "CAUTION"),
    ],
)
def test_cross_validation_patterns(
    side: str, delta: float, oi: float, volume: float, pattern: str, verdict: str
) -> None:
    lab = _xv_lab(side, delta, oi, volume)
    row = lab.row(side=side)
    assert XV_NAMES[lab.di(row, L.DI_XV_PATTERN)] == pattern
    assert VERDICT_NAMES[lab.di(row, L.DI_XV_VERDICT)] == verdict
    assert lab.states(row)["can_trade"] is (verdict != "BLOCK")


def test_theta_trap_and_trap_precedence() -> None:
    # Heavy burn with volume up: THETA_TRAP even though Δ↑ OI↑ Vol↑ would be a smart entry.
    lab = _xv_lab("CE", 0.52, 2_020.0, theta=-60.0)
    ce = lab.row()
    assert lab.di(ce, L.DI_XV_PATTERN) == KC.XV_THETA_TRAP
    assert lab.di(ce, L.DI_XV_VERDICT) == KC.VERDICT_BLOCK
    # TRAP (Δ↑ OI↓) is strongest of all.
    lab = _xv_lab("CE", 0.52, 1_980.0, theta=-60.0)
    assert lab.di(lab.row(), L.DI_XV_PATTERN) == KC.XV_TRAP


def test_explosive_needs_gamma_rise_and_a_live_aggressive_entry() -> None:
    lab = _xv_lab("CE", 0.52, 2_300.0, volume=300.0, gamma=0.0005 * 1.06)
    ce = lab.row()
    assert lab.states(ce)["fresh_position"] == "AGGRESSIVE_ENTRY"
    assert lab.df(ce, L.DF_GAMMA_CHG_PCT) == pytest.approx(6.0)
    assert lab.di(ce, L.DI_XV_PATTERN) == KC.XV_EXPLOSIVE
    assert KC.pattern_verdict(lab.di(ce, L.DI_XV_PATTERN))[0] == KC.VERDICT_PROCEED
    # Gamma up only 4 %: a smart entry, not explosive.
    lab = _xv_lab("CE", 0.52, 2_300.0, volume=300.0, gamma=0.0005 * 1.04)
    assert lab.di(lab.row(), L.DI_XV_PATTERN) == KC.XV_SMART_ENTRY


def test_signal_direction_rereads_delta_for_the_other_side() -> None:
    # A call losing delta while OI rises is a REVERSAL for a call buyer, but in a bearish signal
    # (writers adding calls as the underlying falls) it validates as a SMART_ENTRY.
    lab = _xv_lab("CE", 0.48, 2_020.0)
    ce = lab.row()
    assert lab.di(ce, L.DI_XV_PATTERN) == KC.XV_REVERSAL
    assert lab.det.signal_pattern(ce, +1) == KC.XV_REVERSAL
    assert lab.det.signal_pattern(ce, -1) == KC.XV_SMART_ENTRY


def test_noise_level_oi_change_is_not_a_direction() -> None:
    # OI 2 000 → 1 999.8 lots (−0.01 %): the build-up classifier rightly calls this nothing...
    lab = _xv_lab("CE", 0.52, 1_999.8)
    ce = lab.row()
    assert lab.states(ce)["oi_buildup"] == "NONE"
    # ...so the cross-validator must not call it "OI↓" and block a Δ↑ Vol↑ contract as a TRAP.
    assert lab.di(ce, L.DI_XV_PATTERN) != KC.XV_TRAP
    assert lab.states(ce)["can_trade"] is True


# ---------------------------------------------------------------------------------------------
# Battlefield (ATM ± 5 strikes)
# ---------------------------------------------------------------------------------------------

STRIKES = (19_950, 20_000, 20_050)


def _battle(
    ce_oi: float, pe_oi: float, ce_vol: float, pe_vol: float, ce_delta: float, pe_delta: float
) -> Lab:
    lab = Lab(strikes=STRIKES)
    calls = [lab.row(k, "CE") for k in STRIKES]
    puts = [lab.row(k, "PE") for k in STRIKES]
    first = {r: {"oi": ce_oi, "delta": ce_delta, "volume": ce_vol} for r in calls}
    first |= {r: {"oi": pe_oi, "delta": pe_delta, "volume": pe_vol} for r in puts}
    lab.bar(first)
    lab.quiet(11, {r: {"volume": ce_vol} for r in calls} | {r: {"volume": pe_vol} for r in puts})
    return lab


@pytest.mark.parametrize(
    ("args", "control"),
    [
        ((3_000, 2_000, 120, 80, 0.5, -0.5), "BULLISH_CONTROL"),  # 0.6 / 0.6 / 0.6
        ((2_000, 3_000, 80, 120, 0.5, -0.5), "BEARISH_CONTROL"),  # 0.4 / 0.4 / 0.4
        ((2_100, 1_900, 104, 96, 0.5, -0.5), "BALANCED"),  # 0.525 / 0.52 / 0.525
        ((3_000, 2_000, 80, 120, 0.5, -0.5), "NEUTRAL_CHOP"),  # OI says calls, volume puts
        # Call OI and volume dominate but the delta-weighted OI is in puts: no control.
        ((3_000, 2_000, 120, 80, 0.2, -0.8), "NEUTRAL_CHOP"),
    ],
)
def test_battlefield_controls(args: tuple[float, ...], control: str) -> None:
    ce_oi, pe_oi, ce_vol, pe_vol, ce_d, pe_d = args
    lab = _battle(ce_oi, pe_oi, ce_vol, pe_vol, ce_d, pe_d)
    b = lab.det.battle
    assert CONTROL_NAMES[int(b[0])] == control
    assert b[1] == pytest.approx(ce_oi / (ce_oi + pe_oi))  # CE OI share
    assert b[2] == pytest.approx(ce_vol / (ce_vol + pe_vol))  # CE volume share (window)
    skew = abs(ce_d) * ce_oi / (abs(ce_d) * ce_oi + abs(pe_d) * pe_oi)
    assert b[3] == pytest.approx(skew)  # share of delta-weighted OI held in calls
    assert lab.det.latest is not None
    assert lab.det.latest.market_control == control


def test_battlefield_volume_share_is_the_recent_window_and_war_intensity() -> None:
    lab = Lab(strikes=STRIKES, warm=False)
    calls = [lab.row(k, "CE") for k in STRIKES]
    puts = [lab.row(k, "PE") for k in STRIKES]
    # Eight old bars where calls traded 10x: outside the 12-bar window, so they do not count.
    lab.quiet(8, {r: {"volume": 1_000.0} for r in calls})
    steady = {r: {"volume": 120.0} for r in calls} | {r: {"volume": 80.0} for r in puts}
    lab.quiet(12, steady)
    b = lab.det.battle
    assert b[2] == pytest.approx(0.6)
    # War intensity = (1 − 2·|0.6 − 0.5|) × min(1, window volume ÷ baseline): the window trades
    # 100 lots per contract-bar against 550 before it (calls 1 000, puts 100).
    activity = (200 * 3 * 12 * LOT) / ((1_000 + 100) * 3 * 8 / (6 * 8) * 6 * 12 * LOT)
    assert activity == pytest.approx(100 / 550)
    assert b[4] == pytest.approx(0.8 * activity)
    # With a steady zone the activity factor is 1.
    lab2 = Lab(strikes=STRIKES, warm=False)
    lab2.quiet(20, steady)
    assert lab2.det.battle[4] == pytest.approx(0.8)
    assert lab2.det.battle[5] == 0  # CE OI share unchanged over the window: STABLE


def test_battlefield_trend_follows_the_ce_oi_share() -> None:
    lab = Lab(strikes=STRIKES)
    calls = [lab.row(k, "CE") for k in STRIKES]
    lab.quiet(12)
    lab.bar({r: {"oi": 2_400.0} for r in calls})  # CE share 0.5 → 0.545 within the window
    assert lab.det.battle[5] == 1


def test_control_of_thresholds_are_strict() -> None:
    thr = 0.55
    assert KB.control_of(0.5501, 0.5501, 0.5501, thr) == KB.CONTROL_BULLISH
    assert KB.control_of(0.55, 0.56, 0.56, thr) != KB.CONTROL_BULLISH
    assert KB.control_of(0.4499, 0.4499, 0.4499, thr) == KB.CONTROL_BEARISH
    assert KB.control_of(0.45, 0.44, 0.44, thr) != KB.CONTROL_BEARISH
    assert KB.control_of(0.54, 0.46, 0.5, thr) == KB.CONTROL_BALANCED
    assert KB.control_of(0.56, 0.5, 0.5, thr) == KB.CONTROL_CHOP


# ---------------------------------------------------------------------------------------------
# Profiles and overrides (the seed's SmartMoneyConfig)
# ---------------------------------------------------------------------------------------------

# Written out from seeds/phase4-integration-guide.md, "Configuration & Tuning".
SEED_DEFAULTS: dict[str, float] = {
    "volume_spike_threshold": 1.5,
    "volume_burst_threshold": 2.5,
    "volume_aggressive_threshold": 3.5,
    "trap_low_oi_threshold": 50,
    "trap_noise_gamma_threshold": 0.02,
    "trap_theta_aggressive_threshold": 0.5,
    "fresh_position_oi_jump": 0.1,
    "fresh_position_volume_surge": 2.0,
    "fresh_position_max_age_seconds": 300,
    "ce_pe_atm_range": 5.0,
    "ce_pe_control_threshold": 0.55,
}
SEED_PROFILES: dict[str, dict[str, float]] = {
    "default": {},
    "volatile": {
        "volume_spike_threshold": 1.3,
        "fresh_position_oi_jump": 0.05,
        "trap_low_oi_threshold": 100,
    },
    "calm": {
        "volume_spike_threshold": 2.0,
        "fresh_position_oi_jump": 0.15,
        "trap_low_oi_threshold": 30,
    },
    "scalping": {
        "volume_spike_threshold": 1.2,
        "fresh_position_oi_jump": 0.03,
        "trap_low_oi_threshold": 200,
        "fresh_position_max_age_seconds": 60,
    },
}


def test_defaults_are_the_seeds() -> None:
    t = msgspec.structs.asdict(SmartMoneyConfig())
    for name, value in SEED_DEFAULTS.items():
        assert t[name] == value, name


@pytest.mark.parametrize("profile", sorted(SEED_PROFILES))
def test_profile_is_exactly_the_seeds(profile: str) -> None:
    got = msgspec.structs.asdict(DetectorConfig(profile=profile).thresholds())
    expected = msgspec.structs.asdict(SmartMoneyConfig()) | SEED_PROFILES[profile]
    assert got == expected
    for name, value in (SEED_DEFAULTS | SEED_PROFILES[profile]).items():
        assert got[name] == value, name


def test_overrides_apply_on_top_of_the_profile_by_name() -> None:
    cfg = DetectorConfig(
        profile="scalping",
        overrides={"fresh_position_max_age_seconds": 120.0, "oi_stale_s": 90.0},
    )
    t = cfg.thresholds()
    assert t.fresh_position_max_age_seconds == 120.0  # the override beats the profile's 60
    assert t.volume_spike_threshold == 1.2  # the profile's, untouched
    assert t.oi_stale_s == 90.0  # a knob the seed does not have
    assert t.volume_burst_threshold == 2.5  # the default
    toml = b"""
[detectors]
profile = "calm"
[detectors.overrides]
volume_spike_threshold = 1.8
"""
    t2 = decode(toml).detectors.thresholds()
    assert t2.volume_spike_threshold == 1.8
    assert t2.fresh_position_oi_jump == 0.15
    with pytest.raises(ValueError, match="unknown threshold `volume_spike`"):
        DetectorConfig(overrides={"volume_spike": 2.0})
    with pytest.raises(ValueError, match=r"detectors\.overrides"):
        DetectorConfig(overrides={"volume_spike_threshold": -1.0})


def test_params_array_carries_every_threshold() -> None:
    t = DetectorConfig(profile="volatile", overrides={"reversal_lookback_bars": 4}).thresholds()
    p = params_array(t, 7)
    slots = {
        KC.P_VOLUME_SPIKE: t.volume_spike_threshold,
        KC.P_VOLUME_BURST: t.volume_burst_threshold,
        KC.P_VOLUME_AGGRESSIVE: t.volume_aggressive_threshold,
        KC.P_TRAP_LOW_OI: t.trap_low_oi_threshold,
        KC.P_TRAP_NOISE_GAMMA: t.trap_noise_gamma_threshold,
        KC.P_TRAP_THETA: t.trap_theta_aggressive_threshold,
        KC.P_FRESH_OI_JUMP: t.fresh_position_oi_jump,
        KC.P_FRESH_VOL_SURGE: t.fresh_position_volume_surge,
        KC.P_FRESH_MAX_AGE_S: t.fresh_position_max_age_seconds,
        KC.P_ATM_RANGE: t.ce_pe_atm_range,
        KC.P_CONTROL: t.ce_pe_control_threshold,
        KC.P_OI_STALE_S: t.oi_stale_s,
        KC.P_MIN_OI_PCT: t.buildup_min_oi_change_pct,
        KC.P_MIN_PX_PCT: t.buildup_min_price_change_pct,
        KC.P_VOL_ALPHA: 7 / t.volume_baseline_s,
        KC.P_MIN_BASELINE_BARS: t.min_baseline_bars,
        KC.P_BATTLE_BARS: t.battle_window_bars,
        KC.P_CRUSH_DTE: t.theta_crush_dte_days,
        KC.P_LIQ_DELTA: t.liquidity_max_delta,
        KC.P_LIQ_SPREAD_PCT: t.liquidity_max_spread_pct,
        KC.P_REVERSAL_RETRACE: t.reversal_retrace,
        KC.P_REVERSAL_LOOKBACK: 4,
        KC.P_EXPLOSIVE_GAMMA_PCT: t.explosive_gamma_rise_pct,
        KC.P_BLOCK_PROB: t.trap_block_probability,
        KC.P_BAR_SECONDS: 7,
        KC.P_REVERSAL_MIN_TICKS: t.reversal_min_range_ticks,
        KC.P_MIN_NET_VOTE: t.min_net_vote,
        KC.P_HORIZON_BARS: round(t.buildup_horizon_s / 7),
        KC.P_OI_Z: t.buildup_oi_z,
        KC.P_PX_Z: t.buildup_price_z,
        KC.P_MIN_OI_LOTS: t.buildup_min_oi_lots,
        KC.P_NOISE_ALPHA: 7 / t.noise_memory_s,
        KC.P_WARMUP_NOISE_PCT: t.warmup_noise_pct,
    }
    assert len(slots) == KC.NP
    for slot, value in slots.items():
        assert p[slot] == value, slot
    assert p[KC.P_VOLUME_SPIKE] == 1.3
    assert p[KC.P_TRAP_LOW_OI] == 100.0


def test_profile_thresholds_change_detection() -> None:
    # A 1.4x bar: a SPIKE for the volatile profile (1.3), NORMAL by default (1.5).
    for profile, state in (("volatile", "SPIKE"), ("default", "NORMAL"), ("calm", "NORMAL")):
        lab = Lab(thresholds=DetectorConfig(profile=profile).thresholds())
        ce = lab.row()
        lab.quiet(10)
        lab.bar({ce: {"volume": 140.0}})
        assert lab.states(ce)["volume_state"] == state, profile
    # 80 lots of OI with a 3x bar: a scalper trap under 'volatile' (100 lots), not by default.
    for profile, fires in (("volatile", True), ("default", False)):
        lab = Lab(thresholds=DetectorConfig(profile=profile).thresholds())
        ce = lab.row()
        lab.bar({ce: {"oi": 80.0}})
        lab.quiet(10)
        lab.bar({ce: {"volume": 300.0}})
        assert ("SCALPER_TRAP" in lab.states(ce)["trap_types"]) is fires, profile


def test_quiet_contract_fires_nothing() -> None:
    lab = Lab(strikes=STRIKES)
    lab.quiet(20)
    for row in lab.chain.option_rows.tolist():
        st = lab.states(row)
        assert st == {
            "oi_buildup": "NONE",
            "volume_state": "NORMAL",
            "fresh_position": None,
            "trap_types": [],
            "can_trade": True,
            "oi_stale": False,
        }
    sig = lab.det.latest
    assert sig is not None
    assert sig.recommendation == "NEUTRAL"
    assert np.all(lab.det.di[lab.chain.option_rows, L.DI_BLOCKED] == 0)


# ---------------------------------------------------------------------------------------------
# Signal assembly details found while testing
# ---------------------------------------------------------------------------------------------


def test_vote_evidence_oi_update_age_is_measured_at_the_bar_end() -> None:
    lab = Lab()
    ce = lab.row()
    lab.quiet(10)
    sig = lab.bar({ce: {"close": 103.0, "oi": 2_100.0}})  # printed 1 ms before the bar's end
    (vote,) = [e for e in sig.evidence if e.rule == "OI_BUILDUP"]
    assert vote.inputs["oi_update_age_s"] == 0.0
    sig = lab.bar()
    (vote,) = [e for e in sig.evidence if e.rule == "OI_BUILDUP"]
    assert vote.inputs["oi_update_age_s"] == 5.0


def test_avoid_reason_names_the_blocking_pattern() -> None:
    lab = Lab()
    ce, pe = lab.row(), lab.row(side="PE")
    lab.quiet(10)
    sig = lab.bar(
        {
            # The put: premium −2 %, OI +3 % → SHORT_BUILD_UP, bullish for the underlying.
            pe: {"close": 98.0, "oi": 2_060.0, "delta": -0.48, "volume": 110.0},
            # The call (the contract a BUY_CALL would trade): Δ↑, OI −1 %, Vol↑ → TRAP.
            ce: {"oi": 1_980.0, "delta": 0.52, "volume": 110.0},
        }
    )
    assert lab.states(ce)["oi_buildup"] == "NONE"
    assert lab.di(ce, L.DI_XV_PATTERN) == KC.XV_TRAP
    assert lab.det.signal_pattern(pe, +1) == KC.XV_SMART_ENTRY
    assert sig.recommendation == "AVOID"
    assert sig.option_type == "CE"
    assert sig.reason is not None
    assert "TRAP" in sig.reason


@settings(deadline=None)  # the first example compiles the kernel
@given(
    st.integers(min_value=-(10**7), max_value=10**7),
    st.integers(min_value=0, max_value=5),
    st.floats(min_value=-1.0, max_value=1.0),
)
def test_evidence_rounding_is_pythons_round(k: int, nd: int, wiggle: float) -> None:
    # Near-ties (k.5 at the last kept digit) are where rint(x·10ⁿ) and round(x, n) part ways.
    for x in (k / 10**nd + 0.5 / 10**nd, k / 10**nd + wiggle, wiggle * 1e-3):
        assert KS.round_display(x, 10.0**nd) == round(x, nd), (x, nd)
    assert math.isnan(KS.round_display(math.inf, 10.0))
    assert math.isnan(KS.round_display(math.nan, 10.0))


def test_vote_ranking_breaks_ties_by_row() -> None:
    # (row, direction, weight, source) as assemble's _votes writes them, rows ascending.
    votes = np.array(
        [
            [5, 1, 0.5, KS.SOURCE_BUILDUP],
            [7, 1, 0.9, KS.SOURCE_FRESH],
            [9, -1, 0.9, KS.SOURCE_BUILDUP],
            [11, 1, 0.2, KS.SOURCE_BUILDUP],
            [13, 1, 0.9, KS.SOURCE_BUILDUP],
            [15, 1, 0.1, KS.SOURCE_BUILDUP],
        ],
        dtype=np.float64,
    )
    sig_i = np.zeros(KS.NSI, np.int64)
    driver, source = KS._rank_votes(votes, votes.shape[0], 1, sig_i)
    # The strongest bullish voter; of the two at 0.9 the lower row.
    assert (driver, source) == (7, KS.SOURCE_FRESH)
    assert KS._rank_votes(votes, votes.shape[0], -1, sig_i)[0] == 9
    # Top five by weight, rows ascending on ties, whatever their direction.
    top = sig_i[KS.SI_TOP : KS.SI_TOP + sig_i[KS.SI_N_TOP]]
    assert [int(votes[i, KS.V_ROW]) for i in top] == [7, 9, 13, 5, 11]


@settings(deadline=None)  # the first example compiles the kernel
@given(
    centre=st.one_of(
        st.floats(18_000, 22_000),
        st.integers(360, 440).map(lambda k: k * 50 + 25.0),  # halfway between two strikes
        st.sampled_from([math.nan, 0.0, 10.0, 99_999.0]),
    ),
    from_forward=st.booleans(),
    each_side=st.integers(0, 6),
    missing=st.sets(st.integers(0, 40), max_size=8),
)
def test_zone_is_the_strikes_nearest_the_price(
    centre: float, from_forward: bool, each_side: int, missing: set[int]
) -> None:
    """The kernel's zone is the universe's ATM (``atm_index``) and the listed pairs near it."""
    ks = [(19_000 + 50 * i) * 100 for i in range(41)]
    u = ChainUniverse.__new__(ChainUniverse)
    u.strikes_paise = ks
    # Strike i has no call when i is in ``missing``, no put when i + 1 is.
    ce = np.array([-1 if i in missing else 10 + i for i in range(41)], np.int64)
    pe = np.array([-1 if i + 1 in missing else 100 + i for i in range(41)], np.int64)
    calls, puts = np.zeros(41, np.int64), np.zeros(41, np.int64)
    spot, fwd = (math.nan, centre) if from_forward else (centre, math.nan)
    k, lo, hi = KB.zone(np.array(ks, np.int64), ce, pe, spot, fwd, each_side, calls, puts)
    if not centre > 0:
        assert (k, lo > hi) == (0, True)
        return
    atm = u.atm_index(round(centre * 100))
    near = range(max(0, atm - each_side), min(41, atm + each_side + 1))
    both = [i for i in near if ce[i] >= 0 and pe[i] >= 0]
    assert calls[:k].tolist() == [10 + i for i in both]
    assert puts[:k].tolist() == [100 + i for i in both]
    assert (lo, hi) == (ks[max(0, atm - 2 * each_side)], ks[min(40, atm + 2 * each_side)])
