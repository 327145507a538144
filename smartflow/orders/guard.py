"""Pre-trade risk checks and the kill switch.

Every intent passes ``RiskGuard.check`` before an order exists. Entries are refused while the
kill switch is tripped, outside market hours (IST), for an underlying not on the allowlist, past
the open-position or lot limits (orders in flight count), and once the day's loss — realised plus
marked to market — has reached the limit, which also trips the switch. Exits are always allowed
except outside market hours: an exit must still be able to flatten a position. Every order's
limit price must lie within the price band around the current LTP.

The kill switch is tripped by the loss limit, by ``POST /api/kill`` (bearer token) or by
``smartflow kill``; it cancels open orders, flattens positions if configured, and refuses entries
until reset. Its state is journalled, so a restart does not silently re-arm trading.
``smartflow kill`` reaches the daemon through the journal with a MAC under the kill token
(``kill_mac``), never the token itself: the daemon checks it against its own token.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from smartflow.config import RiskConfig
from smartflow.core.messages import OrderIntent
from smartflow.core.timeutil import is_market_hours, ist_datetime, parse_hhmm


@dataclass
class Exposure:
    """What is already on: positions and the orders in flight that may add to them."""

    open_positions: int
    lots_in_contract: int
    lots_in_underlying: int
    day_pnl: float
    """Realised plus marked-to-market, rupees."""


class RiskGuard:
    """Stateless checks plus the kill-switch flag."""

    def __init__(self, cfg: RiskConfig, underlyings: list[str]) -> None:
        self.cfg = cfg
        self.allowed = set(underlyings)
        self.open_at = parse_hhmm(cfg.market_open_ist)
        self.close_at = parse_hhmm(cfg.market_close_ist)
        self.killed = False
        self.kill_reason = ""

    def market_open(self, now_ns: int) -> bool:
        """True on a weekday between the configured open and close (IST)."""
        if not self.cfg.enforce_market_hours:
            return True
        return is_market_hours(now_ns, self.open_at, self.close_at)

    def check(
        self, intent: OrderIntent, price: float, ltp: float, exposure: Exposure, now_ns: int
    ) -> str | None:
        """Return why ``intent`` at limit ``price`` must be refused, or None to allow it."""
        cfg = self.cfg
        if not self.market_open(now_ns):
            return (
                f"outside market hours ({cfg.market_open_ist}-{cfg.market_close_ist} IST, "
                f"now {ist_datetime(now_ns):%a %H:%M:%S})"
            )
        if not (ltp > 0):
            return "no last traded price to check the limit price against"
        band = cfg.price_band_pct / 100
        if abs(price - ltp) > band * ltp:
            return f"limit {price:.2f} is outside ±{cfg.price_band_pct:g}% of LTP {ltp:.2f}"
        if intent.purpose == "EXIT":
            return None
        if self.killed:
            return f"kill switch is on ({self.kill_reason})"
        if intent.underlying not in self.allowed:
            return f"{intent.underlying} is not an allowed underlying"
        if exposure.day_pnl <= -cfg.max_daily_loss:
            return f"daily loss {exposure.day_pnl:.2f} has reached the limit {cfg.max_daily_loss:g}"
        if exposure.lots_in_contract == 0 and exposure.open_positions >= cfg.max_open_positions:
            return f"{exposure.open_positions} open positions (max {cfg.max_open_positions})"
        if exposure.lots_in_contract + intent.lots > cfg.max_lots_per_contract:
            return (
                f"{exposure.lots_in_contract}+{intent.lots} lots in {intent.symbol} "
                f"(max {cfg.max_lots_per_contract})"
            )
        if exposure.lots_in_underlying + intent.lots > cfg.max_lots_per_underlying:
            return (
                f"{exposure.lots_in_underlying}+{intent.lots} lots in {intent.underlying} "
                f"(max {cfg.max_lots_per_underlying})"
            )
        return None

    def loss_limit_hit(self, day_pnl: float) -> bool:
        """True when the day's P&L has reached the loss limit."""
        return day_pnl <= -self.cfg.max_daily_loss

    def trip(self, reason: str) -> bool:
        """Trip the kill switch; False when it was already on."""
        if self.killed:
            return False
        self.killed = True
        self.kill_reason = reason
        return True

    def reset(self) -> None:
        """Re-arm trading."""
        self.killed = False
        self.kill_reason = ""


def kill_mac(token: str, nonce: str, action: str, reason: str) -> str:
    """HMAC-SHA256 binding one kill-switch request (nonce, action, reason) to the kill token."""
    msg = "\n".join((nonce, action, reason)).encode()
    return hmac.new(token.encode(), msg, hashlib.sha256).hexdigest()


def kill_mac_ok(token: str, nonce: str, action: str, reason: str, mac: str) -> bool:
    """Whether ``mac`` was made with ``token`` for this request (constant-time compare)."""
    return hmac.compare_digest(kill_mac(token, nonce, action, reason), mac)
