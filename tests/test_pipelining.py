"""Concurrent batches, acknowledged strictly in offset order per partition."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.worker.pipelining import MicroBatches, OrderedAcks


@dataclass(frozen=True)
class _Message:
    tp: int
    offset: int


@dataclass(frozen=True)
class _Event:
    message: _Message


def _events(partitions: int, per_partition: int) -> list[_Event]:
    return [_Event(_Message(p, o)) for o in range(per_partition) for p in range(partitions)]


@settings(max_examples=200)
@given(st.integers(1, 4), st.integers(1, 30), st.randoms())
def test_acks_follow_offset_order_whatever_the_finishing_order(
    partitions: int, per_partition: int, rng: random.Random
) -> None:
    acked: list[_Event] = []

    async def ack(event: _Event) -> None:
        acked.append(event)

    async def scenario() -> None:
        acks = OrderedAcks(ack)
        events = _events(partitions, per_partition)
        for event in events:
            acks.track(event)
        finishing = events[:]
        rng.shuffle(finishing)
        done: set[_Event] = set()
        for event in finishing:
            await acks.done(event)
            done.add(event)
            # Never an ack past an event still in flight in the same partition.
            for got in acked:
                earlier = [e for e in events if e.message.tp == got.message.tp]
                assert all(e in done for e in earlier if e.message.offset < got.message.offset)
        assert len(acks) == 0

    asyncio.run(scenario())
    for p in range(partitions):
        assert [e.message.offset for e in acked if e.message.tp == p] == list(range(per_partition))


async def test_batches_run_concurrently_and_a_failure_acks_nothing_after_it() -> None:
    acked: list[int] = []
    errors: list[BaseException] = []
    release_first = asyncio.Event()

    async def ack(event: _Event) -> None:
        acked.append(event.message.offset)

    async def handler(batch: list[_Event]) -> None:
        if batch[0].message.offset == 0:
            await release_first.wait()  # the first batch is slow
        if 4 in [e.message.offset for e in batch]:
            raise RuntimeError("kafka down")

    async def on_error(exc: BaseException) -> None:
        errors.append(exc)

    batches = MicroBatches(
        handler=handler,
        on_error=on_error,
        acks=OrderedAcks(ack),
        max_size=2,
        within_s=0.001,
        max_in_flight=100,
    )
    for event in _events(1, 6):
        await batches.add(event)
    await asyncio.sleep(0.05)
    # [0] went at once (nothing was in flight); [1, 2] is answered but waits behind the slow [0]
    assert acked == []
    release_first.set()
    await batches.drain()
    assert acked == [0, 1, 2]  # [3, 4] failed: nothing from 3 on is acknowledged
    assert [str(e) for e in errors] == ["kafka down"]


async def test_an_event_with_nothing_in_flight_runs_at_once() -> None:
    ran = asyncio.Event()

    async def handler(batch: list[_Event]) -> None:
        ran.set()

    async def noop(_: object) -> None:
        return None

    batches = MicroBatches(
        handler=handler,
        on_error=noop,
        acks=OrderedAcks(noop),
        max_size=100,
        within_s=60,  # a window nobody waits for when nothing is in flight
        max_in_flight=10,
    )
    await batches.add(_events(1, 1)[0])
    await asyncio.wait_for(ran.wait(), 5)
    await batches.drain()


async def test_in_flight_limit_holds_the_stream_back() -> None:
    gate = asyncio.Event()

    async def handler(batch: list[_Event]) -> None:
        await gate.wait()

    async def noop(_: object) -> None:
        return None

    batches = MicroBatches(
        handler=handler,
        on_error=noop,
        acks=OrderedAcks(noop),
        max_size=1,
        within_s=1,
        max_in_flight=3,
    )
    events = _events(1, 4)
    for event in events[:3]:
        await batches.add(event)
    fourth = asyncio.ensure_future(batches.add(events[3]))
    await asyncio.sleep(0.05)
    assert not fourth.done()
    gate.set()
    await asyncio.wait_for(fourth, 1)
    await batches.drain()
