"""The simulator's instruments, published as Angel's scrip master (angel-smartapi.md §5).

Records use Angel's string formats exactly: ``strike`` in paise as ``"2400000.000000"``, ``expiry``
as ``DDMMMYYYY``, ``tick_size`` in paise, index rows with ``AMXIDX`` on the cash segment. BFO option
symbols follow BSE's ``SENSEX{YY}{MON}{strike}{CE|PE}`` pattern, which does not contain the expiry
day, so a client that parses symbols instead of fields gets them wrong. A few rows of other
underlyings are included so universe selection has something to filter out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from smartflow.core.errors import ConfigError


@dataclass(frozen=True, slots=True)
class RootProfile:
    """Static facts about an index the simulator can list."""

    name: str
    index_symbol: str
    index_token: str
    cash_segment: str
    fo_segment: str
    spot: float
    strike_step: float
    lot_size: int
    token_base: int


PROFILES = {
    "NIFTY": RootProfile("NIFTY", "Nifty 50", "99926000", "NSE", "NFO", 24000.0, 50.0, 75, 40000),
    "SENSEX": RootProfile("SENSEX", "SENSEX", "99919000", "BSE", "BFO", 80000.0, 100.0, 20, 860000),
    "BANKNIFTY": RootProfile(
        "BANKNIFTY", "Nifty Bank", "99926009", "NSE", "NFO", 52000.0, 100.0, 30, 50000
    ),
}

OPTION_TICK_PAISE = 5
FUTURE_TICK_PAISE = 10


@dataclass(frozen=True, slots=True)
class SimInstrument:
    """One listed instrument of the simulated market."""

    token: str
    symbol: str
    root: str
    kind: str  # "INDEX" | "FUT" | "CE" | "PE"
    segment: str
    expiry: dt.date | None
    strike: float
    lot_size: int
    tick_paise: int

    def record(self) -> dict[str, str]:
        """Return the scrip-master record, every value a string as Angel sends it."""
        if self.kind == "INDEX":
            itype = "AMXIDX"
        elif self.kind == "FUT":
            itype = "FUTIDX"
        else:
            itype = "OPTIDX"
        return {
            "token": self.token,
            "symbol": self.symbol,
            "name": self.root,
            "expiry": self.expiry.strftime("%d%b%Y").upper() if self.expiry else "",
            "strike": f"{self.strike * 100:.6f}" if self.kind in ("CE", "PE") else "-1.000000",
            "lotsize": str(self.lot_size),
            "instrumenttype": itype,
            "exch_seg": self.segment,
            "tick_size": f"{self.tick_paise:.6f}" if self.kind != "INDEX" else "-1.000000",
        }


def _option_symbol(p: RootProfile, expiry: dt.date, strike: float, right: str) -> str:
    k = f"{strike:.0f}"
    if p.fo_segment == "BFO":
        return f"{p.name}{expiry:%y}{expiry:%b}".upper() + f"{k}{right}"
    return f"{p.name}{expiry:%d%b%y}".upper() + f"{k}{right}"


def check_roots(roots: list[str]) -> None:
    """Refuse, in one line, underlyings the simulator has no profile for.

    Raises:
        ConfigError: naming the unknown roots and the known ones.
    """
    unknown = [r for r in roots if r not in PROFILES]
    if unknown:
        raise ConfigError(
            f"market.underlyings: the simulator has no {', '.join(unknown)} "
            f"(it knows {', '.join(PROFILES)})"
        )


def build_universe(
    roots: list[str], session_date: dt.date, days_to_expiry: float, strikes_each_side: int
) -> list[SimInstrument]:
    """List index, near-month future and two weekly expiries of options for each root.

    The nearest weekly expiry is ``days_to_expiry`` calendar days after the session date (0 means
    the session is expiry day); a second weekly follows a week later so that "nearest expiry"
    selection has a choice to make.
    """
    out: list[SimInstrument] = []
    for root in roots:
        p = PROFILES[root]
        out.append(
            SimInstrument(
                p.index_token, p.index_symbol, p.name, "INDEX", p.cash_segment, None, 0.0, 1, 0
            )
        )
        weekly = session_date + dt.timedelta(days=int(days_to_expiry))
        expiries = [weekly, weekly + dt.timedelta(days=7)]
        month_end = session_date + dt.timedelta(days=28)
        fut_token = str(p.token_base)
        fut_symbol = f"{p.name}{month_end:%d%b%y}FUT".upper()
        out.append(
            SimInstrument(
                fut_token,
                fut_symbol,
                p.name,
                "FUT",
                p.fo_segment,
                month_end,
                0.0,
                p.lot_size,
                FUTURE_TICK_PAISE,
            )
        )
        atm = round(p.spot / p.strike_step) * p.strike_step
        token = p.token_base + 1
        for expiry in expiries:
            for i in range(-strikes_each_side, strikes_each_side + 1):
                strike = atm + i * p.strike_step
                for right in ("CE", "PE"):
                    out.append(
                        SimInstrument(
                            str(token),
                            _option_symbol(p, expiry, strike, right),
                            p.name,
                            right,
                            p.fo_segment,
                            expiry,
                            strike,
                            p.lot_size,
                            OPTION_TICK_PAISE,
                        )
                    )
                    token += 1
    return out


def noise_records(session_date: dt.date) -> list[dict[str, str]]:
    """Rows that a NIFTY/SENSEX universe must filter out: an equity, a stock option, MCX."""
    expiry = (session_date + dt.timedelta(days=30)).strftime("%d%b%Y").upper()
    return [
        {
            "token": "2885",
            "symbol": "RELIANCE-EQ",
            "name": "RELIANCE",
            "expiry": "",
            "strike": "-1.000000",
            "lotsize": "1",
            "instrumenttype": "",
            "exch_seg": "NSE",
            "tick_size": "5.000000",
        },
        {
            "token": "61234",
            "symbol": f"RELIANCE{expiry[:5]}{expiry[-2:]}3000CE",
            "name": "RELIANCE",
            "expiry": expiry,
            "strike": "300000.000000",
            "lotsize": "250",
            "instrumenttype": "OPTSTK",
            "exch_seg": "NFO",
            "tick_size": "5.000000",
        },
        {
            "token": "437994",
            "symbol": "NIFTYMCXTEST",
            "name": "NIFTY",
            "expiry": expiry,
            "strike": "2400000.000000",
            "lotsize": "1",
            "instrumenttype": "OPTFUT",
            "exch_seg": "MCX",
            "tick_size": "100.000000",
        },
    ]
