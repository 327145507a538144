"""A recorded simulator session, replayed, gives back the simulator's true volatilities and greeks.

The simulator prices every option by Black-76 at a known smile (its *true* vol) and quotes it on
the ₹0.05 grid around that price. "Within the price-rounding error" is made exact here: for each
contract, invert the model price ± the largest rounding the quote used can carry to get an IV
interval that contains the true vol, and require our IV inside it. Greeks are then checked against
vollib's analytical Black-Scholes-Merton greeks at our IV.

The last snapshot re-prices every contract at the tape's last instant from its last quote, which the
simulator priced at that packet's exchange time: the model price is taken then, the IV interval at
the snapshot (a quote 20 s old is 1e-5 of vol away on a 3-day expiry, 20× the output's rounding).
"""

from __future__ import annotations

import asyncio
import io
import math
from pathlib import Path

import msgspec
import pytest
import structlog
from vollib.black_scholes_merton import black_scholes_merton
from vollib.black_scholes_merton.greeks import analytical as vollib_greeks

from smartflow.app.replay import Replayer
from smartflow.config import Config, FeedConfig, MarketConfig, ModelConfig, SimConfig
from smartflow.core.clock import ScaledClock
from smartflow.core.timeutil import NS_PER_S, SECONDS_PER_YEAR, expiry_ns
from smartflow.feed.protocol import Decoder
from smartflow.feed.session import FeedSession, headers_for, static_headers
from smartflow.instruments.master import parse
from smartflow.sim.market import Market, black76, smile_vol
from smartflow.sim.server import SimServer, session_start
from smartflow.sim.universe import noise_records
from smartflow.tape.format import Tape, TapeWriter, open_tape


SIM = SimConfig(
    seed=11,
    spot_vol=0.0,
    iv_atm=0.14,
    ticks_per_second=3000,
    strikes_each_side=25,
    days_to_expiry=3,
)
STRIKES_EACH_SIDE = 20


async def _record(tape_path: Path) -> tuple[Market, bytes]:
    start_ns, day = session_start("10:00")
    clock = ScaledClock(start_ns, speed=4.0)
    market = Market(SIM, ["NIFTY"], start_ns, day)
    server = SimServer(market, clock, log=structlog.get_logger())
    await server.start()
    recorder = TapeWriter(tape_path, {"test": "greeks"})
    creds = server.creds
    feed = FeedSession(
        FeedConfig(),
        server.url,
        static_headers(headers_for(creds.jwt, creds.api_key, creds.client_code, creds.feed_token)),
        lambda t, k, f: None,
        clock,
        structlog.get_logger(),
        recorder,
    )
    atm = 24000
    wanted = {(1, "99926000"), (2, "40000")}
    for inst in market.instruments:
        if (
            inst.kind in ("CE", "PE")
            and abs(inst.strike - atm) <= 50 * STRIKES_EACH_SIDE
            and inst.expiry == min(i.expiry for i in market.instruments if i.kind == "CE")
        ):
            wanted.add((2, inst.token))
    feed.set_subscriptions(wanted)
    task = asyncio.create_task(feed.run())
    await feed.wait_ready()
    # Long enough (simulated ~24 s) that every contract in the window has ticked several times.
    await asyncio.sleep(6.0)
    await feed.stop()
    await task
    await server.stop()
    recorder.close()
    return market, msgspec.json.encode(market.scrip_master(noise_records(day)))


def _iv_bounds(
    price_lo: float, price_hi: float, fwd: float, k: float, t: float, r: float, is_call: bool
) -> tuple[float, float]:
    """Vols whose Black-76 prices are price_lo and price_hi (bisection; independent of ours)."""
    df = math.exp(-r * t)

    def solve(target: float) -> float:
        lo, hi = 1e-4, 5.0
        if black76(fwd, k, t, lo, df, is_call) >= target:
            return 0.0
        if black76(fwd, k, t, hi, df, is_call) <= target:
            return math.inf
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if black76(fwd, k, t, mid, df, is_call) < target:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    return solve(price_lo), solve(price_hi)


def _last_quote_ms(tape: Tape) -> dict[str, int]:
    """Each token's last packet's exchange time (ms): when the simulator priced that quote."""
    decoder = Decoder()
    out: dict[str, int] = {}
    for _, payload in tape:
        p = decoder.decode(payload)
        out[p["token"]] = int(p.get("exchange_timestamp") or p["last_traded_timestamp"])
    return out


