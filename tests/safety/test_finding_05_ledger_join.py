"""Finding 5 (high): the preflight join never checked the request against the ledger.

At 7262b21: proofs the ledger holds at one mint were judged by whichever allow-listed mint the
request named (a mint answers UNSPENT for a Y it never saw: CLEARED); the request's amount, keyset
and token_id went into the discrepancy events and the correction (wrong token corrected); and a
request or token event keyed otherwise than by its npub was judged against another partition's
(empty) ledger.
"""

from __future__ import annotations

import json
import uuid

import pytest

from devkit.mints import MintServer
from devkit.processes import WorkerProcess, fixes_of, read_topic
from devkit.wallet import Scenario
from streams.client import PreflightClient
from streams.core.settings import Settings
from tests.safety.helpers import (
    answers_to,
    dead_letters_of,
    dumps,
    melt_body,
    produce,
    proof_view,
)
from tests.support.pipeline import ask, discrepancies_of, melt, npub, publish_token, ref

pytestmark = pytest.mark.stack


async def test_finding_05_proofs_held_at_another_mint_are_a_mint_mismatch(
    worker: WorkerProcess,
    pipeline_settings: Settings,
    real_scenario: Scenario,
    pending_mint: MintServer,
) -> None:
    owner = npub()
    spent = real_scenario.spent_elsewhere[:2]  # held at the stack's mint, spent there
    await publish_token(pipeline_settings, worker, owner, spent, "unspent")
    async with PreflightClient(pipeline_settings) as client:
        result = await ask(client, melt(owner, spent, mint_url=pending_mint.url))
    # The pending mint never saw these Ys and would say UNSPENT: it is not asked at all.
    assert (result.verdict, result.code) == ("BLOCKED", "MINT_MISMATCH")
    assert result.discrepancies == ()
    assert result.mint_url == pending_mint.url


async def test_finding_05_a_melt_keyed_by_a_json_quoted_npub_is_invalid(
    worker: WorkerProcess, pipeline_settings: Settings, real_scenario: Scenario
) -> None:
    topics = pipeline_settings.topics
    owner = npub()
    spent = real_scenario.spent_elsewhere[:1]
    await publish_token(pipeline_settings, worker, owner, spent, "unspent")
    body = melt_body(owner, spent)
    quoted = json.dumps(owner).encode()  # `"npub1…"`: a serializer that JSON-encodes keys
    sent = await produce(pipeline_settings, topics.melt_requests, dumps(body), key=quoted)
    answer = (await answers_to(pipeline_settings, {body["request_id"]}))[body["request_id"]]
    assert (answer["verdict"], answer["code"]) == ("BLOCKED", "INVALID_REQUEST")
    (parked,) = await dead_letters_of(
        pipeline_settings, topics.melt_requests, {(sent.partition, sent.offset)}
    )
    assert "Kafka key" in parked["error"]


async def test_finding_05_a_token_event_keyed_by_a_json_quoted_npub_is_dead_lettered(
    worker: WorkerProcess, pipeline_settings: Settings, real_scenario: Scenario
) -> None:
    topics = pipeline_settings.topics
    owner = npub()
    proof = real_scenario.spent_elsewhere[0]
    event = {
        "event_id": uuid.uuid4().hex,
        "npub": owner,
        "token_id": f"tok-{uuid.uuid4().hex[:8]}",
        "mint_url": pipeline_settings.mint.allowlist[0],
        "status": "unspent",
        "version": 1,
        "occurred_at": "2026-12-01T00:00:00Z",
        "proofs": [ref(proof)],
    }
    sent = await produce(
        pipeline_settings, topics.token_status, dumps(event), key=json.dumps(owner).encode()
    )
    (parked,) = await dead_letters_of(
        pipeline_settings, topics.token_status, {(sent.partition, sent.offset)}
    )
    assert "Kafka key" in parked["error"]
    assert (await proof_view(worker.url, owner, proof.Y))["ledger"] is None


async def test_finding_05_events_and_corrections_carry_the_ledgers_amount_keyset_and_token(
    worker: WorkerProcess, pipeline_settings: Settings, real_scenario: Scenario
) -> None:
    owner = npub()
    proof = real_scenario.spent_elsewhere[1]
    token = await publish_token(pipeline_settings, worker, owner, [proof], "unspent")
    lying = melt(owner, [proof])
    body = json.loads(lying.model_dump_json(by_alias=True))
    body["proofs"] = [{"Y": proof.Y, "amount": 1, "keyset_id": "ffff", "token_id": "tok-other"}]
    assert proof.amount != 1 and proof.keyset_id != "ffff"
    await produce(
        pipeline_settings, pipeline_settings.topics.melt_requests, dumps(body), key=owner.encode()
    )
    answer = (await answers_to(pipeline_settings, {body["request_id"]}))[body["request_id"]]
    assert (answer["verdict"], answer["code"]) == ("BLOCKED", "HIGH_SEVERITY_DISCREPANCIES")

    (event,) = await discrepancies_of(pipeline_settings, owner, 1)
    assert (event["amount"], event["keyset_id"], event["token_id"]) == (
        proof.amount,
        proof.keyset_id,
        token,
    )
    corrections = await read_topic(
        pipeline_settings,
        pipeline_settings.topics.corrections,
        until=lambda rs: any(r["npub"] == owner for r in rs),
    )
    mine = fixes_of(corrections, owner)
    assert [(c["token_id"], c["Ys"]) for c in mine] == [(token, [proof.Y])]
