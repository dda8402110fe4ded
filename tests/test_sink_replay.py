"""No double counting: SIGKILL the sink after ClickHouse accepted a batch and before the offset
commit, restart it, and every table (raw and hourly) holds each distinct event exactly once.

The test hook `PROOFRECON_TEST_SINK_PAUSE_AFTER_INSERT` makes the sink create a file and wait
right there, so the kill lands exactly between the insert and the commit.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from devkit.sample import sample_events
from sinks.service import PAUSE_AFTER_INSERT_ENV
from streams.core.kafka import ensure_topics
from streams.core.settings import Settings
from tests.test_sink_support import (
    SinkProcess,
    all_committed,
    expected_counts,
    nothing_committed,
    produce,
    sample_messages,
    sink_processes,
    table_counts,
    wait_for,
)

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def test_kill_between_insert_and_commit_then_restart(
    make_settings: Callable[..., Settings],
    kafka_bootstrap: str,
    tmp_path: Path,
    sink_processes: list[SinkProcess],
) -> None:
    # Small batches before the crash, big ones after: only re-cutting the recorded ranges makes
    # the replayed inserts match the first ones (same content, same token).
    settings = make_settings(clickhouse={"batch_max_rows": 7})
    restarted = make_settings(clickhouse={"batch_max_rows": 10_000})
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    # Hours in two months' partitions too: a replay must be dropped in every partition it spans.
    first = sample_events(start=start, hours=2, mints=["http://m1.test"], per_hour=40, seed=1)
    old = sample_events(
        start=start - timedelta(days=40), hours=1, mints=["http://m1.test"], per_hour=10, seed=2
    )
    for name in ("discrepancies", "proof_checks", "preflights", "corrections"):
        getattr(first, name).extend(getattr(old, name))
    asyncio.run(ensure_topics(settings))
    asyncio.run(produce(settings, sample_messages(settings, first)))

    hook = tmp_path / "paused"
    log = tmp_path / "sink.log"
    sink = SinkProcess(settings, log, {PAUSE_AFTER_INSERT_ENV: str(hook)})
    sink_processes.append(sink)
    sink.start()
    wait_for(hook.exists, 60, "the sink to pause after its first insert")
    inserted = httpx.get(f"{sink.url}/v1/analytics/export/discrepancies", timeout=30)
    rows_before_kill = pq.read_table(io.BytesIO(inserted.content)).num_rows
    assert rows_before_kill > 0, "the paused batch was inserted"
    assert nothing_committed(settings), "and not committed"
    sink.kill()

    # Restart (the hook file exists, so it does not pause again) and add more events.
    sink = SinkProcess(restarted, log)
    sink_processes.append(sink)
    sink.start()
    later = sample_events(start=start, hours=2, mints=["http://m2.test"], per_hour=10, seed=3)
    asyncio.run(produce(settings, sample_messages(settings, later)))
    wait_for(lambda: all_committed(settings), 60, "every offset committed after the restart")
    status = sink.status()
    assert status["replayed_batches"] > 0
    assert sink.stop() == 0
    assert "sink re-cutting recorded batches" in log.read_text()

    for name in ("discrepancies", "proof_checks", "preflights", "corrections"):
        getattr(first, name).extend(getattr(later, name))
    counts = table_counts(settings)
    want = expected_counts(first)
    assert {k: counts[k] for k in want} == want


__all__ = ["sink_processes"]  # the fixture, imported for pytest
