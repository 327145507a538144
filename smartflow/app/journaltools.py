"""``smartflow orders | positions | pnl | kill``: the operator's view of the journal."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import IO, Any

import aiohttp
import msgspec

from smartflow.config import Config, Credentials
from smartflow.core.timeutil import ist_date
from smartflow.journal.store import Journal


def journal_path(cfg: Config) -> Path:
    """Where the daemon keeps its journal."""
    return Path(cfg.state_dir) / "journal.sqlite3"


def _table(out: IO[str], headers: list[str], rows: list[list[Any]]) -> None:
    cells = [[str(c) for c in r] for r in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    out.write("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip() + "\n")
    for r in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")


def _day(day: str | None) -> str | None:
    if day == "all":
        return None
    return day or ist_date(time.time_ns()).isoformat()


def orders(cfg: Config, out: IO[str], as_json: bool, day: str | None) -> int:
    """Print the journal's orders (today's by default)."""
    j = Journal(journal_path(cfg), readonly=True)
    try:
        rows = j.orders(_day(day))
    finally:
        j.close()
    if as_json:
        for o in rows:
            out.write(msgspec.json.encode(o).decode() + "\n")
        return 0
    _table(
        out,
        [
            "order_id",
            "state",
            "side",
            "symbol",
            "qty",
            "filled",
            "avg",
            "limit",
            "purpose",
            "reason / text",
        ],
        [
            [
                o.order_id,
                o.state,
                o.side,
                o.symbol,
                o.quantity,
                o.filled_quantity,
                f"{o.average_price:.2f}",
                f"{o.limit_price:.2f}",
                o.purpose,
                (o.text or o.reason)[:48],
            ]
            for o in rows
        ],
    )
    return 0


def positions(cfg: Config, out: IO[str], as_json: bool, day: str | None) -> int:
    """Print positions (today's by default)."""
    j = Journal(journal_path(cfg), readonly=True)
    try:
        rows = j.positions(_day(day))
    finally:
        j.close()
    if as_json:
        for p in rows:
            out.write(msgspec.json.encode(p).decode() + "\n")
        return 0
    _table(
        out,
        ["day", "symbol", "net_qty", "avg_price", "realised"],
        [
            [p.day, p.symbol, p.net_quantity, f"{p.average_price:.2f}", f"{p.realised_pnl:.2f}"]
            for p in rows
        ],
    )
    return 0


def pnl(cfg: Config, out: IO[str], as_json: bool) -> int:
    """Realised P&L per day, with order and fill counts (open positions are listed apart)."""
    j = Journal(journal_path(cfg), readonly=True)
    try:
        by_day: dict[str, dict[str, Any]] = defaultdict(
            lambda: {"realised": 0.0, "orders": 0, "fills": 0, "open_positions": 0}
        )
        for p in j.positions():
            d = by_day[p.day]
            d["realised"] += p.realised_pnl
            d["open_positions"] += 1 if p.net_quantity else 0
        for o in j.orders():
            by_day[o.day]["orders"] += 1
        for f in j.fills():
            by_day[f.day]["fills"] += 1
    finally:
        j.close()
    days = sorted(by_day)
    if as_json:
        for day in days:
            out.write(msgspec.json.encode({"day": day, **by_day[day]}).decode() + "\n")
        return 0
    _table(
        out,
        ["day", "realised", "orders", "fills", "open_positions"],
        [
            [
                d,
                f"{by_day[d]['realised']:.2f}",
                by_day[d]["orders"],
                by_day[d]["fills"],
                by_day[d]["open_positions"],
            ]
            for d in days
        ],
    )
    if days:
        out.write(f"total realised: {sum(by_day[d]['realised'] for d in days):.2f}\n")
    return 0


async def _post(url: str, token: str, body: dict[str, Any]) -> tuple[int, Any]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


def kill(cfg: Config, creds: Credentials, reset: bool, reason: str, out: IO[str]) -> int:
    """Trip (or reset) the kill switch of the running daemon; journal it if none is running."""
    if creds.kill_token is None:
        print(
            "smartflow: no kill_token credential ($CREDENTIALS_DIRECTORY/kill_token or "
            "SMARTFLOW_KILL_TOKEN)",
            file=sys.stderr,
        )
        return 2
    host, _, port = cfg.api.listen.rpartition(":")
    url = f"http://{host}:{port}/api/kill" + ("/reset" if reset else "")
    try:
        status, body = asyncio.run(_post(url, creds.kill_token.reveal(), {"reason": reason}))
    except (aiohttp.ClientConnectionError, TimeoutError):
        # No daemon listening: record it so the next start comes up with the switch as asked.
        j = Journal(journal_path(cfg))
        try:
            asyncio.run(j.kill_event(time.time_ns(), "reset" if reset else "trip", "cli", reason))
        finally:
            j.close()
        out.write(
            f"no daemon at {url}; kill switch {'reset' if reset else 'tripped'} in the "
            f"journal ({journal_path(cfg)}) for the next start\n"
        )
        return 0
    out.write(msgspec.json.encode(body).decode() + "\n")
    return 0 if status == 200 else 1
