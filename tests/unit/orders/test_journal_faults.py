"""Journal write failures and CLI kill requests, on a real SQLite file with a real router.

Failures are injected from outside the code under test, into the journal's own SQLite
connection: a real ``max_page_count`` limit (SQLite's own "database or disk is full") or a
temporary trigger that refuses one kind of row.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from smartflow.config import OrdersConfig, RiskConfig, Secret
from smartflow.core.clock import ReplayClock
from smartflow.core.messages import OrderIntent, Quote
from smartflow.core.timeutil import ns_at_ist
from smartflow.journal.store import Journal, JournalError, JournalWriteError
from smartflow.orders.guard import RiskGuard, kill_mac
from smartflow.orders.paper import PaperBroker
from smartflow.orders.port import PlaceRequest, Reply
from smartflow.orders.router import OrderRouter


NS = 1_000_000_000
T0 = ns_at_ist(dt.date(2026, 11, 23), dt.time(10, 0))  # a Monday in market hours


class Book:
    def __init__(self) -> None:
        self.quotes: dict[str, Quote] = {}

    def set(self, token: str, bid: float, ask: float) -> None:
        self.quotes[token] = Quote(
            bid=bid,
            ask=ask,
            ltp=round((bid + ask) / 2, 2),
            tick=0.05,
            bids=((bid, 750),),
            asks=((ask, 750),),
            seq=len(self.quotes) + 1,
        )

    def quote(self, token: str) -> Quote | None:
        return self.quotes.get(token)


class Counting(PaperBroker):
    def __init__(self, *a: object, **k: object) -> None:
        super().__init__(*a, **k)  # type: ignore[arg-type]
        self.placed: list[str] = []

    async def place(self, req: PlaceRequest) -> Reply:
        self.placed.append(req.tag)
        return await super().place(req)


def _router(
    journal: Journal, risk: RiskConfig | None = None
) -> tuple[OrderRouter, Counting, Book, ReplayClock]:
    clock = ReplayClock(T0)
    book = Book()
    orders = OrdersConfig(paper_latency_ms=0, chase_after_s=1000)
    risk = risk or RiskConfig()
    broker = Counting(orders, book, clock, structlog.get_logger())
    router = OrderRouter(
        orders,
        risk,
        RiskGuard(risk, ["NIFTY"]),
        broker,
        journal,
        book,
        clock,
        structlog.get_logger(),
    )
    return router, broker, book, clock


def _intent(token: str, ts: int, side: str = "BUY", purpose: str = "ENTRY") -> OrderIntent:
    return OrderIntent(
        intent_id=f"{purpose}-{token}-{ts}",
        ts=ts,
        underlying="NIFTY",
        token=token,
        symbol=f"SYM{token}",
        exchange="NFO",
        side=side,  # type: ignore[arg-type]
        lots=1,
        lot_size=75,
        purpose=purpose,  # type: ignore[arg-type]
        reason="test",
        ttl_ns=60 * NS,
    )


def _refuse_rows(journal: Journal, table: str, when: str = "1") -> None:
    """Every insert into ``table`` (matching ``when``) fails as a full disk would."""
    journal.query(
        f"CREATE TEMP TRIGGER full_{table} BEFORE INSERT ON {table} WHEN {when} "
        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
    )


def _accept_rows(journal: Journal, table: str) -> None:
    journal.query(f"DROP TRIGGER full_{table}")


def test_a_full_disk_is_logged_counted_and_clears_on_the_next_good_write(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    try:
        pages = journal.query("PRAGMA page_count")[0][0]
        journal.query(f"PRAGMA max_page_count={pages}")
        body = b"x" * 20_000  # needs new pages: SQLite's own SQLITE_FULL
        with capture_logs() as logs:
            with pytest.raises(JournalWriteError, match="database or disk is full"):
                journal.run(
                    lambda db: db.execute(
                        "INSERT INTO signals (ts_ns, underlying, recommendation, can_trade, body)"
                        " VALUES (1, 'NIFTY', 'BUY', 1, ?)",
                        (body.decode(),),
                    ),
                    "signal",
                )
            # The fire-and-forget path nobody waits on is just as loud.
            journal.signal(2, "NIFTY", "BUY", True, body)
            journal.query("SELECT 1")  # the writer thread has run the signal by now
        failed = [e for e in logs if e["event"] == "journal.write_failed"]
        assert [e["kind"] for e in failed] == ["signal", "signal"]
        assert all(e["error"] == "database or disk is full" for e in failed)
        assert journal.write_failures == {"signal": 2}
        assert journal.failing == "signal: database or disk is full"
        assert journal.count("signals") == 0
        journal.query("PRAGMA max_page_count=1000000")
        journal.signal(3, "NIFTY", "BUY", True, body)
        assert journal.count("signals") == 1
        assert journal.failing == ""
        assert journal.write_failures == {"signal": 2}  # a count since the start, not a state
    finally:
        journal.close()


async def test_no_entry_without_its_record_and_exits_resume(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    router, broker, book, clock = _router(journal)
    book.set("1", 100.0, 100.1)
    router.submit(_intent("1", clock.now_ns()))
    await router.pump(clock.now_ns())
    broker.on_market(clock.now_ns())
    await router.pump(clock.now_ns())
    assert router.positions["1"].net_quantity == 75
    placed = len(broker.placed)

    _refuse_rows(journal, "orders")
    _refuse_rows(journal, "risk_events")
    book.set("2", 50.0, 50.1)
    clock.set(clock.now_ns() + NS)
    router.submit(_intent("2", clock.now_ns()))
    router.submit(_intent("1", clock.now_ns(), side="SELL", purpose="EXIT"))
    await router.pump(clock.now_ns())
    # Neither reached the broker: the exit's NEW row did not commit, and the entry was refused
    # outright once the journal had failed.
    assert len(broker.placed) == placed
    assert not router.orders
    assert router.refused_by_kind.get("journal") == 2
    assert journal.write_failures["order"] == 1
    assert journal.failing.startswith("risk_event")

    _accept_rows(journal, "orders")
    _accept_rows(journal, "risk_events")
    clock.set(clock.now_ns() + NS)
    router.submit(_intent("1", clock.now_ns(), side="SELL", purpose="EXIT"))
    await router.pump(clock.now_ns())
    broker.on_market(clock.now_ns())
    await router.pump(clock.now_ns())
    assert router.positions["1"].net_quantity == 0
    assert journal.failing == ""
    journal.close()


async def test_an_order_whose_sent_record_fails_is_never_sent(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    router, broker, book, clock = _router(journal, RiskConfig(orders_per_second=1))
    book.set("1", 100.0, 100.1)
    book.set("2", 50.0, 50.1)
    router.submit(_intent("1", clock.now_ns()))
    router.submit(_intent("2", clock.now_ns()))
    await router.pump(clock.now_ns())
    assert len(broker.placed) == 1  # the second waits for the rate budget, recorded as NEW
    (waiting,) = [o for o in router.orders.values() if o.state == "NEW"]
    _refuse_rows(journal, "order_events", "NEW.state = 'SENT'")
    clock.set(clock.now_ns() + 2 * NS)
    with capture_logs() as logs:
        await router.pump(clock.now_ns())
    assert len(broker.placed) == 1
    assert waiting.order_id not in router.orders
    assert waiting.state == "CANCELLED"
    assert any(
        e["event"] == "router.order_not_sent" and e["order_id"] == waiting.order_id for e in logs
    )
    (row,) = [o for o in journal.orders() if o.order_id == waiting.order_id]
    assert row.state == "NEW"  # what a restart finds, and cancels without sending
    journal.close()


async def test_cli_kill_requests_need_the_daemons_token(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    router, _broker, _book, _clock = _router(journal)

    def ask(token: str, action: str, nonce: str) -> int:
        mac = kill_mac(token, nonce, action, "drill")
        return journal.request_kill(1, action, "drill", nonce, mac)

    first = ask("right", "trip", "n1")
    assert await router.poll_kill_requests() == 1
    req = journal.kill_request(first)
    assert req is not None
    assert (req.status, req.detail) == ("refused", "the daemon has no kill_token credential")
    assert not router.guard.killed

    router.kill_token = Secret("right")
    wrong = ask("wrong", "trip", "n2")
    replayed = journal.request_kill(1, "reset", "drill", "n1", kill_mac("right", "n1", "trip", "x"))
    right = ask("right", "trip", "n3")
    assert await router.poll_kill_requests() == 3
    status = {
        i: (r.status, r.detail) for i in (wrong, replayed, right) if (r := journal.kill_request(i))
    }
    assert status[wrong] == ("refused", "wrong kill token")
    # A MAC is bound to its action and reason: lifting one from a trip cannot reset.
    assert status[replayed] == ("refused", "wrong kill token")
    assert status[right][0] == "done"
    assert (router.guard.killed, router.guard.kill_reason) == (True, "drill")
    assert journal.kill_active() == (True, "drill")
    assert await router.poll_kill_requests() == 0  # acknowledged requests are not re-read

    reset = ask("right", "reset", "n4")
    await router.poll_kill_requests()
    done = journal.kill_request(reset)
    assert done is not None
    assert done.status == "done"
    assert not router.guard.killed
    journal.close()


def test_a_state_dir_that_is_a_file_or_a_corrupt_journal_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("not a directory")
    with pytest.raises(JournalError, match=f"state_dir {blocker}: exists and is not a directory"):
        Journal(blocker / "journal.sqlite3")
    corrupt = tmp_path / "bad.sqlite3"
    corrupt.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(JournalError, match=f"journal {corrupt}: file is not a database"):
        Journal(corrupt, readonly=True)
    with pytest.raises(JournalError, match=f"journal {corrupt}: file is not a database"):
        Journal(corrupt)
