"""The sink's fast path (ClickHouse parses and checks the raw values) against its slow path
(pydantic validation, column-wise insert), on embedded chDB: the same stored values, the same
records kept out, replays deduplicated across the two paths, and no `secret` stored.

One chDB path per process at a time: every test closes its store before the next one opens.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from devkit.sample import SampleSet, sample_events
from sinks.batching import Record
from sinks.clickhouse import SCRATCH_DIR, ClickHouseStore, RejectedBatch, chdb_path
from sinks.migrate import migrate
from sinks.rows import (
    SPECS,
    JsonSource,
    RowSpec,
    decode_batch,
    fast_ids,
    fast_path_values,
    json_insert_sql,
    to_columns,
)
from streams.core.contracts import to_json_dict
from streams.core.settings import Settings

FIRST_OFFSET = 100
TOPIC = "recon.test"
SECRET = "never-store-this-secret-" + "5e" * 16

# kind -> the SampleSet attribute holding its events, and its timestamp field
KINDS = {
    "discrepancies": ("discrepancies", "detected_at"),
    "proof_checks": ("proof_checks", "checked_at"),
    "preflight_results": ("preflights", "answered_at"),
    "corrections": ("corrections", "issued_at"),
}
# Spellings of one instant the fast path parses itself (ISO-8601 with a zone).
TIMESTAMPS = [
    "2026-01-05T10:00:00Z",
    "2026-01-05T10:00:00.1Z",
    "2026-01-05T10:00:00.999999Z",
    "2026-01-05T15:30:00.123456+05:30",
    "2026-01-05T02:00:00.5-08:00",
    "2026-01-05T10:00:00.123+00:00",
]


@pytest.fixture(scope="module")
def sample() -> SampleSet:
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)
    return sample_events(
        start=start, hours=2, mints=["http://m1.test", "https://m2.test:3338"], per_hour=6, seed=8
    )


@pytest.fixture
def store(settings: Settings) -> Iterator[ClickHouseStore]:
    s = ClickHouseStore(settings)
    migrate(s, settings)
    try:
        yield s
    finally:
        s.close()


def compact(event: dict[str, Any]) -> bytes:
    """The worker's spelling: compact JSON, fields in contract order (the id first)."""
    return json.dumps(event, separators=(",", ":")).encode()


def wire(sample: SampleSet, kind: str) -> list[dict[str, Any]]:
    attr, ts_field = KINDS[kind]
    events = [to_json_dict(e) for e in getattr(sample, attr)]
    for i, event in enumerate(events):
        event[ts_field] = TIMESTAMPS[i % len(TIMESTAMPS)]
    return events


def records_of(values: list[bytes], first: int = FIRST_OFFSET) -> list[Record]:
    return [Record(first + i, v) for i, v in enumerate(values)]


def stored(store: ClickHouseStore, spec: RowSpec) -> list[dict[str, Any]]:
    table = store.table(spec.table)
    return store.query(f"SELECT * EXCEPT _ingested_at FROM {table} ORDER BY _offset")


def assert_severity_rates_agree(store: ClickHouseStore) -> None:
    """The pre-aggregated severity table holds the OPENED counts of the hourly table, once."""
    rates = store.query("SELECT sum(discrepancies) AS n FROM proofrecon.severity_hourly")
    hourly = store.query("SELECT sum(discrepancies) AS n FROM proofrecon.discrepancy_hourly")
    assert rates == hourly


def count(store: ClickHouseStore, table: str) -> int:
    return int(store.query(f"SELECT count() AS n FROM {store.table(table)}")[0]["n"])


def slow_insert(store: ClickHouseStore, spec: RowSpec, records: list[Record], token: str) -> int:
    decoded = decode_batch(spec, records)
    columns = to_columns(spec, decoded.rows, decoded.offsets, TOPIC, 1)
    return store.insert_columns(spec.table, columns, spec.insert_types, token=token)


