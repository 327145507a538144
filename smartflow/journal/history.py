"""Chain history: daily ATM-IV closes, closing OI per contract, one-minute intraday snapshots.

One SQLite file in ``state_dir`` (``history.sqlite3``, WAL), separate from the order journal: it
is analytics, not a record of side effects, and it may be rebuilt or deleted without touching
orders. Queryable with the ``sqlite3`` shell.

* ``daily_iv``: one ATM IV per underlying and IST day: the last one seen in market hours (the
  close), or one imported with ``smartflow history import-iv``. IV rank and percentile read it.
* ``oi_close``: each contract's OI at the last bar close of a day, by token: the next session's
  ΔOI baseline.
* ``minute`` / ``minute_strike``: the chain summary (JSON) and per-strike OI, ΔOI, IV and LTP
  at the first bar close of each minute; kept ``retention_days`` days.

Callers run it off the bar-close path (the daemon's history task); every method is synchronous.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from smartflow.core.timeutil import iso_ist


SCHEMA = """
CREATE TABLE IF NOT EXISTS daily_iv (
    underlying TEXT NOT NULL,
    day TEXT NOT NULL,                  -- IST date, YYYY-MM-DD
    atm_iv REAL NOT NULL,               -- fraction (0.1432)
    source TEXT NOT NULL,               -- live | import
    PRIMARY KEY (underlying, day)
);
CREATE TABLE IF NOT EXISTS oi_close (
    underlying TEXT NOT NULL,
    day TEXT NOT NULL,
    token TEXT NOT NULL,
    oi INTEGER NOT NULL,                -- units (contracts × lot)
    PRIMARY KEY (underlying, day, token)
);
CREATE TABLE IF NOT EXISTS minute (
    underlying TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,             -- the bar close it was taken at
    day TEXT NOT NULL,
    summary BLOB NOT NULL,              -- the ChainSummary as JSON, per-strike rows left out
    PRIMARY KEY (underlying, ts_ns)
);
CREATE INDEX IF NOT EXISTS minute_day ON minute (underlying, day);
CREATE TABLE IF NOT EXISTS minute_strike (
    underlying TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    strike REAL NOT NULL,
    option_type TEXT NOT NULL,          -- CE | PE
    oi INTEGER NOT NULL,
    oi_change INTEGER NOT NULL,
    iv REAL,
    ltp REAL,
    PRIMARY KEY (underlying, ts_ns, strike, option_type)
);
"""

IV_COLUMNS = ("atm_iv", "atm_iv_pct")
STRIKE_COLUMNS = ("strike", "option_type", "oi", "oi_change", "iv", "ltp")


class HistoryError(ValueError):
    """Bad input to the history store (the message names the field and line)."""


StrikeRow = tuple[float, str, int, int, float | None, float | None]


class HistoryStore:
    """The history file."""

    def __init__(self, path: Path | str, readonly: bool = False) -> None:
        """Open (or create) the file; ``readonly`` for readers beside the daemon's writer."""
        self.path = str(path)
        if readonly:
            if not Path(self.path).exists():
                raise FileNotFoundError(f"{self.path}: no history recorded yet")
            uri = Path(self.path).resolve().as_uri() + "?mode=ro"
            self.db = sqlite3.connect(uri, uri=True, isolation_level=None)
            return
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        """Close the file."""
        self.db.close()

    # ---- daily ATM-IV closes ----------------------------------------------------------------

    def put_daily_iv(self, underlying: str, day: dt.date, atm_iv: float, source: str) -> None:
        """Record (or replace) one day's ATM-IV close."""
        if not (math.isfinite(atm_iv) and atm_iv > 0):
            raise HistoryError(f"atm_iv: expected a positive fraction, got {atm_iv!r}")
        self.db.execute(
            "INSERT OR REPLACE INTO daily_iv VALUES (?, ?, ?, ?)",
            (underlying, day.isoformat(), atm_iv, source),
        )

    def daily_iv(self, underlying: str, before: dt.date, limit: int = 252) -> list[float]:
        """The last ``limit`` ATM-IV closes strictly before ``before``, oldest first."""
        rows = self.db.execute(
            "SELECT atm_iv FROM daily_iv WHERE underlying = ? AND day < ? "
            "ORDER BY day DESC LIMIT ?",
            (underlying, before.isoformat(), limit),
        ).fetchall()
        return [float(r[0]) for r in reversed(rows)]

    def import_iv_csv(self, path: Path) -> int:
        """Seed daily closes from a CSV; all rows or none are written.

        The header names ``date`` (YYYY-MM-DD), ``underlying`` and ``atm_iv`` (a fraction) or
        ``atm_iv_pct`` (percent); other columns are ignored.

        Raises:
            HistoryError: a missing column or a bad value, naming the field and line.
        """
        rows: list[tuple[str, str, float]] = []
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            fields = set(reader.fieldnames or ())
            iv_col = next((c for c in IV_COLUMNS if c in fields), None)
            for need in ("date", "underlying"):
                if need not in fields:
                    raise HistoryError(f"{path}: missing column `{need}`")
            if iv_col is None:
                raise HistoryError(f"{path}: missing column `atm_iv` (or `atm_iv_pct`)")
            for line, rec in enumerate(reader, start=2):
                try:
                    day = dt.date.fromisoformat((rec["date"] or "").strip())
                except ValueError:
                    raise HistoryError(
                        f"{path}:{line}: date: expected YYYY-MM-DD, got {rec['date']!r}"
                    ) from None
                underlying = (rec["underlying"] or "").strip()
                if not underlying:
                    raise HistoryError(f"{path}:{line}: underlying: empty")
                try:
                    iv = float(rec[iv_col] or "")
                except ValueError:
                    raise HistoryError(
                        f"{path}:{line}: {iv_col}: expected a number, got {rec[iv_col]!r}"
                    ) from None
                if iv_col == "atm_iv_pct":
                    iv /= 100.0
                if not (math.isfinite(iv) and 0 < iv < 5):
                    raise HistoryError(
                        f"{path}:{line}: {iv_col}: {rec[iv_col]!r} is not a volatility "
                        + ("in percent" if iv_col == "atm_iv_pct" else "as a fraction (0.14)")
                    )
                rows.append((underlying, day.isoformat(), iv))
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO daily_iv VALUES (?, ?, ?, 'import')", rows)
        return len(rows)

    # ---- closing OI -------------------------------------------------------------------------

    def put_oi_close(self, underlying: str, day: dt.date, oi_by_token: dict[str, int]) -> None:
        """Record a day's closing OI per token (replacing that day's record)."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute(
                "DELETE FROM oi_close WHERE underlying = ? AND day = ?",
                (underlying, day.isoformat()),
            )
            self.db.executemany(
                "INSERT INTO oi_close VALUES (?, ?, ?, ?)",
                [(underlying, day.isoformat(), t, oi) for t, oi in sorted(oi_by_token.items())],
            )

    def prev_oi_close(
        self, underlying: str, before: dt.date
    ) -> tuple[dt.date | None, dict[str, int]]:
        """The latest day before ``before`` with a closing-OI record, and that record."""
        row = self.db.execute(
            "SELECT MAX(day) FROM oi_close WHERE underlying = ? AND day < ?",
            (underlying, before.isoformat()),
        ).fetchone()
        if row is None or row[0] is None:
            return None, {}
        day = str(row[0])
        found = self.db.execute(
            "SELECT token, oi FROM oi_close WHERE underlying = ? AND day = ?", (underlying, day)
        ).fetchall()
        return dt.date.fromisoformat(day), {str(t): int(oi) for t, oi in found}

    # ---- one-minute snapshots ---------------------------------------------------------------

    def put_minute(
        self,
        underlying: str,
        ts_ns: int,
        day: dt.date,
        summary: dict[str, object],
        strikes: Iterable[StrikeRow],
    ) -> None:
        """Record one minute's summary and its per-strike rows."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute(
                "INSERT OR REPLACE INTO minute VALUES (?, ?, ?, ?)",
                (underlying, ts_ns, day.isoformat(), msgspec.json.encode(summary)),
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO minute_strike VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(underlying, ts_ns, *r) for r in strikes],
            )

    def minutes(
        self, underlying: str, day: dt.date, every_min: int = 1
    ) -> list[tuple[int, dict[str, object], list[StrikeRow]]]:
        """The day's snapshots, one every ``every_min`` minutes (the first of each interval)."""
        rows = self.db.execute(
            "SELECT ts_ns, summary FROM minute WHERE underlying = ? AND day = ? ORDER BY ts_ns",
            (underlying, day.isoformat()),
        ).fetchall()
        out = []
        last_bucket = None
        step = every_min * 60 * 1_000_000_000
        for ts_ns, blob in rows:
            bucket = int(ts_ns) // step
            if bucket == last_bucket:
                continue
            last_bucket = bucket
            strikes = self.db.execute(
                "SELECT strike, option_type, oi, oi_change, iv, ltp FROM minute_strike "
                "WHERE underlying = ? AND ts_ns = ? ORDER BY strike, option_type",
                (underlying, ts_ns),
            ).fetchall()
            out.append((int(ts_ns), msgspec.json.decode(blob), [tuple(s) for s in strikes]))
        return out

    def days(self, underlying: str | None = None) -> list[str]:
        """Days with intraday snapshots."""
        sql = "SELECT DISTINCT day FROM minute"
        args: Sequence[str] = ()
        if underlying is not None:
            sql += " WHERE underlying = ?"
            args = (underlying,)
        return [str(r[0]) for r in self.db.execute(sql + " ORDER BY day", args)]

    def purge(self, keep_from: dt.date) -> int:
        """Delete intraday snapshots of days before ``keep_from``; returns minutes deleted."""
        day = keep_from.isoformat()
        with self.db:
            self.db.execute("BEGIN")
            cur = self.db.execute("DELETE FROM minute WHERE day < ?", (day,))
            self.db.execute(
                "DELETE FROM minute_strike WHERE NOT EXISTS (SELECT 1 FROM minute m "
                "WHERE m.underlying = minute_strike.underlying AND m.ts_ns = minute_strike.ts_ns)"
            )
        return int(cur.rowcount)


def snapshots(
    store: HistoryStore, underlying: str, day: dt.date, every_min: int
) -> list[dict[str, Any]]:
    """A day's snapshots as JSON-ready dicts (``ts``, ``ts_ns``, ``summary``, ``strikes``)."""
    return [
        {
            "ts": iso_ist(ts_ns),
            "ts_ns": ts_ns,
            "summary": summary,
            "strikes": [
                {"strike": k, "option_type": t, "oi": oi, "oi_change": d, "iv": iv, "ltp": ltp}
                for k, t, oi, d, iv, ltp in strikes
            ],
        }
        for ts_ns, summary, strikes in store.minutes(underlying, day, every_min)
    ]
