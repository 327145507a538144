"""A bar's signal in two steps: the decision before the strategy, its explanation after.

``Pipeline.close_bar`` runs ``decide``, hands the decision to the strategy, then ``explain``.
Whatever the strategy saw must be exactly the explained signal without its reason and evidence,
and each material signal must be published once, explained.
"""

from __future__ import annotations

import msgspec
import pytest
import structlog

from smartflow.app.pipeline import Pipeline
from smartflow.chain.state import ChainState
from smartflow.config import Config, DetectorConfig, ScenarioConfig, SimConfig
from smartflow.core.clock import ReplayClock
from smartflow.core.messages import SmartMoneySignal
from smartflow.instruments.master import parse
from smartflow.instruments.universe import select
from smartflow.journal.store import Journal
from smartflow.sim.market import Market
from smartflow.sim.server import session_start


def _session() -> tuple[Pipeline, Market, int]:
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
    return Pipeline(cfg, [chain], ReplayClock(start_ns)), market, start_ns


def test_strategy_sees_the_decision_and_publication_the_explained_signal() -> None:
    pipeline, market, start_ns = _session()
    (det,) = pipeline.detectors.values()
    journal = Journal(":memory:")
    trading = pipeline.trade(journal, structlog.get_logger())
    events: list[tuple[str, int]] = []
    seen_by_strategy: list[SmartMoneySignal] = []
    explained: list[SmartMoneySignal] = []
    emitted: list[SmartMoneySignal] = []
    act = trading.strategy.on_signal

    def strategy(signal: SmartMoneySignal) -> None:
        seen_by_strategy.append(signal)
        events.append(("strategy", signal.ts))
        act(signal)

    def close(end: int, seq: int, closed_at: int) -> None:
        pipeline.close_bar(end, seq, closed_at)
        assert det.latest is not None
        explained.append(det.latest)
        events.append(("explained", end))

    trading.strategy.on_signal = strategy  # type: ignore[method-assign]
    pipeline.book.on_close = close
    t = start_ns
    for _ in range(120):
        t += 1_000_000_000
        frames = [(int.from_bytes(f[35:43], "little") * 1_000_000, f) for _, f in market.advance(t)]
        pipeline.process(frames)
        emitted += pipeline.take_signals()
    journal.close()

    n = len(explained)
    assert n >= 50
    # Every bar: the strategy acts on the decision, then the signal is explained; bars in order.
    assert events == [(kind, s.ts) for s in explained for kind in ("strategy", "explained")]
    for before, after in zip(seen_by_strategy, explained, strict=True):
        assert before.evidence == []
        assert before.reason is None
        assert after.evidence  # the battlefield and the net vote at least
        assert msgspec.structs.replace(after, reason=None, evidence=[]) == before
    # Material signals are published once each, explained, in bar order.
    assert 0 < len(emitted) == det.emitted < n
    assert [s.ts for s in emitted] == sorted({s.ts for s in emitted})
    assert all(any(s is e for e in explained) for s in emitted)
    assert det.last_emitted is emitted[-1]


def test_fresh_strength_is_the_fresh_evidence_on_the_contract_to_trade() -> None:
    """What the strategy sizes targets with, without reading the evidence."""
    pipeline, market, start_ns = _session()
    (det,) = pipeline.detectors.values()
    signals: list[SmartMoneySignal] = []
    pipeline.book.on_close = lambda end, seq, _at: signals.append(det.on_bar(end, seq))
    t = start_ns
    for _ in range(120):
        t += 1_000_000_000
        frames = [(int.from_bytes(f[35:43], "little") * 1_000_000, f) for _, f in market.advance(t)]
        pipeline.process(frames)
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
    pipeline, _market, start_ns = _session()
    (det,) = pipeline.detectors.values()
    with pytest.raises(RuntimeError, match="before its decide"):
        det.explain(start_ns, 0)
