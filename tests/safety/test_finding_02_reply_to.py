"""Finding 2 (high): `reply_to` let any producer direct the worker's answers to any topic.

At 7262b21 an answer went wherever the request said: into the worker's own changelogs (a request_id
spelled like a table key replaced a victim's ledger row on the next recovery, and a record in the
open-discrepancies changelog kept the restarted worker from ever becoming ready), into internal
topics, or to a missing topic (a 20-minute metadata wait, then a crash).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from devkit.processes import WorkerProcess
from devkit.wallet import Scenario
from streams.client import PreflightClient
from streams.core.settings import Settings
from streams.recon.ledger import token_key
from tests.conftest import build_test_settings, clear_proofrecon_env
from tests.safety.conftest import reply_topic
from tests.safety.helpers import (
    answers_to,
    dead_letters_of,
    dumps,
    melt_body,
    produce,
    raw_records,
    topic_names,
)
from tests.support.pipeline import ask, melt, npub, publish_token


@pytest.mark.stack
async def test_finding_02_reply_to_off_the_allow_list_is_refused_and_never_written(
    worker: WorkerProcess, pipeline_settings: Settings, real_scenario: Scenario
) -> None:
    topics = pipeline_settings.topics
    app_id = pipeline_settings.kafka.app_id
    tokens_changelog = f"{app_id}-tokens-changelog"
    open_changelog = f"{app_id}-open-discrepancies-changelog"
    missing = f"{topics.preflight_results}-missing-{uuid.uuid4().hex[:6]}"
    assert {tokens_changelog, open_changelog} <= await topic_names(pipeline_settings)

    # A victim whose ledger row the attack aims at: its table key, JSON-encoded as Faust stores it.
    victim = npub()
    spent = real_scenario.spent_elsewhere[:1]
    token = await publish_token(pipeline_settings, worker, victim, spent, "unspent")
    table_key = json.dumps(token_key(victim, token))

    attacker = npub()
    bodies: dict[str, dict[str, Any]] = {}
    for target in (tokens_changelog, open_changelog, "__consumer_offsets", missing):
        body = melt_body(attacker, real_scenario.unspent[:1], reply_to=target)
        if target == tokens_changelog:
            body["request_id"] = table_key
        bodies[target] = body
    allowed = melt_body(
        attacker, real_scenario.unspent[:1], reply_to=reply_topic(pipeline_settings)
    )
    where = set()
    for body in bodies.values():
        sent = await produce(
            pipeline_settings, topics.melt_requests, dumps(body), key=attacker.encode()
        )
        where.add((sent.partition, sent.offset))
    await produce(pipeline_settings, topics.melt_requests, dumps(allowed), key=attacker.encode())

    # Each refused request: INVALID_REQUEST on the default results topic, and dead-lettered.
    ids = {body["request_id"] for body in bodies.values()}
    answers = await answers_to(pipeline_settings, ids)
    assert {(a["verdict"], a["code"]) for a in answers.values()} == {("BLOCKED", "INVALID_REQUEST")}
    parked = await dead_letters_of(pipeline_settings, topics.melt_requests, where)
    assert all("reply_to" in p["error"] for p in parked)
    # The allow-listed reply topic is still served (so the refusals are about the names).
    served = await answers_to(
        pipeline_settings, {allowed["request_id"]}, topic=reply_topic(pipeline_settings)
    )
    assert served[allowed["request_id"]]["verdict"] == "CLEARED"

    # Nothing reached the changelogs, and the missing topic was not created.
    for changelog in (tokens_changelog, open_changelog):
        records = await raw_records(pipeline_settings, changelog, idle=1.0)
        assert not [r for r in records if b'"verdict"' in (r.value or b"")], (
            f"answer in {changelog}"
        )
    rows = await raw_records(pipeline_settings, tokens_changelog, idle=0.5)
    assert [r.key for r in rows].count(table_key.encode()) == 1  # the ledger's own write only
    assert missing not in await topic_names(pipeline_settings)

    # A clean restart recovers both tables and becomes ready; the victim's row is intact.
    worker.stop()
    worker.start(timeout=60)
    async with PreflightClient(pipeline_settings) as client:
        result = await ask(client, melt(victim, spent))
    assert (result.verdict, result.code) == ("BLOCKED", "HIGH_SEVERITY_DISCREPANCIES")


@pytest.mark.parametrize(
    "name",
    [
        "{app_id}-tokens-changelog",
        "{app_id}-open-discrepancies-changelog",
        "__consumer_offsets",
        "_schemas",
        "{discrepancies}",
        "{melt_requests}",
    ],
)
def test_finding_02_settings_refuse_a_reply_topic_the_app_owns(
    name: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_proofrecon_env(monkeypatch)
    run_id = uuid.uuid4().hex[:10]
    plain = build_test_settings(run_id, tmp_path)
    topic = name.format(
        app_id=plain.kafka.app_id,
        discrepancies=plain.topics.discrepancies,
        melt_requests=plain.topics.melt_requests,
    )
    with pytest.raises(ValidationError, match="reply topic"):
        build_test_settings(run_id, tmp_path, preflight={"reply_topics": [topic]})
    # A wallet's own topic is fine, and the results topic is always allowed.
    wallets = build_test_settings(run_id, tmp_path, preflight={"reply_topics": ["wallet.replies"]})
    assert wallets.reply_topics == {"wallet.replies", plain.topics.preflight_results}
