"""Kafka → ClickHouse sink throughput, against raw inserts of the same rows without Kafka.

    .venv/bin/python -m bench sink [--quick]
    .venv/bin/python -m bench.bench_sink [--rows 1000000]

Target (README, "Figures"): >= 200,000 rows/s per worker and >= 1.2x plain inserts of the same rows.

1. Build `--rows` canonical discrepancy events (through the contract models, then varied) and
   produce them to a fresh 6-partition topic, before any timing.
2. Baseline: the same rows, already decoded in memory, inserted with plain clickhouse-connect
   (`client.insert`, 10,000-row batches, default types) into the same schema in a fresh embedded
   chDB: the ceiling of what any sink could do here, with no Kafka, validation or bookkeeping.
3. Sink: `ClickHouseSinkService` (the code the worker runs) in this process, on another fresh
   chDB path, reads the topic and inserts; the rate is taken from its first inserted batch to the
   last committed offset, so start-up and migrations are not counted against it.
The ratio is sink / baseline. One chDB path per process: the baseline closes its client first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import clickhouse_connect

from bench.common import (
    BenchResult,
    at_least,
    bench_settings,
    check_stack,
    delete_run_topics,
    format_table,
    machine,
    new_run_id,
    produce_all,
    ratio,
    say,
    scratch_dir,
    write_json,
)
from devkit.processes import sink_offsets as offsets
from devkit.sample import sample_events
from sinks.batching import Record
from sinks.clickhouse import ClickHouseStore
from sinks.migrate import migrate
from sinks.rows import SPECS, decode_batch, to_columns
from sinks.service import ClickHouseSinkService
from streams.core.contracts import to_json_dict
from streams.core.kafka import ensure_topics
from streams.core.settings import Settings

TARGET_ROWS_PER_S = 200_000
TARGET_RATIO = 1.2  # over plain clickhouse-connect inserts of the same rows, same run
BATCH = 10_000


def build_values(n: int) -> list[bytes]:
    """`n` distinct canonical discrepancy events as Kafka values."""
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=24)
    mints = [f"https://mint{i}.example" for i in range(5)]
    base = sample_events(start=start, hours=24, mints=mints, per_hour=10, seed=11).discrepancies
    templates = [to_json_dict(e) for e in base]
    values = []
    for i in range(n):
        event = dict(templates[i % len(templates)])
        event["event_id"] = f"bench-{i}"
        values.append(json.dumps(event, separators=(",", ":")).encode())
    return values


def baseline_rows_per_s(settings: Settings, values: list[bytes]) -> float:
    """Plain clickhouse-connect inserts of the decoded rows (decoding not timed)."""
    store = ClickHouseStore(settings)
    migrate(store, settings)
    store.close()
    spec = SPECS["discrepancies"]
    batches = []
    for s in range(0, len(values), BATCH):
        records = [Record(s + i, v) for i, v in enumerate(values[s : s + BATCH])]
        decoded = decode_batch(spec, records)
        batches.append(to_columns(spec, decoded.rows, decoded.offsets, "baseline", 0))
    client = clickhouse_connect.get_client(dsn=settings.clickhouse_url)
    try:
        table = f"{settings.clickhouse.database}.{spec.table}"
        started = time.perf_counter()
        for columns in batches:
            client.insert(
                table, list(columns.values()), column_names=list(columns), column_oriented=True
            )
        elapsed = time.perf_counter() - started
    finally:
        client.close()
    return len(values) / elapsed


async def sink_rows_per_s(settings: Settings, total: int) -> tuple[float, dict[str, Any]]:
    sink = ClickHouseSinkService(settings)
    await sink.start()
    first_at: float | None = None
    first_rows = 0
    try:
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            rows = sum(sink.stats.rows_inserted.values())
            if first_at is None and rows:
                first_at, first_rows = time.perf_counter(), rows
            if rows >= total:
                ends, committed = await offsets(settings)
                if ends == committed:
                    break
            await asyncio.sleep(0.02)
        done_at = time.perf_counter()
    finally:
        await sink.stop()
    if first_at is None:
        raise RuntimeError("the sink inserted nothing")
    return (total - first_rows) / (done_at - first_at), sink.stats.as_dict()


async def run(quick: bool, rows: int | None = None) -> BenchResult:
    await check_stack()
    n = rows or (200_000 if quick else 1_000_000)
    run_id = new_run_id()
    with scratch_dir("sink") as tmp:
        base = bench_settings(run_id, tmp / "baseline")
        # A backlog's throughput: the time bound only adds a tail wait for the last partial
        # batches, so it is kept short here (production's default is for small traffic).
        settings = bench_settings(
            run_id, tmp / "sink", themes={"clickhouse": {"batch_max_wait_s": 1.0}}
        )
        await ensure_topics(settings)
        try:
            say(f"building {n:,} events")
            values = build_values(n)
            say("producing them")
            await produce_all(
                settings,
                settings.topics.discrepancies,
                ((b"npub%d" % (i % 997), v) for i, v in enumerate(values)),
            )
            say("baseline: raw clickhouse-connect inserts")
            baseline = baseline_rows_per_s(base, values)
            say("sink: Kafka -> ClickHouseSinkService -> chDB")
            rate, stats = await sink_rows_per_s(settings, n)
        finally:
            await delete_run_topics(settings, run_id)
    result = BenchResult(
        name="sink",
        metric="Kafka -> ClickHouse rows/s",
        value=round(rate),
        unit="rows/s",
        baseline=round(baseline),
        ratio=ratio(rate, baseline),
        target=f">= {TARGET_ROWS_PER_S:,} rows/s and >= {TARGET_RATIO}x plain",
        passed=at_least(rate, TARGET_ROWS_PER_S) and at_least(ratio(rate, baseline), TARGET_RATIO),
        details={
            "rows": n,
            "batch_max_rows": settings.clickhouse.batch_max_rows,
            "baseline": "raw clickhouse-connect inserts, same rows, no Kafka",
            "sink_stats": stats,
            "machine": machine(),
        },
    )
    write_json("bench_sink", result.to_json())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(format_table([asyncio.run(run(args.quick, args.rows))]))


if __name__ == "__main__":
    main()
