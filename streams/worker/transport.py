"""The Faust transport the worker uses: Faust's aiokafka transport with a short fetch wait.

Faust builds its consumer with `fetch_max_wait_ms=1500`, fixed (no setting reaches it). aiokafka
leaves a partition out of the next fetch while its records are still being handed to the agents,
and that fetch then waits on the broker for up to `fetch_max_wait_ms` for the other partitions:
a melt request arriving meanwhile on the partition left out waits for that fetch to come back.
At 50 melts/s that cost ~10 ms at the median and far more at the tail (up to the 1.5 s at lower
rates). A short wait bounds it; the price is an idle worker's empty fetches (one per wait).

It also speeds up every start and rebalance: a broker answers one connection's requests in
order, so each offset lookup of table recovery (highwaters, earliest offsets, seeks for actives,
then standbys) waited behind a fetch with nothing to return, up to 1.5 s each (measured with 3
workers on the 3-node cluster: a worker restarted after kill -9 ready 10.8 s after its start,
6.1 s of it in those waits).

It also never hands an agent a record fetched before a seek. At a rebalance Faust resumes the
flow before it seeks the stream partitions back to their committed offsets, so a batch fetched in
between could still be iterated after the seek: its first record, past the committed offset, then
read as a gap in the partition, Faust counted the skipped offsets as acknowledged (compaction
leaves such gaps) and skipped their records when they came again, as already read. A melt request
in that range was committed unanswered (seen once in the fault campaign, during a Kafka node's
kill and the rebalances after it). A record whose partition was sought after its batch was fetched
is dropped; it is fetched again from the new position. "Before" is in the consumer thread's
order, where seeks and drains happen (SeekGuard says why anything looser lost records).
Faust also records a handed-out record's offset as read only after handing it out, which would
overwrite the seek's read offset: a seek waits for the record in hand.

Faust's other fixed wait at a start, the table manager's 1 s before it subscribes to the
changelogs, is kept: without it, on the 3-node cluster an agent wrote a table before its new
changelog's metadata was known (PartitionsMismatch: "the changelog has 0 partitions").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, TypeVar, cast

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

logger = logging.getLogger("proofrecon.transport")
K = TypeVar("K")
V = TypeVar("V")
FETCH_MAX_WAIT_MS = 10
# How long a seek waits for the record being handed out (a put on an agent's queue; it only waits
# when that queue is full).
SEEK_WAIT_S = 5.0


class SeekGuard:
    """Keeps records fetched before a seek of their partition from being handed out after it.

    The order that matters is the consumer thread's: a seek and the drain of a fetched batch both
    happen there, one after the other. Each seek bumps an epoch and stamps the partitions it
    moves, in the same step as the seek itself; each drained batch notes the epoch it was drained
    in. A record of a partition stamped after its batch was drained is dropped (the seek moved the
    position back, so it is fetched again); every other record goes on. Stamping on the event
    loop instead, after the seek call returned, dropped fresh records: a rebalance's seek to
    committed looks up one partition after another, and a batch drained from an already-moved
    partition meanwhile was taken for stale and never came again (the fault campaign lost melt
    requests so, twice). Only partitions a seek really moves are stamped.

    Faust marks a record's offset as read only after handing it out, which would undo a seek's
    read offsets: a seek waits (briefly) for the record in hand, before and after it.
    """

    def __init__(self) -> None:
        self._epoch = 0  # written in the consumer thread only
        self._drained = 0  # the epoch the batch being handed out was drained in
        self._sought: dict[Any, int] = {}
        self.dropped = 0  # records dropped because their partition was sought
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def delivering(self) -> bool:
        return not self._idle.is_set()

    def sought(self, partitions: Iterable[Any]) -> None:
        """Consumer thread, in the same step as the seek of `partitions`."""
        self._epoch += 1
        for tp in partitions:
            self._sought[tp] = self._epoch

    def drained(self) -> None:
        """Consumer thread, in the same step as a fetched batch's drain."""
        self._drained = self._epoch

    async def hand_out(self, records: AsyncIterator[tuple[K, V]]) -> AsyncIterator[tuple[K, V]]:
        """`records` is one drained batch (`drained()` was called when it was drained)."""
        async for tp, record in records:
            if self._sought.get(tp, 0) > self._drained:
                if not self.dropped:
                    logger.info("a fetched record's partition was sought; it is fetched again")
                self.dropped += 1
                continue
            self._idle.clear()
            try:
                yield tp, record
            finally:
                self._idle.set()

    async def settle(self, wait_s: float = SEEK_WAIT_S) -> None:
        """Until no record is in hand (at most `wait_s`)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), wait_s)


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Every seek of the worker's consumer runs here, stamped in the same step (SeekGuard)."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it builds its fetcher: set before that.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer

    @property
    def _guard(self) -> SeekGuard:
        return cast(_Consumer, self.consumer).seek_guard

    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: set[TP],
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Any:
        records = await super()._fetch_records(
            consumer, active_partitions, timeout=timeout, max_records=max_records
        )
        self._guard.drained()  # the drain returned without yielding: no seek in between
        return records

    async def seek_to_committed(self) -> Mapping[TP, int]:
        return cast(Mapping[TP, int], await self.call_thread(self._seek_to_committed))

    async def _seek_to_committed(self) -> dict[TP, int | None]:
        # aiokafka's own seek_to_committed looks each offset up and seeks at once, partition by
        # partition, so batches drained in between would be half stale: look them all up first.
        consumer = self._ensure_consumer()
        committed = {tp: await consumer.committed(tp) for tp in consumer.assignment()}
        self._seek_stamped(
            {tp: offset for tp, offset in committed.items() if offset is not None and offset > 0}
        )
        return committed

    async def _seek_wait(self, consumer: Any, partitions: Mapping[TP, int]) -> None:
        self._guard.sought(partitions)  # Faust's seeks follow before its first await
        await super()._seek_wait(consumer, partitions)

    async def seek_one(self, partition: TP, offset: int) -> None:
        self._seek_stamped({partition: offset})

    def _seek_stamped(self, offsets: Mapping[TP, int]) -> None:
        """Stamp and seek in one step of this thread: no drain can come in between."""
        self._guard.sought(offsets)
        consumer = self._ensure_consumer()
        for tp, offset in offsets.items():
            consumer.seek(tp, offset)


class _Consumer(faust_aiokafka.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.seek_guard = SeekGuard()  # before Faust's __init__ builds the consumer thread
        super().__init__(*args, **kwargs)

    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        async for item in self.seek_guard.hand_out(super().getmany(timeout)):
            yield item

    async def _seek(self, partition: TP, offset: int) -> None:
        # Faust seeks from the event loop, outside the consumer thread: run it there instead.
        # Consumer.seek sets the read offset right after this returns.
        thread = cast(_ConsumerThread, self._thread)
        await self.seek_guard.settle()
        await thread.call_thread(thread.seek_one, partition, offset)
        await self.seek_guard.settle()

    async def seek_to_committed(self) -> Mapping[TP, int]:
        # Every rebalance's perform_seek comes this way (and sets the read offsets after it).
        await self.seek_guard.settle()
        offsets = await super().seek_to_committed()
        await self.seek_guard.settle()
        return offsets


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


def use_low_latency_transport(app: faust.App) -> None:
    """Give `app` the transport above. Before anything asks for `app.transport` (its topics)."""
    app.transport = _Transport(app.conf.broker_consumer, app)
