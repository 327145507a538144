"""ΔOI baselines from the previous session's close, loaded once at start.

Per contract, the first source that has it: Angel's historical OI endpoint (``getOIData``,
angel-smartapi.md §6.3; the simulator serves the same path and envelope), the previous day's own
record in ``state_dir`` (``ChainHistory.load`` applied it before this runs), else the day's
first print. Every summary says which (``doi_source``: ``oi_data``, ``own_close`` or
``first_print``) and, for a fallback, why (``doi_note``).

The load runs beside the daemon, never in front of it: ATM ± N of every subscribed expiry,
nearest the money first, once the window has centred (or after a short wait, the listed strikes
from the middle out). Requests are paced at ``[history] prev_close_requests_per_s`` and never
past getCandleData's 3/s, 180/min, 5000/h (Angel publishes no limit for getOIData; §4.7). A
rate-limit reply backs off and retries; five failures in a row or ``prev_close_budget_s`` end
the load. What was loaded is applied at once, and a ``prevclose.loaded`` or
``prevclose.fallback`` event says how many contracts, how long, what failed and why it stopped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from smartflow.analytics.summary import ChainSummaries, ChainSummarizer
from smartflow.app.subscriptions import SubscriptionManager
from smartflow.config import Config, Credentials, HistoryConfig, Secret
from smartflow.core.timeutil import ist_date
from smartflow.kernels import layout as L
from smartflow.orders.angel_session import NETWORK_ERRORS, AngelSession
from smartflow.orders.ratelimit import RateLimiter


if TYPE_CHECKING:
    from smartflow.sim.server import SimServer


OI_DATA_PATH = "/rest/secure/angelbroking/historical/v1/getOIData"
LOOKBACK_DAYS = 7  # long weekends and holidays: the last session before today is in here
MAX_FAILURES_IN_A_ROW = 5
RATE_LIMIT_RETRIES = 2
RATE_LIMIT_BACKOFF_S = 1.0
CENTRE_WAIT_S = 15.0

Post = Callable[[dict[str, str]], Awaitable[tuple[int, bytes]]]


@dataclass
class PrevCloseLoad:
    """What one load asked for, got, and why it stopped (``reason`` empty: it finished)."""

    asked: list[str] = field(default_factory=list)  # tokens, in the order asked for
    loaded: dict[str, int] = field(default_factory=dict)
    failures: Counter[str] = field(default_factory=Counter)
    reason: str = ""
    seconds: float = 0.0


def parse_oi_reply(status: int, raw: bytes, today: dt.date) -> int | str:
    """The OI of the last record before ``today``, or the kind of failure (a short string).

    Tolerant of what Angel leaves undocumented: records as ``{"time", "oi"}`` objects or
    ``[time, oi]`` pairs, OI as a number or a numeric string, times with or without an offset.
    """
    if status == 403 and raw.lstrip()[:1] != b"{":
        return "rate_limited"
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return f"http_{status}_not_json" if status != 200 else "not_json"
    if not isinstance(body, dict):
        return "not_json"
    if body.get("status") is not True:
        code = body.get("errorcode") or body.get("errorCode") or f"http_{status}"
        return f"error_{code}"
    best: tuple[str, int] | None = None
    for rec in body.get("data") or ():
        when, oi = (rec.get("time"), rec.get("oi")) if isinstance(rec, dict) else rec[:2]
        try:
            day = dt.date.fromisoformat(str(when)[:10])
            value = float(str(oi))
        except (TypeError, ValueError):
            continue
        if day < today and math.isfinite(value) and (best is None or str(when) > best[0]):
            best = (str(when), int(value))
    return best[1] if best is not None else "no_data"


def request_body(exchange: str, token: str, today: dt.date) -> dict[str, str]:
    """A getOIData request for the daily OI of the sessions in the week before ``today``."""
    first = today - dt.timedelta(days=LOOKBACK_DAYS)
    last = today - dt.timedelta(days=1)
    return {
        "exchange": exchange,
        "symboltoken": token,
        "interval": "ONE_DAY",
        "fromdate": f"{first.isoformat()} 09:15",
        "todate": f"{last.isoformat()} 15:30",
    }


async def fetch_prev_close(
    post: Post,
    contracts: Sequence[tuple[str, str]],
    today: dt.date,
    per_second: float,
    budget_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> PrevCloseLoad:
    """Ask for each ``(exchange, token)``'s previous close, paced, within ``budget_s``."""
    out = PrevCloseLoad(asked=[token for _, token in contracts])
    cap = RateLimiter(3, 180, 5000)
    spacing = 1.0 / per_second
    start = clock()
    deadline = start + budget_s
    next_at = start
    in_a_row = 0
    for i, (exchange, token) in enumerate(contracts):
        if in_a_row >= MAX_FAILURES_IN_A_ROW:
            break
        kind: int | str = "not_sent"
        for _attempt in range(RATE_LIMIT_RETRIES + 1):
            wait = max(next_at - clock(), cap.wait_ns(int(clock() * 1e9)) / 1e9, 0.0)
            if clock() + wait >= deadline:
                break
            await asyncio.sleep(wait)
            cap.take(int(clock() * 1e9))
            next_at = clock() + spacing
            kind = await _ask(post, request_body(exchange, token, today), today, deadline, clock)
            if kind != "rate_limited":
                break
            out.failures[kind] += 1
            next_at = clock() + RATE_LIMIT_BACKOFF_S
        if kind == "not_sent":
            out.reason = f"time budget of {budget_s:g} s spent after {i} of {len(contracts)}"
            break
        if isinstance(kind, int):
            out.loaded[token] = kind
            in_a_row = 0
            continue
        if kind != "rate_limited":
            out.failures[kind] += 1
        # A contract without a record (listed today) is not the endpoint failing.
        in_a_row = 0 if kind == "no_data" else in_a_row + 1
    if in_a_row >= MAX_FAILURES_IN_A_ROW:
        top = ", ".join(f"{k} ×{n}" for k, n in out.failures.most_common(3))
        out.reason = f"getOIData failing: {in_a_row} errors in a row ({top})"
    elif not out.loaded and not out.reason:
        out.reason = "getOIData has no record before today for any contract"
    out.seconds = round(clock() - start, 3)
    return out


