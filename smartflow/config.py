"""Typed configuration, decoded from TOML into frozen msgspec Structs.

Every struct forbids unknown keys, so a typo fails at start with the key and the file named rather
than silently falling back to a default. Secrets never live in the TOML file: they are read from
``$CREDENTIALS_DIRECTORY`` (systemd ``LoadCredential=``) or the environment, and are wrapped in
``Secret`` so they cannot leak through ``repr``, logs or tracebacks.

Keys that users' scripts rely on (design.md §3.1) keep their names: ``mode``,
``market.underlyings``,
``market.strikes_each_side``, ``model.*``, ``detectors.profile``, ``detectors.bar_seconds``,
``strategy.enabled``, ``orders.broker``, ``api.listen``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from smartflow.core.errors import ConfigError


PositiveFloat = Annotated[float, Meta(gt=0)]
NonNegFloat = Annotated[float, Meta(ge=0)]
Fraction = Annotated[float, Meta(ge=0, le=1)]
PositiveInt = Annotated[int, Meta(gt=0)]
NonNegInt = Annotated[int, Meta(ge=0)]
Port = Annotated[int, Meta(ge=0, le=65535)]
HHMM = Annotated[str, Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$")]


class Base(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base of every config section: unknown keys are errors, values are immutable."""


class MarketConfig(Base, frozen=True):
    """Which chains to follow."""

    underlyings: list[str] = msgspec.field(default_factory=lambda: ["NIFTY"])
    """Roots exactly as in the scrip master's ``name`` (NIFTY on NFO, SENSEX on BFO)."""
    strikes_each_side: Annotated[int, Meta(ge=1, le=200)] = 20
    """Subscribe ATM ± N strikes."""
    expiry: str = ""
    """Expiry to trade as YYYY-MM-DD; empty means the nearest expiry in the scrip master."""
    expiries: Literal[1, 2] = 1
    """2: also stream and summarise the expiry after it (term structure of ATM IV); only the
    first is traded."""
    recenter_strikes: Annotated[int, Meta(ge=1)] = 3
    """Re-centre the subscribed window once spot has moved this many strikes from its centre."""
    spot_fallback_s: PositiveFloat = 10.0
    """Subscribe the bare NSE index code (26000) if no tick arrives for the 999… token by then."""
    scrip_master_url: str = (
        "https://margincalculator.angelone.in/OpenAPI_File/files/OpenAPIScripMaster.json"
    )
    """Live mode downloads Angel's scrip master once a day from here and caches it."""


class ModelConfig(Base, frozen=True):
    """Option model (design.md §3)."""

    forward: Literal["synthetic", "future", "spot"] = "synthetic"
    rate: Annotated[float, Meta(ge=-0.05, le=0.5)] = 0.065
    """Continuous compounding; discounts premiums (and carries spot in ``spot`` mode)."""
    dividend_yield: Annotated[float, Meta(ge=0, le=0.5)] = 0.0
    """Used by ``spot`` mode only."""
    iv_price: Literal["mid", "ltp"] = "mid"
    """``mid`` falls back to LTP when a side is missing or the spread is wider than allowed."""
    max_spread_pct: PositiveFloat = 25.0
    """A mid is 'sane' when (ask − bid) / mid ≤ this percentage."""


