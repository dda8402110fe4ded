"""The sink's journal in ClickHouse: each batch's range and token, recorded before its insert
(`sink_batches`), read back after a restart to re-cut the uncommitted batches exactly; and the
recent event ids of a partition, to drop events re-emitted upstream (docs/ARCHITECTURE.md, "The
sink's no-double-counting protocol"). Blocking calls: run them on the store's thread."""

from __future__ import annotations

from sinks.batching import BatchRecord, TopicPartition
from sinks.clickhouse import ClickHouseStore
from sinks.rows import RowSpec, sql_string

RECENT_LOOKBACK_S = 3600
BATCH_RECORD_COLUMNS = (
    "group_id",
    "topic",
    "partition",
    "first_offset",
    "last_offset",
    "rows",
    "token",
)


def record_batches(store: ClickHouseStore, group_id: str, records: list[BatchRecord]) -> None:
    # A plain INSERT ... VALUES: a few rows, and no insert machinery to spin up for them
    # (clickhouse-connect's column inserts go through a file and a producer thread).
    values = ", ".join(
        f"({sql_string(group_id)}, {sql_string(r.tp.topic)}, {int(r.tp.partition)}, "
        f"{int(r.first_offset)}, {int(r.last_offset)}, {int(r.rows)}, {sql_string(r.token)})"
        for r in records
    )
    store.command(
        f"INSERT INTO {store.table('sink_batches')} "  # noqa: S608 - literals escaped
        f"({', '.join(BATCH_RECORD_COLUMNS)}) VALUES {values}"
    )


def recorded_batches(
    store: ClickHouseStore, group_id: str, tp: TopicPartition, committed: int | None
) -> list[BatchRecord]:
    """The partition's batches recorded at or after `committed` (inserted, maybe not committed)."""
    rows = store.query(
        f"SELECT first_offset, last_offset, rows, token FROM {store.table('sink_batches')} "  # noqa: S608
        "WHERE group_id = {g:String} AND topic = {t:String} AND partition = {p:UInt32} "
        "AND last_offset >= {c:UInt64} ORDER BY last_offset LIMIT 10000",
        {"g": group_id, "t": tp.topic, "p": tp.partition, "c": committed or 0},
    )
    return [
        BatchRecord(
            tp, int(r["first_offset"]), int(r["last_offset"]), int(r["rows"]), str(r["token"])
        )
        for r in rows
    ]


def recent_ids(
    store: ClickHouseStore, spec: RowSpec, tp: TopicPartition, start: int, capacity: int
) -> list[str]:
    """Up to `capacity` ids stored from the partition just before `start`, oldest first."""
    if capacity <= 0:
        return []
    rows = store.query(
        f"SELECT {spec.id_field} AS id FROM {store.table(spec.table)} "  # noqa: S608
        "WHERE _topic = {t:String} AND _partition = {p:UInt32} AND _offset < {o:UInt64} "
        "AND _ingested_at > now64(3) - toIntervalSecond({s:UInt32}) "
        "ORDER BY _offset DESC LIMIT {n:UInt32}",
        {"t": tp.topic, "p": tp.partition, "o": start, "s": RECENT_LOOKBACK_S, "n": capacity},
    )
    return [str(r["id"]) for r in reversed(rows)]
