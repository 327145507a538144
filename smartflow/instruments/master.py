"""Angel's scrip master: parse the JSON array into typed instruments (angel-smartapi.md §5).

Every field of a record is a string. We read ``name``, ``exch_seg``, ``instrumenttype``,
``expiry`` (``DDMMMYYYY``), ``strike`` (paise, ``"2400000.000000"``), ``lotsize`` and
``tick_size`` (paise) and never parse ``symbol``: BSE's option symbols do not even carry the
expiry day. Records of other segments or types are skipped, and a record whose fields do not
parse is counted and skipped rather than failing the whole file.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import msgspec

from smartflow.core.timeutil import expiry_ns


class ScripRecord(msgspec.Struct, frozen=True):
    """One scrip-master row exactly as Angel publishes it (unknown extra keys are ignored)."""

    token: str
    symbol: str = ""
    name: str = ""
    expiry: str = ""
    strike: str = "-1"
    lotsize: str = "1"
    instrumenttype: str = ""
    exch_seg: str = ""
    tick_size: str = "0"


_records_decoder = msgspec.json.Decoder(list[ScripRecord])

KINDS = ("INDEX", "FUT", "CE", "PE")
SEGMENT_EXCHANGE_TYPE = {"NSE": 1, "NFO": 2, "BSE": 3, "BFO": 4, "MCX": 5, "NCDEX": 7, "CDS": 13}


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable (or index) instrument, normalised."""

    token: str
    symbol: str
    root: str
    kind: str  # INDEX | FUT | CE | PE
    segment: str  # exch_seg: NSE NFO BSE BFO ...
    exchange_type: int
    expiry: dt.date | None
    strike_paise: int
    lot_size: int
    tick_paise: int

    @property
    def strike(self) -> float:
        """Strike in rupees."""
        return self.strike_paise / 100

    @property
    def expiry_ns(self) -> int:
        """15:30 IST on the expiry date (0 for instruments without expiry)."""
        return expiry_ns(self.expiry) if self.expiry else 0


@dataclass
class ScripMaster:
    """Parsed instruments of interest plus what could not be parsed."""

    instruments: list[Instrument]
    skipped: int
    malformed: int

    def by_token(self) -> dict[str, Instrument]:
        """Token → instrument."""
        return {i.token: i for i in self.instruments}


def _kind(rec: ScripRecord) -> str | None:
    itype = rec.instrumenttype
    if itype == "AMXIDX":
        return "INDEX"
    if itype == "FUTIDX":
        return "FUT"
    if itype == "OPTIDX":
        suffix = rec.symbol[-2:]
        return suffix if suffix in ("CE", "PE") else None
    return None


def parse(data: bytes, roots: set[str] | None = None) -> ScripMaster:
    """Parse scrip-master JSON, keeping index, index-future and index-option rows.

    The option type is the only thing taken from ``symbol`` (its last two characters), because
    Angel publishes no separate field for it (angel-smartapi.md §5).

    Args:
        data: the JSON array.
        roots: keep only these ``name`` values (None keeps every root).
    """
    out: list[Instrument] = []
    skipped = malformed = 0
    for rec in _records_decoder.decode(data):
        if roots is not None and rec.name not in roots:
            skipped += 1
            continue
        kind = _kind(rec)
        exch = SEGMENT_EXCHANGE_TYPE.get(rec.exch_seg)
        if kind is None or exch is None:
            skipped += 1
            continue
        try:
            expiry = dt.datetime.strptime(rec.expiry, "%d%b%Y").date() if kind != "INDEX" else None
            strike_paise = round(float(rec.strike)) if kind in ("CE", "PE") else 0
            lot = int(float(rec.lotsize))
            tick = max(0, round(float(rec.tick_size)))
        except ValueError:
            malformed += 1
            continue
        if kind in ("CE", "PE") and strike_paise <= 0:
            malformed += 1
            continue
        out.append(
            Instrument(
                rec.token,
                rec.symbol,
                rec.name,
                kind,
                rec.exch_seg,
                exch,
                expiry,
                strike_paise,
                lot,
                tick,
            )
        )
    return ScripMaster(out, skipped, malformed)


def load_file(path: str | os.PathLike[str], roots: set[str] | None = None) -> ScripMaster:
    """Parse a scrip-master file."""
    return parse(Path(path).read_bytes(), roots)


def cached_path(state_dir: Path, today: dt.date) -> Path:
    """Where the live scrip master for ``today`` is cached (one file per IST day)."""
    return state_dir / "scrip-master" / f"OpenAPIScripMaster-{today.isoformat()}.json"


def prune_cache(state_dir: Path, keep: int = 3) -> None:
    """Delete all but the newest ``keep`` cached scrip masters."""
    files = sorted((state_dir / "scrip-master").glob("OpenAPIScripMaster-*.json"))
    for f in files[:-keep]:
        f.unlink(missing_ok=True)