class SmartMoneyConfig(Base, frozen=True):
    """Detector thresholds: the seed's ``SmartMoneyConfig`` defaults plus implicit knobs.

    Units are stated per field; kernels/detect_contract.py documents every rule.
    """

    volume_spike_threshold: PositiveFloat = 1.5
    volume_burst_threshold: PositiveFloat = 2.5
    volume_aggressive_threshold: PositiveFloat = 3.5
    trap_low_oi_threshold: PositiveFloat = 50.0
    """Lots (contracts)."""
    trap_noise_gamma_threshold: PositiveFloat = 0.02
    """Change of delta for a 1 % move of the underlying."""
    trap_theta_aggressive_threshold: PositiveFloat = 0.5
    """|theta per calendar day| / premium."""
    fresh_position_oi_jump: PositiveFloat = 0.1
    fresh_position_volume_surge: PositiveFloat = 2.0
    fresh_position_max_age_seconds: PositiveFloat = 300.0
    ce_pe_atm_range: PositiveFloat = 5.0
    ce_pe_control_threshold: Annotated[float, Meta(gt=0.5, lt=1)] = 0.55
    oi_stale_s: PositiveFloat = 180.0
    """OI unchanged this long while the contract trades is reported as stale, not 'OI flat'."""
    buildup_horizon_s: Annotated[float, Meta(gt=0, le=1800)] = 120.0
    """OI, premium and volume changes are read over this rolling window (whole bars)."""
    buildup_oi_z: PositiveFloat = 4.0
    """An OI change counts at this multiple of the contract's typical change over the horizon."""
    buildup_price_z: PositiveFloat = 1.0
    """...and a premium move at this multiple of its typical move."""
    buildup_min_oi_lots: NonNegFloat = 10.0
    """Floor: smallest OI change (lots) over the horizon that counts."""
    buildup_min_oi_change_pct: PositiveFloat = 0.5
    """Floor: smallest OI change (% of OI a horizon ago) that counts."""
    buildup_min_price_change_pct: PositiveFloat = 0.5
    """Floor: smallest premium change (%) over the horizon that counts."""
    noise_memory_s: PositiveFloat = 600.0
    """How long a contract's typical OI and premium changes are remembered."""
    warmup_noise_pct: PositiveFloat = 1.0
    """Until a contract's own noise is known: its typical change, in % of its OI and premium."""
    volume_baseline_s: PositiveFloat = 300.0
    """How long a contract's normal bar volume is remembered (surges are winsorised out)."""
    min_baseline_bars: Annotated[int, Meta(ge=1, le=30)] = 3
    battle_window_bars: Annotated[int, Meta(ge=1, le=30)] = 12
    theta_crush_dte_days: PositiveFloat = 2.0
    liquidity_max_delta: Fraction = 0.1
    liquidity_max_spread_pct: PositiveFloat = 20.0
    reversal_retrace: Fraction = 0.5
    reversal_lookback_bars: Annotated[int, Meta(ge=1, le=30)] = 6
    reversal_min_range_ticks: PositiveFloat = 4.0
    """A failed breakout needs a bar at least this many ticks high to count as one."""
    explosive_gamma_rise_pct: PositiveFloat = 5.0
    trap_block_probability: Fraction = 0.75
    min_signal_probability: Fraction = 0.5
    """can_trade needs at least this smart-money probability."""
    min_net_vote: Fraction = 0.2
    """Net directional vote (−1…1) below which the recommendation is NEUTRAL."""


# The seed's three tuning presets, applied on top of the defaults.
PROFILES: dict[str, dict[str, float]] = {
    "default": {},
    "volatile": {
        "volume_spike_threshold": 1.3,
        "fresh_position_oi_jump": 0.05,
        "trap_low_oi_threshold": 100.0,
    },
    "calm": {
        "volume_spike_threshold": 2.0,
        "fresh_position_oi_jump": 0.15,
        "trap_low_oi_threshold": 30.0,
    },
    "scalping": {
        "volume_spike_threshold": 1.2,
        "fresh_position_oi_jump": 0.03,
        "trap_low_oi_threshold": 200.0,
        "fresh_position_max_age_seconds": 60.0,
    },
}


class DetectorConfig(Base, frozen=True):
    """Smart-money detectors (seeds/phase4-integration-guide.md)."""

    profile: Literal["default", "volatile", "calm", "scalping"] = "default"
    bar_seconds: Annotated[int, Meta(ge=1, le=3600)] = 5
    overrides: dict[str, float] = msgspec.field(default_factory=dict)
    """Any ``SmartMoneyConfig`` threshold by name, applied on top of the profile."""
    whale_value_rupees: PositiveFloat = 5_000_000.0
    """A single interval (between two packets) trading at least this value is a whale print."""
    whale_volume_multiple: PositiveFloat = 3.0
    """...or at least this multiple of the contract's average interval quantity."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.overrides) - set(SmartMoneyConfig.__struct_fields__))
        if unknown:
            raise ValueError(f"detectors.overrides: unknown threshold `{unknown[0]}`")
        self.thresholds()

    def thresholds(self) -> SmartMoneyConfig:
        """The effective thresholds: defaults, then the profile, then the overrides."""
        values = {**PROFILES[self.profile], **self.overrides}
        try:
            return msgspec.convert(values, SmartMoneyConfig)
        except msgspec.ValidationError as e:
            raise ValueError(f"detectors.overrides: {e}") from None


class FlowConfig(Base, frozen=True):
    """Order-flow analytics (seeds/smart-money-framework.md)."""

    window_bars: Annotated[int, Meta(ge=1, le=30)] = 12
    """CVD, OFI and hidden-liquidity windows, in bars."""
    vwap_deviation_pct: PositiveFloat = 2.0
    """The seed's VWAP deviation threshold."""
    absorption_hidden_share: Fraction = 0.25
    """Hidden (iceberg) share of recent volume above which a contract is flagged as absorbing."""
    hold_below: Annotated[float, Meta(ge=-1, le=1)] = -0.2
    """Confluence below this (the future's flow contradicts the signal) → HOLD, size × 0."""
    execute_at: Annotated[float, Meta(ge=-1, le=1)] = 0.2
    strong_at: Annotated[float, Meta(ge=-1, le=1)] = 0.5
    size_from_flow: bool = True
    """Scale entries by the flow recommendation's size multiplier."""
    alerts_kept: PositiveInt = 500

    def __post_init__(self) -> None:
        if not self.hold_below < self.execute_at < self.strong_at:
            raise ValueError("flow: need hold_below < execute_at < strong_at")


