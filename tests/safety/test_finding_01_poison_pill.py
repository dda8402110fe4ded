"""Finding 1 (critical): one malformed melt request crashed the preflight worker in a loop.

At 7262b21 an invalid request with a 3,000-byte Kafka key made building its INVALID_REQUEST answer
raise (the key was echoed as the npub, over the 2,048-character limit): the worker crashed without
acking it, and crashed again on it after every restart.
"""

from __future__ import annotations

import uuid

import pytest

from devkit.processes import WorkerProcess
from devkit.wallet import Scenario
from streams.client import PreflightClient
from streams.core.settings import Settings
from tests.safety.helpers import answers_to, dead_letters_of, dumps, produce, raw_records
from tests.support.pipeline import ask, melt, npub

pytestmark = pytest.mark.stack


async def test_finding_01_a_huge_key_invalid_melt_is_parked_and_the_worker_keeps_answering(
    worker: WorkerProcess, pipeline_settings: Settings, real_scenario: Scenario
) -> None:
    topics = pipeline_settings.topics
    assert worker.proc is not None
    pid = worker.proc.pid
    rid = f"poison-{uuid.uuid4().hex}"
    sent = await produce(
        pipeline_settings,
        topics.melt_requests,
        dumps({"request_id": rid, "proofs": []}),
        key=b"npub1" + b"k" * 2995,
    )
    where = {(sent.partition, sent.offset)}

    (parked,) = await dead_letters_of(pipeline_settings, topics.melt_requests, where)
    assert parked["error_kind"] == "VALIDATION_ERROR"
    assert parked["key"].startswith("<key 3000 bytes sha256:")  # never the key itself
    answer = (await answers_to(pipeline_settings, {rid}))[rid]
    assert (answer["verdict"], answer["code"]) == ("BLOCKED", "INVALID_REQUEST")
    assert answer["npub"] == ""  # the key is not echoed as an npub

    # The same process goes on answering melts.
    async with PreflightClient(pipeline_settings) as client:
        after = await ask(client, melt(npub(), real_scenario.unspent[:1]))
    assert after.verdict == "CLEARED"
    assert worker.proc.poll() is None and worker.proc.pid == pid

    # Restarted on the same data, it is ready and answers; the parked message stays parked.
    worker.stop()
    worker.start()
    async with PreflightClient(pipeline_settings) as client:
        again = await ask(client, melt(npub(), real_scenario.unspent[:1]))
    assert again.verdict == "CLEARED"
    records = await raw_records(pipeline_settings, topics.dead_letter, idle=2.0)
    replays = [r for r in records if r.value is not None and rid.encode() in r.value]
    assert len(replays) == 1, "the poison message was read again after the restart"
