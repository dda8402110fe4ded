"""Helpers for the sink's end-to-end tests (no tests here): `proofrecon sink` subprocesses,
producing sample events, Kafka offsets, and reading the embedded chDB once the sink is gone."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from pydantic import BaseModel

from devkit.processes import SinkProcess, sink_offsets, topic_of
from devkit.sample import SampleSet
from streams.core.contracts import to_json_bytes
from streams.core.settings import Settings

REPO = Path(__file__).resolve().parent.parent
CLI = REPO / ".venv" / "bin" / "proofrecon"


@pytest.fixture
def sink_processes() -> Iterator[list[SinkProcess]]:
    """Append every SinkProcess a test starts: they are killed at teardown, even on failure."""
    started: list[SinkProcess] = []
    try:
        yield started
    finally:
        for sink in started:
            sink.kill()


def wait_for(condition: Any, timeout: float, what: str, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# --- Kafka ---------------------------------------------------------------------------------------


def sample_messages(settings: Settings, sample: SampleSet) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value) for every event of `sample`, keyed like the worker keys them."""
    out: list[tuple[str, bytes, bytes]] = []
    pairs: list[tuple[str, Iterable[BaseModel], str]] = [
        ("discrepancies", sample.discrepancies, "npub"),
        ("proof_checks", sample.proof_checks, "mint_url"),
        ("preflight_results", sample.preflights, "request_id"),
        ("corrections", sample.corrections, "npub"),
    ]
    for kind, events, key_field in pairs:
        for event in events:
            key = str(getattr(event, key_field)).encode()
            out.append((topic_of(settings, kind), key, to_json_bytes(event)))
    return out


async def produce(settings: Settings, messages: Iterable[tuple[str, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, linger_ms=5)
    await producer.start()
    try:
        for topic, key, value in messages:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def all_committed(settings: Settings) -> bool:
    ends, committed = asyncio.run(sink_offsets(settings))
    return ends == committed


def nothing_committed(settings: Settings) -> bool:
    _, committed = asyncio.run(sink_offsets(settings))
    return not any(committed.values())


# --- expectations --------------------------------------------------------------------------------


def hour_iso(at: datetime) -> str:
    return (
        at.astimezone(UTC)
        .replace(minute=0, second=0, microsecond=0)
        .isoformat()
        .replace("+00:00", "Z")
    )


def expected_hourly(sample: SampleSet) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(hour, mint, severity) -> (OPENED discrepancies, proofs checked), recounted in Python."""
    checked: Counter[tuple[str, str]] = Counter()
    for check in sample.proof_checks:
        checked[(hour_iso(check.checked_at), check.mint_url)] += check.proofs_checked
    found: Counter[tuple[str, str, str]] = Counter()
    for event in sample.discrepancies:
        if event.lifecycle.value == "OPENED":
            found[(hour_iso(event.detected_at), event.mint_url, event.severity.value)] += 1
    expected: dict[tuple[str, str, str], tuple[int, int]] = {}
    for hour, mint in checked:
        for severity in ("HIGH", "MEDIUM", "LOW"):
            expected[(hour, mint, severity)] = (
                found[(hour, mint, severity)],
                checked[(hour, mint)],
            )
    for (hour, mint, severity), n in found.items():
        expected.setdefault((hour, mint, severity), (n, checked[(hour, mint)]))
    return expected


def hourly_by_key(doc: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["hour"], r["mint_url"], r["severity"]): r for r in doc["rows"]}


def expected_blocked(sample: SampleSet) -> dict[tuple[str, str], tuple[int, int]]:
    """(hour, mint) -> (preflights, blocked)."""
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for result in sample.preflights:
        key = (hour_iso(result.answered_at), result.mint_url)
        totals[key][0] += 1
        totals[key][1] += result.verdict.value == "BLOCKED"
    return {k: (v[0], v[1]) for k, v in totals.items()}


# --- reading chDB after the sink exited ----------------------------------------------------------


def table_counts(settings: Settings) -> dict[str, Any]:
    """Row counts of every table and the sums of the hourly ones (opens and closes chDB)."""
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=settings.clickhouse_url)
    db = settings.clickhouse.database
    try:

        def one(sql: str) -> Any:
            return client.query(sql).result_rows[0]

        return {
            "discrepancies": one(f"SELECT count(), uniqExact(event_id) FROM {db}.discrepancies"),
            "proof_checks": one(f"SELECT count(), uniqExact(event_id) FROM {db}.proof_checks"),
            "preflight_results": one(
                f"SELECT count(), uniqExact(request_id) FROM {db}.preflight_results"
            ),
            "reconciliation_actions": one(
                f"SELECT count(), uniqExact(command_id) FROM {db}.reconciliation_actions"
            ),
            "discrepancy_hourly": one(
                f"SELECT sum(discrepancies) + sum(resolved) FROM {db}.discrepancy_hourly"
            )[0],
            "proof_checks_hourly": one(
                f"SELECT sum(checks), sum(proofs_checked) FROM {db}.proof_checks_hourly"
            ),
            "preflight_hourly": one(f"SELECT sum(answers) FROM {db}.preflight_hourly")[0],
            "severity_hourly": one(
                f"SELECT sum(discrepancies), sum(proofs_checked) FROM {db}.severity_hourly"
            ),
            "sink_batches": one(f"SELECT count() FROM {db}.sink_batches")[0],
        }
    finally:
        client.close()


def expected_counts(sample: SampleSet) -> dict[str, Any]:
    proofs = sum(c.proofs_checked for c in sample.proof_checks)
    opened = sum(e.lifecycle.value == "OPENED" for e in sample.discrepancies)
    d, c, p, k = (
        len(sample.discrepancies),
        len(sample.proof_checks),
        len(sample.preflights),
        len(sample.corrections),
    )
    return {
        "discrepancies": (d, d),
        "proof_checks": (c, c),
        "preflight_results": (p, p),
        "reconciliation_actions": (k, k),
        "discrepancy_hourly": d,
        "proof_checks_hourly": (c, proofs),
        "preflight_hourly": p,
        "severity_hourly": (opened, 3 * proofs),  # a row per severity for every check
    }
