"""The smart-money orchestrator: detector kernels per bar → one ``SmartMoneySignal`` per underlying.

Per closed bar (``on_bar``) it runs the six components of seeds/phase4-integration-guide.md over
the chain (kernels/detect.py documents every rule), then reads them as votes:

* every option within ± 2 × ``ce_pe_atm_range`` strikes of ATM whose latest OI update classified
  a build-up votes for the underlying's direction — LONG_BUILD_UP or SHORT_COVERING on a call and
  SHORT_BUILD_UP or LONG_UNWINDING on a put are bullish, the mirror images bearish — weighted by
  its confidence (covering/unwinding at 0.6, being exits rather than new money) and by 1.5 while
  a fresh position is live on it; a fresh entry without a classified build-up votes with its
  strength in the direction its premium moved;
* the net vote (−1…1) gives the direction; below ``min_net_vote`` the signal is NEUTRAL. The
  strongest voter in that direction is the *driver*; the contract to trade is the driver for a
  call-side BUY_CALL / put-side BUY_PUT, else the same-strike option of the other side;
* the driver's cross-validation is re-read *in the signal's direction*: the seed's own example
  calls a put's delta rising from −0.35 to −0.32 "Δ↑ (less bearish)", so its Δ↑ means "delta
  moved the underlying's way". A CE short build-up behind a BUY_PUT therefore validates as a
  SMART_ENTRY (the call lost delta while writers added OI), not as a call-buyer's REVERSAL;
  THETA_TRAP and EXPLOSIVE stay properties of the contract;
* AVOID when the trade contract or the driver is blocked by the trap filter, or the driver's
  signal-direction cross-validation (or the trade contract's own) says BLOCK;
* scores: OI conviction = 0.5·driver confidence + 0.3·|net| + 0.2·(battlefield OI share agreeing);
  volume aggression = 0.7·the trade contract's aggression + 0.3·(volume share agreeing);
  smart-money probability = (0.35·OI conviction + 0.2·volume aggression + 0.3·cross-validation
  quality + 0.15·battlefield agreement) × (1 − trap probability);
* ``can_trade`` needs a BUY_* recommendation, a PROCEED cross-validation on the driver, no trap
  block, a market control that does not oppose the direction and a probability of at least
  ``min_signal_probability``; ``reason`` says which of these failed.

A signal is *emitted* (logged, written to replay, kept for the API) when it changes materially —
recommendation, can_trade, market control, the contract to trade while actionable, or a new
fresh position — and the latest one is always available; the strategy sees every bar's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from smartflow.chain.state import ChainState
from smartflow.config import SmartMoneyConfig
from smartflow.core.messages import Evidence, MarketControl, SmartMoneySignal
from smartflow.kernels import detect as K, layout as L


BUILDUP_NAMES = ("NONE", "LONG_BUILD_UP", "SHORT_BUILD_UP", "SHORT_COVERING", "LONG_UNWINDING")
VOLUME_NAMES = ("NORMAL", "SPIKE", "BURST", "AGGRESSIVE")
FRESH_NAMES = (None, "AGGRESSIVE_ENTRY", "FIRST_ENTRY", "ADJUSTMENT")
TRAP_NAMES = (
    (K.TRAP_SCALPER, "SCALPER_TRAP"),
    (K.TRAP_NOISE, "NOISE_TRAP"),
    (K.TRAP_THETA, "THETA_CRUSH"),
    (K.TRAP_REVERSAL, "REVERSAL_TRAP"),
    (K.TRAP_LIQUIDITY, "LIQUIDITY_TRAP"),
)
XV_NAMES = ("NONE", "SMART_ENTRY", "TRAP", "REVERSAL", "EXPLOSIVE", "THETA_TRAP")
VERDICT_NAMES = ("PROCEED", "CAUTION", "BLOCK")
CONTROL_NAMES: tuple[MarketControl, ...] = (
    "BULLISH_CONTROL",
    "BEARISH_CONTROL",
    "BALANCED",
    "NEUTRAL_CHOP",
)
TREND_NAMES = {-1: "PE_GAINING", 0: "STABLE", 1: "CE_GAINING"}

# Underlying direction of each build-up on a call; a put reads the other way.
_CALL_DIRECTION = {
    K.BUILDUP_LONG: 1,
    K.BUILDUP_SHORT: -1,
    K.BUILDUP_COVERING: 1,
    K.BUILDUP_UNWINDING: -1,
}
_TYPE_WEIGHT = {
    K.BUILDUP_LONG: 1.0,
    K.BUILDUP_SHORT: 1.0,
    K.BUILDUP_COVERING: 0.6,
    K.BUILDUP_UNWINDING: 0.6,
}


def params_array(t: SmartMoneyConfig, bar_seconds: int) -> np.ndarray:
    """Thresholds in the kernels' ``P_*`` order."""
    p = np.zeros(K.NP)
    p[K.P_VOLUME_SPIKE] = t.volume_spike_threshold
    p[K.P_VOLUME_BURST] = t.volume_burst_threshold
    p[K.P_VOLUME_AGGRESSIVE] = t.volume_aggressive_threshold
    p[K.P_TRAP_LOW_OI] = t.trap_low_oi_threshold
    p[K.P_TRAP_NOISE_GAMMA] = t.trap_noise_gamma_threshold
    p[K.P_TRAP_THETA] = t.trap_theta_aggressive_threshold
    p[K.P_FRESH_OI_JUMP] = t.fresh_position_oi_jump
    p[K.P_FRESH_VOL_SURGE] = t.fresh_position_volume_surge
    p[K.P_FRESH_MAX_AGE_S] = t.fresh_position_max_age_seconds
    p[K.P_ATM_RANGE] = t.ce_pe_atm_range
    p[K.P_CONTROL] = t.ce_pe_control_threshold
    p[K.P_OI_STALE_S] = t.oi_stale_s
    p[K.P_MIN_OI_PCT] = t.buildup_min_oi_change_pct
    p[K.P_MIN_PX_PCT] = t.buildup_min_price_change_pct
    p[K.P_BASELINE_BARS] = t.baseline_bars
    p[K.P_MIN_BASELINE_BARS] = t.min_baseline_bars
    p[K.P_BATTLE_BARS] = t.battle_window_bars
    p[K.P_CRUSH_DTE] = t.theta_crush_dte_days
    p[K.P_LIQ_DELTA] = t.liquidity_max_delta
    p[K.P_LIQ_SPREAD_PCT] = t.liquidity_max_spread_pct
    p[K.P_REVERSAL_RETRACE] = t.reversal_retrace
    p[K.P_REVERSAL_LOOKBACK] = t.reversal_lookback_bars
    p[K.P_EXPLOSIVE_GAMMA_PCT] = t.explosive_gamma_rise_pct
    p[K.P_BLOCK_PROB] = t.trap_block_probability
    p[K.P_BAR_SECONDS] = bar_seconds
    p[K.P_REVERSAL_MIN_TICKS] = t.reversal_min_range_ticks
    return p


