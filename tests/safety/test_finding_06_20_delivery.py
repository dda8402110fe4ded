"""Findings 6 (high) and 20 (low): outputs lost when their delivery failed.

6: at 7262b21 the open-discrepancy row was written before the OPENED event, the MARK_SPENT
   correction and the alert were sent: a crash in between, and the replayed request found the
   discrepancy "already open" and emitted nothing, ever. The wallet never got its correction.
20: Faust only flushes the producer before committing and ignores a failed send, so an output the
   broker never took could sit behind a committed offset.

Here the corrections topic is deleted under a running worker, so the correction of a HIGH melt
cannot be delivered. The worker must stop without committing the request and without recording
the discrepancy as open; once the topic is back, the restarted worker answers the request again
and this time the OPENED event, the correction and the HIGH alert all exist.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from devkit.processes import WorkerProcess, read_topic
from devkit.wallet import Scenario
from streams.core.kafka import delete_topics, ensure_topics
from streams.core.settings import Settings
from tests.conftest import MINT_URL, build_test_settings, clear_proofrecon_env
from tests.safety.helpers import answers_to, dumps, melt_body, produce, topic_names
from tests.support.pipeline import npub as new_npub
from tests.support.pipeline import publish_token

pytestmark = [pytest.mark.stack, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def fragile_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with pytest.MonkeyPatch.context() as mp:
        clear_proofrecon_env(mp)
        yield build_test_settings(
            uuid.uuid4().hex[:10],
            tmp_path_factory.mktemp("fragile") / "data",
            kafka={"send_timeout_s": 1.0},
            clickhouse={"sink_enabled": False},
            # Only the melt may find the spend: a sweep or the live watch finding it first would
            # send the correction before the topic is gone.
            sweep={"enabled": False},
            watch={"enabled": False},
            alerts={"high_gather_s": 0.5},
        )


@pytest.fixture(scope="module")
def fragile_worker(
    fragile_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    log = tmp_path_factory.mktemp("fragile-log") / "worker.log"
    process = WorkerProcess(fragile_settings, log).start()
    yield process
    process.stop()


async def _committed(settings: Settings, tp: TopicPartition) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(settings.kafka.app_id)
    finally:
        await admin.close()
    found = offsets.get(tp)
    return found.offset if found is not None else -1


async def test_finding_06_20_an_undelivered_correction_stops_the_worker_uncommitted_and_is_redone(
    fragile_worker: WorkerProcess, fragile_settings: Settings, real_scenario: Scenario
) -> None:
    settings = fragile_settings
    topics = settings.topics
    owner = new_npub()
    spent = real_scenario.spent_elsewhere[:1]
    token = await publish_token(settings, fragile_worker, owner, spent, "unspent")
    # A melt of the same npub (same partition) answered and committed first: the commit moves.
    clean = melt_body(owner, real_scenario.unspent[:1], MINT_URL)
    first = await produce(settings, topics.melt_requests, dumps(clean), key=owner.encode())
    melt_tp = TopicPartition(topics.melt_requests, first.partition)
    await answers_to(settings, {clean["request_id"]})
    deadline = time.monotonic() + 15
    while await _committed(settings, melt_tp) <= first.offset:
        assert time.monotonic() < deadline, "the answered request was never committed"
        await asyncio.sleep(0.3)

    await delete_topics(settings.kafka, lambda name: name == topics.corrections)
    while topics.corrections in await topic_names(settings):
        await asyncio.sleep(0.2)
    body = melt_body(owner, spent, MINT_URL)
    sent = await produce(settings, topics.melt_requests, dumps(body), key=owner.encode())

    # The correction cannot be delivered: after its retries the worker crashes...
    assert fragile_worker.proc is not None
    deadline = time.monotonic() + 60
    while "Crashed reason=DeliveryFailed" not in fragile_worker.log_text():
        assert time.monotonic() < deadline, "the worker went on without its correction"
        await asyncio.sleep(0.5)
    # ...and exits, so that an orchestrator restarts it.
    deadline = time.monotonic() + 30
    while fragile_worker.proc.poll() is None:
        assert time.monotonic() < deadline, (
            "the worker crashed (DeliveryFailed) but did not exit: Faust's shutdown hangs after "
            f"'Wait for streams...'?\n{fragile_worker.tail(5)}"
        )
        await asyncio.sleep(0.5)
    assert fragile_worker.proc.returncode != 0
    assert await _committed(settings, melt_tp) == sent.offset  # up to, never past, the request

    def high(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in records if r["npub"] == owner and r["Y"] == spent[0].Y]

    before = high(await read_topic(settings, topics.discrepancies, idle=1.0))

    # The topic comes back; the restarted worker answers the request again and emits it all.
    await ensure_topics(settings)
    fragile_worker.start()
    answers = await read_topic(
        settings,
        topics.preflight_results,
        until=lambda rs: any(r["request_id"] == body["request_id"] for r in rs),
    )
    assert {
        (a["verdict"], a["code"]) for a in answers if a["request_id"] == body["request_id"]
    } == {("BLOCKED", "HIGH_SEVERITY_DISCREPANCIES")}
    events = high(
        await read_topic(
            settings, topics.discrepancies, until=lambda rs: len(high(rs)) > len(before)
        )
    )
    # Emitted again after the restart (not found "already open"), under the same id.
    assert {(e["lifecycle"], e["type"], e["event_id"]) for e in events} == {
        ("OPENED", "DB_UNSPENT_MINT_SPENT", events[0]["event_id"])
    }
    corrections = await read_topic(
        settings, topics.corrections, until=lambda rs: any(r["npub"] == owner for r in rs)
    )
    assert [(c["token_id"], c["set_status"], c["Ys"]) for c in corrections] == [
        (token, "spent", [spent[0].Y])
    ]
    alerts = await read_topic(
        settings,
        topics.alerts,
        until=lambda rs: any(r["kind"] == "HIGH_SEVERITY" and r["npub"] == owner for r in rs),
    )
    assert any(a["severity"] == "HIGH" and a["mint_url"] == MINT_URL for a in alerts)
