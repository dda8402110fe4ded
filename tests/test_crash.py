"""At-least-once: a worker killed with SIGKILL under load leaves no melt request unanswered."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from devkit.processes import WorkerProcess, read_topic
from devkit.wallet import Scenario
from streams.client import PreflightClient
from streams.core.contracts import to_json_bytes
from streams.core.settings import Settings
from tests.support.pipeline import ask, melt, npub, publish_token

pytestmark = [pytest.mark.stack, pytest.mark.slow]


@pytest.fixture(scope="module")
def pipeline_overrides() -> dict[str, Any]:
    # Commit rarely, so the kill lands between answering and committing.
    return {"sweep": {"enabled": False}, "kafka": {"commit_interval_s": 5.0}}


async def test_kill_9_under_load_leaves_nothing_unanswered(
    worker: WorkerProcess, pipeline_settings: Settings, real_scenario: Scenario
) -> None:
    owners = [npub() for _ in range(20)]
    requests = [melt(owners[i % 20], real_scenario.unspent[:2]) for i in range(300)]
    producer = AIOKafkaProducer(bootstrap_servers=pipeline_settings.kafka.bootstrap_servers)
    await producer.start()
    try:
        for i, request in enumerate(requests):
            await producer.send(
                pipeline_settings.topics.melt_requests,
                key=request.npub.encode(),
                value=to_json_bytes(request),
            )
            if i == 150:
                await producer.flush()
                await asyncio.sleep(0.5)
                worker.kill()  # mid-stream, before the next commit
            await asyncio.sleep(0.005)
        await producer.flush()
    finally:
        await producer.stop()
    worker.start()  # same data dir and consumer group: recovers the tables, resumes
    wanted = {r.request_id for r in requests}
    answers = await read_topic(
        pipeline_settings,
        pipeline_settings.topics.preflight_results,
        until=lambda rs: wanted <= {r["request_id"] for r in rs},
        timeout=120,
    )
    answered = [a for a in answers if a["request_id"] in wanted]
    assert {a["request_id"] for a in answered} == wanted
    # A replayed request is answered again, with the same verdict (the wallet keeps the first).
    verdicts: dict[str, set[str]] = {}
    for a in answered:
        verdicts.setdefault(a["request_id"], set()).add(a["verdict"])
    assert all(len(v) == 1 for v in verdicts.values())


async def test_ledger_survives_a_restart(
    worker: WorkerProcess, pipeline_settings: Settings, real_scenario: Scenario
) -> None:
    """The tokens table comes back from its changelog and the proof index is rebuilt from it."""
    owner = npub()
    spent = real_scenario.spent_elsewhere[:1]
    await publish_token(pipeline_settings, worker, owner, spent, "unspent")
    worker.kill()
    worker.start()
    async with PreflightClient(pipeline_settings) as client:
        result = await ask(client, melt(owner, spent))
    assert (result.verdict, [d.type for d in result.discrepancies]) == (
        "BLOCKED",
        ["DB_UNSPENT_MINT_SPENT"],
    )
