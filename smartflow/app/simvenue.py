"""The embedded simulator as the daemon's venue (``mode = "sim"``; see app/venue.py)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from smartflow.app.venue import Venue
from smartflow.config import Config
from smartflow.core.clock import ScaledClock
from smartflow.feed.session import headers_for, static_headers
from smartflow.instruments.fetch import load_scrip_master
from smartflow.journal.store import Journal
from smartflow.orders.angel_session import AngelSession
from smartflow.sim.market import Market
from smartflow.sim.rest import SimCredentials
from smartflow.sim.server import (
    SCRIP_MASTER_PATH,
    STREAM_PATH,
    SimServer,
    resume_session,
    session_start,
)
from smartflow.sim.universe import check_roots


class SimVenue:
    """The simulator in this process, or one in another process (``sim.external_url``)."""

    def __init__(self, cfg: Config, log: Any) -> None:
        self.cfg = cfg
        self.log = log
        self.server: SimServer | None = None
        self.session: AngelSession | None = None

    def check(self) -> None:
        """The simulator knows only some underlyings (an external one says for itself)."""
        if not self.cfg.sim.external_url:
            check_roots(self.cfg.market.underlyings)

    async def start(self, journal: Journal) -> Venue:
        """Start the simulated session (resumed after a restart) and read its scrip master."""
        cfg = self.cfg
        start_ns, day = session_start(cfg.sim.session_start_ist)
        if not cfg.sim.external_url:
            # A restart continues the session rather than rewinding it over the journal (an
            # external simulator keeps its own clock).
            resumed = resume_session(start_ns, journal.last_ts_ns())
            if resumed != start_ns:
                self.log.info("sim.session_resumed", skipped_s=round((resumed - start_ns) / 1e9, 3))
            start_ns = resumed
        clock = ScaledClock(start_ns, cfg.sim.speed)
        roots = set(cfg.market.underlyings)
        if cfg.sim.external_url:
            # A simulator in another process (bench e2e, or `smartflow sim` run by hand): the
            # same demo account, instruments over HTTP exactly as in live mode.
            base = cfg.sim.external_url.rstrip("/")
            creds = SimCredentials()
            master = await load_scrip_master(base + SCRIP_MASTER_PATH, roots, None, day, self.log)
            url = "ws" + base.removeprefix("http") + STREAM_PATH
        else:
            market = Market(cfg.sim, cfg.market.underlyings, start_ns, day)
            self.server = SimServer(
                market, clock, cfg.sim.host, cfg.sim.port, log=self.log.bind(stage="sim")
            )
            await self.server.start()
            creds = self.server.creds
            master = await load_scrip_master(
                self.server.http_url + SCRIP_MASTER_PATH, roots, None, day, self.log
            )
            url = self.server.url
        headers = static_headers(
            headers_for(creds.jwt, creds.api_key, creds.client_code, creds.feed_token)
        )
        return Venue(url, headers, master, clock, speed=cfg.sim.speed)

    def closers(self) -> list[tuple[str, Awaitable[None]]]:
        """Stop the simulator last (the feed reads from it until then)."""
        return [("sim.stop", self.server.stop())] if self.server is not None else []
