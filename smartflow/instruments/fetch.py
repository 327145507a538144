"""Getting the scrip master: downloaded once a day (live) or from the simulator (sim).

Live mode caches the day's file under ``<state_dir>/scrip-master/`` and reuses it for the rest of
the IST day, so a restart does not download 40 MB again; if the download fails and an earlier
day's file is cached, that file is used with a warning (tokens of listed contracts do not change
between days; only new listings would be missing).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import aiohttp

from smartflow.core.errors import TransientError
from smartflow.instruments.master import ScripMaster, cached_path, parse, prune_cache


async def download(url: str, timeout_s: float = 60.0) -> bytes:
    """GET the scrip master JSON."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
            if resp.status != 200:
                raise TransientError(f"scrip master download: HTTP {resp.status} from {url}")
            return await resp.read()
    except (aiohttp.ClientError, TimeoutError) as e:
        raise TransientError(f"scrip master download failed: {e}") from None


async def load_scrip_master(
    url: str, roots: set[str], state_dir: Path | None, today: dt.date, log: Any
) -> ScripMaster:
    """Return the parsed scrip master, from today's cache when present.

    Args:
        url: where to download it.
        roots: underlyings to keep.
        state_dir: cache location (None: never cache, e.g. the simulator's).
        today: IST date the cache file is keyed by.
        log: bound logger.
    """
    if state_dir is None:
        return parse(await download(url), roots)
    path = cached_path(state_dir, today)
    if path.is_file():
        log.info("instruments.cache_hit", path=str(path))
        return parse(path.read_bytes(), roots)
    try:
        data = await download(url)
    except TransientError as e:
        older = sorted(path.parent.glob("OpenAPIScripMaster-*.json"))
        if not older:
            raise
        log.warning("instruments.stale_cache", error=str(e), path=str(older[-1]))
        return parse(older[-1].read_bytes(), roots)
    master = parse(data, roots)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(path)
    prune_cache(state_dir)
    log.info(
        "instruments.downloaded",
        path=str(path),
        bytes=len(data),
        instruments=len(master.instruments),
    )
    return master