class StrategyConfig(Base, frozen=True):
    """Seed Phase 5: entry, exit and sizing."""

    enabled: bool = True
    aggressive_lots: PositiveInt = 2
    normal_lots: PositiveInt = 1
    normal_entry_conviction: Fraction = 0.7
    target_pct: PositiveFloat = 10.0
    """Base profit target in % of entry premium; scaled up by a fresh position's strength."""
    stop_pct: PositiveFloat = 8.0
    """Base stop in % of entry premium; tightened as trap probability rises."""
    exit_cutoff_ist: HHMM = "15:10"
    """Flatten everything from this time on."""
    expiry_day_cutoff_ist: HHMM = "14:30"
    """On expiry day (DTE 0) theta crush starts earlier: no entries and exits from this time."""
    min_dte_for_entry: NonNegInt = 0
    kelly_fraction: Fraction = 0.25
    """Fraction of the Kelly stake to risk (capped Kelly: never more than this share)."""
    capital_rupees: PositiveFloat = 500_000.0
    """Capital the Kelly stake is a fraction of."""
    max_lots_per_signal: PositiveInt = 4
    cooldown_s: NonNegFloat = 30.0
    """No new entry on the same contract this soon after an exit."""
    contrary_min_probability: Fraction = 0.5
    """An opposite recommendation at least this probable exits the position."""
    intent_ttl_s: PositiveFloat = 5.0
    """An intent that cannot be sent within this long is dropped (the market has moved)."""
    # Exit management (strategy/exits.py states each rule); 0 turns a rule off.
    trailing_stop_pct: Annotated[float, Meta(ge=0, lt=100)] = 0.0
    """Exit once the mark falls this % below its highest since entry (the entry at least)."""
    breakeven_after_pct: NonNegFloat = 0.0
    """Once the mark has been this % above entry, a fall back to the entry price exits."""
    daily_profit_target_rupees: NonNegFloat = 0.0
    """Net day P&L (after charges, marked to market) at or above this: flatten, no more entries
    that day."""
    daily_loss_stop_rupees: NonNegFloat = 0.0
    """Net day P&L at or below minus this: flatten, no more entries that day (the kill switch,
    ``risk.max_daily_loss``, stays the hard limit)."""
    max_entries_per_contract: NonNegInt = 0
    """Entries per contract per day, the first included (0: no cap)."""
    theta_exit_ratio: NonNegFloat = 0.0
    """Theta-aware exit: when |theta per day| ÷ premium reaches this and the unrealised gain no
    longer covers the theta the rest of the session will take."""


class RiskConfig(Base, frozen=True):
    """Pre-trade checks applied to every intent before it can be sent."""

    max_open_positions: PositiveInt = 3
    max_lots_per_contract: PositiveInt = 4
    max_lots_per_underlying: PositiveInt = 8
    max_daily_loss: PositiveFloat = 5000.0
    """Rupees, realised plus marked-to-market; crossing it trips the kill switch."""
    price_band_pct: PositiveFloat = 5.0
    """A limit price further than this from the current LTP is refused."""
    orders_per_second: Annotated[int, Meta(ge=1, le=9)] = 9
    orders_per_minute: Annotated[int, Meta(ge=1, le=500)] = 500
    orders_per_hour: Annotated[int, Meta(ge=1, le=1000)] = 1000
    market_open_ist: HHMM = "09:15"
    market_close_ist: HHMM = "15:30"
    enforce_market_hours: bool = True
    """Sim mode may turn this off to trade a simulated session at any wall time."""
    flatten_on_kill: bool = True


