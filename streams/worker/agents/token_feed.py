"""The ledger's own consumer of `wallet.token-status`, bound to Faust's partition assignment.

Faust's stream machinery costs ~120 µs per message before an agent sees it (a task pair per
message in its fetch loop, per-event sensors and acks): on its own more than a third of what the
ledger may spend per token at 20,000 proof updates/s. So the ledger reads its topic with a plain
aiokafka consumer, in batches, and keeps Faust for everything the ledger shares with the rest of
the worker:

- Partitions: the feed holds exactly the token-status partitions whose numbers Faust assigned this
  worker for `wallet.melt-requests` (the wallet-facing topics are co-partitioned: one npub, one
  partition number, one worker). It follows every rebalance through Faust's signals: on revoke it
  finishes the batch in hand and lets the partitions go before Faust hands them on; after an
  assignment it waits until Faust has recovered the tables (the tokens table among them) and
  rebuilt the indexes, like every agent.
- Position: no consumer group. Each batch writes, with its rows, the offset of the last event it
  applied (`streams.worker.token_table`); the feed starts after it. Rows and position travel in
  the same changelog, so they always agree, on whichever worker the partition lands. A partition
  without one (a deployment whose ledger was a Faust agent) starts at the offset that agent's
  consumer group committed, else at the beginning.
- Failures: a batch that fails for a reason that is not one event's (the broker, RocksDB) stops
  the worker (as `run_guarded` does) before anything after it is written; the batch is read
  again after the restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, cast

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.core.kafka import client_kwargs
from streams.core.logs import log
from streams.worker.agents.loop import stop_worker
from streams.worker.runtime import Runtime, tables_recovered
from streams.worker.token_table import TokenTable

logger = logging.getLogger("proofrecon.ledger")


class Consumed(Protocol):
    """The fields of an aiokafka ConsumerRecord the ledger reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


BatchHandler = Callable[[int, Sequence[Consumed]], Awaitable[None]]
_MAX_RECORDS = 2000  # per fetch: a batch per partition, one changelog write each
_FETCH_WAIT_MS = 100
_IDLE_S = 0.05


class TokenFeed:
    def __init__(self, runtime: Runtime, table: TokenTable, handle: BatchHandler) -> None:
        self._rt = runtime
        self._table = table
        self._handle = handle
        self._topic = runtime.settings.topics.token_status
        self._anchor = runtime.settings.topics.melt_requests  # its assignment is ours
        self._assigned: frozenset[int] | None = None  # None: in a rebalance
        self._generation = 0  # bumped by every revoke and assignment
        self._positioned = -1  # the generation the consumer was last positioned for
        self._lock = asyncio.Lock()  # held while a batch is handled

    def register(self) -> None:
        app = self._rt.app
        cast(Any, app.on_partitions_revoked).connect(self._on_revoked)
        cast(Any, app.on_partitions_assigned).connect(self._on_assigned)
        app.task(self.run)

    async def _on_revoked(self, sender: Any, revoked: Any, **kwargs: Any) -> None:
        async with self._lock:  # the batch in hand is written (or fails) before they go
            self._assigned = None
            self._generation += 1

    async def _on_assigned(self, sender: Any, assigned: Any, **kwargs: Any) -> None:
        async with self._lock:
            self._assigned = frozenset(tp.partition for tp in assigned if tp.topic == self._anchor)
            self._generation += 1

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            **client_kwargs(self._rt.settings.kafka),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=_FETCH_WAIT_MS,
        )
        await consumer.start()
        try:
            while True:
                await self._until_ready()
                if self._positioned != self._generation:
                    await self._position(consumer)
                fetched = await consumer.getmany(
                    timeout_ms=_FETCH_WAIT_MS, max_records=_MAX_RECORDS
                )
                if not await self._apply(fetched):
                    return
        finally:
            await consumer.stop()

    async def _until_ready(self) -> None:
        # Faust has no event for "recovered and not rebalancing": polled, as the sweep does.
        # The ledger keeps the indexes rebuilt in the background up to date: not while they are.
        while (  # noqa: ASYNC110
            self._assigned is None
            or not tables_recovered(self._rt.app)
            or not self._rt.rebuilds.done.is_set()
        ):
            await asyncio.sleep(_IDLE_S)

    async def _apply(self, fetched: dict[TopicPartition, list[Consumed]]) -> bool:
        """Hand each partition's records to the ledger; False once the worker is stopping."""
        failure: Exception | None = None
        async with self._lock:
            if self._positioned != self._generation or self._assigned is None:
                return True  # read before a rebalance: dropped, read again where it resumes
            for tp, records in fetched.items():
                if tp.partition not in self._assigned or not records:
                    continue
                try:
                    await self._handle(tp.partition, records)
                except Exception as exc:  # not one event's fault (those are parked): stop
                    failure = exc
                    break
        if failure is None:
            return True
        log(logger, logging.ERROR, "ledger: stopping the worker", error=type(failure).__name__)
        await stop_worker(self._rt, failure)
        return False

    async def _position(self, consumer: AIOKafkaConsumer) -> None:
        """Take this generation's partitions, each where its rows say the ledger stopped."""
        generation, partitions = self._generation, self._assigned or frozenset()
        tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        missing = [tp for tp in tps if self._table.source_offset(tp.partition) is None]
        committed = await self._committed_by_faust(missing) if missing else {}
        for tp in tps:
            offset = self._table.source_offset(tp.partition)
            if offset is not None:
                consumer.seek(tp, offset + 1)
            elif committed.get(tp) is not None:
                consumer.seek(tp, committed[tp])
            else:
                await consumer.seek_to_beginning(tp)
        self._positioned = generation
        log(logger, logging.INFO, "ledger: reading token-status", partitions=sorted(partitions))

    async def _committed_by_faust(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Where the app's consumer group left these partitions (the ledger was a Faust agent)."""
        admin = AIOKafkaAdminClient(**client_kwargs(self._rt.settings.kafka))
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(
                self._rt.settings.kafka.app_id, partitions=tps
            )
        finally:
            await admin.close()
        return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
