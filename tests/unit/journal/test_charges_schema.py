"""Fill charges in the journal: schema 2, and journals written before it stay readable."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from smartflow.journal.store import FillCharges, FillRow, Journal, OrderRow


# The positions table as schema 1 wrote it (no charges column, no fill_charges table).
SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1');
CREATE TABLE positions (
    day TEXT NOT NULL, token TEXT NOT NULL, symbol TEXT NOT NULL, underlying TEXT NOT NULL,
    net_quantity INTEGER NOT NULL, average_price REAL NOT NULL, realised_pnl REAL NOT NULL,
    updated_ns INTEGER NOT NULL, PRIMARY KEY (day, token)
);
INSERT INTO positions VALUES ('2026-11-20', '101', 'NIFTY24000CE', 'NIFTY', 0, 0, 412.5, 7);
"""


def _old(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_1)
    db.close()


def test_a_schema_1_journal_reads_with_zero_charges(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    _old(path)
    j = Journal(path, readonly=True)
    try:
        (pos,) = j.positions()
        assert (pos.realised_pnl, pos.charges) == (412.5, 0.0)
        assert j.fill_charges() == {}
    finally:
        j.close()


async def test_opening_for_writing_migrates_and_books_charges(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    _old(path)
    j = Journal(path)
    try:
        assert j.query("SELECT value FROM meta WHERE key='schema_version'")[0][0] == "2"
        order = OrderRow(
            order_id="SF1",
            day="2026-11-23",
            created_ns=1,
            broker="paper",
            underlying="NIFTY",
            token="101",
            symbol="NIFTY24000CE",
            exchange="NFO",
            side="BUY",
            quantity=75,
            lot_size=75,
            limit_price=120.0,
            purpose="ENTRY",
            reason="test",
        )
        await j.new_order(order)
        fill = FillRow(
            fill_id="P1:75",
            order_id="SF1",
            broker_order_id="P1",
            day="2026-11-23",
            ts_ns=2,
            token="101",
            symbol="NIFTY24000CE",
            side="BUY",
            quantity=75,
            price=120.0,
        )
        charges = FillCharges(brokerage=20.0, exchange=3.15, sebi=0.01, stamp=0.27, gst=4.17)
        await j.fill(fill, "NIFTY", order, charges)
        assert j.fill_charges() == {"P1:75": charges}
        today = j.positions("2026-11-23")
        assert [p.charges for p in today] == [27.6]
        assert [p.charges for p in j.positions("2026-11-20")] == [0.0]
    finally:
        j.close()
