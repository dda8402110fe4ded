"""Findings 3 and 4 (high): the proof index lost proofs, so a proof spent at the mint was CLEARED.

3: at 7262b21 the tokens table key `npub|token_id` was split at its last `|` when the index was
   rebuilt (every start, restart or rebalance): a token id holding `|` filed its proofs under a
   wrong npub, and its spent proof read as "not in the DB" (LOW) after a restart.
4: a Y re-issued under token B was dropped from the index when token A (which had listed it
   before) was deleted: the live index said "not in the DB" while the table said B holds it.
"""

from __future__ import annotations

import uuid

import pytest

from devkit.processes import WorkerProcess, fixes_of, read_topic
from devkit.wallet import Scenario
from streams.client import PreflightClient
from streams.core.settings import Settings
from tests.safety.helpers import eventually, proof_view
from tests.support.pipeline import ask, discrepancies_of, melt, npub, publish_token

pytestmark = pytest.mark.stack


async def test_finding_03_a_token_id_with_a_pipe_keeps_its_proofs_across_a_restart(
    worker: WorkerProcess, pipeline_settings: Settings, real_scenario: Scenario
) -> None:
    owner = npub()
    spent = real_scenario.spent_elsewhere[1:2]
    token = f"mintA|{uuid.uuid4().hex[:6]}|000123"
    await publish_token(pipeline_settings, worker, owner, spent, "unspent", token_id=token)
    async with PreflightClient(pipeline_settings) as client:
        before = await ask(client, melt(owner, spent))
    assert (before.verdict, before.code) == ("BLOCKED", "HIGH_SEVERITY_DISCREPANCIES")

    worker.stop()
    worker.start()
    view = await proof_view(worker.url, owner, spent[0].Y)
    assert view["ledger"] is not None and view["ledger"]["token_id"] == token
    async with PreflightClient(pipeline_settings) as client:
        after = await ask(client, melt(owner, spent))
    assert (after.verdict, after.code) == ("BLOCKED", "HIGH_SEVERITY_DISCREPANCIES")
    assert [d.type for d in after.discrepancies] == ["DB_UNSPENT_MINT_SPENT"]


async def test_finding_04_a_y_moved_to_another_token_survives_the_old_tokens_deletion(
    worker: WorkerProcess, pipeline_settings: Settings, real_scenario: Scenario
) -> None:
    owner = npub()
    moved = real_scenario.spent_elsewhere[2:3]
    y = moved[0].Y
    token_a = await publish_token(pipeline_settings, worker, owner, moved, "unspent")
    token_b = f"tok-b-{uuid.uuid4().hex[:8]}"
    await publish_token(
        pipeline_settings, worker, owner, moved, "unspent", token_id=token_b, wait=False
    )

    async def held_by_b() -> bool | None:
        view = await proof_view(worker.url, owner, y)
        return True if view["ledger"] and view["ledger"]["token_id"] == token_b else None

    await eventually(held_by_b)
    await publish_token(
        pipeline_settings, worker, owner, moved, "deleted", token_id=token_a, version=2, wait=False
    )
    # Token events of one npub are applied in order: once a later one shows, A's deletion did.
    marker = real_scenario.unspent[3:4]
    await publish_token(pipeline_settings, worker, owner, marker, "unspent")

    view = await proof_view(worker.url, owner, y)
    assert view["ledger"] is not None and view["ledger"]["token_id"] == token_b
    async with PreflightClient(pipeline_settings) as client:
        result = await ask(client, melt(owner, moved))
    assert (result.verdict, result.code) == ("BLOCKED", "HIGH_SEVERITY_DISCREPANCIES")
    assert [(d.type, d.db_status) for d in result.discrepancies] == [
        ("DB_UNSPENT_MINT_SPENT", "unspent")
    ]
    (event,) = await discrepancies_of(pipeline_settings, owner, 1)
    assert event["token_id"] == token_b
    corrections = await read_topic(
        pipeline_settings,
        pipeline_settings.topics.corrections,
        until=lambda rs: any(r["npub"] == owner for r in rs),
    )
    assert [c["token_id"] for c in fixes_of(corrections, owner)] == [token_b]
