"""Preparing a cut batch for its insert: the fast path (raw values for ClickHouse to parse and
check) or the slow one (pydantic-validated columns), with event ids seen before dropped."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, cast

from sinks.batching import (
    Batch,
    RecentIds,
    Record,
    TopicPartition,
)
from sinks.metrics import SinkMetrics
from sinks.rows import (
    BadRecord,
    RowSpec,
    decode_batch,
    fast_ids,
    fast_path_values,
    row_ids,
    splice_offsets,
    to_columns,
)
from streams.core.logs import log

logger = logging.getLogger("proofrecon.sink")


@dataclass
class SinkStats:
    """Counters for logs, the status endpoint and tests (Prometheus has its own)."""

    rows_inserted: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    replayed_batches: int = 0
    bad_records: int = 0
    duplicates_dropped: int = 0
    slow_batches: int = 0  # validated record by record (the fast path refused or rejected them)
    retries: int = 0
    last_error: str | None = None
    paused: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows_inserted": dict(self.rows_inserted),
            "batches": self.batches,
            "replayed_batches": self.replayed_batches,
            "bad_records": self.bad_records,
            "duplicates_dropped": self.duplicates_dropped,
            "slow_batches": self.slow_batches,
            "retries": self.retries,
            "last_error": self.last_error,
            "paused": self.paused,
        }


@dataclass
class Prepared:
    """A cut batch, prepared once: retries insert exactly the same rows with the same token.

    Fast path: `body` holds the kept records' raw values, for ClickHouse to parse and check.
    Slow path: `columns` holds the rows pydantic validated (`body` is then None). A fast batch
    ClickHouse rejects turns into a slow one, and stays one through retries.
    """

    batch: Batch
    spec: RowSpec
    rows: int
    columns: dict[str, list[Any]] | None = None
    body: bytes | None = None
    first_offset: int | None = None  # fast path: offsets are first_offset + row number
    # fast path: the offsets and values in `body`, and their ids
    kept: tuple[list[int], list[bytes]] = field(default_factory=lambda: ([], []))
    kept_ids: list[str] = field(default_factory=list)
    recorded: bool = False
    inserted: bool = False


class Preparer:
    """Chooses each batch's path and its rows, once: retries insert exactly the same rows."""

    def __init__(
        self,
        topics: dict[str, RowSpec],
        recent: dict[str, RecentIds],
        stats: SinkStats,
        metrics: SinkMetrics,
        *,
        embedded: bool,
    ) -> None:
        self._topics = topics
        self._recent = recent
        self.stats = stats
        self.metrics = metrics
        self._embedded = embedded

    def prepare(self, batch: Batch) -> Prepared:
        """Choose the batch's path and its rows: raw values for ClickHouse to parse (the fast
        path), or pydantic-validated columns when a value cannot take the fast path.

        Deterministic for the batch's bytes (apart from the recent-id filter, as before): a
        replayed batch takes the same path and sends the same rows under the same token.
        """
        spec = self._topics[batch.tp.topic]
        if batch.forced:
            self.stats.replayed_batches += 1
        offsets, values = batch.offsets, batch.values
        if not all(values):
            pairs = list(zip(offsets, values, strict=True))
            self._report_bad(batch.tp, [BadRecord(o, "EMPTY") for o, v in pairs if not v])
            offsets = [o for o, v in pairs if v]
            values = [v for _, v in pairs if v]
        present = cast(list[bytes], values)  # the empty ones are gone
        joined = fast_path_values(present)
        ids = fast_ids(spec, present) if joined is not None else None
        if joined is None or ids is None:
            return self._slow(batch, spec, offsets, present)
        if len(present) == len(batch.values):
            batch.token_from(joined)  # the same digest as `batch.token`, without a second join
        recent = self._recent[batch.tp.topic]
        keep = recent.fresh_indexes(ids)
        if len(keep) < len(ids):
            self._count_duplicates(batch.tp.topic, len(ids) - len(keep))
            offsets = [offsets[i] for i in keep]
            present = [present[i] for i in keep]
            ids = [ids[i] for i in keep]
            joined = b"".join(present)
        recent.add_all(ids)
        prepared = Prepared(batch, spec, len(offsets), kept=(offsets, present), kept_ids=ids)
        if not offsets:
            return prepared
        if self._embedded and offsets[-1] - offsets[0] == len(offsets) - 1:
            prepared.body = joined  # contiguous: ClickHouse numbers the rows itself
            prepared.first_offset = offsets[0]
        else:
            prepared.body = splice_offsets(present, offsets)
        return prepared

    def _slow(
        self, batch: Batch, spec: RowSpec, offsets: list[int], values: list[bytes]
    ) -> Prepared:
        """Validate the batch's non-empty records with pydantic (the caller reported the empty)."""
        decoded = decode_batch(spec, [Record(o, v) for o, v in zip(offsets, values, strict=True)])
        self._report_bad(batch.tp, decoded.bad)
        recent = self._recent[batch.tp.topic]
        ids = row_ids(spec, decoded.rows)
        keep = recent.fresh_indexes(ids)
        if len(keep) < len(ids):
            self._count_duplicates(batch.tp.topic, len(ids) - len(keep))
        rows = [decoded.rows[i] for i in keep]
        kept_offsets = [decoded.offsets[i] for i in keep]
        recent.add_all(ids[i] for i in keep)
        columns = to_columns(spec, rows, kept_offsets, batch.tp.topic, batch.tp.partition)
        self.stats.slow_batches += 1
        return Prepared(batch, spec, len(rows), columns=columns)

    def to_slow(self, p: Prepared) -> None:
        """ClickHouse rejected a fast batch: validate its records, keep the good ones."""
        tp = p.batch.tp
        offsets, values = p.kept
        decoded = decode_batch(p.spec, [Record(o, v) for o, v in zip(offsets, values, strict=True)])
        self._report_bad(tp, decoded.bad)
        if decoded.bad:
            bad = {b.offset for b in decoded.bad}
            # They were remembered as seen; they were not stored.
            self._recent[tp.topic].discard_all(
                i for o, i in zip(offsets, p.kept_ids, strict=True) if o in bad
            )
        p.columns = to_columns(p.spec, decoded.rows, decoded.offsets, tp.topic, tp.partition)
        p.rows = len(decoded.rows)
        p.body = None
        p.kept, p.kept_ids = ([], []), []
        self.stats.slow_batches += 1

    def _report_bad(self, tp: TopicPartition, bad: list[BadRecord]) -> None:
        for record in bad:
            # Offsets and reasons only: a record's value is never logged.
            log(
                logger,
                logging.WARNING,
                "sink skipped a bad record",
                topic=tp.topic,
                partition=tp.partition,
                offset=record.offset,
                reason=record.reason,
            )
            self.metrics.bad_records.labels(tp.topic, record.reason).inc()
        self.stats.bad_records += len(bad)

    def _count_duplicates(self, topic: str, dropped: int) -> None:
        self.stats.duplicates_dropped += dropped
        self.metrics.duplicates.labels(topic).inc(dropped)
