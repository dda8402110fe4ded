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
is dropped; it is fetched again from the new position. "Before" means before the batch came
back from the consumer, not before it was asked for: a fetch waiting while a rebalance seeks
returns records from the new position, and dropping those lost them (seen once in the campaign).
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
from typing import Any, TypeVar

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


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it builds its fetcher: set before that.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class SeekGuard:
    """Keeps records fetched before a seek of their partition from being handed out after it.

    A seek's partitions are stamped once it is done; a record of one of them from a batch fetched
    before that is dropped: the seek moved its partition's position back, so it is fetched again.
    Only partitions a seek really moved are stamped (one without a committed offset is not sought
    at a rebalance, and a dropped record of it would never come again), and records of other
    partitions go on. Faust marks a record's offset as read only after handing it out, which
    would undo a seek's read offsets: a seek waits (briefly) for the record in hand, before and
    after it.
    """

    def __init__(self) -> None:
        self._stamp = 0
        self._batch = 0  # the stamp when the batch being handed out arrived
        self._sought: dict[Any, int] = {}
        self.dropped = 0  # records dropped because their partition was sought
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def delivering(self) -> bool:
        return not self._idle.is_set()

    def arrived(self) -> None:
        """A fetched batch just came back from the consumer: what it holds is as of now.

        Not when the fetch was asked for: a seek while it waited (a rebalance's, typically) has
        already moved the position its records come from, and dropping them would lose them.
        """
        self._batch = self._stamp

    async def hand_out(self, records: AsyncIterator[tuple[K, V]]) -> AsyncIterator[tuple[K, V]]:
        """`records` must call `arrived()` once its batch is fetched, before the first record."""
        async for tp, record in records:
            if self._sought.get(tp, 0) > self._batch:
                if not self.dropped:
                    logger.info("a fetched record's partition was sought; it is fetched again")
                self.dropped += 1
                continue
            self._idle.clear()
            try:
                yield tp, record
            finally:
                self._idle.set()

    def sought(self, partitions: Iterable[Any]) -> None:
        """`partitions` were just sought: what was fetched of them before is stale."""
        self._stamp += 1
        for tp in partitions:
            self._sought[tp] = self._stamp

    async def settle(self, wait_s: float = SEEK_WAIT_S) -> None:
        """Until no record is in hand (at most `wait_s`)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), wait_s)


class _Consumer(faust_aiokafka.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seek_guard = SeekGuard()

    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        async for item in self.seek_guard.hand_out(super().getmany(timeout)):
            yield item

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> Any:
        records = await super()._getmany(active_partitions, timeout)
        self.seek_guard.arrived()  # no await in between: a seek cannot slip in
        return records

    async def _seek(self, partition: TP, offset: int) -> None:
        # Consumer.seek sets the read offset right after this returns.
        await self.seek_guard.settle()
        await super()._seek(partition, offset)
        self.seek_guard.sought([partition])
        await self.seek_guard.settle()

    async def seek_to_committed(self) -> Mapping[TP, int]:
        # Every rebalance's perform_seek comes this way (and sets the read offsets after it).
        await self.seek_guard.settle()
        offsets = await super().seek_to_committed()
        # aiokafka moves only the partitions with a committed offset past 0.
        self.seek_guard.sought(tp for tp, offset in offsets.items() if offset)
        await self.seek_guard.settle()
        return offsets


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


def use_low_latency_transport(app: faust.App) -> None:
    """Give `app` the transport above. Before anything asks for `app.transport` (its topics)."""
    app.transport = _Transport(app.conf.broker_consumer, app)