@pytest.mark.slow
@pytest.mark.parametrize("forward", ["spot", "synthetic"])
async def test_replay_recovers_true_vol_and_greeks(tmp_path: Path, forward: str) -> None:
    tape_path = tmp_path / "session.sft"
    market, master_json = await _record(tape_path)
    cfg = Config(
        market=MarketConfig(strikes_each_side=STRIKES_EACH_SIDE),
        model=ModelConfig(forward=forward, rate=SIM.rate),
        sim=SIM,
    )
    tape = open_tape(tape_path)
    out = io.BytesIO()
    replayer = Replayer(cfg, parse(master_json, {"NIFTY"}), out, 3600.0, int(tape.recv_ns[0]))
    await replayer.arun(tape)
    lines = [msgspec.json.decode(line) for line in out.getvalue().splitlines()]
    final = [ln for ln in lines if ln["kind"] == "chain"][-1]
    t_snap = int(tape.recv_ns[-1])
    quoted_ms = _last_quote_ms(tape)
    spot = 24000.0
    checked = 0
    for row in final["rows"]:
        c = market.by_token[row["token"]]
        assert c.inst.expiry is not None
        t = (expiry_ns(c.inst.expiry) - t_snap) / NS_PER_S / SECONDS_PER_YEAR
        fwd = spot * math.exp(SIM.rate * t)
        t_q = (expiry_ns(c.inst.expiry) - quoted_ms[row["token"]] * 1_000_000) / NS_PER_S
        t_q /= SECONDS_PER_YEAR
        fwd_q = spot * math.exp(SIM.rate * t_q)
        true_vol = smile_vol(SIM.iv_atm, fwd_q, c.inst.strike, t_q)
        is_call = row["option_type"] == "CE"
        theo = black76(fwd_q, c.inst.strike, t_q, true_vol, math.exp(-SIM.rate * t_q), is_call)
        tick = 0.05
        # Mid of a quote built around the model price: within half a tick of it. LTP (used when
        # the bid is empty): within one spread of it.
        used_mid = row["bid"] is not None and row["ask"] is not None
        err = tick / 2 if used_mid else 2 * tick
        if forward == "synthetic":
            # The parity forward is read off mids too: up to a tick of error in C - P, so the
            # forward is off by ≤ tick/df and the premium by ≤ |Δ_F|·tick/df ≤ tick/df.
            err += tick / math.exp(-SIM.rate * t)
        lo, hi = _iv_bounds(
            max(theo - err, 1e-12), theo + err, fwd, c.inst.strike, t, SIM.rate, is_call
        )
        if row["iv"] is None:
            # Only where rounding swamps the time value may the IV be unrecoverable.
            intrinsic = max(fwd - c.inst.strike, 0) if is_call else max(c.inst.strike - fwd, 0)
            assert theo - math.exp(-SIM.rate * t) * intrinsic < 2 * err, row
            continue
        # Replay writes the IV to 6 decimals: half a unit of the last one either side.
        assert lo - 5e-7 <= row["iv"] <= hi + 5e-7, (row, true_vol, lo, hi)
        # Greeks at our IV against vollib's analytical BSM greeks (theta per day, vega per 1 %).
        flag = "c" if is_call else "p"
        iv = row["iv"]
        # Our greeks are per point of the index with the carry the forward implies against it,
        # i.e. Black-Scholes-Merton with q = r - ln(F/S)/T (q = 0 in spot mode).
        s_eff = final["spot"]
        q_eff = SIM.rate - math.log(final["forward"] / s_eff) / t
        assert row["delta"] == pytest.approx(
            vollib_greeks.delta(flag, s_eff, c.inst.strike, t, SIM.rate, iv, q_eff), abs=2e-6
        )
        assert row["gamma"] == pytest.approx(
            vollib_greeks.gamma(flag, s_eff, c.inst.strike, t, SIM.rate, iv, q_eff),
            rel=1e-4,
            abs=1e-8,
        )
        assert row["theta"] == pytest.approx(
            vollib_greeks.theta(flag, s_eff, c.inst.strike, t, SIM.rate, iv, q_eff),
            rel=1e-4,
            abs=2e-4,
        )
        assert row["vega"] == pytest.approx(
            vollib_greeks.vega(flag, s_eff, c.inst.strike, t, SIM.rate, iv, q_eff),
            rel=1e-4,
            abs=2e-4,
        )
        assert black_scholes_merton(flag, s_eff, c.inst.strike, t, SIM.rate, iv, q_eff) > 0
        checked += 1
    # Every strike of the subscribed window traded and most have a recoverable IV.
    assert checked >= 60
