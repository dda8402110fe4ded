"""One wallet holding proofs at a Nutshell mint and at a CDK mint, in one ledger, one worker.

Each melt must be judged by the mint it names, and only for proofs the ledger holds there: any
mint answers UNSPENT for a Y it never saw, so a request naming the wrong mint would otherwise
clear proofs spent at the right one (review finding 5).

Which mint answered shows in the verdicts themselves: the proofs spent at one mint are unknown
(UNSPENT) at the other, so a HIGH verdict can only come from the mint where they were spent.
"""

from __future__ import annotations

import pytest

from devkit.processes import WorkerProcess
from streams.client import PreflightClient
from streams.core.settings import Settings
from tests.mints.impls import CDK, NUTSHELL, MintImpl
from tests.support.pipeline import ask, melt, npub, publish_token

pytestmark = [pytest.mark.stack, pytest.mark.timeout(180)]


async def test_each_melt_is_checked_at_its_own_mint_and_a_wrong_one_is_a_mismatch(
    impls: dict[str, MintImpl],
    client: PreflightClient,
    worker: WorkerProcess,
    pipeline_settings: Settings,
) -> None:
    nutshell, cdk = impls[NUTSHELL], impls[CDK]
    owner = npub()
    # At each mint: (proofs spent behind the wallet's back, a clean one), one token each.
    held = {
        NUTSHELL: (nutshell.scene.spent_elsewhere[:2], nutshell.scene.unspent[3:4]),
        CDK: (cdk.scene.spent_elsewhere[:2], cdk.scene.unspent[3:4]),
    }
    for name, (spent, clean) in held.items():
        held_at = impls[name].url
        await publish_token(
            pipeline_settings, worker, owner, spent + clean, "unspent", mint_url=held_at
        )

    for name, (spent, clean) in held.items():
        url = impls[name].url
        high = await ask(client, melt(owner, spent, mint_url=url))
        assert (high.verdict, high.code, high.mint_url) == (
            "BLOCKED",
            "HIGH_SEVERITY_DISCREPANCIES",
            url,
        ), name
        assert {d.type for d in high.discrepancies} == {"DB_UNSPENT_MINT_SPENT"}
        cleared = await ask(client, melt(owner, clean, mint_url=url))
        assert (cleared.verdict, cleared.discrepancies_found) == ("CLEARED", 0), name

    # Each mint's proofs named at the other: never asked, never cleared.
    for name, other_name in ((NUTSHELL, CDK), (CDK, NUTSHELL)):
        spent, clean = held[name]
        for proofs in (spent, clean):
            wrong = await ask(client, melt(owner, proofs, mint_url=impls[other_name].url))
            assert (wrong.verdict, wrong.code) == ("BLOCKED", "MINT_MISMATCH"), (name, proofs)
            assert wrong.discrepancies == ()

    # One request holding proofs of both mints names one of them: a mismatch for the others.
    mixed = held[NUTSHELL][1] + held[CDK][1]
    for impl in (nutshell, cdk):
        answer = await ask(client, melt(owner, mixed, mint_url=impl.url))
        assert (answer.verdict, answer.code) == ("BLOCKED", "MINT_MISMATCH")