class OrdersConfig(Base, frozen=True):
    """Order router and brokers."""

    broker: Literal["paper", "angel"] = "paper"
    product: Literal["INTRADAY", "CARRYFORWARD"] = "INTRADAY"
    protection_ticks: NonNegInt = 4
    """Marketable limit = best opposite price ± this many ticks (capped by the price band)."""
    chase_after_s: PositiveFloat = 3.0
    """An unfilled order is re-priced (modified) after this long..."""
    max_chases: NonNegInt = 3
    """...at most this many times, then cancelled."""
    on_shutdown: Literal["cancel_open", "leave"] = "cancel_open"
    paper_latency_ms: NonNegFloat = 50.0
    paper_partial_fill_pct: Annotated[float, Meta(ge=0, le=100)] = 0.0
    """Percent chance that a paper fill is split into two partial fills (deterministic seed)."""
    request_timeout_s: PositiveFloat = 5.0
    reconcile_interval_s: PositiveFloat = 2.0
    rest_url: str = "https://apiconnect.angelone.in"
    order_update_url: str = "wss://tns.angelone.in/smart-order-update"
    login_at_ist: HHMM = "08:45"
    """Live: a fresh TOTP login each morning before the open (sessions die at midnight)."""
    logout_at_ist: HHMM = "15:45"
    """Live: log out after the close (exchanges require a daily logout of API sessions)."""


class CostsConfig(Base, frozen=True):
    """``[costs]``: charges on each index-option fill (orders/charges.py; sources in README).

    Defaults as of 2026-12: Angel One's published F&O brokerage, STT per the Finance Act 2026
    (from 2026-04-01), exchange charges per the NSE and BSE circulars effective 2024-10-01.
    """

    enabled: bool = True
    brokerage_per_order: NonNegFloat = 20.0
    """Rupees per executed order..."""
    brokerage_pct: NonNegFloat = 0.25
    """...or this % of the order's premium turnover, whichever is lower."""
    stt_sell_pct: NonNegFloat = 0.15
    """Securities transaction tax, % of premium, sell side (0.1 from 2024-10-01 to 2026-03-31)."""
    exchange_pct_nse: NonNegFloat = 0.03503
    """NSE (NFO) index options transaction charge, % of premium, both sides."""
    exchange_pct_bse: NonNegFloat = 0.0325
    """BSE (BFO) SENSEX/BANKEX options transaction charge, % of premium, both sides."""
    sebi_per_crore: NonNegFloat = 10.0
    """SEBI turnover fee, rupees per crore of premium, both sides."""
    stamp_buy_pct: NonNegFloat = 0.003
    """Stamp duty, % of premium, buy side."""
    gst_pct: NonNegFloat = 18.0
    """GST on brokerage + exchange charge + SEBI fee."""


class ApiConfig(Base, frozen=True):
    """Local HTTP API, served by its own process from snapshots the trading loop publishes."""

    enabled: bool = True
    listen: str = "127.0.0.1:8321"
    """Loopback by default; any other address needs the ``api_token`` credential."""
    signals_kept: PositiveInt = 1000
    snapshot_interval_ms: Annotated[float, Meta(ge=50, le=10_000)] = 1000.0
    """The trading loop publishes what the API serves this often (and after a kill)."""
    max_concurrent: Annotated[int, Meta(ge=1, le=10_000)] = 32
    """Requests in flight at once; one more is answered 503 at once."""
    requests_per_second: Annotated[float, Meta(gt=0, le=100_000)] = 200.0
    """Sustained request rate (bursts up to one second's worth); above it: 429 at once."""
    idle_timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 15.0
    """A connection with no complete request for this long (idle or half-sent) is closed."""
    request_timeout_s: Annotated[float, Meta(gt=0, le=300)] = 15.0
    """A request (body, handler, a kill waiting for the trading loop) gets this long: 504."""
    error_log_interval_s: Annotated[float, Meta(gt=0, le=3600)] = 60.0
    """An unexpected error is logged the first time; repeats of the same kind as one count."""
    nice: Annotated[int, Meta(ge=0, le=19)] = 10
    """CPU priority of the API process below the trading process (``nice`` increment)."""

    def loopback(self) -> bool:
        """Whether ``listen`` binds a loopback address only."""
        host = self.listen.rpartition(":")[0].strip("[]")
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False  # a host name: it may resolve to anything


