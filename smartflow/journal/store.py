"""The journal: one SQLite file (WAL) of orders, fills, positions, signals and risk events.

It holds every order with each of its state changes, fills, positions, signals, risk events and
kill-switch events. Writes happen on one dedicated thread (the single writer), so a commit's
fsync never blocks the event loop; the router awaits the commit of a new order *before* the
request leaves, which is what lets a restart find every order it may have sent. Positions are
updated in the same transaction as the fill that moves them. Queryable with the ``sqlite3``
shell; ``smartflow orders|positions|pnl`` read it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import msgspec


T = TypeVar("T")
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY,          -- our client order id, sent as Angel's ordertag
    day TEXT NOT NULL,                  -- IST trading day
    created_ns INTEGER NOT NULL,
    broker TEXT NOT NULL,
    underlying TEXT NOT NULL,
    token TEXT NOT NULL,
    symbol TEXT NOT NULL,
    exchange TEXT NOT NULL,
    side TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    lot_size INTEGER NOT NULL,
    limit_price REAL NOT NULL,
    purpose TEXT NOT NULL,              -- ENTRY | EXIT
    reason TEXT NOT NULL,
    state TEXT NOT NULL,                -- NEW SENT OPEN PARTIAL FILLED CANCELLED REJECTED UNKNOWN
    broker_order_id TEXT,
    filled_quantity INTEGER NOT NULL DEFAULT 0,
    average_price REAL NOT NULL DEFAULT 0,
    chases INTEGER NOT NULL DEFAULT 0,
    updated_ns INTEGER NOT NULL,
    text TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS orders_day_state ON orders (day, state);
CREATE TABLE IF NOT EXISTS order_events (
    id INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS order_events_order ON order_events (order_id);
CREATE TABLE IF NOT EXISTS fills (
    fill_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    broker_order_id TEXT,
    day TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    token TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    price REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS positions (
    day TEXT NOT NULL,
    token TEXT NOT NULL,
    symbol TEXT NOT NULL,
    underlying TEXT NOT NULL,
    net_quantity INTEGER NOT NULL,
    average_price REAL NOT NULL,        -- of the open quantity
    realised_pnl REAL NOT NULL,
    updated_ns INTEGER NOT NULL,
    PRIMARY KEY (day, token)
);
CREATE TABLE IF NOT EXISTS signals (
    id INTEGER PRIMARY KEY,
    ts_ns INTEGER NOT NULL,
    underlying TEXT NOT NULL,
    recommendation TEXT NOT NULL,
    can_trade INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS risk_events (
    id INTEGER PRIMARY KEY,
    ts_ns INTEGER NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS kill_events (
    id INTEGER PRIMARY KEY,
    ts_ns INTEGER NOT NULL,
    action TEXT NOT NULL,               -- trip | reset
    source TEXT NOT NULL,
    reason TEXT NOT NULL
);
"""

OPEN_STATES = ("NEW", "SENT", "OPEN", "PARTIAL", "UNKNOWN")


class OrderRow(msgspec.Struct, kw_only=True):
    """An order as the journal stores it (mutable: the router updates it in place)."""

    order_id: str
    day: str
    created_ns: int
    broker: str
    underlying: str
    token: str
    symbol: str
    exchange: str
    side: str
    quantity: int
    lot_size: int
    limit_price: float
    purpose: str
    reason: str
    state: str = "NEW"
    broker_order_id: str | None = None
    filled_quantity: int = 0
    average_price: float = 0.0
    chases: int = 0
    updated_ns: int = 0
    text: str = ""


class FillRow(msgspec.Struct, frozen=True, kw_only=True):
    """One execution as stored."""

    fill_id: str
    order_id: str
    broker_order_id: str | None
    day: str
    ts_ns: int
    token: str
    symbol: str
    side: str
    quantity: int
    price: float


class PositionRow(msgspec.Struct, kw_only=True):
    """Net position of one contract on one day (average-cost accounting)."""

    day: str
    token: str
    symbol: str
    underlying: str
    net_quantity: int = 0
    average_price: float = 0.0
    realised_pnl: float = 0.0
    updated_ns: int = 0

    def apply_fill(self, side: str, quantity: int, price: float) -> float:
        """Move the position by one fill; return the P&L it realised."""
        signed = quantity if side == "BUY" else -quantity
        realised = 0.0
        if self.net_quantity == 0 or (self.net_quantity > 0) == (signed > 0):
            total = abs(self.net_quantity) + quantity
            self.average_price = (
                self.average_price * abs(self.net_quantity) + price * quantity
            ) / total
        else:
            closing = min(quantity, abs(self.net_quantity))
            direction = 1 if self.net_quantity > 0 else -1
            realised = (price - self.average_price) * closing * direction
            if quantity > abs(self.net_quantity):
                # Flipped through zero: the remainder opens at this price.
                self.average_price = price
        self.net_quantity += signed
        if self.net_quantity == 0:
            self.average_price = 0.0
        self.realised_pnl += realised
        return realised


