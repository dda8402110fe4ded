"""Finding 21 (low): in-flight melt work was bounded in events, not in bytes.

At 7262b21 the preflight let 5,000 requests be handled at once whatever their size: 5,000 requests
of 1,000 proofs each held ~3.6 GiB before any backpressure. `Room` now admits by bytes too, and an
event larger than the whole budget is admitted alone (never stuck).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from streams.worker.pipelining import MicroBatches, OrderedAcks, Room


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_finding_21_room_admits_large_events_one_at_a_time_by_bytes() -> None:
    room = Room(max_events=5000, max_bytes=1000)
    await room.take(600)
    waiting = [asyncio.create_task(room.take(600)) for _ in range(5)]
    await _settle()
    assert not any(task.done() for task in waiting)  # the event budget alone would admit all

    small = [asyncio.create_task(room.take(100)) for _ in range(4)]
    await _settle()
    assert all(task.done() for task in small)  # 600 + 4 x 100 fits

    for _ in small:
        await room.give_back(100)
    await room.give_back(600)
    await _settle()
    assert sum(task.done() for task in waiting) == 1  # 600 + 600 does not fit: one more
    for _ in range(4):
        await room.give_back(600)
        await _settle()
    assert all(task.done() for task in waiting)


async def test_finding_21_an_event_larger_than_the_budget_is_admitted_alone() -> None:
    room = Room(max_events=5000, max_bytes=1000)
    await asyncio.wait_for(room.take(5000), timeout=1)  # alone: admitted at once
    other = asyncio.create_task(room.take(10))
    await _settle()
    assert not other.done()  # nothing joins it
    await room.give_back(5000)
    await asyncio.wait_for(other, timeout=1)
    huge = asyncio.create_task(room.take(5000))
    await _settle()
    assert not huge.done()  # and it waits for the room to empty
    await room.give_back(10)
    await asyncio.wait_for(huge, timeout=1)


@dataclass(frozen=True)
class _Message:
    tp: int
    offset: int
    value: bytes


@dataclass(frozen=True)
class _Event:
    message: _Message


async def test_finding_21_micro_batches_hold_the_stream_back_by_bytes() -> None:
    release = asyncio.Event()
    handled: list[int] = []

    async def handler(batch: list[_Event]) -> None:
        await release.wait()
        handled.extend(event.message.offset for event in batch)

    async def ack(event: _Event) -> None:
        return None

    async def on_error(exc: BaseException) -> None:
        raise AssertionError(exc)

    batches = MicroBatches(
        handler=handler,
        on_error=on_error,
        acks=OrderedAcks(ack),
        max_size=1,
        within_s=0.0,
        max_in_flight=5000,
        max_in_flight_bytes=1_000_000,
    )
    big = b"x" * 700_000  # ~a 1,000-proof request with secrets
    await batches.add(_Event(_Message(0, 0, big)))
    second = asyncio.create_task(batches.add(_Event(_Message(0, 1, big))))
    await _settle()
    assert not second.done()  # backpressure: the stream is held, not another task started
    release.set()
    await asyncio.wait_for(second, timeout=2)
    await batches.drain()
    assert handled == [0, 1]
