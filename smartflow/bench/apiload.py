"""A bounded local load generator for the HTTP API: ``python -m smartflow.bench.apiload URL``.

``--clients`` concurrent clients, each on its own connection, request the read routes in turn
as fast as they are answered, until ``--seconds`` have passed or ``--requests`` have been sent,
whichever comes first. Loopback only: it refuses any other host. Prints ``{"started": true}``
when the clients start, then one JSON object: the count per HTTP status, transport errors,
requests per second and latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec


PATHS = (
    "/api/chain/NIFTY",
    "/api/smart-money/metrics",
    "/api/smart-money/order-flow",
    "/api/smart-money/dark-pools",
    "/api/smart-money/whale-alerts?limit=1000",
    "/api/signals?limit=1000",
    "/api/smart-money/status",
    "/metrics",
    "/healthz",
)
MAX_CLIENTS = 1000
MAX_SECONDS = 600.0


def loopback_url(url: str) -> str:
    """``url`` if its host is a loopback address; ``ValueError`` otherwise."""
    host = urlsplit(url).hostname or ""
    try:
        ok = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"apiload: {url} is not a loopback URL")
    return url.rstrip("/")


async def hammer(
    url: str,
    clients: int,
    seconds: float,
    requests: int,
    paths: Sequence[str] = PATHS,
    headers: dict[str, str] | None = None,
    announce: bool = False,
) -> dict[str, Any]:
    """Run the load; return what was answered."""
    base = loopback_url(url)
    clients = max(1, min(clients, MAX_CLIENTS))
    seconds = min(seconds, MAX_SECONDS)
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    latencies: list[int] = []
    sent = 0
    end = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=30)

    async def client(i: int) -> None:
        nonlocal sent
        # One connection per client, as 200 separate dashboards would have.
        conn = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(
            base_url=base, connector=conn, timeout=timeout, headers=headers
        ) as http:
            k = i
            while sent < requests and time.monotonic() < end:
                sent += 1
                path = paths[k % len(paths)]
                k += 1
                t0 = time.perf_counter_ns()
                try:
                    async with http.get(path) as r:
                        await r.read()
                        statuses[str(r.status)] += 1
                except (aiohttp.ClientError, TimeoutError) as e:
                    errors[type(e).__name__] += 1
                    await asyncio.sleep(0.01)
                latencies.append(time.perf_counter_ns() - t0)

    t0 = time.perf_counter()
    if announce:
        # For a driver that measures only while the load is on (the interpreter's start-up
        # and imports are not load).
        sys.stdout.write('{"started": true}\n')
        sys.stdout.flush()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - t0
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1e6 if latencies else 0

    return {
        "clients": clients,
        "sent": sent,
        "seconds": round(elapsed, 3),
        "per_s": round(sent / elapsed, 1) if elapsed > 0 else 0.0,
        "statuses": dict(sorted(statuses.items())),
        "errors": dict(sorted(errors.items())),
        "latency_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0)},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: URL, ``--clients``, ``--seconds``, ``--requests``."""
    p = argparse.ArgumentParser(prog="python -m smartflow.bench.apiload", description=__doc__)
    p.add_argument("url", help="http://127.0.0.1:PORT of the API")
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--requests", type=int, default=1_000_000, help="stop after this many")
    p.add_argument("--path", action="append", help="route to request (repeatable)")
    p.add_argument("--nice", type=int, default=0, help="run this many nice steps lower")
    args = p.parse_args(argv)
    if args.nice:
        os.nice(args.nice)
    try:
        out = asyncio.run(
            hammer(
                args.url,
                args.clients,
                args.seconds,
                args.requests,
                args.path or PATHS,
                announce=True,
            )
        )
    except ValueError as e:
        sys.stderr.write(f"{e}\n")
        return 2
    sys.stdout.write(msgspec.json.encode(out).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