async def _ask(
    post: Post, body: dict[str, str], today: dt.date, deadline: float, clock: Callable[[], float]
) -> int | str:
    try:
        status, raw = await asyncio.wait_for(post(body), max(0.1, deadline - clock()))
    except TimeoutError:
        return "timeout"
    except NETWORK_ERRORS as e:
        return f"network_{type(e).__name__}"
    return parse_oi_reply(status, raw, today)


async def _centred(subs: SubscriptionManager, wait_s: float) -> None:
    # Polled: the window centres inside the engine's batch, which has no event to wait on.
    for _ in range(max(1, int(wait_s / 0.1))):
        if all(w.center is not None for w in subs.windows.values()):
            return
        await asyncio.sleep(0.1)


def wanted_contracts(summaries: ChainSummaries, subs: SubscriptionManager) -> list[tuple[str, str]]:
    """(exchange, token) of every option to load: each window's strikes, nearest ATM first."""
    out: list[tuple[str, str]] = []
    for root in sorted(summaries.by_root):
        pairs = (
            (summaries.by_root[root], subs.windows.get(root)),
            (summaries.next_by_root.get(root), subs.next_windows.get(root)),
        )
        for s, window in pairs:
            if s is None:
                continue
            u = s.chain.universe
            strikes = sorted(window.strikes) if window is not None else []
            if not strikes:  # not centred yet: the listed strikes, from the middle out
                strikes = list(u.strikes_paise)
            centre = strikes[len(strikes) // 2] if strikes else 0
            for k in sorted(strikes, key=lambda k: (abs(k - centre), k)):
                for book in (u.calls, u.puts):
                    inst = book.get(k)
                    if inst is not None:
                        out.append((inst.segment, inst.token))
    return out


def apply(summaries: ChainSummaries, load: PrevCloseLoad | None, note: str, log: Any) -> None:
    """Set the loaded baselines and every summary's ``doi_source``; log what happened."""
    for root in sorted(summaries.by_root):
        for s in summaries.summarizers(root):
            _label(s, load, note)
    if load is None:
        log.warning("prevclose.fallback", reason=note)
        return
    event = log.info if load.loaded else log.warning
    event(
        "prevclose.loaded" if load.loaded else "prevclose.fallback",
        requested=len(load.asked),
        loaded=len(load.loaded),
        failures=dict(sorted(load.failures.items())),
        seconds=load.seconds,
        reason=note or None,
    )


def _label(s: ChainSummarizer, load: PrevCloseLoad | None, note: str) -> None:
    hits = s.set_prev_close(load.loaded) if load is not None else 0
    if load is not None and hits:
        asked = sum(1 for t in load.asked if s.chain.row_by_token.get(t, -1) >= L.ROW_FIRST_OPTION)
        missed = asked - hits
        detail = f"{missed} of {asked} asked: own close or first print" if missed > 0 else ""
        s.set_doi_source("oi_data", "; ".join(x for x in (detail, note) if x) or None)
    elif s.prev_close_contracts():
        s.set_doi_source("own_close", note or None)
    else:
        s.set_doi_source("first_print", note or "no previous close known")


def sim_session(cfg: Config, sim: SimServer | None, log: Any) -> AngelSession:
    """A session with the simulator's demo account, over its REST API like a live one."""
    # Imported here: sim mode only (a live daemon never loads the simulator).
    from smartflow.sim.rest import SimCredentials

    demo = sim.creds if sim is not None else SimCredentials()
    base = sim.http_url if sim is not None else cfg.sim.external_url
    creds = Credentials(
        api_key=Secret(demo.api_key),
        client_code=Secret(demo.client_code),
        pin=Secret(demo.pin),
        totp_secret=Secret(demo.totp_secret),
    )
    orders = msgspec.structs.replace(cfg.orders, rest_url=base)
    return AngelSession(creds, orders, log)


async def load_prev_close(
    cfg: Config,
    summaries: ChainSummaries,
    subs: SubscriptionManager,
    now_ns: int,
    log: Any,
    *,
    session: AngelSession | None = None,
    sim: SimServer | None = None,
) -> PrevCloseLoad | None:
    """Load, apply and report the previous close (the daemon spawns this once at start).

    ``session``: live mode's Angel session; without it (sim mode) a session of the simulator's
    demo account is opened for the load and closed after. Never raises: any failure is a
    fallback, logged and shown in the summaries.
    """
    h: HistoryConfig = cfg.history
    if not h.prev_close_oi_data:
        apply(summaries, None, "getOIData not asked ([history] prev_close_oi_data = false)", log)
        return None
    own = session is None
    api = session or sim_session(cfg, sim, log)
    load: PrevCloseLoad | None = None
    note = ""
    try:
        await _centred(subs, min(CENTRE_WAIT_S, h.prev_close_budget_s / 2))
        if own:
            await asyncio.wait_for(api.start(), h.prev_close_budget_s)

        async def post(body: dict[str, str]) -> tuple[int, bytes]:
            status, raw, _ = await api.send("POST", OI_DATA_PATH, body)
            return status, raw

        load = await fetch_prev_close(
            post,
            wanted_contracts(summaries, subs),
            ist_date(now_ns),
            h.prev_close_requests_per_s,
            h.prev_close_budget_s,
        )
        note = load.reason
    except Exception as e:  # analytics: any failure is a fallback, said out loud
        note = f"getOIData unavailable: {type(e).__name__}"
    finally:
        if own:
            await api.close()
    apply(summaries, load, note, log)
    return load


async def run_prev_close(
    cfg: Config,
    summaries: ChainSummaries,
    subs: SubscriptionManager,
    now_ns: int,
    log: Any,
    *,
    session: AngelSession | None = None,
    sim: SimServer | None = None,
) -> None:
    """``load_prev_close``, then idle until cancelled.

    The daemon takes a stage that ends for a failed one, and this one has nothing left to do.
    """
    await load_prev_close(cfg, summaries, subs, now_ns, log, session=session, sim=sim)
    await asyncio.Event().wait()
