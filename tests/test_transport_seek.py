"""The worker's transport never hands an agent a record fetched before a seek of its partition
(streams.worker.transport.SeekGuard). In the fault campaign such a record, handed out after Faust
sought the partition back to its committed offset, made Faust count the offsets in between as
read and a melt request was committed unanswered. Records of partitions not sought go on: a seek
of a changelog during standby recovery must not drop melt requests (their positions are past
the batch; dropped, they would never be fetched again)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from streams.worker.transport import SeekGuard, _Consumer

Batch = list[tuple[str, int]]


async def _fetched(records: Batch) -> AsyncIterator[tuple[str, int]]:
    for record in records:
        await asyncio.sleep(0)
        yield record


async def test_a_batch_is_handed_out_whole_when_nothing_seeks() -> None:
    guard = SeekGuard()
    batch = [("a", 5), ("a", 6), ("b", 1)]
    assert [r async for r in guard.hand_out(_fetched(batch))] == batch
    assert not guard.delivering


async def test_a_seek_of_every_partition_drops_the_rest_of_the_batch() -> None:
    guard = SeekGuard()
    got = []
    async for tp, offset in guard.hand_out(_fetched([("a", 5), ("a", 6), ("b", 1), ("a", 7)])):
        got.append((tp, offset))
        if offset == 5:
            await guard.moving(wait_s=0.01)  # perform_seek while 5 is in hand
    assert got == [("a", 5)]
    assert guard.dropped == 3
    after = [("a", 5), ("a", 6)]  # fetched again after the seek: handed out
    assert [r async for r in guard.hand_out(_fetched(after))] == after


async def test_a_seek_of_one_partition_drops_only_its_records() -> None:
    guard = SeekGuard()
    got = []
    batch = [("melts", 10), ("changelog", 3), ("melts", 11), ("changelog", 4), ("melts", 12)]
    async for tp, offset in guard.hand_out(_fetched(batch)):
        got.append((tp, offset))
        if (tp, offset) == ("melts", 10):
            await guard.moving("changelog", wait_s=0.01)
    assert got == [("melts", 10), ("melts", 11), ("melts", 12)]


async def test_a_seek_waits_for_the_record_in_hand() -> None:
    """Faust records a handed-out offset as read after the hand-out: a seek that did not wait
    would have its read offset overwritten by the stale record's."""
    guard = SeekGuard()
    records = guard.hand_out(_fetched([("a", 1), ("a", 2)]))
    assert await anext(records) == ("a", 1)
    assert guard.delivering
    seek = asyncio.ensure_future(guard.moving(wait_s=5))
    await asyncio.sleep(0.05)
    assert not seek.done(), "the seek went ahead while a record was in hand"
    assert await anext(records, None) is None  # the rest of the batch is stale
    await asyncio.wait_for(seek, 1)


async def test_a_stuck_hand_out_does_not_hold_a_seek_for_ever() -> None:
    guard = SeekGuard()
    records = guard.hand_out(_fetched([("a", 1)]))
    assert await anext(records) == ("a", 1)
    await asyncio.wait_for(guard.moving(wait_s=0.05), 1)


def test_the_worker_consumer_guards_both_kinds_of_seek() -> None:
    # Every rebalance's perform_seek goes through seek_to_committed, not seek.
    for name in ("getmany", "seek", "seek_to_committed"):
        assert name in _Consumer.__dict__, name