class FeedConfig(Base, frozen=True):
    """SmartStream client."""

    url: str = "wss://smartapisocket.angelone.in/smart-stream"
    """Live endpoint; sim mode points the client at the embedded simulator instead."""
    mode: Literal["ltp", "quote", "snap_quote"] = "snap_quote"
    ping_interval_s: PositiveFloat = 10.0
    stall_timeout_s: PositiveFloat = 30.0
    """No frame of any kind for this long → reconnect."""
    data_stall_s: PositiveFloat = 20.0
    """In market hours, no market data (binary packets; pongs do not count) for this long on a
    socket that carries subscriptions → the feed is stale: resubscribe; still silent after as long
    again → reconnect; then re-login; then keep reconnecting with backoff until data flows. The
    systemd watchdog is withheld once a stall outlasts those three steps."""
    subscribe_confirm_s: PositiveFloat = 5.0
    """SmartStream never acknowledges a subscription, only rejects one (E1001/E1002): a pair counts
    as confirmed once data arrived for it, or once this long passed without an error."""
    subscribe_retry_s: PositiveFloat = 2.0
    """First retry delay after a rejected subscription; doubles (with jitter) per failure."""
    subscribe_retry_max_s: PositiveFloat = 60.0
    token_silent_s: PositiveFloat = 120.0
    """A subscribed contract with no packet for this long (market time) while others of its
    exchange segment stream is listed as silent in the status API and counted in metrics."""
    backoff_initial_s: PositiveFloat = 0.5
    backoff_max_s: PositiveFloat = 30.0
    healthy_after_s: PositiveFloat = 30.0
    """A connection that lived this long resets the backoff."""
    max_sockets: Annotated[int, Meta(ge=1, le=3)] = 3
    max_tokens_per_socket: Annotated[int, Meta(ge=1, le=1000)] = 1000
    subscribe_batch: Annotated[int, Meta(ge=1, le=1000)] = 500
    open_timeout_s: PositiveFloat = 10.0


ScenarioKind = Literal[
    "long_build_up",
    "short_build_up",
    "short_covering",
    "long_unwinding",
    "fresh_position",
    "scalper_trap",
    "theta_crush",
    "whale",
    "iceberg",
]


StrengthGrade = Literal["weak", "moderate", "strong"]
# What each grade means as a number (sim/market.py turns it into volume, OI and premium moves).
STRENGTH_GRADES: dict[str, float] = {"weak": 0.5, "moderate": 1.0, "strong": 2.0}


class ScenarioConfig(Base, frozen=True):
    """One injected market behaviour, logged by the simulator as ground truth.

    ``start_s`` and ``strike_offset`` take a number or a range ``[low, high]``; a range is drawn
    from once per simulator seed (the same seed always draws the same onset and strike).
    """

    kind: ScenarioKind
    start_s: float | list[float]
    """Seconds after the simulated session starts, or a range to draw the onset from."""
    underlying: str = ""
    """Root it applies to; empty means the first of ``market.underlyings``."""
    duration_s: PositiveFloat = 30.0
    strike_offset: int | list[int] = 0
    """Strikes from ATM at session start (0 = ATM, +2 = two strikes above), or a range."""
    side: Literal["CE", "PE"] = "CE"
    strength: float | StrengthGrade = 1.0
    """``weak`` (0.5), ``moderate`` (1.0), ``strong`` (2.0), or a number in (0, 10]."""

    def __post_init__(self) -> None:
        start = self.start_s if isinstance(self.start_s, list) else [self.start_s, self.start_s]
        if len(start) != 2 or not 0 <= start[0] <= start[1]:
            raise ValueError("start_s: need seconds ≥ 0 or a range [low, high], 0 ≤ low ≤ high")
        offset = self.strike_offset
        if isinstance(offset, list) and (len(offset) != 2 or offset[0] > offset[1]):
            raise ValueError("strike_offset: need an integer or a range [low, high], low ≤ high")
        if not isinstance(self.strength, str) and not 0 < self.strength <= 10:
            raise ValueError("strength: need weak | moderate | strong or a number in (0, 10]")

    def strength_value(self) -> float:
        """The strength as a number (a grade's value, or the number given)."""
        if isinstance(self.strength, str):
            return STRENGTH_GRADES[self.strength]
        return self.strength