def _f(x: float, nd: int = 4) -> float | None:
    return round(float(x), nd) if math.isfinite(x) else None


def _num(x: float) -> float:
    """NaN (not computed) as 0; these columns are probabilities and scores, never infinite."""
    return float(x) if x == x else 0.0


def trap_names(bits: int) -> list[str]:
    """Names of the trap bits set in ``bits``."""
    return [name for bit, name in TRAP_NAMES if bits & bit]


class SmartMoneyDetector:
    """Detector state and signal assembly for one chain."""

    def __init__(self, chain: ChainState, thresholds: SmartMoneyConfig, bar_seconds: int) -> None:
        self.chain = chain
        self.t = thresholds
        self.p = params_array(thresholds, bar_seconds)
        n = chain.n
        self.di = np.zeros((n, L.NDI), np.int64)
        self.df = np.full((n, L.NDF), np.nan)
        self.rows = chain.option_rows
        # Option rows are one contiguous range: per-bar column reads use slices (views), and the
        # static columns are read once.
        self._opts = slice(L.ROW_FIRST_OPTION, n)
        self._strike = chain.q[self._opts, L.Q_STRIKE].copy()
        self._zones: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self.battle = np.zeros(8)
        self.latest: SmartMoneySignal | None = None
        self.last_emitted: SmartMoneySignal | None = None
        self._last_fresh_ns = 0
        self._bar_ns = 0
        # Cost of the last bar's update (ns; /metrics and the bench read it, nothing decides on it).
        self.kernel_ns = 0
        self.update_ns = 0
        self.emitted = 0
        self.on_signal: list[Callable[[SmartMoneySignal], None]] = []

    # ---- per bar ------------------------------------------------------------------------

    def on_bar(self, bar_end_ns: int, seq: int) -> SmartMoneySignal:
        """Run every detector on the bar just closed and assemble the signal."""
        t0 = time.perf_counter_ns()
        c = self.chain
        head = seq % L.RING
        n_valid = min(seq + 1, L.RING)
        self._bar_ns = bar_end_ns
        calls, puts, atm = self._zone(int(self.t.ce_pe_atm_range))
        K.update_bar(
            self.rows,
            calls,
            puts,
            c.q,
            c.f,
            c.bars,
            head,
            n_valid,
            bar_end_ns,
            c.spot,
            c.forward,
            self.p,
            self.di,
            self.df,
            self.battle,
        )
        t1 = time.perf_counter_ns()
        signal = self._assemble(bar_end_ns, seq, atm)
        material = self._material(signal)
        self.kernel_ns = t1 - t0
        self.update_ns = time.perf_counter_ns() - t0
        self.latest = signal
        if material:
            self.last_emitted = signal
            self.emitted += 1
            for cb in self.on_signal:
                cb(signal)
        return signal

    def _zone(self, each_side: int) -> tuple[np.ndarray, np.ndarray, int]:
        c = self.chain
        u = c.universe
        centre = c.spot if c.spot > 0 else c.forward
        if not centre > 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), -1
        atm = u.atm_index(round(centre * 100))
        zone = self._zones.get((atm, each_side))
        if zone is None:
            lo, hi = max(0, atm - each_side), min(len(u.strikes_paise), atm + each_side + 1)
            calls, puts = [], []
            for k in u.strikes_paise[lo:hi]:
                ce, pe = u.calls.get(k), u.puts.get(k)
                if ce is not None and pe is not None:
                    calls.append(c.row_by_token[ce.token])
                    puts.append(c.row_by_token[pe.token])
            zone = (np.array(calls, np.int64), np.array(puts, np.int64))
            self._zones[(atm, each_side)] = zone
        return zone[0], zone[1], atm

    # ---- assembly -----------------------------------------------------------------------

    def _votes(self, atm: int, head: int) -> list[tuple[int, int, float, str]]:
        """(row, direction, weight, source) for every voting contract near ATM."""
        c, di, df = self.chain, self.di, self.df
        if atm < 0:
            return []
        ks = c.universe.strikes_paise
        span = 2 * int(self.t.ce_pe_atm_range)
        lo, hi = ks[max(0, atm - span)], ks[min(len(ks) - 1, atm + span)]
        opts = self._opts
        state = di[opts, L.DI_BUILDUP]
        fresh = di[opts, L.DI_FRESH]
        live = (fresh == K.FRESH_AGGRESSIVE) | (fresh == K.FRESH_FIRST)
        # Vectorised pre-selection: Python only loops over the few contracts that vote.
        mask = (
            (c.q[opts, L.Q_TICKS] > 0)
            & (self._strike >= lo)
            & (self._strike <= hi)
            & ((state != K.BUILDUP_NONE) | live)
        )
        votes = []
        for row in (np.flatnonzero(mask) + L.ROW_FIRST_OPTION).tolist():
            side = 1 if c.q[row, L.Q_KIND] == L.KIND_CALL else -1
            live_fresh = int(di[row, L.DI_FRESH]) in (K.FRESH_AGGRESSIVE, K.FRESH_FIRST)
            st = int(di[row, L.DI_BUILDUP])
            if st != K.BUILDUP_NONE:
                w = float(df[row, L.DF_BUILDUP_CONF]) * _TYPE_WEIGHT[st]
                if live_fresh:
                    w *= 1.5
                votes.append((row, _CALL_DIRECTION[st] * side, w, "OI_BUILDUP"))
                continue
            # A fresh entry without a classified build-up votes the way the bar's trades leaned
            # (who initiated them is the entry's side); only a balanced bar falls back to the
            # premium move, which a writer's entry can push either way.
            moved = float(c.bars[row, L.B_CVD, head])
            if not math.isfinite(moved) or moved == 0:
                moved = float(df[row, L.DF_PX_CHG_PCT])
            if math.isfinite(moved) and moved != 0:
                direction = (1 if moved > 0 else -1) * side
                votes.append(
                    (row, direction, float(df[row, L.DF_FRESH_STRENGTH]), "FRESH_POSITION")
                )
        return votes

    def _assemble(self, ts: int, seq: int, atm: int) -> SmartMoneySignal:
        c, di, df, t = self.chain, self.di, self.df, self.t
        control = CONTROL_NAMES[int(self.battle[0])]
        oi_share, vol_share = float(self.battle[1]), float(self.battle[2])
        votes = self._votes(atm, seq % L.RING)
        evidence: list[Evidence] = [self._battle_evidence()]
        total = sum(w for _, _, w, _ in votes)
        net = sum(d * w for _, d, w, _ in votes) / total if total > 0 else 0.0
        spot = c.spot if math.isfinite(c.spot) else None
        if not votes or abs(net) < t.min_net_vote:
            why = (
                "no OI build-up or fresh position near ATM"
                if not votes
                else f"build-ups disagree (net vote {net:+.2f})"
            )
            evidence.append(Evidence(rule="NET_VOTE", inputs={"net": _f(net), "votes": len(votes)}))
            return SmartMoneySignal(
                underlying=c.root,
                ts=ts,
                recommendation="NEUTRAL",
                oi_conviction_score=0.0,
                volume_aggression_score=0.0,
                smart_money_probability=0.0,
                trap_probability=0.0,
                fresh_position_detected=False,
                market_control=control,
                can_trade=False,
                reason=why,
                strike=None,
                option_type=None,
                token=None,
                evidence=evidence,
                bar_seq=seq,
                spot=spot,
            )
        direction = 1 if net > 0 else -1
        driver, _, driver_w, source = max(
            (v for v in votes if v[1] == direction), key=lambda v: (v[2], -v[0])
        )
        trade_row = self._trade_row(driver, direction)
        evidence.append(
            Evidence(
                rule="NET_VOTE",
                inputs={
                    "net": _f(net),
                    "votes": len(votes),
                    "direction": "BULLISH" if direction > 0 else "BEARISH",
                },
            )
        )
        for row, d, w, src in sorted(votes, key=lambda v: (-v[2], v[0]))[:5]:
            evidence.append(self._vote_evidence(row, d, w, src))
        evidence += self._contract_evidence(driver, trade_row)
        blocked = bool(di[trade_row, L.DI_BLOCKED] or di[driver, L.DI_BLOCKED])
        pattern = self.signal_pattern(driver, direction)
        verdict, quality = K.pattern_verdict(pattern)
        evidence.append(
            Evidence(
                rule="SIGNAL_VALIDATION",
                **self._contract(driver),
                inputs={
                    "pattern": XV_NAMES[pattern],
                    "verdict": VERDICT_NAMES[verdict],
                    "quality": _f(quality),
                },
            )
        )
        xv_block = verdict == K.VERDICT_BLOCK or di[trade_row, L.DI_XV_VERDICT] == K.VERDICT_BLOCK
        rec = "AVOID" if (blocked or xv_block) else ("BUY_CALL" if direction > 0 else "BUY_PUT")
        conf = (
            float(df[driver, L.DF_BUILDUP_CONF])
            if source == "OI_BUILDUP"
            else float(df[driver, L.DF_FRESH_STRENGTH])
        )
        agree_oi = min(1.0, max(0.0, (oi_share - 0.5) * 2 * direction))
        agree_vol = min(1.0, max(0.0, (vol_share - 0.5) * 2 * direction))
        oi_conv = min(1.0, 0.5 * conf + 0.3 * abs(net) + 0.2 * agree_oi)
        aggression = _num(df[trade_row, L.DF_AGGRESSION])
        vol_aggr = min(1.0, 0.7 * aggression + 0.3 * agree_vol)
        trap_p = max(_num(df[trade_row, L.DF_TRAP_PROB]), _num(df[driver, L.DF_TRAP_PROB]))
        opposing = (direction > 0 and control == "BEARISH_CONTROL") or (
            direction < 0 and control == "BULLISH_CONTROL"
        )
        agrees = (direction > 0 and control == "BULLISH_CONTROL") or (
            direction < 0 and control == "BEARISH_CONTROL"
        )
        battle_agree = 1.0 if agrees else (0.0 if opposing else 0.5)
        prob = (0.35 * oi_conv + 0.2 * vol_aggr + 0.3 * quality + 0.15 * battle_agree) * (
            1.0 - trap_p
        )
        fresh = any(
            int(di[r, L.DI_FRESH]) in (K.FRESH_AGGRESSIVE, K.FRESH_FIRST)
            for r in (driver, trade_row)
        )
        reasons = []
        if rec == "AVOID":
            traps = trap_names(int(di[trade_row, L.DI_TRAPS]) | int(di[driver, L.DI_TRAPS]))
            if traps:
                why = ", ".join(traps)
            elif verdict == K.VERDICT_BLOCK:
                why = f"cross-validation {XV_NAMES[pattern]}"
            else:
                # The block came from the contract we would buy, not the one that drove the vote.
                own = XV_NAMES[int(di[trade_row, L.DI_XV_PATTERN])]
                ti = c.instruments[trade_row]
                on = f" on {ti.strike:g} {ti.kind}" if ti is not None else ""
                why = f"cross-validation {own}{on}"
            reasons.append("blocked: " + why)
        elif verdict != K.VERDICT_PROCEED:
            reasons.append(f"cross-validation {XV_NAMES[pattern]} ({VERDICT_NAMES[verdict]})")
        if opposing:
            reasons.append(f"market control {control} opposes {rec}")
        if prob < t.min_signal_probability:
            reasons.append(f"smart-money probability {prob:.2f} < {t.min_signal_probability:.2f}")
        can_trade = rec in ("BUY_CALL", "BUY_PUT") and not reasons
        inst = c.instruments[trade_row]
        assert inst is not None  # noqa: S101 — option rows always have an instrument
        del driver_w
        return SmartMoneySignal(
            underlying=c.root,
            ts=ts,
            recommendation=rec,  # type: ignore[arg-type]
            oi_conviction_score=round(oi_conv, 4),
            volume_aggression_score=round(vol_aggr, 4),
            smart_money_probability=round(prob, 4),
            trap_probability=round(trap_p, 4),
            fresh_position_detected=fresh,
            market_control=control,
            can_trade=can_trade,
            reason="; ".join(reasons) if reasons else None,
            strike=inst.strike,
            option_type=inst.kind,  # type: ignore[arg-type]
            token=inst.token,
            evidence=evidence,
            bar_seq=seq,
            spot=spot,
        )

    def signal_pattern(self, row: int, direction: int) -> int:
        """The seed's cross-validation pattern of ``row`` read in the signal's ``direction``."""
        di = self.di
        own = int(di[row, L.DI_XV_PATTERN])
        if own in (K.XV_THETA_TRAP, K.XV_EXPLOSIVE):
            return own
        is_call = self.chain.q[row, L.Q_KIND] == L.KIND_CALL
        # DI_DELTA_DIR is contract-relative (+1: toward the money); flip it for the other side.
        d = int(di[row, L.DI_DELTA_DIR]) * (1 if is_call == (direction > 0) else -1)
        oi = int(di[row, L.DI_OI_DIR])
        if not di[row, L.DI_VOL_UP]:
            return K.XV_NONE
        if d > 0 and oi < 0:
            return K.XV_TRAP
        if d > 0 and oi > 0:
            return K.XV_SMART_ENTRY
        if d < 0 and oi > 0:
            return K.XV_REVERSAL
        return K.XV_NONE

    def _trade_row(self, driver: int, direction: int) -> int:
        c = self.chain
        want_call = direction > 0
        is_call = c.q[driver, L.Q_KIND] == L.KIND_CALL
        if want_call == is_call:
            return driver
        pair = int(c.q[driver, L.Q_PAIR_ROW])
        return pair if pair >= 0 else driver

    # ---- evidence -----------------------------------------------------------------------

    def _contract(self, row: int) -> dict[str, Any]:
        inst = self.chain.instruments[row]
        assert inst is not None  # noqa: S101
        return {"token": inst.token, "strike": inst.strike, "option_type": inst.kind}

    def _vote_evidence(self, row: int, direction: int, weight: float, source: str) -> Evidence:
        # One conversion per row: indexing numpy element by element costs more than the rest.
        d, x = self.di[row].tolist(), self.df[row].tolist()
        q = self.chain.q
        inputs: dict[str, Any] = {"direction": direction, "weight": _f(weight)}
        if source == "OI_BUILDUP":
            inputs |= {
                "state": BUILDUP_NAMES[int(d[L.DI_BUILDUP])],
                "confidence": _f(x[L.DF_BUILDUP_CONF]),
                "oi_change_pct": _f(x[L.DF_OI_CHG_PCT]),
                "price_change_pct": _f(x[L.DF_PX_CHG_PCT]),
                "interval_volume": _f(x[L.DF_INTERVAL_VOL], 0),
                "oi_update_age_s": _f((self._now(row) - q[row, L.Q_OI_LAST_NS]) / 1e9, 1),
            }
        else:
            inputs |= {
                "fresh": FRESH_NAMES[int(d[L.DI_FRESH])],
                "strength": _f(x[L.DF_FRESH_STRENGTH]),
            }
        return Evidence(rule=source, **self._contract(row), inputs=inputs)

    def _now(self, row: int) -> int:
        return self._bar_ns or int(self.chain.q[row, L.Q_RECV_NS])

    def _contract_evidence(self, driver: int, trade_row: int) -> list[Evidence]:
        out = []
        for row in dict.fromkeys((driver, trade_row)):
            d, x = self.di[row].tolist(), self.df[row].tolist()
            contract = self._contract(row)
            out.append(
                Evidence(
                    rule="VOLUME",
                    **contract,
                    inputs={
                        "state": VOLUME_NAMES[int(d[L.DI_VOLUME_STATE])],
                        "spike_factor": _f(x[L.DF_VOL_RATIO]),
                        "aggression": _f(x[L.DF_AGGRESSION]),
                        "trend": int(d[L.DI_VOL_TREND]),
                    },
                )
            )
            out.append(
                Evidence(
                    rule="CROSS_VALIDATION",
                    **contract,
                    inputs={
                        "pattern": XV_NAMES[int(d[L.DI_XV_PATTERN])],
                        "verdict": VERDICT_NAMES[int(d[L.DI_XV_VERDICT])],
                        "quality": _f(x[L.DF_XV_QUALITY]),
                        "delta_change": _f(x[L.DF_DELTA_CHG], 5),
                        "oi_direction": int(d[L.DI_OI_DIR]),
                        "volume_up": bool(d[L.DI_VOL_UP]),
                    },
                )
            )
            fresh = int(d[L.DI_FRESH])
            if fresh:
                out.append(
                    Evidence(
                        rule="FRESH_POSITION",
                        **contract,
                        inputs={
                            "type": FRESH_NAMES[fresh],
                            "oi_jump": _f(x[L.DF_FRESH_OI_JUMP]),
                            "volume_ratio": _f(x[L.DF_FRESH_VOL_RATIO]),
                            "strength": _f(x[L.DF_FRESH_STRENGTH]),
                            "expected_move": _f(x[L.DF_EXPECTED_MOVE], 2),
                        },
                    )
                )
            bits = int(d[L.DI_TRAPS])
            if bits:
                out.append(
                    Evidence(
                        rule="TRAP",
                        **contract,
                        inputs={
                            "types": ",".join(trap_names(bits)),
                            "probability": _f(x[L.DF_TRAP_PROB]),
                            "blocked": bool(d[L.DI_BLOCKED]),
                            "oi_lots": _f(x[L.DF_OI_LOTS], 1),
                            "gamma_1pct": _f(x[L.DF_GAMMA_1PCT]),
                            "theta_burn": _f(x[L.DF_THETA_BURN]),
                            "dte": _f(x[L.DF_DTE], 3),
                        },
                    )
                )
            if d[L.DI_OI_STALE]:
                out.append(
                    Evidence(
                        rule="OI_STALE",
                        **contract,
                        inputs={
                            "oi_age_s": _f(
                                (self._now(row) - self.chain.q[row, L.Q_OI_CHANGED_NS]) / 1e9, 1
                            )
                        },
                    )
                )
        return out

    def _battle_evidence(self) -> Evidence:
        b = self.battle.tolist()
        return Evidence(
            rule="BATTLEFIELD",
            inputs={
                "control": CONTROL_NAMES[int(b[0])],
                "ce_oi_share": _f(b[1]),
                "ce_volume_share": _f(b[2]),
                "delta_skew": _f(b[3]),
                "war_intensity": _f(b[4]),
                "trend": TREND_NAMES[int(b[5])],
            },
        )

    def _material(self, s: SmartMoneySignal) -> bool:
        prev = self.last_emitted
        fresh = self.di[self._opts, L.DI_FRESH]
        live = (fresh == K.FRESH_AGGRESSIVE) | (fresh == K.FRESH_FIRST)
        fresh_ns = int(self.di[self._opts, L.DI_FRESH_NS][live].max(initial=0))
        new_fresh = fresh_ns > self._last_fresh_ns
        if new_fresh:
            self._last_fresh_ns = fresh_ns
        if prev is None:
            return True
        if (s.recommendation, s.can_trade, s.market_control) != (
            prev.recommendation,
            prev.can_trade,
            prev.market_control,
        ):
            return True
        if s.recommendation in ("BUY_CALL", "BUY_PUT") and s.token != prev.token:
            return True
        return new_fresh and s.fresh_position_detected

    # ---- per-contract view (chain rows, API) ---------------------------------------------

    def contract_states(self, row: int) -> dict[str, Any]:
        """The design.md §4.2 detector columns of one contract."""
        di = self.di
        fresh = int(di[row, L.DI_FRESH])
        return {
            "oi_buildup": BUILDUP_NAMES[int(di[row, L.DI_BUILDUP])],
            "volume_state": VOLUME_NAMES[int(di[row, L.DI_VOLUME_STATE])],
            "fresh_position": FRESH_NAMES[fresh] if fresh else None,
            "trap_types": trap_names(int(di[row, L.DI_TRAPS])),
            "can_trade": not (di[row, L.DI_BLOCKED] or di[row, L.DI_XV_VERDICT] == K.VERDICT_BLOCK),
            "oi_stale": bool(di[row, L.DI_OI_STALE]),
        }
