"""The feed → engine mailbox's stated policy: latest value per key, overwrites counted, a full
mailbox refuses new keys (counted), values drain in the order of their latest update, and the
consumer is woken by a stored value only."""

from __future__ import annotations

import asyncio

from smartflow.core.mailbox import Conflator


async def _parked(box: Conflator[str, int]) -> asyncio.Task[None]:
    """A consumer waiting on ``box``, given every chance to run."""
    task = asyncio.create_task(box.wait())
    for _ in range(5):
        await asyncio.sleep(0)
    return task


def test_latest_value_per_key_in_the_order_of_the_latest_update() -> None:
    box: Conflator[str, int] = Conflator(max_keys=8)
    for key, value in [("a", 1), ("b", 2), ("c", 3), ("a", 4), ("b", 5), ("a", 6)]:
        box.put(key, value)
    assert len(box) == 3
    # a's and b's older values were overwritten (three times in all); the keys moved to the back.
    assert box.take() == [3, 5, 6]
    assert (box.conflated, box.overflowed, box.high_water) == (3, 0, 3)
    assert len(box) == 0
    assert box.take() == []
    box.put("a", 7)  # after a take, a key is new again: nothing was overwritten
    assert (box.take(), box.conflated) == ([7], 3)


def test_a_full_mailbox_refuses_new_keys_and_counts_them_but_keeps_updating_known_ones() -> None:
    box: Conflator[str, int] = Conflator(max_keys=2)
    box.put("a", 1)
    box.put("b", 2)
    box.put("c", 3)  # refused: a third key
    box.put("d", 4)  # refused
    box.put("a", 5)  # a known key still updates while full
    assert (box.overflowed, box.conflated, box.high_water) == (2, 1, 2)
    assert box.take() == [2, 5]
    box.put("c", 6)  # room again after the take
    assert (box.take(), box.overflowed, box.high_water) == ([6], 2, 2)


async def test_a_stored_value_wakes_the_consumer_and_waiting_takes_nothing() -> None:
    box: Conflator[str, int] = Conflator(max_keys=4)
    waiter = await _parked(box)
    assert not waiter.done()
    box.put("a", 1)
    await asyncio.wait_for(waiter, 10)
    assert len(box) == 1  # wait() leaves the value for take()
    # With a value pending, wait() returns at once, however often it is called.
    await asyncio.wait_for(box.wait(), 10)
    assert box.take() == [1]
    # Once taken, the consumer parks again until the next value.
    waiter = await _parked(box)
    assert not waiter.done()
    box.put("b", 2)
    await asyncio.wait_for(waiter, 10)
    assert box.take() == [2]


async def test_a_refused_value_wakes_no_one() -> None:
    box: Conflator[str, int] = Conflator(max_keys=0)
    waiter = await _parked(box)
    box.put("a", 1)
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiter.done()
    assert (box.overflowed, len(box)) == (1, 0)
    waiter.cancel()