def fast_insert(
    store: ClickHouseStore,
    spec: RowSpec,
    values: list[bytes],
    token: str,
    *,
    spliced: bool = False,
    first: int = FIRST_OFFSET,
) -> int:
    if spliced:  # what a server gets, and chDB when the offsets have gaps
        from sinks.rows import splice_offsets

        body = splice_offsets(values, [first + i for i in range(len(values))])
        first_offset = None
    else:
        body, first_offset = b"".join(values), first
    return store.insert_json(
        spec,
        body,
        topic=TOPIC,
        partition=1,
        rows=len(values),
        first_offset=first_offset,
        token=token,
    )


@pytest.mark.parametrize("kind", list(KINDS))
def test_fast_and_slow_paths_store_the_same_rows(
    store: ClickHouseStore, sample: SampleSet, kind: str
) -> None:
    spec = SPECS[kind]
    values = [compact(e) for e in wire(sample, kind)]
    assert slow_insert(store, spec, records_of(values), "slow") == len(values)
    want = stored(store, spec)
    assert len(want) == len(values)
    for n, spliced in enumerate((False, True)):
        store.command(f"TRUNCATE TABLE {store.table(spec.table)}")
        fast_insert(store, spec, values, f"fast-{n}", spliced=spliced)
        assert stored(store, spec) == want, f"spliced={spliced}"


# Records ClickHouse refuses and pydantic refuses too: bad records either way.
BAD: dict[str, Any] = {
    "unknown enum": {"severity": "CRITICAL"},
    "missing field": {"type": None},  # None: remove the key
    "null required field": {"amount": None, "_keep_null": True},
    "string for a number": {"amount": "not-a-number"},
    "bool for a number": {"amount": True},
    "number for a string": {"npub": 12345},
    "object for a string": {"keyset_id": {"a": 1}},
    "negative amount": {"amount": -4},
    "zero amount": {"amount": 0},
    "whitespace in an id": {"npub": "npub with spaces"},
    "short Y": {"Y": "02abc"},
    "impossible hour": {"detected_at": "2026-01-05T25:00:00Z"},
    "impossible date": {"detected_at": "2026-02-30T10:00:00Z"},
    "no time zone": {"detected_at": "2026-01-05T10:00:00"},
    "not a URL": {"mint_url": "ftp://mint.test"},
}
# Records ClickHouse refuses (not in canonical form) and pydantic accepts: stored normalised.
NON_CANONICAL: dict[str, dict[str, Any]] = {
    "upper-case Y": {"Y": "UPPER"},
    "trailing slash": {"mint_url": "http://m1.test/"},
    "epoch milliseconds": {"detected_at": 1767607200123},
}


def _variant(event: dict[str, Any], change: dict[str, Any]) -> bytes:
    event = dict(event)
    keep_null = change.pop("_keep_null", False) if "_keep_null" in change else False
    for key, value in change.items():
        if value is None and not keep_null:
            event.pop(key)
        elif value == "UPPER":
            event[key] = event[key].upper().replace("0X", "0x")
        else:
            event[key] = value
    return compact(event)


@pytest.mark.parametrize("case", list(BAD) + list(NON_CANONICAL))
def test_fast_path_rejects_the_whole_batch_and_writes_nothing(
    store: ClickHouseStore, sample: SampleSet, case: str
) -> None:
    spec = SPECS["discrepancies"]
    events = wire(sample, "discrepancies")[:3]
    change = dict(BAD.get(case) or NON_CANONICAL[case])
    values = [compact(events[0]), _variant(events[1], change), compact(events[2])]
    assert fast_path_values(values) is not None, "reaches ClickHouse"
    with pytest.raises(RejectedBatch):
        fast_insert(store, spec, values, "t")
    assert count(store, "discrepancies") == 0 and count(store, "discrepancy_hourly") == 0
    decoded = decode_batch(spec, records_of(values))
    if case in BAD:
        assert [b.offset for b in decoded.bad] == [FIRST_OFFSET + 1]
    else:
        assert decoded.bad == [] and len(decoded.rows) == 3


