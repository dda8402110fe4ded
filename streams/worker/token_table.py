"""The ledger's batched path into the tokens table: Faust's own RocksDB and changelog, written a
batch at a time instead of one `table[key] = row` at a time.

Faust writes a table key by serialising it, putting it into RocksDB, handing one changelog record
to its producer and, once that record is acknowledged, writing the changelog offset back into
RocksDB: ~300 µs per write on this machine, more than the rest of the ledger's work together. This
writes the same bytes to the same places a batch at a time (one changelog produce per partition,
one RocksDB WriteBatch), so everything Faust does with the table still holds: recovery from the
changelog (the same topic, keys and values), standby replicas, rebalances, `items()` and `get()`.

Order (at-least-once, as `table[key] = row` had it): the changelog records are acknowledged by
the broker first, then RocksDB gets the rows and the last changelog offset in one atomic write.
A crash in between leaves the rows in the changelog only; recovery replays them.

Each partition's batch also writes one more row, `SOURCE_OFFSET_KEY`: the offset of the last
`wallet.token-status` event the batch applied. It travels with the rows (same changelog, same
RocksDB write), so wherever the partition is recovered, its rows and the position to read on from
agree exactly; the ledger's consumer starts there (streams.worker.agents.token_feed).
`token_rows` skips it (it has no proofs).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from typing import Any, cast

import faust
import rocksdict
from aiokafka import AIOKafkaProducer
from aiokafka import errors as kafka_errors

from streams.core.errors import StoreError
from streams.core.kafka import client_kwargs
from streams.core.settings import KafkaSettings
from streams.worker.runtime import JsonTable

# Never a token key: those start with an npub, which holds no NUL.
SOURCE_OFFSET_KEY = "\x00ledger-source-offset"
_ATTEMPTS = 4
_BATCH_BYTES = 1024 * 1024
_REFUSED = (
    kafka_errors.RecordTooLargeError,
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordListTooLargeError,
    kafka_errors.InvalidTopicError,
    kafka_errors.TopicAuthorizationFailedError,
)


class RowsTable(faust.Table[str, dict[str, Any]]):
    """A Faust table of JSON rows whose `items()` decodes with json directly: Faust's serializer
    registry costs ~10 µs a row, which every rebuild after a recovery pays for every row."""

    def items(self) -> Iterator[tuple[Any, Any]]:  # type: ignore[override]
        """(key, row) of the partitions this worker holds (actives only, as Faust's own)."""
        for key, value in cast(Any, self.data)._iteritems():
            yield json.loads(key), json.loads(value)


def encode_key(key: str) -> bytes:
    """A table key as Faust's json key serializer writes it (tests check they agree)."""
    return json.dumps(key).encode()


def encode_row(row: Mapping[str, Any]) -> bytes:
    return json.dumps(row, separators=(",", ":")).encode()


class PartitionRows:
    """A Faust table's rows read straight from one partition's RocksDB (a `table.get` outside an
    event asks every partition, and inside one pays Faust's sensors and wrappers per key)."""

    def __init__(self, table: JsonTable) -> None:
        self._table = table

    def _db(self, partition: int) -> Any:
        # Faust's RocksDB store opens one database per partition, on first use.
        return cast(Any, self._table.data)._db_for_partition(partition)

    def row(self, partition: int, key: str) -> dict[str, Any] | None:
        """The row, None if there is none; StoreError if the store cannot be read (never the
        event's fault: the worker stops rather than judge without it)."""
        try:
            raw = self._db(partition).get(encode_key(key))
        except Exception as exc:
            raise StoreError(f"table read failed: {type(exc).__name__}") from exc
        return cast(dict[str, Any], json.loads(raw)) if raw is not None else None


class TokenTable(PartitionRows):
    """The tokens table: rows by partition, and batched, acknowledged writes (see module)."""

    def __init__(self, table: JsonTable, kafka: KafkaSettings) -> None:
        super().__init__(table)
        self._kafka = kafka
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    @property
    def changelog(self) -> str:
        return str(self._table.changelog_topic.get_topic_name())

    def source_offset(self, partition: int) -> int | None:
        """The offset of the last token-status event applied to this partition's rows."""
        row = self.row(partition, SOURCE_OFFSET_KEY)
        offset = row.get("offset") if row else None
        return offset if isinstance(offset, int) else None

    async def write(
        self, partition: int, rows: Mapping[str, Mapping[str, Any]], source_offset: int
    ) -> None:
        """Write `rows` and the source offset; StoreError if it cannot be done (see module)."""
        records = [(encode_key(key), encode_row(row)) for key, row in rows.items()]
        records.append((encode_key(SOURCE_OFFSET_KEY), encode_row({"offset": source_offset})))
        last_offset = await self._produce(partition, records)
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in records:
            batch.put(key, value)
        batch.put(cast(Any, self._table.data).offset_key, str(last_offset).encode())
        try:
            self._db(partition).write(batch)
        except Exception as exc:
            raise StoreError(f"tokens table write failed: {type(exc).__name__}") from exc

    async def _produce(self, partition: int, records: list[tuple[bytes, bytes]]) -> int:
        """Send the records to the changelog partition; the offset of the last one once the
        broker has them all. Retried as a whole (a record written twice changes nothing)."""
        error: Exception | None = None
        for attempt in range(_ATTEMPTS):
            if attempt:
                await asyncio.sleep(min(1.0, 0.05 * 2**attempt))
            try:
                return await self._send_all(partition, records)
            except _REFUSED as exc:
                raise StoreError(f"changelog refused a record: {type(exc).__name__}") from exc
            except Exception as exc:  # the broker in trouble: retried, then the worker stops
                error = exc
        raise StoreError(f"changelog write failed: {type(error).__name__}") from error

    async def _send_all(self, partition: int, records: list[tuple[bytes, bytes]]) -> int:
        producer = await self._started()
        futures = []
        batch, count = producer.create_batch(), 0
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:
                futures.append(await self._send(producer, batch, partition))
                batch, count = producer.create_batch(), 0
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise kafka_errors.MessageSizeTooLargeError()
            count += 1
        futures.append(await self._send(producer, batch, partition))
        sent = await asyncio.gather(*futures)
        return int(sent[-1].offset) + count - 1  # the last batch's base offset + its records

    async def _send(self, producer: AIOKafkaProducer, batch: Any, partition: int) -> Any:
        batch.close()
        return await producer.send_batch(batch, self.changelog, partition=partition)

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    **client_kwargs(self._kafka),
                    acks="all",
                    linger_ms=0,
                    max_batch_size=_BATCH_BYTES,
                    request_timeout_ms=int(self._kafka.send_timeout_s * 1000),
                )
                await producer.start()
                self._producer = producer
            return self._producer

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
