"""``smartflow orders | positions | pnl | kill``: the operator's view of the journal."""

from __future__ import annotations

import fcntl
import secrets
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import IO, Any

import msgspec

from smartflow.config import Config, Credentials
from smartflow.core.timeutil import ist_date
from smartflow.journal.store import Journal
from smartflow.orders.guard import kill_mac


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
        ["day", "symbol", "net_qty", "avg_price", "realised", "charges", "net"],
        [
            [
                p.day,
                p.symbol,
                p.net_quantity,
                f"{p.average_price:.2f}",
                f"{p.realised_pnl:.2f}",
                f"{p.charges:.2f}",
                f"{p.realised_pnl - p.charges:.2f}",
            ]
            for p in rows
        ],
    )
    return 0


def pnl(cfg: Config, out: IO[str], as_json: bool) -> int:
    """Realised P&L per day, with order and fill counts (open positions are listed apart)."""
    j = Journal(journal_path(cfg), readonly=True)
    try:
        by_day: dict[str, dict[str, Any]] = defaultdict(
            lambda: {
                "realised": 0.0,
                "charges": 0.0,
                "net": 0.0,
                "orders": 0,
                "fills": 0,
                "open_positions": 0,
            }
        )
        for p in j.positions():
            d = by_day[p.day]
            d["realised"] += p.realised_pnl
            d["charges"] = round(d["charges"] + p.charges, 2)
            d["net"] = round(d["realised"] - d["charges"], 2)
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
        ["day", "realised", "charges", "net", "orders", "fills", "open_positions"],
        [
            [
                d,
                f"{by_day[d]['realised']:.2f}",
                f"{by_day[d]['charges']:.2f}",
                f"{by_day[d]['net']:.2f}",
                by_day[d]["orders"],
                by_day[d]["fills"],
                by_day[d]["open_positions"],
            ]
            for d in days
        ],
    )
    if days:
        realised = sum(by_day[d]["realised"] for d in days)
        charges = sum(by_day[d]["charges"] for d in days)
        out.write(
            f"total realised: {realised:.2f}  charges: {charges:.2f}"
            f"  net: {realised - charges:.2f}\n"
        )
    return 0


def _lock_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / "daemon.lock"


def hold_daemon_lock(state_dir: str | Path) -> IO[str]:
    """Mark a daemon as running on ``state_dir`` until the returned file is closed.

    A shared lock: the CLI tells "no daemon" from "a daemon that does not answer" by trying for
    an exclusive one, and two daemons are not stopped from starting here.
    """
    f = open(_lock_path(state_dir), "a")  # noqa: SIM115 — held for the daemon's lifetime
    fcntl.flock(f, fcntl.LOCK_SH)
    return f


def daemon_running(state_dir: str | Path) -> bool:
    """Whether a daemon holds ``state_dir`` now."""
    path = _lock_path(state_dir)
    if not path.is_file():
        return False
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


KILL_EXIT_REFUSED = 3
"""``smartflow kill``: the daemon refused the request (wrong token, or it has none)."""
KILL_EXIT_UNCONFIRMED = 1
"""``smartflow kill``: no daemon acknowledged the request in time."""


def kill(
    cfg: Config,
    creds: Credentials,
    reset: bool,
    reason: str,
    out: IO[str],
    timeout_s: float = 5.0,
) -> int:
    """Trip (or reset) the kill switch of the running daemon and wait for its acknowledgement.

    The request goes through the journal, so it needs no HTTP API: the daemon's router reads
    it within a second, checks its MAC against the daemon's own kill token, applies it and
    acknowledges it. Exit 0 only on that acknowledgement. A trip nobody confirms stays queued
    (the next start applies it, token checked); a reset nobody confirms is withdrawn.
    """
    if creds.kill_token is None or not creds.kill_token:
        print(
            "smartflow: no kill_token credential ($CREDENTIALS_DIRECTORY/kill_token or "
            "SMARTFLOW_KILL_TOKEN)",
            file=sys.stderr,
        )
        return 2
    action = "reset" if reset else "trip"
    path = journal_path(cfg)
    running = daemon_running(cfg.state_dir)
    j = Journal(path)
    try:
        nonce = secrets.token_hex(16)
        mac = kill_mac(creds.kill_token.reveal(), nonce, action, reason)
        req_id = j.request_kill(time.time_ns(), action, reason, nonce, mac)
        req = j.kill_request(req_id)
        if running:
            deadline = time.monotonic() + timeout_s
            while req is not None and req.status == "pending" and time.monotonic() < deadline:
                time.sleep(0.1)
                req = j.kill_request(req_id)
        if req is not None and req.status == "pending":
            why = (
                f"daemon running but not responding within {timeout_s:g} s"
                if running
                else f"no daemon running on {cfg.state_dir}"
            )
            if reset:
                if j.expire_kill_request(req_id, f"not confirmed: {why}"):
                    print(f"smartflow: kill switch reset not confirmed: {why}", file=sys.stderr)
                    return KILL_EXIT_UNCONFIRMED
                req = j.kill_request(req_id)  # acknowledged at the last moment
            else:
                when = "once it responds" if running else "at its next start"
                print(
                    f"smartflow: kill switch trip not confirmed: {why}; the trip stays queued "
                    f"in {path} and the daemon applies it {when}",
                    file=sys.stderr,
                )
                return KILL_EXIT_UNCONFIRMED
    finally:
        # A running daemon checkpoints its own journal; a TRUNCATE from here would wait on it.
        j.close(checkpoint=not running)
    if req is None:
        print(f"smartflow: kill request {req_id} vanished from {path}", file=sys.stderr)
        return KILL_EXIT_UNCONFIRMED
    if req.status == "refused":
        print(
            f"smartflow: kill switch {action} refused by the daemon: {req.detail}", file=sys.stderr
        )
        return KILL_EXIT_REFUSED
    out.write(req.detail + "\n")
    return 0
