"""Batch cutting for the ClickHouse sink: pure logic, no I/O.

A batch is a run of records of ONE topic-partition, identified by the offset range it covers:
`first` is the partition position when the batch began (the committed offset after a restart),
`last` the offset of its last record. Ranges, not record lists, identify batches, so a record
removed by compaction in between does not change a batch's identity.

No double counting rests on three facts (docs/ARCHITECTURE.md, "The sink's no-double-counting
protocol"):
1. each batch's range is recorded before its insert (`sink_batches`);
2. after a restart the first batch of a partition is re-cut to exactly the recorded range
   (`plan_resume` + forced cuts), whatever the size/time limits are now;
3. the insert carries a token derived from the range and the raw bytes (`batch_token`), so the
   replay is dropped by the raw table and by every materialized-view target. A re-cut batch
   carries the token *recorded* for its range, not one computed again: on a compacted topic the
   replayed range may hold fewer records than the insert did, and a new token would let its
   survivors in a second time (review finding 22).
"""

from __future__ import annotations

import zlib
from array import array
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from operator import attrgetter
from typing import Protocol

TOKEN_PREFIX = "proofrecon-sink"  # noqa: S105 - a dedup token prefix, not a secret
_OFFSET = attrgetter("offset")
_VALUE = attrgetter("value")


@dataclass(frozen=True, slots=True, order=True)
class TopicPartition:
    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]"


class RecordLike(Protocol):
    """What the sink reads of a Kafka record (aiokafka's ConsumerRecord is one)."""

    @property
    def offset(self) -> int: ...

    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed Kafka record: just what the sink needs (the key is not stored)."""

    offset: int
    value: bytes | None


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """A batch's range as written to `sink_batches` before its insert."""

    tp: TopicPartition
    first_offset: int
    last_offset: int
    rows: int
    token: str


@dataclass(slots=True)
class Batch:
    """A cut batch. Its records are held column-wise (`offsets[i]`, `values[i]`): buffers of
    hundreds of thousands of records would otherwise be as many objects for the garbage
    collector to walk, over and over."""

    tp: TopicPartition
    first_offset: int
    last_offset: int
    offsets: list[int]
    values: list[bytes | None]
    forced: bool = False  # re-cut to a recorded range after a restart
    _token: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(
        cls,
        tp: TopicPartition,
        first_offset: int,
        last_offset: int,
        records: Sequence[RecordLike],
        forced: bool = False,
    ) -> Batch:
        offsets, values = _columns(records)
        return cls(tp, first_offset, last_offset, offsets, values, forced)

    @property
    def records(self) -> list[Record]:
        return [Record(o, v) for o, v in zip(self.offsets, self.values, strict=True)]

    @property
    def token(self) -> str:
        if self._token is None:  # a CRC pass over the whole batch: computed once
            self._token = _token(
                self.tp, self.first_offset, self.last_offset, self.offsets, self.values
            )
        return self._token

    def token_from(self, joined_values: bytes) -> str:
        """`token`, given the concatenation of the values (empty ones as nothing)."""
        if self._token is None:
            self._token = _token(
                self.tp,
                self.first_offset,
                self.last_offset,
                self.offsets,
                self.values,
                joined_values,
            )
        return self._token

    @property
    def commit_offset(self) -> int:
        """What to commit once ClickHouse accepted the batch: the next offset to read."""
        return self.last_offset + 1

    def record(self, rows: int) -> BatchRecord:
        return BatchRecord(self.tp, self.first_offset, self.last_offset, rows, self.token)


def _columns(records: Iterable[RecordLike]) -> tuple[list[int], list[bytes | None]]:
    records = records if isinstance(records, list) else list(records)
    return list(map(_OFFSET, records)), list(map(_VALUE, records))


def batch_token(tp: TopicPartition, first: int, last: int, records: Sequence[RecordLike]) -> str:
    """The insert_deduplication_token of a batch.

    The range makes a replay of the same batch carry the same token. The digest of the raw
    values makes a *different* batch with the same range (a topic deleted and recreated, offsets
    starting again at 0) carry a different token, so it is not silently dropped as a duplicate.
    """
    offsets, values = _columns(records)
    return _token(tp, first, last, offsets, values)


def _token(
    tp: TopicPartition,
    first: int,
    last: int,
    offsets: list[int],
    values: list[bytes | None],
    joined_values: bytes | None = None,
) -> str:
    # C-level passes only (the sink's hot path): CRC-32s of the offsets, the lengths and the
    # values. Not a cryptographic digest, and it need not be: it only has to tell apart two
    # different batches that happen to share a range. Never change what it digests: a batch
    # recorded by an older sink must get the same token when a newer one replays it.
    packed = array("q", offsets).tobytes()
    if all(values):
        lengths = array("q", map(len, values)).tobytes()  # type: ignore[arg-type]
    else:
        lengths = array("q", [len(v) if v else -1 for v in values]).tobytes()
    if joined_values is None:
        joined_values = b"".join([v or b"" for v in values])
    digest = f"{zlib.crc32(packed + lengths):08x}{zlib.crc32(joined_values):08x}"
    return f"{TOKEN_PREFIX}:{tp.topic}:{tp.partition}:{first}-{last}:{digest}"