class SimConfig(Base, frozen=True):
    """Embedded simulator (mode = "sim")."""

    host: str = "127.0.0.1"
    port: Port = 0
    """0 picks a free port."""
    external_url: str = ""
    """http://HOST:PORT of a simulator already running (``smartflow sim``); empty starts one
    inside the daemon."""
    seed: int = 7
    iv_atm: Annotated[float, Meta(gt=0, le=3)] = 0.13
    """At-the-money implied volatility of the simulated chain (a smile is applied around it)."""
    spot_vol: Annotated[float, Meta(ge=0, le=3)] = 0.13
    """Realised volatility of the index random walk; 0 keeps spot fixed."""
    rate: Annotated[float, Meta(ge=0, le=0.5)] = 0.065
    strikes_each_side: Annotated[int, Meta(ge=1, le=200)] = 40
    """Strikes listed each side of ATM in the simulated scrip master."""
    days_to_expiry: Annotated[float, Meta(ge=0, le=60)] = 2.0
    """Calendar days from the session date to the nearest weekly expiry (0 = expiry day)."""
    session_start_ist: HHMM = "09:20"
    """The simulated session begins at this IST time on the current (or next) weekday."""
    speed: Annotated[float, Meta(gt=0, le=100)] = 1.0
    """Simulated seconds per wall second."""
    ticks_per_second: PositiveFloat = 200.0
    """Option and future packets per simulated second across each chain (busier near ATM)."""
    index_interval_s: PositiveFloat = 1.0
    index_token_form: Literal["prefixed", "bare", "both"] = "prefixed"  # noqa: S105
    """Stream the index as 99926000 (prefixed), as 26000 (bare) or under both tokens."""
    oi_publish: Literal["per_trade", "periodic"] = "periodic"
    """``per_trade``: every trade's packet carries the open interest it leaves (OI moves in
    lot-sized steps on most ticks); ``periodic``: each contract's OI is published only every
    ``oi_period_s`` (drawn per publication), in lumps, whatever happens in between."""
    oi_period_s: tuple[float, float] = (10.0, 30.0)
    """[low, high] seconds between two OI publications of a contract (``periodic`` only)."""
    oi_lots_atm: PositiveInt = 30_000
    """Open interest of the at-the-money weekly at the session start, in lots (other contracts
    scale with their activity): ~30 minutes of its usual volume. Smaller means the same trading
    moves OI by more percent."""
    scenarios: list[ScenarioConfig] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        low, high = self.oi_period_s
        if not 0 < low <= high:
            raise ValueError("oi_period_s: need [low, high] seconds with 0 < low ≤ high")


class LogConfig(Base, frozen=True):
    """Structured logging."""

    format: Literal["auto", "json", "console"] = "auto"
    """``auto``: console renderer on a TTY, JSON lines otherwise."""
    level: Literal["debug", "info", "warning", "error"] = "info"
    stats_interval_s: PositiveFloat = 10.0


class HistoryConfig(Base, frozen=True):
    """``[history]``: chain history in ``state_dir/history.sqlite3`` (analytics/summary.py)."""

    enabled: bool = True
    """Daily ATM-IV closes (IV rank), closing OI (next day's ΔOI) and one-minute snapshots."""
    retention_days: Annotated[int, Meta(ge=1, le=3650)] = 30
    """Intraday snapshots older than this many days are deleted (daily closes are kept)."""
    prev_close_oi_data: bool = True
    """At start, load the previous session's closing OI (ΔOI baselines) from Angel's historical
    OI endpoint (the simulator's in sim mode); else, or when it fails, the previous day's own
    record in state_dir; else ΔOI counts from the day's first print."""
    prev_close_budget_s: Annotated[float, Meta(gt=0, le=600)] = 90.0
    """Give up loading from the endpoint after this long (the daemon runs meanwhile)."""
    prev_close_requests_per_s: Annotated[float, Meta(gt=0, le=3)] = 2.0
    """Request pace; Angel publishes no limit for getOIData, so getCandleData's 3/s caps it."""


AlertKind = Literal[
    "signal",
    "order_sent",
    "order_filled",
    "order_partial",
    "order_rejected",
    "kill_tripped",
    "kill_reset",
    "feed_stall",
    "reconnect_storm",
    "relogin_failed",
    "loss_warning",
    "daemon_start",
    "daemon_stop",
    "daily_summary",
    "approval",
]


class TelegramConfig(Base, frozen=True):
    """``[alerts.telegram]``: a bot that sends alerts and takes commands (token: credential)."""

    enabled: bool = False
    api_url: str = "https://api.telegram.org"
    """Bot API server (tests point it at a local fake; a self-hosted Bot API server works too)."""
    chat_ids: list[int] = msgspec.field(default_factory=list)
    """Chats that receive alerts and whose commands are obeyed; any other chat is refused."""
    commands: bool = True
    """Poll for commands (getUpdates) from the allow-listed chats."""
    poll_timeout_s: Annotated[int, Meta(ge=0, le=50)] = 25
    """Long-poll timeout of getUpdates."""


class WebhookConfig(Base, frozen=True):
    """``[alerts.webhook]``: JSON POST of every alert, HMAC-SHA256-signed (secret: credential)."""

    enabled: bool = False
    url: str = ""
    timeout_s: PositiveFloat = 5.0


