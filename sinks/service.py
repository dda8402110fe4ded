"""The ClickHouse sink: a `mode.Service` with its own Kafka consumer.

Shape (after Quix Streams' sinks): records are buffered per topic-partition and cut into batches
bounded by rows and wait (`sinks.batching`); a batch is recorded, inserted, and only then are its
offsets committed. A failed insert aborts the commit: the consumer's partitions are paused, the
same batches are retried with exponential backoff, and nothing is lost. After a crash the first
batches of each partition are re-cut to their recorded ranges, so their replayed inserts carry the
same deduplication tokens and add nothing to any table or materialized view.

Inside the worker: `app.add_runtime_dependency(ClickHouseSinkService(settings))`, or run it alone
with `proofrecon sink` (sinks/standalone.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka import TopicPartition as KafkaTP
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata
from mode import Service

from sinks.batching import (
    Batcher,
    BatchRecord,
    RecentIds,
    ResumeKind,
    TopicPartition,
    plan_resume,
)
from sinks.clickhouse import ClickHouseStore, RejectedBatch
from sinks.journal import recent_ids, record_batches, recorded_batches
from sinks.metrics import SinkMetrics
from sinks.migrate import migrate
from sinks.prepare import Prepared, Preparer, SinkStats
from sinks.rows import (
    SPECS,
    RowSpec,
)
from streams.core.errors import SinkBackpressure, SinkError
from streams.core.kafka import client_kwargs
from streams.core.logs import log
from streams.core.settings import Settings

logger = logging.getLogger("proofrecon.sink")

# After ClickHouse accepted a batch and before its offsets are committed: create this file and
# wait (forever). Tests SIGKILL the process there to prove a replay adds nothing.
PAUSE_AFTER_INSERT_ENV = "PROOFRECON_TEST_SINK_PAUSE_AFTER_INSERT"
BACKOFF_BASE_S = 0.25
POLL_MS = 100
# Per getmany, all partitions: bounds one loop step, not a batch. Small on purpose: aiokafka makes
# an object per record, and 10,000 of them alive at once outlive the garbage collector's youngest
# generation (700), get promoted and trigger full collections of the whole worker's heap: ~11 per
# million records, 1.4-1.7 s of the event loop's time. At 500 they die young: 0.05-0.13 s.
MAX_POLL_RECORDS = 500
# Per partition and fetch. aiokafka's 1 MiB default is ~2,000 discrepancy events: a 10k-row batch
# would take five round trips per partition.
MAX_PARTITION_FETCH_BYTES = 8 * 1024 * 1024
STOP_TIMEOUT_S = 15.0
# Event ids of rows ingested this recently are loaded at assignment to catch re-emissions.


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, sink: ClickHouseSinkService) -> None:
        self._sink = sink

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._sink._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._sink._on_assigned(assigned)


class ClickHouseSinkService(Service):
    """Kafka → ClickHouse for the discrepancy, preflight, correction and proof-check topics."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: ClickHouseStore | None = None,
        registry: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.store = store or ClickHouseStore(settings, name="clickhouse-sink")
        self._owns_store = store is None
        self.group_id = f"{settings.kafka.app_id}-clickhouse-sink"
        ch = settings.clickhouse
        self._topics: dict[str, RowSpec] = {
            getattr(settings.topics, kind): spec for kind, spec in SPECS.items()
        }
        self._batcher = Batcher(ch.batch_max_rows, ch.batch_max_wait_s)
        self._recent = {topic: RecentIds(ch.recent_ids) for topic in self._topics}
        self._consumer: AIOKafkaConsumer | None = None
        self._unplanned: set[TopicPartition] = set()
        self._pending: list[Prepared] = []
        self._flush_lock = asyncio.Lock()
        self._loop_done = asyncio.Event()
        self._flush_task: asyncio.Future[None] | None = None
        self._throttled = False
        self._migrated = False
        self._attempt = 0
        self.stats = SinkStats()
        self.metrics = SinkMetrics(registry)
        self._prep = Preparer(
            self._topics, self._recent, self.stats, self.metrics, embedded=self.store.embedded
        )

    # --- lifecycle ------------------------------------------------------------------------------

    async def on_start(self) -> None:
        consumer = AIOKafkaConsumer(
            **client_kwargs(self.settings.kafka),
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=MAX_POLL_RECORDS,
            max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
            # A batch insert may wait long on an unavailable ClickHouse; stay in the group.
            max_poll_interval_ms=600_000,
        )
        consumer.subscribe(list(self._topics), listener=_Listener(self))
        await consumer.start()
        self._consumer = consumer
        log(
            logger,
            logging.INFO,
            "clickhouse sink started",
            group_id=self.group_id,
            clickhouse=self.store.display_url,
            topics=sorted(self._topics),
        )

    async def on_stop(self) -> None:
        # Let the loop finish its step (an insert in flight, a commit): stopping the consumer
        # under it would only turn a clean stop into a replay. Anything not committed is read
        # again at the next start and its replay is deduplicated, so no final flush is needed.
        try:
            await asyncio.wait_for(self._loop_done.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            log(logger, logging.WARNING, "sink loop still busy at stop; stopping anyway")
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()
        if self._owns_store:
            self.store.close()
        log(logger, logging.INFO, "clickhouse sink stopped", **self.stats.as_dict())

    @Service.task
    async def _run(self) -> None:
        try:
            while not self.should_stop:
                consumer = self._consumer
                if consumer is None:
                    await self.sleep(0.05)
                    continue
                try:
                    await self._step(consumer)
                    if self._attempt and self._flush_task is None and not self._pending:
                        self._recovered(consumer)
                except SinkError as exc:
                    await self._back_off(consumer, exc)
        finally:
            task, self._flush_task = self._flush_task, None
            if task is not None:
                # Let an insert in flight finish and commit; a stop mid-insert only means a replay.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT_S)
            self._loop_done.set()

    # --- the loop -------------------------------------------------------------------------------
    # One flush (record → insert → commit) runs as a task while the loop keeps fetching and
    # buffering: Kafka fetches and decoding overlap the insert, which runs on the store's thread.
    # At most one flush is in flight, so batches of a partition are committed in order.

    async def _step(self, consumer: AIOKafkaConsumer) -> None:
        if not self._migrated:
            for line in await self.store.run(migrate, self.store, self.settings):
                log(logger, logging.INFO, "clickhouse migration", action=line)
            self._migrated = True
        self._reap_flush()  # raises the SinkError of a failed flush: back off, then retry it
        if self._unplanned and self._flush_task is None:
            await self._plan(consumer)
        if self._pending and self._flush_task is None:
            self._start_flush(consumer)  # the batches of a failed flush, unchanged
        fetched = await consumer.getmany(timeout_ms=POLL_MS)
        self._buffer(fetched)
        await self._note_positions(consumer)
        if self._flush_task is None:
            batches = self._batcher.cut(time.monotonic())
            if batches:
                self._pending = [self._prep.prepare(b) for b in batches]
                self._start_flush(consumer)
        self._throttle(consumer)

    def _start_flush(self, consumer: AIOKafkaConsumer) -> None:
        self._flush_task = asyncio.ensure_future(self._flush_due(consumer))

    async def _flush_due(self, consumer: AIOKafkaConsumer) -> None:
        """Flush the pending batches, then the ones that became due meanwhile, until none is.

        ClickHouse never waits for the loop's next step (up to a poll interval) to get its next
        batch; the loop keeps fetching meanwhile. Stops for partitions waiting to be planned.
        """
        while True:
            await self._flush(self._pending, consumer)
            if self._unplanned or self.should_stop:
                return
            batches = self._batcher.cut(time.monotonic())
            if not batches:
                return
            self._pending = [self._prep.prepare(b) for b in batches]

    def _reap_flush(self) -> None:
        task = self._flush_task
        if task is not None and task.done():
            self._flush_task = None
            task.result()

    def _throttle(self, consumer: AIOKafkaConsumer) -> None:
        """Stop fetching while a flush is slow and the buffer is full; go on when it drained."""
        limit = 2 * self.settings.clickhouse.batch_max_rows * max(1, len(self._batcher.assigned()))
        buffered = self._batcher.buffered()
        if not self._throttled and buffered >= limit:
            self._throttled = True
            consumer.pause(*consumer.assignment())
        elif self._throttled and buffered < limit // 2 and not self._attempt:
            self._throttled = False
            consumer.resume(*self._planned(consumer))

    def _planned(self, consumer: AIOKafkaConsumer) -> list[KafkaTP]:
        return [
            ktp
            for ktp in consumer.assignment()
            if TopicPartition(ktp.topic, ktp.partition) not in self._unplanned
        ]

    def _buffer(self, fetched: dict[KafkaTP, list[Any]]) -> None:
        now = time.monotonic()
        assigned = set(self._batcher.assigned())
        for ktp, messages in fetched.items():
            tp = TopicPartition(ktp.topic, ktp.partition)
            if tp in assigned:
                self._batcher.add(tp, messages, now)

    async def _note_positions(self, consumer: AIOKafkaConsumer) -> None:
        # Forced cuts wait for the consumer to pass their last offset, which compaction may
        # have removed: the position says when it is passed.
        for tp in self._batcher.waiting_for_cuts():
            ktp = KafkaTP(tp.topic, tp.partition)
            if ktp in consumer.assignment() and ktp not in consumer.paused():
                self._batcher.note_position(tp, await consumer.position(ktp))

    def _write(self, pending: list[Prepared]) -> tuple[Prepared, RejectedBatch] | None:
        """On the store's thread: record the batches' ranges, then insert them one after the
        other, with no trip through the event loop in between (the loop may be busy unpacking
        a fetch). Stops at a fast batch ClickHouse rejects and returns it, for the loop to
        validate record by record; raises what the store raises (nothing inserted is redone:
        `recorded` and `inserted` say how far it got)."""
        unrecorded = [p for p in pending if not p.recorded and p.rows]
        if unrecorded:
            self._record([p.batch.record(p.rows) for p in unrecorded])
            for p in unrecorded:
                p.recorded = True
        for p in pending:
            if p.inserted or not p.rows:
                continue
            started = time.perf_counter()
            tp = p.batch.tp
            if p.body is not None:
                try:
                    written = self.store.insert_json(
                        p.spec,
                        p.body,
                        topic=tp.topic,
                        partition=tp.partition,
                        rows=p.rows,
                        first_offset=p.first_offset,
                        token=p.batch.token,
                    )
                except RejectedBatch as exc:
                    return p, exc
            else:
                assert p.columns is not None
                # After a rejection, the same token: the rejected attempt wrote nothing, and a
                # replay of this batch is rejected the same way and sends these same rows.
                written = self.store.insert_columns(
                    p.spec.table, p.columns, p.spec.insert_types, token=p.batch.token
                )
            p.inserted = True
            self.metrics.insert_seconds.observe(time.perf_counter() - started)
            self.metrics.rows.labels(p.spec.table).inc(written)
            table = p.spec.table
            self.stats.rows_inserted[table] = self.stats.rows_inserted.get(table, 0) + written
        return None

    async def _flush(self, pending: list[Prepared], consumer: AIOKafkaConsumer) -> None:
        async with self._flush_lock:
            while (rejected := await self.store.run(self._write, pending)) is not None:
                p, exc = rejected
                tp = p.batch.tp
                log(
                    logger,
                    logging.WARNING,
                    "clickhouse rejected a batch; validating its records one by one",
                    topic=tp.topic,
                    partition=tp.partition,
                    first_offset=p.batch.first_offset,
                    last_offset=p.batch.last_offset,
                    clickhouse_code=exc.clickhouse_code,
                )
                self.metrics.rejected_batches.labels(tp.topic).inc()
                self._prep.to_slow(p)
            await _pause_after_insert_hook()
            offsets: dict[KafkaTP, OffsetAndMetadata] = {}
            for p in pending:
                ktp = KafkaTP(p.batch.tp.topic, p.batch.tp.partition)
                offsets[ktp] = OffsetAndMetadata(p.batch.commit_offset, "")
            if offsets:
                try:
                    await consumer.commit(offsets)
                except KafkaError as exc:
                    # The rows are in ClickHouse; a replay of these ranges is deduplicated.
                    raise SinkBackpressure(
                        f"offset commit failed: {exc}", retry_after=BACKOFF_BASE_S
                    ) from None
            self.stats.batches += len(pending)
            self.metrics.batches.inc(len(pending))
            done = {id(p) for p in pending}
            self._pending = [p for p in self._pending if id(p) not in done]

    def _record(self, records: list[BatchRecord]) -> None:
        record_batches(self.store, self.group_id, records)

    # --- backpressure ---------------------------------------------------------------------------

    async def _back_off(self, consumer: AIOKafkaConsumer, exc: SinkError) -> None:
        self._attempt += 1
        self.stats.retries += 1
        self.stats.last_error = exc.code
        self.stats.paused = True
        self.metrics.retries.labels(exc.code).inc()
        consumer.pause(*consumer.assignment())
        hint = exc.retry_after if isinstance(exc, SinkBackpressure) else BACKOFF_BASE_S
        ceiling = self.settings.clickhouse.backoff_max_s
        delay = min(ceiling, max(hint, BACKOFF_BASE_S * 2 ** (self._attempt - 1)))
        delay *= random.uniform(0.8, 1.2)  # jitter: restarts must not retry in lockstep
        level = logging.WARNING if isinstance(exc, SinkBackpressure) else logging.ERROR
        log(
            logger,
            level,
            "clickhouse sink backing off",
            code=exc.code,
            error=exc.message,
            attempt=self._attempt,
            retry_in_s=round(delay, 2),
            pending_batches=len(self._pending),
        )
        deadline = time.monotonic() + delay
        while not self.should_stop and time.monotonic() < deadline:
            # Keep polling while paused: the group sees us alive and rebalances still happen.
            # Partitions assigned meanwhile are paused until planned, so this returns nothing
            # that the batcher does not buffer.
            remaining_ms = max(1, int((deadline - time.monotonic()) * 1000))
            self._buffer(await consumer.getmany(timeout_ms=min(remaining_ms, 500)))

    def _recovered(self, consumer: AIOKafkaConsumer) -> None:
        log(logger, logging.INFO, "clickhouse sink resumed", after_attempts=self._attempt)
        self._attempt = 0
        self.stats.paused = False
        self._throttled = False
        consumer.resume(*self._planned(consumer))

    # --- rebalancing ----------------------------------------------------------------------------

    async def _on_revoked(self, revoked: Any) -> None:
        # Wait out an insert+commit in progress: it commits under the old assignment.
        async with self._flush_lock:
            gone = {TopicPartition(k.topic, k.partition) for k in revoked}
            for tp in gone:
                self._batcher.revoke(tp)
            self._unplanned -= gone
            # Uncommitted batches go with their partitions: the next owner re-cuts their
            # recorded ranges and their replay is deduplicated.
            self._pending = [p for p in self._pending if p.batch.tp not in gone]

    async def _on_assigned(self, assigned: Any) -> None:
        known = set(self._batcher.assigned())
        new = [k for k in assigned if TopicPartition(k.topic, k.partition) not in known]
        if new and self._consumer is not None:
            self._consumer.pause(*new)
        self._unplanned |= {TopicPartition(k.topic, k.partition) for k in new}

    async def _plan(self, consumer: AIOKafkaConsumer) -> None:
        tps = sorted(self._unplanned)
        ktps = [KafkaTP(tp.topic, tp.partition) for tp in tps]
        starts = await consumer.beginning_offsets(ktps)
        ends = await consumer.end_offsets(ktps)
        for tp, ktp in zip(tps, ktps, strict=True):
            committed = await consumer.committed(ktp)
            recorded = await self.store.run(
                recorded_batches, self.store, self.group_id, tp, committed
            )
            plan = plan_resume(committed, recorded, log_start=starts[ktp], log_end=ends[ktp])
            if plan.seek_to is not None:
                consumer.seek(ktp, plan.seek_to)
            start = await consumer.position(ktp)
            if plan.kind is not ResumeKind.FRESH:
                level = logging.INFO if plan.kind is ResumeKind.RECUT else logging.WARNING
                log(
                    logger,
                    level,
                    "sink re-cutting recorded batches",
                    partition=str(tp),
                    kind=plan.kind.value,
                    start=start,
                    cuts=list(plan.cuts),
                )
            recent = self._recent[tp.topic]
            ids = await self.store.run(
                recent_ids, self.store, self._topics[tp.topic], tp, start, recent.capacity
            )
            recent.add_all(ids)
            self._batcher.assign(tp, start, plan.cuts, plan.tokens)
            self._unplanned.discard(tp)
            if not self.stats.paused:
                consumer.resume(ktp)


async def _pause_after_insert_hook() -> None:
    path = os.environ.get(PAUSE_AFTER_INSERT_ENV)
    if not path or os.path.exists(path):  # noqa: ASYNC240 - a test hook; a stat is instant
        return
    Path(path).touch()  # noqa: ASYNC240
    log(logger, logging.WARNING, "test hook: paused after insert, before commit", path=path)
    await asyncio.Event().wait()  # until the test kills the process
