"""Where market data and orders come from: the embedded simulator or Angel One (live).

A venue's start-up yields what the rest of the daemon needs and nothing else: the SmartStream URL,
the headers to connect with, the scrip master, the clock (the simulator's runs scaled), and in
live mode the Angel session (the broker gateway and the stream's re-login hooks share it).
``venue_for`` picks one by ``cfg.mode``; the simulator's module is imported only in sim mode, so
a live daemon never loads it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from smartflow.config import Config, Credentials
from smartflow.core.clock import Clock, LiveClock
from smartflow.core.errors import FatalError
from smartflow.core.timeutil import ist_date, parse_hhmm
from smartflow.feed.session import AuthFailureHook, HeadersProvider
from smartflow.instruments.fetch import load_scrip_master
from smartflow.instruments.master import ScripMaster
from smartflow.journal.store import Journal
from smartflow.orders.angel import AngelGateway
from smartflow.orders.angel_session import AngelSession
from smartflow.orders.port import BrokerPort


if TYPE_CHECKING:
    from smartflow.sim.server import SimServer


@dataclass
class Venue:
    """A started venue."""

    url: str
    headers: HeadersProvider
    master: ScripMaster
    clock: Clock
    speed: float = 1.0
    """Simulated seconds per wall second (1 live)."""
    broker: BrokerPort | None = None
    """The live order gateway (None: paper trading)."""
    on_auth_failure: AuthFailureHook | None = None
    relogin: AuthFailureHook | None = None
    tasks: dict[str, Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=dict)
    """Background work the daemon starts as tasks, by name (the daily login cycle)."""


class VenueStarter(Protocol):
    """Start-up and shutdown of one kind of venue."""

    server: SimServer | None
    """The simulator this process runs (sim mode, not external), for tests and tools."""
    session: AngelSession | None
    """Live mode's Angel session (REST loaders share it); None in sim mode."""

    def check(self) -> None:
        """Refuse a configuration the venue cannot serve, before anything slow starts."""

    async def start(self, journal: Journal) -> Venue:
        """Bring the venue up."""

    def closers(self) -> list[tuple[str, Awaitable[None]]]:
        """What to await at shutdown, named, after the stages have stopped."""


def venue_for(cfg: Config, creds: Credentials, live: bool, log: Any) -> VenueStarter:
    """The simulator (``mode = "sim"``) or Angel One (``mode = "live"``)."""
    if cfg.mode == "sim":
        # Imported here: the simulator is loaded only when it is the venue.
        from smartflow.app.simvenue import SimVenue

        return SimVenue(cfg, log)
    return LiveVenue(cfg, creds, live, log)


class LiveVenue:
    """Angel One: TOTP login, one session for orders and market data, the daily cycle."""

    def __init__(self, cfg: Config, creds: Credentials, live: bool, log: Any) -> None:
        self.cfg = cfg
        self.creds = creds
        self.live = live
        self.log = log
        self.session: AngelSession | None = None
        self.server: SimServer | None = None

    def check(self) -> None:
        """Live mode needs the --live flag and every credential."""
        missing = []
        if not self.live:
            missing.append("the --live flag")
        missing += [f"credential {n}" for n in self.creds.missing()]
        if missing:
            raise FatalError(
                "live mode refused: missing "
                + ", ".join(missing)
                + " (credentials come from $CREDENTIALS_DIRECTORY or "
                "SMARTFLOW_<NAME> environment variables)"
            )

    async def start(self, journal: Journal) -> Venue:
        """Log in, then load today's scrip master (cached in ``state_dir``)."""
        cfg = self.cfg
        clock = LiveClock()
        session = AngelSession(self.creds, cfg.orders, self.log.bind(stage="angel"))
        self.session = session
        await session.start()  # TOTP login; AuthError names what Angel refused
        broker = None
        if cfg.orders.broker == "angel":
            # One session for orders and market data: a re-login replaces the tokens of both.
            broker = AngelGateway(
                session, cfg.orders, self.log.bind(stage="angel"), close_session=False
            )
        login_at, logout_at = (
            parse_hhmm(cfg.orders.login_at_ist),
            parse_hhmm(cfg.orders.logout_at_ist),
        )
        master = await load_scrip_master(
            cfg.market.scrip_master_url,
            set(cfg.market.underlyings),
            Path(cfg.state_dir),
            ist_date(clock.now_ns()),
            self.log,
        )
        return Venue(
            cfg.feed.url,
            session.stream_headers,
            master,
            clock,
            broker=broker,
            on_auth_failure=session.on_stream_auth_failure,
            relogin=session.relogin_for_stream,
            tasks={"daily-session": lambda: session.run_daily(clock, login_at, logout_at)},
        )

    def closers(self) -> list[tuple[str, Awaitable[None]]]:
        """Close the HTTP client only.

        The session at Angel stays valid (orders are unaffected); the daily cycle logs out
        after the close.
        """
        return [("session.close", self.session.close())] if self.session is not None else []