_ORDER_COLS = list(OrderRow.__struct_fields__)
_POSITION_COLS = list(PositionRow.__struct_fields__)


class Journal:
    """SQLite journal with a single writer thread.

    Args:
        path: database file; ``":memory:"`` for replay and tests that need no file.
        synchronous: SQLite ``synchronous`` pragma (``FULL`` survives power loss).
    """

    def __init__(self, path: str | Path, synchronous: str = "FULL", readonly: bool = False) -> None:
        self.path = str(path)
        self.readonly = readonly
        if readonly and not Path(self.path).is_file():
            raise FileNotFoundError(f"no journal at {self.path}")
        if self.path != ":memory:" and not readonly:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self._lock = threading.Lock()
        self._db = self._pool.submit(self._open, synchronous).result()
        self.writes = 0

    def _open(self, synchronous: str) -> sqlite3.Connection:
        if self.readonly:
            # A second process (the CLI) reading beside a running daemon: WAL allows it.
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            db.row_factory = sqlite3.Row
            return db
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.row_factory = sqlite3.Row
        if self.path != ":memory:":
            db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(SCHEMA)
        db.execute(
            "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        return db

    # ---- plumbing -----------------------------------------------------------------------

    def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                out = fn(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            self.writes += 1
            return out

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one transaction on the writer thread and wait for it (blocking)."""
        return self._pool.submit(self._tx, fn).result()

    async def arun(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one transaction on the writer thread; await the commit."""
        return await asyncio.wrap_future(self._pool.submit(self._tx, fn))

    def query(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Read on the writer thread (reads see every committed write, in order)."""

        def q() -> list[sqlite3.Row]:
            with self._lock:
                return list(self._db.execute(sql, tuple(args)))

        return self._pool.submit(q).result()

    def close(self) -> None:
        """Checkpoint and close; idempotent."""

        def c() -> None:
            with self._lock:
                if self.path != ":memory:" and not self.readonly:
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._db.close()

        if not self._pool._shutdown:
            self._pool.submit(c).result()
            self._pool.shutdown(wait=True)

    # ---- orders -------------------------------------------------------------------------

    @staticmethod
    def _insert_order(db: sqlite3.Connection, o: OrderRow, detail: str) -> None:
        values = [getattr(o, c) for c in _ORDER_COLS]
        db.execute(
            f"INSERT INTO orders ({','.join(_ORDER_COLS)}) "  # noqa: S608 — fixed columns
            f"VALUES ({','.join('?' * len(values))})",
            values,
        )
        db.execute(
            "INSERT INTO order_events (order_id, ts_ns, state, detail) VALUES (?,?,?,?)",
            (o.order_id, o.updated_ns, o.state, detail),
        )

    @staticmethod
    def _update_order(db: sqlite3.Connection, o: OrderRow, detail: str) -> None:
        cols = [c for c in _ORDER_COLS if c != "order_id"]
        db.execute(
            f"UPDATE orders SET {','.join(c + '=?' for c in cols)} "  # noqa: S608
            "WHERE order_id=?",
            [*(getattr(o, c) for c in cols), o.order_id],
        )
        db.execute(
            "INSERT INTO order_events (order_id, ts_ns, state, detail) VALUES (?,?,?,?)",
            (o.order_id, o.updated_ns, o.state, detail),
        )

    async def new_order(self, o: OrderRow, detail: str = "") -> None:
        """Commit a new order (state NEW) — before anything is sent."""
        await self.arun(lambda db: self._insert_order(db, o, detail))

    async def order_state(self, o: OrderRow, detail: str = "") -> None:
        """Commit the order's current fields as a state change."""
        snapshot = msgspec.structs.replace(o)
        await self.arun(lambda db: self._update_order(db, snapshot, detail))

    def next_order_seq(self, day: str) -> int:
        """1 + the number of orders already journalled for ``day``."""
        rows = self.query("SELECT COUNT(*) AS n FROM orders WHERE day=?", (day,))
        return int(rows[0]["n"]) + 1

    def orders(self, day: str | None = None, open_only: bool = False) -> list[OrderRow]:
        """Orders, oldest first."""
        sql = "SELECT * FROM orders"
        cond, args = [], []
        if day:
            cond.append("day=?")
            args.append(day)
        if open_only:
            cond.append(f"state IN ({','.join('?' * len(OPEN_STATES))})")
            args += OPEN_STATES
        if cond:
            sql += " WHERE " + " AND ".join(cond)
        sql += " ORDER BY created_ns, order_id"
        return [OrderRow(**dict(r)) for r in self.query(sql, args)]

    def order_events(self, order_id: str) -> list[tuple[int, str, str]]:
        """(ts_ns, state, detail) of every state change of one order."""
        rows = self.query(
            "SELECT ts_ns, state, detail FROM order_events WHERE order_id=? ORDER BY id",
            (order_id,),
        )
        return [(r["ts_ns"], r["state"], r["detail"]) for r in rows]

    # ---- fills and positions ------------------------------------------------------------

    async def fill(self, f: FillRow, underlying: str, order: OrderRow) -> tuple[bool, float]:
        """Record a fill, its order's new state and the position it moves, atomically.

        Returns:
            (new: False when ``fill_id`` was already recorded, realised P&L of the fill).
        """
        snapshot = msgspec.structs.replace(order)

        def tx(db: sqlite3.Connection) -> tuple[bool, float]:
            cur = db.execute(
                "INSERT OR IGNORE INTO fills VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    f.fill_id,
                    f.order_id,
                    f.broker_order_id,
                    f.day,
                    f.ts_ns,
                    f.token,
                    f.symbol,
                    f.side,
                    f.quantity,
                    f.price,
                ),
            )
            if cur.rowcount == 0:
                return False, 0.0
            row = db.execute(
                "SELECT * FROM positions WHERE day=? AND token=?", (f.day, f.token)
            ).fetchone()
            pos = (
                PositionRow(**dict(row))
                if row
                else PositionRow(day=f.day, token=f.token, symbol=f.symbol, underlying=underlying)
            )
            realised = pos.apply_fill(f.side, f.quantity, f.price)
            pos.updated_ns = f.ts_ns
            db.execute(
                f"INSERT OR REPLACE INTO positions ({','.join(_POSITION_COLS)}) "  # noqa: S608
                f"VALUES ({','.join('?' * len(_POSITION_COLS))})",
                [getattr(pos, c) for c in _POSITION_COLS],
            )
            self._update_order(db, snapshot, f"fill {f.fill_id} {f.quantity}@{f.price}")
            return True, realised

        return await self.arun(tx)

    def fills(self, day: str | None = None) -> list[FillRow]:
        """Fills, oldest first."""
        if day:
            rows = self.query("SELECT * FROM fills WHERE day=? ORDER BY ts_ns, fill_id", (day,))
        else:
            rows = self.query("SELECT * FROM fills ORDER BY ts_ns, fill_id")
        return [FillRow(**dict(r)) for r in rows]

    def positions(self, day: str | None = None) -> list[PositionRow]:
        """Positions (open and closed) of ``day`` or every day."""
        if day:
            rows = self.query("SELECT * FROM positions WHERE day=? ORDER BY token", (day,))
        else:
            rows = self.query("SELECT * FROM positions ORDER BY day, token")
        return [PositionRow(**dict(r)) for r in rows]

    # ---- signals, risk, kill switch -----------------------------------------------------

    def signal(
        self, ts_ns: int, underlying: str, recommendation: str, can_trade: bool, body: bytes
    ) -> None:
        """Record an emitted signal (fire-and-forget on the writer thread)."""
        self._pool.submit(
            self._tx,
            lambda db: db.execute(
                "INSERT INTO signals (ts_ns, underlying, recommendation, can_trade, body) "
                "VALUES (?,?,?,?,?)",
                (ts_ns, underlying, recommendation, int(can_trade), body.decode()),
            ),
        )

    async def risk_event(self, ts_ns: int, kind: str, reason: str, detail: str = "") -> None:
        """Record a refused intent or another risk decision."""
        await self.arun(
            lambda db: db.execute(
                "INSERT INTO risk_events (ts_ns, kind, reason, detail) VALUES (?,?,?,?)",
                (ts_ns, kind, reason, detail),
            )
        )

    async def kill_event(self, ts_ns: int, action: str, source: str, reason: str) -> None:
        """Record a kill-switch trip or reset."""
        await self.arun(
            lambda db: db.execute(
                "INSERT INTO kill_events (ts_ns, action, source, reason) VALUES (?,?,?,?)",
                (ts_ns, action, source, reason),
            )
        )

    def kill_active(self) -> tuple[bool, str]:
        """Whether the last kill-switch event was a trip (it survives restarts) and why."""
        rows = self.query("SELECT action, reason FROM kill_events ORDER BY id DESC LIMIT 1")
        if rows and rows[0]["action"] == "trip":
            return True, str(rows[0]["reason"])
        return False, ""

    def risk_events(self) -> list[dict[str, Any]]:
        """Every risk event, oldest first."""
        return [dict(r) for r in self.query("SELECT * FROM risk_events ORDER BY id")]

    def count(self, table: str) -> int:
        """Rows in ``table`` (tests and stats)."""
        if table not in (
            "orders",
            "order_events",
            "fills",
            "positions",
            "signals",
            "risk_events",
            "kill_events",
        ):
            raise ValueError(table)
        return int(self.query(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"])  # noqa: S608
