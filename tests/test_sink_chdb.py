"""Embedded chDB, in this process: the deduplication facts the sink relies on, the migrations,
and the store's inserts into our schema. One chDB path per process at a time, so every test
closes its client before the next one opens another path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import clickhouse_connect
import pytest

from devkit.sample import sample_events
from sinks.batching import Record, TopicPartition, batch_token
from sinks.clickhouse import ClickHouseStore
from sinks.migrate import DEDUP_WINDOW, load_migrations, migrate, schema_version
from sinks.rows import SPECS, decode_batch, to_columns
from streams.core.contracts import to_json_bytes
from streams.core.errors import SinkError
from streams.core.settings import Settings


@pytest.fixture
def client(tmp_path: Any) -> Iterator[Any]:
    c = clickhouse_connect.get_client(dsn=f"chdb://{tmp_path / 'chdb'}")
    try:
        yield c
    finally:
        c.close()


def _dedup_case(
    c: Any, db: str, raw_window: int, mv_window: int, **settings: Any
) -> tuple[int, int]:
    c.command(f"CREATE DATABASE {db}")
    c.command(
        f"CREATE TABLE {db}.raw (k UInt64, m UInt8) ENGINE = MergeTree PARTITION BY m "
        f"ORDER BY k SETTINGS non_replicated_deduplication_window = {raw_window}"
    )
    c.command(
        f"CREATE TABLE {db}.agg (m UInt8, n UInt64) ENGINE = SummingMergeTree ORDER BY m "
        f"SETTINGS non_replicated_deduplication_window = {mv_window}"
    )
    c.command(
        f"CREATE MATERIALIZED VIEW {db}.mv TO {db}.agg AS "
        f"SELECT m, count() AS n FROM {db}.raw GROUP BY m"
    )
    for _ in range(2):  # the same batch twice, as a replay after a crash would send it
        c.insert(
            f"{db}.raw",
            [[1, 1], [2, 2]],
            column_names=["k", "m"],
            settings={"insert_deduplication_token": "batch-1", **settings},
        )
    raw = c.query(f"SELECT count() FROM {db}.raw").result_rows[0][0]
    agg = c.query(f"SELECT sum(n) FROM {db}.agg").result_rows[0][0]
    return int(raw), int(agg)


def test_dedup_facts_measured_on_chdb(client: Any) -> None:
    """chDB deduplication, measured: each line is (raw rows, MV-target rows) after a replay."""
    assert _dedup_case(client, "no_window", 0, 0) == (4, 4)  # the token alone does nothing
    # The raw table drops the replay, but it is STILL pushed through the MV.
    assert _dedup_case(client, "raw_only", 100, 0) == (2, 4)
    assert _dedup_case(client, "both", 100, 100) == (2, 2)  # every target needs its window
    # ... and the setting that deduplicates dependent views must stay on (it is by default).
    off = {"deduplicate_blocks_in_dependent_materialized_views": 0}
    assert _dedup_case(client, "mv_setting_off", 100, 100, **off) == (2, 4)
    default = client.query(
        "SELECT value FROM system.settings "
        "WHERE name = 'deduplicate_blocks_in_dependent_materialized_views'"
    ).result_rows
    assert default == [("1",)]


def test_token_dedup_is_per_partition(client: Any) -> None:
    """A replay that adds a partition the first attempt never wrote inserts just that part."""
    client.command("CREATE DATABASE p")
    client.command(
        "CREATE TABLE p.raw (k UInt64, m UInt8) ENGINE = MergeTree PARTITION BY m "
        "ORDER BY k SETTINGS non_replicated_deduplication_window = 100"
    )
    token = {"insert_deduplication_token": "t"}
    client.insert("p.raw", [[1, 1]], column_names=["k", "m"], settings=token)
    client.insert("p.raw", [[1, 1], [2, 2]], column_names=["k", "m"], settings=token)
    assert client.query("SELECT m, count() FROM p.raw GROUP BY m ORDER BY m").result_rows == [
        (1, 1),
        (2, 1),
    ]


@pytest.fixture
def store(settings: Settings) -> Iterator[ClickHouseStore]:
    s = ClickHouseStore(settings)
    try:
        yield s
    finally:
        s.close()


def test_migrations_are_versioned_and_idempotent(
    store: ClickHouseStore, settings: Settings
) -> None:
    assert migrate(store, settings) == [
        f"applied {m.version:03d}_{m.name}" for m in load_migrations()
    ]
    assert migrate(store, settings) == []
    assert schema_version(store) == max(m.version for m in load_migrations())
    tables = {
        r["name"]
        for r in store.query("SELECT name FROM system.tables WHERE database = 'proofrecon'")
    }
    assert {
        "discrepancies",
        "discrepancy_hourly",
        "proof_checks_hourly",
        "preflight_results",
        "reconciliation_actions",
        "severity_rates_hourly",
        "severity_hourly",
        "sink_batches",
    } <= tables
    engine = store.query(
        "SELECT engine_full FROM system.tables WHERE database = 'proofrecon' "
        "AND name = 'discrepancy_hourly'"
    )[0]["engine_full"]
    assert f"non_replicated_deduplication_window = {DEDUP_WINDOW}" in engine


def test_ttl_follows_settings(
    store: ClickHouseStore, make_settings: Callable[..., Settings]
) -> None:
    migrate(store, make_settings())
    lines = migrate(store, make_settings(clickhouse={"ttl_days": 30, "hourly_ttl_days": 90}))
    assert "ttl discrepancies: 400 -> 30 days" in lines
    assert "ttl discrepancy_hourly: 1825 -> 90 days" in lines
    engine = store.query(
        "SELECT engine_full FROM system.tables WHERE database = 'proofrecon' "
        "AND name = 'discrepancies'"
    )[0]["engine_full"]
    assert "toIntervalDay(30)" in engine


def test_changed_migration_is_refused(store: ClickHouseStore, settings: Settings) -> None:
    migrate(store, settings)
    store.command(
        "ALTER TABLE proofrecon.schema_migrations UPDATE checksum = 'x' WHERE 1 "
        "SETTINGS mutations_sync = 1"
    )
    with pytest.raises(SinkError, match="changed after it was applied"):
        migrate(store, settings)


def test_replayed_batch_adds_nothing_to_any_table(
    store: ClickHouseStore, settings: Settings
) -> None:
    from datetime import UTC, datetime, timedelta

    migrate(store, settings)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    sample = sample_events(start=start, hours=2, mints=["http://m.test"], per_hour=25, seed=9)
    spec = SPECS["discrepancies"]
    records = [Record(i, to_json_bytes(e)) for i, e in enumerate(sample.discrepancies)]
    decoded = decode_batch(spec, records)
    columns = to_columns(spec, decoded.rows, decoded.offsets, "topic", 0)
    tp = TopicPartition("topic", 0)
    token = batch_token(tp, 0, len(records) - 1, records)
    for _ in range(3):
        store.insert_columns(spec.table, columns, spec.insert_types, token=token)
    raw = store.query("SELECT count() AS n, uniqExact(event_id) AS u FROM proofrecon.discrepancies")
    assert raw == [{"n": 50, "u": 50}]
    hourly = store.query(
        "SELECT sum(discrepancies) + sum(resolved) AS n FROM proofrecon.discrepancy_hourly"
    )
    assert hourly == [{"n": 50}]


def test_migration_002_backfills_the_severity_rates_once(
    store: ClickHouseStore, settings: Settings
) -> None:
    """A database at version 1 with data: after 002 the view answers exactly as before, from
    the pre-aggregated table; a 002 run again (as after a run cut short) adds nothing."""
    from datetime import UTC, datetime, timedelta

    from sinks.migrate import placeholders

    first = load_migrations()[0]
    store.command("CREATE DATABASE IF NOT EXISTS proofrecon")
    store.command(
        "CREATE TABLE proofrecon.schema_migrations (version UInt32, name String, "
        "checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = MergeTree ORDER BY version"
    )
    for statement in first.statements(placeholders(settings, "proofrecon")):
        store.command(statement)
    store.command(
        "INSERT INTO proofrecon.schema_migrations (version, name, checksum) VALUES "
        f"(1, '{first.name}', '{first.checksum}')"
    )
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    sample = sample_events(start=start, hours=3, mints=["http://a.test"], per_hour=20, seed=3)
    for kind, events in (
        ("discrepancies", sample.discrepancies),
        ("proof_checks", sample.proof_checks),
    ):
        spec = SPECS[kind]
        decoded = decode_batch(spec, [Record(i, to_json_bytes(e)) for i, e in enumerate(events)])
        columns = to_columns(spec, decoded.rows, decoded.offsets, "t", 0)
        store.insert_columns(spec.table, columns, spec.insert_types, token=f"v1-{kind}")
    view = "SELECT * FROM proofrecon.severity_rates_hourly ORDER BY hour, mint_url, severity"
    before = store.query(view)
    assert before and any(r["discrepancies"] for r in before)

    assert migrate(store, settings) == [
        "applied 002_severity_hourly",
        "applied 003_severity_rates_final",
    ]
    assert store.query(view) == before
    store.command(
        "ALTER TABLE proofrecon.schema_migrations DELETE WHERE version = 2 "
        "SETTINGS mutations_sync = 1"
    )
    assert migrate(store, settings) == ["applied 002_severity_hourly"]
    assert store.query(view) == before
