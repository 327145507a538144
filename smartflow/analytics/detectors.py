"""The smart-money orchestrator: detector kernels per bar → one ``SmartMoneySignal`` per underlying.

Per closed bar (``on_bar``) it runs the six components of seeds/phase4-integration-guide.md over
the chain (kernels/detect_contract.py documents every per-contract rule, kernels/battlefield.py
the battlefield), then reads them as votes:

* every option within ± 2 × ``ce_pe_atm_range`` strikes of ATM whose OI change over the build-up
  horizon classified a build-up votes for the underlying's direction — LONG_BUILD_UP or
  SHORT_COVERING on a call and SHORT_BUILD_UP or LONG_UNWINDING on a put are bullish, the mirror
  images bearish — weighted by its confidence (covering/unwinding at 0.6, being exits rather
  than new money) and by 1.5 while a fresh position is live on it; a fresh entry without a
  classified build-up votes with its strength the way it went, read once at its detection (the
  signed volume of the bar that revealed it, else the horizon's, else the premium's move);
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

The numbers (votes, driver, scores, verdicts, and the evidence's values rounded for display) are
computed in the same kernel dispatch as the detectors (``kernels.signal.update_bar``); this module
names them. A bar is handled in two steps (app/pipeline.py runs them): ``decide`` (at the bar
close, before the strategy) runs the kernels and builds the signal without its ``reason`` and
``evidence``; ``explain`` (once the strategy has acted on the bar) adds those two. Building the
evidence's Python objects cost more than the detector kernels at a real bar close, and nothing
that decides reads them.

A signal is *emitted* (logged, written to replay, kept for the API) when it changes materially —
recommendation, can_trade, market control, the contract to trade while actionable, or a new
fresh position: ``material`` says so after ``decide``. The latest one is always available
(explained between bars); the strategy sees every bar's.
"""

from __future__ import annotations

import math
import time
from typing import Any

import msgspec
import numpy as np

from smartflow.chain.state import ChainState
from smartflow.config import SmartMoneyConfig
from smartflow.core.messages import (
    Evidence,
    MarketControl,
    OptionType,
    Recommendation,
    SmartMoneySignal,
)
from smartflow.kernels import battlefield as KB, detect_contract as KC, layout as L, signal as KS