class AlertsConfig(Base, frozen=True):
    """``[alerts]``: alerts and remote control, never in the order path (README "Alerts")."""

    enabled: bool = False
    kinds_off: list[AlertKind] = msgspec.field(default_factory=list)
    """Event kinds not to send (every kind is on otherwise)."""
    queue_size: Annotated[int, Meta(ge=1, le=100_000)] = 256
    """Alerts waiting per sink; when full, the newest is dropped and counted."""
    max_attempts: Annotated[int, Meta(ge=1, le=20)] = 4
    retry_initial_s: PositiveFloat = 1.0
    """First retry delay; doubles per failed attempt (with jitter) up to ``retry_max_s``."""
    retry_max_s: PositiveFloat = 30.0
    signal_interval_s: NonNegFloat = 60.0
    """At most one tradable-signal alert per contract this often (and per underlying)."""
    reconnect_storm: Annotated[int, Meta(ge=2)] = 5
    """This many feed reconnects within ``reconnect_window_s`` is a storm."""
    reconnect_window_s: PositiveFloat = 300.0
    loss_warning_pct: Annotated[float, Meta(gt=0, lt=100)] = 80.0
    """Warn once a day when the day's loss reaches this % of ``risk.max_daily_loss``."""
    summary_after_close: bool = True
    """Send the day's summary (trades, P&L, best and worst) once the market has closed."""
    approval: Literal["auto", "manual"] = "auto"
    """``manual``: each entry waits for Approve in Telegram; it still passes every risk check."""
    approval_timeout_s: PositiveFloat = 60.0
    """An entry not approved within this long is dropped (journaled as expired)."""
    telegram: TelegramConfig = msgspec.field(default_factory=TelegramConfig)
    webhook: WebhookConfig = msgspec.field(default_factory=WebhookConfig)

    def __post_init__(self) -> None:
        if self.webhook.enabled and not self.webhook.url.startswith(("http://", "https://")):
            raise ValueError("alerts.webhook.url: need an http:// or https:// URL")
        if self.telegram.enabled and not self.telegram.chat_ids:
            raise ValueError("alerts.telegram.chat_ids: need at least one chat id to alert")
        if self.telegram.enabled and not self.telegram.api_url.startswith(("http://", "https://")):
            raise ValueError("alerts.telegram.api_url: need an http:// or https:// URL")
        if self.approval == "manual" and not (
            self.enabled and self.telegram.enabled and self.telegram.commands
        ):
            raise ValueError(
                "alerts.approval = 'manual' needs alerts, alerts.telegram and its commands enabled"
            )
        if self.approval == "manual" and "approval" in self.kinds_off:
            raise ValueError("alerts.kinds_off: 'approval' cannot be off with approval = 'manual'")


class Config(Base, frozen=True):
    """The whole daemon configuration."""

    mode: Literal["sim", "live"] = "sim"
    state_dir: str = "state"
    """Journal, tapes and scrip-master cache; relative paths are relative to the working dir."""
    market: MarketConfig = msgspec.field(default_factory=MarketConfig)
    model: ModelConfig = msgspec.field(default_factory=ModelConfig)
    detectors: DetectorConfig = msgspec.field(default_factory=DetectorConfig)
    flow: FlowConfig = msgspec.field(default_factory=FlowConfig)
    strategy: StrategyConfig = msgspec.field(default_factory=StrategyConfig)
    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)
    orders: OrdersConfig = msgspec.field(default_factory=OrdersConfig)
    costs: CostsConfig = msgspec.field(default_factory=CostsConfig)
    api: ApiConfig = msgspec.field(default_factory=ApiConfig)
    feed: FeedConfig = msgspec.field(default_factory=FeedConfig)
    sim: SimConfig = msgspec.field(default_factory=SimConfig)
    log: LogConfig = msgspec.field(default_factory=LogConfig)
    history: HistoryConfig = msgspec.field(default_factory=HistoryConfig)
    alerts: AlertsConfig = msgspec.field(default_factory=AlertsConfig)

    def __post_init__(self) -> None:
        if self.alerts.approval == "manual" and (
            self.alerts.approval_timeout_s > self.strategy.intent_ttl_s
        ):
            raise ValueError(
                f"alerts.approval_timeout_s ({self.alerts.approval_timeout_s:g}) exceeds "
                f"strategy.intent_ttl_s ({self.strategy.intent_ttl_s:g}): an entry approved "
                "after its TTL is refused as expired; raise strategy.intent_ttl_s"
            )
        if self.mode == "sim" and self.orders.broker != "paper":
            raise ValueError("orders.broker must be 'paper' when mode = 'sim'")
        if self.market.expiry:
            try:
                dt.date.fromisoformat(self.market.expiry)
            except ValueError:
                raise ValueError("market.expiry must be YYYY-MM-DD or empty") from None
        # Index and future, plus ATM ± N strikes × CE/PE of every expiry, per underlying.
        m = self.market
        pairs = len(m.underlyings) * (2 + m.expiries * 2 * (2 * m.strikes_each_side + 1))
        budget = self.feed.max_sockets * self.feed.max_tokens_per_socket
        if pairs > budget:
            raise ValueError(
                f"market.expiries: {m.expiries} expiries of {len(m.underlyings)} underlyings at "
                f"ATM ± {m.strikes_each_side} strikes stream {pairs} tokens, more than the feed's "
                f"{budget} (feed.max_sockets × feed.max_tokens_per_socket)"
            )
        for name in self.market.underlyings:
            if not re.fullmatch(r"[A-Z0-9&-]{1,20}", name):
                raise ValueError(f"market.underlyings: {name!r} is not a scrip-master root")
        host, _, port = self.api.listen.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("api.listen must be HOST:PORT")


