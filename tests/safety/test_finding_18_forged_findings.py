"""Finding 18 (medium): the internal `recon.findings` topic was trusted blindly.

At 7262b21 anyone able to produce to it could claim "SPENT" for a victim's unspent proofs, with no
mint ever asked: HIGH discrepancy events, alerts and a MARK_SPENT correction telling the wallet to
write good funds off. Findings now carry an HMAC under the workers' key and must name an
allow-listed mint.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from devkit.processes import WorkerProcess, read_topic
from devkit.wallet import Scenario, WalletProof
from streams.core.contracts import to_json_bytes
from streams.core.domain import MintState, Source
from streams.core.settings import Settings
from streams.worker.findings import SIGNATURE_HEADER, Finding, ObservedProof, sign
from tests.conftest import MINT_URL
from tests.safety.conftest import FINDINGS_KEY
from tests.safety.helpers import dead_letters_of, produce
from tests.support.pipeline import discrepancies_of, npub, publish_token

pytestmark = pytest.mark.stack

OFF_LIST_MINT = "https://mint.off-the-list.example"


def _spent_claim(owner: str, mint_url: str, proof: WalletProof) -> bytes:
    finding = Finding(
        npub=owner,
        mint_url=mint_url,
        source=Source.SWEEP,
        observed_at=datetime.now(UTC),
        observation_id=uuid.uuid4().hex,
        proofs=(ObservedProof(Y=proof.Y, state=MintState.SPENT),),
    )
    return to_json_bytes(finding)


async def test_finding_18_forged_findings_are_dead_lettered_and_change_nothing(
    worker: WorkerProcess, pipeline_settings: Settings, real_scenario: Scenario
) -> None:
    topic = pipeline_settings.topics.findings
    victim = npub()
    good, far = real_scenario.unspent[0], real_scenario.unspent[1]
    await publish_token(pipeline_settings, worker, victim, [good], "unspent")
    # The ledger takes the wallet's word for a token's mint, even one the service may not call.
    await publish_token(pipeline_settings, worker, victim, [far], "unspent", mint_url=OFF_LIST_MINT)

    unsigned = _spent_claim(victim, MINT_URL, good)
    wrong_key = _spent_claim(victim, MINT_URL, good)
    off_list = _spent_claim(victim, OFF_LIST_MINT, far)
    where = set()
    for value, headers in (
        (unsigned, None),
        (wrong_key, [(SIGNATURE_HEADER, sign(b"not-the-workers-key", wrong_key))]),
        (off_list, [(SIGNATURE_HEADER, sign(FINDINGS_KEY.encode(), off_list))]),
    ):
        sent = await produce(pipeline_settings, topic, value, key=victim.encode(), headers=headers)
        where.add((sent.partition, sent.offset))

    # A finding signed with the workers' key is applied (the refusals are about the signatures).
    other = npub()
    spent = real_scenario.spent_elsewhere[2]
    await publish_token(pipeline_settings, worker, other, [spent], "unspent")
    genuine = _spent_claim(other, MINT_URL, spent)
    await produce(
        pipeline_settings,
        topic,
        genuine,
        key=other.encode(),
        headers=[(SIGNATURE_HEADER, sign(FINDINGS_KEY.encode(), genuine))],
    )

    parked = await dead_letters_of(pipeline_settings, topic, where)
    assert sorted(p["error"] for p in parked) == [
        "finding names a mint off the allow-list",
        "finding without a valid signature",
        "finding without a valid signature",
    ]
    (applied,) = await discrepancies_of(pipeline_settings, other, 1)
    assert (applied["type"], applied["source"]) == ("DB_UNSPENT_MINT_SPENT", "sweep")

    events = await read_topic(pipeline_settings, pipeline_settings.topics.discrepancies, idle=1.5)
    assert [e for e in events if e["npub"] == victim] == []
    corrections = await read_topic(
        pipeline_settings,
        pipeline_settings.topics.corrections,
        until=lambda rs: any(r["npub"] == other for r in rs),
    )
    assert [c for c in corrections if c["npub"] == victim] == []
