"""The seed's scenarios end to end: real Kafka, real mints, a worker started as a subprocess.

The wallet here is simulated by publishing token-status events for proofs made at the real mint
(some then spent behind the wallet's back) and melt requests through `PreflightClient`.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from devkit.mints import MintServer
from devkit.processes import WorkerProcess, fixes_of, read_topic
from devkit.wallet import Scenario, WalletProof
from streams.client import PreflightClient
from streams.core.contracts import MeltRequest, to_json_bytes
from streams.core.settings import Settings
from tests.conftest import MINT_URL
from tests.support.pipeline import (
    DOWN_MINT,
    ask,
    discrepancies_of,
    melt,
    npub,
    publish_token,
)

pytestmark = pytest.mark.stack

# --- HIGH ------------------------------------------------------------------------------------


async def test_high_db_unspent_mint_spent_blocks(
    client: PreflightClient,
    worker: WorkerProcess,
    pipeline_settings: Settings,
    real_scenario: Scenario,
) -> None:
    owner = npub()
    spent = real_scenario.spent_elsewhere
    token = await publish_token(pipeline_settings, worker, owner, spent, "unspent")
    result = await ask(client, melt(owner, spent))
    assert (result.verdict, result.code) == ("BLOCKED", "HIGH_SEVERITY_DISCREPANCIES")
    assert not result.operation_cleared
    assert result.severity_counts.high == len(spent) == result.discrepancies_found
    assert {d.type for d in result.discrepancies} == {"DB_UNSPENT_MINT_SPENT"}

    events = await discrepancies_of(pipeline_settings, owner, len(spent))
    assert {(e["severity"], e["type"], e["action"], e["lifecycle"]) for e in events} == {
        ("HIGH", "DB_UNSPENT_MINT_SPENT", "MARK_SPENT", "OPENED")
    }
    assert {e["Y"] for e in events} == {p.Y for p in spent}
    corrections = await read_topic(
        pipeline_settings,
        pipeline_settings.topics.corrections,
        until=lambda rs: any(r["npub"] == owner for r in rs),
    )
    mine = fixes_of(corrections, owner)
    assert len(mine) == 1
    assert mine[0]["token_id"] == token and mine[0]["set_status"] == "spent"
    assert sorted(mine[0]["Ys"]) == sorted(p.Y for p in spent)


async def test_mint_failure_blocks_mint_unavailable(
    client: PreflightClient, real_scenario: Scenario
) -> None:
    result = await ask(client, melt(npub(), real_scenario.unspent[:2], mint_url=DOWN_MINT))
    assert (result.verdict, result.code) == ("BLOCKED", "MINT_UNAVAILABLE")
    assert result.discrepancies_found == 0


async def test_mint_not_on_allow_list_is_refused(
    client: PreflightClient, real_scenario: Scenario
) -> None:
    result = await ask(
        client, melt(npub(), real_scenario.unspent[:1], mint_url="http://127.0.0.9:1")
    )
    assert (result.verdict, result.code) == ("BLOCKED", "INVALID_REQUEST")


async def test_deadline_passed_is_deadline_exceeded(
    client: PreflightClient, real_scenario: Scenario
) -> None:
    request = melt(
        npub(), real_scenario.unspent[:1], requested_at="2020-01-01T00:00:00Z", deadline_ms=1000
    )
    result = await ask(client, request)
    assert (result.verdict, result.code) == ("BLOCKED", "DEADLINE_EXCEEDED")


# --- MEDIUM ----------------------------------------------------------------------------------


async def test_medium_db_spent_mint_unspent_investigates_and_blocks(
    client: PreflightClient,
    worker: WorkerProcess,
    pipeline_settings: Settings,
    real_scenario: Scenario,
) -> None:
    """Finding 15: the wallet already debited these proofs; clearing them would pay twice, and
    nothing was corrected (INVESTIGATE is for people)."""
    owner = npub()
    proofs = real_scenario.unspent[:1]
    await publish_token(pipeline_settings, worker, owner, proofs, "spent")
    result = await ask(client, melt(owner, proofs))
    assert (result.verdict, result.code) == ("BLOCKED", "UNRESOLVED_DISCREPANCIES")
    assert result.discrepancies_resolved == 0 and result.severity_counts.medium == 1
    (event,) = await discrepancies_of(pipeline_settings, owner, 1)
    assert (event["type"], event["severity"], event["action"]) == (
        "DB_SPENT_MINT_UNSPENT",
        "MEDIUM",
        "INVESTIGATE",
    )


async def test_medium_db_pending_mint_spent_corrects_and_blocks(
    client: PreflightClient,
    worker: WorkerProcess,
    pipeline_settings: Settings,
    real_scenario: Scenario,
) -> None:
    owner = npub()
    pending_in_db = real_scenario.spent_swap[:1]
    clean = real_scenario.unspent[1:3]
    token = await publish_token(pipeline_settings, worker, owner, pending_in_db, "pending")
    await publish_token(pipeline_settings, worker, owner, clean, "unspent")
    result = await ask(client, melt(owner, pending_in_db + clean))
    # Corrected (pending -> spent), and still blocked: a SPENT proof cannot be melted.
    assert (result.verdict, result.code) == ("BLOCKED", "PROOF_SPENT_AT_MINT")
    assert result.discrepancies_resolved == 1
    assert [d.type for d in result.discrepancies] == ["DB_PENDING_MINT_SPENT"]
    corrections = await read_topic(
        pipeline_settings,
        pipeline_settings.topics.corrections,
        until=lambda rs: any(r["npub"] == owner for r in rs),
    )
    (fix,) = fixes_of(corrections, owner)  # the live watch may have issued the same fix too
    assert (fix["token_id"], fix["set_status"], fix["Ys"]) == (token, "spent", [pending_in_db[0].Y])


# --- LOW -------------------------------------------------------------------------------------


async def test_low_proofs_not_in_db_clear(
    client: PreflightClient,
    worker: WorkerProcess,
    pipeline_settings: Settings,
    real_scenario: Scenario,
) -> None:
    owner = npub()
    result = await ask(client, melt(owner, real_scenario.unspent[:2]))
    assert result.verdict == "CLEARED" and result.severity_counts.low == 2
    events = await discrepancies_of(pipeline_settings, owner, 2)
    assert {(e["type"], e["severity"], e["action"]) for e in events} == {
        ("PROOF_NOT_IN_DB", "LOW", "AUDIT")
    }


async def test_low_db_unspent_mint_pending_blocks_since_the_mint_decides(
    client: PreflightClient,
    worker: WorkerProcess,
    pipeline_settings: Settings,
    pending_mint: MintServer,
    pending_proofs: dict[str, list[WalletProof]],
) -> None:
    owner = npub()
    proofs = pending_proofs["pending"]
    await publish_token(
        pipeline_settings, worker, owner, proofs, "unspent", mint_url=pending_mint.url
    )
    result = await ask(client, melt(owner, proofs, mint_url=pending_mint.url))
    # LOW by the seed's table, yet the proofs are in another melt: they cannot be melted.
    assert (result.verdict, result.code) == ("BLOCKED", "PROOF_PENDING_AT_MINT")
    assert {d.type for d in result.discrepancies} == {"DB_UNSPENT_MINT_PENDING"}
    events = await discrepancies_of(pipeline_settings, owner, len(proofs))
    assert {e["severity"] for e in events} == {"LOW"}


# --- integration -----------------------------------------------------------------------------


async def test_clean_melt_is_cleared_without_events(
    client: PreflightClient,
    worker: WorkerProcess,
    pipeline_settings: Settings,
    real_scenario: Scenario,
) -> None:
    owner = npub()
    proofs = real_scenario.unspent[:3]
    await publish_token(pipeline_settings, worker, owner, proofs, "unspent")
    result = await ask(client, melt(owner, proofs))
    assert result.verdict == "CLEARED" and result.code is None
    assert result.discrepancies_found == 0 and result.checked_proofs == 3
    records = await read_topic(pipeline_settings, pipeline_settings.topics.discrepancies, idle=2)
    mine = [r for r in records if r["npub"] == owner and r["type"] != "PROOF_NOT_IN_DB"]
    assert mine == []


async def test_replay_same_verdict_no_duplicate_then_resolved(
    client: PreflightClient,
    worker: WorkerProcess,
    pipeline_settings: Settings,
    real_scenario: Scenario,
) -> None:
    owner = npub()
    spent = real_scenario.spent_elsewhere[:2]
    token = await publish_token(pipeline_settings, worker, owner, spent, "unspent")
    request = melt(owner, spent)
    first = await ask(client, request)
    second = await ask(client, request)  # the same request again (a replay)
    assert (
        (first.verdict, first.code)
        == (second.verdict, second.code)
        == (
            "BLOCKED",
            "HIGH_SEVERITY_DISCREPANCIES",
        )
    )
    assert first.discrepancies == second.discrepancies
    # The wallet applies the correction: the token is now spent, which resolves both.
    await publish_token(pipeline_settings, worker, owner, spent, "spent", token_id=token, version=2)
    events = await discrepancies_of(pipeline_settings, owner, 4)
    assert sorted(e["lifecycle"] for e in events) == ["OPENED", "OPENED", "RESOLVED", "RESOLVED"]
    assert len({e["event_id"] for e in events}) == 4
    # An older version arriving late changes nothing.
    await publish_token(
        pipeline_settings, worker, owner, spent, "unspent", token_id=token, version=1, wait=False
    )
    await asyncio.sleep(1.5)
    third = await ask(client, melt(owner, spent))
    # Consistent now (spent on both sides), and still never meltable.
    assert (third.verdict, third.code) == ("BLOCKED", "PROOF_SPENT_AT_MINT")
    assert third.discrepancies_found == 0


# --- bad input -------------------------------------------------------------------------------


def _malformed(i: int, secret: str, y: str) -> tuple[str, bytes, bool]:
    """A malformed message, its category, and whether it carries a request_id to answer."""
    rid = f"bad-{i}"
    base = {
        "request_id": rid,
        "npub": "npub1bad",
        "mint_url": MINT_URL,
        "requested_at": "2026-01-01T00:00:00Z",
    }
    kind = i % 6
    if kind == 0:  # broken JSON around a secret
        return (
            "bad_json",
            f'{{"request_id": "{rid}", "proofs": [{{"secret": "{secret}"'.encode(),
            True,
        )
    if kind == 1:  # wrong types
        body = {**base, "proofs": [{"secret": secret, "amount": "eight", "keyset_id": 7}]}
    elif kind == 2:  # an invalid Y (not on the curve) beside the secret, and an unknown field
        proof = {"Y": "02" + "f" * 64, "secret": secret, "amount": 1, "keyset_id": "00ab", "x": 1}
        body = {**base, "proofs": [proof]}
    elif kind == 3:  # a secret over 1024 characters
        body = {
            **base,
            "proofs": [{"secret": secret + "x" * 1100, "amount": 1, "keyset_id": "00ab"}],
        }
    elif kind == 4:  # unknown status-like junk and no request id at all
        return "no_id", json.dumps({"npub": "x", "secret": secret, "proofs": "all"}).encode(), False
    else:  # a non-positive amount
        body = {**base, "proofs": [{"Y": y, "amount": 0, "keyset_id": "00ab", "secret": secret}]}
    return f"kind{kind}", json.dumps(body).encode(), True


async def test_malformed_input_goes_to_dead_letter_and_valid_traffic_flows(
    client: PreflightClient,
    worker: WorkerProcess,
    pipeline_settings: Settings,
    real_scenario: Scenario,
) -> None:
    marker = uuid.uuid4().hex
    secrets = [f"sekret-{marker}-{i:04d}" for i in range(1000)]
    y = real_scenario.unspent[0].Y
    messages = [_malformed(i, s, y) for i, s in enumerate(secrets)]
    # Five requests of 10,000 proofs each (short secrets keep each under Kafka's 1 MiB limit).
    huge = [
        {
            "request_id": f"huge-{i}",
            "npub": "npub1huge",
            "mint_url": MINT_URL,
            "requested_at": "2026-01-01T00:00:00Z",
            "proofs": [
                {"secret": f"{marker}{j}", "amount": 1, "keyset_id": "k"} for j in range(10_000)
            ],
        }
        for i in range(5)
    ]
    producer = AIOKafkaProducer(
        bootstrap_servers=pipeline_settings.kafka.bootstrap_servers, max_request_size=4 * 2**20
    )
    await producer.start()
    valid: list[MeltRequest] = []
    sent: list[tuple[str, Any]] = []  # (topic, delivery future) of every bad message
    try:
        for i, (_, raw, _) in enumerate(messages):
            topic = pipeline_settings.topics.melt_requests
            sent.append((topic, await producer.send(topic, key=b"npub1bad", value=raw)))
            if i % 100 == 0:  # valid traffic interleaved with the garbage
                request = melt(npub(), real_scenario.unspent[:1])
                valid.append(request)
                await producer.send(
                    pipeline_settings.topics.melt_requests,
                    key=request.npub.encode(),
                    value=to_json_bytes(request),
                )
        for body in huge:
            topic = pipeline_settings.topics.melt_requests
            value = json.dumps(body).encode()
            sent.append((topic, await producer.send(topic, key=b"npub1huge", value=value)))
        # A malformed token-status event too: the ledger dead-letters, not only the preflight.
        topic = pipeline_settings.topics.token_status
        bad_token = b'{"secret": "' + secrets[0].encode() + b'"'
        sent.append((topic, await producer.send(topic, key=b"npub1bad", value=bad_token)))
        await producer.flush()
    finally:
        await producer.stop()

    expected = set()
    for topic, future in sent:
        meta = await future
        expected.add((topic, meta.partition, meta.offset))

    def places(records: list[dict[str, Any]]) -> set[tuple[str, int, int]]:
        return {(r["source_topic"], r["partition"], r["offset"]) for r in records}

    # At-least-once: a message may be parked twice (a redelivery); each place counts once.
    dead = await read_topic(
        pipeline_settings,
        pipeline_settings.topics.dead_letter,
        until=lambda rs: expected <= places(rs),
        timeout=120,
    )
    assert expected <= places(dead), sorted(expected - places(dead))[:5]
    assert all(d["error_kind"] and d["error"] and d["source_topic"] for d in dead)
    kinds = {d["error_kind"] for d in dead}
    assert {"DECODE_ERROR", "VALIDATION_ERROR"} <= kinds
    huge_dead = [d for d in dead if '"huge-' in d["raw"]]
    assert len(huge_dead) == 5 and all("10000" in d["error"] for d in huge_dead)
    assert all(len(d["raw"].encode()) <= 4096 for d in dead)

    answerable = {f"bad-{i}" for i, (_, _, has_id) in enumerate(messages) if has_id}
    answerable |= {f"huge-{i}" for i in range(5)}
    wanted = answerable | {r.request_id for r in valid}
    answers = await read_topic(
        pipeline_settings,
        pipeline_settings.topics.preflight_results,
        until=lambda rs: wanted <= {r["request_id"] for r in rs},
        timeout=120,
    )
    by_id = {a["request_id"]: a for a in answers}
    assert all(by_id[rid]["code"] == "INVALID_REQUEST" for rid in answerable)
    assert all(by_id[r.request_id]["operation_cleared"] for r in valid)

    # No secret anywhere: every output topic, and every log line of the worker.
    for topic in (
        pipeline_settings.topics.dead_letter,
        pipeline_settings.topics.preflight_results,
        pipeline_settings.topics.discrepancies,
        pipeline_settings.topics.corrections,
        pipeline_settings.topics.proof_checks,
        pipeline_settings.topics.findings,
    ):
        text = json.dumps(await read_topic(pipeline_settings, topic, idle=1.0, timeout=60))
        assert marker not in text, f"a secret leaked into {topic}"
    assert marker not in worker.log_text()


async def test_deleted_token_leaves_the_ledger(
    client: PreflightClient,
    worker: WorkerProcess,
    pipeline_settings: Settings,
    real_scenario: Scenario,
) -> None:
    owner = npub()
    proofs = real_scenario.unspent[2:4]
    token = await publish_token(pipeline_settings, worker, owner, proofs, "unspent")
    await publish_token(
        pipeline_settings, worker, owner, proofs, "deleted", token_id=token, version=2, wait=False
    )
    async with httpx.AsyncClient(base_url=worker.url, timeout=5) as http:
        for _ in range(100):
            views = [
                (await http.get(f"/v1/proofs/{p.Y}", params={"npub": owner})).json() for p in proofs
            ]
            if all(v["ledger"] is None for v in views):
                break
            await asyncio.sleep(0.1)
    assert all(v["ledger"] is None for v in views)
    result = await ask(client, melt(owner, proofs))
    assert {d.type for d in result.discrepancies} == {"PROOF_NOT_IN_DB"}