def test_two_objects_in_one_value_are_refused(store: ClickHouseStore, sample: SampleSet) -> None:
    spec = SPECS["discrepancies"]
    a, b = (compact(e) for e in wire(sample, "discrepancies")[:2])
    # Row numbers would shift every later offset; spliced offsets would leave one row without.
    for spliced in (False, True):
        with pytest.raises(RejectedBatch):
            fast_insert(store, spec, [a + b, a], f"two-{spliced}", spliced=spliced)
    assert count(store, "discrepancies") == 0


def test_a_rejected_batch_then_its_slow_path_and_replays_count_once(
    store: ClickHouseStore, sample: SampleSet
) -> None:
    spec = SPECS["discrepancies"]
    events = wire(sample, "discrepancies")
    values = [compact(e) for e in events]
    values[4] = _variant(events[4], {"severity": "CRITICAL"})
    records = records_of(values)
    for _ in range(2):  # the first attempt, then its replay after a crash: same path, same token
        with pytest.raises(RejectedBatch):
            fast_insert(store, spec, values, "batch-7")
        slow_insert(store, spec, records, "batch-7")
    rows = stored(store, spec)
    assert len(rows) == len(values) - 1
    assert FIRST_OFFSET + 4 not in {r["_offset"] for r in rows}
    hourly = store.query(
        "SELECT sum(discrepancies) + sum(resolved) AS n FROM proofrecon.discrepancy_hourly"
    )
    assert hourly == [{"n": len(values) - 1}]
    assert_severity_rates_agree(store)


def test_replays_are_deduplicated_across_paths(store: ClickHouseStore, sample: SampleSet) -> None:
    """A batch inserted by one path and replayed by the other (an upgrade between a crash and
    its replay, or a fast insert that failed for a passing reason) still counts once."""
    spec = SPECS["discrepancies"]
    values = [compact(e) for e in wire(sample, "discrepancies")]
    fast_insert(store, spec, values, "fast-first")
    slow_insert(store, spec, records_of(values), "fast-first")
    fast_insert(store, spec, values, "fast-first", spliced=True)
    slow_insert(store, spec, records_of(values, 500), "slow-first")
    fast_insert(store, spec, values, "slow-first", first=500)
    raw = store.query("SELECT count() AS n, uniqExact(_offset) AS u FROM proofrecon.discrepancies")
    assert raw == [{"n": 2 * len(values), "u": 2 * len(values)}]
    hourly = store.query(
        "SELECT sum(discrepancies) + sum(resolved) AS n FROM proofrecon.discrepancy_hourly"
    )
    assert hourly == [{"n": 2 * len(values)}]
    assert_severity_rates_agree(store)


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_secret_field_never_reaches_clickhouse(
    store: ClickHouseStore, sample: SampleSet, kind: str
) -> None:
    spec = SPECS[kind]
    events = wire(sample, kind)[:4]
    events[0]["secret"] = SECRET
    events[1] = {**events[1], "proof": {"secret": SECRET, "amount": 1}}
    values = [compact(e) for e in events]
    fast_insert(store, spec, values, "with-secret")
    assert count(store, spec.table) == 4
    table = store.table(spec.table)
    dump = store.raw(f"SELECT * FROM {table}", "JSONEachRow")
    assert SECRET.encode() not in dump
    scratch = chdb_path(store.url) / SCRATCH_DIR
    assert not list(scratch.glob("*")), "the batch file (raw values) is removed after its insert"


def test_server_statement_reads_the_body_with_input() -> None:
    spec = SPECS["discrepancies"]
    sql = json_insert_sql(
        spec,
        "proofrecon.discrepancies",
        JsonSource(None),
        topic="recon.discrepancies",
        partition=2,
        rows=3,
        first_offset=None,
        settings={"insert_deduplication_token": "t'1"},
    )
    assert "FROM input('`event_id` String," in sql and "`_offset` UInt64')" in sql
    assert sql.endswith(" FORMAT JSONEachRow")
    assert "insert_deduplication_token = 't\\'1'" in sql  # quoted, never pasted raw
    assert "_row_number" not in sql


