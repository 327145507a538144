"""Exit management beyond target and stop: the same rules live, on paper and in backtests.

Each rule is off at 0 (``[strategy]`` keys); each exit's reason starts with the rule's name,
which the order journals and ``exit_kind`` reads back.

- **trailing stop** (``trailing_stop_pct``): exit when the mark (best bid) falls that % below
  the highest mark since entry, the entry price counting as the first mark;
- **break-even** (``breakeven_after_pct``): once the mark has been that % above entry, a mark
  back at or below the entry price exits;
- **theta** (``theta_exit_ratio``, the seed's "time-based exit if theta becomes too aggressive"):
  with θ the contract's theta per calendar day and ``left`` the share of the trading session
  (09:15–15:30 IST) still to run, exit when |θ| ÷ mark ≥ the ratio *and* the unrealised gain per
  unit, mark − entry, is below |θ| × ``left``: the premium bleeds fast and what the position has
  made no longer pays for the decay still ahead today;
- **daily profit target / daily loss stop** (``daily_profit_target_rupees``,
  ``daily_loss_stop_rupees``): on the day's net P&L (realised + marked to market − charges),
  flatten every position and take no new entry until the next IST day;
- **re-entry cap** (``max_entries_per_contract``): at most that many entries per contract per day.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from smartflow.config import StrategyConfig
from smartflow.core.timeutil import ist_datetime


SESSION_OPEN = dt.time(9, 15)
SESSION_CLOSE = dt.time(15, 30)
SESSION_S = 6 * 3600 + 15 * 60
EXIT_KINDS = (
    "daily profit target",
    "daily loss stop",
    "trailing stop",
    "break-even",
    "theta",
    "target",
    "stop",
    "time exit",
    "contrary signal",
)


def exit_kind(reason: str) -> str:
    """The rule an exit reason names (``other`` for a reason no rule wrote, e.g. a kill)."""
    for kind in EXIT_KINDS:
        if reason.startswith(kind):
            return kind
    return "other"


def session_left(now_ns: int) -> float:
    """Share of today's trading session still to run, 0 to 1."""
    t = ist_datetime(now_ns).time()
    elapsed = (t.hour - SESSION_OPEN.hour) * 3600 + (t.minute - SESSION_OPEN.minute) * 60 + t.second
    return min(1.0, max(0.0, 1 - elapsed / SESSION_S))


def trailing_stop(pct: float, entry: float, peak: float, mark: float) -> str | None:
    """The trailing-stop exit reason, or None."""
    if pct <= 0:
        return None
    high = max(entry, peak)
    level = high * (1 - pct / 100)
    if mark <= level:
        return f"trailing stop {mark:.2f} ≤ {level:.2f} ({pct:g}% under the high {high:.2f})"
    return None


def break_even(pct: float, entry: float, peak: float, mark: float) -> str | None:
    """The break-even exit reason, or None."""
    if pct <= 0 or peak < entry * (1 + pct / 100):
        return None
    if mark <= entry:
        return f"break-even {mark:.2f} ≤ entry {entry:.2f} after +{100 * (peak / entry - 1):.1f}%"
    return None


def theta_exit(ratio: float, entry: float, mark: float, theta: float, left: float) -> str | None:
    """The theta-aware exit reason, or None (rule in the module docs)."""
    if ratio <= 0 or not math.isfinite(theta) or mark <= 0:
        return None
    burn = abs(theta) / mark
    ahead = abs(theta) * left
    if burn >= ratio and mark - entry < ahead:
        return (
            f"theta {burn:.2f}/day of premium ≥ {ratio:g}; gain {mark - entry:.2f} < "
            f"decay ahead today {ahead:.2f}"
        )
    return None


@dataclass
class DayBook:
    """Per-day state of the day-level rules: entries per contract and whether entries stopped."""

    day: str = ""
    entries: dict[str, int] = field(default_factory=dict)
    halted: str = ""
    """Why entries are stopped for the rest of the day (empty: they are not)."""

    def roll(self, day: str) -> None:
        """Start a new day's count when the IST date changes."""
        if day != self.day:
            self.day = day
            self.entries.clear()
            self.halted = ""


class ExitRules:
    """The rules of one ``[strategy]`` section, checked by ``Strategy``."""

    def __init__(self, cfg: StrategyConfig) -> None:
        self.cfg = cfg
        self.days = DayBook()

    def position_exit(
        self, entry: float, peak: float, mark: float, theta: float, now_ns: int
    ) -> str | None:
        """Trailing stop, break-even, then theta: the first that fires, or None."""
        c = self.cfg
        return (
            trailing_stop(c.trailing_stop_pct, entry, peak, mark)
            or break_even(c.breakeven_after_pct, entry, peak, mark)
            or theta_exit(c.theta_exit_ratio, entry, mark, theta, session_left(now_ns))
        )

    def day_exit(self, day: str, net_pnl: float) -> str | None:
        """The daily target or loss stop reason once net P&L reaches it (then entries halt)."""
        self.days.roll(day)
        c = self.cfg
        reason = None
        if c.daily_profit_target_rupees > 0 and net_pnl >= c.daily_profit_target_rupees:
            reason = f"daily profit target {net_pnl:+.2f} ≥ {c.daily_profit_target_rupees:g}"
        elif c.daily_loss_stop_rupees > 0 and net_pnl <= -c.daily_loss_stop_rupees:
            reason = f"daily loss stop {net_pnl:+.2f} ≤ -{c.daily_loss_stop_rupees:g}"
        if reason is not None and not self.days.halted:
            self.days.halted = reason
        return reason

    def entry_refusal(self, day: str, token: str) -> str | None:
        """Why no entry may be taken on ``token`` today, or None."""
        self.days.roll(day)
        if self.days.halted:
            return self.days.halted
        cap = self.cfg.max_entries_per_contract
        if cap and self.days.entries.get(token, 0) >= cap:
            return f"re-entry cap: {cap} entries on this contract today"
        return None

    def entered(self, day: str, token: str) -> None:
        """Count an entry."""
        self.days.roll(day)
        self.days.entries[token] = self.days.entries.get(token, 0) + 1