BUILDUP_NAMES = ("NONE", "LONG_BUILD_UP", "SHORT_BUILD_UP", "SHORT_COVERING", "LONG_UNWINDING")
VOLUME_NAMES = ("NORMAL", "SPIKE", "BURST", "AGGRESSIVE")
FRESH_NAMES = (None, "AGGRESSIVE_ENTRY", "FIRST_ENTRY", "ADJUSTMENT")
TRAP_NAMES = (
    (KC.TRAP_SCALPER, "SCALPER_TRAP"),
    (KC.TRAP_NOISE, "NOISE_TRAP"),
    (KC.TRAP_THETA, "THETA_CRUSH"),
    (KC.TRAP_REVERSAL, "REVERSAL_TRAP"),
    (KC.TRAP_LIQUIDITY, "LIQUIDITY_TRAP"),
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

REC_NAMES: tuple[Recommendation, ...] = ("NEUTRAL", "BUY_CALL", "BUY_PUT", "AVOID")
SOURCE_NAMES = ("OI_BUILDUP", "FRESH_POSITION")


def params_array(t: SmartMoneyConfig, bar_seconds: int) -> np.ndarray:
    """Thresholds in the kernels' ``P_*`` order."""
    p = np.zeros(KC.NP)
    p[KC.P_VOLUME_SPIKE] = t.volume_spike_threshold
    p[KC.P_VOLUME_BURST] = t.volume_burst_threshold
    p[KC.P_VOLUME_AGGRESSIVE] = t.volume_aggressive_threshold
    p[KC.P_TRAP_LOW_OI] = t.trap_low_oi_threshold
    p[KC.P_TRAP_NOISE_GAMMA] = t.trap_noise_gamma_threshold
    p[KC.P_TRAP_THETA] = t.trap_theta_aggressive_threshold
    p[KC.P_FRESH_OI_JUMP] = t.fresh_position_oi_jump
    p[KC.P_FRESH_VOL_SURGE] = t.fresh_position_volume_surge
    p[KC.P_FRESH_MAX_AGE_S] = t.fresh_position_max_age_seconds
    p[KC.P_ATM_RANGE] = t.ce_pe_atm_range
    p[KC.P_CONTROL] = t.ce_pe_control_threshold
    p[KC.P_OI_STALE_S] = t.oi_stale_s
    p[KC.P_MIN_OI_PCT] = t.buildup_min_oi_change_pct
    p[KC.P_MIN_PX_PCT] = t.buildup_min_price_change_pct
    p[KC.P_VOL_ALPHA] = min(1.0, bar_seconds / t.volume_baseline_s)
    p[KC.P_MIN_BASELINE_BARS] = t.min_baseline_bars
    p[KC.P_BATTLE_BARS] = t.battle_window_bars
    p[KC.P_CRUSH_DTE] = t.theta_crush_dte_days
    p[KC.P_LIQ_DELTA] = t.liquidity_max_delta
    p[KC.P_LIQ_SPREAD_PCT] = t.liquidity_max_spread_pct
    p[KC.P_REVERSAL_RETRACE] = t.reversal_retrace
    p[KC.P_REVERSAL_LOOKBACK] = t.reversal_lookback_bars
    p[KC.P_EXPLOSIVE_GAMMA_PCT] = t.explosive_gamma_rise_pct
    p[KC.P_BLOCK_PROB] = t.trap_block_probability
    p[KC.P_BAR_SECONDS] = bar_seconds
    p[KC.P_REVERSAL_MIN_TICKS] = t.reversal_min_range_ticks
    p[KC.P_MIN_NET_VOTE] = t.min_net_vote
    p[KC.P_HORIZON_BARS] = horizon_bars(t, bar_seconds)
    p[KC.P_OI_Z] = t.buildup_oi_z
    p[KC.P_PX_Z] = t.buildup_price_z
    p[KC.P_MIN_OI_LOTS] = t.buildup_min_oi_lots
    p[KC.P_NOISE_ALPHA] = min(1.0, bar_seconds / t.noise_memory_s)
    p[KC.P_WARMUP_NOISE_PCT] = t.warmup_noise_pct
    return p


def horizon_bars(t: SmartMoneyConfig, bar_seconds: int) -> int:
    """The build-up horizon in whole bars (at least one)."""
    return max(1, round(t.buildup_horizon_s / bar_seconds))


def _f(x: float, nd: int = 4) -> float | None:
    return round(float(x), nd) if math.isfinite(x) else None


def _v(x: float) -> float | None:
    """An evidence number the kernel already rounded; NaN (not computed) shows as null."""
    return x if x == x else None


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
        # One horizon sample per bar, a horizon and the bar itself deep (kernels/detect_contract).
        self.hist = np.full((int(self.p[KC.P_HORIZON_BARS]) + 1, n, KC.NH), np.nan)
        self.rows = chain.option_rows
        # The strike ladder for the kernels' ATM zone: each strike's call and put row (−1: none).
        u = chain.universe
        self.strikes = np.array(u.strikes_paise, np.int64)
        self.ce_rows, self.pe_rows = (
            np.array(
                [chain.row_by_token[side[k].token] if k in side else -1 for k in u.strikes_paise],
                np.int64,
            )
            for side in (u.calls, u.puts)
        )
        self.zone_calls = np.zeros(self.strikes.size, np.int64)
        self.zone_puts = np.zeros(self.strikes.size, np.int64)
        # Evidence names contracts on every bar; the names never change.
        self._contracts: list[tuple[str, float, OptionType] | None] = [
            (i.token, i.strike, i.kind) if i else None  # type: ignore[misc]
            for i in chain.instruments
        ]
        self.battle = np.zeros(KB.NBT)
        self.votes = np.zeros((n, KS.NV))
        self.sig_i = np.zeros(KS.NSI, np.int64)
        self.sig_f = np.zeros(KS.NSF)
        self.ev = np.zeros((KS.NEV_ROWS, KS.NE))
        # The bar's decision after ``decide``, the same signal explained after ``explain``.
        self.latest: SmartMoneySignal | None = None
        self.last_emitted: SmartMoneySignal | None = None
        self.material = False
        self._numbers: tuple[list[int], list[float], list[float]] = ([], [], [])
        self._last_fresh_ns = 0
        # Cost of the last bar's update (ns; /metrics and the bench read it, nothing decides on it).
        self.kernel_ns = 0
        self.update_ns = 0
        self.explain_ns = 0
        self.emitted = 0

    # ---- per bar ------------------------------------------------------------------------

    def on_bar(self, bar_end_ns: int, seq: int) -> SmartMoneySignal:
        """Decide and explain in one step, for callers that drive the detector on its own."""
        self.decide(bar_end_ns, seq)
        return self.explain(bar_end_ns, seq)

    def decide(self, bar_end_ns: int, seq: int) -> SmartMoneySignal:
        """Run every detector on the bar just closed and make the signal's decision.

        The decision is the whole signal but its ``reason`` and ``evidence``: everything the
        strategy acts on. ``explain`` adds those two (and emits the signal when it changed
        materially) once the strategy has acted on the bar.
        """
        t0 = time.perf_counter_ns()
        self._run_kernels(bar_end_ns, seq)
        t1 = time.perf_counter_ns()
        si, sf, b = self.sig_i.tolist(), self.sig_f.tolist(), self.battle.tolist()
        signal = self._decision(bar_end_ns, seq, si, sf, b)
        self.material = self._material(signal, si[KS.SI_FRESH_NS])
        self._numbers = (si, sf, b)
        self.kernel_ns = t1 - t0
        self.update_ns = time.perf_counter_ns() - t0
        self.latest = signal
        return signal

    def _run_kernels(self, bar_end_ns: int, seq: int) -> None:
        c = self.chain
        KS.update_bar(
            self.rows,
            self.strikes,
            self.ce_rows,
            self.pe_rows,
            c.q,
            c.f,
            c.bars,
            seq % L.RING,
            min(seq + 1, L.RING),
            seq,
            bar_end_ns,
            c.spot,
            c.forward,
            self.p,
            self.hist,
            self.di,
            self.df,
            self.zone_calls,
            self.zone_puts,
            self.battle,
            self.votes,
            self.sig_i,
            self.sig_f,
            self.ev,
        )

    def explain(self, bar_end_ns: int, seq: int) -> SmartMoneySignal:
        """This bar's decision with its reason and evidence; emitted when it changed materially."""
        t0 = time.perf_counter_ns()
        decision = self.latest
        if decision is None or decision.ts != bar_end_ns:
            raise RuntimeError(f"explain() of bar {seq} before its decide()")
        reason, evidence = self._explanation(*self._numbers)
        signal = msgspec.structs.replace(decision, reason=reason, evidence=evidence)
        self.latest = signal
        if self.material:
            self.last_emitted = signal
            self.emitted += 1
        self.explain_ns = time.perf_counter_ns() - t0
        return signal

    # ---- assembly -----------------------------------------------------------------------

    def _decision(
        self, ts: int, seq: int, si: list[int], sf: list[float], b: list[float]
    ) -> SmartMoneySignal:
        """The signal's fields the strategy reads, from the kernels' numbers (``assemble``).

        Without a direction the kernel leaves NEUTRAL and zero scores; no contract is named.
        """
        c = self.chain
        level = c.spot
        rec = REC_NAMES[si[KS.SI_REC]]
        prob = sf[KS.SF_PROBABILITY]
        # The same conditions ``_explanation`` words as the reason: any of them stops a trade.
        can_trade = (
            rec in ("BUY_CALL", "BUY_PUT")
            and si[KS.SI_VERDICT] == KC.VERDICT_PROCEED
            and not si[KS.SI_OPPOSING]
            and not prob < self.t.min_signal_probability
        )
        contract = self._contracts[si[KS.SI_TRADE_ROW]] if si[KS.SI_DIRECTION] else None
        token, strike, kind = contract or (None, None, None)
        return SmartMoneySignal(
            underlying=c.root,
            ts=ts,
            recommendation=rec,
            oi_conviction_score=sf[KS.SF_OI_CONVICTION_SHOWN],
            volume_aggression_score=sf[KS.SF_VOL_AGGRESSION_SHOWN],
            smart_money_probability=sf[KS.SF_PROBABILITY_SHOWN],
            trap_probability=sf[KS.SF_TRAP_PROB_SHOWN],
            fresh_position_detected=bool(si[KS.SI_FRESH]),
            market_control=CONTROL_NAMES[int(b[KB.BT_CONTROL])],
            can_trade=can_trade,
            reason=None,
            strike=strike,
            option_type=kind,
            token=token,
            evidence=[],
            bar_seq=seq,
            spot=level if math.isfinite(level) else None,
            fresh_strength=sf[KS.SF_FRESH_STRENGTH],
        )

    def _explanation(
        self, si: list[int], sf: list[float], b: list[float]
    ) -> tuple[str | None, list[Evidence]]:
        """The reason and the evidence of the decision ``_decision`` made from these numbers."""
        c, di, t = self.chain, self.di, self.t
        control = CONTROL_NAMES[int(b[KB.BT_CONTROL])]
        evidence: list[Evidence] = [self._battle_evidence(b)]
        n_votes, net, direction = si[KS.SI_N_VOTES], sf[KS.SF_NET], si[KS.SI_DIRECTION]
        if direction == 0:
            why = (
                "no OI build-up or fresh position near ATM"
                if not n_votes
                else f"build-ups disagree (net vote {net:+.2f})"
            )
            evidence.append(Evidence(rule="NET_VOTE", inputs={"net": _f(net), "votes": n_votes}))
            return why, evidence
        driver, trade_row = si[KS.SI_DRIVER], si[KS.SI_TRADE_ROW]
        evidence.append(
            Evidence(
                rule="NET_VOTE",
                inputs={
                    "net": _f(net),
                    "votes": n_votes,
                    "direction": "BULLISH" if direction > 0 else "BEARISH",
                },
            )
        )
        ev = self.ev.tolist()
        evidence += [self._vote_evidence(x) for x in ev[KS.EV_TOP : KS.EV_TOP + si[KS.SI_N_TOP]]]
        evidence += self._contract_evidence(ev[KS.EV_DRIVER])
        if trade_row != driver:
            evidence += self._contract_evidence(ev[KS.EV_TRADE])
        pattern, verdict = si[KS.SI_PATTERN], si[KS.SI_VERDICT]
        evidence.append(
            self._evidence(
                "SIGNAL_VALIDATION",
                driver,
                {
                    "pattern": XV_NAMES[pattern],
                    "verdict": VERDICT_NAMES[verdict],
                    "quality": _f(sf[KS.SF_QUALITY]),
                },
            )
        )
        rec = REC_NAMES[si[KS.SI_REC]]
        prob = sf[KS.SF_PROBABILITY]
        reasons = []
        if rec == "AVOID":
            traps = trap_names(int(di[trade_row, L.DI_TRAPS]) | int(di[driver, L.DI_TRAPS]))
            if traps:
                why = ", ".join(traps)
            elif verdict == KC.VERDICT_BLOCK:
                why = f"cross-validation {XV_NAMES[pattern]}"
            else:
                # The block came from the contract we would buy, not the one that drove the vote.
                own = XV_NAMES[int(di[trade_row, L.DI_XV_PATTERN])]
                ti = c.instruments[trade_row]
                on = f" on {ti.strike:g} {ti.kind}" if ti is not None else ""
                why = f"cross-validation {own}{on}"
            reasons.append("blocked: " + why)
        elif verdict != KC.VERDICT_PROCEED:
            reasons.append(f"cross-validation {XV_NAMES[pattern]} ({VERDICT_NAMES[verdict]})")
        if si[KS.SI_OPPOSING]:
            reasons.append(f"market control {control} opposes {rec}")
        if prob < t.min_signal_probability:
            reasons.append(f"smart-money probability {prob:.2f} < {t.min_signal_probability:.2f}")
        return ("; ".join(reasons) if reasons else None), evidence

    def signal_pattern(self, row: int, direction: int) -> int:
        """The seed's cross-validation pattern of ``row`` read in the signal's ``direction``."""
        return int(KS.signal_pattern(self.chain.q, self.di, row, direction))

    # ---- evidence -----------------------------------------------------------------------

    def _evidence(self, rule: str, row: int, inputs: dict[str, Any]) -> Evidence:
        contract = self._contracts[row]
        assert contract is not None  # noqa: S101 — only option rows vote or trade
        # Keywords spelled out: unpacking a dict of them costs 6× the construction.
        token, strike, kind = contract
        return Evidence(rule=rule, token=token, strike=strike, option_type=kind, inputs=inputs)

    def _vote_evidence(self, x: list[float]) -> Evidence:
        """One voter; ``x`` is its row of the kernel's evidence numbers (``E_*``)."""
        row = int(x[KS.E_ROW])
        inputs: dict[str, Any] = {"direction": int(x[KS.E_DIRECTION]), "weight": _v(x[KS.E_WEIGHT])}
        if x[KS.E_SOURCE] == KS.SOURCE_BUILDUP:
            inputs |= {
                "state": BUILDUP_NAMES[int(self.di[row, L.DI_BUILDUP])],
                "confidence": _v(x[KS.E_BUILDUP_CONF]),
                "oi_change_pct": _v(x[KS.E_OI_CHG_PCT]),
                "price_change_pct": _v(x[KS.E_PX_CHG_PCT]),
                "interval_volume": _v(x[KS.E_INTERVAL_VOL]),
                "horizon_s": _v(x[KS.E_HORIZON_S]),
                "oi_z": _v(x[KS.E_OI_Z]),
                "price_z": _v(x[KS.E_PX_Z]),
                "oi_update_age_s": _v(x[KS.E_OI_UPDATE_AGE_S]),
            }
            rule = "OI_BUILDUP"
        else:
            inputs |= {
                "fresh": FRESH_NAMES[int(self.di[row, L.DI_FRESH])],
                "strength": _v(x[KS.E_FRESH_STRENGTH]),
            }
            rule = "FRESH_POSITION"
        return self._evidence(rule, row, inputs)

    def _contract_evidence(self, x: list[float]) -> list[Evidence]:
        """What the detectors say about one contract (driver or trade), from its ``E_*`` row."""
        row = int(x[KS.E_ROW])
        d = self.di[row].tolist()
        out = [
            self._evidence(
                "VOLUME",
                row,
                {
                    "state": VOLUME_NAMES[d[L.DI_VOLUME_STATE]],
                    "spike_factor": _v(x[KS.E_VOL_RATIO]),
                    "aggression": _v(x[KS.E_AGGRESSION]),
                    "trend": d[L.DI_VOL_TREND],
                },
            ),
            self._evidence(
                "CROSS_VALIDATION",
                row,
                {
                    "pattern": XV_NAMES[d[L.DI_XV_PATTERN]],
                    "verdict": VERDICT_NAMES[d[L.DI_XV_VERDICT]],
                    "quality": _v(x[KS.E_XV_QUALITY]),
                    "delta_change": _v(x[KS.E_DELTA_CHG]),
                    "oi_direction": d[L.DI_OI_DIR],
                    "volume_up": bool(d[L.DI_VOL_UP]),
                },
            ),
        ]
        fresh = d[L.DI_FRESH]
        if fresh:
            out.append(
                self._evidence(
                    "FRESH_POSITION",
                    row,
                    {
                        "type": FRESH_NAMES[fresh],
                        "oi_jump": _v(x[KS.E_FRESH_OI_JUMP]),
                        "volume_ratio": _v(x[KS.E_FRESH_VOL_RATIO]),
                        "strength": _v(x[KS.E_FRESH_STRENGTH]),
                        "expected_move": _v(x[KS.E_EXPECTED_MOVE]),
                    },
                )
            )
        bits = d[L.DI_TRAPS]
        if bits:
            out.append(
                self._evidence(
                    "TRAP",
                    row,
                    {
                        "types": ",".join(trap_names(bits)),
                        "probability": _v(x[KS.E_TRAP_PROB]),
                        "blocked": bool(d[L.DI_BLOCKED]),
                        "oi_lots": _v(x[KS.E_OI_LOTS]),
                        "gamma_1pct": _v(x[KS.E_GAMMA_1PCT]),
                        "theta_burn": _v(x[KS.E_THETA_BURN]),
                        "dte": _v(x[KS.E_DTE]),
                    },
                )
            )
        if d[L.DI_OI_STALE]:
            out.append(self._evidence("OI_STALE", row, {"oi_age_s": _v(x[KS.E_OI_AGE_S])}))
        return out

    def _battle_evidence(self, b: list[float]) -> Evidence:
        return Evidence(
            rule="BATTLEFIELD",
            inputs={
                "control": CONTROL_NAMES[int(b[KB.BT_CONTROL])],
                "ce_oi_share": _f(b[KB.BT_OI_SHARE]),
                "ce_volume_share": _f(b[KB.BT_VOL_SHARE]),
                "delta_skew": _f(b[KB.BT_SKEW]),
                "war_intensity": _f(b[KB.BT_WAR]),
                "trend": TREND_NAMES[int(b[KB.BT_TREND])],
            },
        )

    def _material(self, s: SmartMoneySignal, fresh_ns: int) -> bool:
        prev = self.last_emitted
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
        blocked = di[row, L.DI_BLOCKED] or di[row, L.DI_XV_VERDICT] == KC.VERDICT_BLOCK
        return {
            "oi_buildup": BUILDUP_NAMES[int(di[row, L.DI_BUILDUP])],
            "volume_state": VOLUME_NAMES[int(di[row, L.DI_VOLUME_STATE])],
            "fresh_position": FRESH_NAMES[fresh] if fresh else None,
            "trap_types": trap_names(int(di[row, L.DI_TRAPS])),
            "can_trade": not blocked,
            "oi_stale": bool(di[row, L.DI_OI_STALE]),
        }
