"""The feed's part of health: one rule read by ``/healthz`` and by the systemd watchdog.

A feed is healthy when market data flows and the server carries what we asked for. Two ways to
fail, with different consequences:

* **stale** — in market hours a subscribed socket got no market data for ``data_stall_s`` (pongs
  do not count). ``/healthz`` says so at once while the feed resubscribes, reconnects and
  re-logs in; once those steps have all been taken and the socket is still silent, the systemd
  watchdog is withheld too, so systemd restarts the process as the last step — but only if data
  had flowed since the open: hours know no exchange holidays, and a market that never traded
  today must not restart the daemon all day (it stays stale in ``/healthz`` and keeps retrying).
* **not converged** — a subscription the server refused (E1001/E1002) is waiting for its retry,
  or a wanted pair has not been sent on an open socket within ``subscribe_confirm_s``.
  ``/healthz`` reports it; the watchdog is kept (a restart cannot raise a server-side limit).

Contracts silent while their segment streams are only listed (status API, metrics): an
illiquid strike may simply not trade.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from smartflow.feed.session import STALL_STEPS, FeedSession


@dataclass(frozen=True)
class FeedHealth:
    """What is wrong with the feed now."""

    problems: list[str] = field(default_factory=list)
    """For ``/healthz`` (503 when any) and systemd's STATUS line."""
    withhold_watchdog: list[str] = field(default_factory=list)
    """Stages that must stop the watchdog pings (a subset of the problems' causes)."""


def feed_health(feed: FeedSession | None) -> FeedHealth:
    """Apply the rule to ``feed``'s latest view (refreshed by the feed every second)."""
    if feed is None:
        return FeedHealth()
    stats = feed.stats
    problems = []
    withhold = []
    for s in stats.stalled:
        # No seconds in the text: it changes only with a step, so each change is logged once
        # (the status API has the silence in seconds).
        problems.append(
            f"feed stale: no market data on socket {s['socket']} "
            f"(recovery steps taken: {s['steps']})"
        )
        if s["steps"] > len(STALL_STEPS) and s["market_seen"]:
            withhold.append(f"feed data (socket {s['socket']})")
    if stats.unconverged:
        n = stats.subscriptions
        problems.append(
            f"subscriptions not converged: {n.get('confirmed', 0)} of {n.get('wanted', 0)} pairs "
            f"confirmed, {n.get('rejected', 0)} refused by the server (retrying), "
            f"{n.get('unsent', 0)} not sent"
        )
    return FeedHealth(problems, withhold)
