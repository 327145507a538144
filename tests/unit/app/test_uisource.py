"""The dashboard's snapshot section: its ladder, and latency percentiles from histograms."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram
from support.session import run_session

from smartflow.app.replay import chain_rows
from smartflow.app.uisource import UiSection, quantiles
from smartflow.config import Config, DetectorConfig, MarketConfig, ScenarioConfig, SimConfig
from smartflow.journal.store import OrderRow


def _hist(buckets: tuple[float, ...]) -> Histogram:
    return Histogram("t_seconds", "test", buckets=buckets, registry=CollectorRegistry())


def test_nothing_observed_has_no_percentiles() -> None:
    assert quantiles(_hist((0.001, 0.01))) == {"count": 0, "p50": None, "p90": None, "p99": None}


def test_percentiles_interpolate_within_their_bucket() -> None:
    h = _hist((0.001, 0.002, 0.004))
    for _ in range(50):
        h.observe(0.0005)  # bucket (0, 1 ms]
    for _ in range(50):
        h.observe(0.003)  # bucket (2, 4 ms]
    q = quantiles(h)
    assert q["count"] == 100
    # Rank 50 is the last of the first bucket: its upper bound.
    assert q["p50"] == 0.001
    # Rank 90 is 40 of the 50 in (2, 4 ms]: 80 % of the way up.
    assert abs(q["p90"] - 0.0036) < 1e-12
    assert abs(q["p99"] - 0.00396) < 1e-12


def test_beyond_the_last_bucket_only_its_bound_is_known() -> None:
    h = _hist((0.001,))
    h.observe(5.0)
    assert quantiles(h)["p99"] == 0.001


def test_the_ladder_matches_the_chain_view_cell_for_cell() -> None:
    """The numpy-gathered ladder says what the API's chain view (``chain_rows``) says."""
    cfg = Config(market=MarketConfig(strikes_each_side=10), detectors=DetectorConfig(bar_seconds=2))
    sim = SimConfig(
        ticks_per_second=100.0,
        strikes_each_side=10,
        scenarios=[
            ScenarioConfig(kind="long_build_up", start_s=5, duration_s=60, side="CE", strength=4)
        ],
    )
    s = run_session(sim, 70, cfg)
    c = s.book.chains[0]
    det = s.detectors[c.root]
    ladder = UiSection(s.book, s.detectors, None, lambda: 7).build()
    assert ladder["ts_ns"] == 7
    chain = ladder["chains"][c.root]

    def states(ch: object, row: int, out: dict[str, object]) -> None:
        out.update(det.contract_states(row))

    view = {(r["strike"], r["option_type"]): r for r in chain_rows(c, [states])}
    seen = builds = 0
    for strike, ce, pe in chain["strikes"]:
        for kind, cell in (("CE", ce), ("PE", pe)):
            r = view.get((strike, kind))
            if cell is None:
                assert r is None
                continue
            seen += 1
            ltp, oi, iv, delta, build, traps = cell
            assert (ltp, oi, build, traps) == (r["ltp"], r["oi"], r["oi_buildup"], r["trap_types"])
            assert iv == (round(r["iv"], 4) if r["iv"] is not None else None)
            assert delta == (round(r["delta"], 3) if r["delta"] is not None else None)
            builds += build != "NONE"
    assert seen == len(view) > 30
    assert builds > 0  # the scenario's build-up shows
    assert chain["atm"] in {k for k, _, _ in chain["strikes"]}
    assert chain["battle"]["market_control"] == det.latest.market_control


def test_todays_journalled_orders_show_and_the_router_keeps_them_current() -> None:
    s = run_session(SimConfig(ticks_per_second=20.0, strikes_each_side=2), 2)

    def order(oid: str, state: str, filled: int) -> OrderRow:
        return OrderRow(
            order_id=oid, day="2026-12-04", created_ns=1, broker="paper", underlying="NIFTY",
            token="1", symbol="NIFTY06DEC2624000CE", exchange="NFO", side="BUY", quantity=75,
            lot_size=75, limit_price=100.0, purpose="ENTRY", reason="test", state=state,
            filled_quantity=filled, updated_ns=2,
        )  # fmt: skip

    ui = UiSection(s.book, s.detectors, None, lambda: 0, orders=[order("a", "FILLED", 75)])
    assert [(o["order_id"], o["state"]) for o in ui.build()["orders"]] == [("a", "FILLED")]
    ui.on_order("state", order("b", "OPEN", 0), None)
    ui.on_order("state", order("a", "FILLED", 75), None)
    assert [o["order_id"] for o in ui.build()["orders"]] == ["b", "a"]
