"""A bar's signal in two steps: the decision before the strategy, its explanation after.

``SmartMoneyDetector.attach`` runs ``decide`` with the bar's other hooks and ``explain`` as a
``ChainBook.after_bar`` hook. Whatever the strategy saw must be exactly the explained signal
without its reason and evidence, and the emission hooks must see each material signal once in
each form, decision first.
"""

from __future__ import annotations

import msgspec
import pytest

from smartflow.analytics.detectors import SmartMoneyDetector
from smartflow.chain.state import ChainBook, ChainState
from smartflow.config import Config, DetectorConfig, ScenarioConfig, SimConfig
from smartflow.core.messages import SmartMoneySignal
from smartflow.instruments.master import parse
from smartflow.instruments.universe import select
from smartflow.sim.market import Market
from smartflow.sim.server import session_start


def _session() -> tuple[ChainBook, SmartMoneyDetector, Market, int]:
    sim = SimConfig(
        seed=7,
        strikes_each_side=8,
        ticks_per_second=150,
        scenarios=[
            ScenarioConfig(kind="long_build_up", start_s=20, duration_s=40),
            ScenarioConfig(kind="fresh_position", start_s=50, side="CE", strike_offset=0),
        ],
    )
    cfg = Config(sim=sim, detectors=DetectorConfig(bar_seconds=2))
    start_ns, day = session_start("10:00")
    market = Market(sim, ["NIFTY"], start_ns, day)
    master = parse(msgspec.json.encode(market.scrip_master()), {"NIFTY"})
    chain = ChainState(select(master, "NIFTY", start_ns), cfg.model)
    book = ChainBook([chain], cfg.detectors)
    det = SmartMoneyDetector(chain, cfg.detectors.thresholds(), cfg.detectors.bar_seconds)
    return book, det, market, start_ns


def test_strategy_sees_the_decision_and_publication_the_explained_signal() -> None:
    book, det, market, start_ns = _session()
    events: list[tuple[str, int]] = []
    seen_by_strategy: list[SmartMoneySignal] = []
    explained: list[SmartMoneySignal] = []

    def strategy(_end: int, seq: int) -> None:
        # Registered after the detector, like Trading: reads the bar's signal as it does.
        assert det.latest is not None
        seen_by_strategy.append(det.latest)
        events.append(("bar", seq))

    def publisher(_end: int, seq: int) -> None:
        assert det.latest is not None
        explained.append(det.latest)
        events.append(("after", seq))

    det.attach(book)
    book.on_bar.append(strategy)
    book.after_bar.append(publisher)
    decided: list[SmartMoneySignal] = []
    emitted: list[SmartMoneySignal] = []
    det.on_decision.append(decided.append)
    det.on_signal.append(emitted.append)

    t = start_ns
    for _ in range(120):
        t += 1_000_000_000
        frames = [(int.from_bytes(f[35:43], "little") * 1_000_000, f) for _, f in market.advance(t)]
        book.process(frames)

    n = len(explained)
    assert n >= 50
    # Every bar: all on_bar hooks, then all after_bar hooks, bars in order.
    assert events == [(kind, seq) for seq in range(n) for kind in ("bar", "after")]
    for before, after in zip(seen_by_strategy, explained, strict=True):
        assert before.evidence == []
        assert before.reason is None
        assert after.evidence  # the battlefield and the net vote at least
        assert msgspec.structs.replace(after, reason=None, evidence=[]) == before
    # Material signals reach both hook lists once, in the same order, the decision first.
    assert 0 < len(decided) == len(emitted) == det.emitted < n
    assert [msgspec.structs.replace(s, reason=None, evidence=[]) for s in emitted] == decided
    assert det.last_emitted is emitted[-1]


def test_fresh_strength_is_the_fresh_evidence_on_the_contract_to_trade() -> None:
    """What the strategy sizes targets with, without reading the evidence."""
    book, det, market, start_ns = _session()
    signals: list[SmartMoneySignal] = []
    book.on_bar.append(lambda end, seq: signals.append(det.on_bar(end, seq)))
    t = start_ns
    for _ in range(120):
        t += 1_000_000_000
        frames = [(int.from_bytes(f[35:43], "little") * 1_000_000, f) for _, f in market.advance(t)]
        book.process(frames)
    strengths = []
    for s in signals:
        shown = [
            e.inputs["strength"]
            for e in s.evidence
            if e.rule == "FRESH_POSITION" and e.token == s.token and e.token is not None
        ]
        assert s.fresh_strength == (float(shown[-1] or 0.0) if shown else 0.0)
        strengths.append(s.fresh_strength)
    assert any(x > 0 for x in strengths)


def test_explain_needs_the_bars_decision() -> None:
    _book, det, _market, start_ns = _session()
    with pytest.raises(RuntimeError, match="before its decide"):
        det.explain(start_ns, 0)
