"""India Standard Time helpers: market hours, expiry instants, ISO timestamps."""

from __future__ import annotations

import datetime as dt


IST = dt.timezone(dt.timedelta(hours=5, minutes=30), "IST")
NS_PER_S = 1_000_000_000
SECONDS_PER_YEAR = 365 * 86_400
# Index options expire at the close of trading on expiry day (NSE and BSE both close at 15:30 IST).
EXPIRY_TIME_IST = dt.time(15, 30)
MARKET_OPEN_IST = dt.time(9, 15)
MARKET_CLOSE_IST = dt.time(15, 30)


def parse_hhmm(text: str) -> dt.time:
    """``"09:15"`` or ``"09:15:30"`` (config validates the pattern) as a time of day."""
    parts = [int(x) for x in text.split(":")]
    return dt.time(parts[0], parts[1], parts[2] if len(parts) > 2 else 0)


def expiry_ns(expiry: dt.date) -> int:
    """Return the Unix-epoch nanoseconds of 15:30 IST on ``expiry``."""
    instant = dt.datetime.combine(expiry, EXPIRY_TIME_IST, tzinfo=IST)
    return int(instant.timestamp()) * NS_PER_S


def iso_ist(ns: int) -> str:
    """Format Unix-epoch nanoseconds as ISO-8601 in IST with microseconds (replay output)."""
    seconds, rem = divmod(ns, NS_PER_S)
    instant = dt.datetime.fromtimestamp(seconds, tz=IST).replace(microsecond=rem // 1000)
    return instant.isoformat(timespec="microseconds")


def ist_datetime(ns: int) -> dt.datetime:
    """Return the IST wall time of Unix-epoch nanoseconds."""
    return dt.datetime.fromtimestamp(ns / NS_PER_S, tz=IST)


def ist_date(ns: int) -> dt.date:
    """Return the IST calendar date of Unix-epoch nanoseconds."""
    return ist_datetime(ns).date()


def ns_at_ist(day: dt.date, at: dt.time) -> int:
    """Return the Unix-epoch nanoseconds of wall time ``at`` IST on ``day``."""
    return int(dt.datetime.combine(day, at, tzinfo=IST).timestamp()) * NS_PER_S


def is_market_hours(
    ns: int, open_at: dt.time = MARKET_OPEN_IST, close_at: dt.time = MARKET_CLOSE_IST
) -> bool:
    """True on a weekday between ``open_at`` and ``close_at`` IST (holidays are not known)."""
    local = ist_datetime(ns)
    if local.weekday() >= 5:
        return False
    return open_at <= local.time() < close_at
