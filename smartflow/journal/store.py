"""The journal: one SQLite file (WAL) of orders, fills, positions, signals and risk events.

It holds every order with each of its state changes, fills, positions, signals, risk events and
kill-switch events. Writes happen on one dedicated thread (the single writer), so a commit's
fsync never blocks the event loop; the router awaits the commit of a new order *before* the
request leaves, which is what lets a restart find every order it may have sent. Positions are
updated in the same transaction as the fill that moves them. Queryable with the ``sqlite3``
shell; ``smartflow orders|positions|pnl`` read it.

A write that fails (a full disk, an I/O error) is never silent: it is logged with its reason,
counted by kind in ``write_failures``, and ``failing`` holds the reason until a later write
succeeds, so the router can refuse entries (no order without its record) and health can say so.
``smartflow kill`` reaches a running daemon through ``kill_requests``: the router applies each
pending request whose MAC checks out against its kill token and acknowledges it in the same row.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import structlog

from smartflow.core.errors import FatalError, TransientError


T = TypeVar("T")
SCHEMA_VERSION = 2

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
    charges REAL NOT NULL DEFAULT 0,    -- rupees, every fill's (schema 2)
    PRIMARY KEY (day, token)
);
CREATE TABLE IF NOT EXISTS fill_charges (  -- schema 2: rupees, per fill (orders/charges.py)
    fill_id TEXT PRIMARY KEY,
    brokerage REAL NOT NULL,
    stt REAL NOT NULL,
    exchange REAL NOT NULL,
    sebi REAL NOT NULL,
    stamp REAL NOT NULL,
    gst REAL NOT NULL,
    total REAL NOT NULL
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
CREATE TABLE IF NOT EXISTS kill_requests (
    id INTEGER PRIMARY KEY,
    ts_ns INTEGER NOT NULL,             -- wall clock of the CLI that asked
    action TEXT NOT NULL,               -- trip | reset
    reason TEXT NOT NULL,
    nonce TEXT NOT NULL,
    mac TEXT NOT NULL,                  -- HMAC-SHA256 of nonce, action and reason (kill token)
    status TEXT NOT NULL DEFAULT 'pending',  -- pending | done | refused | expired
    ack_ns INTEGER,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS remote_commands (
    id INTEGER PRIMARY KEY,
    ts_ns INTEGER NOT NULL,             -- wall clock when the daemon received it
    channel TEXT NOT NULL,              -- telegram
    chat_id TEXT NOT NULL,
    sender TEXT NOT NULL,               -- user id and @username as the channel gave them
    command TEXT NOT NULL,              -- /status /pause ... or approve | reject | expire
    status TEXT NOT NULL,               -- done | refused | failed | asked
    detail TEXT NOT NULL DEFAULT ''
);
"""

OPEN_STATES = ("NEW", "SENT", "OPEN", "PARTIAL", "UNKNOWN")


class JournalError(FatalError):
    """The journal cannot be opened or read; the message names the path."""


class JournalWriteError(TransientError):
    """A write did not reach the journal (already logged and counted by the journal)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"journal write ({kind}) failed: {reason}")
        self.kind = kind
        self.reason = reason


class KillRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A kill-switch request left by ``smartflow kill`` for the running daemon."""

    id: int
    ts_ns: int
    action: str
    reason: str
    nonce: str
    mac: str
    status: str = "pending"
    ack_ns: int | None = None
    detail: str = ""


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


class FillCharges(msgspec.Struct, frozen=True, kw_only=True):
    """What one fill cost besides its premium, in rupees (each component rounded to paise)."""

    brokerage: float = 0.0
    stt: float = 0.0
    exchange: float = 0.0
    sebi: float = 0.0
    stamp: float = 0.0
    gst: float = 0.0

    @property
    def total(self) -> float:
        """Every component together."""
        return round(
            self.brokerage + self.stt + self.exchange + self.sebi + self.stamp + self.gst, 2
        )


