"""Finding 9 (medium): a proof absent from the npub's ledger cleared whatever the mint said.

At 7262b21 "not in the DB" was LOW whatever the mint state, so a melt of proofs the mint reports
SPENT or PENDING (the token event not applied yet, another npub's proofs, a lost index) CLEARED.
"""

from __future__ import annotations

import pytest

from devkit.mints import MintServer
from devkit.processes import WorkerProcess
from devkit.wallet import Scenario, WalletProof
from streams.client import PreflightClient
from tests.support.pipeline import ask, melt, npub

pytestmark = pytest.mark.stack


async def test_finding_09_absent_from_the_ledger_and_spent_at_the_mint_is_blocked(
    client: PreflightClient, worker: WorkerProcess, real_scenario: Scenario
) -> None:
    result = await ask(client, melt(npub(), real_scenario.spent_swap[:2]))
    assert (result.verdict, result.code) == ("BLOCKED", "PROOF_SPENT_AT_MINT")
    assert not result.operation_cleared
    assert {(d.type, d.mint_state) for d in result.discrepancies} == {("PROOF_NOT_IN_DB", "SPENT")}


async def test_finding_09_absent_from_the_ledger_and_pending_at_the_mint_is_blocked(
    client: PreflightClient,
    worker: WorkerProcess,
    pending_mint: MintServer,
    pending_proofs: dict[str, list[WalletProof]],
) -> None:
    result = await ask(client, melt(npub(), pending_proofs["pending"], mint_url=pending_mint.url))
    assert (result.verdict, result.code) == ("BLOCKED", "PROOF_PENDING_AT_MINT")
    assert {(d.type, d.mint_state) for d in result.discrepancies} == {
        ("PROOF_NOT_IN_DB", "PENDING")
    }
    # The same mint's unspent proofs, equally absent, still clear: the state decides.
    clean = await ask(client, melt(npub(), pending_proofs["unspent"], mint_url=pending_mint.url))
    assert clean.verdict == "CLEARED"
