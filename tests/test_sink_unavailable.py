"""ClickHouse unavailable for a while, then back: zero loss, zero duplicates, consumption resumed.

Two outages: embedded chDB made unavailable mid-run (`PROOFRECON_TEST_SINK_UNAVAILABLE`: while
its file exists every ClickHouse call fails as a refused connection would), and a ClickHouse
server URL that refuses connections (a real transport error), after which the sink comes back
on a working engine with the same consumer group.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devkit.mints import free_port
from devkit.processes import sink_offsets
from devkit.sample import SampleSet, sample_events
from sinks.clickhouse import UNAVAILABLE_HOOK_ENV
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


def _sample(seed: int, mint: str) -> SampleSet:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    return sample_events(start=start, hours=1, mints=[mint], per_hour=30, seed=seed)


def _merge(*samples: SampleSet) -> SampleSet:
    out = SampleSet()
    for s in samples:
        for name in ("discrepancies", "proof_checks", "preflights", "corrections"):
            getattr(out, name).extend(getattr(s, name))
    return out


def test_embedded_outage_then_back(
    settings: Settings, kafka_bootstrap: str, tmp_path: Path, sink_processes: list[SinkProcess]
) -> None:
    outage = tmp_path / "clickhouse-down"
    sink = SinkProcess(settings, tmp_path / "sink.log", {UNAVAILABLE_HOOK_ENV: str(outage)})
    sink_processes.append(sink)
    sink.start()
    before, during, after = (
        _sample(1, "http://a.test"),
        _sample(2, "http://b.test"),
        _sample(3, "http://c.test"),
    )
    asyncio.run(produce(settings, sample_messages(settings, before)))
    wait_for(lambda: all_committed(settings), 60, "the first events committed")
    _, committed_before = asyncio.run(sink_offsets(settings))

    outage.touch()
    asyncio.run(produce(settings, sample_messages(settings, during)))
    wait_for(lambda: sink.status()["paused"], 30, "the sink to pause on the outage")
    time.sleep(2.0)  # several retries while down
    ends, committed = asyncio.run(sink_offsets(settings))
    assert committed == committed_before, "nothing committed while ClickHouse is down"
    assert ends != committed
    assert sink.status()["retries"] >= 2

    outage.unlink()
    wait_for(lambda: all_committed(settings), 60, "consumption to resume after the outage")
    assert not sink.status()["paused"]
    asyncio.run(produce(settings, sample_messages(settings, after)))
    wait_for(lambda: all_committed(settings), 60, "events after the outage committed")
    assert sink.stop() == 0
    log = sink.log_text()
    assert "clickhouse sink backing off" in log and "clickhouse sink resumed" in log

    counts = table_counts(settings)
    want = expected_counts(_merge(before, during, after))
    assert {k: counts[k] for k in want} == want


def test_refused_server_then_back(
    make_settings: Callable[..., Settings],
    kafka_bootstrap: str,
    tmp_path: Path,
    sink_processes: list[SinkProcess],
) -> None:
    down = make_settings(clickhouse={"url": f"http://127.0.0.1:{free_port()}/proofrecon"})
    up = make_settings()  # same topics and consumer group, embedded chDB
    asyncio.run(ensure_topics(up))
    sample = _sample(4, "http://d.test")
    asyncio.run(produce(up, sample_messages(up, sample)))

    sink = SinkProcess(down, tmp_path / "down.log")
    sink_processes.append(sink)
    sink.start()
    wait_for(lambda: sink.status()["retries"] >= 2, 30, "retries against the refused server")
    assert nothing_committed(up)
    assert sink.stop() == 0
    assert "unreachable" in sink.log_text()

    sink = SinkProcess(up, tmp_path / "up.log")
    sink_processes.append(sink)
    sink.start()
    wait_for(lambda: all_committed(up), 60, "every offset committed once ClickHouse is back")
    assert sink.stop() == 0
    counts = table_counts(up)
    want = expected_counts(sample)
    assert {k: counts[k] for k in want} == want


__all__ = ["sink_processes"]  # the fixture, imported for pytest