def test_values_the_fast_path_leaves_to_the_slow_one() -> None:
    spec = SPECS["discrepancies"]
    good = b'{"event_id":"e-1","amount":1}'
    assert fast_path_values([good]) == good
    assert fast_ids(spec, [good]) == ["e-1"]
    for value in (
        b'{"event_id":"e-1"} ',  # trailing whitespace
        b'["e-1"]',  # not an object
        b"{\xff}",  # not UTF-8
    ):
        assert fast_path_values([good, value]) is None, value
    for value in (
        b'{"amount":1,"event_id":"e-1"}',  # the id is not first
        b'{"event_id": "e-1"}',  # not compact
        b'{"event_id":"e\\"1"}',  # an escape inside the id
        b'{"event_id":1}',  # not a string
    ):
        assert fast_ids(spec, [good, value]) is None, value


def test_scratch_leftovers_are_removed(settings: Settings, tmp_path: Path) -> None:
    scratch = chdb_path(settings.clickhouse_url) / SCRATCH_DIR
    scratch.mkdir(parents=True)
    (scratch / "crashed.json").write_bytes(b'{"secret":"left by a crash"}')
    s = ClickHouseStore(settings)
    try:
        migrate(s, settings)
        spec = SPECS["proof_checks"]
        body = b'{"event_id":"c1","checked_at":"2026-01-05T10:00:00Z","mint_url":"http://m.test",'
        body += b'"source":"sweep","proofs_checked":5,"npub":null,"request_id":null}'
        s.insert_json(spec, body, topic=TOPIC, partition=0, rows=1, first_offset=0)
    finally:
        s.close()
    assert not list(scratch.glob("*"))


@pytest.mark.stack
@pytest.mark.slow
async def test_sink_service_fast_path_with_bad_records(
    settings: Settings, kafka_bootstrap: str, sample: SampleSet, caplog: pytest.LogCaptureFixture
) -> None:
    """Through Kafka: the good records of a rejected batch are stored, the bad one is counted and
    logged without its value, the non-canonical one is stored normalised, no secret is stored."""
    import asyncio
    import logging

    from devkit.processes import sink_offsets as offsets
    from sinks.service import ClickHouseSinkService
    from streams.core.kafka import ensure_topics
    from tests.test_sink_support import produce

    caplog.set_level(logging.INFO, logger="proofrecon.sink")
    await ensure_topics(settings)
    topic = settings.topics.discrepancies
    events = wire(sample, "discrepancies")
    values = [compact(e) for e in events]
    values[3] = _variant(events[3], {"severity": "CRITICAL"})
    values[5] = _variant(events[5], {"Y": "UPPER"})
    values[7] = compact({**events[7], "secret": SECRET})
    messages = [(topic, b"npub%d" % (i % 3), v) for i, v in enumerate(values)]
    messages.append((topic, b"npub0", b""))
    await produce(settings, messages)

    sink = ClickHouseSinkService(settings)
    await sink.start()
    try:
        for _ in range(240):
            ends, committed = await offsets(settings)
            if ends["discrepancies"] and ends == committed:
                break
            await asyncio.sleep(0.25)
        else:
            raise AssertionError(f"not all committed: {sink.stats.as_dict()}")
        stats = sink.stats.as_dict()
    finally:
        await sink.stop()
    assert stats["bad_records"] == 2  # CRITICAL and the empty value
    assert stats["slow_batches"] >= 1 and stats["retries"] == 0
    store = ClickHouseStore(settings)
    try:
        rows = store.query("SELECT event_id, Y FROM proofrecon.discrepancies")
        dump = store.raw("SELECT * FROM proofrecon.discrepancies", "JSONEachRow")
    finally:
        store.close()
    want = {e["event_id"] for i, e in enumerate(events) if i != 3}
    assert {r["event_id"] for r in rows} == want and len(rows) == len(want)
    upper = next(r["Y"] for r in rows if r["event_id"] == events[5]["event_id"])
    assert upper.decode() == events[5]["Y"].lower()
    assert SECRET.encode() not in dump
    text = caplog.text
    assert "clickhouse rejected a batch" in text and "sink skipped a bad record" in text
    assert "CRITICAL" not in text and SECRET not in text
