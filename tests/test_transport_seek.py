"""The worker's transport never hands an agent a record fetched before a seek of its
partition, and never drops one fetched after it (streams.worker.transport.SeekGuard). In the
fault campaign a stale record, handed out after Faust sought the partition back to its committed
offset, made Faust count the offsets in between as read and a melt request was committed
unanswered; dropping fresh records lost others (the scaling benchmark's restarts, with a first
version that dropped whole batches; the campaign, with stamps put on after the seek call)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from streams.worker.transport import SeekGuard, _Consumer, _ConsumerThread


async def _fetched(
    guard: SeekGuard, records: list[tuple[str, int]], wait: asyncio.Event | None = None
) -> AsyncIterator[tuple[str, int]]:
    """Like the consumer: wait for the fetch (`wait`), the batch is drained, then its records."""
    if wait is not None:
        await wait.wait()
    guard.drained()
    for record in records:
        await asyncio.sleep(0)
        yield record


async def test_a_batch_is_handed_out_whole_when_nothing_seeks() -> None:
    guard = SeekGuard()
    batch = [("a", 5), ("a", 6), ("b", 1)]
    assert [r async for r in guard.hand_out(_fetched(guard, batch))] == batch
    assert not guard.delivering


async def test_records_of_a_sought_partition_fetched_before_the_seek_are_dropped() -> None:
    guard = SeekGuard()
    got = []
    batch = [("melts", 10), ("changelog", 3), ("melts", 11), ("other", 4), ("melts", 12)]
    async for tp, offset in guard.hand_out(_fetched(guard, batch)):
        got.append((tp, offset))
        if (tp, offset) == ("melts", 10):
            guard.sought(["melts"])  # a rebalance sought it back to its committed offset
    assert got == [("melts", 10), ("changelog", 3), ("other", 4)]
    assert guard.dropped == 2
    again = [("melts", 10), ("melts", 11), ("melts", 12)]  # fetched again after the seek
    assert [r async for r in guard.hand_out(_fetched(guard, again))] == again


async def test_a_seek_while_the_fetch_waits_keeps_the_records_it_returns() -> None:
    """The campaign lost melt requests this way: a rebalance sought the partition, and a batch
    drained after that (from the new position) was taken for stale because the stamp was put
    on after the whole seek call returned. They never came again. Only the consumer thread's
    order counts: seek, then drain, keeps the batch."""
    guard = SeekGuard()
    broker = asyncio.Event()
    batch = [("melts", 10), ("melts", 11)]
    records = guard.hand_out(_fetched(guard, batch, wait=broker))
    first = asyncio.ensure_future(anext(records))
    await asyncio.sleep(0.01)  # the fetch is waiting
    guard.sought(["melts"])  # the rebalance's seek to committed, in the consumer thread
    broker.set()  # the batch is drained after it, from the new position
    assert [await first, *[r async for r in records]] == batch
    assert guard.dropped == 0


async def test_partitions_not_sought_are_never_dropped() -> None:
    guard = SeekGuard()
    guard.sought([])
    batch = [("a", 1), ("a", 2)]
    assert [r async for r in guard.hand_out(_fetched(guard, batch))] == batch


async def test_settle_waits_for_the_record_in_hand() -> None:
    """Faust records a handed-out offset as read after the hand-out: a seek that did not wait
    would have its read offset overwritten by the stale record's."""
    guard = SeekGuard()
    records = guard.hand_out(_fetched(guard, [("a", 1), ("a", 2)]))
    assert await anext(records) == ("a", 1)
    assert guard.delivering
    settled = asyncio.ensure_future(guard.settle(wait_s=5))
    await asyncio.sleep(0.05)
    assert not settled.done(), "settled while a record was in hand"
    guard.sought(["a"])
    assert await anext(records, None) is None  # the rest of the batch is stale
    await asyncio.wait_for(settled, 1)


async def test_a_stuck_hand_out_does_not_hold_a_seek_for_ever() -> None:
    guard = SeekGuard()
    records = guard.hand_out(_fetched(guard, [("a", 1)]))
    assert await anext(records) == ("a", 1)
    await asyncio.wait_for(guard.settle(wait_s=0.05), 1)


def test_the_worker_consumer_guards_every_kind_of_seek() -> None:
    # Every rebalance's perform_seek goes through seek_to_committed, table recovery through
    # _seek_wait, Consumer.seek through _seek: each is stamped in the consumer thread, where
    # batches are drained.
    for name in ("getmany", "_seek", "seek_to_committed"):
        assert name in _Consumer.__dict__, name
    for name in ("_fetch_records", "seek_to_committed", "_seek_to_committed", "_seek_wait"):
        assert name in _ConsumerThread.__dict__, name