_UNKNOWN = re.compile(
    r"Object contains unknown field `(?P<field>[^`]+)`(?: - at `\$(?P<path>[^`]*)`)?"
)
_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$")


def _dotted(path: str) -> str:
    # msgspec paths look like ".market.underlyings[0]"
    return path.lstrip(".")


def _explain(e: msgspec.ValidationError | msgspec.DecodeError) -> str:
    text = str(e)
    m = _UNKNOWN.match(text)
    if m:
        where = _dotted(m["path"] or "")
        key = f"{where}.{m['field']}" if where else m["field"]
        return f"unknown key `{key}`"
    m = _AT.match(text)
    if m and m["path"]:
        return f"key `{_dotted(m['path'])}`: {m['msg']}"
    return text


def decode(data: bytes | str, source: str = "<config>") -> Config:
    """Decode TOML text into a ``Config``; errors name ``source`` and the offending key."""
    try:
        return msgspec.toml.decode(data, type=Config)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise ConfigError(f"{source}: {_explain(e)}") from None


def load(path: str | os.PathLike[str] | None) -> Config:
    """Load the config file at ``path`` (``None`` means all defaults: sim mode, paper orders)."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read config ({e.strerror})") from None
    return decode(data, str(p))


def fingerprint(config: Config) -> str:
    """Return a short sha256 of the effective config, logged at start to tie runs to configs."""
    return hashlib.sha256(msgspec.json.encode(config)).hexdigest()[:16]


def to_builtins(config: Config) -> dict[str, Any]:
    """Return the effective config as plain data (for ``check-config``)."""
    out: dict[str, Any] = msgspec.to_builtins(config)
    return out


class Secret:
    """A credential value that never shows itself in ``repr``, ``str``, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the real value; call only where it is sent to the broker."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


SECRET_NAMES = (
    "api_key",
    "client_code",
    "pin",
    "totp_secret",
    "kill_token",
    "api_token",
    "telegram_token",
    "webhook_secret",
)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """Broker credentials and the kill-switch token, each possibly missing."""

    api_key: Secret | None = None
    client_code: Secret | None = None
    pin: Secret | None = None
    totp_secret: Secret | None = None
    kill_token: Secret | None = None
    api_token: Secret | None = None
    """Required on every API route when ``[api] listen`` is not a loopback address."""
    telegram_token: Secret | None = None
    """The bot's token from @BotFather (``[alerts.telegram]``)."""
    webhook_secret: Secret | None = None
    """HMAC-SHA256 key of the webhook's signature header (``[alerts.webhook]``)."""

    def missing(self, names: tuple[str, ...] = SECRET_NAMES[:4]) -> list[str]:
        """Return the names (of ``names``) that have no value."""
        return [n for n in names if not getattr(self, n)]

    def values(self) -> list[str]:
        """Every credential value that is set (for the log redactor)."""
        return [s.reveal() for n in SECRET_NAMES if (s := getattr(self, n))]

    def redacted(self) -> dict[str, str]:
        """Return which secrets are set, never their values."""
        return {n: ("set" if getattr(self, n) else "missing") for n in SECRET_NAMES}


def load_credentials(environ: Mapping[str, str] | None = None) -> Credentials:
    """Read secrets from ``$CREDENTIALS_DIRECTORY/<name>`` first, then ``SMARTFLOW_<NAME>``.

    The credential files are the ones systemd's ``LoadCredential=`` places (see deploy/); the
    environment is for development shells.
    """
    env = os.environ if environ is None else environ
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    values: dict[str, Secret] = {}
    for name in SECRET_NAMES:
        value = ""
        if cred_dir:
            f = Path(cred_dir) / name
            if f.is_file():
                value = f.read_text(encoding="utf-8").strip()
        if not value:
            value = env.get(f"SMARTFLOW_{name.upper()}", "").strip()
        if value:
            values[name] = Secret(value)
    return Credentials(**values)