class ResumeKind(StrEnum):
    FRESH = "FRESH"  # nothing uncommitted was recorded: cut batches freely
    RECUT = "RECUT"  # uncommitted recorded batches: replay exactly their ranges first
    INCONSISTENT = "INCONSISTENT"  # a recorded range straddles the committed offset


@dataclass(frozen=True, slots=True)
class ResumePlan:
    kind: ResumeKind
    seek_to: int | None  # where to position the consumer; None = the committed/reset position
    cuts: tuple[int, ...]  # last offsets the next batches must end at, in order
    # (first, last) of a recorded range -> the token its insert carried (the first recorded).
    tokens: Mapping[tuple[int, int], str] = field(default_factory=dict)


def plan_resume(
    committed: int | None,
    recorded: Sequence[BatchRecord],
    *,
    log_start: int,
    log_end: int,
) -> ResumePlan:
    """How to resume a partition: which offsets the first batches must end at.

    `recorded` are the partition's recorded batches (any order, repeats allowed: a batch retried
    or replayed is recorded again). Batches are recorded in order before their inserts and
    committed in order after them, so the uncommitted ones form a chain starting at the committed
    offset; offsets between recorded ranges (batches that inserted nothing and were not recorded)
    get cuts of their own, so each recorded range is re-cut exactly.

    Ranges outside the partition's log `[log_start, log_end)` are ignored: deleted by retention,
    or left over from a topic that was deleted and created again.
    """
    tokens: dict[tuple[int, int], str] = {}
    for r in recorded:
        if r.first_offset >= log_start and r.last_offset < log_end:
            tokens.setdefault((r.first_offset, r.last_offset), r.token)
    ranges = sorted(tokens)
    seek_to: int | None = None
    if committed is None:
        if not ranges:
            return ResumePlan(ResumeKind.FRESH, None, ())
        # Never committed: the first batch began where the log began back then.
        position = seek_to = ranges[0][0]
    else:
        position = committed
    kind = ResumeKind.FRESH
    cuts: list[int] = []
    for first, last in ranges:
        if last < position:
            continue  # committed already
        if first > position:
            cuts.append(first - 1)
        elif first < position:
            kind = ResumeKind.INCONSISTENT  # cannot be re-cut exactly; realign at its end
        elif kind is ResumeKind.FRESH:
            kind = ResumeKind.RECUT
        cuts.append(last)
        position = last + 1
    if kind is ResumeKind.FRESH and cuts:
        kind = ResumeKind.RECUT
    return ResumePlan(kind, seek_to, tuple(cuts), tokens)


@dataclass(slots=True)
class _PartitionBuffer:
    next_start: int | None  # first offset of the next batch; None until the first record
    offsets: list[int] = field(default_factory=list)  # held records, column-wise (see Batch)
    values: list[bytes | None] = field(default_factory=list)
    oldest_at: float | None = None
    cuts: deque[int] = field(default_factory=deque)
    position: int | None = None  # the consumer's next offset, when known
    tokens: Mapping[tuple[int, int], str] = field(default_factory=dict)