CHARGE_PARTS = ("brokerage", "stt", "exchange", "sebi", "stamp", "gst")


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
    charges: float = 0.0
    """Charges of every fill of the day in this contract (net = realised − charges)."""

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

    def __init__(
        self,
        path: str | Path,
        synchronous: str = "FULL",
        readonly: bool = False,
        log: Any = None,
    ) -> None:
        self.path = str(path)
        self.readonly = readonly
        self.log = log or structlog.get_logger()
        self.writes = 0
        self.write_failures: dict[str, int] = {}
        """Failed writes by kind (signal, order, fill, risk_event, ...), since the start."""
        self.failing = ""
        """Why the last write failed; empty once a write has succeeded since."""
        self.last_failure = ""
        """Why the last failed write failed (kept after later successes)."""
        if readonly and not Path(self.path).is_file():
            raise FileNotFoundError(f"no journal at {self.path}")
        if self.path != ":memory:" and not readonly:
            parent = Path(self.path).parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except FileExistsError:
                raise JournalError(f"state_dir {parent}: exists and is not a directory") from None
            except OSError as e:
                raise JournalError(f"state_dir {parent}: {e.strerror or e}") from None
            if not parent.is_dir():
                raise JournalError(f"state_dir {parent}: not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                # SQLite would say only "unable to open database file".
                raise JournalError(f"state_dir {parent}: not writable")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self._lock = threading.Lock()
        try:
            self._db = self._pool.submit(self._open, synchronous).result()
        except (sqlite3.Error, OSError) as e:
            self._pool.shutdown(wait=True)
            raise JournalError(f"journal {self.path}: {_why(e)}") from None

    def _open(self, synchronous: str) -> sqlite3.Connection:
        if self.readonly:
            # A second process (the CLI) reading beside a running daemon: WAL allows it.
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            db.row_factory = sqlite3.Row
            try:
                # sqlite3 opens lazily: a corrupt file shows itself on the first read.
                db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            except sqlite3.Error:
                db.close()
                raise
            return db
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.row_factory = sqlite3.Row
        if self.path != ":memory:":
            db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(SCHEMA)
        _migrate(db)
        db.execute(
            "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        return db

    # ---- plumbing -----------------------------------------------------------------------

    def _tx(self, kind: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                out = fn(db)
                db.execute("COMMIT")
            except (sqlite3.Error, OSError) as e:
                self._rollback(db)
                self._write_failed(kind, e)
                raise JournalWriteError(kind, _why(e)) from e
            except BaseException:
                self._rollback(db)
                raise
            self.writes += 1
            self.failing = ""
            return out

    @staticmethod
    def _rollback(db: sqlite3.Connection) -> None:
        # SQLite may already have rolled back by itself (SQLITE_FULL does): a second ROLLBACK
        # would raise and hide the real error.
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")

    def _write_failed(self, kind: str, e: BaseException) -> None:
        n = self.write_failures[kind] = self.write_failures.get(kind, 0) + 1
        self.failing = f"{kind}: {_why(e)}"
        self.last_failure = _why(e)
        self.log.error("journal.write_failed", kind=kind, error=_why(e), failures=n, path=self.path)

    def run(self, fn: Callable[[sqlite3.Connection], T], kind: str = "write") -> T:
        """Run ``fn`` in one transaction on the writer thread and wait for it (blocking).

        Raises:
            JournalWriteError: the transaction did not commit (logged and counted).
        """
        return self._pool.submit(self._tx, kind, fn).result()

    async def arun(self, fn: Callable[[sqlite3.Connection], T], kind: str = "write") -> T:
        """Run ``fn`` in one transaction on the writer thread; await the commit.

        Raises:
            JournalWriteError: the transaction did not commit (logged and counted).
        """
        return await asyncio.wrap_future(self._pool.submit(self._tx, kind, fn))

    def _read(self, sql: str, args: Iterable[Any]) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, tuple(args)))

    def query(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Read on the writer thread (reads see every committed write, in order)."""
        return self._pool.submit(self._read, sql, args).result()

    async def aquery(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """``query`` without blocking the event loop."""
        return await asyncio.wrap_future(self._pool.submit(self._read, sql, args))

    @property
    def total_write_failures(self) -> int:
        """Failed writes of every kind since the start."""
        return sum(self.write_failures.values())

    def close(self, checkpoint: bool = True) -> None:
        """Checkpoint (unless told not to: another process owns the file) and close; idempotent.

        Raises:
            JournalWriteError: the checkpoint failed. The file is closed anyway and stays
                consistent: SQLite replays the write-ahead log on the next open.
        """

        def c() -> None:
            with self._lock:
                try:
                    if checkpoint and self.path != ":memory:" and not self.readonly:
                        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except (sqlite3.Error, OSError) as e:
                    self._write_failed("checkpoint", e)
                    raise JournalWriteError("checkpoint", _why(e)) from e
                finally:
                    self._db.close()

        if not self._pool._shutdown:
            try:
                self._pool.submit(c).result()
            finally:
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
        await self.arun(lambda db: self._insert_order(db, o, detail), "order")

    async def order_state(self, o: OrderRow, detail: str = "") -> None:
        """Commit the order's current fields as a state change."""
        snapshot = msgspec.structs.replace(o)
        await self.arun(lambda db: self._update_order(db, snapshot, detail), "order_state")

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

    async def fill(
        self, f: FillRow, underlying: str, order: OrderRow, charges: FillCharges | None = None
    ) -> tuple[bool, float]:
        """Record a fill, its charges, its order's new state and the position it moves, atomically.

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
            if charges is not None:
                db.execute(
                    "INSERT INTO fill_charges VALUES (?,?,?,?,?,?,?,?)",
                    (f.fill_id, *(getattr(charges, c) for c in CHARGE_PARTS), charges.total),
                )
                pos.charges = round(pos.charges + charges.total, 2)
            db.execute(
                f"INSERT OR REPLACE INTO positions ({','.join(_POSITION_COLS)}) "  # noqa: S608
                f"VALUES ({','.join('?' * len(_POSITION_COLS))})",
                [getattr(pos, c) for c in _POSITION_COLS],
            )
            self._update_order(db, snapshot, f"fill {f.fill_id} {f.quantity}@{f.price}")
            return True, realised

        return await self.arun(tx, "fill")

    def fills(self, day: str | None = None) -> list[FillRow]:
        """Fills, oldest first."""
        if day:
            rows = self.query("SELECT * FROM fills WHERE day=? ORDER BY ts_ns, fill_id", (day,))
        else:
            rows = self.query("SELECT * FROM fills ORDER BY ts_ns, fill_id")
        return [FillRow(**dict(r)) for r in rows]

    def fill_charges(self) -> dict[str, FillCharges]:
        """Charges by fill id (empty for a journal older than schema 2, opened read-only)."""
        if not self.query("SELECT name FROM sqlite_master WHERE name='fill_charges'"):
            return {}
        rows = self.query("SELECT * FROM fill_charges ORDER BY fill_id")
        return {r["fill_id"]: FillCharges(**{c: r[c] for c in CHARGE_PARTS}) for r in rows}

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
        # A failure is logged and counted by _tx; nobody waits for this one.
        self._pool.submit(
            self._tx,
            "signal",
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
            ),
            "risk_event",
        )

    async def kill_event(self, ts_ns: int, action: str, source: str, reason: str) -> None:
        """Record a kill-switch trip or reset."""
        await self.arun(
            lambda db: db.execute(
                "INSERT INTO kill_events (ts_ns, action, source, reason) VALUES (?,?,?,?)",
                (ts_ns, action, source, reason),
            ),
            "kill_event",
        )

    async def remote_command(
        self,
        ts_ns: int,
        channel: str,
        chat_id: str,
        sender: str,
        command: str,
        status: str,
        detail: str = "",
    ) -> None:
        """Record a remote command (or an entry's approval decision) with who sent it."""
        await self.arun(
            lambda db: db.execute(
                "INSERT INTO remote_commands (ts_ns, channel, chat_id, sender, command, status, "
                "detail) VALUES (?,?,?,?,?,?,?)",
                (ts_ns, channel, chat_id, sender, command, status, detail),
            ),
            "remote_command",
        )

    def kill_active(self) -> tuple[bool, str]:
        """Whether the last kill-switch event was a trip (it survives restarts) and why."""
        rows = self.query("SELECT action, reason FROM kill_events ORDER BY id DESC LIMIT 1")
        if rows and rows[0]["action"] == "trip":
            return True, str(rows[0]["reason"])
        return False, ""

    def request_kill(self, ts_ns: int, action: str, reason: str, nonce: str, mac: str) -> int:
        """Leave a kill-switch request for the running daemon; return its id."""

        def tx(db: sqlite3.Connection) -> int:
            cur = db.execute(
                "INSERT INTO kill_requests (ts_ns, action, reason, nonce, mac) VALUES (?,?,?,?,?)",
                (ts_ns, action, reason, nonce, mac),
            )
            return int(cur.lastrowid or 0)

        return self.run(tx, "kill_request")

    def kill_request(self, request_id: int) -> KillRequest | None:
        """One kill-switch request as it stands now."""
        rows = self.query("SELECT * FROM kill_requests WHERE id=?", (request_id,))
        return KillRequest(**dict(rows[0])) if rows else None

    def expire_kill_request(self, request_id: int, detail: str) -> bool:
        """Withdraw a request nobody acknowledged; False when the daemon got to it first."""
        return self.run(
            lambda db: (
                db.execute(
                    "UPDATE kill_requests SET status='expired', detail=? "
                    "WHERE id=? AND status='pending'",
                    (detail, request_id),
                ).rowcount
                == 1
            ),
            "kill_request",
        )

    async def pending_kill_requests(self) -> list[KillRequest]:
        """Requests not yet acknowledged, oldest first."""
        rows = await self.aquery("SELECT * FROM kill_requests WHERE status='pending' ORDER BY id")
        return [KillRequest(**dict(r)) for r in rows]

    async def ack_kill_request(
        self, request_id: int, status: str, ack_ns: int, detail: str
    ) -> None:
        """Acknowledge a request: ``done`` or ``refused``, with what happened."""
        await self.arun(
            lambda db: db.execute(
                "UPDATE kill_requests SET status=?, ack_ns=?, detail=? WHERE id=?",
                (status, ack_ns, detail, request_id),
            ),
            "kill_request",
        )

    def last_ts_ns(self) -> int:
        """The latest time the daemon's clock wrote (0 for an empty journal).

        Kill events and requests are left out: the CLI writes them on the wall clock, while
        this is where a restarted simulator's session clock resumes from.
        """
        rows = self.query(
            "SELECT MAX(t) AS t FROM ("
            "SELECT MAX(updated_ns) AS t FROM orders UNION ALL "
            "SELECT MAX(ts_ns) FROM order_events UNION ALL "
            "SELECT MAX(ts_ns) FROM fills UNION ALL "
            "SELECT MAX(ts_ns) FROM signals UNION ALL "
            "SELECT MAX(ts_ns) FROM risk_events)"
        )
        return int(rows[0]["t"] or 0)

    def risk_events(self) -> list[dict[str, Any]]:
        """Every risk event, oldest first."""
        return [dict(r) for r in self.query("SELECT * FROM risk_events ORDER BY id")]

    def count(self, table: str) -> int:
        """Rows in ``table`` (tests and stats)."""
        if table not in (
            "orders",
            "order_events",
            "fills",
            "fill_charges",
            "positions",
            "signals",
            "risk_events",
            "kill_events",
            "kill_requests",
            "remote_commands",
        ):
            raise ValueError(table)
        return int(self.query(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"])  # noqa: S608


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a journal written by an older version up to ``SCHEMA_VERSION`` (additive only)."""
    cols = {r["name"] for r in db.execute("PRAGMA table_info(positions)")}
    if "charges" not in cols:
        # Schema 1 → 2: positions.charges (fill_charges came with the CREATE ... IF NOT EXISTS).
        db.execute("ALTER TABLE positions ADD COLUMN charges REAL NOT NULL DEFAULT 0")
    db.execute(
        "UPDATE meta SET value=? WHERE key='schema_version' AND CAST(value AS INTEGER) < ?",
        (str(SCHEMA_VERSION), SCHEMA_VERSION),
    )


def _why(e: BaseException) -> str:
    """An error's reason without its type's noise (``database or disk is full``)."""
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}" + (f" ({e.filename})" if e.filename else "")
    return str(e) or type(e).__name__
