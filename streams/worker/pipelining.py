"""Process a stream's events concurrently while committing offsets exactly as if in order.

The preflight must not wait for one batch's mint call before taking the next: under a paced or
rate-limited mint, that serialisation caps the answered melts per second and adds a batch's wait
to every request behind it. Batches therefore run as tasks, and the gateway merges their checks.

Offsets are the hard part. Faust commits the unbroken run of acknowledged offsets, but its guard
against a gap at the head is off by one (faust-streaming #606): acknowledging offset N+1 while N is
still in flight can commit past N, which a crash would then lose. So events are acknowledged per
partition strictly in offset order, each only once it and every earlier one is answered.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Ack = Callable[[Any], Awaitable[Any]]


@dataclass(eq=False)
class _Slot:
    event: Any
    done: bool = False


class OrderedAcks:
    """Acknowledge events per partition in offset order, whatever order they finish in."""

    def __init__(self, ack: Ack) -> None:
        self._ack = ack
        self._queues: dict[Any, deque[_Slot]] = {}
        self._slots: dict[int, _Slot] = {}

    def __len__(self) -> int:
        return len(self._slots)

    def track(self, event: Any) -> None:
        """Call in arrival order (which is offset order within a partition)."""
        slot = _Slot(event)
        self._slots[id(event)] = slot
        self._queues.setdefault(event.message.tp, deque()).append(slot)

    async def done(self, event: Any) -> None:
        self._slots[id(event)].done = True
        queue = self._queues[event.message.tp]
        while queue and queue[0].done:
            slot = queue.popleft()
            del self._slots[id(slot.event)]
            await self._ack(slot.event)


Handler = Callable[[list[Any]], Awaitable[None]]
OnError = Callable[[BaseException], Awaitable[None]]


class Room:
    """Room for events in flight, counted in events and in bytes (review finding 21: counting
    events alone let 5,000 requests of 1,000 proofs hold gigabytes before backpressure).

    An event larger than the whole byte budget is let in alone, so it is never stuck."""

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._events = 0
        self._bytes = 0
        self._freed = asyncio.Condition()

    def _fits(self, size: int) -> bool:
        if self._events >= self._max_events:
            return False
        return self._events == 0 or self._bytes + size <= self._max_bytes

    async def take(self, size: int) -> None:
        async with self._freed:
            await self._freed.wait_for(lambda: self._fits(size))
            self._events += 1
            self._bytes += size

    async def give_back(self, size: int) -> None:
        async with self._freed:
            self._events -= 1
            self._bytes -= size
            self._freed.notify_all()


def event_size(event: Any) -> int:
    value = getattr(event.message, "value", None)
    return len(value) if isinstance(value, bytes | str) else 0


@dataclass(eq=False)
class MicroBatches:
    """Gather events for up to `within_s` (or `max_size` events), then run the batch as a task;
    an event that arrives while no batch is in flight runs at once.

    At most `max_in_flight` events, and `max_in_flight_bytes` of them, are being handled at
    once; `add` waits for room, which holds the stream back (backpressure) instead of piling up
    tasks.
    """

    handler: Handler
    on_error: OnError
    acks: OrderedAcks
    max_size: int
    within_s: float
    max_in_flight: int
    max_in_flight_bytes: int = 64 * 1024 * 1024
    _batch: list[Any] = field(default_factory=list)
    _timer: asyncio.TimerHandle | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _room: Room | None = None

    async def add(self, event: Any) -> None:
        if self._room is None:
            self._room = Room(self.max_in_flight, self.max_in_flight_bytes)
        await self._room.take(event_size(event))
        self.acks.track(event)
        self._batch.append(event)
        # Nothing in flight: nothing for the event to wait behind, it goes now (a window would
        # only add its length to its answer). Otherwise events gather for `within_s`.
        if len(self._batch) >= self.max_size or not self._tasks:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.within_s, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        task = asyncio.ensure_future(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[Any]) -> None:
        assert self._room is not None
        try:
            await self.handler(batch)
        except Exception as exc:
            # Not acknowledged: the offsets stay uncommitted and a restart handles them again.
            for event in batch:
                await self._room.give_back(event_size(event))
            await self.on_error(exc)
            return
        for event in batch:
            await self.acks.done(event)
            await self._room.give_back(event_size(event))

    async def drain(self) -> None:
        """Flush and wait for every batch in flight (on shutdown or before a rebalance)."""
        self.flush()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