class Batcher:
    """Buffers records per partition and cuts batches bounded by rows and by wait time."""

    def __init__(self, max_rows: int, max_wait_s: float) -> None:
        if max_rows < 1 or max_wait_s <= 0:
            raise ValueError("max_rows must be >= 1 and max_wait_s > 0")
        self.max_rows = max_rows
        self.max_wait_s = max_wait_s
        self._parts: dict[TopicPartition, _PartitionBuffer] = {}

    def assign(
        self,
        tp: TopicPartition,
        start: int | None,
        cuts: Iterable[int] = (),
        tokens: Mapping[tuple[int, int], str] | None = None,
    ) -> None:
        """Start (or restart) a partition at offset `start` with forced cut points, and the
        recorded tokens of the ranges they re-cut."""
        self._parts[tp] = _PartitionBuffer(
            next_start=start, cuts=deque(sorted(cuts)), tokens=dict(tokens or {})
        )

    def revoke(self, tp: TopicPartition) -> None:
        self._parts.pop(tp, None)

    def assigned(self) -> list[TopicPartition]:
        return list(self._parts)

    def waiting_for_cuts(self) -> list[TopicPartition]:
        """Partitions whose next batch must end at a forced cut point."""
        return [tp for tp, part in self._parts.items() if part.cuts]

    def buffered(self, tp: TopicPartition | None = None) -> int:
        if tp is not None:
            part = self._parts.get(tp)
            return len(part.offsets) if part else 0
        return sum(len(p.offsets) for p in self._parts.values())

    def add(self, tp: TopicPartition, records: Iterable[RecordLike], now: float) -> None:
        part = self._parts.get(tp)
        if part is None:
            raise KeyError(f"{tp} is not assigned")
        offsets, values = _columns(records)
        if not offsets:
            return
        first = offsets[0]
        if (
            part.next_start is not None
            and first >= part.next_start
            and (not part.offsets or first > part.offsets[-1])
        ):
            # The common case, without a step per record: one fetch of one partition is in
            # strictly increasing offset order (Kafka's), and it starts past everything held.
            if not part.offsets:
                part.oldest_at = now
            part.offsets += offsets
            part.values += values
            part.position = offsets[-1] + 1
            return
        for offset, value in zip(offsets, values, strict=True):
            if part.next_start is None:
                part.next_start = offset
            behind = part.offsets and offset <= part.offsets[-1]
            if offset < part.next_start or behind:
                continue  # a re-delivered record already in a batch or buffer
            if not part.offsets:
                part.oldest_at = now
            part.offsets.append(offset)
            part.values.append(value)
            part.position = offset + 1

    def note_position(self, tp: TopicPartition, position: int) -> None:
        """The consumer's position: lets a forced cut close over compacted (missing) offsets."""
        part = self._parts.get(tp)
        if part is not None and (part.position is None or position > part.position):
            part.position = position
            if part.next_start is None:
                part.next_start = position

    def cut(self, now: float, *, flush_all: bool = False) -> list[Batch]:
        """Every batch that is due: full, waited long enough, or at a forced cut point."""
        batches: list[Batch] = []
        for tp, part in self._parts.items():
            batches.extend(self._cut_partition(tp, part, now, flush_all))
        return batches

    def _cut_partition(
        self, tp: TopicPartition, part: _PartitionBuffer, now: float, flush_all: bool
    ) -> list[Batch]:
        out: list[Batch] = []
        while part.next_start is not None:
            while part.cuts and part.cuts[0] < part.next_start:
                part.cuts.popleft()  # a cut point already behind us
            if part.cuts:
                end = part.cuts[0]
                # A forced batch ends exactly at `end`: wait until the consumer is past it.
                if part.position is None or part.position <= end:
                    break
                part.cuts.popleft()
                out.append(self._take(tp, part, end, now, forced=True))
                continue
            if not part.offsets:
                break
            if len(part.offsets) >= self.max_rows:
                out.append(self._take(tp, part, part.offsets[self.max_rows - 1], now))
                continue
            waited = part.oldest_at is not None and now - part.oldest_at >= self.max_wait_s
            if flush_all or waited:
                out.append(self._take(tp, part, part.offsets[-1], now))
            break
        return out

    @staticmethod
    def _take(
        tp: TopicPartition, part: _PartitionBuffer, end: int, now: float, *, forced: bool = False
    ) -> Batch:
        assert part.next_start is not None
        n = bisect_right(part.offsets, end)  # held in increasing offset order
        offsets, part.offsets = part.offsets[:n], part.offsets[n:]
        values, part.values = part.values[:n], part.values[n:]
        batch = Batch(tp, part.next_start, end, offsets, values, forced)
        if forced:
            batch._token = part.tokens.get((part.next_start, end))
        part.next_start = end + 1
        part.oldest_at = now if part.offsets else None
        return batch


class RecentIds:
    """About the last `capacity` event ids seen, to drop events re-emitted upstream.

    The worker runs at-least-once: after a crash it re-emits events with the same deterministic
    id at new offsets. Batch tokens cannot catch those (different offsets); this can, within its
    capacity. Two generations of hashed ids: when the current one is full it becomes the previous
    one and the oldest generation is dropped, so memory stays bounded and every operation is O(1).
    Python's `hash` is randomised per process, which is fine: the ids never leave the process.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._generation = max(1, capacity // 2)
        self._current: set[int] = set()
        self._previous: set[int] = set()

    def __len__(self) -> int:
        return len(self._current | self._previous)

    def __contains__(self, event_id: str) -> bool:
        key = hash(event_id)
        return key in self._current or key in self._previous

    def add_all(self, event_ids: Iterable[str]) -> None:
        if self.capacity <= 0:
            return
        self._current.update(map(hash, event_ids))
        # Checked per batch, not per id: a generation may overshoot by one batch.
        if len(self._current) >= self._generation:
            self._previous, self._current = self._current, set()

    def discard_all(self, event_ids: Iterable[str]) -> None:
        """Forget ids remembered by `add_all` (rows that were not stored after all)."""
        keys = set(map(hash, event_ids))
        self._current -= keys
        self._previous -= keys

    def fresh_indexes(self, event_ids: Sequence[str]) -> list[int]:
        """Indexes of the ids neither seen before nor repeated earlier in `event_ids`.

        Does not remember them: call `add_all` once the batch is cut for good.
        """
        if self.capacity <= 0:
            return list(range(len(event_ids)))
        keys = list(map(hash, event_ids))
        current, previous = self._current, self._previous
        distinct = set(keys)
        unique = len(distinct) == len(keys)
        if unique and current.isdisjoint(distinct) and previous.isdisjoint(distinct):
            return list(range(len(keys)))  # the common case, in C
        keep = [i for i, k in enumerate(keys) if k not in current and k not in previous]
        if unique:
            return keep
        seen: set[int] = set()  # rare: the same id twice in one batch
        first_seen = []
        for i in keep:
            if keys[i] not in seen:
                seen.add(keys[i])
                first_seen.append(i)
        return first_seen
