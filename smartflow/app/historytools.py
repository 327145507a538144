"""``smartflow history``: seed daily ATM-IV closes, export a day's one-minute snapshots."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import IO, Any

import msgspec

from smartflow.config import Config
from smartflow.journal.history import HistoryStore, snapshots


INTERVALS = {"1m": 1, "5m": 5, "15m": 15}
CSV_SUMMARY = (
    ("pcr_oi", ("pcr", "oi")),
    ("pcr_volume", ("pcr", "volume")),
    ("pcr_oi_change", ("pcr", "oi_change")),
    ("max_pain", ("max_pain", "strike")),
    ("atm_iv", ("volatility", "atm_iv")),
    ("straddle", ("volatility", "straddle")),
    ("gex_total", ("gex", "total")),
    ("spot", ("spot",)),
    ("forward", ("forward",)),
    ("doi_basis", ("doi_basis",)),
)


def history_path(cfg: Config) -> Path:
    """Where the daemon keeps its history."""
    return Path(cfg.state_dir) / "history.sqlite3"


def import_iv(cfg: Config, csv_path: Path, out: IO[str]) -> int:
    """Seed daily ATM-IV closes from ``csv_path``."""
    store = HistoryStore(history_path(cfg))
    try:
        n = store.import_iv_csv(csv_path)
    finally:
        store.close()
    out.write(f"imported {n} daily ATM-IV closes into {history_path(cfg)}\n")
    return 0


def _dig(d: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        d = d.get(key) if isinstance(d, dict) else None
    return d


def export(
    cfg: Config, day: dt.date, underlying: str | None, interval: str, as_csv: bool, out: IO[str]
) -> int:
    """Write a day's snapshots: CSV (one row per minute, strike and side) or JSON Lines."""
    store = HistoryStore(history_path(cfg), readonly=True)
    try:
        roots = [underlying] if underlying else list(cfg.market.underlyings)
        rows = {u: snapshots(store, u, day, INTERVALS[interval]) for u in roots}
    finally:
        store.close()
    if as_csv:
        w = csv.writer(out, lineterminator="\n")
        head = ["ts", "underlying", "strike", "option_type", "oi", "oi_change", "iv", "ltp"]
        w.writerow(head + [name for name, _ in CSV_SUMMARY])
        for u, snaps in rows.items():
            for snap in snaps:
                extra = [_dig(snap["summary"], path) for _, path in CSV_SUMMARY]
                for s in snap["strikes"]:
                    contract = [s["strike"], s["option_type"], s["oi"], s["oi_change"]]
                    w.writerow([snap["ts"], u, *contract, s["iv"], s["ltp"], *extra])
        return 0
    for u, snaps in rows.items():
        for snap in snaps:
            out.write(msgspec.json.encode({"underlying": u, **snap}).decode() + "\n")
    return 0
