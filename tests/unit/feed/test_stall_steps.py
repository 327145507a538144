"""When each data-stall escalation step is due."""

from __future__ import annotations

import itertools

from smartflow.feed.session import STALL_REPEAT_MAX_S, STALL_STEPS, stall_step_due


def test_named_steps_come_one_stall_timeout_apart() -> None:
    assert [stall_step_due(k, 20.0) for k in range(len(STALL_STEPS))] == [20.0, 40.0, 60.0]


def test_later_reconnects_wait_twice_as_long_each_time_up_to_the_cap() -> None:
    due = [stall_step_due(k, 20.0) for k in range(40)]
    gaps = [b - a for a, b in itertools.pairwise(due[2:])]
    assert gaps[:4] == [40.0, 80.0, 160.0, STALL_REPEAT_MAX_S]
    assert all(g == STALL_REPEAT_MAX_S for g in gaps[4:])
    # A silent day (six hours) takes a few dozen steps, not one every 20 s.
    assert sum(1 for d in due if d <= 6 * 3600) < 80
