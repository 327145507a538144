"""The session summary: what it counts and how it reads on one screen."""

from __future__ import annotations

import io
from typing import Any

import structlog

from smartflow.app.summary import SessionSummary, render, report
from smartflow.core.messages import SmartMoneySignal
from smartflow.journal.store import FillRow, OrderRow


def _signal(rec: Any, can_trade: bool) -> SmartMoneySignal:
    return SmartMoneySignal(
        underlying="NIFTY",
        ts=0,
        recommendation=rec,
        oi_conviction_score=0.5,
        volume_aggression_score=0.5,
        smart_money_probability=0.6,
        trap_probability=0.1,
        fresh_position_detected=False,
        market_control="BALANCED",
        can_trade=can_trade,
        reason=None,
        strike=None,
        option_type=None,
        token=None,
        evidence=[],
    )


def _order(order_id: str, purpose: str, side: str, state: str) -> OrderRow:
    return OrderRow(
        order_id=order_id,
        day="2026-12-03",
        created_ns=0,
        broker="paper",
        underlying="NIFTY",
        token="40081",
        symbol="NIFTY06DEC2624000CE",
        exchange="NFO",
        side=side,
        quantity=75,
        lot_size=75,
        limit_price=100.0,
        purpose=purpose,
        reason="test",
        state=state,
        filled_quantity=75 if state == "FILLED" else 0,
    )


def _fill(order_id: str, side: str) -> FillRow:
    return FillRow(
        fill_id=f"{order_id}-1",
        order_id=order_id,
        broker_order_id=None,
        day="2026-12-03",
        ts_ns=0,
        token="40081",
        symbol="NIFTY06DEC2624000CE",
        side=side,
        quantity=75,
        price=100.0,
    )


def test_counts_signals_by_kind_and_orders_by_their_last_state() -> None:
    s = SessionSummary()
    for rec, ok in [("BUY_CALL", True), ("BUY_CALL", False), ("NEUTRAL", False), ("AVOID", False)]:
        s.on_signal(_signal(rec, ok))
    s.on_order_event("order", _order("A", "ENTRY", "BUY", "OPEN"))
    s.on_order_event("fill", _order("A", "ENTRY", "BUY", "FILLED"), _fill("A", "BUY"))
    s.on_order_event("order", _order("B", "EXIT", "SELL", "OPEN"))
    out = s.build(None, entries=1, exits=1, seconds=120.0, mode="sim")
    assert out["signals"] == 4
    assert out["signals_by_kind"] == {"BUY_CALL": 2, "NEUTRAL": 1, "AVOID": 1}
    assert out["tradable_signals"] == 1
    assert out["orders"] == 2
    assert out["orders_by_purpose"] == {"ENTRY": 1, "EXIT": 1}
    assert out["orders_by_state"] == {"FILLED": 1, "OPEN": 1}
    assert out["fills"] == 1
    assert out["pnl"] == 0.0


def _summary() -> dict[str, Any]:
    return {
        "mode": "sim",
        "seconds": 120.0,
        "signals": 9,
        "signals_by_kind": {"BUY_CALL": 7, "NEUTRAL": 2},
        "tradable_signals": 3,
        "entry_intents": 1,
        "exit_intents": 1,
        "orders": 2,
        "orders_by_purpose": {"ENTRY": 1, "EXIT": 1},
        "orders_by_state": {"FILLED": 2},
        "fills": 2,
        "contracts": [
            {
                "symbol": "NIFTY06DEC2624000CE",
                "bought": 75,
                "sold": 75,
                "open_quantity": 0,
                "realised": 888.75,
                "charges": 61.3,
            }
        ],
        "open_positions": 0,
        "realised": 888.75,
        "unrealised": 0.0,
        "pnl": 888.75,
        "charges": 61.3,
        "net_pnl": 827.45,
    }


def test_renders_one_screen() -> None:
    text = render(_summary())
    lines = text.splitlines()
    assert len(lines) <= 24
    assert all(len(line) <= 100 for line in lines)
    assert "signals      9   BUY_CALL 7 · NEUTRAL 2   (tradable 3)" in lines
    assert "orders       2   ENTRY 1 · EXIT 1   (FILLED 2)" in lines
    assert any("NIFTY06DEC2624000CE" in line and "flat" in line for line in lines)
    assert lines[-3].endswith("total +888.75 rupees")
    assert lines[-2] == "net       gross +888.75 − charges 61.30 = +827.45 rupees"


def test_report_logs_one_event_and_prints_the_block() -> None:
    out = io.StringIO()
    with structlog.testing.capture_logs() as logs:
        report(_summary(), structlog.get_logger(), out)
    (event,) = logs
    assert event["event"] == "session.summary"
    assert event["pnl"] == 888.75
    assert out.getvalue() == render(_summary()) + "\n"
