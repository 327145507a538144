"""The history file (a real SQLite file) and the ``smartflow history`` commands."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import pytest

from smartflow.app.main import main
from smartflow.core.timeutil import ns_at_ist
from smartflow.journal.history import HistoryError, HistoryStore


D0 = dt.date(2026, 11, 2)
NS = 1_000_000_000


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'state_dir = "{tmp_path / "state"}"\n')
    return cfg


def test_import_iv_csv_fraction_and_percent(tmp_path: Path) -> None:
    a = tmp_path / "a.csv"
    a.write_text("date,underlying,atm_iv\n2026-11-02,NIFTY,0.12\n2026-11-03,NIFTY,0.13\n")
    b = tmp_path / "b.csv"
    b.write_text(
        "date,underlying,atm_iv_pct,extra\n2026-11-04,NIFTY,14.5,x\n2026-11-03,NIFTY,13.5,y\n"
    )
    store = HistoryStore(tmp_path / "h.sqlite3")
    assert store.import_iv_csv(a) == 2
    assert store.import_iv_csv(b) == 2  # 2026-11-03 replaced
    assert store.daily_iv("NIFTY", dt.date(2026, 11, 5)) == [0.12, 0.135, 0.145]
    assert store.daily_iv("NIFTY", dt.date(2026, 11, 4)) == [0.12, 0.135]  # strictly before
    assert store.daily_iv("NIFTY", dt.date(2026, 11, 5), limit=2) == [0.135, 0.145]
    assert store.daily_iv("SENSEX", dt.date(2026, 11, 5)) == []
    store.close()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("date,underlying\n2026-11-02,NIFTY\n", "missing column `atm_iv`"),
        ("underlying,atm_iv\nNIFTY,0.1\n", "missing column `date`"),
        ("date,underlying,atm_iv\n2026-11-02,NIFTY,0.1\n02/11/2026,NIFTY,0.1\n", ":3: date"),
        ("date,underlying,atm_iv\n2026-11-02,NIFTY,abc\n", ":2: atm_iv: expected a number"),
        ("date,underlying,atm_iv\n2026-11-02,NIFTY,14.2\n", "as a fraction"),
        ("date,underlying,atm_iv_pct\n2026-11-02,NIFTY,0\n", "in percent"),
        ("date,underlying,atm_iv\n2026-11-02,,0.1\n", ":2: underlying: empty"),
    ],
)
def test_import_iv_rejects_bad_rows_naming_field_and_line(
    tmp_path: Path, text: str, fragment: str
) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(text)
    store = HistoryStore(tmp_path / "h.sqlite3")
    with pytest.raises(HistoryError, match=fragment.replace("(", r"\(")):
        store.import_iv_csv(f)
    # Nothing of a bad file is kept, not even its good rows.
    assert store.daily_iv("NIFTY", dt.date(2027, 1, 1)) == []
    store.close()


def test_closing_oi_uses_the_latest_earlier_day(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite3")
    store.put_oi_close("NIFTY", D0, {"1": 10, "2": 20})
    store.put_oi_close("NIFTY", D0 + dt.timedelta(days=1), {"1": 11})
    store.put_oi_close("NIFTY", D0 + dt.timedelta(days=1), {"1": 12, "3": 30})  # replaces
    assert store.prev_oi_close("NIFTY", D0) == (None, {})
    assert store.prev_oi_close("NIFTY", D0 + dt.timedelta(days=1)) == (D0, {"1": 10, "2": 20})
    assert store.prev_oi_close("NIFTY", D0 + dt.timedelta(days=5)) == (
        D0 + dt.timedelta(days=1),
        {"1": 12, "3": 30},
    )
    store.close()


def _minute(store: HistoryStore, day: dt.date, minute: int) -> None:
    ts = ns_at_ist(day, dt.time(9, 15)) + minute * 60 * NS
    store.put_minute(
        "NIFTY",
        ts,
        day,
        {"pcr": {"oi": 1.0 + minute / 100}, "max_pain": {"strike": 24000.0}, "doi_basis": "x"},
        [(24000.0, "CE", 100 + minute, minute, 0.14, 101.5), (24000.0, "PE", 90, -1, None, None)],
    )


def test_minutes_intervals_and_retention(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite3")
    for m in range(30):
        _minute(store, D0, m)
    _minute(store, D0 + dt.timedelta(days=1), 0)
    one = store.minutes("NIFTY", D0, 1)
    assert len(one) == 30
    _ts0, summary, strikes = one[0]
    assert summary["pcr"] == {"oi": 1.0}
    assert strikes == [(24000.0, "CE", 100, 0, 0.14, 101.5), (24000.0, "PE", 90, -1, None, None)]
    # 5-minute and 15-minute series take the first snapshot of each interval.
    five = store.minutes("NIFTY", D0, 5)
    assert len(five) == 6
    assert all((ts // NS) % 300 == 0 for ts, _, _ in five)
    assert len(store.minutes("NIFTY", D0, 15)) == 2
    assert store.days("NIFTY") == [D0.isoformat(), (D0 + dt.timedelta(days=1)).isoformat()]
    assert store.purge(D0 + dt.timedelta(days=1)) == 30
    assert store.minutes("NIFTY", D0, 1) == []
    left = store.db.execute("SELECT COUNT(*) FROM minute_strike").fetchone()[0]
    assert left == 2  # the kept day's rows only
    store.close()


def test_cli_import_and_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path)
    f = tmp_path / "iv.csv"
    f.write_text("date,underlying,atm_iv\n2026-11-02,NIFTY,0.12\n")
    assert main(["history", "import-iv", str(f), "--config", str(cfg)]) == 0
    assert "imported 1 daily ATM-IV closes" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text("date,underlying,atm_iv\n2026-11-02,NIFTY,high\n")
    assert main(["history", "import-iv", str(bad), "--config", str(cfg)]) == 1
    assert "bad.csv:2: atm_iv" in capsys.readouterr().err
    store = HistoryStore(tmp_path / "state" / "history.sqlite3")
    for m in range(10):
        _minute(store, D0, m)
    store.close()
    argv = ["history", "export", "--date", D0.isoformat(), "--config", str(cfg)]
    assert main([*argv, "--csv", "--interval", "5m"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 4  # two 5-minute snapshots × CE/PE
    assert rows[0]["option_type"] == "CE"
    assert rows[0]["oi"] == "100"
    assert rows[0]["pcr_oi"] == "1.0"
    assert rows[0]["max_pain"] == "24000.0"
    assert rows[2]["oi_change"] == "5"
    assert rows[2]["ts"].endswith("+05:30")
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 10
    assert '"underlying":"NIFTY"' in lines[0]
    assert main(["history", "export", "--date", "2026-13-01", "--config", str(cfg)]) == 1
    assert "--date" in capsys.readouterr().err


def test_export_without_history_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path)
    assert main(["history", "export", "--date", "2026-11-02", "--config", str(cfg)]) == 1
    assert "no history recorded yet" in capsys.readouterr().err
