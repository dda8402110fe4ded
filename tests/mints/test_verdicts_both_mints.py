"""The seed's scenarios and the safety rules, end to end against each mint implementation.

One worker (tests/mints/conftest.py) knows both; every test runs once per implementation with
proofs minted, spent and left PENDING at that mint by Nutshell's wallet library. Every allowed
mint has a canary, so each answer used here also proved that the mint and our hashing agree.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from devkit.processes import WorkerProcess, read_topic
from streams.client import PreflightClient
from streams.core.settings import Settings
from tests.mints.impls import MintImpl, alias
from tests.safety.helpers import answers_to, dumps, melt_body, produce
from tests.support.pipeline import ask, discrepancies_of, melt, npub, publish_token

pytestmark = [pytest.mark.stack, pytest.mark.timeout(180)]


async def corrected(settings: Settings, owner: str, ys: set[str]) -> set[tuple[str, str]]:
    """(token_id, set_status) of the corrections issued for `owner`, once they cover `ys`.

    The worker's live watch (NUT-17) may see a mismatch too, at about the time the melt does; a
    correction is idempotent, so what counts is what the wallet DB is told, not by how many.
    """

    def mine(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in records if r["npub"] == owner]

    records = await read_topic(
        settings,
        settings.topics.corrections,
        until=lambda rs: ys <= {y for r in mine(rs) for y in r["Ys"]},
    )
    assert {y for r in mine(records) for y in r["Ys"]} == ys
    return {(r["token_id"], r["set_status"]) for r in mine(records)}


# --- clean -----------------------------------------------------------------------------------


async def test_clean_melt_is_cleared_without_events(
    mint_impl: MintImpl, client: PreflightClient, worker: WorkerProcess, pipeline_settings: Settings
) -> None:
    owner = npub()
    proofs = mint_impl.scene.unspent[:3]
    await publish_token(pipeline_settings, worker, owner, proofs, "unspent", mint_url=mint_impl.url)
    result = await ask(client, melt(owner, proofs, mint_url=mint_impl.url))
    assert (result.verdict, result.code) == ("CLEARED", None)
    assert result.discrepancies_found == 0 and result.checked_proofs == 3
    assert result.mint_url == mint_impl.url


# --- HIGH ------------------------------------------------------------------------------------


async def test_high_db_unspent_mint_spent_blocks_and_corrects(
    mint_impl: MintImpl, client: PreflightClient, worker: WorkerProcess, pipeline_settings: Settings
) -> None:
    owner = npub()
    spent = mint_impl.scene.spent_elsewhere
    token = await publish_token(
        pipeline_settings, worker, owner, spent, "unspent", mint_url=mint_impl.url
    )
    result = await ask(client, melt(owner, spent, mint_url=mint_impl.url))
    assert (result.verdict, result.code) == ("BLOCKED", "HIGH_SEVERITY_DISCREPANCIES")
    assert result.severity_counts.high == len(spent) == result.discrepancies_found
    events = await discrepancies_of(pipeline_settings, owner, len(spent))
    assert {(e["Y"], e["type"], e["action"], e["mint_url"]) for e in events} == {
        (p.Y, "DB_UNSPENT_MINT_SPENT", "MARK_SPENT", mint_impl.url) for p in spent
    }
    assert await corrected(pipeline_settings, owner, {p.Y for p in spent}) == {(token, "spent")}


# --- MEDIUM ----------------------------------------------------------------------------------


async def test_medium_db_spent_mint_unspent_is_unresolved(
    mint_impl: MintImpl, client: PreflightClient, worker: WorkerProcess, pipeline_settings: Settings
) -> None:
    owner = npub()
    proofs = mint_impl.scene.unspent[:1]
    await publish_token(pipeline_settings, worker, owner, proofs, "spent", mint_url=mint_impl.url)
    result = await ask(client, melt(owner, proofs, mint_url=mint_impl.url))
    assert (result.verdict, result.code) == ("BLOCKED", "UNRESOLVED_DISCREPANCIES")
    assert result.severity_counts.medium == 1 and result.discrepancies_resolved == 0
    (event,) = await discrepancies_of(pipeline_settings, owner, 1)
    assert (event["type"], event["action"]) == ("DB_SPENT_MINT_UNSPENT", "INVESTIGATE")


async def test_medium_db_pending_mint_spent_corrects_and_blocks(
    mint_impl: MintImpl, client: PreflightClient, worker: WorkerProcess, pipeline_settings: Settings
) -> None:
    owner = npub()
    pending_in_db = mint_impl.scene.spent_swap[:1]
    clean = mint_impl.scene.unspent[1:3]
    token = await publish_token(
        pipeline_settings, worker, owner, pending_in_db, "pending", mint_url=mint_impl.url
    )
    await publish_token(pipeline_settings, worker, owner, clean, "unspent", mint_url=mint_impl.url)
    result = await ask(client, melt(owner, pending_in_db + clean, mint_url=mint_impl.url))
    assert (result.verdict, result.code) == ("BLOCKED", "PROOF_SPENT_AT_MINT")
    assert [d.type for d in result.discrepancies] == ["DB_PENDING_MINT_SPENT"]
    assert result.discrepancies_resolved == 1
    corrections = await corrected(pipeline_settings, owner, {pending_in_db[0].Y})
    assert corrections == {(token, "spent")}


# --- LOW -------------------------------------------------------------------------------------


async def test_low_proofs_not_in_db_and_unspent_clear(
    mint_impl: MintImpl, client: PreflightClient, pipeline_settings: Settings
) -> None:
    owner = npub()
    result = await ask(client, melt(owner, mint_impl.scene.unspent[:2], mint_url=mint_impl.url))
    assert (result.verdict, result.severity_counts.low) == ("CLEARED", 2)
    events = await discrepancies_of(pipeline_settings, owner, 2)
    assert {(e["type"], e["severity"], e["mint_state"]) for e in events} == {
        ("PROOF_NOT_IN_DB", "LOW", "UNSPENT")
    }


async def test_low_db_unspent_mint_pending_blocks_since_the_mint_decides(
    mint_impl: MintImpl, client: PreflightClient, worker: WorkerProcess, pipeline_settings: Settings
) -> None:
    owner, own = npub(), mint_impl.own.url
    proofs = mint_impl.own_scene.pending
    await publish_token(pipeline_settings, worker, owner, proofs, "unspent", mint_url=own)
    result = await ask(client, melt(owner, proofs, mint_url=own))
    assert (result.verdict, result.code) == ("BLOCKED", "PROOF_PENDING_AT_MINT")
    assert {(d.type, d.severity) for d in result.discrepancies} == {
        ("DB_UNSPENT_MINT_PENDING", "LOW")
    }


# --- the mint's word decides (safety finding 9) ------------------------------------------------


async def test_absent_from_the_ledger_and_spent_at_the_mint_is_blocked(
    mint_impl: MintImpl, client: PreflightClient
) -> None:
    result = await ask(client, melt(npub(), mint_impl.scene.spent_swap[:2], mint_url=mint_impl.url))
    assert (result.verdict, result.code) == ("BLOCKED", "PROOF_SPENT_AT_MINT")
    assert {(d.type, d.mint_state) for d in result.discrepancies} == {("PROOF_NOT_IN_DB", "SPENT")}


async def test_absent_from_the_ledger_and_pending_at_the_mint_is_blocked(
    mint_impl: MintImpl, client: PreflightClient
) -> None:
    own = mint_impl.own.url
    result = await ask(client, melt(npub(), mint_impl.own_scene.pending, mint_url=own))
    assert (result.verdict, result.code) == ("BLOCKED", "PROOF_PENDING_AT_MINT")
    assert {(d.type, d.mint_state) for d in result.discrepancies} == {
        ("PROOF_NOT_IN_DB", "PENDING")
    }
    # The same mint's unspent proofs, equally absent, clear: the state decides.
    clean = await ask(client, melt(npub(), mint_impl.own_scene.unspent, mint_url=own))
    assert clean.verdict == "CLEARED"


# --- invalid ---------------------------------------------------------------------------------


async def test_a_y_off_the_curve_is_an_invalid_request_and_never_reaches_the_mint(
    mint_impl: MintImpl, worker: WorkerProcess, pipeline_settings: Settings
) -> None:
    """Nutshell would read such a Y UNSPENT and CDK would refuse the whole request
    (test_gateway_both_mints.py): it is refused at the edge, whatever the mint."""
    owner = npub()
    body = melt_body(owner, mint_impl.scene.unspent[:1], mint_url=mint_impl.url)
    body["proofs"].append({"Y": "02" + "f" * 64, "amount": 8, "keyset_id": "00ab"})
    topic = pipeline_settings.topics.melt_requests
    await produce(pipeline_settings, topic, dumps(body), key=owner.encode())
    answer = (await answers_to(pipeline_settings, {body["request_id"]}))[body["request_id"]]
    assert (answer["verdict"], answer["code"]) == ("BLOCKED", "INVALID_REQUEST")
    assert answer["operation_cleared"] is False


# --- a mint whose answers cannot be trusted, or that is down -----------------------------------


async def test_a_canary_the_mint_does_not_know_blocks_every_melt(
    mint_impl: MintImpl, client: PreflightClient
) -> None:
    """The same mint under another name whose canary is the other implementation's SPENT Y:
    this mint says UNSPENT for it, so no answer of it is used, not even an all-UNSPENT one."""
    proofs = mint_impl.scene.unspent[:2]
    refused = await ask(client, melt(npub(), proofs, mint_url=alias(mint_impl.url)))
    assert (refused.verdict, refused.code) == ("BLOCKED", "MINT_UNAVAILABLE")
    assert not refused.operation_cleared and refused.discrepancies_found == 0
    # Under its own name, with its own canary, the same proofs clear.
    cleared = await ask(client, melt(npub(), proofs, mint_url=mint_impl.url))
    assert cleared.verdict == "CLEARED"


async def test_a_stopped_mint_blocks_melts_and_its_restart_answers_again(
    mint_impl: MintImpl, client: PreflightClient
) -> None:
    """Last in this module: it stops and restarts the implementation's private mint."""
    own = mint_impl.own
    proofs = mint_impl.own_scene.unspent[:2]
    await asyncio.to_thread(own.stop)
    try:
        result = await ask(client, melt(npub(), proofs, mint_url=own.url))
        assert (result.verdict, result.code) == ("BLOCKED", "MINT_UNAVAILABLE")
        assert result.discrepancies_found == 0
    finally:
        await asyncio.to_thread(own.start)
    again = await ask(client, melt(npub(), proofs, mint_url=own.url))
    assert again.verdict == "CLEARED"
    # Its melt was still in flight through the restart: the proofs are still PENDING there.
    pending = await ask(client, melt(npub(), mint_impl.own_scene.pending, mint_url=own.url))
    assert (pending.verdict, pending.code) == ("BLOCKED", "PROOF_PENDING_AT_MINT")
