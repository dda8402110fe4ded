"""Finding 14 (medium): `PreflightClient` took the first answer with a matching request_id.

At 7262b21 any producer that knew or guessed a request_id could answer it first: a CLEARED
computed for another npub, other proofs or another mint was accepted as the wallet's verdict.
"""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime

import pytest

from devkit.mints import MintServer
from devkit.processes import WorkerProcess
from devkit.wallet import Scenario
from streams.client import PreflightClient
from streams.core.contracts import PreflightResult, SeverityCounts, proofs_digest, to_json_bytes
from streams.core.domain import Verdict
from streams.core.settings import Settings
from tests.safety.helpers import eventually, produce
from tests.support.pipeline import melt, npub, publish_token

pytestmark = pytest.mark.stack


def _cleared(request_id: str, owner: str, mint_url: str, digest: str) -> bytes:
    forged = PreflightResult(
        request_id=request_id,
        npub=owner,
        mint_url=mint_url,
        operation_cleared=True,
        verdict=Verdict.CLEARED,
        code=None,
        discrepancies_found=0,
        discrepancies_resolved=0,
        severity_counts=SeverityCounts(),
        discrepancies=(),
        checked_proofs=1,
        duration_ms=1.0,
        answered_at=datetime.now(UTC),
        proofs_digest=digest,
    )
    return to_json_bytes(forged)


async def test_finding_14_forged_answers_published_first_are_ignored(
    worker: WorkerProcess,
    pipeline_settings: Settings,
    real_scenario: Scenario,
    pending_mint: MintServer,
) -> None:
    victim = npub()
    spent = real_scenario.spent_elsewhere[:1]
    await publish_token(pipeline_settings, worker, victim, spent, "unspent")
    request = melt(victim, spent)
    rid, mint = request.request_id, request.mint_url
    digest = proofs_digest(p.Y for p in spent)
    other_digest = proofs_digest(p.Y for p in real_scenario.unspent[:1])
    forgeries = [
        _cleared(rid, npub(), mint, digest),  # computed for another npub
        _cleared(rid, victim, mint, other_digest),  # for other proofs
        _cleared(rid, victim, pending_mint.url, digest),  # for another mint
    ]
    results = pipeline_settings.topics.preflight_results
    assert worker.proc is not None
    async with PreflightClient(pipeline_settings) as client:
        # Hold the worker still so that every forgery is read before the real answer exists.
        os.kill(worker.proc.pid, signal.SIGSTOP)
        try:
            asking = asyncio.create_task(client.preflight(request, timeout=30))
            await asyncio.sleep(0)  # the request is registered; its send is under way
            for value in forgeries:
                await produce(pipeline_settings, results, value, key=rid.encode())

            async def all_ignored() -> bool | None:
                return True if client.ignored_answers >= len(forgeries) else None

            await eventually(all_ignored, timeout=8, every=0.05)
            assert not asking.done()
        finally:
            os.kill(worker.proc.pid, signal.SIGCONT)
        result = await asking
    assert client.ignored_answers == len(forgeries)
    assert (result.npub, result.mint_url, result.proofs_digest) == (victim, mint, digest)
    assert (result.verdict, result.code) == ("BLOCKED", "HIGH_SEVERITY_DISCREPANCIES")
