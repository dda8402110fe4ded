"""The worker's transport never hands an agent a record fetched before a seek (streams.worker.
transport.SeekGuard). In the fault campaign such a record, handed out after Faust sought the
partition back to its committed offset, made Faust count the offsets in between as read and a
melt request was committed unanswered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from streams.worker.transport import SeekGuard, _Consumer


async def _batch(records: list[int]) -> AsyncIterator[int]:
    for record in records:
        await asyncio.sleep(0)
        yield record


async def test_a_batch_is_handed_out_whole_when_nothing_seeks() -> None:
    guard = SeekGuard()
    assert [r async for r in guard.hand_out(_batch([5, 6, 7]))] == [5, 6, 7]
    assert not guard.delivering


async def test_a_seek_stops_the_batch_fetched_before_it() -> None:
    guard = SeekGuard()
    got = []
    async for record in guard.hand_out(_batch([5, 6, 7, 8])):
        got.append(record)
        if record == 6:
            await guard.moving(wait_s=0.01)  # a seek while 6 is in hand
    assert got == [5, 6]
    assert guard.cut == 1
    assert [r async for r in guard.hand_out(_batch([3, 4]))] == [3, 4]  # fetched after it


async def test_a_seek_waits_for_the_record_in_hand() -> None:
    """Faust records a handed-out offset as read after the hand-out: a seek that did not wait
    would have its read offset overwritten by the stale record's."""
    guard = SeekGuard()
    events: list[str] = []
    records = guard.hand_out(_batch([1, 2]))
    assert await anext(records) == 1
    assert guard.delivering
    seek = asyncio.ensure_future(guard.moving(wait_s=5))
    await asyncio.sleep(0.05)
    assert not seek.done(), "the seek went ahead while a record was in hand"
    events.append("read offset of 1 recorded")
    assert await anext(records, None) is None  # the batch stops at the next record
    await asyncio.wait_for(seek, 1)
    events.append("seek done")
    assert events == ["read offset of 1 recorded", "seek done"]


async def test_a_stuck_hand_out_does_not_hold_a_seek_for_ever() -> None:
    guard = SeekGuard()
    records = guard.hand_out(_batch([1]))
    assert await anext(records) == 1
    await asyncio.wait_for(guard.moving(wait_s=0.05), 1)


def test_the_worker_consumer_guards_both_kinds_of_seek() -> None:
    # Every rebalance's perform_seek goes through seek_to_committed, not seek.
    for name in ("getmany", "seek", "seek_to_committed"):
        assert name in _Consumer.__dict__, name
