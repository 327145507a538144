"""``smartflow backtest``: simulated tapes through the paper pipeline into trades, metrics and an
HTML report; deterministic to the byte, reconciled with the paper fills of a plain replay.

Two short simulated days (a strong long build-up on the ATM call, then a fresh position on a
put) trade several round trips each; the tapes are written once per module.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import msgspec
import pytest
from support.browser import CHROMIUM, LAUNCH_ARGS as CHROMIUM_ARGS

from smartflow.app.backtest import TapeRun, backtest, metrics, override, parse_sweep, sweep
from smartflow.app.main import main
from smartflow.app.replay import Replayer
from smartflow.config import Config, ScenarioConfig, SimConfig, StrategyConfig
from smartflow.core.errors import ConfigError
from smartflow.core.timeutil import ns_at_ist
from smartflow.instruments.master import parse
from smartflow.orders.charges import ChargeModel
from smartflow.sim.market import Market
from smartflow.tape.format import TapeWriter, open_tape


DAYS = (dt.date(2026, 11, 30), dt.date(2026, 12, 1))
SECONDS = 240


def write_day(root: Path, day: dt.date, seed: int) -> Path:
    """Record ``SECONDS`` of one simulated session from 10:00 IST, scrip master beside it."""
    sim = SimConfig(
        seed=seed,
        strikes_each_side=5,
        ticks_per_second=30,
        days_to_expiry=3,
        scenarios=[
            ScenarioConfig(kind="long_build_up", start_s=5, duration_s=100, strength=4.0),
            ScenarioConfig(kind="fresh_position", start_s=150, side="PE", strike_offset=-1),
        ],
    )
    start = ns_at_ist(day, dt.time(10, 0))
    market = Market(sim, ["NIFTY"], start, day)
    folder = root / day.isoformat()
    folder.mkdir(parents=True)
    (folder / "instruments.json").write_bytes(msgspec.json.encode(market.scrip_master()))
    tape_path = folder / "session.sft"
    t, end = start, start + SECONDS * 1_000_000_000
    with TapeWriter(str(tape_path), {"sim_seed": seed}) as tape:
        while t < end:
            t = min(end, t + 1_000_000_000)
            for _, frame in market.advance(t):
                tape.write(int.from_bytes(frame[35:43], "little") * 1_000_000, frame)
    return tape_path


@pytest.fixture(scope="module")
def tapes(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("tapes")
    return [str(write_day(root, day, 11 + i)) for i, day in enumerate(DAYS)]


@pytest.fixture(scope="module")
def result(tapes: list[str], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:  # type: ignore[type-arg]
    out = tmp_path_factory.mktemp("bt") / "run"
    return out, backtest(Config(), tapes, str(out))


def test_same_tapes_and_config_give_the_same_bytes(
    tapes: list[str], result: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    first, data = result
    assert data["metrics"]["trades"] >= 2
    again = tmp_path / "again"
    backtest(Config(), list(reversed(tapes)), str(again))  # order given does not matter
    names = sorted(p.name for p in first.iterdir())
    assert names == ["backtest.json", "metrics.json", "report.html"]
    for name in names:
        assert (again / name).read_bytes() == (first / name).read_bytes(), name


def _replay(tape_path: str) -> list[dict[str, Any]]:
    cfg = Config()
    tape = open_tape(tape_path)
    master = parse((Path(tape_path).parent / "instruments.json").read_bytes(), {"NIFTY"})
    out = io.BytesIO()
    Replayer(cfg, master, out, 60.0, int(tape.recv_ns[0])).run(tape)
    tape.close()
    return [msgspec.json.decode(line) for line in out.getvalue().splitlines()]


def _round_trips(lines: list[dict[str, Any]], model: ChargeModel) -> list[tuple[str, float]]:
    """(exit time, net P&L) of each round trip the replay's fills make, flat to flat; what is
    still held at the end sold at the last chain snapshot's bid. Charges recomputed per fill,
    brokerage once per order across its fills."""
    bid = {r["token"]: r["bid"] for r in [x for x in lines if x["kind"] == "chain"][-1]["rows"]}
    end_ts = lines[-1]["ts"]
    held: dict[str, int] = defaultdict(int)
    pnl: dict[str, float] = defaultdict(float)
    turnover: dict[str, float] = defaultdict(float)
    trips = []
    for f in (x for x in lines if x["kind"] == "fill"):
        tok, qty, px = f["token"], f["quantity"], f["price"]
        sign = 1 if f["side"] == "BUY" else -1
        c = model.fill("NFO", f["side"], qty, px, turnover[f["order_id"]])
        turnover[f["order_id"]] += qty * px
        pnl[tok] += -sign * qty * px - c.total
        held[tok] += sign * qty
        if held[tok] == 0:
            trips.append((f["ts"], pnl.pop(tok)))
    for tok in sorted(t for t, q in held.items() if q):
        c = model.fill("NFO", "SELL", held[tok], bid[tok])
        trips.append((end_ts, pnl.pop(tok) + held[tok] * bid[tok] - c.total))
    return sorted(trips, key=lambda t: t[0])


def test_a_tapes_trade_sequence_gives_the_metrics_rebuilt_from_a_plain_replay(
    tapes: list[str], result: tuple[Path, dict[str, Any]]
) -> None:
    _, data = result
    model = ChargeModel(Config().costs)
    trips = [t for tape in tapes for t in _round_trips(_replay(tape), model)]
    assert len(trips) >= 4, "the scenarios must trade"
    nets = [net for _, net in trips]
    m = data["metrics"]
    assert m["trades"] == len(trips)
    assert m["wins"] == sum(1 for x in nets if x > 0)
    assert m["net_pnl"] == pytest.approx(sum(nets), abs=0.011 * len(nets))
    assert [t["net"] for t in data["trades"]] == pytest.approx(nets, abs=0.011)
    level = peak = dd = 0.0
    for x in nets:
        level += x
        peak = max(peak, level)
        dd = max(dd, peak - level)
    assert m["max_drawdown"] == pytest.approx(dd, abs=0.011 * len(nets))
    wins = [x for x in nets if x > 0]
    losses = [-x for x in nets if x <= 0]
    if wins and losses:
        assert m["profit_factor"] == pytest.approx(sum(wins) / sum(losses), rel=1e-3)
        payoff = (sum(wins) / len(wins)) / (sum(losses) / len(losses))
        assert m["payoff_ratio"] == pytest.approx(payoff, rel=1e-3)
    assert m["net_pnl"] == pytest.approx(m["gross_pnl"] - m["charges"], abs=0.011)
    for t in data["trades"]:
        assert t["net"] == pytest.approx(t["gross"] - t["charges"], abs=0.011)
        assert t["signal"] is not None, "every entry has its signal"
        assert t["signal"]["evidence"]
        assert t["entry_reason"].split()[1] == t["signal"]["recommendation"]
    assert {t["day"] for t in data["trades"]} <= {d.isoformat() for d in DAYS}


def _run(day: str, net: float, entry: str, hour: int = 10) -> dict[str, Any]:
    ns = ns_at_ist(dt.date.fromisoformat(day), dt.time(hour, 0))
    return {
        "day": day,
        "entry_ns": ns,
        "exit_ns": ns + 60_000_000_000,
        "exit_ts": f"{day}T{hour:02d}:01:00",
        "gross": net + 50.0,
        "net": net,
        "charges": 50.0,
        "charges_by_part": {
            "brokerage": 40.0,
            "stt": 5.0,
            "exchange": 2.0,
            "sebi": 0.0,
            "stamp": 1.0,
            "gst": 2.0,
        },
        "slippage": 1.5,
        "entry_kind": entry,
        "exit_kind": "target" if net > 0 else "stop",
    }


def test_a_known_trade_sequence_gives_the_expected_metrics() -> None:
    d1, d2, d3 = "2026-11-30", "2026-12-01", "2026-12-02"

    def day(d: str, trades: list[dict[str, Any]]) -> TapeRun:
        start = ns_at_ist(dt.date.fromisoformat(d), dt.time(10, 0))
        return TapeRun(d, start, start + 3600 * 10**9, {}, trades, [(start, start + 900 * 10**9)])

    runs = [
        day(d1, [_run(d1, 500.0, "AGGRESSIVE BUY_CALL"), _run(d1, -200.0, "NORMAL BUY_PUT", 11)]),
        day(d2, [_run(d2, -300.0, "NORMAL BUY_CALL"), _run(d2, 100.0, "NORMAL BUY_CALL", 11)]),
        day(d3, []),
    ]
    out = metrics(runs, capital=100_000.0)
    m = out["metrics"]
    # Trades by exit: +500, −200, −300, +100 → equity 500, 300, 0, 100; peak 500, drawdown 500.
    assert [p["equity"] for p in out["equity"]] == [500.0, 300.0, 0.0, 100.0]
    assert m["max_drawdown"] == 500.0
    assert m["max_drawdown_pct_capital"] == 0.5
    assert (m["trades"], m["wins"], m["losses"], m["win_rate"]) == (4, 2, 2, 0.5)
    assert m["net_pnl"] == 100.0
    assert m["gross_pnl"] == 300.0
    assert m["charges"] == 200.0
    assert m["charges_by_part"]["brokerage"] == 160.0
    assert m["avg_win"] == 300.0  # (500 + 100) / 2
    assert m["avg_loss"] == 250.0  # (200 + 300) / 2
    assert m["payoff_ratio"] == 1.2
    assert m["profit_factor"] == 1.2  # 600 / 500
    # Daily net: +300, −200, 0 (a tape day without trades). Mean 33.33…; sample sd 251.66;
    # downside deviation √(200² / 3) = 115.47.
    mean = 100 / 3
    sd = math.sqrt(((300 - mean) ** 2 + (-200 - mean) ** 2 + mean**2) / 2)
    assert sd == pytest.approx(251.661, abs=1e-3)
    assert m["sharpe_daily_annualised"] == round(mean / sd * math.sqrt(252), 4) == 2.1026
    assert m["sortino_daily_annualised"] == round(mean / math.sqrt(200**2 / 3) * math.sqrt(252), 4)
    assert m["sortino_daily_annualised"] == 4.5826
    assert m["time_in_market"] == 0.25  # 900 s of each 3600 s
    assert m["slippage_vs_touch"] == 6.0
    assert out["by_day"] == [
        {"day": d1, "net": 300.0},
        {"day": d2, "net": -200.0},
        {"day": d3, "net": 0.0},
    ]
    kinds = {g["entry_kind"]: (g["trades"], g["net"]) for g in out["by_kind"]}
    assert kinds == {
        "AGGRESSIVE BUY_CALL": (1, 500.0),
        "NORMAL BUY_CALL": (2, -200.0),
        "NORMAL BUY_PUT": (1, -200.0),
    }
    hours = {g["hour"]: g["net"] for g in out["by_hour"]}
    assert hours == {"10:00": 200.0, "11:00": -100.0}


def test_sweep_keys_are_checked_by_name() -> None:
    assert override(Config(), "detectors.profile", "calm").detectors.profile == "calm"
    assert override(Config(), "strategy.trailing_stop_pct", "5").strategy == StrategyConfig(
        trailing_stop_pct=5.0
    )
    with pytest.raises(ConfigError, match=r"unknown key `strategy\.nope`"):
        override(Config(), "strategy.nope", "1")
    with pytest.raises(ConfigError, match=r"detectors\.profile"):
        override(Config(), "detectors.profile", "wild")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_sweep(["detectors.profile"])


@pytest.mark.slow
def test_sweep_across_processes_is_deterministic(tapes: list[str], tmp_path: Path) -> None:
    grid = parse_sweep(["detectors.profile=default,calm", "strategy.trailing_stop_pct=0,5"])
    table = sweep(Config(), grid, tapes[:1], str(tmp_path / "a"), workers=2)
    labels = [r["label"] for r in table["runs"]]
    assert labels == [
        "detectors.profile=default strategy.trailing_stop_pct=0",
        "detectors.profile=default strategy.trailing_stop_pct=5",
        "detectors.profile=calm strategy.trailing_stop_pct=0",
        "detectors.profile=calm strategy.trailing_stop_pct=5",
    ]
    for row in table["runs"]:
        own = msgspec.json.decode((tmp_path / "a" / row["run"] / "metrics.json").read_bytes())
        assert (row["net_pnl"], row["trades"]) == (own["net_pnl"], own["trades"])
    sweep(Config(), grid, tapes[:1], str(tmp_path / "b"), workers=1)
    for name in ("sweep.json", "sweep.txt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_report_command_re_renders_and_prints_the_path(
    result: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = result
    before = (out / "report.html").read_bytes()
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str((out / "report.html").resolve())
    assert (out / "report.html").read_bytes() == before
    assert main(["report", str(out / "missing")]) == 1


def test_report_opens_in_headless_chromium_without_console_errors(
    result: tuple[Path, dict[str, Any]],
) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    out, data = result
    errors: list[str] = []
    requests: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto((out / "report.html").resolve().as_uri())
            assert page.locator("svg").count() == 6  # equity, drawdown, 4 × P&L breakdowns
            rows = page.locator("table.sortable").last.locator("tbody tr")
            assert rows.count() == data["metrics"]["trades"]
            first_net = rows.first.locator("td").nth(9).get_attribute("data-v")
            page.locator("table.sortable").last.locator("th").nth(9).click()  # sort by net
            nets = [
                float(rows.nth(i).locator("td").nth(9).get_attribute("data-v") or "nan")
                for i in range(rows.count())
            ]
            assert nets == sorted(nets)
            assert first_net is not None
        finally:
            browser.close()
    assert errors == []
    assert [u for u in requests if not u.startswith("file://")] == []  # no network at all


def test_a_day_without_trades_still_reports() -> None:
    from smartflow.app.report import render

    start = ns_at_ist(DAYS[0], dt.time(10, 0))
    out = metrics([TapeRun("quiet.sft", start, start + 60 * 10**9, {}, [], [])], 500_000.0)
    m = out["metrics"]
    assert (m["trades"], m["net_pnl"], m["win_rate"], m["profit_factor"]) == (0, 0.0, None, None)
    assert m["time_in_market"] == 0.0
    page = render(
        {"tapes": [], "config": {"profile": "calm"}, **out}  # the shape backtest.json has
    )
    assert page.count("no trades") == 3  # by signal, hour and exit; the day shows its 0
    assert "<script>" in page
    assert "http" not in page.replace("http-equiv", "")


def test_the_daily_profit_target_ends_each_days_trading(tapes: list[str], tmp_path: Path) -> None:
    cfg = override(Config(), "strategy.daily_profit_target_rupees", "1000")
    data = backtest(cfg, tapes, str(tmp_path))
    by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in data["trades"]:
        by_day[t["day"]].append(t)
    assert sorted(by_day) == [d.isoformat() for d in DAYS]
    for trades in by_day.values():
        # The first trade reaches the target marked to market (net of its charges so far),
        # is sold for it, and nothing is bought again that day.
        (only,) = trades
        assert only["exit_kind"] == "daily profit target"
        assert float(only["exit_reason"].split()[3]) >= 1000


def test_the_backtest_command(
    tapes: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    assert main(["backtest", tapes[0], "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert msgspec.json.decode(printed.out) == msgspec.json.decode(
        (out / "metrics.json").read_bytes()
    )
    assert printed.err.strip() == str(out / "report.html")
    assert main(["backtest", str(tmp_path / "none.sft"), "--out", str(out)]) == 1
    assert "none.sft" in capsys.readouterr().err
    lone = tmp_path / "lone.sft"
    lone.write_bytes(Path(tapes[0]).read_bytes())  # a tape without its scrip master beside it
    assert main(["backtest", str(lone), "--out", str(out)]) == 1
    assert f"the scrip master of {lone}" in capsys.readouterr().err
    assert main(["backtest", tapes[0], "--sweep", "strategy.nope=1", "--out", str(out)]) == 2
    assert "unknown key `strategy.nope`" in capsys.readouterr().err
